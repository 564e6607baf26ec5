#!/usr/bin/env python3
"""make bench: CRIU native vs criu-qemu vs QEMU's own file migration.

For each configuration two guests are booted from the same kernel, initramfs
and workload parameters: one with the system QEMU (7.2) for CRIU, one with
QEMU 10 (scripts/qemu10.sh) for QEMU's mapped-ram file migration. Each
repetition runs, in turn,

  criu     criu dump / criu restore without the plugin
  plain    criu-qemu, CRIU_QEMU_LIVE=0 (RAM copied while frozen)
  live     criu-qemu, default (live pre-dump, then a short frozen pass)
  lazy     live dump, lazy restore (the guest runs at once)
  live-pc  live, but page data written through the page cache (odirect = no)
  idle     live, of the VM stopped with QMP for the dump (cont after restore):
           the writer with the CPUs to itself, against the disk's speed
  qemu-*   QEMU 10: migrate to file: with mapped-ram (+ multifd, + direct-io),
           then a new QEMU with -incoming defer loads it and continues

on the guest of its kind while the other guest is paused (QMP stop), so the
two never compete for the CPUs; the order rotates every repetition. A CRIU
cycle continues the same guest; a QEMU cycle continues in a new QEMU process
(the chain of QEMUs is one guest). After every restore the workload must
continue from the state it was saved in; at the end each guest's whole
console log is checked (no corrupt page, every checksum matches). Every
figure in the tables is the median of --reps cycles.

The guest is busy the way real VMs are: its workload verifies all its
touched memory continuously (QEMU's vCPU thread uses a whole core; the
table shows QEMU's CPU use before each dump) while rewriting at the set
rate. Its status lines come every 100 ms and count the pages verified (v=):
the guest's speed. "Until back at full speed" is the time from the start of
the restore until the guest runs at 85 % of its speed before the dump over a
whole second, "not in 15 s" if it does not; THP of guest RAM is read from
QEMU's smaps before the dump and after the restore; the dump's CPU time is
criu's (the plugin runs in it) plus the guardian's (it logs its own at exit).

The disk's sequential O_DIRECT write/read speed and the page cache's write
speed are measured in the same run and directory. Results:
build/bench/results.json (machine readable), build/bench/summary.md (the
tables of Documentation/performance.md), plots by test/bench/plot.py into
Documentation/perf-*.png. Without arguments the whole suite runs (SUITE,
about 30 minutes on a 2-CPU machine, KVM case included); with
--mem/--wl-mb/--rate-kbs only that configuration (no sweeps, no plots).

First the C benchmarks of the plugin's parts run (test/bench/bench_*.c,
built by make bench-c): an injected syscall (bench_rsys), live pre-dump
passes (bench_live), the dump writer and restore filler against plain
copies (bench_writer), the candidate restore fill mechanisms against the
machine's first-touch rate (bench_fill). Their figures are printed and kept in
build/bench/c-benchmarks.txt (and results.json); --c-only runs just them,
--no-c skips them.

The KVM case (run_kvm; --kvm-only runs just it and adds it to the last
results.json, make bench KVM=1 does that; --no-kvm leaves it out of the
suite): QEMU -accel kvm with 2 vCPUs running the bare-metal test guest of
test/kvm-guest, 1 GiB with 2 x 384 MiB touched and 2 x 10 MiB/s rewritten;
criu + the plugin (plain, live) beside QEMU 10's mapped-ram file migration
(qemu-mr, qemu-mr-mfd) of the same guest, medians of --kvm-reps (default 3).
Its VM frozen time is dump.log's span from CRIU's seize of QEMU to the end
of the dump (next to stats-dump's), QEMU's is query-migrate's downtime;
"until guest progress" is from the restore's start until the console shows
a status line past the one before the dump.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
import harness  # noqa: E402
import kvmguest  # noqa: E402
import wlcheck  # noqa: E402  (harness puts test/guest on sys.path)

OUT = os.path.join(harness.TOP, "build", "bench")
C_BENCH = os.path.join(harness.BUILD, "test", "bench")
QEMU10 = os.environ.get("QEMU10", os.path.join(harness.TOP, "build", "qemu10", "qemu-system-x86_64"))
MB = 2**20
T0 = time.monotonic()

# The default run (`make bench`): two main configurations with --reps
# repetitions of every mode, then sweeps with one repetition per point.
SUITE = {
    "main": [
        {"mem": "2G", "wl_mb": 1536, "rate_kbs": 20480},
        {"mem": "4G", "wl_mb": 1536, "rate_kbs": 20480},
    ],
    # RAM size sweep: the workload touches 3/4 of guest RAM. The 2G point is
    # the first main configuration (medians of --reps), the others 1 rep.
    "size": [
        {"mem": "1G", "wl_mb": 768, "rate_kbs": 20480},
        {"mem": "4G", "wl_mb": 3072, "rate_kbs": 20480},
        {"mem": "8G", "wl_mb": 6144, "rate_kbs": 20480},
    ],
    # Dirty rate sweep on the 2G / 1536 MiB guest; 20 MB/s is main[0].
    "rate": [
        {"mem": "2G", "wl_mb": 1536, "rate_kbs": 0},
        {"mem": "2G", "wl_mb": 1536, "rate_kbs": 81920},
    ],
}
SWEEP_MODES = ("criu", "plain", "live")

# The workload writes no all-zero pages (the tests use one in 16). On ext4
# mounted with -o discard (this machine) every hole of a sparse file costs a
# discard when the file is deleted: a 1.5 GiB image with a hole every 16th
# page took 41 s to unlink, a dense one 0.6 s. That hits our images and
# QEMU's mapped-ram files alike, is not part of any measured time, but would
# make the suite far too long.
ZERO_EVERY = 0
SWEEP_QEMU = ("qemu-mr-mfd",)

# lazy: live dump, lazy restore; live-pc: live with odirect = no (page
# data written through the page cache, the default until 2026-12); idle:
# live, of the VM stopped (QMP stop) for the dump: the writer alone on the
# CPUs, against the disk's O_DIRECT speed; cont after the restore.
# criu-cold: CRIU native with its image dropped from the page cache before
# the restore (as on another host, or once the cache let it go): ours is
# read from the disk anyway, written with O_DIRECT.
CRIU_MODES = ("criu", "criu-cold", "plain", "live", "lazy", "live-pc", "idle")

# QEMU's mapped-ram file migration. max-bandwidth is lifted in every variant
# (QEMU's default, 128 MiB/s, is a network throttle; libvirt lifts it for
# saves too). "Live" is what `migrate file:` does on a running VM: precopy
# passes with dirty tracking while the guest runs, stop when the rest fits
# into downtime-limit (300 ms default), write the rest, stay paused.
QEMU_VARIANTS = {
    "qemu-mr": {"caps": ["mapped-ram"], "params": {},
                "what": "mapped-ram, live"},
    "qemu-mr-mfd": {"caps": ["mapped-ram", "multifd"], "params": {"multifd-channels": 2},
                    "what": "mapped-ram + multifd (2 channels), live"},
    "qemu-mr-mfd-dio": {"caps": ["mapped-ram", "multifd"],
                        "params": {"multifd-channels": 2, "direct-io": True},
                        "what": "mapped-ram + multifd (2) + direct-io, live"},
    "qemu-mr-mfd-paused": {"caps": ["mapped-ram", "multifd"], "params": {"multifd-channels": 2},
                           "paused": True,
                           "what": "mapped-ram + multifd (2), VM stopped first (like virsh save)"},
}
COMMON_PARAMS = {"max-bandwidth": 1 << 40}
FIRST_SAVE = "qemu-mr-mfd"

# Table rows: key, label, unit. QEMU cycles fill the same keys: frozen_ms is
# QEMU's reported downtime, dump_s the migrate command until "completed",
# restore_s QEMU start with -incoming until the guest runs again.
ROWS = [
    ("frozen_ms", "VM frozen (ms)"),
    ("frozen_plugin_ms", "  of it: plugin (final pass, fsync, handoff) (ms)"),
    ("memdump_ms", "  of it: CRIU's page dump (ms)"),
    ("criu_pages_bytes", "  pages CRIU stored (MiB)"),
    ("frozen_criu_other_ms", "  of it: CRIU's other work (ms)"),
    ("dump_s", "dump / save (s)"),
    ("dump_durable_s", "  until durable (s)"),
    ("restore_s", "restore / load (s)"),
    ("restore_progress_s", "  until guest progress (s)"),
    ("full_speed_s", "  until back at full speed (s)"),
    ("guest_rate", "guest speed before dump (pages verified/s)"),
    ("qemu_cpu_cores", "QEMU's CPU use before dump (cores)"),
    ("lazy_fill_speed_pct", "guest speed during lazy fill (% of before)"),
    ("thp_before_kib", "THP of guest RAM before dump (MiB)"),
    ("thp_restored_kib", "THP of guest RAM after restore (MiB)"),
    ("dump_cpu_s", "dump CPU time, criu + guardian (s)"),
    ("dump_cpu_s_per_gib", "  per GiB of image (s)"),
    ("image_bytes", "image on disk (MiB)"),
    ("dump_rss_kib", "criu peak RSS dump (MiB)"),
    ("restore_rss_kib", "criu peak RSS restore (MiB)"),
    ("guardian_hwm_kib", "guardian peak RSS (MiB)"),
    ("qemu_rss_before_kib", "QEMU RSS before dump (MiB)"),
    ("qemu_rss_after_save_kib", "QEMU RSS after save (MiB)"),
    ("qemu_rss_restored_kib", "QEMU RSS after restore (MiB)"),
    ("live_ms", "live phase (ms)"),
    ("frozen_copy_ms", "frozen copy (ms)"),
    ("fsync_ms", "fsync + header (ms)"),
    ("handoff_ms", "handoff (ms)"),
    ("fill_ms", "restore fill (ms)"),
    ("lazy_handoff_ms", "lazy restore handoff (ms)"),
    ("lazy_fill_ms", "lazy fill, guest running (ms)"),
    ("lazy_collapse_ms", "lazy: THP collapse after the fill (ms)"),
    ("incoming_s", "load: incoming only (s)"),
    ("delete_s", "delete image (s)"),
]


def c_benchmarks(mib):
    """Run every C benchmark of C_BENCH, printing its figures; {name: output}.
    bench_live, bench_writer and bench_fill copy `mib` MiB."""
    sizes = {"bench_live": ["-m", str(mib)], "bench_writer": ["-m", str(mib)],
             "bench_fill": ["-m", str(mib)]}
    names = sorted(f for f in os.listdir(C_BENCH) if f.startswith("bench_") and "." not in f) \
        if os.path.isdir(C_BENCH) else []
    if not names:
        raise SystemExit("bench: no C benchmarks in %s (make bench-c)" % C_BENCH)
    out = {}
    for name in names:
        argv = [os.path.join(C_BENCH, name)] + sizes.get(name, [])
        log(" ".join(argv))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout, end="", flush=True)
        if r.returncode != 0:
            raise SystemExit("bench: %s failed (rc %d)" % (name, r.returncode))
        out[name] = r.stdout
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "c-benchmarks.txt"), "w") as f:
        for name in names:
            f.write("== %s\n%s" % (name, out[name]))
    return out


def gib(cfg):
    return int(cfg["mem"].rstrip("G"))


def brief(r):
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items() if k != "speed_trace"}


def log(msg):
    t = time.monotonic() - T0
    print("[%02d:%02d] %s" % (t // 60, t % 60, msg), flush=True)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def evict_page_cache(d):
    """Drop the (synced, so clean) files of d from the page cache."""
    for f in os.listdir(d):
        fd = os.open(os.path.join(d, f), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def dir_allocated(d):
    return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for f in os.listdir(d))


def restore_guardian_log(imgdir, pid, pattern, what, timeout=120):
    """The restore guardian's log after its "giving guest RAM back", once
    pattern is in it (the dump's guardian wrote the part before)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = harness.guardian_log(imgdir, pid).split("giving guest RAM back")
        if len(parts) >= 2 and re.search(pattern, parts[-1]):
            return parts[-1]
        time.sleep(0.2)
    raise RuntimeError("%s: not in guardian-%d.log of %s" % (what, pid, imgdir))


def lazy_fill(imgdir, pid):
    """The restore guardian's background fill (ms), once it has ended."""
    pattern = r"gave back \d+ pages .* in \d+ copies, ([\d.]+) ms"
    text = restore_guardian_log(imgdir, pid, pattern, "the end of the lazy fill")
    return {"lazy_fill_ms": float(re.search(pattern, text).group(1))}


def lazy_collapse(imgdir, pid):
    """Once the restore guardian has exited: the ms its MADV_COLLAPSE calls
    took (after the fill it puts THP back, range by range)."""
    text = restore_guardian_log(imgdir, pid, r"pid \d+: exiting", "the restore guardian's exit")
    ms = re.findall(r"MADV_COLLAPSE \S+ \([\d.]+ MiB\) in ([\d.]+) ms", text)
    return {"lazy_collapse_ms": sum(float(x) for x in ms)}


def dumplog_frozen(log_path):
    """The VM's frozen span from CRIU's dump.log (-v4 timestamps): from the
    last line before CRIU seizes QEMU (the first "Seized task") until CRIU
    is done with the dump ("Unfreezing tasks", where a dump without
    --leave-running kills QEMU). Unlike CRIU's stats-dump frozen time it
    includes the seize; the plugin's live phase comes before it. Also the
    plugin's share of it: until its handoff is done (the last thing it does
    inside the freeze)."""
    stamps = re.findall(r"^\((\d+\.\d+)\) (.*)$", harness.log_text(log_path), re.M)
    start = plugin = None
    for i, (t, text) in enumerate(stamps):
        if start is None and text.startswith("Seized task"):
            start = float(stamps[i - 1][0] if i else t)
        elif start is not None and "handed to guardian" in text:
            plugin = (float(t) - start) * 1000
        elif start is not None and text.startswith("Unfreezing tasks"):
            out = {"frozen_log_ms": (float(t) - start) * 1000}
            if plugin is not None:
                out["frozen_plugin_ms"] = plugin
            return out
    return {"frozen_log_ms": None}


def frozen_split(res):
    """Where a dump's frozen time went: the plugin (final pass, fsync,
    handoff), CRIU's page dump of what is left to it (stats-dump's memdump
    time and pages), and the rest of CRIU's work (VMAs, parasite, files,
    namespaces, the seize and unseize)."""
    total, memdump = res.get("frozen_log_ms"), res.get("memdump_ms")
    if res.get("pages_written") is not None:
        res["criu_pages_bytes"] = res["pages_written"] * 4096
    if total is not None and memdump is not None:
        res["frozen_criu_other_ms"] = total - memdump - res.get("frozen_plugin_ms", 0.0)


def console_offset(g):
    try:
        return os.path.getsize(g.console)
    except FileNotFoundError:
        return 0


def wait_first_progress(g, at, offset, moving, t0, timeout=600, poll=0.005):
    """Seconds from t0 until the guest's console (past byte `offset`) shows
    a whole status line past the status `at`: a later pass and (moving)
    more rewrites. Status lines come at the end of a pass, at most one per
    200 ms (the KVM guest) or per pass (the Linux guest), so this is the
    time until the guest visibly runs again, within that granularity. Only
    the new part of the console is read: the poll must not cost the guest
    CPU time."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        try:
            with open(g.console, "rb") as f:
                f.seek(offset)
                buf += f.read()
                offset = f.tell()
        except FileNotFoundError:
            pass
        *whole, buf = buf.split(b"\n")
        for line in whole:
            st = wlcheck.parse_status(line.decode(errors="replace"))
            if st and st["pass"] > at["pass"] and (not moving or st["w"] > at["w"]):
                return time.monotonic() - t0
        if g.pid and not harness.pid_alive(g.pid):
            harness.reap_zombies()
            raise RuntimeError("QEMU %d died after the restore; log:\n%s" % (g.pid, g.qemu_log()))
        time.sleep(poll)
    raise TimeoutError("no guest progress %d s after the restore" % timeout)


# Status lines every STATUS_MS: the guest's work counter (v=, pages
# verified) then gives its speed at that granularity.
STATUS_MS = 100
FULL_SPEED_SHARE = 0.85  # "back at full speed": >= 85 % of the pre-dump rate
FULL_SPEED_WINDOW_S = 1.0
# How long to wait for it: a guest restored without its huge pages (CRIU
# alone) runs slower until khugepaged has collapsed them, which takes far
# longer; the table then says "not in 15 s".
FULL_SPEED_WAIT_S = 15


def cpu_s(pid):
    """User + system time of a process so far (s)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def guest_rate(g, seconds=2.0, out=None):
    """The guest's work rate now (pages verified per second of its own
    clock), from the status lines of the next `seconds`: the rate before a
    dump. Measured live, not from older lines: a window reaching back over
    the previous restore would count the time QEMU was gone. out (a dict)
    gets qemu_cpu_cores: how busy QEMU is meanwhile."""
    offset = console_offset(g)
    c0, t0 = cpu_s(g.pid), time.monotonic()
    time.sleep(seconds)
    if out is not None:
        out["qemu_cpu_cores"] = (cpu_s(g.pid) - c0) / (time.monotonic() - t0)
    with open(g.console, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").split("\n")[1:-1]
    sts = [s for s in map(wlcheck.parse_status, lines) if s and "v" in s]
    if len(sts) < 2 or sts[-1]["t"] <= sts[0]["t"]:
        return None
    return (sts[-1]["v"] - sts[0]["v"]) / ((sts[-1]["t"] - sts[0]["t"]) / 1000.0)


class SpeedWatch(threading.Thread):
    """Tails a console from byte `offset`, keeping (host time, status) of
    every status line as it appears. Polls every 10 ms, reading only what
    is new, so it costs the guest nothing to speak of."""

    def __init__(self, console, offset):
        super().__init__(daemon=True)
        self.console, self.offset = console, offset
        self.samples = []
        self.done = threading.Event()

    def run(self):
        buf = b""
        while not self.done.wait(0.01):
            try:
                with open(self.console, "rb") as f:
                    f.seek(self.offset)
                    data = f.read()
                    self.offset = f.tell()
            except FileNotFoundError:
                continue
            now = time.monotonic()
            *whole, buf = (buf + data).split(b"\n")
            for line in whole:
                st = wlcheck.parse_status(line.decode(errors="replace"))
                if st and "v" in st:
                    self.samples.append((now, st))

    def full_speed_at(self, rate):
        """Host time of the first status line from which the guest runs at
        FULL_SPEED_SHARE of `rate` for FULL_SPEED_WINDOW_S, or None."""
        s = list(self.samples)
        for i, (t, st) in enumerate(s):
            for t2, st2 in s[i + 1:]:
                if t2 - t >= FULL_SPEED_WINDOW_S:
                    if (st2["v"] - st["v"]) / (t2 - t) >= FULL_SPEED_SHARE * rate:
                        return t
                    break
        return None

    def trace(self, t0):
        """[seconds since t0, pages verified] of every status line seen."""
        return [(round(t - t0, 3), st["v"]) for t, st in self.samples]

    def rate_between(self, a, b):
        """The guest's rate (pages/s) between host times a and b."""
        s = [x for x in self.samples if a <= x[0] <= b]
        if len(s) < 2 or s[-1][0] <= s[0][0]:
            return None
        return (s[-1][1]["v"] - s[0][1]["v"]) / (s[-1][0] - s[0][0])

    def wait_full_speed(self, rate, t0):
        """Seconds from t0 until the guest is back at full speed; infinity
        if it is not within FULL_SPEED_WAIT_S."""
        while time.monotonic() < t0 + FULL_SPEED_WAIT_S + FULL_SPEED_WINDOW_S:
            t = self.full_speed_at(rate)
            if t is not None and t - t0 <= FULL_SPEED_WAIT_S:
                return max(t - t0, 0.0)
            time.sleep(0.1)
        return float("inf")

    def stop(self):
        self.done.set()
        self.join()


def plugin_phases(log_path):
    """Per-phase times the plugin logs (ms)."""
    text = harness.log_text(log_path)
    out = {}
    for key, rx in (("frozen_copy_ms", r"RAM saved: .* in ([\d.]+) ms"),
                    ("live_ms", r"live phase done in ([\d.]+) ms"),
                    ("frozen_copy_ms", r"live final \d+: .*copied, ([\d.]+) ms"),
                    ("fsync_ms", r"fsync \+ header ([\d.]+) ms"),
                    ("handoff_ms", r"handed to guardian \d+ in ([\d.]+) ms"),
                    ("fill_ms", r"RAM restored: .* in ([\d.]+) ms")):
        m = re.search(rx, text)
        if m:
            out[key] = float(m.group(1))
    return out


class GuardianWatch(threading.Thread):
    """Peak RSS (VmHWM) of criu-qemu-guardian processes, sampled every 50 ms
    while a dump runs. The guardian is started outside CRIU's tree, so
    /usr/bin/time's figure for criu does not include it."""
    COMM = "criu-qemu-guard"  # comm is cut at 15 characters

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.hwm_kib = 0

    def sample(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != self.COMM:
                        continue
                with open("/proc/%s/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass

    def run(self):
        while not self.done.wait(0.05):
            self.sample()

    def stop(self):
        self.done.set()
        self.join()
        return self.hwm_kib


def timed_criu(args, env=None, watch=False, cpu=None):
    """Run criu under /usr/bin/time; returns (seconds, peak RSS KiB, guardian
    KiB). cpu (a dict): gets criu_cpu_s, CRIU's user + system time with the
    plugin's (its threads run in CRIU)."""
    e = dict(os.environ, CRIU_FAULT=harness.CRIU_FAULT)
    if env:
        e.update(env)
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M CPU %U %S", harness.criu_bin()] + args
    gw = GuardianWatch() if watch else None
    if gw:
        gw.start()
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e)
    dt = time.monotonic() - t0
    ghwm = gw.stop() if gw else 0
    harness.reap_zombies()
    if r.returncode:
        raise harness.CriuError("%s: rc %d\n%s" % (" ".join(cmd), r.returncode, r.stdout[-3000:]))
    m = re.search(r"MAXRSS (\d+) CPU ([\d.]+) ([\d.]+)", r.stdout)
    if cpu is not None:
        cpu["criu_cpu_s"] = float(m.group(2)) + float(m.group(3))
    return dt, int(m.group(1)), ghwm


def guardian_cpu_s(imgdir, pid, timeout=15):
    """User + system time the dump's guardian logged when it exited."""
    path = os.path.join(imgdir, "guardian-%d.log" % pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"exiting \(.*cpu user ([\d.]+) s, sys ([\d.]+) s\)", harness.log_text(path))
        if m:
            return float(m.group(1)) + float(m.group(2))
        time.sleep(0.1)
    return None


SETTLE_S = 0.0	# --settle


def criu_cycle(g, work, name, mode, moving=True):
    """criu dump + criu restore of guest g; the restored guest must continue."""
    imgdir = os.path.join(work, name)
    os.makedirs(imgdir)
    plugin = mode not in ("criu", "criu-cold")
    env = {"CRIU_QEMU_LIVE": "0" if mode == "plain" else "1"} if plugin else None
    if mode == "live-pc":
        env["CRIU_QEMU_ODIRECT"] = "0"
    renv = {"CRIU_QEMU_LAZY_RESTORE": "1"} if mode == "lazy" else None
    libdir = harness.PLUGIN_DIR if plugin else os.path.join(work, "no-plugins")
    os.makedirs(libdir, exist_ok=True)
    rss_before = rss_kib(g.pid)
    ram_min = g.mem_bytes() // 2
    cpu = {}
    rate_before = guest_rate(g, out=cpu)
    thp_before = harness.ram_thp_kib(g.pid, ram_min)
    if mode == "idle":
        g.qmp("stop")
    dump_s, dump_rss, ghwm = timed_criu(["dump", "-t", str(g.pid), "-D", imgdir, "-o", "dump.log",
                                         "-v4", "--libdir", libdir], env=env, watch=plugin, cpu=cpu)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    # CRIU leaves its images in the page cache; we fsync ours before the
    # dump can succeed. Time both until the image is on disk.
    t0 = time.monotonic()
    subprocess.run(["sync", "-f", imgdir], check=True)
    durable_s = dump_s + time.monotonic() - t0
    res = {"dump_s": dump_s, "dump_durable_s": durable_s, "dump_rss_kib": dump_rss,
           "image_bytes": dir_allocated(imgdir), "qemu_rss_before_kib": rss_before}
    if plugin:
        res["guardian_hwm_kib"] = ghwm
        res["guardian_cpu_s"] = guardian_cpu_s(imgdir, g.pid)
    res["dump_cpu_s"] = cpu["criu_cpu_s"] + (res.get("guardian_cpu_s") or 0.0)
    res["dump_cpu_s_per_gib"] = res["dump_cpu_s"] / (res["image_bytes"] / 2**30)
    res.update(guest_rate=rate_before, thp_before_kib=thp_before,
               qemu_cpu_cores=cpu["qemu_cpu_cores"])
    res.update(harness.criu_dump_stats(imgdir))
    res.update(dumplog_frozen(os.path.join(imgdir, "dump.log")))
    frozen_split(res)
    # --settle: restore on memory as cold for every mode. Right after its
    # dump, CRIU native restores into the RAM the killed QEMU just freed,
    # still backed by this VM's host; the plugin's handoff freed it during
    # the dump, and this VM reports free memory to its host within ~2 s.
    time.sleep(SETTLE_S)
    if mode == "criu-cold":
        evict_page_cache(imgdir)
    mark = g.mark()
    offset = console_offset(g)
    speed = SpeedWatch(g.console, offset)
    speed.start()
    t_restore = time.monotonic()
    restore_s, restore_rss, _ = timed_criu(["restore", "-D", imgdir, "-d", "-o", "restore.log",
                                            "-v4", "--libdir", libdir], env=renv)
    if mode == "idle":
        g.qmp("cont")
        restore_s = time.monotonic() - t_restore
    res.update(restore_s=restore_s, restore_rss_kib=restore_rss)
    res["restore_progress_s"] = wait_first_progress(g, at_dump, offset, moving, t_restore)
    if rate_before:
        res["full_speed_s"] = speed.wait_full_speed(rate_before, t_restore)
    res.update(plugin_phases(os.path.join(imgdir, "dump.log")))
    rp = plugin_phases(os.path.join(imgdir, "restore.log"))
    if "handoff_ms" in rp:  # lazy restore: its own handoff
        rp["lazy_handoff_ms"] = rp.pop("handoff_ms")
    res.update(rp)
    t0 = time.monotonic()
    # A full verification pass past the dump, and (if the workload rewrites
    # at all) rewriting went on from where it was.
    g.wait_passes(1, after=at_dump, since=mark, timeout=600)
    if moving:
        g.wait_progress(after=at_dump, since=mark, timeout=600)
    res["verify_s"] = time.monotonic() - t0
    if mode == "lazy":
        res.update(lazy_fill(imgdir, g.pid))
        # The guest's speed while the guardian fills in the background.
        t_end = t_restore + restore_s
        r = speed.rate_between(t_end, t_end + res["lazy_fill_ms"] / 1000)
        if r is not None and rate_before:
            res["lazy_fill_speed_pct"] = 100.0 * r / rate_before
        # THP is read once the guardian has collapsed guest RAM back into it.
        res.update(lazy_collapse(imgdir, g.pid))
    speed.stop()
    res["speed_trace"] = speed.trace(t_restore)
    res["thp_restored_kib"] = harness.ram_thp_kib(g.pid, ram_min)
    res["qemu_rss_restored_kib"] = rss_kib(g.pid)
    # The last cycle's logs of each mode stay (build/bench/logs/MODE) for a
    # look at where the time went.
    logs = os.path.join(OUT, "logs", mode)
    os.makedirs(logs, exist_ok=True)
    for f in os.listdir(imgdir):
        if f.endswith(".log"):
            shutil.copy(os.path.join(imgdir, f), logs)
    t0 = time.monotonic()
    shutil.rmtree(imgdir)
    res["delete_s"] = time.monotonic() - t0
    return res


class QemuChain:
    """One guest carried through QEMU 10 processes: each save/load cycle
    ends the old QEMU and continues the guest in a new one (-incoming)."""

    def __init__(self, work, qemu, cfg):
        self.work, self.qemu, self.cfg = work, qemu, cfg
        self.seed = int.from_bytes(os.urandom(3), "little") + 1
        self.guests = []
        self.head = self._guest().start()

    def _guest(self, incoming=False):
        g = harness.Guest(self.work, mem=self.cfg["mem"], wl_mb=self.cfg["wl_mb"],
                          rate_kbs=self.cfg["rate_kbs"], zero_every=ZERO_EVERY, seed=self.seed,
                          name="q10-%d" % len(self.guests), kernel_args="wl.status_ms=%d" % STATUS_MS,
                          extra_args=["-S", "-incoming", "defer"] if incoming else [])
        g.cmd[0] = self.qemu
        self.guests.append(g)
        return g

    def lines(self):
        """The guest's console across all its QEMUs, in order."""
        return [l for g in self.guests for l in g.lines()]

    def check_console(self):
        lines = self.lines()
        assert sum("WL start" in l for l in lines) == 1, "QEMU 10 guest restarted"
        problems = wlcheck.check_log(lines)
        assert not problems, "QEMU 10 guest workload problems:\n" + "\n".join(problems[:20])

    def kill(self):
        for g in self.guests:
            g.kill()


def qmp_retry(g, cmd, args=None, timeout=60):
    """QMP once the socket accepts connections (a just started QEMU)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return g.qmp(cmd, args, timeout=timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline or not harness.pid_alive(g.pid):
                raise RuntimeError("QEMU %d: no QMP; log:\n%s" % (g.pid, g.qemu_log()))
            time.sleep(0.005)


def wait_migration(g, timeout=900, poll=0.02):
    deadline = time.monotonic() + timeout
    while True:
        st = g.qmp("query-migrate", timeout=timeout)
        if st.get("status") == "completed":
            return st
        if st.get("status") in ("failed", "cancelled"):
            raise RuntimeError("QEMU %d migration %s: %s" % (g.pid, st["status"], st.get("error-desc")))
        if time.monotonic() > deadline:
            raise TimeoutError("QEMU %d migration: %s" % (g.pid, st))
        time.sleep(poll)


def setup_migration(g, v):
    g.qmp("migrate-set-capabilities",
          {"capabilities": [{"capability": c, "state": True} for c in v["caps"]]})
    g.qmp("migrate-set-parameters", dict(COMMON_PARAMS, **v["params"]))


def qemu_cycle(chain, name):
    """QEMU 10 save to file: and load into a new QEMU; the guest must continue."""
    v = QEMU_VARIANTS[name]
    src = chain.head
    path = os.path.join(chain.work, name + ".img")
    setup_migration(src, v)
    rss_before = rss_kib(src.pid)
    linux = not isinstance(src, kvmguest.KvmGuest)  # the KVM guest has no work counter
    rate_before = guest_rate(src) if linux else None
    thp_before = harness.ram_thp_kib(src.pid, src.mem_bytes() // 2) if linux else None
    t0 = time.monotonic()
    if v.get("paused"):
        src.qmp("stop")
    src.qmp("migrate", {"uri": "file:" + path})
    st = wait_migration(src)
    save_s = time.monotonic() - t0
    # QEMU's downtime counts from its own stop; a VM stopped before the
    # migrate is frozen for the whole save.
    downtime = float(st.get("downtime", 0))
    frozen_ms = save_s * 1000 if v.get("paused") else downtime
    at_save = src.last_status()
    offset = console_offset(src)
    t0 = time.monotonic()
    subprocess.run(["sync", "-f", path], check=True)
    ram = st.get("ram", {})
    res = {"dump_s": save_s, "dump_durable_s": save_s + time.monotonic() - t0,
           "frozen_ms": frozen_ms, "qemu_downtime_ms": downtime, "total_time_ms": st.get("total-time"),
           "setup_ms": st.get("setup-time"), "dirty_sync_count": ram.get("dirty-sync-count"),
           "transferred_bytes": ram.get("transferred"),
           "image_bytes": harness.allocated_bytes(path), "file_size": os.path.getsize(path),
           "qemu_rss_before_kib": rss_before, "qemu_rss_after_save_kib": rss_kib(src.pid)}
    src.kill()

    res.update(guest_rate=rate_before, thp_before_kib=thp_before)
    dst = chain._guest(incoming=True)
    speed = SpeedWatch(dst.console, offset if dst.console == src.console else 0)
    speed.start()
    t0 = time.monotonic()
    dst.start()
    qmp_retry(dst, "query-status")
    t_up = time.monotonic()
    setup_migration(dst, v)
    dst.qmp("migrate-incoming", {"uri": "file:" + path}, timeout=900)
    wait_migration(dst, poll=0.005)
    t_in = time.monotonic()
    dst.qmp("cont")
    res.update(restore_s=time.monotonic() - t0, startup_s=t_up - t0, incoming_s=t_in - t_up)
    # The KVM chain's QEMUs share one console log; the Linux guest's each
    # have their own.
    res["restore_progress_s"] = wait_first_progress(dst, at_save, offset if dst.console == src.console else 0,
                                                    chain.cfg["rate_kbs"] > 0, t0)
    if rate_before:
        res["full_speed_s"] = speed.wait_full_speed(rate_before, t0)
    speed.stop()
    chain.head = dst
    t0 = time.monotonic()
    dst.wait_passes(1, after=at_save, timeout=600)
    if chain.cfg["rate_kbs"]:
        dst.wait_progress(after=at_save, timeout=600)
    res["verify_s"] = time.monotonic() - t0
    res["qemu_rss_restored_kib"] = rss_kib(dst.pid)
    if linux:
        res["thp_restored_kib"] = harness.ram_thp_kib(dst.pid, dst.mem_bytes() // 2)
    t0 = time.monotonic()
    os.unlink(path)
    res["delete_s"] = time.monotonic() - t0
    return res


def disk_limits(work, mib):
    path = os.path.join(work, "dd.tmp")
    out = {"disk_test_mib": mib}
    for what, args in (("write", ["if=/dev/zero", "of=" + path, "oflag=direct"]),
                       ("read", ["if=" + path, "of=/dev/null", "iflag=direct"])):
        t0 = time.monotonic()
        subprocess.run(["dd", "bs=4M", "count=%d" % (mib // 4)] + args, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out["disk_%s_mbs" % what] = mib / (time.monotonic() - t0)
    os.unlink(path)
    # Buffered writes of the same size into the page cache (no sync): once
    # after the machine sat idle, once right after freeing as much memory.
    # This VM returns free memory to its host (virtio-balloon free page
    # reporting, in 8 MiB blocks, about 2 s after it was freed), so memory
    # that has been free a while must be faulted in from the host again.
    for what, nap in (("cold", 6), ("hot", 0)):
        time.sleep(nap)
        t0 = time.monotonic()
        subprocess.run(["dd", "bs=4M", "count=%d" % (mib // 4), "if=/dev/zero", "of=" + path],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out["pagecache_%s_mbs" % what] = mib / (time.monotonic() - t0)
        os.unlink(path)
    return out


def dirty_rate(g, seconds=3.0):
    """Measured rewrite rate (KiB/s) from two status lines `seconds` apart."""
    a = g.last_status()
    time.sleep(seconds)
    b = g.last_status()
    if not a or not b or b["t"] <= a["t"]:
        return None
    return (b["w"] - a["w"]) * 4 / ((b["t"] - a["t"]) / 1000.0)


def copied_mib(dumplog):
    """MiB the plugin wrote into its image over all passes of a live dump."""
    text = harness.log_text(dumplog)
    return sum(float(m) for m in re.findall(r"live (?:pass|final) \d+: .*?([\d.]+) MiB copied", text))


def incremental_cycle(g, xfs, i, gap_s):
    """A full live dump of the running guest (--leave-running), gap_s of
    guest writes, then an incremental one based on it; both on XFS."""
    res = {}
    for kind, env in (("full", {}), ("incr", {"CRIU_QEMU_BASE_IMAGE": "../full-%d" % i})):
        imgdir = os.path.join(xfs, "%s-%d" % (kind, i))
        os.makedirs(imgdir)
        dump_s, _, _ = timed_criu(["dump", "-t", str(g.pid), "-D", imgdir, "-o", "dump.log", "-v4",
                                   "--libdir", harness.PLUGIN_DIR, "--leave-running"], env=env)
        log_path = os.path.join(imgdir, "dump.log")
        stats = harness.criu_dump_stats(imgdir)
        res.update({kind + "_dump_s": dump_s, kind + "_frozen_ms": stats["frozen_ms"],
                    kind + "_copied_mib": copied_mib(log_path)})
        m = re.search(r"incremental: \d+ chunks unchanged since the base, (\d+) shared with it "
                      r"\((\d+) MiB not written\)", harness.log_text(log_path))
        if kind == "incr":
            assert m, "no incremental pass in %s" % log_path
            res["incr_shared_mib"] = int(m.group(2))
        if kind == "full":
            time.sleep(gap_s)
    return res, g.last_status()


def run_incremental(work, reps, gap_s=10):
    """Incremental dumps on an XFS file system (reflinks): full vs incremental
    live dumps of the main 2G guest, then the last incremental image restores
    on its own (base deleted) and the guest must continue exactly."""
    cfg = dict(SUITE["main"][0])
    log("incremental: %s guest, %d MiB touched, %d KiB/s, %d s between the dumps, %d reps"
        % (cfg["mem"], cfg["wl_mb"], cfg["rate_kbs"], gap_s, reps))
    xfs = os.path.join(work, "xfs")
    script = os.path.join(harness.TOP, "test", "reflink-fs.sh")
    subprocess.run([script, "mount", xfs, "16G"], check=True)
    g = harness.Guest(work, mem=cfg["mem"], wl_mb=cfg["wl_mb"], rate_kbs=cfg["rate_kbs"],
                      zero_every=ZERO_EVERY, name="incr").start()
    try:
        g.wait_ready(timeout=600)
        g.wait_passes(2, timeout=600)
        runs = []
        for i in range(reps):
            r, at = incremental_cycle(g, xfs, i, gap_s)
            log("incremental %d: %s" % (i, r))
            runs.append(r)
            if i + 1 < reps:
                for kind in ("full", "incr"):
                    shutil.rmtree(os.path.join(xfs, "%s-%d" % (kind, i)))
        last = reps - 1
        g.kill()
        shutil.rmtree(os.path.join(xfs, "full-%d" % last))
        imgdir = os.path.join(xfs, "incr-%d" % last)
        mark = g.mark()
        timed_criu(["restore", "-D", imgdir, "-d", "-o", "restore.log", "-v4",
                    "--libdir", harness.PLUGIN_DIR])
        g.wait_passes(1, after=at, since=mark, timeout=600)
        g.wait_progress(after=at, since=mark, timeout=600)
        g.check_console(restarts_at=[mark])
        log("incremental: the last incremental image restored alone, guest verified")
        out = {"config": dict(cfg, reps=reps, gap_s=gap_s), "runs": runs,
               "median": {k: median(runs, k) for k in runs[0]}}
    finally:
        g.kill()
        harness.reap_zombies()
        subprocess.run([script, "umount", xfs])
    return out


def incremental_table(inc):
    m = inc["median"]
    c = inc["config"]
    return ["### Incremental dumps (XFS with reflinks)", "",
            "%s guest, %d MiB touched, %d MB/s of rewrites; a full live dump with "
            "--leave-running, %d s of guest writes, then a live dump based on it "
            "(`base_image`); medians of %d. The last incremental image was restored "
            "after its base was deleted, and the guest verified its memory."
            % (c["mem"], c["wl_mb"], c["rate_kbs"] // 1024, c["gap_s"], c["reps"]), "",
            "| | full | incremental | incremental / full |", "|---|---:|---:|---:|",
            "| dump (s) | %.2f | %.2f | %.2f |" % (m["full_dump_s"], m["incr_dump_s"],
                                                  m["incr_dump_s"] / m["full_dump_s"]),
            "| VM frozen (ms) | %.0f | %.0f | %.2f |" % (m["full_frozen_ms"], m["incr_frozen_ms"],
                                                        m["incr_frozen_ms"] / m["full_frozen_ms"]),
            "| written to the RAM image (MiB) | %.0f | %.0f | %.2f |"
            % (m["full_copied_mib"], m["incr_copied_mib"], m["incr_copied_mib"] / m["full_copied_mib"]),
            "| shared with the base (MiB) | - | %.0f | |" % m["incr_shared_mib"], ""]


def median(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


# --- the KVM case ---------------------------------------------------------

# QEMU -accel kvm with 2 vCPUs, running the bare-metal test guest of
# test/kvm-guest (Linux cannot boot under every KVM, e.g. PVM). wl_mb and
# rate_kbs are per vCPU: 2 x 384 MiB of the 1 GiB touched, 2 x 10 MiB/s
# rewritten (the TCG main configurations' 20 MB/s in all).
KVM_CFG = {"mem": "1G", "smp": 2, "wl_mb": 384, "rate_kbs": 10240}
KVM_MODES = ("plain", "live")
KVM_QEMU = ("qemu-mr", "qemu-mr-mfd")


class KvmQemuChain(QemuChain):
    """QemuChain of KvmGuests. Its QEMUs share one console log (KvmGuest
    keeps it for an incoming migration), so the chain's console is the
    head's."""

    def _guest(self, incoming=False):
        g = kvmguest.KvmGuest(self.work, accel="kvm", smp=self.cfg["smp"], mem=self.cfg["mem"],
                              wl_mb=self.cfg["wl_mb"], rate_kbs=self.cfg["rate_kbs"],
                              zero_every=ZERO_EVERY, seed=self.seed, name="q10-%d" % len(self.guests),
                              incoming="defer" if incoming else None,
                              extra_args=["-S"] if incoming else [])
        g.cmd[0] = self.qemu
        self.guests.append(g)
        return g

    def lines(self):
        return self.head.lines()

    def check_console(self):
        self.head.check_console()


def kvm_dirty_rate(g, seconds=3.0):
    """Measured rewrite rate of both vCPUs together (KiB/s)."""
    a = g.last_full_status()
    time.sleep(seconds)
    b = g.last_full_status()
    if not a or not b or b["t"] <= a["t"]:
        return None
    w = b["w"] - a["w"] + b.get("ap_w", 0) - a.get("ap_w", 0)
    return w * 4 / ((b["t"] - a["t"]) / 1000.0)


def run_kvm(reps, qemu, work_base, cfg=KVM_CFG):
    """The KVM case: one KvmGuest (system QEMU) for criu + the plugin, one
    (QEMU 10) for QEMU's mapped-ram file migration, same machine and
    workload; the other one paused while one is measured, as run_config."""
    work = tempfile.mkdtemp(prefix="kvm-", dir=work_base)
    modes = list(KVM_MODES)
    qvariants = list(KVM_QEMU) if qemu else []
    log("KVM: %s guest, %d vCPUs, %d MiB touched per vCPU, %d KiB/s per vCPU: %d reps of %s"
        % (cfg["mem"], cfg["smp"], cfg["wl_mb"], cfg["rate_kbs"], reps, ", ".join(modes + qvariants)))
    g = kvmguest.KvmGuest(os.path.join(work, "criu"), accel="kvm", smp=cfg["smp"], mem=cfg["mem"],
                          wl_mb=cfg["wl_mb"], rate_kbs=cfg["rate_kbs"], zero_every=ZERO_EVERY).start()
    chain = None
    runs = {m: [] for m in modes + qvariants}
    out = {"config": dict(cfg, reps=reps, zero_every=ZERO_EVERY,
                          touched_mib=cfg["wl_mb"] * cfg["smp"], accel="kvm")}
    try:
        g.wait_ready(timeout=300)
        # One at a time: two first-touch fills under KVM compete for the
        # two cores (and shadow paging under PVM).
        g.qmp("stop")
        if qvariants:
            chain = KvmQemuChain(os.path.join(work, "q10"), qemu, cfg)
            chain.head.wait_ready(timeout=300)
        log("KVM guests ready")
        active = g
        if chain:
            # As run_config: QEMU's first save of a freshly booted guest on
            # its own, the measured cycles start from an -incoming QEMU.
            r = qemu_cycle(chain, FIRST_SAVE)
            out["qemu_first_save"] = dict(r, variant=FIRST_SAVE)
            log("KVM %s first save after boot: %s" % (FIRST_SAVE, brief(r)))
            active = chain.head
        for i in range(reps):
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            if qvariants:
                order += qvariants[i % len(qvariants):] + qvariants[:i % len(qvariants)]
            for m in order:
                want = g if m in CRIU_MODES else chain.head
                if active is not want:
                    active.qmp("stop")
                    want.qmp("cont")
                    active = want
                    want.wait_passes(1, after=want.last_status(), since=want.mark(), timeout=600)
                if "measured_rate_kbs" not in out and m in CRIU_MODES:
                    out["measured_rate_kbs"] = kvm_dirty_rate(g)
                if m in CRIU_MODES:
                    r = criu_cycle(g, work, "%s-%d" % (m, i), m, moving=cfg["rate_kbs"] > 0)
                    r["vm_frozen_ms"] = r["frozen_log_ms"]
                else:
                    r = qemu_cycle(chain, m)
                    r["vm_frozen_ms"] = r["qemu_downtime_ms"]
                    active = chain.head
                r["position"] = order.index(m)
                runs[m].append(r)
                log("KVM %s %d: %s" % (m, i, brief(r)))
        g.check_console()
        if chain:
            chain.check_console()
        log("KVM guests verified after %d restores: no corruption, both vCPUs went on"
            % (reps * len(runs)))
    finally:
        g.kill()
        if chain:
            chain.kill()
        harness.reap_zombies()
    shutil.rmtree(work, ignore_errors=True)
    out["runs"] = runs
    out["median"] = {k: {m: median(r, k) for m, r in runs.items()} for k, _ in KVM_ROWS + ROWS + [
        ("total_time_ms", ""), ("startup_s", ""), ("dirty_sync_count", ""), ("freezing_ms", ""),
        ("frozen_log_ms", ""), ("memdump_ms", ""), ("pages_written", "")]}
    return out


# KVM table rows (besides those of ROWS): vm_frozen_ms is dump.log's seize to
# end of dump for CRIU, query-migrate's downtime for QEMU.
KVM_ROWS = [
    ("vm_frozen_ms", "VM frozen (ms): CRIU dump.log seize..end / QEMU downtime"),
    ("frozen_ms", "  CRIU stats-dump frozen (ms)"),
    ("total_time_ms", "QEMU migration total-time (ms)"),
    ("dump_s", "dump / save (s)"),
    ("dump_durable_s", "  until durable (s)"),
    ("restore_s", "restore / load (s)"),
    ("restore_progress_s", "  until guest progress (s)"),
    ("image_bytes", "image on disk (MiB)"),
    ("live_ms", "live phase (ms)"),
    ("frozen_copy_ms", "frozen copy (ms)"),
    ("fill_ms", "restore fill (ms)"),
    ("qemu_rss_restored_kib", "QEMU RSS after restore (MiB)"),
]


def kvm_table(res):
    cfg, med = res["config"], res["median"]
    modes = list(res["runs"])
    rate = res.get("measured_rate_kbs")
    lines = ["### KVM: QEMU -accel kvm, %d vCPUs (bare-metal test guest)" % cfg["smp"], "",
             "**%s guest, %d vCPUs, %d MiB touched (%d per vCPU), %d MB/s dirtied%s, median of %d**"
             % (cfg["mem"], cfg["smp"], cfg["wl_mb"] * cfg["smp"], cfg["wl_mb"],
                cfg["rate_kbs"] * cfg["smp"] // 1024,
                " (measured %.1f MB/s)" % (rate / 1024) if rate is not None else "", cfg["reps"]), ""]
    lines.append("| | " + " | ".join(modes) + " |")
    lines.append("|---|" + "---:|" * len(modes))
    for key, label in KVM_ROWS:
        vals = [med[key].get(m) for m in modes]
        if all(v is None for v in vals):
            continue
        lines.append("| %s | %s |" % (label.strip(), " | ".join(fmt(key, v) for v in vals)))
    lines.append("")
    qref = "qemu-mr-mfd" if "qemu-mr-mfd" in modes else next((m for m in modes if m.startswith("qemu")), None)
    if qref:
        ours = [m for m in KVM_MODES if m in modes]
        lines.append("| ratio | " + " | ".join("%s / %s" % (m, qref) for m in ours) + " |")
        lines.append("|---|" + "---:|" * len(ours))
        for key in ("vm_frozen_ms", "dump_s", "dump_durable_s", "restore_s", "restore_progress_s",
                    "image_bytes"):
            lines.append("| %s | %s |" % (dict(KVM_ROWS)[key].split(":")[0].strip(),
                                          " | ".join(ratio(med[key][m], med[key][qref]) for m in ours)))
        lines.append("")
    fs = res.get("qemu_first_save")
    if fs:
        lines.append("QEMU's first save of the freshly booted KVM guest (%s, not in the medians): "
                     "%.2f s, downtime %s ms, total-time %s ms."
                     % (fs["variant"], fs["dump_s"], fmt("frozen_ms", fs["frozen_ms"]),
                        fs.get("total_time_ms")))
        lines.append("")
    return lines


def run_config(cfg, reps, modes, qvariants, qemu, work_base, disk=None):
    """Boot both guests, run `reps` rounds of every mode, check the consoles."""
    work = tempfile.mkdtemp(prefix="c-", dir=work_base)
    log("config %s guest, %d MiB touched, %d KiB/s: %d reps of %s"
        % (cfg["mem"], cfg["wl_mb"], cfg["rate_kbs"], reps, ", ".join(modes + qvariants)))
    g = harness.Guest(work, mem=cfg["mem"], wl_mb=cfg["wl_mb"], rate_kbs=cfg["rate_kbs"],
                      zero_every=ZERO_EVERY, kernel_args="wl.status_ms=%d" % STATUS_MS).start()
    chain = QemuChain(work, qemu, cfg) if qvariants else None
    runs = {m: [] for m in modes + qvariants}
    out = {"config": dict(cfg, reps=reps, zero_every=ZERO_EVERY)}
    try:
        # Both boot at once (the boot is TCG-bound; two cores).
        g.wait_ready(timeout=900)
        if chain:
            chain.head.wait_ready(timeout=900)
        log("guests ready")
        if disk is None:
            disk = disk_limits(work, cfg["wl_mb"])
            log("disk: %s" % disk)
        out["disk"] = disk
        active = g
        if chain:
            # A QEMU save reads every page of guest RAM, never-touched ones
            # included (QEMU's RSS grows to the whole guest RAM); the first
            # save of a freshly booted guest was much slower than later ones
            # in our runs. It is reported on its own, and the measured QEMU
            # cycles all start from a QEMU that was itself loaded with
            # -incoming, like CRIU cycles after the first.
            g.qmp("stop")
            r = qemu_cycle(chain, FIRST_SAVE)
            out["qemu_first_save"] = dict(r, variant=FIRST_SAVE)
            log("%s first save after boot: %s" % (FIRST_SAVE, brief(r)))
            active = chain.head
        for i in range(reps):
            # Rotate the order every repetition: a dump finds guest RAM and
            # free memory as the previous restore left them (see
            # Documentation/performance.md), so no mode always follows the same one.
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            if qvariants:
                order += qvariants[i % len(qvariants):] + qvariants[:i % len(qvariants)]
            for m in order:
                want = g if m in CRIU_MODES else chain.head
                if active is not want:
                    active.qmp("stop")
                    want.qmp("cont")
                    active = want
                    want.wait_passes(1, after=want.last_status(), since=want.mark(), timeout=600)
                if "measured_rate_kbs" not in out and m in CRIU_MODES:
                    out["measured_rate_kbs"] = dirty_rate(g)
                if m in CRIU_MODES:
                    r = criu_cycle(g, work, "%s-%d" % (m, i), m, moving=cfg["rate_kbs"] > 0)
                else:
                    r = qemu_cycle(chain, m)
                    active = chain.head
                r["position"] = order.index(m)
                runs[m].append(r)
                log("%s %d: %s" % (m, i, brief(r)))
        g.check_console()
        if chain:
            chain.check_console()
        log("guest memory verified after %d restores: no corruption" % (reps * len(runs)))
    finally:
        g.kill()
        if chain:
            chain.kill()
    shutil.rmtree(work, ignore_errors=True)
    out["runs"] = runs
    out["median"] = {k: {m: median(r, k) for m, r in runs.items()} for k, _ in ROWS + [
        ("total_time_ms", ""), ("startup_s", ""), ("dirty_sync_count", ""), ("freezing_ms", ""),
        ("memdump_ms", ""), ("pages_written", "")]}
    return out


# --- summary ----------------------------------------------------------------

def fmt(key, v):
    if v is None:
        return "-"
    if key == "image_bytes":
        return "%.0f" % (v / MB)
    if key.endswith("_bytes"):
        return "%.1f" % (v / MB)
    if key.endswith("_kib"):
        return "%.1f" % (v / 1024)
    if v == float("inf"):
        return "not in %d s" % FULL_SPEED_WAIT_S
    if key in ("guest_rate", "lazy_fill_speed_pct"):
        return "%.0f" % v
    if key.endswith("_ms"):
        return "%.0f" % v if v >= 10 else "%.1f" % v
    return "%.2f" % v


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "-"


def summary_tables(res, disk):
    """Markdown tables of one configuration: all modes, then ratios."""
    cfg, med = res["config"], res["median"]
    modes = list(res["runs"])
    rate = res.get("measured_rate_kbs")
    lines = ["**%s guest, %d MiB touched, %d MB/s dirtied%s, median of %d**"
             % (cfg["mem"], cfg["wl_mb"], cfg["rate_kbs"] // 1024,
                " (measured %.1f MB/s)" % (rate / 1024) if rate is not None else "", cfg["reps"]), ""]
    lines.append("| | " + " | ".join(modes) + " |")
    lines.append("|---|" + "---:|" * len(modes))
    for key, label in ROWS:
        vals = [med[key][m] for m in modes]
        if all(v is None for v in vals):
            continue
        lines.append("| %s | %s |" % (label.strip(), " | ".join(fmt(key, v) for v in vals)))
    lines.append("")
    qref = "qemu-mr-mfd" if "qemu-mr-mfd" in modes else next((m for m in modes if m.startswith("qemu")), None)
    ours = [m for m in ("plain", "live", "lazy", "live-pc", "idle") if m in modes]
    if ours:
        hdr = ["ours / criu"] + (["ours / %s" % qref] if qref else [])
        lines.append("| ratio | " + " | ".join("%s: %s" % (h, m) for h in hdr for m in ours) + " |")
        lines.append("|---|" + "---:|" * (len(hdr) * len(ours)))
        for key in ("frozen_ms", "dump_s", "dump_durable_s", "restore_s", "full_speed_s",
                    "dump_cpu_s", "image_bytes"):
            cells = [ratio(med[key][m], med[key].get("criu")) for m in ours]
            if qref:
                cells += [ratio(med[key][m], med[key][qref]) for m in ours]
            lines.append("| %s | %s |" % (dict(ROWS)[key].strip(), " | ".join(cells)))
        if "criu-cold" in modes:
            for key in ("restore_s", "full_speed_s"):
                cells = [ratio(med[key][m], med[key].get("criu-cold")) for m in ours]
                lines.append("| %s, against criu-cold | %s |" % (dict(ROWS)[key].strip(),
                             " | ".join(cells + [""] * (len(cells) if qref else 0))))
        lines.append("")
    fs = res.get("qemu_first_save")
    if fs:
        v = fs["variant"]
        lines.append("QEMU's first save of the freshly booted guest (%s, not in the medians): "
                     "%.2f s, %.2f s until durable, downtime %s ms; QEMU's RSS %.0f MiB before, "
                     "%.0f MiB after it (later saves: median %.2f s)."
                     % (v, fs["dump_s"], fs["dump_durable_s"], fmt("frozen_ms", fs["frozen_ms"]),
                        fs["qemu_rss_before_kib"] / 1024, fs["qemu_rss_after_save_kib"] / 1024,
                        med["dump_s"].get(v) or float("nan")))
        lines.append("")
    if "pagecache_cold_mbs" in disk:
        lines.append("Page cache write speed (dd, buffered, %d MiB): %.0f MiB/s after 6 s idle, "
                     "%.0f MiB/s right after freeing the same amount."
                     % (disk["disk_test_mib"], disk["pagecache_cold_mbs"], disk["pagecache_hot_mbs"]))
        lines.append("")
    lines.append("| against the disk (O_DIRECT write %.0f MiB/s, read %.0f MiB/s) | %s |"
                 % (disk["disk_write_mbs"], disk["disk_read_mbs"], " | ".join(modes)))
    lines.append("|---|" + "---:|" * len(modes))
    w = [med["image_bytes"][m] / MB / med["dump_durable_s"][m] for m in modes]
    r = [med["image_bytes"][m] / MB / med["restore_s"][m] for m in modes]
    lines.append("| image MiB/s until durable | %s |" % " | ".join("%.0f" % x for x in w))
    lines.append("| = share of the write limit | %s |" % " | ".join("%.2f" % (x / disk["disk_write_mbs"]) for x in w))
    lines.append("| image MiB/s restored | %s |" % " | ".join("%.0f" % x for x in r))
    lines.append("| = share of the read limit | %s |" % " | ".join("%.2f" % (x / disk["disk_read_mbs"]) for x in r))
    lines.append("")
    return lines


def sweep_table(title, points, xkey, xfmt):
    modes = [m for m in SWEEP_MODES + SWEEP_QEMU]
    lines = ["**%s** (frozen ms / dump until durable s / restore s)" % title, ""]
    lines.append("| %s | reps | %s |" % (xkey, " | ".join(modes)))
    lines.append("|---|---:|" + "---:|" * len(modes))
    for p in points:
        med = p["median"]
        cells = []
        for m in modes:
            if med["frozen_ms"].get(m) is None:
                cells.append("-")
            else:
                cells.append("%s / %.2f / %.2f" % (fmt("frozen_ms", med["frozen_ms"][m]),
                                                  med["dump_durable_s"][m], med["restore_s"][m]))
        lines.append("| %s | %d | %s |" % (xfmt(p["config"]), p["config"]["reps"], " | ".join(cells)))
    lines.append("")
    return lines


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", "/var/tmp"],
                        stdout=subprocess.PIPE, text=True).stdout.strip()
    others = subprocess.run(["pgrep", "-c", "-f", "qemu-system"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "fs_var_tmp": fs, "loadavg_at_start": os.getloadavg(),
            "other_qemu_at_start": int(others or 0)}


def qemu_version(binary):
    r = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, text=True)
    return r.stdout.splitlines()[0] if r.returncode == 0 else None


def write_results(result):
    """results.json and summary.md (the tables of Documentation/performance.md)."""
    md = ["Run of %s: %.0f s in all. criu %s; %s (for CRIU); %s. Machine: %s."
          % (time.strftime("%Y-%m-%d %H:%M"), result["elapsed_s"], result["criu"],
             result["qemu_criu"], result["qemu10"], result["machine"]), ""]
    for r in result.get("main", []):
        md += summary_tables(r, r["disk"])
    if "size" in result:
        md += sweep_table("RAM size sweep (3/4 of RAM touched, 20 MB/s)", result["size"], "RAM",
                          lambda c: "%s / %d MiB" % (c["mem"], c["wl_mb"]))
    if "rate" in result:
        md += sweep_table("Dirty rate sweep (2G guest, 1536 MiB touched)", result["rate"], "dirty MB/s",
                          lambda c: "%d" % (c["rate_kbs"] // 1024))
    if "incremental" in result:
        md += incremental_table(result["incremental"])
    if "kvm" in result:
        md += kvm_table(result["kvm"])
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n" + "\n".join(md))
    log("results: %s, %s" % (os.path.join(OUT, "results.json"), os.path.join(OUT, "summary.md")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mem", help="one configuration only: guest RAM (e.g. 2G)")
    ap.add_argument("--wl-mb", type=int, help="MiB the workload touches (default 1536)")
    ap.add_argument("--rate-kbs", type=int, help="KiB/s the workload rewrites (default 20480)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per main configuration")
    ap.add_argument("--no-qemu", action="store_true", help="skip QEMU 10's file migration")
    ap.add_argument("--no-sweep", action="store_true", help="suite: skip the size/rate sweeps")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-incremental", action="store_true", help="suite: skip incremental dumps")
    ap.add_argument("--incremental-only", action="store_true",
                    help="run only the incremental dumps, added to the last results.json")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds between each criu dump and its restore, so that every mode "
                         "restores on memory equally cold (default 0)")
    ap.add_argument("--no-c", action="store_true", help="skip the C benchmarks (test/bench/bench_*.c)")
    ap.add_argument("--c-only", action="store_true", help="run only the C benchmarks")
    ap.add_argument("--c-mib", type=int, default=1024,
                    help="MiB of memory the C benchmarks copy (default 1024)")
    ap.add_argument("--kvm-only", action="store_true",
                    help="run only the KVM case (-accel kvm, 2 vCPUs), added to the last results.json")
    ap.add_argument("--no-kvm", action="store_true", help="suite: skip the KVM case")
    ap.add_argument("--kvm-reps", type=int, default=3, help="repetitions of the KVM case (default 3)")
    args = ap.parse_args()
    global SETTLE_S
    SETTLE_S = args.settle
    if args.incremental_only:
        return incremental_only()
    if args.kvm_only:
        return kvm_only(args)
    if args.c_only:
        c_benchmarks(args.c_mib)
        return
    c_results = None if args.no_c else c_benchmarks(args.c_mib)

    single = args.mem is not None or args.wl_mb is not None or args.rate_kbs is not None
    if single:
        suite = {"main": [{"mem": args.mem or "2G", "wl_mb": args.wl_mb or 1536,
                           "rate_kbs": args.rate_kbs if args.rate_kbs is not None else 20480}]}
    else:
        suite = dict(SUITE)
        if args.no_sweep:
            suite = {"main": SUITE["main"]}

    qemu = None
    if not args.no_qemu:
        if os.access(QEMU10, os.X_OK):
            qemu = QEMU10
        else:
            log("no QEMU 10 at %s (run scripts/qemu10.sh): QEMU cycles skipped" % QEMU10)
    qvariants = list(QEMU_VARIANTS) if qemu else []

    # SIGTERM (e.g. a CI timeout) unwinds like ^C, so the guests are killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    harness.become_subreaper()
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="criu-qemu-bench-", dir="/var/tmp")
    result = {"criu": harness.Criu(work).version(), "qemu_criu": qemu_version(harness.QEMU),
              "qemu10": qemu_version(qemu) if qemu else None, "machine": machine(),
              "qemu_variants": {k: v["what"] for k, v in QEMU_VARIANTS.items()},
              "qemu_common_params": COMMON_PARAMS, "c_benchmarks": c_results}
    log("criu %s; QEMU for CRIU: %s; QEMU 10: %s; work dir %s"
        % (result["criu"], result["qemu_criu"], result["qemu10"], work))
    log("machine: %s" % result["machine"])

    result["main"] = []
    disk = None
    for cfg in suite["main"]:
        r = run_config(cfg, args.reps, list(CRIU_MODES), qvariants, qemu, work)
        disk = disk or r["disk"]
        result["main"].append(r)
    sq = [q for q in SWEEP_QEMU if q in qvariants]
    in_sweep = {"size": lambda c: c["rate_kbs"] == 20480 and gib(c) * 768 == c["wl_mb"],
                "rate": lambda c: c["mem"] == "2G" and c["wl_mb"] == 1536}
    for kind in ("size", "rate"):
        if kind in suite:
            result[kind] = [r for r in result["main"] if in_sweep[kind](r["config"])]
            for cfg in suite[kind]:
                result[kind].append(run_config(cfg, 1, list(SWEEP_MODES), sq, qemu, work, disk=disk))
            key = (lambda r: gib(r["config"])) if kind == "size" else \
                (lambda r: r["config"]["rate_kbs"])
            result[kind].sort(key=key)
    if not single and not args.no_incremental:
        result["incremental"] = run_incremental(work, 3)
    if not single and not args.no_kvm:
        why = kvmguest.kvm_unusable()
        if why:
            log("KVM case skipped: %s" % why)
            result["kvm_skipped"] = why
        else:
            result["kvm"] = run_kvm(args.kvm_reps, qemu, work)
    result["elapsed_s"] = time.monotonic() - T0

    # Compatibility with the first version of results.json: the first
    # configuration's figures at the top level.
    first = result["main"][0]
    result.update(config=first["config"], disk=first["disk"], native=first["runs"]["criu"],
                  median=first["median"])
    result["criu-qemu"] = {m: first["runs"][m] for m in ("plain", "live")}

    write_results(result)
    if not args.no_plots and not single:
        subprocess.run([sys.executable, os.path.join(HERE, "bench", "plot.py"),
                        os.path.join(OUT, "results.json"), os.path.join(harness.TOP, "Documentation")])
    shutil.rmtree(work, ignore_errors=True)


def qemu10_or_none():
    if os.access(QEMU10, os.X_OK):
        return QEMU10
    log("no QEMU 10 at %s (run scripts/qemu10.sh): QEMU cycles skipped" % QEMU10)
    return None


def kvm_only(args):
    """--kvm-only: the KVM case alone, added to the last results.json (a
    new one if there is none)."""
    why = kvmguest.kvm_unusable()
    if why:
        raise SystemExit("bench --kvm-only: KVM is not usable here: %s" % why)
    if not os.path.exists(kvmguest.ELF):
        raise SystemExit("bench --kvm-only: no %s (make kvm-guest)" % kvmguest.ELF)
    qemu = None if args.no_qemu else qemu10_or_none()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    harness.become_subreaper()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "results.json")
    try:
        with open(path) as f:
            result = json.load(f)
    except (FileNotFoundError, ValueError):
        result = {"criu": harness.Criu(OUT).version(), "qemu_criu": qemu_version(harness.QEMU),
                  "qemu10": qemu_version(qemu) if qemu else None, "machine": machine(),
                  "qemu_variants": {k: v["what"] for k, v in QEMU_VARIANTS.items()},
                  "qemu_common_params": COMMON_PARAMS, "elapsed_s": 0.0}
    log("KVM only; criu %s; QEMU for CRIU: %s; QEMU 10: %s"
        % (result["criu"], qemu_version(harness.QEMU), qemu_version(qemu) if qemu else None))
    work = tempfile.mkdtemp(prefix="criu-qemu-bench-", dir="/var/tmp")
    t0 = time.monotonic()
    try:
        result["kvm"] = run_kvm(args.kvm_reps, qemu, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["kvm"]["machine"] = machine()
    result["kvm"]["qemu_criu"] = qemu_version(harness.QEMU)
    result["kvm"]["qemu10"] = qemu_version(qemu) if qemu else None
    result["elapsed_s"] = result.get("elapsed_s", 0.0) + time.monotonic() - t0
    write_results(result)


def incremental_only():
    harness.become_subreaper()
    with open(os.path.join(OUT, "results.json")) as f:
        result = json.load(f)
    work = tempfile.mkdtemp(prefix="criu-qemu-bench-", dir="/var/tmp")
    t0 = time.monotonic()
    result["incremental"] = run_incremental(work, 3)
    result["elapsed_s"] += time.monotonic() - t0
    write_results(result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
