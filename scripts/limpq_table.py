#!/usr/bin/env python3
"""Merges the JSON reports of examples/limpq_fashion_mnist (one or more files, e.g. one per seed run in separate
processes) into one Markdown table: per level and method, accuracy mean +- sample std over all seeds, the
per-seed accuracies, BitOps, size, average weight bits, search time.

    python3 scripts/limpq_table.py full_s1.json full_s2.json full_s3.json

Only the standard library is used. Files must come from the same mode and settings (checked).
"""
import json
import statistics
import sys


def load(paths):
    reports = [json.load(open(p)) for p in paths]
    if not reports:
        sys.exit("usage: limpq_table.py REPORT.json [REPORT.json ...]")
    base = reports[0]
    keep = ("alpha", "candidate_bits", "finetune_epochs", "finetune_train_images", "float_epochs",
            "float_train_images", "indicator_batch", "indicator_epochs", "indicator_train_images", "test_images")
    for p, r in zip(paths, reports):
        if r["mode"] != base["mode"] or any(r["settings"].get(k) != base["settings"].get(k) for k in keep):
            sys.exit(f"limpq_table.py: {p} has different mode or settings than {paths[0]}")
        if [lv["level"] for lv in r["levels"]] != [lv["level"] for lv in base["levels"]]:
            sys.exit(f"limpq_table.py: {p} has different levels than {paths[0]}")
    return reports


ORDER = ("uniform", "limpq", "hessian", "random")


def methods(level):
    return sorted(level["methods"], key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


def mean_std(v):
    return (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)


def main():
    paths = sys.argv[1:]
    reports = load(paths)
    seeds = [s for r in reports for s in r["seeds"]]
    floats = [a for r in reports for a in r["float_accuracy"]["values"]]
    print(f"mode {reports[0]['mode']}, model {reports[0]['model']}, seeds {seeds}, "
          f"float accuracy {' / '.join(f'{100 * a:.2f}' for a in floats)}")
    moved = [c for r in reports for c in r["settings"].get("indicator_relative_change", [])]
    if moved:
        print("indicators moved (mean |S/S_init - 1|): " + " / ".join(f"{100 * c:.1f}%" for c in moved))
    print()
    n = len(seeds)
    print(f"| level | method | accuracy, mean ± std ({n} seeds) | per seed ({' / '.join(map(str, seeds))}) "
          "| BitOps (M) | size (KiB) | avg weight bits | search (µs) |")
    print("|---|---|---|---|---|---|---|---|")
    for li, level in enumerate(reports[0]["levels"]):
        for m in methods(level):
            runs = [r["levels"][li]["methods"][m] for r in reports]
            acc = [100 * a for run in runs for a in run["accuracies"]]
            same = [s for run in runs for s in run.get("same_as_uniform", [])]
            ops = [b for run in runs for b in run["bit_operations_per_seed"]]
            size = [b for run in runs for b in run["size_bits_per_seed"]]
            us = [u for run in runs for u in run["search_us_per_seed"]]
            mu, sd = mean_std(acc)
            per = " / ".join(f"{a:.2f}" for a in acc)
            if same and all(same):
                per += " (= uniform)"
            avg_w = statistics.fmean(run["average_weight_bits"] for run in runs)
            search = "—" if m == "uniform" else f"{statistics.fmean(us):.0f}"
            print(f"| {level['level']} | {m} | {mu:.2f} ± {sd:.2f} | {per} | {statistics.fmean(ops) / 1e6:.2f} "
                  f"| {statistics.fmean(size) / 8192:.2f} | {avg_w:.2f} | {search} |")
    print()
    print("Policies (w/a per searchable layer) per seed:")
    for li, level in enumerate(reports[0]["levels"]):
        for m in methods(level):
            if m == "uniform":
                continue
            pols = []
            for r in reports:
                for pol in r["levels"][li]["methods"][m]["policies"]:
                    pols.append(" ".join(v[1:].replace("a", "/") for v in pol.values()))
            print(f"- {level['level']} {m}: " + " | ".join(pols))


if __name__ == "__main__":
    main()
