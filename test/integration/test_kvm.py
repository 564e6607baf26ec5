"""QEMU with -accel kvm through criu dump and restore with the plugin.

The guest is the bare-metal one of test/kvm-guest (Linux cannot boot under
this machine's KVM): it keeps rewriting and verifying its memory on each
vCPU, counts PIT ticks on the BSP and LAPIC timer ticks on the AP, so a
guest that runs on after a restore with wrong memory, a dead timer or a
stuck vCPU shows in its console."""
import os
import re
import shutil
import time

import pytest

import harness
from kvmguest import KvmGuest, kvm_unusable

pytestmark = pytest.mark.skipif(kvm_unusable() is not None, reason=str(kvm_unusable()))


def start_kvm(workdir, guests, smp=1, accel="kvm", **kw):
    g = KvmGuest(workdir, accel=accel, smp=smp, **kw)
    guests.append(g)
    g.start()
    g.wait_ready(timeout=120)
    return g


TRIES = 3


def dump_kvm(criu, g, imgdir, **kw):
    """criu dump in which the plugin captured the VM; dump.log. A dump the
    plugin refuses because a vCPU thread waits in QEMU for another thread
    (its big lock: "try the dump again", kvm-dump.c) is tried again, as
    its error asks, up to TRIES times; the VM must live through each."""
    for attempt in range(1, TRIES + 1):
        rc, _ = criu.dump(g.pid, imgdir, expect_ok=False, **kw)
        log = harness.log_text(os.path.join(imgdir, "dump.log"))
        if rc == 0 or "try the dump again" not in log or attempt == TRIES:
            break
        assert harness.pid_alive(g.pid), "a refused dump harmed the VM"
        shutil.rmtree(imgdir)
    assert rc == 0, "criu dump failed (rc %d, %d tries):\n%s" % (rc, attempt, log[-3000:])
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


def image_zones(imgdir):
    """The coalesced zones the KVM image lists (criu-qemu-img show), as
    (kind, addr, size): what the dump read from QEMU's VM."""
    imgs = [f for f in os.listdir(imgdir) if re.match(r"kvm-\d+\.img$", f)]
    assert len(imgs) == 1, os.listdir(imgdir)
    out = harness.img_tool("show", os.path.join(imgdir, imgs[0]))
    assert out.returncode == 0, out.stdout
    return [(k, int(a, 16), int(n)) for k, a, n in
            re.findall(r"coalesced (MMIO|PIO) zone: (0x[0-9a-f]+) size (\d+)", out.stdout)]


def rebuilt_zones(log):
    """The zones the plugin read back from the restored QEMU's VM."""
    m = re.search(r"coalesced zones of the rebuilt VM:(.*)", log)
    assert m, log[-3000:]
    return [(k, int(a, 16), int(n)) for k, a, n in re.findall(r"(MMIO|PIO) (0x[0-9a-f]+)\+(\d+)", m.group(1))]


@pytest.mark.parametrize("smp", [1, 2])
def test_dump_restore(workdir, criu, guests, smp):
    """Dump a running KVM guest, restore it: memory, vCPUs, PIT, PIC and
    LAPIC timer all carry on. QEMU's coalesced zones (the RTC index port
    among them) are in the image and the restored VM has them all."""
    g = start_kvm(workdir, guests, smp=smp)
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    zones = image_zones(imgdir)
    assert ("PIO", 0x70, 1) in zones, zones
    log = restore_kvm(criu, g, imgdir, g.last_full_status())
    assert rebuilt_zones(log) == zones, log[-3000:]
    assert "%d coalesced zones" % len(zones) in log, log[-3000:]



def vcpu_stats_fds(pid):
    """QEMU's vCPU stats fds (KVM_GET_STATS_FD) as {fd: vCPU id}."""
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        m = re.match(r"anon_inode:kvm-vcpu-stats:(\d+)$", link)
        if m:
            fds[int(fd)] = int(m.group(1))
    return fds


def vcpu_exits(g):
    """KVM's exit count of each vCPU through QMP query-stats, in QOM order."""
    ret = g.qmp("query-stats", {"target": "vcpu",
                                "providers": [{"provider": "kvm", "names": ["exits"]}]})
    return [st["value"] for r in ret for st in r["stats"] if st["name"] == "exits"]


def test_vcpu_stats_fd(workdir, criu, guests):
    """QEMU 10 keeps each vCPU's stats fd open from its creation and reads
    query-stats through it: the restored QEMU has a stats fd of the same
    vCPU on each number, and query-stats counts the new vCPUs' exits."""
    g = start_kvm(workdir, guests, smp=2)
    before = vcpu_stats_fds(g.pid)
    if not before:
        pytest.skip("this QEMU keeps no vCPU stats fd (QEMU 7.2 opens one per query-stats)")
    assert sorted(before.values()) == list(range(g.smp)), before
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    restore_kvm(criu, g, imgdir, g.last_full_status())
    assert vcpu_stats_fds(g.pid) == before
    exits = vcpu_exits(g)
    assert len(exits) == g.smp and all(n > 0 for n in exits), exits


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


