#!/usr/bin/python3
"""Per-unit reconstruction loss along the network (the oscillation MRECG is about) from ptq_fashion_mnist --json
runs (one file per seed): one panel per network and bit setting, the loss L_rec of every base unit's output after
reconstruction (mean over the seeds, the band = min..max), for RTN, BRECQ, MRECG-DD/DF on BRECQ and QDrop; the
bars under each panel are the data-free and data-dependent capacity differentials of the adjacent pairs.

    /usr/bin/python3 scripts/ptq_plot.py OUT.png docs/results/ptq_quick_s1.json [more seeds ...]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "rtn": ("RTN", "0.6", ":"),
    "brecq": ("BRECQ", "tab:blue", "-"),
    "mrecg_dd_brecq": ("MRECG-DD + BRECQ", "tab:orange", "-"),
    "mrecg_df_brecq": ("MRECG-DF + BRECQ", "tab:green", "-"),
    "qdrop": ("QDrop", "tab:purple", "--"),
    "mrecg_dd_qdrop": ("MRECG-DD + QDrop", "tab:red", "--"),
}


def main(out, files):
    runs = [json.load(open(f)) for f in files]
    nets = [n["net"] for n in runs[0]["nets"]]
    settings = [s["bits"] for s in runs[0]["nets"][0]["settings"]]
    fig, axes = plt.subplots(2 * len(nets), len(settings), figsize=(4.6 * len(settings), 5.2 * len(nets)),
                             gridspec_kw={"height_ratios": [3, 1] * len(nets)}, squeeze=False)
    for i, net in enumerate(nets):
        per = [next(n for n in r["nets"] if n["net"] == net) for r in runs]
        for j, b in enumerate(settings):
            ax, bx = axes[2 * i][j], axes[2 * i + 1][j]
            ss = [next(s for s in p["settings"] if s["bits"] == b) for p in per]
            units = ss[0]["units"]
            x = list(range(len(units)))
            for m, (label, color, ls) in STYLE.items():
                curves = []
                for s in ss:
                    r = next((r for r in s["runs"] if r["method"] == m), None)
                    if r is not None:
                        curves.append(r["unit_losses"])
                if not curves:
                    continue
                mean = [sum(c[u] for c in curves) / len(curves) for u in x]
                lo = [min(c[u] for c in curves) for u in x]
                hi = [max(c[u] for c in curves) for u in x]
                acc = sum(next(r for r in s["runs"] if r["method"] == m)["accuracy"] for s in ss) / len(ss)
                ax.plot(x, mean, ls, color=color, marker="o", ms=3, label=f"{label} ({100 * acc:.1f} %)")
                if len(curves) > 1:
                    ax.fill_between(x, lo, hi, color=color, alpha=0.15)
            ax.set_yscale("log")
            ax.set_xticks(x)
            ax.set_xticklabels(units, rotation=35, fontsize=7)
            ax.set_title(f"{net} {b}: L_rec of each unit's output", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6.5)
            # capacity differentials of the pairs, normalised to their maximum
            pairs = [u + 0.5 for u in x[:-1]]
            for k, (key, color, off) in enumerate((("differentials_dd", "tab:orange", -0.12),
                                                   ("differentials_df", "tab:green", 0.12))):
                d = [sum(abs(s[key][p]) for s in ss) / len(ss) for p in range(len(pairs))]
                top = max(d) if max(d) > 0 else 1.0
                bx.bar([p + off for p in pairs], [v / top for v in d], width=0.22, color=color,
                       label="DD |dMC|" if k == 0 else "DF |dMC|")
            bx.set_xlim(-0.5, len(units) - 0.5)
            bx.set_xticks(pairs)
            bx.set_xticklabels([f"{a}|{c}" for a, c in zip(units[:-1], units[1:])], rotation=35, fontsize=6)
            bx.set_ylabel("rel. |dMC|", fontsize=7)
            bx.legend(fontsize=6)
    seeds = ", ".join(str(r["seed"]) for r in runs)
    steps = ", ".join(f"{n['net']} {n.get('steps', runs[0].get('steps'))}" for n in runs[0]["nets"])
    fig.suptitle(f"ptq_fashion_mnist ({runs[0]['mode']}, steps per unit: {steps}; seeds {seeds})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
