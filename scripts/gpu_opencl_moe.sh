#!/usr/bin/env bash
# MoE on the OpenCL backend of the GPU machine: every MoE test on the NVIDIA OpenCL device with the kernels the
# plans choose, then with each grouped GEMM kernel forced and without fp64; the device-vs-CPU kernel test;
# then the MoE timings: the defaults, each kernel forced, float-float and plain f32 sums, and the previous decode
# kernel (FP8_CL_MOE_GEMV=old) and the new one widening weights by conversion (=cvt) for comparison. A few minutes.
#
# On the GPU machine, from the repository root, with the build folder and .gl carried:
#   scripts/gpu_opencl_moe.sh [build-dir]
# FP8_TEST_CL_DEVICE picks the device by name (default NVIDIA). The logs come back as one archive,
# $OUT/opencl_moe_logs.tgz ($OUT defaults to /tmp/fp8-gpu-opencl-moe); the summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dest=${OUT:-/tmp/fp8-gpu-opencl-moe}
out=$(mktemp -d)/opencl_moe
mkdir -p "$dest" "$out"
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
export FP8_TEST_BACKEND=opencl FP8_TEST_CL_DEVICE=${FP8_TEST_CL_DEVICE:-NVIDIA}
# Caches stay out of $OUT: only logs come back from the machine.
export FP8_CACHE_DIR=${FP8_CACHE_DIR:-/tmp/fp8-gpu-cache} POCL_CACHE_DIR=${POCL_CACHE_DIR:-/tmp/fp8-gpu-pocl}
mkdir -p "$FP8_CACHE_DIR" "$POCL_CACHE_DIR"

summary=()
failed=0
step() { # name, timeout, [VAR=value...] program [args...]
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" env "$@" > "$out/$name.log" 2>&1
    local rc=$?
    [ $rc = 0 ] || failed=1
    summary+=("$(printf '%-26s %-8s %4ss  %s' "$name" "$([ $rc = 0 ] && echo ok || echo "FAIL:$rc")" $((SECONDS - t0)) \
        "$(grep -m1 -E 'SKIP|FAILED' "$out/$name.log")")")
}

for t in moe_route moe_group moe_gemm moe moe_bad; do step "$t" 300 "$build/tests/test_$t"; done
step cl_moe 300 "$build/tests/test_cl_moe"
for k in gemv tiled; do
    for t in moe_gemm moe moe_bad; do step "${t}_$k" 300 FP8_CL_MOE_KERNEL=$k "$build/tests/test_$t"; done
done
for t in moe_route moe; do step "${t}_nofp64" 300 FP8_CL_MOE_NO_FP64=1 "$build/tests/test_$t"; done
# The H100 sums in double by default (fast fp64); float-float is every other device's default.
for t in moe_gemm moe cl_moe; do step "${t}_ff" 300 FP8_CL_MOE_ACC=ff "$build/tests/test_$t"; done
# The decode kernels kept for comparison: the previous one, and the new one with converted weights.
for v in old cvt; do for t in moe cl_moe; do step "${t}_gemv_$v" 300 FP8_CL_MOE_GEMV=$v "$build/tests/test_$t"; done; done
step perf 400 "$build/tests/perf_cl_moe"
step perf_gemv 300 FP8_CL_MOE_KERNEL=gemv "$build/tests/perf_cl_moe"
step perf_tiled 300 FP8_CL_MOE_KERNEL=tiled "$build/tests/perf_cl_moe"
step perf_ff 300 FP8_CL_MOE_ACC=ff "$build/tests/perf_cl_moe"
step perf_f32 300 FP8_CL_MOE_ACC=f32 "$build/tests/perf_cl_moe"
step perf_gemv_old 300 FP8_CL_MOE_GEMV=old "$build/tests/perf_cl_moe"
step perf_gemv_cvt 300 FP8_CL_MOE_GEMV=cvt "$build/tests/perf_cl_moe"

echo "== MoE on $FP8_TEST_CL_DEVICE (OpenCL)"
grep -hE "rel err|worst|route:|group:|quantize:|fuzz" "$out/moe.log" "$out/cl_moe.log" | grep -vE ' (gemv|tiled) +worst' | head -60
for p in perf perf_gemv perf_tiled perf_ff perf_f32 perf_gemv_old perf_gemv_cvt; do
    echo
    echo "== $p"
    cat "$out/$p.log"
done
echo
printf '%s\n' "${summary[@]}"
tar -C "$(dirname "$out")" -czf "$dest/opencl_moe_logs.tgz" opencl_moe
rm -rf "$(dirname "$out")"
exit $failed
