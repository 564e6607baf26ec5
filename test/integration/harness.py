"""Test harness: real QEMU guests as our own children, real CRIU with the plugin.

The harness process is a child subreaper, so QEMU processes restored by
`criu restore -d` are reparented to us and reaped here. PID 1 on these
machines reaps orphans slowly, and a zombie holding QEMU's PID makes the
next `criu restore` fail with "Can't fork ... File exists".
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "test", "guest"))
import wlcheck  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
GUEST_DIR = os.path.join(TOP, "build", "guest")
PLUGIN_DIR = os.path.join(BUILD, "plugin")
IMGTOOL = os.path.join(BUILD, "criu-qemu-img")
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
PR_SET_CHILD_SUBREAPER = 36
CRIU_FAULT = os.environ.get("CRIU_FAULT", "130")


def criu_bin():
    if os.environ.get("CRIU"):
        return os.environ["CRIU"]
    with open(os.path.join(TOP, "build", "criu.mk")) as f:
        for line in f:
            if line.startswith("CRIU :="):
                return line.split(":=", 1)[1].strip()
    raise RuntimeError("no CRIU: run 'make deps'")


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_zombies():
    """Reap every exited child (restored QEMUs are ours too)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_pid_gone(pid, timeout=30):
    """Wait until pid is reaped and free for reuse by criu restore."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        reap_zombies()
        if not os.path.exists("/proc/%d" % pid):
            return
        time.sleep(0.05)
    raise TimeoutError("pid %d still exists" % pid)


# A workload line that does not start a line: the one before it was cut.
WL_GLUED = re.compile(r"(?<=[^\n])(?=WL (status|start|CORRUPT|error|discarded|mark|markval|stopped) )")


class CriuError(Exception):
    pass


class Guest:
    """A TCG QEMU guest running the memory-verification workload."""

    def __init__(self, workdir, mem="512M", wl_mb=64, rate_kbs=512, zero_every=16,
                 seed=None, extra_args=(), memfd=False, name="guest", kernel_args=""):
        self.workdir = workdir
        self.name = name
        os.makedirs(workdir, exist_ok=True)
        self.console = os.path.join(workdir, name + "-console.log")
        self.qmp_path = os.path.join(workdir, name + "-qmp.sock")
        self.stderr_path = os.path.join(workdir, name + "-qemu.log")
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(3), "little") + 1
        self.mem = mem
        self.wl_mb = wl_mb
        append = ("console=ttyS0 quiet panic=-1 wl.mb=%d wl.rate=%d wl.zero_every=%d wl.seed=%d"
                  % (wl_mb, rate_kbs, zero_every, self.seed)) + (" " + kernel_args if kernel_args else "")
        cmd = [QEMU, "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
               "-no-reboot", "-name", name,
               "-kernel", os.path.join(GUEST_DIR, "vmlinuz"),
               "-initrd", os.path.join(GUEST_DIR, "initramfs.cpio.gz"),
               "-append", append,
               # append=on: O_WRONLY|O_APPEND files are exempt from CRIU's
               # file-size check, so an image taken with --leave-running can
               # be restored after the console log has grown.
               "-chardev", "file,id=con0,path=%s,append=on" % self.console,
               "-serial", "chardev:con0",
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if memfd:
            cmd += ["-object", "memory-backend-memfd,id=ram0,size=%s,share=on" % mem,
                    "-machine", "memory-backend=ram0", "-m", mem]
        else:
            cmd += ["-m", mem]
        self.cmd = cmd + list(extra_args)
        self.proc = None
        self.pid = None

    def start(self, keep_console=False):
        """Start QEMU. keep_console: the console log stays (an incoming
        migration goes on writing it where the source stopped)."""
        for p in (self.qmp_path, self.stderr_path) + (() if keep_console else (self.console,)):
            if os.path.exists(p):
                os.unlink(p)
        err = open(self.stderr_path, "a")
        # Own session and no tty: CRIU then needs no --shell-job.
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=err,
                                     stderr=err, start_new_session=True)
        err.close()
        self.pid = self.proc.pid
        return self

    # --- console -----------------------------------------------------------
    def lines(self):
        """The console's lines. A QEMU killed in the middle of a line (a
        checkpointed one, replaced by its restore) leaves it unfinished,
        and the restored guest's next line is glued to it: every workload
        line ("WL ...") starts a line of its own."""
        try:
            with open(self.console, errors="replace") as f:
                return WL_GLUED.sub("\n", f.read()).splitlines()
        except FileNotFoundError:
            return []

    def statuses(self, lines=None):
        return [s for s in map(wlcheck.parse_status, lines if lines is not None else self.lines()) if s]

    def last_status(self):
        st = self.statuses()
        return st[-1] if st else None

    def wait_for(self, pred, timeout=60, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            reap_zombies()
            v = pred()
            if v:
                return v
            if self.pid and not pid_alive(self.pid):
                raise AssertionError("QEMU %d died while waiting for %s; console tail:\n%s\nqemu log:\n%s"
                                     % (self.pid, what, "\n".join(self.lines()[-20:]), self.qemu_log()))
            time.sleep(0.1)
        raise TimeoutError("timed out after %ds waiting for %s; console tail:\n%s"
                           % (timeout, what, "\n".join(self.lines()[-20:])))

    def wait_ready(self, timeout=120):
        self.wait_for(lambda: any("WL ready" in l for l in self.lines()), timeout, "WL ready")
        return self.wait_passes(1, timeout)

    def mark(self):
        """A point in the console log; later waits look only past it."""
        return len(self.lines())

    def _status_since(self, since):
        st = self.statuses(self.lines()[since:])
        return st[-1] if st else None

    def wait_passes(self, n, timeout=120, after=None, since=0):
        """Wait for a status line (past console line `since`) showing at
        least n more completed passes than the status `after`."""
        base = after["pass"] if after else 0

        def ok():
            st = self._status_since(since)
            return st if st and st["pass"] >= base + n else None
        return self.wait_for(ok, timeout, "%d workload passes" % n)

    def wait_progress(self, timeout=60, after=None, since=0):
        """Wait until rewriting went on past the status `after`."""
        def ok():
            st = self._status_since(since)
            return st if st and st["w"] > after["w"] and st["pass"] > after["pass"] else None
        return self.wait_for(ok, timeout, "workload progress")

    def keeps_running(self, at, since=0, passes=3, restarts_at=()):
        """The workload goes on past the status `at`: `passes` full
        verification passes and new rewrites in the console after line
        `since`, and the whole console checks out (check_console)."""
        self.wait_passes(passes, after=at, since=since)
        self.wait_progress(after=at, since=since)
        self.check_console(restarts_at=restarts_at)

    def check_console(self, restarts_at=()):
        """No CORRUPT line anywhere, every checksum matches its w, and w and
        the pass count never go back -- except at the console lines in
        `restarts_at`, where a restore from an older image resumes."""
        lines = self.lines()
        starts = [l for l in lines if "WL start" in l]
        assert len(starts) == 1, "guest restarted (%d WL start lines)" % len(starts)
        problems = []
        bounds = [0] + sorted(restarts_at) + [len(lines)]
        for lo, hi in zip(bounds, bounds[1:]):
            seg = lines[lo:hi]
            if lo:
                seg = [starts[0]] + seg
            problems += wlcheck.check_log(seg)
        assert not problems, "workload problems:\n" + "\n".join(problems[:20])

    def mem_bytes(self):
        """Guest RAM ("2G", "512M") in bytes."""
        return int(self.mem[:-1]) << {"G": 30, "M": 20}[self.mem[-1].upper()]

    def qemu_log(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def console_size(self):
        return os.path.getsize(self.console)

    # --- QMP ---------------------------------------------------------------
    def qmp(self, command, arguments=None, timeout=10):
        """One-shot QMP: connect, negotiate, run one command, disconnect.

        The connection is closed again before any dump: CRIU cannot dump a
        unix socket connected to a process outside the dumped tree."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        try:
            json.loads(f.readline())  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments or {}}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        break
            if "error" in msg:
                raise RuntimeError("QMP %s: %s" % (command, msg["error"]))
            return msg["return"]
        finally:
            f.close()
            s.close()

    # --- lifecycle ---------------------------------------------------------
    def kill(self):
        if self.pid and pid_alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.pid:
            wait_pid_gone(self.pid)


