#!/usr/bin/env python3
"""make bench: CRIU native vs criu-qemu on the same guest, in the same run.

One guest is booted; dump/restore cycles alternate between CRIU without the
plugin and CRIU with it, so both see the same guest state and machine load.
Every figure is the median of --reps cycles. The disk's own sequential
O_DIRECT write/read speed is measured in the same directory, so figures can
be read against the physical limit. Results go to build/bench/results.json.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import harness  # noqa: E402

OUT = os.path.join(harness.TOP, "build", "bench")


def pb_message_fields(msg):
    """Top-level fields of a protobuf message; length-delimited as bytes."""
    out, i = {}, 0
    while i < len(msg):
        key, i = harness._varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            out[field], i = harness._varint(msg, i)
        elif wire == 2:
            n, i = harness._varint(msg, i)
            out[field] = msg[i:i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
    return out


def criu_dump_stats(imgdir):
    """frozen/freezing/memdump times (ms) from CRIU's stats-dump image."""
    with open(os.path.join(imgdir, "stats-dump"), "rb") as f:
        data = f.read()
    n = int.from_bytes(data[8:12], "little")
    dump = pb_message_fields(pb_message_fields(data[12:12 + n])[1])
    return {"frozen_ms": dump[2] / 1000.0, "freezing_ms": dump[1] / 1000.0,
            "memdump_ms": dump[3] / 1000.0, "pages_written": dump[7]}


def dir_allocated(d):
    return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for f in os.listdir(d))


def plugin_phases(log):
    """Per-phase times the plugin logs (ms)."""
    text = harness.log_text(log)
    out = {}
    m = re.search(r"RAM saved: .* in ([\d.]+) ms", text)
    if m:
        out["frozen_copy_ms"] = float(m.group(1))
    m = re.search(r"live phase done in ([\d.]+) ms", text)
    if m:
        out["live_ms"] = float(m.group(1))
    m = re.search(r"live final \d+: .*copied, ([\d.]+) ms", text)
    if m:
        out["frozen_copy_ms"] = float(m.group(1))
    m = re.search(r"fsync \+ header ([\d.]+) ms", text)
    if m:
        out["fsync_ms"] = float(m.group(1))
    m = re.search(r"handed to guardian \d+ in ([\d.]+) ms", text)
    if m:
        out["handoff_ms"] = float(m.group(1))
    m = re.search(r"RAM restored: .* in ([\d.]+) ms", text)
    if m:
        out["fill_ms"] = float(m.group(1))
    return out


def timed_criu(args, env=None):
    """Run criu under /usr/bin/time for its peak RSS; returns (seconds, KiB)."""
    e = dict(os.environ, CRIU_FAULT=harness.CRIU_FAULT)
    if env:
        e.update(env)
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M", harness.criu_bin()] + args
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e)
    dt = time.monotonic() - t0
    harness.reap_zombies()
    if r.returncode:
        raise harness.CriuError("%s: rc %d\n%s" % (" ".join(cmd), r.returncode, r.stdout[-3000:]))
    rss = int(re.search(r"MAXRSS (\d+)", r.stdout).group(1))
    return dt, rss


def cycle(g, work, name, plugin, env=None):
    imgdir = os.path.join(work, name)
    os.makedirs(imgdir)
    libdir = harness.PLUGIN_DIR if plugin else os.path.join(work, "no-plugins")
    os.makedirs(libdir, exist_ok=True)
    dump_s, dump_rss = timed_criu(["dump", "-t", str(g.pid), "-D", imgdir, "-o", "dump.log",
                                   "-v4", "--libdir", libdir], env=env)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    # CRIU leaves its images in the page cache; we fsync ours before the
    # dump can succeed. Time both until the image is on disk.
    t0 = time.monotonic()
    subprocess.run(["sync", "-f", imgdir], check=True)
    durable_s = dump_s + time.monotonic() - t0
    res = {"dump_s": dump_s, "dump_durable_s": durable_s, "dump_rss_kib": dump_rss, "image_bytes": dir_allocated(imgdir)}
    res.update(criu_dump_stats(imgdir))
    mark = g.mark()
    restore_s, restore_rss = timed_criu(["restore", "-D", imgdir, "-d", "-o", "restore.log",
                                         "-v4", "--libdir", libdir])
    res.update(restore_s=restore_s, restore_rss_kib=restore_rss)
    res.update(plugin_phases(os.path.join(imgdir, "dump.log")))
    res.update(plugin_phases(os.path.join(imgdir, "restore.log")))
    g.wait_passes(1, after=at_dump, since=mark, timeout=600)
    g.wait_progress(after=at_dump, since=mark, timeout=600)
    shutil.rmtree(imgdir)
    return res


