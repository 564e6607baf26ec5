"""The bare-metal KVM test guest (test/kvm-guest) itself: it boots under
-accel kvm (1 and 2 vCPUs) and tcg, its workload verifies memory and can
catch a corruption, and it survives QEMU's own migration to a file.

Later tests checkpoint QEMU/KVM with CRIU and rely on this guest to tell
whether memory, timer interrupts and both vCPUs came back."""
import os

import pytest

from harness import wlcheck
from kvmguest import ELF, HZ, KvmGuest, kvm_unusable


def boot(workdir, guests, accel, smp=1, **kw):
    """Start a KvmGuest and wait for WL ready (skip kvm without /dev/kvm)."""
    if accel == "kvm" and kvm_unusable():
        pytest.skip(kvm_unusable())
    if not os.path.exists(ELF):
        pytest.fail("%s is missing: run 'make kvm-guest'" % ELF)
    g = KvmGuest(workdir, accel=accel, smp=smp, **kw)
    guests.append(g)
    g.start()
    return g, g.wait_ready(timeout=90)


@pytest.mark.parametrize("accel,smp", [("kvm", 1), ("kvm", 2), ("tcg", 1)])
def test_runs(workdir, guests, accel, smp):
    g, first = boot(workdir, guests, accel, smp)
    assert first["cpus"] == smp, first
    st = g.wait_all_progress(first, passes=5, ticks=2 * HZ)
    if smp == 2:
        assert g.start_line()["ap_seed"] == g.seed + 1
        assert st["ap_corrupt"] == 0
    g.check_console()


@pytest.mark.parametrize("accel,smp,cpu", [("tcg", 1, 0), ("kvm", 2, 1)])
def test_self_test_corrupt(workdir, guests, accel, smp, cpu):
    """Verification can fail: a byte flipped behind the workload's back
    (in the BSP's or the AP's region) is reported."""
    g, _ = boot(workdir, guests, accel, smp,
                append="wl.self_test_corrupt=1 wl.self_test_cpu=%d" % cpu)
    g.wait_for(lambda: any("WL selftest corrupt" in l for l in g.lines()), 30, "self test")
    bad = g.wait_for(lambda: [c for c in map(wlcheck.parse_corrupt, g.lines()) if c],
                     30, "CORRUPT line")
    sel = [l for l in g.lines() if "WL selftest corrupt" in l][0]
    assert bad[0]["page"] == int(sel.split("page=")[1].split()[0]), (bad[0], sel)
    assert bad[0]["cpu"] == cpu and bad[0]["word"] == 5, bad[0]
    key = "ap_corrupt" if cpu else "corrupt"
    g.wait_for(lambda: (g.last_status() or {}).get(key), 30, "status with %s > 0" % key)
    assert wlcheck.check_log(g.lines()), "check_log missed the corruption"
    with pytest.raises(AssertionError):
        g.check_console()


def test_migrate_to_file(workdir, guests):
    """QEMU's own migration round trip under kvm with 2 vCPUs: stop,
    migrate to a file, kill, start a new QEMU from the file, cont.  The
    workload, the PIT ticks and the AP all go on, with nothing corrupt."""
    src, first = boot(workdir, guests, "kvm", 2)
    src.wait_all_progress(first, passes=3)
    src.qmp("stop")
    img = os.path.join(workdir, "migration.bin")
    src.qmp("migrate", {"uri": "exec:cat > %s" % img})
    src.wait_for(lambda: src.qmp("query-migrate").get("status") in ("completed", "failed"),
                 60, "migration to file")
    assert src.qmp("query-migrate")["status"] == "completed", src.qmp("query-migrate")
    at, mark = src.last_status(), src.mark()
    src.kill()

    dst = src.for_incoming("exec:cat %s" % img)
    guests.append(dst)
    dst.start()
    status = dst.wait_for(lambda: (dst.qmp_status() or "inmigrate") != "inmigrate" and dst.qmp_status(),
                          60, "incoming migration")
    assert status == "paused", status
    dst.qmp("cont")
    dst.wait_all_progress(at, since=mark, passes=5, ticks=2 * HZ)
    dst.keeps_running(at, since=mark)
    starts = [l for l in dst.lines() if "WL start" in l]
    assert len(starts) == 1, "guest rebooted instead of resuming"