class Criu:
    def __init__(self, workdir):
        self.bin = criu_bin()
        self.workdir = workdir

    def _env(self, env):
        e = dict(os.environ)
        # Hardware breakpoints do not fire on this machine kind (PVM nested
        # virtualisation has no usable debug registers): CRIU's parasite would
        # run past its exit trap and CRIU waits forever. CRIU's own switch for
        # such hosts is fault injection 130 (FI_NO_BREAKPOINTS): it then steps
        # out of the parasite by syscall tracing instead.
        e.setdefault("CRIU_FAULT", CRIU_FAULT)
        # The UBSan build (make integration-san) must fail loudly.
        e.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        if env:
            e.update(env)
        return e

    def run(self, args, log, expect_ok=True, timeout=300, env=None, pass_fds=()):
        cmd = [self.bin] + args
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=self._env(env),
                           pass_fds=pass_fds)
        elapsed = time.monotonic() - t0
        reap_zombies()
        if expect_ok and r.returncode != 0:
            tail = ""
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    tail = "".join(f.readlines()[-40:])
            raise CriuError("%s failed (rc %d): %s\n--- log tail ---\n%s"
                            % (" ".join(cmd), r.returncode, r.stdout.decode(errors="replace"), tail))
        return r.returncode, elapsed

    def _dump_args(self, pid, imgdir, plugin, leave_running):
        os.makedirs(imgdir, exist_ok=True)
        args = ["dump", "-t", str(pid), "-D", imgdir, "-o", "dump.log", "-v4"]
        if plugin:
            args += ["--libdir", PLUGIN_DIR]
        else:
            args += ["--libdir", os.path.join(self.workdir, "no-plugins")]
            os.makedirs(args[-1], exist_ok=True)
        if leave_running:
            args.append("--leave-running")
        return args

    def dump(self, pid, imgdir, plugin=True, leave_running=False, extra=(), expect_ok=True, env=None):
        args = self._dump_args(pid, imgdir, plugin, leave_running)
        return self.run(args + list(extra), os.path.join(imgdir, "dump.log"), expect_ok, env=env)

    def dump_async(self, pid, imgdir, env=None):
        """Start a dump in the background; returns the Popen (wait() it)."""
        args = self._dump_args(pid, imgdir, True, False)
        return subprocess.Popen([self.bin] + args, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=self._env(env))

    def restore(self, imgdir, plugin=True, extra=(), expect_ok=True, env=None, pass_fds=()):
        log = os.path.join(imgdir, "restore.log")
        args = ["restore", "-D", imgdir, "-d", "-o", "restore.log", "-v4"]
        if plugin:
            args += ["--libdir", PLUGIN_DIR]
        else:
            args += ["--libdir", os.path.join(self.workdir, "no-plugins")]
            os.makedirs(args[-1], exist_ok=True)
        return self.run(args + list(extra), log, expect_ok, env=env, pass_fds=pass_fds)

    def version(self):
        r = subprocess.run([self.bin, "--version"], stdout=subprocess.PIPE, text=True)
        return r.stdout.strip().replace("\n", " ")


