"""KvmGuest: QEMU running the bare-metal test guest of test/kvm-guest.

The guest runs under -accel kvm on machines whose /dev/kvm cannot boot
Linux (PVM) and under -accel tcg.  It prints the same WL lines as the
Linux guest (test/guest/README.md), so everything harness.Guest does with
the console (wait_ready, wait_passes, keeps_running, check_console) and
QMP works unchanged; the status line carries extra fields, see
test/kvm-guest/README.md.
"""
import os

import harness
from harness import wlcheck

# Like the Linux guest, one build for every BUILD (SAN=1 ... share it).
ELF = os.path.join(harness.TOP, "build", "kvm-guest", "kvm-guest.elf")
HZ = 100  # the guest's PIT rate (test/kvm-guest/guest.h)


def kvm_unusable():
    """Why this machine cannot run -accel kvm guests, or None if it can."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        return "/dev/kvm cannot be opened read-write: %s" % e
    return None


class KvmGuest(harness.Guest):
    """The bare-metal guest under -accel kvm or tcg, with smp vCPUs.

    harness.Guest.__init__ builds the Linux guest's command line, so it is
    not called; the attributes the inherited methods use are set here."""

    def __init__(self, workdir, accel="kvm", smp=1, mem="128M", wl_mb=16,
                 rate_kbs=1024, zero_every=16, seed=None, append="",
                 name="kvmguest", incoming=None, extra_args=()):
        self.workdir = workdir
        self.name = name
        os.makedirs(workdir, exist_ok=True)
        self.console = os.path.join(workdir, "kvmguest-console.log")
        self.qmp_path = os.path.join(workdir, name + "-qmp.sock")
        self.stderr_path = os.path.join(workdir, name + "-qemu.log")
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(3), "little") + 1
        self.mem, self.wl_mb, self.smp, self.accel = mem, wl_mb, smp, accel
        self.append = ("wl.mb=%d wl.rate=%d wl.zero_every=%d wl.seed=%d"
                       % (wl_mb, rate_kbs, zero_every, self.seed)) + (" " + append if append else "")
        self.extra_args = list(extra_args)
        cmd = [harness.QEMU, "-accel", accel, "-smp", str(smp), "-m", mem,
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-name", name, "-kernel", ELF, "-append", self.append,
               # append=on: see harness.Guest; also lets a migrated guest
               # go on writing the same console log.
               "-chardev", "file,id=con0,path=%s,append=on" % self.console,
               "-serial", "chardev:con0",
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if incoming:
            cmd += ["-incoming", incoming]
        self.incoming_uri = incoming
        self.cmd = cmd + self.extra_args
        self.proc = None
        self.pid = None

    def start(self):
        return super().start(keep_console=bool(self.incoming_uri))

    def for_incoming(self, uri, name=None):
        """A guest with the same machine and command line that takes its
        state from the migration stream at uri (not started yet)."""
        g = KvmGuest(self.workdir, self.accel, self.smp, self.mem, self.wl_mb,
                     seed=self.seed, name=name or self.name + "-in", incoming=uri,
                     extra_args=self.extra_args)
        g.append = self.append
        g.cmd[g.cmd.index("-append") + 1] = self.append
        return g

    def last_full_status(self):
        """The last status line with all its fields (one that QEMU's end
        cut short has not the trailing ones)."""
        full = [st for st in self.statuses() if "ticks" in st]
        return full[-1] if full else None

    def qmp_status(self):
        """QMP query-status' status, or None while QMP is not up yet."""
        try:
            return self.qmp("query-status")["status"]
        except (OSError, ValueError):
            return None

    def start_line(self):
        for line in self.lines():
            st = wlcheck.parse_start(line)
            if st:
                return st
        return None

    def check_console(self, restarts_at=()):
        """harness.Guest.check_console (BSP workload), plus: no exception
        or error report, and the AP's fields check out the same way."""
        super().check_console(restarts_at)
        lines = self.lines()
        bad = [l for l in lines if "KG EXC" in l or "KG error" in l or "WL error" in l]
        assert not bad, "guest errors:\n" + "\n".join(bad[:20])
        start = self.start_line()
        if "ap_seed" not in start:
            return
        tracker, last = wlcheck.SumTracker(start["ap_seed"]), None
        problems = []
        restarts = set(restarts_at)
        for n, st in ((n, wlcheck.parse_status(l)) for n, l in enumerate(lines, 1)):
            if n - 1 in restarts:
                # A restore from an older image resumes here: the AP goes on
                # from an earlier point, its checksum track starts anew.
                tracker, last = wlcheck.SumTracker(start["ap_seed"]), None
            if not st or "ap_w" not in st:
                continue
            if st["ap_sum"] != tracker.at(st["ap_w"]):
                problems.append("line %d: ap_sum %016x != expected %016x for ap_w=%d"
                                % (n, st["ap_sum"], tracker.sum, st["ap_w"]))
            if st["ap_corrupt"]:
                problems.append("line %d: ap_corrupt=%d" % (n, st["ap_corrupt"]))
            if last and (st["ap_w"] < last["ap_w"] or st["ap_pass"] < last["ap_pass"]
                         or st["ap_ticks"] < last["ap_ticks"]):
                problems.append("line %d: AP went backwards" % n)
            last = st
        assert not problems, "AP workload problems:\n" + "\n".join(problems[:20])

    def wait_all_progress(self, after, since=0, passes=3, ticks=HZ, timeout=60):
        """Wait for a status line (past console line `since`) showing, next
        to the status `after`: `passes` more passes, more rewrites and
        `ticks` more PIT ticks; with an AP, also `passes` more AP passes,
        more AP rewrites and ticks / 2 more AP (LAPIC timer) ticks: its
        timer is calibrated against the PIT, so only roughly at HZ."""
        want = {"pass": passes, "w": 1, "ticks": ticks}
        if "ap_pass" in after:
            want.update(ap_pass=passes, ap_w=1, ap_ticks=ticks // 2)
        # A status line cut short (QEMU killed while writing it) lacks the
        # trailing fields: compare what both lines have.
        want = {k: n for k, n in want.items() if k in after}

        def ok():
            st = self._status_since(since)
            if not st or any(k not in st or st[k] < after[k] + n for k, n in want.items()):
                return None
            return st
        return self.wait_for(ok, timeout, "progress past %s" % after)
