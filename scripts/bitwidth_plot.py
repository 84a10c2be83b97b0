#!/usr/bin/env python3
"""Accuracy against model size for bitwidth_study (Chin et al. 2020): one curve per weight bit-width (uniform,
widened to each target), mixed-precision arms at width 1 as markers, the zero-loss MPQ point, the MobileNet
depthwise-at-8-bit ablation, the float network as a reference line; one panel per network.

    python3 scripts/bitwidth_plot.py docs/results/bitwidth_quick.json [more.json ...] --out docs/bitwidth_study.png

Several JSON files are merged (their runs pooled, e.g. seeds from separate runs). Also prints, per network and
target, a Markdown table (mean +- sample std over seeds, n) and the best uniform arm against the best MPQ arm
with the two-pooled-standard-deviation tie rule.
"""
import argparse
import json
import math
from collections import defaultdict


def mean_sd(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, sd


def pooled_sd(a, b):
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    _, sa = mean_sd(a)
    _, sb = mean_sd(b)
    return math.sqrt(((len(a) - 1) * sa ** 2 + (len(b) - 1) * sb ** 2) / (len(a) + len(b) - 2))


def verdict(a, b):
    """'a' better, 'b' better or tie by the 2-pooled-sd rule (n/a with one seed each)."""
    ma, _ = mean_sd(a)
    mb, _ = mean_sd(b)
    sp = pooled_sd(a, b)
    if math.isnan(sp):
        return f"{100 * (ma - mb):+.2f} points (1 seed: no spread, cannot rank)"
    d = ma - mb
    if abs(d) < 2 * sp:
        return f"{100 * d:+.2f} points, tie (|d| < 2 pooled sd = {200 * sp:.2f})"
    return f"{100 * d:+.2f} points, beyond 2 pooled sd ({200 * sp:.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out", default="docs/bitwidth_study.png")
    ap.add_argument("--title", default="")
    args = ap.parse_args()

    runs, modes = [], set()
    for path in args.json:
        with open(path) as f:
            j = json.load(f)
        modes.add(j.get("mode", "?"))
        runs += [r for r in j["runs"] if "accuracy" in r]

    cells = defaultdict(list)  # (net, target, arm) -> runs
    for r in runs:
        cells[(r["net"], r["target"], r["arm"])].append(r)
    nets = [n for n in ("resnet", "mobilenet") if any(k[0] == n for k in cells)]

    # Tables.
    for net in nets:
        print(f"\n### {net}\n")
        print("| target | arm | multiplier | widths | size (KiB) | accuracy (%) | n |")
        print("|---|---|---|---|---|---|---|")
        for (n, t, arm), rs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if n != net:
                continue
            m, sd = mean_sd([r["accuracy"] for r in rs])
            size = sum(r["size_bits"] for r in rs) / len(rs) / 8192
            widths = "/".join(str(w) for w in rs[0].get("widths", []))
            sd_txt = "" if math.isnan(sd) else f" ± {100 * sd:.2f}"
            print(f"| {t} | {arm} | {rs[0].get('multiplier', 1.0):.3f} | {widths} | {size:.2f} | "
                  f"{100 * m:.2f}{sd_txt} | {len(rs)} |")
        targets = sorted({k[1] for k in cells if k[0] == net and k[1].startswith("W")} | {"zero_loss"})
        for t in targets:
            uni = {k[2]: [r["accuracy"] for r in v] for k, v in cells.items()
                   if k[0] == net and k[1] == t and v[0]["kind"] == "uniform"}
            mpq = {k[2]: [r["accuracy"] for r in v] for k, v in cells.items()
                   if k[0] == net and (k[1] == t and v[0]["kind"] == "mpq" or
                                       (t == "zero_loss" and v[0]["kind"] == "zero_loss"))}
            if not uni or not mpq:
                continue
            bu = max(uni, key=lambda a: mean_sd(uni[a])[0])
            bm = max(mpq, key=lambda a: mean_sd(mpq[a])[0])
            print(f"\n{net} {t}: best uniform {bu} vs best MPQ {bm}: {verdict(uni[bu], mpq[bm])}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(nets), figsize=(6.4 * len(nets), 4.8), squeeze=False)
    colours = {1: "tab:red", 2: "tab:orange", 3: "tab:olive", 4: "tab:green", 8: "tab:blue"}
    for ax, net in zip(axes[0], nets):
        by_bits = defaultdict(list)
        for (n, t, arm), rs in cells.items():
            if n == net and rs[0]["kind"] == "uniform":
                by_bits[rs[0]["weight_bits"]].append(rs)
        for b in sorted(by_bits):
            pts = sorted(((sum(r["size_bits"] for r in rs) / len(rs) / 8192,) + mean_sd([r["accuracy"] for r in rs])
                          for rs in by_bits[b]))
            xs = [p[0] for p in pts]
            ys = [100 * p[1] for p in pts]
            es = [0 if math.isnan(p[2]) else 100 * p[2] for p in pts]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, color=colours.get(b), label=f"W{b} (widened)")
        style = {"limpq": ("^", "LIMPQ-style MPQ, width 1"), "hessian": ("v", "Hessian MPQ, width 1"),
                 "zero-loss MPQ": ("*", "zero-loss MPQ, width 1")}
        for arm, (mk, label) in style.items():
            pts = [rs for (n, t, a), rs in cells.items() if n == net and a == arm]
            first = True
            for rs in pts:
                m, sd = mean_sd([r["accuracy"] for r in rs])
                x = sum(r["size_bits"] for r in rs) / len(rs) / 8192
                ax.errorbar([x], [100 * m], yerr=[0 if math.isnan(sd) else 100 * sd], marker=mk, markersize=10,
                            color="black", linestyle="none", capsize=3, label=label if first else None)
                first = False
        dw = [rs for (n, t, a), rs in cells.items() if n == net and rs[0]["kind"] == "dw8"]
        for rs in dw:
            m, _ = mean_sd([r["accuracy"] for r in rs])
            x = sum(r["size_bits"] for r in rs) / len(rs) / 8192
            ax.plot([x], [100 * m], marker="s", markerfacecolor="none", markersize=9,
                    color=colours.get(rs[0]["weight_bits"], "grey"), linestyle="none",
                    label=f"W{rs[0]['weight_bits']}, depthwise at 8 bits")
        ref = [r["accuracy"] for (n, t, a), rs in cells.items() if n == net and a == "float" for r in rs]
        if ref:
            m, _ = mean_sd(ref)
            ax.axhline(100 * m, color="grey", linestyle="--", label=f"float, width 1 ({100 * m:.2f} %)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        for t in sorted({r["target_size_bits"] for (n, tt, a), rs in cells.items() if n == net and tt.startswith("W")
                         for r in rs}):
            ax.axvline(t / 8192, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("model size (KiB of weights; stem and FC at 8 bits; dotted: targets)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{net} ({', '.join(sorted(modes))} run{'s' if len(args.json) > 1 else ''})")
        ax.grid(True, which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, l in zip(handles, labels):
            seen.setdefault(l, h)
        ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best", framealpha=0.8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
