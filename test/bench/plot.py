#!/usr/bin/python3
"""Plots of build/bench/results.json (written by test/bench.py).

    /usr/bin/python3 test/bench/plot.py [results.json] [outdir]

writes outdir/perf-modes.png (every mode of the main configurations),
perf-size.png (vs guest RAM) and perf-rate.png (vs dirty rate). Needs
python3-matplotlib (Debian); `make bench` installs it.
"""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LABEL = {
    "criu": "CRIU native",
    "criu-cold": "CRIU native, image not cached",
    "plain": "criu-qemu plain",
    "live": "criu-qemu live",
    "lazy": "criu-qemu live, lazy restore",
    "live-pc": "criu-qemu live, page cache (odirect = no)",
    "idle": "criu-qemu live, guest paused",
    "qemu-mr": "QEMU mapped-ram",
    "qemu-mr-mfd": "QEMU mapped-ram+multifd",
    "qemu-mr-mfd-dio": "QEMU mr+multifd+direct-io",
    "qemu-mr-mfd-paused": "QEMU mr+multifd, paused",
}
COLOR = {
    "criu": "#7f7f7f", "criu-cold": "#c7c7c7", "plain": "#1f77b4", "live": "#2ca02c", "lazy": "#17becf", "live-pc": "#bcbd22",
    "idle": "#e377c2", "qemu-mr": "#ff7f0e",
    "qemu-mr-mfd": "#d62728", "qemu-mr-mfd-dio": "#9467bd", "qemu-mr-mfd-paused": "#8c564b",
}
MARK = {"criu": "s", "plain": "o", "live": "^", "qemu-mr-mfd": "D"}


def title(cfg):
    return "%s guest, %d MiB touched, %d MB/s dirtied" % (cfg["mem"], cfg["wl_mb"], cfg["rate_kbs"] // 1024)


def plot_modes(res, out):
    """One row per main configuration, one panel per metric, a bar per mode.
    Frozen time on a log scale in ms: it spans 1 ms to several seconds."""
    mains = res["main"]
    metrics = [("frozen_ms", "VM frozen / QEMU downtime (ms, log)", True),
               ("dump_durable_s", "dump / save until durable (s)", False),
               ("restore_s", "restore / load until running (s)", False),
               ("full_speed_s", "until back at full speed (s)", False)]
    fig, axes = plt.subplots(len(mains), len(metrics), figsize=(18, 3.8 * len(mains)), squeeze=False)
    handles = {}
    for row, r in zip(axes, mains):
        modes = list(r["runs"])
        for ax, (key, label, log) in zip(row, metrics):
            # None: not measured for this mode; inf: not back at full speed within the watch
            ys = [r["median"].get(key, {}).get(m) for m in modes]
            ys = [y if y is not None and math.isfinite(y) else 0 for y in ys]
            bars = ax.bar(range(len(modes)), ys, 0.8, color=[COLOR.get(m) for m in modes])
            for m, b in zip(modes, bars):
                handles[m] = b
            for b, y in zip(bars, ys):
                txt = "%.0f" % y if log or y >= 100 else "%.2f" % y
                ax.annotate(txt, (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
            if log:
                ax.set_yscale("log")
                ax.set_ylim(1, max(ys) * 3)
            else:
                ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
            ax.set_xticks([])
            ax.set_title("%s\n%s" % (label, title(r["config"])), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        row[0].set_ylabel("median of %d" % r["config"]["reps"])
    fig.legend([handles[m] for m in handles], [LABEL.get(m, m) for m in handles],
               loc="lower center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0.07 if len(mains) < 2 else 0.05, 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_sweep(points, xof, xlabel, out, suptitle):
    """Three panels: frozen, dump until durable, restore against x."""
    metrics = [("frozen_ms", "VM frozen / downtime (ms, log)", 1),
               ("dump_durable_s", "dump until durable (s)", 1),
               ("restore_s", "restore until running (s)", 1)]
    modes = []
    for p in points:
        for m in p["runs"]:
            if m in MARK and m not in modes:
                modes.append(m)
    fig, axes = plt.subplots(1, len(metrics), figsize=(14, 4.3))
    for ax, (key, label, scale) in zip(axes, metrics):
        for m in modes:
            pts = [(xof(p["config"]), p["median"][key][m] * scale) for p in points
                   if p["median"][key].get(m) is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker=MARK[m],
                        color=COLOR[m], label=LABEL[m])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_xticks(sorted({xof(p["config"]) for p in points}))
        if key == "frozen_ms":
            ax.set_yscale("log")
            ax.set_ylim(bottom=1)
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv):
    src = argv[1] if len(argv) > 1 else os.path.join(TOP, "build", "bench", "results.json")
    outdir = argv[2] if len(argv) > 2 else os.path.join(TOP, "Documentation")
    with open(src) as f:
        res = json.load(f)
    written = []
    if res.get("main"):
        written.append(os.path.join(outdir, "perf-modes.png"))
        plot_modes(res, written[-1])
    if res.get("size"):
        written.append(os.path.join(outdir, "perf-size.png"))
        plot_sweep(res["size"], lambda c: int(c["mem"].rstrip("G")), "guest RAM (GiB), 3/4 touched",
                   written[-1], "RAM size sweep, 20 MB/s dirtied (2 GiB point: median of %d, others: 1 run)"
                   % max(p["config"]["reps"] for p in res["size"]))
    if res.get("rate"):
        written.append(os.path.join(outdir, "perf-rate.png"))
        plot_sweep(res["rate"], lambda c: c["rate_kbs"] // 1024, "dirty rate (MB/s)", written[-1],
                   "dirty rate sweep, 2 GiB guest, 1536 MiB touched (20 MB/s point: median of %d, others: 1 run)"
                   % max(p["config"]["reps"] for p in res["rate"]))
    for w in written:
        print("plot: %s" % w)


if __name__ == "__main__":
    main(sys.argv)
