#!/usr/bin/env python3
"""Markdown tables of a bench_kernels run (docs/PERFORMANCE.md, section Kernels), from its JSON output:

    build/k-rel/benchmarks/bench_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \\
        --benchmark_out=kernels.json --benchmark_out_format=json
    python3 benchmarks/kernels_report.py kernels.json

Medians of the repetitions. Each kernel's GB/s counts every stream read and written; its ratio is against the
limit the issue sets for it, measured in the same run: memcpy (two streams) for one-in-one-out kernels,
copy3 (two read, one written) for fake_quant_backward and lsq_backward.

With both AVX2 and AVX-512 in the run, a last table gives AVX-512 over AVX2 per size and each kernel's
vector-ALU bound (--ghz, default 3.2: the clock the bound is converted at) next to its AVX-512 rate at 16 KiB.
"""
import argparse
import json

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


# Vector-ALU bound per kernel on Zen 4, which executes a 512-bit operation as two 256-bit halves: its four
# vector pipes retire two 256-bit operations per cycle on the multiply/FMA pair (incl. pmaddubsw/pmaddwd), two
# on the add pair (add, min/max, round, compare, int<->float conversion), shuffles and packs on two of the four,
# integer logic and masked moves on any. Per step: (bytes read + written, cycles on the limiting pipes, the
# operations counted). Cycles are 256-bit operations over the pipes that can take them.
BOUNDS = {
    "fake_quant": (128, 3.0, "16 floats: round, max, min on the add pair (6 halves / 2 pipes); mul, fma on the other"),
    "fake_quant_per_channel": (128, 3.0, "as fake_quant, plus per-channel parameter set-up"),
    "fake_quant_per_group": (128, 3.0, "as fake_quant, plus per-group parameter set-up"),
    "fake_quant_backward": (192, 3.0, "16 floats: round and two compares on the add pair; mul; mask and, masked move"),
    "lsq_backward": (192, 6.5, "16 floats: round, max, min, two compares, add (add pair, 6 cycles); mul, fnmadd, fma; "
                     "4 masked moves: 26 halves over 4 pipes"),
    "quantize_int8": (320, 12.0, "64 floats: 4 x (max, min, convert) on the add pair; 4 mul; 3 packs, 1 permute, "
                      "2 compares, 2 masked adds"),
    "dequantize_int8": (80, 2.0, "16 codes: sign-extend, convert, mul; the 64-byte store takes 2 cycles"),
    "pack_bits_4": (96, 1.5, "64 codes (AVX2 code): 2 and, 2 maddubs, packus, permute: 6 ops over 4 pipes"),
    "pack_bits_3": (88, 2.75, "64 codes (AVX2 code): 2 and, 2 maddubs, 3 madd, packs, permute, pshufb, extract: "
                    "11 ops over 4 pipes"),
    "minmax": (64, 2.0, "16 floats read: min, max on the add pair"),
}


def load(path):
    with open(path) as f:
        data = json.load(f)
    med = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            med[b["run_name"]] = b["bytes_per_second"] / 1e9
    return data["context"], med


def main(path, ghz):
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
    if "avx2" in isas and "avx512" in isas:
        print()
        print(f"AVX-512 over AVX2 (same run), and the vector-ALU bound at {ghz} GHz against AVX-512 at 16 KiB:")
        print()
        print("| kernel | " + " | ".join(SIZES) + " | bound GB/s | AVX-512 at 16KiB | of bound | operations per step |")
        print("|---|" + "---:|" * len(SIZES) + "---:|---:|---:|---|")
        for name, _, _ in KERNELS:
            ratios = []
            for sz in SIZES:
                a, b = med.get(f"{name}/avx512/{sz}"), med.get(f"{name}/avx2/{sz}")
                ratios.append(f"{a / b:.2f}x" if a and b else "-")
            bound = BOUNDS.get(name)
            v = med.get(f"{name}/avx512/16KiB")
            if bound and v:
                gbs = bound[0] / bound[1] * ghz
                tail = f"{gbs:.0f} | {v:.1f} | {100 * v / gbs:.0f}% | {bound[2]} |"
            else:
                tail = "- | - | - | - |"
            print(f"| {name} | " + " | ".join(ratios) + " | " + tail)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Markdown tables of a bench_kernels JSON run.")
    parser.add_argument("file", nargs="?", default="kernels.json", help="Google Benchmark JSON output")
    parser.add_argument("--ghz", type=float, default=3.2, help="clock for the vector-ALU bounds (default 3.2)")
    args = parser.parse_args()
    main(args.file, args.ghz)
