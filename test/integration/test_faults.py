"""Fault campaign: CRIU killed by SIGKILL at every hook of a dump and while
a restore fills guest RAM. The guest keeps running with its memory, or,
restored half way, never runs at all. Real QEMU, real CRIU."""
import os
import shutil
import subprocess
import time

import pytest

import harness
from harness import ram_image, restore_continues, start_guest, wait_guardian_gone


def registered_ranges(pid):
    """[(start, end)] of pid's VMAs registered with a userfaultfd."""
    out, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and ":" not in first:
                cur = tuple(int(x, 16) for x in first.split("-"))
            elif line.startswith("VmFlags:") and any(k in line.split() for k in ("um", "uw", "ui")):
                out.append(cur)
    return out


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


def restore_killed_stays_stopped(workdir, criu, guests, env):
    """Dump a guest, restore it with CRIU killed at the point env names: the
    half-restored QEMU must stay stopped and write nothing; then the image
    restores exactly."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    size = g.console_size()
    rc, _ = criu.restore(imgdir, env=env, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert "test crash point" in harness.log_text(os.path.join(imgdir, "restore.log"))
    assert harness.pid_alive(g.pid), "the half-restored QEMU is gone (expected stopped)"
    time.sleep(2)
    assert task_state(g.pid) == "T", "QEMU runs on unfilled RAM: state %s" % task_state(g.pid)
    assert g.console_size() == size, "the half-restored guest wrote to its console"
    g.kill()
    restore_continues(criu, g, imgdir, at)


def test_criu_killed_while_restore_fills_ram(workdir, criu, guests):
    """CRIU dies after the restored QEMU's memory layout exists but before
    its RAM is filled: the kernel lets the threads go, and the stop guard
    stops them before they run a single instruction on empty memory."""
    restore_killed_stays_stopped(workdir, criu, guests, {"CRIU_QEMU_TEST_CRASH": "restore-fill"})


def mount_small(kind, where, size_mb, workdir):
    os.makedirs(where)
    if kind == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", where], check=True)
        return
    backing = where + ".ext4"
    subprocess.run(["truncate", "-s", "%dM" % size_mb, backing], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", backing], check=True)
    subprocess.run(["mount", "-o", "loop", backing, where], check=True)


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
def test_disk_full_at_several_points(workdir, criu, guests, kind):
    """ENOSPC while our image is written in the live phase (a quarter of it
    fits), near its end, and after it, while CRIU writes its own pages: each
    dump fails, leaves no RAM image, and the guest runs on with its memory."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    probe = os.path.join(workdir, "probe")
    criu.dump(g.pid, probe, leave_running=True)
    ours = harness.allocated_bytes(ram_image(probe))
    theirs = harness.pages_img_bytes(probe)
    points = {"image-quarter": ours // 4, "image-end": ours * 9 // 10,
              "criu-pages": ours + theirs // 2}
    for what, size in points.items():
        wait_guardian_gone(g)
        small = os.path.join(workdir, what)
        mount_small(kind, small, max(size >> 20, 8), workdir)
        # The log goes elsewhere (-W): on the full file system CRIU's own
        # error line may not fit any more.
        logdir = small + "-work"
        os.makedirs(logdir)
        try:
            rc, _ = criu.dump(g.pid, small, expect_ok=False, extra=["-W", logdir])
            shutil.copy(os.path.join(logdir, "dump.log"), small + "-dump.log")
            ours_full = [l for l in harness.plugin_lines(small + "-dump.log")
                         if "No space left on device" in l]
            assert rc != 0, "%s: dump into a full %s succeeded" % (what, kind)
            if what.startswith("image"):
                assert ours_full, "%s: the plugin did not report ENOSPC" % what
            else:
                assert "No space left on device" in harness.log_text(small + "-dump.log")
            left = [f for f in os.listdir(small) if f.startswith("qemu-ram-")]
            assert not left, "%s: %s left behind" % (what, left)
            assert harness.pid_alive(g.pid), "%s: the guest died" % what
            g.keeps_running(g.last_status(), passes=1)
        finally:
            subprocess.run(["umount", "-l", small])


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                return line.split()[4]
    return None


def test_engine_kills_criu_cgroup_guardian_survives(workdir, criu, guests):
    """An engine gives up on a checkpoint by killing CRIU's cgroup (here from
    CRIU's own post-dump script, so after the handoff): the guardian, now in
    QEMU's cgroup, survives and gives the guest its memory back."""
    root = cgroup2_mount()
    if not root or not os.path.exists(os.path.join(root, "cgroup.procs")):
        pytest.skip("no cgroup2 hierarchy with cgroup.kill on this host")
    cg = os.path.join(root, "criu-qemu-test-%d" % os.getpid())
    os.mkdir(cg)
    try:
        if not os.path.exists(os.path.join(cg, "cgroup.kill")):
            pytest.skip("cgroup2 without cgroup.kill (kernel < 5.14)")
        g = start_guest(workdir, guests, mem="512M", wl_mb=64)
        script = os.path.join(workdir, "kill-cgroup.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && echo 1 > %s/cgroup.kill\n'
                    'exit 0\n' % cg)
        os.chmod(script, 0o755)
        imgdir = os.path.join(workdir, "img")
        # CRIU starts inside the cgroup: a shell moves itself there, then execs it.
        wrapper = os.path.join(workdir, "criu-in-cgroup.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\necho $$ > %s/cgroup.procs && exec %s "$@"\n' % (cg, criu.bin))
        os.chmod(wrapper, 0o755)
        criu.bin = wrapper
        rc, _ = criu.dump(g.pid, imgdir, extra=["--action-script", script], expect_ok=False)
        assert rc == -9, "CRIU's cgroup was expected to be killed, rc %d" % rc
        assert "complete and durable" in harness.log_text(os.path.join(imgdir, "dump.log"))
        assert harness.pid_alive(g.pid)
        g.keeps_running(g.last_status())
        g.wait_for(lambda: not harness.uffd_vmas(g.pid), 60, "pages given back")
        glog = harness.log_text(os.path.join(imgdir, "guardian-%d.log" % g.pid))
        assert "joined QEMU's cgroups" in glog, glog[-2000:]
    finally:
        harness.reap_zombies()
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)


# The injected syscalls of a dump of a guest with one RAM block, in order:
# 1 userfaultfd and 2 close for the live phase's write-protect; 3
# userfaultfd and 4 close for the handoff; 5 mmap of the empty VMA, 6-8
# madvise of its flags, 9 mremap over guest RAM. At an entry stop the call
# is not armed yet (rsys.c): CRIU dying there must leave QEMU as it was --
# at 9 the other threads run again, and an mremap run after them would lose
# what they wrote.
@pytest.mark.parametrize("point", ["rsys-entry:1", "rsys-exit:2", "rsys-entry:3", "rsys-exit:5",
                                   "rsys-entry:8", "rsys-entry:9", "rsys-exit:9"])
def test_criu_killed_inside_injected_syscall(workdir, criu, guests, point):
    """CRIU dies while QEMU's main thread runs a syscall the plugin injected:
    QEMU gets its own registers back (the call returns through a signal
    frame of them) and the guest runs on with its memory."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, env={"CRIU_QEMU_TEST_CRASH": point}, expect_ok=False)
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    if rc == 0:
        pytest.fail("the dump made fewer injected syscalls than %s" % point)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert "test crash point %s" % point.split(":")[0] in log
    assert harness.pid_alive(g.pid), "QEMU died: %s" % g.qemu_log()
    g.keeps_running(g.last_status())
    # Guest RAM gets no registration left; a handoff cut short before its
    # mremap may leave the empty VMA it prepared registered (the guardian
    # cannot tell whether that mremap still comes, so it stays).
    ram = harness.plugin_ram_ranges(os.path.join(imgdir, "dump.log"))
    g.wait_for(lambda: not [r for r in registered_ranges(g.pid)
                            if any(r[0] < hi and lo < r[1] for lo, hi in ram)], 60,
               "guest RAM no longer registered with a userfaultfd")


@pytest.mark.parametrize("point", ["rsys-exit:3", "rsys-entry:7"])
def test_criu_killed_during_lazy_restore_handoff(workdir, criu, guests, point):
    """CRIU dies while a lazy restore hands the still empty RAM ranges to the
    guardian (3: after the mmap of the first empty VMA; 7: entering its
    mremap): no thread may run on the empty ranges, so QEMU stays stopped;
    the image then restores exactly."""
    restore_killed_stays_stopped(workdir, criu, guests,
                                 {"CRIU_QEMU_TEST_CRASH": point, "CRIU_QEMU_LAZY_RESTORE": "yes"})