def plugin_lines(logpath):
    with open(logpath, errors="replace") as f:
        return [l.rstrip("\n") for l in f if "qemu_plugin" in l]


def log_text(logpath):
    with open(logpath, errors="replace") as f:
        return f.read()


def pages_img_bytes(imgdir):
    """Bytes of CRIU's own page images (pages-*.img)."""
    return sum(os.path.getsize(os.path.join(imgdir, f)) for f in os.listdir(imgdir)
               if f.startswith("pages-") and f.endswith(".img"))


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def criu_pagemap(imgdir, pid):
    """(vaddr, nr_pages) of every entry in CRIU's pagemap-PID.img: the pages
    CRIU itself stored for that task."""
    with open(os.path.join(imgdir, "pagemap-%d.img" % pid), "rb") as f:
        data = f.read()
    i, entries, first = 8, [], True  # two magics
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "little")
        msg = data[i + 4:i + 4 + n]
        i += 4 + n
        if first:  # pagemap_head
            first = False
            continue
        fields = pb_message_fields(msg)
        entries.append((fields[1], fields[2]))
    return entries


def plugin_ram_ranges(dumplog):
    """Guest RAM ranges the plugin reports having saved: [(start, end)]."""
    out = []
    for line in plugin_lines(dumplog):
        if ": RAM block " in line and " at 0x" in line:
            addr = int(line.split(" at ")[1].split(",")[0], 16)
            mib = int(line.split(", ")[1].split(" MiB")[0])
            out.append((addr, addr + (mib << 20)))
    return out


