#!/usr/bin/env bash
# Everything the GPU machine is for, in one call: probe reports, backend checks against the CPU oracle with
# validation on, MoE on each backend, then benchmarks. Logs go to $OUT (the device tool brings them back):
# a short table is printed last. Run from the repo root with `.gl` and `build` carried.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/device_env.sh
out=${OUT:-/tmp/out}
mkdir -p "$out/logs"
export FP8_NO_BUILD=1
summary=()
run() { # name, timeout, command...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/logs/$name.log" 2>&1
    local rc=$?
    summary+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
}

nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$out/logs/nvidia-smi.csv" 2>&1
run fp8probe 60 build/probes/fp8probe
run fp8probe_json 60 build/probes/fp8probe --json
cp "$out/logs/fp8probe.log" "$out/probe_gpu.txt"
cp "$out/logs/fp8probe_json.log" "$out/probe_gpu.json"
run fp8probe_verbose 60 build/probes/fp8probe --verbose
for t in ${GPU_STEPS:-vulkan opencl moe bench}; do
    case $t in
    vulkan) [ -x scripts/gpu_vulkan_check.sh ] && run vulkan_check 420 scripts/gpu_vulkan_check.sh "$out/vk" build ;;
    opencl) mkdir -p "$out/cl"; [ -x scripts/gpu_opencl_check.sh ] && OUT="$out/cl" run opencl_check 300 scripts/gpu_opencl_check.sh build ;;
    moe) [ -x scripts/gpu_moe_bench.sh ] && run moe_vulkan 330 scripts/gpu_moe_bench.sh "$out/moe" build ;;
    moe_cl) for x in test_moe_route test_moe_group test_moe_gemm test_moe test_moe_bad test_cl_moe; do
             [ -x "build/tests/$x" ] && FP8_TEST_BACKEND=opencl FP8_TEST_CL_DEVICE=NVIDIA run "${x}_opencl_nvidia" 120 "build/tests/$x"
         done ;;
    opencl_perf) FP8_TEST_CL_DEVICE=NVIDIA FP8_TEST_CL_LARGE=1 run cl_gemm_large_nvidia 200 build/tests/test_cl_gemm
         FP8_TEST_CL_DEVICE=NVIDIA run perf_cl_gemm 240 stdbuf -oL build/tests/perf_cl_gemm ;;
    bench) run fp8bench 540 build/probes/fp8bench --json "$out/fp8bench.json" ${FP8BENCH_FULL_ARGS:-} ;;
    esac
done
dirs=(logs); for d in vk cl moe; do [ -d "$out/$d" ] && dirs+=("$d"); done
tar -C "$out" -czf "$out/logs.tgz" "${dirs[@]}"
for f in "$out"/vk/*.json "$out"/moe/*.json; do [ -f "$f" ] && cp "$f" "$out/"; done
rm -rf "$out/logs" "$out/vk" "$out/cl" "$out/moe"
printf '%s\n' "${summary[@]}"
