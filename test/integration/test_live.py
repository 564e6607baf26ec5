"""Live pre-dump with userfaultfd write-protect: RAM is copied while the VM
runs, the freeze copies only what was written since. Real QEMU, real CRIU."""
import os
import re
import time

import pytest

import harness
from harness import live_passes, ram_image, restore_and_verify, start_guest


def test_live_passes_shrink_and_restore_is_exact(workdir, criu, guests):
    # 4 MiB/s of rewrites while the dump runs.
    g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=4096)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    log = os.path.join(imgdir, "dump.log")
    passes = live_passes(log)
    live = [p for p in passes if p[0] == "pass"]
    final = [p for p in passes if p[0] == "final"]
    assert len(live) >= 2, passes
    assert live[1][2] < live[0][2], "dirty set did not shrink: %s" % passes
    # The guest kept writing between the last live pass and the freeze: the
    # final pass must have copied those pages; the restored guest then
    # verifies every page against the generation it wrote last.
    assert len(final) == 1 and final[0][2] > 0, passes
    restore_and_verify(criu, g, imgdir, at_dump)


def test_live_leave_running_then_restore_elsewhere(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128, rate_kbs=2048)
    imgdir = os.path.join(workdir, "img")
    mark = g.mark()
    criu.dump(g.pid, imgdir, leave_running=True)
    assert live_passes(os.path.join(imgdir, "dump.log"))
    at_dump = g.last_status()
    g.keeps_running(at_dump, since=mark)
    assert not harness.uffd_vmas(g.pid, ("uw",)), "write protection left behind"
    g.kill()
    restore_and_verify(criu, g, imgdir, at_dump, rewinds=True)


@pytest.mark.parametrize("point", ["live", "final-pass"])
def test_criu_killed_during_live_phase(workdir, criu, guests, point):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128, rate_kbs=2048)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, env={"CRIU_QEMU_TEST_CRASH": point}, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert harness.pid_alive(g.pid)
    at = g.last_status()
    g.keeps_running(at)
    assert not harness.uffd_vmas(g.pid, ("uw",)), "write protection left behind"


def test_discard_between_passes_is_absent_from_image(workdir, criu, guests):
    """The guest gives memory back (virtio-balloon inflation: QEMU discards
    the pages with MADV_DONTNEED) after live pass 1 copied it: the final
    image must not hold those pages, and the guest restores exactly."""
    # 384 MiB written and freed inside the guest before the workload starts:
    # free guest pages that hold data on the host, for the balloon to take.
    g = start_guest(workdir, guests, mem="1G", wl_mb=128, rate_kbs=1024,
                    kernel_args="wl.scratch_mb=384",
                    extra_args=["-device", "virtio-balloon-pci,id=balloon0"])
    imgdir = os.path.join(workdir, "img")
    log = os.path.join(imgdir, "dump.log")

    def inflate_balloon():
        """The pages the balloon took from QEMU during the pause."""
        (start, end), = harness.plugin_ram_ranges(log)
        before = harness.present_pages(g.pid, start, end)
        g.qmp("balloon", {"value": 400 << 20})
        deadline = time.monotonic() + 6
        while g.qmp("query-balloon")["actual"] > 420 << 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        return before - harness.present_pages(g.pid, start, end)

    rc, discarded = harness.dump_paused(criu, g.pid, imgdir, {"CRIU_QEMU_TEST_PAUSE_MS": "8000"},
                                        inflate_balloon)
    assert rc == 0, "criu dump failed, see %s" % log
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    # The balloon took a good part of the scratch pages after pass 1.
    assert len(discarded) >= (64 << 20) // 4096, len(discarded)
    dropped = [int(m.group(1)) for m in re.finditer(r"live (?:pass [2-9]|final \d+): .*?(\d+) dropped",
                                                   harness.log_text(log))]
    assert sum(dropped) > 0, dropped
    present = harness.image_present_pages(ram_image(imgdir))["pc.ram"]
    stale = discarded & present
    assert not stale, "%d discarded pages still in the image" % len(stale)
    restore_and_verify(criu, g, imgdir, at_dump)