def pb_varint_bytes(v):
    """v as a protobuf varint."""
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_encode(items):
    """A protobuf message from (field number, value) pairs: int and bool as
    varints, str and bytes length-delimited."""
    out = bytearray()
    for num, v in items:
        if isinstance(v, str):
            v = v.encode()
        if isinstance(v, bytes):
            out += pb_varint_bytes(num << 3 | 2) + pb_varint_bytes(len(v)) + v
        else:
            out += pb_varint_bytes(num << 3) + pb_varint_bytes(int(v))
    return bytes(out)


def pb_message_items(msg):
    """Top-level (field, value) pairs of a protobuf message in order, repeated
    fields included; length-delimited values as bytes."""
    out, i = [], 0
    while i < len(msg):
        key, i = _varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(msg, i)
        elif wire == 2:
            n, i = _varint(msg, i)
            v = msg[i:i + n]
            i += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            v = int.from_bytes(msg[i:i + n], "little")
            i += n
        else:
            raise ValueError("unexpected protobuf wire type %d" % wire)
        out.append((field, v))
    return out


def pb_message_fields(msg):
    """Top-level fields of a protobuf message (the last of repeated ones)."""
    return dict(pb_message_items(msg))


def image_present_pages(path):
    """{block name: set of page indexes whose bit is set} of a fixed-ram
    image, read as Documentation/image-format.md says, not with our C code."""
    with open(path, "rb") as f:
        prefix = f.read(32)
        assert prefix[:8] == b"CRQMRAM1", prefix[:8]
        hdr = f.read(int.from_bytes(prefix[12:16], "little"))
        out = {}
        for field, blk in pb_message_items(hdr):
            if field != 3:
                continue
            b = pb_message_fields(blk)
            nr_pages = b[3] // b[4]
            f.seek(b[6])
            # Little-endian u64 words, LSB first: byte k holds pages 8k..8k+7.
            data = f.read((nr_pages + 63) // 64 * 8)
            out[b[1].decode()] = {k * 8 + i for k, v in enumerate(data) if v
                                  for i in range(8) if v >> i & 1}
        return out


def ram_thp_kib(pid, min_bytes):
    """AnonHugePages (KiB) of the process's anonymous, not executable
    mappings of at least min_bytes: the guest RAM block(s), not QEMU's heap
    or TCG's (executable) code buffer."""
    total, size, anon = 0, 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                fields = line.split()
                a, b = (int(x, 16) for x in fields[0].split("-"))
                size = b - a
                anon = len(fields) < 6 and "x" not in fields[1]
            elif line.startswith("AnonHugePages:") and anon and size >= min_bytes:
                total += int(line.split()[1])
    return total


def thp_mode():
    """The system's THP mode: always, madvise or never."""
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        return re.search(r"\[(\w+)\]", f.read()).group(1)


def uffd_vmas(pid, kinds=("um", "uw", "ui")):
    """VmFlags lines of pid's VMAs registered with a userfaultfd in any of
    `kinds` (um: missing, uw: write-protect, ui: minor)."""
    with open("/proc/%d/smaps" % pid) as f:
        return [l.strip() for l in f if l.startswith("VmFlags:") and
                any(" " + k in l for k in kinds)]


def present_pages(pid, start, end):
    """Page indexes (from start) of [start, end) present in pid's memory."""
    n = (end - start) // 4096
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek(start // 4096 * 8)
        data = f.read(n * 8)
    return {i for i in range(n) if data[i * 8 + 7] & 0x80}


def criu_dump_stats(imgdir):
    """Times (ms) from CRIU's stats-dump image: two magics, then one
    length-prefixed stats_entry whose field 1 is dump_stats_entry."""
    with open(os.path.join(imgdir, "stats-dump"), "rb") as f:
        data = f.read()
    n = int.from_bytes(data[8:12], "little")
    dump = pb_message_fields(pb_message_fields(data[12:12 + n])[1])
    return {"frozen_ms": dump[2] / 1000.0, "freezing_ms": dump[1] / 1000.0,
            "memdump_ms": dump[3] / 1000.0, "pages_written": dump[7]}



# --- what the test files share: guests, dumps, restores, images -----------------

def wait_log(path, text, proc, timeout=60):
    """Wait until text is in the log at path, while proc (criu) runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in log_text(path):
            return
        assert proc.poll() is None, "criu exited (rc %s) before '%s'" % (proc.returncode, text)
        time.sleep(0.05)
    raise AssertionError("no '%s' in %s after %d s" % (text, path, timeout))


def dump_paused(criu, pid, imgdir, env, during, timeout=120):
    """criu dump of pid in the background, env holding the plugin's
    CRIU_QEMU_TEST_PAUSE_MS (a pause after live pass 1); during() runs in
    that pause. Returns (criu's exit status, during's value); criu is
    killed if it is still there when this returns."""
    proc = criu.dump_async(pid, imgdir, env=env)
    try:
        wait_log(os.path.join(imgdir, "dump.log"), "test pause:", proc)
        result = during()
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reap_zombies()
    return rc, result


def start_guest(workdir, guests, **kw):
    """A Guest (kw: its parameters) registered in the guests fixture, booted,
    its workload ready and two passes through."""
    g = Guest(workdir, **kw).start()
    guests.append(g)
    g.wait_ready()
    g.wait_passes(2)
    return g


def ram_image(imgdir):
    """The one RAM image (qemu-ram-*.img) in imgdir."""
    imgs = [f for f in os.listdir(imgdir) if f.startswith("qemu-ram-") and f.endswith(".img")]
    assert len(imgs) == 1, os.listdir(imgdir)
    return os.path.join(imgdir, imgs[0])


def img_tool(*args):
    """criu-qemu-img with args; stdout and stderr together in .stdout."""
    return subprocess.run([IMGTOOL] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def failing_post_dump_script(workdir):
    """A CRIU action script that fails the dump at its very end (post-dump)."""
    script = os.path.join(workdir, "fail-post-dump.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && exit 1\nexit 0\n')
    os.chmod(script, 0o755)
    return script


def dump_and_check_handoff(criu, g, imgdir, **kw):
    """criu dump (kw: Criu.dump's) in which the plugin saved the RAM; dump.log."""
    criu.dump(g.pid, imgdir, **kw)
    log = log_text(os.path.join(imgdir, "dump.log"))
    assert "complete and durable" in log, "plugin did not save RAM"
    return log


def restore_continues(criu, g, imgdir, at_dump, rewinds=False):
    """Restore; the restored guest continues from at_dump: two full
    verification passes and new rewrites in console lines it wrote, its
    counters never go back (rewinds: except where this restore starts, from
    an older image) and every page checks out (a guest on another dump's
    RAM fails here). Returns restore.log."""
    mark = g.mark()
    criu.restore(imgdir)
    assert pid_alive(g.pid)
    g.keeps_running(at_dump, since=mark, passes=2, restarts_at=[mark] if rewinds else [])
    return log_text(os.path.join(imgdir, "restore.log"))


def restore_and_verify(criu, g, imgdir, at_dump, rewinds=False):
    """restore_continues(), with the RAM restored by the plugin. Returns restore.log."""
    log = restore_continues(criu, g, imgdir, at_dump, rewinds=rewinds)
    assert "RAM restored" in log
    return log


def wait_guardian_gone(g):
    """A --leave-running dump's guardian gives pages back; a dump without the
    plugin must not start before (it would store pages not yet back as zero)."""
    g.wait_for(lambda: not uffd_vmas(g.pid), 60, "pages given back")


def guardian_log(imgdir, pid):
    """The guardian's log for pid in imgdir; "" while there is none."""
    try:
        return log_text(os.path.join(imgdir, "guardian-%d.log" % pid))
    except FileNotFoundError:
        return ""


def live_passes(dumplog):
    """[(kind, n, pages)] for every 'live pass N' / 'live final N' line."""
    out = []
    for line in plugin_lines(dumplog):
        m = re.search(r"live (pass|final) (\d+): (\d+) pages", line)
        if m:
            out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


def corrupt_copy(src, dst, how):
    """A copy of image directory src at dst with its RAM image damaged:
    truncated by a page, its magic overwritten, or a byte of page data flipped."""
    shutil.copytree(src, dst)
    img = ram_image(dst)
    size = os.path.getsize(img)
    with open(img, "r+b") as f:
        if how == "truncate":
            f.truncate(size - 4096)
        elif how == "magic":
            f.seek(0)
            f.write(b"XXXXXXXX")
        elif how == "page":
            # Flip the first non-zero byte of block 0's page data.
            blk = json.loads(img_tool("show", "--json", img).stdout)["blocks"][0]
            data_off = int(blk["pages_offset"])
            f.seek(data_off)
            chunk = f.read(64 << 20)
            pos = data_off + len(chunk) - len(chunk.lstrip(b"\0"))
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 0xFF]))
    return dst
