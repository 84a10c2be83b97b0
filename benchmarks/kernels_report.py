#!/usr/bin/env python3
"""Markdown tables of a bench_kernels run (docs/PERFORMANCE.md, section Kernels), from its JSON output:

    build/k-rel/benchmarks/bench_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \\
        --benchmark_out=kernels.json --benchmark_out_format=json
    python3 benchmarks/kernels_report.py kernels.json

Medians of the repetitions. Each kernel's GB/s counts every stream read and written; its ratio is against the
limit the issue sets for it, measured in the same run: memcpy (two streams) for one-in-one-out kernels,
copy3 (two read, one written) for fake_quant_backward and lsq_backward.
"""
import json
import sys

SIZES = ["16KiB", "256KiB", "4MiB", "256MiB"]
KERNELS = [  # name, baseline, goal ratio
    ("fake_quant", "memcpy", 0.90),
    ("fake_quant_per_channel", "memcpy", 0.85),
    ("fake_quant_per_group", "memcpy", 0.85),
    ("fake_quant_backward", "copy3", 0.80),
    ("lsq_backward", "copy3", 0.80),
    ("quantize_int8", "memcpy", 0.80),
    ("dequantize_int8", "memcpy", 0.80),
    ("pack_bits_4", "memcpy", 0.80),
    ("pack_bits_3", "memcpy", 0.80),
    ("unpack_bits_3", "memcpy", None),
    ("minmax", "memcpy", None),
    ("fake_quant_streaming_stores", "memcpy", None),
    ("fake_quant_regular_stores", "memcpy", None),
]


def load(path):
    with open(path) as f:
        data = json.load(f)
    med = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            med[b["run_name"]] = b["bytes_per_second"] / 1e9
    return data["context"], med


def main(path):
    context, med = load(path)
    isas = sorted({name.split("/")[1] for name in med if name.startswith("fake_quant/")},
                  key=["scalar", "neon", "avx2", "avx512"].index)
    print(f"Machine: {context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz; "
          f"mixq_active_isa={context.get('mixq_active_isa')}; library build {context.get('library_build_type')}.")
    print()
    print("Limits and peers, GB/s (median):")
    print()
    print("| baseline | " + " | ".join(SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    for base in ["memcpy", "copy3", "eigen_naive_fake_quant", "scalar_nearbyint_fake_quant"]:
        print(f"| {base} | " + " | ".join(f"{med.get(f'{base}/{s}', float('nan')):.1f}" for s in SIZES) + " |")
    print()
    for isa in isas:
        print(f"Kernels on {isa}, GB/s (median) and ratio to the baseline; goal in brackets:")
        print()
        print("| kernel | baseline | " + " | ".join(SIZES) + " |")
        print("|---|---|" + "---:|" * len(SIZES))
        for name, base, goal in KERNELS:
            cells = []
            for s in SIZES:
                v = med.get(f"{name}/{isa}/{s}")
                b = med.get(f"{base}/{s}")
                if v is None or b is None:
                    cells.append("-")
                    continue
                mark = "" if goal is None or isa == "scalar" else (" ok" if v / b >= goal else " **below**")
                cells.append(f"{v:.1f} ({100 * v / b:.0f}%{mark})")
            g = f" [{goal:.0%}]" if goal else ""
            print(f"| {name} | {base}{g} | " + " | ".join(cells) + " |")
        print()
    for isa in isas:
        if isa == "scalar":
            continue
        for s in SIZES:
            fq = med.get(f"fake_quant/{isa}/{s}")
            nb = med.get(f"scalar_nearbyint_fake_quant/{s}")
            ei = med.get(f"eigen_naive_fake_quant/{s}")
            if fq and nb and ei:
                print(f"- fake_quant on {isa} at {s}: {fq / nb:.1f}x the scalar nearbyint loop, "
                      f"{fq / ei:.1f}x the naive Eigen expression")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "kernels.json")
