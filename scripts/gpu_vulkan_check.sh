#!/usr/bin/env bash
# Vulkan checks on a real GPU (written for the H100): the device record, every GEMM path against the CPU oracle
# with the validation layer on (small odd shapes, then N = K = 4096 with M in {1, 16, 512} on sampled rows; the
# cooperative-matrix paths, coopmat2 included, forced once through desc.path and once through FP8_PATH), then
# fp8bench writing JSON, and tile sweeps of both cooperative-matrix kernels.
# Usage: scripts/gpu_vulkan_check.sh OUTDIR [BUILD_DIR]   (about 3-6 minutes on an H100)
# FP8_TEST_LARGE_NK=N shrinks the large shapes and FP8BENCH_ARGS (e.g. --quick) goes to fp8bench: to try the
# script on lavapipe.
# Needs a Vulkan loader and driver; the validation layer is looked up by the loader (set VK_LAYER_PATH to a
# carried copy of Debian's vulkan-validationlayers if it is not installed). FP8_VK_VALIDATION=0 turns it off.
set -uo pipefail
out=${1:?usage: $0 OUTDIR [BUILD_DIR]}
cd "$(dirname "$0")/.."
build=${2:-build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Build where the tools are; on a bare GPU machine, run a build carried there as it is.
. scripts/ensure_build.sh
ensure_build "$build" tests/test_vk_gemm
export FP8_CACHE_DIR=$PWD/$build/fp8-cache
export FP8_VK_VALIDATION=${FP8_VK_VALIDATION:-1}
status=0
step() { # name, timeout, command...
    local name=$1 limit=$2; shift 2
    echo "=== $name"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$out/$name.log"
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then echo "=== $name FAILED (exit $rc)"; status=1; fi
}

"$build/probes/fp8probe" >"$out/fp8probe.txt" 2>&1; cat "$out/fp8probe.txt"
# The device record for tests/fixtures (replace the fixture when the driver or the probe changes).
"$build/probes/fp8probe" --c-fixture fixture_device_vk --device 0 >"$out/fixture_vk.c" 2>&1
step vk_runtime 60 "$build/tests/test_vk_runtime"
step vk_bench 60 "$build/tests/test_vk_bench"
for path in vk_gemv vk_gemm_tiled vk_gemm_nv_coopmat vk_gemm_khr_coopmat vk_gemm_nv_coopmat2; do
    FP8_TEST_PATH=$path FP8_TEST_LARGE=1 step "vk_gemm_$path" 150 "$build/tests/test_vk_gemm"
done
for path in vk_gemm_nv_coopmat vk_gemm_khr_coopmat vk_gemm_nv_coopmat2; do
    FP8_PATH=$path FP8_TEST_PATH=$path step "vk_gemm_env_$path" 60 "$build/tests/test_vk_gemm"
done
# Timings without the validation layer, which slows every call.
FP8_VK_VALIDATION=0 step fp8bench 300 "$build/probes/fp8bench" --json "$out/fp8bench.json" ${FP8BENCH_ARGS:-}
# Tile shapes of the cooperative-matrix kernel (FP8_VK_COOPMAT_TILE=sg_m,sg_n,fm,fn,bk[,stages]; default 2,4,4,2,32,2), each
# within 48 KiB of shared memory: the numbers to choose a better default from (scripts/gpu_vk_tune.sh sweeps more).
for tile in 2,4,4,2,32 2,2,4,4,32 4,2,2,4,32 2,4,4,4,16 4,2,4,4,16; do
    FP8_VK_VALIDATION=0 FP8_VK_COOPMAT_TILE=$tile step "tile_${tile//,/_}" 60 "$build/probes/fp8bench" \
        --shapes 4096x4096,14336x4096 --ms 4096 --configs e4m3_block128 --paths vk_gemm_nv_coopmat,vk_gemm_khr_coopmat \
        --reps 5 --baselines none --json "$out/tile_${tile//,/_}.json"
done
# Workgroup tiles of the coopmat2 kernel (FP8_VK_COOPMAT2_TILE=tokens,rows,k; default 128,128,32), where built.
for tile in 128,256,32 256,128,32 128,128,64; do
    FP8_VK_VALIDATION=0 FP8_VK_COOPMAT2_TILE=$tile step "cm2_tile_${tile//,/_}" 60 "$build/probes/fp8bench" \
        --shapes 4096x4096,14336x4096 --ms 4096 --configs e4m3_block128,mxfp4 --paths vk_gemm_nv_coopmat2 \
        --reps 5 --baselines none --json "$out/cm2_tile_${tile//,/_}.json"
done
echo "results in $out"
exit $status
