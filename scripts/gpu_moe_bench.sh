#!/usr/bin/env bash
# MoE on a real GPU (written for the H100, about 3 minutes): the MoE tests on the Vulkan backend with the
# validation layer on, then fp8moebench over Qwen3-30B-A3B, DeepSeek-V3 and gpt-oss-20b at M in
# {1, 8, 64, 512, 4096} (each model checked against the CPU device on 2 tokens first), then the decode sizes
# again with two-float accumulation in the per-expert kernel (FP8_VK_MOE_PRECISE_ACCUM=1, the opt-in) to show
# what it costs over the default f32 sums, and once more with routing and grouping in two dispatches
# (FP8_VK_MOE_FUSED_ROUTE=0; by default decode layers take one; its tests run first). OUTDIR receives
# fp8moebench.json, fp8moebench_precise_accum.json, fp8moebench_separate_route.json and logs.tgz (every log; few files, as the device
# tool brings back at most 8); the benchmark tables and a summary are printed last.
# Usage: scripts/gpu_moe_bench.sh OUTDIR [BUILD_DIR]   (on lavapipe: FP8MOEBENCH_ARGS=--quick)
# From the device tool, with `.gl` and the build carried: . scripts/device_env.sh first (it unpacks the loader).
set -uo pipefail
out=${1:?usage: $0 OUTDIR [BUILD_DIR]}
cd "$(dirname "$0")/.."
build=${2:-build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
. scripts/ensure_build.sh
ensure_build "$build" probes/fp8moebench
export FP8_CACHE_DIR=${FP8_CACHE_DIR:-$PWD/$build/fp8-cache}
status=0
summary=()
step() { # name, timeout, command... (environment prefixes go before `step`)
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-30s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then status=1; tail -n 30 "$logs/$name.log"; fi
}
logs=$out/logs
mkdir -p "$logs"
"$build/probes/fp8probe" >"$logs/fp8probe.txt" 2>&1
for t in moe_route moe_group moe_gemm moe moe_bad; do
    FP8_TEST_BACKEND=vulkan FP8_VK_VALIDATION=1 step "test_${t}_vulkan" 120 "$build/tests/test_$t"
done
FP8_VK_VALIDATION=1 step test_moe_vk 120 "$build/tests/test_moe_vk"
for t in moe moe_bad; do
    FP8_TEST_BACKEND=vulkan FP8_VK_VALIDATION=1 FP8_VK_MOE_FUSED_ROUTE=0 step "test_${t}_vulkan_separate_route" 120 \
        "$build/tests/test_$t"
done
# Timings without the validation layer.
FP8_VK_VALIDATION=0 step fp8moebench 300 "$build/probes/fp8moebench" --json "$out/fp8moebench.json" ${FP8MOEBENCH_ARGS:-}
FP8_VK_VALIDATION=0 FP8_VK_MOE_PRECISE_ACCUM=1 step fp8moebench_precise_accum 120 "$build/probes/fp8moebench" --no-check \
    --ms 1,8,64 --json "$out/fp8moebench_precise_accum.json" ${FP8MOEBENCH_ARGS:-}
FP8_VK_VALIDATION=0 FP8_VK_MOE_FUSED_ROUTE=0 step fp8moebench_separate_route 120 "$build/probes/fp8moebench" --no-check \
    --ms 1,8 --json "$out/fp8moebench_separate_route.json" ${FP8MOEBENCH_ARGS:-}
cat "$logs/fp8moebench.log"
echo "--- per-expert kernel with two-float accumulation (FP8_VK_MOE_PRECISE_ACCUM=1), decode sizes:"
grep -E '^[A-Za-z]|^ +(M|[0-9]+) ' "$logs/fp8moebench_precise_accum.log"
echo "--- routing and grouping in two dispatches (FP8_VK_MOE_FUSED_ROUTE=0), decode sizes:"
grep -E '^[A-Za-z]|^ +(M|[0-9]+) ' "$logs/fp8moebench_separate_route.log"
tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$logs"
printf '%s\n' "${summary[@]}"
exit $status
