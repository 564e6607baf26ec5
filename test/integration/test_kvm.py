"""QEMU with -accel kvm through criu dump and restore with the plugin.

The guest is the bare-metal one of test/kvm-guest (Linux cannot boot under
this machine's KVM): it keeps rewriting and verifying its memory on each
vCPU, counts PIT ticks on the BSP and LAPIC timer ticks on the AP, so a
guest that runs on after a restore with wrong memory, a dead timer or a
stuck vCPU shows in its console."""
import os

import pytest

import harness
from kvmguest import KvmGuest, kvm_unusable

pytestmark = pytest.mark.skipif(kvm_unusable() is not None, reason=str(kvm_unusable()))


def start_kvm(workdir, guests, smp=1, **kw):
    g = KvmGuest(workdir, accel="kvm", smp=smp, **kw)
    guests.append(g)
    g.start()
    g.wait_ready(timeout=120)
    return g


def dump_kvm(criu, g, imgdir, **kw):
    """criu dump in which the plugin captured the VM; dump.log."""
    criu.dump(g.pid, imgdir, **kw)
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    assert "KVM state of %d vCPUs saved" % g.smp in log, log[-3000:]
    return log


def restore_kvm(criu, g, imgdir, at, rewinds=False):
    """Restore; the guest goes on from `at` on every vCPU with its timers
    (rewinds: the console went on past `at` before, from the original)."""
    mark = g.mark()
    criu.restore(imgdir)
    log = harness.log_text(os.path.join(imgdir, "restore.log"))
    assert "KVM VM rebuilt" in log, log[-3000:]
    assert harness.pid_alive(g.pid)
    g.wait_all_progress(at, since=mark, passes=3)
    g.check_console(restarts_at=[mark] if rewinds else [])
    return log


@pytest.mark.parametrize("smp", [1, 2])
def test_dump_restore(workdir, criu, guests, smp):
    """Dump a running KVM guest, restore it: memory, vCPUs, PIT, PIC and
    LAPIC timer all carry on."""
    g = start_kvm(workdir, guests, smp=smp)
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    restore_kvm(criu, g, imgdir, g.last_full_status())


def test_leave_running(workdir, criu, guests):
    """--leave-running: the guest never stops working, and the image
    restores after the original is gone."""
    g = start_kvm(workdir, guests, smp=2)
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir, leave_running=True)
    at = g.last_full_status()
    mark = g.mark()
    g.wait_all_progress(at, since=mark, passes=3)
    g.check_console()
    g.kill()
    harness.wait_pid_gone(g.pid)
    restore_kvm(criu, g, imgdir, at, rewinds=True)


def test_cycles(workdir, criu, guests):
    """20 dump/restore cycles in a row of a 2-vCPU guest (CRIU_QEMU_KVM_CYCLES
    sets how many): each restore goes on exactly where its dump stopped.
    A vCPU thread that CRIU froze in QEMU's device emulation is brought
    back to KVM_RUN first; the console says how often that happened."""
    cycles = int(os.environ.get("CRIU_QEMU_KVM_CYCLES", "20"))
    g = start_kvm(workdir, guests, smp=2)
    driven = 0
    for i in range(cycles):
        imgdir = os.path.join(workdir, "img%d" % i)
        log = dump_kvm(criu, g, imgdir)
        driven += log.count("back to KVM_RUN")
        harness.wait_pid_gone(g.pid)
        mark = g.mark()
        at = g.last_full_status()
        criu.restore(imgdir)
        g.wait_all_progress(at, since=mark, passes=1, ticks=20)
    g.check_console()
    print("%d cycles; %d vCPU threads brought back from device emulation" % (cycles, driven))
