#!/usr/bin/env bash
# The VK_NV_cooperative_matrix2 GEMM on a real GPU (written for the H100): the device record, the kernel against
# the CPU oracle with the validation layer on (odd small shapes; N = K = 4096 with M in {1, 16, 512}; once forced
# through FP8_PATH), then fp8bench on the issue's prefill shapes next to the KHR kernel, and a sweep of tiles.
# Usage: scripts/gpu_coopmat2.sh OUTDIR [BUILD_DIR]   (about 4 minutes on an H100)
set -uo pipefail
out=${1:?usage: $0 OUTDIR [BUILD_DIR]}
cd "$(dirname "$0")/.."
build=${2:-build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
. scripts/ensure_build.sh
ensure_build "$build" tests/test_vk_gemm
export FP8_VK_VALIDATION=${FP8_VK_VALIDATION:-1}
status=0
step() { # name, timeout, command...
    local name=$1 limit=$2; shift 2
    echo "=== $name"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$out/$name.log"
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then echo "=== $name FAILED (exit $rc)"; status=1; fi
}

"$build/probes/fp8probe" >"$out/fp8probe.txt" 2>&1; grep -iE "coopmat2|gemm|flex" "$out/fp8probe.txt" | head -20
"$build/probes/fp8probe" --c-fixture fixture_nvidia_h100_vk --device 0 >"$out/fixture_h100_vk.c" 2>&1
FP8_TEST_PATH=vk_gemm_nv_coopmat2 step cm2_small 120 "$build/tests/test_vk_gemm"
FP8_VK_VALIDATION=0 step bench 240 "$build/probes/fp8bench" --ms 512,2048,4096 \
    --paths vk_gemm_nv_coopmat2,vk_gemm_khr_coopmat --baselines copy,peak,sgemm --json "$out/bench.json" ${FP8BENCH_ARGS:-}
FP8_TEST_PATH=vk_gemm_nv_coopmat2 FP8_TEST_LARGE=1 FP8_TEST_CASE=none step cm2_large 150 "$build/tests/test_vk_gemm"
FP8_PATH=vk_gemm_nv_coopmat2 FP8_TEST_PATH=vk_gemm_nv_coopmat2 step cm2_env 60 "$build/tests/test_vk_gemm"
for tile in ${FP8_CM2_TILES:-128,128,64 128,256,32 256,128,32 128,256,64}; do
    FP8_VK_VALIDATION=0 FP8_VK_COOPMAT2_TILE=$tile step "tile_${tile//,/_}" 60 "$build/probes/fp8bench" \
        --shapes 4096x4096,14336x4096 --ms 4096 --configs e4m3_block128,mxfp4 --paths vk_gemm_nv_coopmat2 \
        --reps 5 --baselines none --json "$out/tile_${tile//,/_}.json"
done
echo "results in $out"
exit $status
