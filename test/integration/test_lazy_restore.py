"""Lazy restore (lazy_restore = yes): CRIU lets the VM run as soon as its
RAM ranges are handed to a guardian, which serves the guest's faults from
the image first and fills the rest in the background. Every page still
comes from a checksum-verified chunk; a damaged image kills the guest rather
than let it run on wrong memory. Real QEMU, real CRIU."""
import os
import re

import pytest

import harness
from harness import corrupt_copy, dump_and_check_handoff, guardian_log, start_guest

LAZY = {"CRIU_QEMU_LAZY_RESTORE": "1"}


def test_lazy_restore_runs_at_once_and_is_exact(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=1024)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    mark = g.mark()
    criu.restore(imgdir, env=LAZY)
    log = harness.log_text(os.path.join(imgdir, "restore.log"))
    assert "lazy restore: guest RAM handed to guardian" in log, "no lazy restore in restore.log"
    assert "RAM restored:" not in log, "the eager filler ran"
    # The guest re-verifies every page against the generation it last
    # wrote and keeps rewriting, while the guardian fills in the background.
    g.keeps_running(at_dump, since=mark, passes=2)
    g.wait_for(lambda: "gave back" in guardian_log(imgdir, g.pid), what="the background fill")
    gl = guardian_log(imgdir, g.pid).split("giving guest RAM back")[-1]
    assert "fails its checksum" not in gl and "killing" not in gl, gl
    g.wait_for(lambda: not harness.uffd_vmas(g.pid), timeout=30, what="no userfaultfd left")
    # The guest's faults came first, each placing the rest of its chunk too.
    # (The log holds the dump's guardian first, then the restore's.)
    pat = r"served (\d+) faults .*; (\d+) pages placed around them"
    g.wait_for(lambda: len(re.findall(pat, guardian_log(imgdir, g.pid))) == 2, timeout=30,
               what="the lazy guardian's fault count")
    faults, around = map(int, re.findall(pat, guardian_log(imgdir, g.pid))[-1])
    assert faults > 0 and around > faults, (faults, around)


def test_lazy_restore_of_a_damaged_image_kills_the_guest(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    bad = corrupt_copy(imgdir, os.path.join(workdir, "bad-page"), "page")
    mark = g.mark()
    # The image's header and tables are intact, so CRIU goes ahead; the
    # guardian finds the damaged chunk when it gets there and kills QEMU:
    # before CRIU lets it run (the restore then fails: CRIU cannot detach
    # from it) or, if the chunk comes later, while it runs.
    criu.restore(bad, env=LAZY, expect_ok=False)
    harness.wait_pid_gone(g.pid, timeout=60)
    assert "the image is corrupt; killing the task" in guardian_log(bad, g.pid)
    late = g.lines()[mark:]
    assert not [l for l in late if "CORRUPT" in l], "the guest ran on damaged memory"


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_restore_brings_back_huge_pages(workdir, criu, guests, mode):
    """Guest RAM that had THP before the dump has it again after the
    restore: the eager fill faults huge pages in; the lazy fill copies 4 KiB
    pages (UFFDIO_COPY), then the guardian collapses them. (CRIU alone
    restores guest RAM in 4 KiB pages.)"""
    if harness.thp_mode() == "never":
        pytest.skip("THP is off on this host (transparent_hugepage/enabled: never)")
    g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=1024)
    before = harness.ram_thp_kib(g.pid, g.mem_bytes() // 2)
    if before < 128 << 10:
        pytest.skip("guest RAM has only %d KiB of THP before the dump" % before)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    mark = g.mark()
    criu.restore(imgdir, env=LAZY if mode == "lazy" else None)
    if mode == "lazy":
        g.wait_for(lambda: "MADV_COLLAPSE" in guardian_log(imgdir, g.pid).split("giving guest RAM back")[-1],
                   timeout=60, what="the guardian's collapse after the lazy fill")
    after = harness.ram_thp_kib(g.pid, g.mem_bytes() // 2)
    assert after >= 0.9 * before, "THP of guest RAM: %d KiB before the dump, %d KiB after the %s restore" % (
        before, after, mode)
    g.keeps_running(at_dump, since=mark, passes=1)
