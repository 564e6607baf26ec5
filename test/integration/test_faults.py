"""Fault campaign: CRIU killed by SIGKILL at every hook of a dump and while
a restore fills guest RAM. The guest keeps running with its memory, or,
restored half way, never runs at all. Real QEMU, real CRIU."""
import os
import time

import pytest

import harness
from test_integrity import restore_and_verify
from test_ram import start_guest


def task_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# after-handoff, live and final-pass have their own tests in test_ram.py
# and test_live.py.
@pytest.mark.parametrize("point", ["pause-devices", "checkpoint-devices", "before-handoff",
                                   "exit-hook"])
def test_criu_killed_at_dump_hook(workdir, criu, guests, point):
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, env={"CRIU_QEMU_TEST_CRASH": point}, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL at %s, rc %d" % (point, rc)
    assert "test crash point %s" % point in harness.log_text(os.path.join(imgdir, "dump.log"))
    assert harness.pid_alive(g.pid)
    g.keeps_running(g.last_status())
    g.wait_for(lambda: not harness.uffd_vmas(g.pid), 60, "no userfaultfd registration left")


def test_criu_killed_while_restore_fills_ram(workdir, criu, guests):
    """CRIU dies after the restored QEMU's memory layout exists but before
    its RAM is filled: the kernel lets the threads go, and the stop guard
    stops them before they run a single instruction on empty memory."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    size = g.console_size()
    rc, _ = criu.restore(imgdir, env={"CRIU_QEMU_TEST_CRASH": "restore-fill"}, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert harness.pid_alive(g.pid), "the half-restored QEMU is gone (expected stopped)"
    time.sleep(2)
    assert task_state(g.pid) == "T", "QEMU runs on unfilled RAM: state %s" % task_state(g.pid)
    assert g.console_size() == size, "the half-restored guest wrote to its console"
    g.kill()
    restore_and_verify(criu, g, imgdir, at)
