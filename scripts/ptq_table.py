#!/usr/bin/python3
"""Markdown tables of ptq_fashion_mnist --json runs (one file per seed): accuracy mean +- sample std per network,
bit setting and method; the oscillation measures of the per-unit losses; the correlation of the loss jumps with the
capacity differentials; the merges chosen; the time per run.

    /usr/bin/python3 scripts/ptq_table.py docs/results/ptq_quick_s1.json docs/results/ptq_quick_s2.json ...
"""
import json
import math
import statistics
import sys

METHODS = ["rtn", "adaround", "brecq", "mrecg_dd_brecq", "mrecg_df_brecq", "random_brecq",
           "qdrop", "mrecg_dd_qdrop", "mrecg_df_qdrop", "random_qdrop"]


def mean_std(v):
    if not v:
        return float("nan"), float("nan")
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def fmt(v, scale=100.0, digits=2):
    m, s = mean_std([x * scale for x in v])
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0


def main(files):
    runs = [json.load(open(f)) for f in files]
    seeds = [r["seed"] for r in runs]
    first = runs[0]
    walls = ", ".join("%.0f" % r["wall_seconds"] for r in runs)
    steps = ", ".join(f"{n['net']} {n.get('steps', first.get('steps'))}" for n in first["nets"])
    print(f"seeds {seeds}; mode {first['mode']}, steps per unit {steps}, batch {first['batch']}, "
          f"{first['calibration_images']} calibration images, lr scale 20000 / steps, "
          f"{first['test_images']} test images; wall {walls} s\n")
    nets = [n["net"] for n in first["nets"]]
    for net in nets:
        per = [next(n for n in r["nets"] if n["net"] == net) for r in runs]
        settings = [s["bits"] for s in per[0]["settings"]]
        print(f"### {net}: float {fmt([p['float_accuracy'] for p in per])} %, k = {per[0]['k']}\n")
        print("| method | " + " | ".join(settings) + " |")
        print("|---|" + "---|" * len(settings))
        for m in METHODS:
            cells = []
            for b in settings:
                v = []
                for p in per:
                    s = next(s for s in p["settings"] if s["bits"] == b)
                    r = next((r for r in s["runs"] if r["method"] == m), None)
                    if r is not None:
                        v.append(r["accuracy"])
                cells.append(fmt(v))
            if any(c != "-" for c in cells):
                print(f"| {m} | " + " | ".join(cells) + " |")
        print()
        # oscillation and time
        print("| method | bits | sign changes | total drop | max loss | loss at head | seconds |")
        print("|---|---|---|---|---|---|---|")
        for b in settings:
            for m in METHODS:
                rs = []
                for p in per:
                    s = next(s for s in p["settings"] if s["bits"] == b)
                    r = next((r for r in s["runs"] if r["method"] == m), None)
                    if r is not None:
                        rs.append(r)
                if not rs:
                    continue
                o = [r["oscillation"] for r in rs]
                print(f"| {m} | {b} | {fmt([x['sign_changes'] for x in o], 1, 1)} | "
                      f"{fmt([x['total_drop'] for x in o], 1, 2)} | {fmt([x['max_loss'] for x in o], 1, 2)} | "
                      f"{fmt([r['unit_losses'][-1] for r in rs], 1, 3)} | {fmt([r['seconds'] for r in rs], 1, 1)} |")
        print()
        # paired differences (same seed), in accuracy points, for the claims
        pairs = [("adaround", "rtn"), ("brecq", "adaround"), ("qdrop", "brecq"),
                 ("mrecg_dd_brecq", "brecq"), ("mrecg_df_brecq", "brecq"), ("random_brecq", "brecq"),
                 ("mrecg_dd_brecq", "random_brecq"), ("mrecg_df_brecq", "random_brecq"),
                 ("mrecg_dd_qdrop", "qdrop"), ("mrecg_df_qdrop", "qdrop"), ("random_qdrop", "qdrop"),
                 ("mrecg_dd_qdrop", "random_qdrop"), ("mrecg_df_qdrop", "random_qdrop")]
        print("| paired difference (points) | " + " | ".join(settings) + " |")
        print("|---|" + "---|" * len(settings))
        for a_, b_ in pairs:
            cells = []
            for bits in settings:
                d = []
                for p in per:
                    s = next(s for s in p["settings"] if s["bits"] == bits)
                    ra = next((r for r in s["runs"] if r["method"] == a_), None)
                    rb = next((r for r in s["runs"] if r["method"] == b_), None)
                    if ra is not None and rb is not None:
                        d.append(ra["accuracy"] - rb["accuracy"])
                cells.append(fmt(d, 100.0, 2))
            print(f"| {a_} - {b_} | " + " | ".join(cells) + " |")
        print()
        # oscillation of the relative losses (loss / energy of each unit's float output)
        print("| relative loss oscillation: sign changes / total drop | " + " | ".join(settings) + " |")
        print("|---|" + "---|" * len(settings))
        for m in ["rtn", "brecq", "mrecg_dd_brecq", "mrecg_df_brecq", "random_brecq", "qdrop", "mrecg_dd_qdrop",
                  "mrecg_df_qdrop", "random_qdrop"]:
            cells = []
            for bits in settings:
                sc, td = [], []
                for p in per:
                    s = next(s for s in p["settings"] if s["bits"] == bits)
                    r = next((r for r in s["runs"] if r["method"] == m), None)
                    if r is not None and "oscillation_relative" in r:
                        sc.append(r["oscillation_relative"]["sign_changes"])
                        td.append(r["oscillation_relative"]["total_drop"])
                cells.append(f"{fmt(sc, 1, 1)} / {fmt(td, 1, 3)}")
            print(f"| {m} | " + " | ".join(cells) + " |")
        print()
        # correlation of |dL| of BRECQ / QDrop with the differentials, and the merges
        print("| bits | corr(abs dL BRECQ, D_DD) | corr(abs dL BRECQ, D_DF) | corr(abs dL QDrop, D_DD) | "
              "corr(abs dL QDrop, D_DF) | DD merges | DF merges | random merges (per seed) |")
        print("|---|---|---|---|---|---|---|---|")
        for b in settings:
            c = {("brecq", "dd"): [], ("brecq", "df"): [], ("qdrop", "dd"): [], ("qdrop", "df"): []}
            groups = {"dd": set(), "df": set(), "random": []}
            for p in per:
                s = next(s for s in p["settings"] if s["bits"] == b)
                groups["dd"].add(s["groups_dd"])
                groups["df"].add(s["groups_df"])
                groups["random"].append(s["groups_random"])
                for host in ("brecq", "qdrop"):
                    r = next((r for r in s["runs"] if r["method"] == host), None)
                    if r is None:
                        continue
                    L = r["unit_losses"]
                    dl = [abs(L[i + 1] - L[i]) for i in range(len(L) - 1)]
                    for kind in ("dd", "df"):
                        c[(host, kind)].append(pearson(dl, s["differentials_" + kind]))
            cells = [fmt(c[k], 1, 2) for k in (("brecq", "dd"), ("brecq", "df"), ("qdrop", "dd"), ("qdrop", "df"))]
            print(f"| {b} | " + " | ".join(cells) + f" | {'; '.join(sorted(groups['dd']))} | "
                  f"{'; '.join(sorted(groups['df']))} | {'; '.join(groups['random'])} |")
        print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
