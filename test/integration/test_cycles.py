"""Many dump/restore cycles of one guest (10 in `make check`, 100 in
`make soak`: CRIU_QEMU_CYCLES): the guest verifies its memory after every
restore, and nothing leaks -- QEMU's fds and VMAs, guardian processes,
files in the image directories. Real QEMU, real CRIU."""
import os
import shutil
import subprocess

import harness
from harness import restore_continues, start_guest

CYCLES = int(os.environ.get("CRIU_QEMU_CYCLES", "10"))


def guardians():
    r = subprocess.run(["pgrep", "-x", "criu-qemu-guard"], stdout=subprocess.PIPE, text=True)
    return r.stdout.split()


def footprint(pid):
    with open("/proc/%d/maps" % pid) as f:
        vmas = sum(1 for _ in f)
    return {"fds": len(os.listdir("/proc/%d/fd" % pid)), "vmas": vmas}


def test_dump_restore_cycles(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    first = None
    for i in range(CYCLES):
        imgdir = os.path.join(workdir, "img-%d" % i)
        criu.dump(g.pid, imgdir)
        harness.wait_pid_gone(g.pid)
        at = g.last_status()
        restore_continues(criu, g, imgdir, at)
        g.wait_for(lambda: not guardians(), 30, "no guardian left (cycle %d)" % i)
        now = footprint(g.pid)
        first = first or now
        assert now == first, "cycle %d: QEMU's footprint changed: %s -> %s" % (i, first, now)
        files = sorted(os.listdir(imgdir))
        assert len([f for f in files if f.startswith("qemu-ram-")]) == 1, files
        shutil.rmtree(imgdir)
    assert sorted(os.listdir(workdir)) == sorted(
        f for f in os.listdir(workdir) if f.startswith("guest-")), os.listdir(workdir)
    print("%d dump/restore cycles, guest verified after each, footprint %s" % (CYCLES, first))