def kvm_run_mapped(g):
    """Every vCPU's kvm_run is mapped from its vCPU fd again (not the
    anonymous copy a dump leaves for CRIU)."""
    with open("/proc/%d/maps" % g.pid) as f:
        return sum("anon_inode:kvm-vcpu:" in l for l in f) >= g.smp


def keeps_running_after_failed_dump(g):
    at = g.last_full_status()
    mark = g.mark()
    g.wait_all_progress(at, since=mark, passes=3)
    g.wait_for(lambda: kvm_run_mapped(g), 10, "kvm_run mapped again")
    g.check_console()


def test_live_predump_sees_vcpu_writes(workdir, criu, guests):
    """Live pre-dump of a guest whose two vCPUs rewrite 32 MiB/s: the
    passes see the pages the vCPUs wrote (through KVM's page tables, which
    follow QEMU's), the final copy takes the rest, and the restored guest
    finds every page of both regions as it last wrote it. The rest may be
    nothing: with the last pass under a millisecond, vCPUs descheduled on
    a loaded host may write no page before the freeze."""
    g = start_kvm(workdir, guests, smp=2, mem="768M", wl_mb=256, rate_kbs=32768)
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir, env={"CRIU_QEMU_DOWNTIME_MS": "1"})
    harness.wait_pid_gone(g.pid)
    passes = harness.live_passes(os.path.join(imgdir, "dump.log"))
    live = [p for p in passes if p[0] == "pass"]
    final = [p for p in passes if p[0] == "final"]
    assert len(live) >= 2 and live[1][2] > 0, "no vCPU write seen between passes: %s" % passes
    assert len(final) == 1, passes
    restore_kvm(criu, g, imgdir, g.last_full_status())


@pytest.mark.parametrize("point", ["kvm-captured", "kvm-handed-over"])
def test_criu_killed_after_capture(workdir, criu, guests, point):
    """CRIU dies after reading the VM, or after leaving the vCPU threads
    armed and kvm_run replaced: the guest runs on, on its own vCPUs."""
    g = start_kvm(workdir, guests, smp=2)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, env={"CRIU_QEMU_TEST_CRASH": point}, expect_ok=False)
    assert rc != 0
    keeps_running_after_failed_dump(g)


def test_failing_post_dump_script(workdir, criu, guests):
    """The dump fails at its very end (a post-dump action script): the
    guest runs on."""
    g = start_kvm(workdir, guests, smp=2)
    script = harness.failing_post_dump_script(workdir)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, extra=["--action-script", script], expect_ok=False)
    assert rc != 0
    assert "KVM state of 2 vCPUs saved" in harness.log_text(os.path.join(imgdir, "dump.log"))
    keeps_running_after_failed_dump(g)


def test_refused_feature(workdir, criu, guests):
    """A KVM setting the plugin cannot make again (the dirty ring) fails
    the dump with one line naming it; the guest runs on untouched."""
    g = start_kvm(workdir, guests, smp=1, accel="kvm,dirty-ring-size=4096")
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, expect_ok=False)
    assert rc != 0
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    assert "QEMU uses KVM's dirty ring" in log, log[-3000:]
    keeps_running_after_failed_dump(g)


def thread_states(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            out[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
    return out


def test_criu_killed_while_rebuilding(workdir, criu, guests):
    """CRIU dies while it rebuilds the VM in the restored QEMU: the stop
    guard holds every thread but the main one (which ran the injected calls
    and returns to its own code), so no vCPU runs on a half-built VM and the
    guest writes nothing; the image then restores."""
    g = start_kvm(workdir, guests, smp=2)
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_full_status()
    size = g.console_size()
    rc, _ = criu.restore(imgdir, env={"CRIU_QEMU_TEST_CRASH": "kvm-rebuild"}, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert harness.pid_alive(g.pid), "the half-restored QEMU is gone (expected held)"
    time.sleep(2)
    states = thread_states(g.pid)
    others = {t: s for t, s in states.items() if t != g.pid}
    assert others and all(s == "T" for s in others.values()), states
    assert g.console_size() == size, "the half-restored guest wrote to its console"
    g.kill()
    restore_kvm(criu, g, imgdir, at)


def test_split_irqchip(workdir, criu, guests):
    """-accel kvm,kernel-irqchip=split: the LAPICs in KVM, the PIC, IOAPIC
    and PIT in QEMU (its memory, dumped by CRIU): KVM_CAP_SPLIT_IRQCHIP
    with QEMU's 24 reserved pins is set again, and the timer still ticks."""
    g = start_kvm(workdir, guests, smp=2, accel="kvm,kernel-irqchip=split")
    imgdir = os.path.join(workdir, "img")
    dump_kvm(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    log = restore_kvm(criu, g, imgdir, g.last_full_status())
    assert "KVM VM rebuilt" in log
