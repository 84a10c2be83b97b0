#!/usr/bin/python3
"""Retraining-free Pareto frontier of examples/oneshot_fashion_mnist (one JSON per seed) and the tables of
docs/RESULTS.md.

  /usr/bin/python3 scripts/oneshot_plot.py docs/results/oneshot_quick_s{1,2,3}.json -o docs/oneshot_frontier.png
  /usr/bin/python3 scripts/oneshot_plot.py --table docs/results/oneshot_quick_s*.json      # Markdown tables

The plot: test accuracy (mean over the seeds) against BitOps, one curve per search method of the frontier, the
uniform policies (one-shot) and the retrained policies as markers. Ablation runs (--no-search) are ignored by the
plot; --table also prints their uniform accuracies, grouped by the run's settings.
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            j = json.load(f)
        j["_path"] = p
        runs.append(j)
    return runs


def mean_std(v):
    v = [x for x in v if x is not None and x >= 0]
    if not v:
        return None, None
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def fmt(v, scale=100.0):
    m, s = mean_std(v)
    if m is None:
        return "-"
    return f"{scale * m:.2f} ± {scale * s:.2f}"


def arm(run):
    s = run["settings"]
    name = []
    name.append(f"bits {min(s['candidate_bits'])}..6")
    if min(s["candidate_bits"]) > 2 and s["scheduler"]:  # only 2 bits are removable: the scheduler never acts
        name.append("scheduler on (no 2 bits to freeze)")
        name.append("IDM " + ("on" if s["idm_weight"] > 0 else "off"))
        return ", ".join(name)
    name.append("scheduler " + ("off" if not s["scheduler"] else "random" if s["random_freeze"] else "on"))
    name.append("IDM " + ("on" if s["idm_weight"] > 0 else "off"))
    if not s.get("split_candidates", True):
        name.append("coupled")
    return ", ".join(name)


def table(runs):
    full = [r for r in runs if r["searches"]]
    out = []
    if full:
        out.append(f"Searched and uniform policies ({len(full)} seeds: {', '.join(str(r['seed']) for r in full)}), "
                   "test accuracy % (mean ± std):\n")
        out.append("| level | method | BitOps (M) | one-shot | retrained | one-shot − retrained | one-shot − uniform one-shot |")
        out.append("|---|---|---|---|---|---|---|")
        for level in ("W3A3", "W4A4"):
            rows = defaultdict(lambda: {"os": [], "rt": [], "ops": [], "diff": [], "vsu": []})
            for r in full:
                uni_os = [u["oneshot_accuracy"] for u in r["uniform"] if u["level"] == level]
                for u in r["uniform"]:
                    if u["level"] == level:
                        d = rows["uniform"]
                        d["os"].append(u["oneshot_accuracy"])
                        d["rt"].append(u["retrained_accuracy"])
                        if u["retrained_accuracy"] >= 0:
                            d["diff"].append(u["oneshot_accuracy"] - u["retrained_accuracy"] + 1.0)
                seen = set()
                for s in r["searches"]:
                    if s["level"] != level:
                        continue
                    key = s["method"]
                    d = rows[key]
                    d["os"].append(s["oneshot_accuracy"])
                    d["ops"].append(s["bit_operations"] / 1e6)
                    if uni_os:
                        d["vsu"].append(s["oneshot_accuracy"] - uni_os[0] + 1.0)
                    if key not in seen and s["retrained_accuracy"] >= 0:
                        d["rt"].append(s["retrained_accuracy"])
                        d["diff"].append(s["oneshot_accuracy"] - s["retrained_accuracy"] + 1.0)
                    seen.add(key)
            for m in ("uniform", "greedy", "exact", "limpq", "random"):
                if m not in rows:
                    continue
                d = rows[m]
                ops = f"{statistics.mean(d['ops']):.1f}" if d["ops"] else "-"
                dm, ds = mean_std(d["diff"])
                diff = "-" if dm is None else f"{100 * (dm - 1.0):+.2f} ± {100 * ds:.2f}"
                um, us = mean_std(d["vsu"])
                vsu = "-" if um is None else f"{100 * (um - 1.0):+.2f} ± {100 * us:.2f}"
                out.append(f"| {level} | {m} | {ops} | {fmt(d['os'])} | {fmt(d['rt'])} | {diff} | {vsu} |")
        taus = [r["kendall_tau"] for r in full if r.get("kendall_tau") is not None]
        if taus:
            out.append(f"\nKendall tau (one-shot vs retrained) per seed: {', '.join(f'{t:.3f}' for t in taus)}; "
                       f"mean {statistics.mean(taus):.3f}")
    groups = defaultdict(list)
    for r in runs:
        groups[arm(r)].append(r)
    out.append("\nUniform subnets, one-shot accuracy % (mean ± std over seeds):\n")
    levels = ["W2A2", "W3A3", "W4A4", "W5A5", "W6A6"]
    out.append("| arm | seeds | " + " | ".join(levels) + " |")
    out.append("|---|---|" + "---|" * len(levels))
    for name, rs in sorted(groups.items()):
        cells = []
        for lv in levels:
            cells.append(fmt([u["oneshot_accuracy"] for r in rs for u in r["uniform"] if u["level"] == lv]))
        out.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    main_arm = "bits 2..6, scheduler on, IDM on"
    base = {r["seed"]: {u["level"]: u["oneshot_accuracy"] for u in r["uniform"]} for r in groups.get(main_arm, [])}
    out.append(f"\nEach arm minus the main arm ({main_arm}) of the same seed (same float model), points, "
               "per seed then mean ± std:\n")
    out.append("| arm | W3A3 | W4A4 |")
    out.append("|---|---|---|")
    for name, rs in sorted(groups.items()):
        if name == main_arm:
            continue
        cells = []
        for lv in ("W3A3", "W4A4"):
            d = [(r["seed"], u["oneshot_accuracy"] - base[r["seed"]][lv]) for r in rs for u in r["uniform"]
                 if u["level"] == lv and r["seed"] in base and lv in base[r["seed"]]]
            d.sort()
            if not d:
                cells.append("-")
                continue
            vals = [100 * x for _, x in d]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(", ".join(f"s{k} {v:+.2f}" for (k, _), v in zip(d, vals)) + f": {statistics.mean(vals):+.2f} ± {sd:.2f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(out))


def plot(runs, output):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = [r for r in runs if r["frontier"]]
    if not full:
        sys.exit("oneshot_plot.py: no run with a frontier")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = {"exact": ("C0", "-"), "limpq": ("C1", "--"), "greedy": ("C2", ":")}
    methods = sorted({f["method"] for r in full for f in r["frontier"]})
    for m in methods:
        pts = defaultdict(lambda: ([], []))
        for r in full:
            k = 0
            for f in r["frontier"]:
                if f["method"] == m:
                    pts[k][0].append(f["bit_operations"] / 1e6)
                    pts[k][1].append(100 * f["accuracy"])
                    k += 1
        xs = [statistics.mean(pts[k][0]) for k in sorted(pts)]
        ys = [statistics.mean(pts[k][1]) for k in sorted(pts)]
        c, ls = styles.get(m, ("C3", "-"))
        ax.plot(xs, ys, ls, color=c, marker=".", label=f"{m} search, one-shot (no retraining)")
    uni = defaultdict(lambda: ([], [], []))
    for r in full:
        for u in r["uniform"]:
            b = int(u["level"][1])
            uni[b][0].append(u["oneshot_accuracy"] * 100)
            if u["retrained_accuracy"] >= 0:
                uni[b][1].append(u["retrained_accuracy"] * 100)
    ref = {2: 44.20, 3: 90.36, 4: 154.98, 5: 238.08, 6: 339.63}  # M BitOps of the small ResNet (stem, FC at 8x8)
    bs = sorted(uni)
    ax.plot([ref[b] for b in bs], [statistics.mean(uni[b][0]) for b in bs], "ks", label="uniform WbAb, one-shot")
    rb = [b for b in bs if uni[b][1]]
    if rb:
        ax.plot([ref[b] for b in rb], [statistics.mean(uni[b][1]) for b in rb], "kx", markersize=9,
                label="uniform, retrained (LSQ QAT)")
    rt = defaultdict(lambda: ([], []))
    for r in full:
        for s in r["searches"]:
            if s["retrained_accuracy"] >= 0 and s["method"] != "random":
                rt[s["method"]][0].append(s["bit_operations"] / 1e6)
                rt[s["method"]][1].append(100 * s["retrained_accuracy"])
    for m, (xs, ys) in sorted(rt.items()):
        c, _ = styles.get(m, ("C3", "-"))
        ax.scatter(xs, ys, marker="x", color=c, alpha=0.7, label=f"{m} policy, retrained")
    if "greedy" not in methods:  # the greedy search at the two levels, one-shot
        gx = [s["bit_operations"] / 1e6 for r in full for s in r["searches"] if s["method"] == "greedy"]
        gy = [100 * s["oneshot_accuracy"] for r in full for s in r["searches"] if s["method"] == "greedy"]
        if gx:
            ax.scatter(gx, gy, marker="o", facecolors="none", edgecolors="C2", label="greedy policy, one-shot")
    ax.set_xscale("log")
    ax.set_xlabel("BitOps per image (M), log scale")
    ax.set_ylabel("test accuracy (%)")
    mode = full[0]["settings"]["mode"]
    seeds = "seed" if len(full) == 1 else "seeds"
    ax.set_title(f"One-shot weight coupling, small ResNet on Fashion-MNIST ({mode}, {len(full)} {seeds})")
    ax.text(0.01, 0.99, "curves: mean over seeds per budget, x = BitOps the policy uses", transform=ax.transAxes,
            fontsize=7, va="top")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(output, dpi=130)
    print(f"wrote {output}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="reports of examples/oneshot_fashion_mnist --json")
    ap.add_argument("-o", "--output", default="docs/oneshot_frontier.png")
    ap.add_argument("--table", action="store_true", help="print the Markdown tables instead of plotting")
    a = ap.parse_args()
    runs = load(a.json)
    if a.table:
        table(runs)
    else:
        plot(runs, a.output)


if __name__ == "__main__":
    main()
