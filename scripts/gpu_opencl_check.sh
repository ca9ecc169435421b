#!/usr/bin/env bash
# OpenCL backend on the GPU machine: every path on the NVIDIA device against the CPU oracle (every code of
# every weight format, then M in {1, 3, 16, 512} at N, K near 4096, M = 512 on sampled rows), then timings
# against baselines of the same run (copy bandwidth, the same kernels on fp32 weights, CLBlast SGEMM).
# About 4 minutes with a cold kernel cache (NVIDIA compiles each variant in seconds), 1-2 minutes warm.
# FP8_CHECK_SMALL=1 adds the small cases too (every scale layout and stride; about 4 more minutes cold).
#
# On the GPU machine, from the repository root, with the build folder and .gl carried (see DEVICE.md):
#   scripts/gpu_opencl_check.sh [build-dir]
# FP8_TEST_CL_DEVICE picks the device by name (default NVIDIA); logs go to $OUT (default /tmp/fp8-gpu-opencl).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${OUT:-/tmp/fp8-gpu-opencl}
mkdir -p "$out"
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
export FP8_TEST_CL_DEVICE=${FP8_TEST_CL_DEVICE:-NVIDIA}
# Caches stay out of $OUT: only logs come back from the machine.
export FP8_CACHE_DIR=${FP8_CACHE_DIR:-/tmp/fp8-gpu-cache} POCL_CACHE_DIR=${POCL_CACHE_DIR:-/tmp/fp8-gpu-pocl}
mkdir -p "$FP8_CACHE_DIR" "$POCL_CACHE_DIR"

"$build/probes/fp8probe" > "$out/probe.txt" 2>&1
start=$(date +%s)
small=skipped
if [ "${FP8_CHECK_SMALL:-0}" = 1 ]; then
    timeout 400 "$build/tests/test_cl_gemm" > "$out/cl_gemm_small.txt" 2>&1; small=$?
fi
t1=$(date +%s)
FP8_TEST_CL_LARGE=1 timeout 200 "$build/tests/test_cl_gemm" > "$out/cl_gemm_large.txt" 2>&1; large=$?
t2=$(date +%s)
timeout 180 "$build/tests/perf_cl_gemm" > "$out/perf.txt" 2>&1; perf=$?
t3=$(date +%s)

cat "$out/probe.txt"
echo
echo "== correctness on $FP8_TEST_CL_DEVICE (relative Frobenius error vs the CPU oracle)"
grep -E "^  |FAILED|failed|passed|SKIP" "$out/cl_gemm_large.txt" | head -60
echo
echo "== performance"
cat "$out/perf.txt"
echo
status() { case $1 in 0) echo ok ;; skipped) echo skipped ;; *) echo "FAIL:$1" ;; esac; }
printf '%-28s %-8s %5s s\n' "small cases" "$(status $small)" $((t1 - start)) \
    "large shapes" "$(status $large)" $((t2 - t1)) \
    "performance" "$(status $perf)" $((t3 - t2))
[ $small != 0 ] && [ $small != skipped ] && exit 1
[ $large = 0 ] && [ $perf = 0 ]
