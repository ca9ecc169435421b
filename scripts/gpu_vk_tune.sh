#!/usr/bin/env bash
# Vulkan kernels on a GPU (written for the H100), in one call: the large-shape correctness tests of every GEMM path
# (validation layer on), tuning sweeps of the GEMV shape (FP8_VK_GEMV for M <= 2, FP8_VK_GEMV_BATCH for 3..16)
# and of the cooperative-matrix tile (FP8_VK_COOPMAT_TILE), each variant timed by fp8bench after its results were
# checked against the CPU oracle, then the full fp8bench with the best variant of each sweep, writing
# OUTDIR/fp8bench.json. The chosen variants are printed ("best ..."): make them the defaults in vk_gemm.c.
# Usage: scripts/gpu_vk_tune.sh OUTDIR [BUILD_DIR]   (BUILD_DIR: e.g. a carried release build; default build)
# FP8_TUNE_STEPS (default "tests gemv1 gemvm tiles full") picks the parts; FP8_TUNE_GEMV1, FP8_TUNE_GEMVM,
# FP8_TUNE_TILES and FP8_TUNE_TEST_PATHS replace their lists; FP8_TUNE_ARGS goes last to every fp8bench (e.g.
# "--shapes 96x256 --reps 1" for a dry run on lavapipe). Logs: OUTDIR/tune.log and OUTDIR/fp8bench.log.
set -uo pipefail
out=${1:?usage: $0 OUTDIR [BUILD_DIR]}
build=${2:-build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export FP8_CACHE_DIR=${FP8_CACHE_DIR:-/tmp/fp8-cache}
status=0
# Mean of the number before UNIT over fp8bench's result lines on stdin.
mean_of() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) {s += $(i - 1); n++}} END {printf "%.2f", n ? s / n : 0}'; }
# sweep NAME ENVVAR UNIT "VARIANTS" FP8BENCH-ARGS...: times each variant, prints its mean, sets $best.
sweep() {
    local name=$1 var=$2 unit=$3 variants=$4 v m top=-1
    shift 4
    best=
    for v in $variants; do
        echo "=== $name $var=$v"
        local res
        res=$(env "$var=$v" FP8_VK_VALIDATION=0 timeout 120 "$build/probes/fp8bench" "$@" ${FP8_TUNE_ARGS:-} 2>&1 |
              grep -v '^\[libfp8\]')
        echo "$res"
        if grep -q WRONG <<<"$res"; then status=1; continue; fi
        m=$(grep -E ' us ' <<<"$res" | mean_of "$unit")
        echo "--- $name $var=$v: mean $m $unit"
        if awk -v a="$m" -v b="$top" 'BEGIN {exit !(a > b)}'; then top=$m; best=$v; fi
    done
    echo "best $name: $var=$best (mean $top $unit)"
}
steps=${FP8_TUNE_STEPS:-tests gemv1 gemvm tiles full}
exec > >(tee "$out/tune.log") 2>&1
for step in $steps; do
    case $step in
    tests)
        for p in ${FP8_TUNE_TEST_PATHS:-vk_gemv vk_gemm_nv_coopmat vk_gemm_khr_coopmat vk_gemm_tiled}; do
            echo "=== test_vk_gemm FP8_TEST_LARGE=1 $p"
            FP8_VK_VALIDATION=1 FP8_TEST_PATH=$p FP8_TEST_LARGE=1 timeout 150 "$build/tests/test_vk_gemm" >"$out/test_$p.log" 2>&1
            rc=$?
            grep -E 'rows checked|FAIL|failed|passed|SKIP|Error' "$out/test_$p.log" | tail -25
            if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then echo "=== $p FAILED (exit $rc)"; status=1; fi
        done
        FP8_VK_VALIDATION=1 timeout 60 "$build/tests/test_vk_bench" 2>&1 | tail -3 ;;
    gemv1) # one token: threads per group, groups per workgroup, rows per group, loads per row in flight
        sweep gemv1 FP8_VK_GEMV GB/s "${FP8_TUNE_GEMV1:-32,4,2,4 32,4,4,2 64,2,2,4 32,8,1,4 32,2,4,4 128,1,4,1 32,4,2,8}" \
            --paths vk_gemv --ms 1 --baselines copy --reps 9
        export FP8_VK_GEMV=$best ;;
    gemvm) # decode batches
        sweep gemvm FP8_VK_GEMV_BATCH GB/s "${FP8_TUNE_GEMVM:-32,8,2,2 32,8,2,1 32,4,2,2 32,16,1,2 64,4,2,2 32,8,4,1}" \
            --paths vk_gemv --ms 4,16 --shapes 4096x4096,14336x4096 --configs e4m3_channel,mxfp4 --baselines none --reps 5
        export FP8_VK_GEMV_BATCH=$best ;;
    tiles) # sg_m,sg_n,fm,fn,bk[,stages]
        sweep tiles FP8_VK_COOPMAT_TILE TFLOP/s "${FP8_TUNE_TILES:-2,4,4,2,32 2,2,4,4,32 4,2,2,4,32 2,4,4,4,16 4,2,4,4,16 2,4,2,4,16}" \
            --paths vk_gemm_nv_coopmat --ms 4096 --shapes 4096x4096,14336x4096 --baselines none --reps 5
        export FP8_VK_COOPMAT_TILE=$best ;;
    full)
        echo "=== fp8bench (FP8_VK_GEMV=${FP8_VK_GEMV:-} FP8_VK_GEMV_BATCH=${FP8_VK_GEMV_BATCH:-} FP8_VK_COOPMAT_TILE=${FP8_VK_COOPMAT_TILE:-})"
        FP8_VK_VALIDATION=0 timeout 400 "$build/probes/fp8bench" --json "$out/fp8bench.json" ${FP8_TUNE_ARGS:-} \
            >"$out/fp8bench.log" 2>&1 || status=1
        grep -v '^\[libfp8\]' "$out/fp8bench.log" ;;
    esac
done
echo "tune status $status"
exit $status
