#!/usr/bin/env python3
"""Markdown tables for docs/BENCHMARKS.md from fp8bench results: its --json file, or its text output (for runs that
kept only the log). One table per weight shape: every M, weight configuration and path with time, bandwidth,
throughput and the ratios to the same run's ceilings, then how far the targets are.

usage: scripts/bench_table.py RESULTS.json|fp8bench.log [DEVICE-SUBSTRING]
"""
import json
import re
import sys

PATHS = ["vk_gemv", "vk_gemm_tiled", "vk_gemm_nv_coopmat", "vk_gemm_khr_coopmat"]
GEMV_TARGET = 0.90   # GEMV at M=1: bytes / time against the copy bandwidth of the same run
PEAK_TARGET = 0.60   # GEMM at M >= 2048: against the matrix peak of the same run
SGEMM_TARGET = 2.0   # and against the fp32 SGEMM of the same run

LINE = re.compile(r"^\s+(\S+)\s+(vk_\S+)\s+M=(\d+)\s+N=(\d+)\s+K=(\d+)\s+([\d.]+) us\s+([\d.]+) GB/s\s+([\d.]+) TFLOP/s")


def from_log(text):
    dev = {"results": [], "copy_gbps": 0, "copy_kernel_gbps": 0, "copy_api_gbps": 0, "peak_tflops": 0,
           "sgemm_tflops": 0, "sgemm_size": 0}
    for line in text.splitlines():
        if m := re.match(r"^\[\d+\] (\w+): (.*) \((.*)\)$", line):
            dev.update(backend=m[1], name=m[2], driver=m[3])
        elif m := re.search(r"copy bandwidth\s+([\d.]+) GB/s(.*)", line):
            dev["copy_gbps"] = float(m[1])
            if "kernel" in m[2]:
                dev["copy_kernel_gbps"] = float(m[1])
            else:
                dev["copy_api_gbps"] = float(m[1])  # older fp8bench: the API copy was the baseline
        elif m := re.search(r"buffer copy \(API\)\s+([\d.]+)", line):
            dev["copy_api_gbps"] = float(m[1])
        elif m := re.search(r"matrix peak \(fp16\)\s+([\d.]+)", line):
            dev["peak_tflops"] = float(m[1])
        elif m := re.search(r"fp32 SGEMM (\d+)\^3\s+([\d.]+)", line):
            dev["sgemm_size"], dev["sgemm_tflops"] = int(m[1]), float(m[2])
        elif m := LINE.match(line):
            dev["results"].append({"config": m[1], "path": m[2], "m": int(m[3]), "n": int(m[4]), "k": int(m[5]),
                                   "status": "ok", "us": float(m[6]), "gbps": float(m[7]), "tflops": float(m[8])})
        elif "WRONG RESULT" in line and (m := re.search(r"(vk_\S+) (\S+) M=(\d+) N=(\d+) K=(\d+)", line)):
            dev["results"].append({"config": m[2], "path": m[1], "m": int(m[3]), "n": int(m[4]), "k": int(m[5]),
                                   "status": "wrong"})
    return dev


def pct(x):
    return f"{100 * x:.1f}%"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    text = open(sys.argv[1]).read()
    want = sys.argv[2] if len(sys.argv) > 2 else ""
    if text.lstrip().startswith("{"):
        devices = [d for d in json.loads(text)["devices"] if want in d.get("name", "")]
    else:
        devices = [from_log(text)]
    for d in devices:
        copy, peak, sgemm = d["copy_gbps"], d["peak_tflops"], d["sgemm_tflops"]
        print(f"**{d.get('name', '?')}**, driver {d.get('driver', '?')}, {d.get('backend', 'vulkan')} backend.\n")
        print("| ceiling (same run) | value |\n|---|---|")
        if d.get("copy_kernel_gbps"):
            print(f"| copy bandwidth, streaming copy kernel (read + write): the baseline | {d['copy_kernel_gbps']:.1f} GB/s |")
        if d.get("copy_api_gbps"):
            print(f"| copy bandwidth, vkCmdCopyBuffer (fp8_buffer_copy) | {d['copy_api_gbps']:.1f} GB/s |")
        print(f"| matrix peak, fp16 cooperative matrices in registers | {peak:.1f} TFLOP/s |")
        print(f"| fp32 SGEMM {d.get('sgemm_size', 0)}^3 (tiled kernel) | {sgemm:.2f} TFLOP/s |\n")
        shapes = sorted({(r["n"], r["k"]) for r in d["results"]}, key=lambda s: (s[0] * s[1], s))
        misses = []
        for n, k in shapes:
            print(f"N={n} K={k}\n")
            print("| config | M | path | us | GB/s | TFLOP/s | of copy | of peak | x SGEMM |\n|---|---|---|---|---|---|---|---|---|")
            rows = [r for r in d["results"] if (r["n"], r["k"]) == (n, k)]
            rows.sort(key=lambda r: (r["config"], r["m"], PATHS.index(r["path"]) if r["path"] in PATHS else 9))
            for r in rows:
                if r["status"] != "ok":
                    print(f"| {r['config']} | {r['m']} | {r['path']} | {r['status']} | | | | | |")
                    continue
                gb, tf = r["gbps"], r["tflops"]
                cells = [r["config"], str(r["m"]), r["path"], f"{r['us']:.1f}", f"{gb:.0f}", f"{tf:.2f}",
                         pct(gb / copy) if copy else "-", pct(tf / peak) if peak else "-",
                         f"{tf / sgemm:.2f}" if sgemm else "-"]
                print("| " + " | ".join(cells) + " |")
                if r["path"] == "vk_gemv" and r["m"] == 1 and copy and gb / copy < GEMV_TARGET:
                    misses.append(f"GEMV {r['config']} M=1 N={n} K={k}: {pct(gb / copy)} of copy "
                                  f"(target {pct(GEMV_TARGET)}; {gb:.0f} of {GEMV_TARGET * copy:.0f} GB/s)")
                if "coopmat" in r["path"] and r["m"] >= 2048 and peak and (tf / peak < PEAK_TARGET or tf < SGEMM_TARGET * sgemm):
                    misses.append(f"{r['path']} {r['config']} M={r['m']} N={n} K={k}: {pct(tf / peak)} of peak, "
                                  f"x{tf / sgemm:.2f} SGEMM (targets {pct(PEAK_TARGET)} = {PEAK_TARGET * peak:.0f} TFLOP/s "
                                  f"and x{SGEMM_TARGET:.0f})")
            print()
        print("Targets missed in this run:\n")
        for m in misses or ["none"]:
            print(f"- {m}")
        print()


if __name__ == "__main__":
    main()
