#!/usr/bin/env python3
"""Markdown tables from bench_gemm's JSON (--benchmark_out): GFLOP/s per shape and engine (medians), the share of
the machine's FP32 FMA peak measured in the same run (peak/fma_avx512, or peak/fma_avx2 where AVX-512 is absent),
and per network the time-weighted totals: the seconds of one batch's GEMMs (every distinct shape once) per engine.

    python3 benchmarks/gemm_report.py docs/results/bench_gemm_COMMIT.json
"""
import argparse
import collections
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="bench_gemm --benchmark_out file")
    args = ap.parse_args()
    try:
        with open(args.json) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"gemm_report: cannot read {args.json}: {e}")
    rows = collections.OrderedDict()
    engines = []
    peak = {}
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name", "median") != "median" or b.get("error_occurred"):
            continue
        name = b["run_name"].replace("/process_time", "")
        if name.startswith("peak/"):
            peak[name.split("/")[1]] = b["GFLOPs"]
            continue
        net, layer, pas, engine = name.split("/")[:4]
        if engine not in engines:
            engines.append(engine)
        key = (net, layer, pas)
        rows.setdefault(key, {"M": int(b["M"]), "N": int(b["N"]), "K": int(b["K"])})[engine] = (b["GFLOPs"], b["cpu_time"])
    ref = peak.get("fma_avx512") or peak.get("fma_avx2")
    if not rows or not ref:
        sys.exit("gemm_report: no GEMM rows or no peak/fma_* benchmark in the file")
    print(f"Peak (same run): AVX-512 FMA {peak.get('fma_avx512', float('nan')):.1f} GFLOP/s, "
          f"AVX2 FMA {peak.get('fma_avx2', float('nan')):.1f} GFLOP/s; percentages are of {ref:.1f}.\n")
    print("| shape (net/layer/pass) | M x N x K | " + " | ".join(engines) + " | best |")
    print("|---|---|" + "---|" * len(engines) + "---|")
    totals = collections.defaultdict(lambda: collections.defaultdict(float))
    for (net, layer, pas), r in rows.items():
        cells = []
        best = max((e for e in engines if e in r), key=lambda e: r[e][0])
        for e in engines:
            if e not in r:
                cells.append("-")
                continue
            g, t = r[e]
            totals[net][e] += t
            cells.append(f"{g:.0f} ({100 * g / ref:.0f} %)")
        print(f"| {net}/{layer}/{pas} | {r['M']} x {r['N']} x {r['K']} | " + " | ".join(cells) + f" | {best} |")
    print("\nOne batch of every distinct GEMM shape, CPU time (µs), and its ratio to eigen_native:\n")
    print("| network | " + " | ".join(engines) + " |")
    print("|---|" + "---|" * len(engines))
    for net, t in totals.items():
        base = t.get("eigen_native") or t.get("eigen_generic")
        print(f"| {net} | " + " | ".join(f"{t[e]:.0f} ({t[e] / base:.2f}x)" for e in engines) + " |")


if __name__ == "__main__":
    main()