def disk_limits(work, mib):
    path = os.path.join(work, "dd.tmp")
    out = {}
    for what, args in (("write", ["if=/dev/zero", "of=" + path, "oflag=direct"]),
                       ("read", ["if=" + path, "of=/dev/null", "iflag=direct"])):
        t0 = time.monotonic()
        subprocess.run(["dd", "bs=4M", "count=%d" % (mib // 4)] + args, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out["disk_%s_mbs" % what] = mib / (time.monotonic() - t0)
    os.unlink(path)
    return out


def median(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def summarize(native, ours, disk, cfg):
    keys = ["frozen_ms", "dump_s", "dump_durable_s", "image_bytes", "restore_s", "dump_rss_kib", "restore_rss_kib",
            "live_ms", "frozen_copy_ms", "fsync_ms", "handoff_ms", "fill_ms"]
    modes = [("criu", native)] + [(m, r) for m, r in ours.items()]
    table = {k: {m: median(r, k) for m, r in modes} for k in keys}
    print("\n%s guest, %d MiB touched by the workload, %d KiB/s dirtied, %d reps (medians)"
          % (cfg["mem"], cfg["wl_mb"], cfg["rate_kbs"], cfg["reps"]))
    print("%-16s" % "" + "".join("%16s" % m for m, _ in modes)
          + "".join("%14s" % (m + "/criu") for m, _ in modes[1:]))

    def fmt(k, v):
        if v is None:
            return "-"
        return "%.1f MiB" % (v / 2**20) if k == "image_bytes" else "%.3f" % v
    for k in keys:
        vals = [table[k][m] for m, _ in modes]
        if all(v is None for v in vals):
            continue
        ratios = ["%.2f" % (v / vals[0]) if v and vals[0] else "-" for v in vals[1:]]
        print("%-16s" % k + "".join("%16s" % fmt(k, v) for v in vals) + "".join("%14s" % r for r in ratios))
    touched = cfg["wl_mb"] * 2**20
    for who, runs in modes:
        d = median(runs, "dump_s")
        print("%-12s dump throughput %.0f MiB/s of touched RAM = %.2f of the disk's O_DIRECT write limit"
              % (who, touched / 2**20 / d, touched / 2**20 / d / disk["disk_write_mbs"]))
    print("disk: O_DIRECT write %.0f MiB/s, read %.0f MiB/s" % (disk["disk_write_mbs"], disk["disk_read_mbs"]))
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--wl-mb", type=int, default=1536)
    ap.add_argument("--rate-kbs", type=int, default=20480)
    ap.add_argument("--reps", type=int, default=3)
    cfg = vars(ap.parse_args())
    harness.become_subreaper()
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="criu-qemu-bench-", dir="/var/tmp")
    print("criu: %s; work dir %s" % (harness.Criu(work).version(), work), flush=True)
    g = harness.Guest(work, mem=cfg["mem"], wl_mb=cfg["wl_mb"], rate_kbs=cfg["rate_kbs"]).start()
    native = []
    ours = {"plain": [], "live": []}
    try:
        g.wait_ready(timeout=600)
        g.wait_passes(2, timeout=600)
        disk = disk_limits(work, cfg["wl_mb"])
        for i in range(cfg["reps"]):
            native.append(cycle(g, work, "native-%d" % i, plugin=False))
            print("native %d: %s" % (i, native[-1]), flush=True)
            for mode in ours:
                env = {"CRIU_QEMU_LIVE": "1" if mode == "live" else "0"}
                ours[mode].append(cycle(g, work, "%s-%d" % (mode, i), plugin=True, env=env))
                print("%s %d: %s" % (mode, i, ours[mode][-1]), flush=True)
        g.check_console()
        print("guest memory verified after %d restores: no corruption" % (3 * cfg["reps"]))
    finally:
        g.kill()
    table = summarize(native, ours, disk, cfg)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"config": cfg, "disk": disk, "native": native, "criu-qemu": ours,
                   "median": table, "criu": harness.Criu(work).version()}, f, indent=1)
    print("results: %s" % os.path.join(OUT, "results.json"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
