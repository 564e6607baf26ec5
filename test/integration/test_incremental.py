"""Incremental checkpoints: a second dump of the same VM (still running, or
restored) shares the chunks that did not change with the earlier image by
reflinks and writes only the rest, and the result restores on its own after
the earlier image is deleted. Image directories live on a small XFS file
system (reflinks); real QEMU, real CRIU."""
import os
import re
import shutil
import subprocess

import pytest

import harness
from harness import ram_image, restore_and_verify, start_guest

REFLINK_FS = os.path.join(harness.TOP, "test", "reflink-fs.sh")


@pytest.fixture
def xfs(workdir):
    d = os.path.join(workdir, "xfs")
    subprocess.run([REFLINK_FS, "mount", d], check=True)
    yield d
    subprocess.run([REFLINK_FS, "umount", d])


def reuse_stats(imgdir):
    """(chunks unchanged, chunks shared, MiB not written) of the pass that
    copied all RAM, from dump.log."""
    text = harness.log_text(os.path.join(imgdir, "dump.log"))
    m = re.search(r"incremental: (\d+) chunks unchanged since the base, (\d+) shared with it "
                  r"\((\d+) MiB not written\)", text)
    assert m, "no incremental pass in dump.log"
    return tuple(int(x) for x in m.groups())


def shared_bytes(path):
    """Bytes of path in extents the file system marks shared (FIEMAP)."""
    out = subprocess.run(["filefrag", "-v", "-b4096", path], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    total = 0
    for line in out.splitlines():
        m = re.match(r"\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):", line)
        if m and "shared" in line:
            total += int(m.group(1)) * 4096
    return total


def test_incremental_dumps_share_unchanged_ram(workdir, criu, guests, xfs):
    g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=512)
    d1, d2, d3 = (os.path.join(xfs, d) for d in ("d1", "d2", "d3"))

    # Dump 1, the VM keeps running and writing.
    mark = g.mark()
    criu.dump(g.pid, d1, leave_running=True)
    at1 = g.last_status()
    g.wait_progress(after=at1, since=mark)

    # Dump 2 of the running VM, based on dump 1 (a path relative to the
    # image directory, like CRIU's --prev-images-dir; that option itself
    # needs a parent dumped with --track-mem, which needs soft-dirty).
    criu.dump(g.pid, d2, env={"CRIU_QEMU_BASE_IMAGE": "../d1"})
    harness.wait_pid_gone(g.pid)
    at2 = g.last_status()
    assert "incremental dump: base ../d1/qemu-ram-" in harness.log_text(os.path.join(d2, "dump.log"))
    same, shared, mib = reuse_stats(d2)
    # 256 MiB of workload data, rewritten at 512 KiB/s: nearly all unchanged.
    assert shared == same and mib >= 200, (same, shared, mib)
    assert shared_bytes(ram_image(d2)) >= 200 << 20

    # The base goes away: the new image stands on its own.
    shutil.rmtree(d1)
    restore_and_verify(criu, g, d2, at2)

    # Dump 3 of the restored VM, based on dump 2's image file, through the
    # config file (what runc and Podman, which strip the environment, use).
    conf = os.path.join(workdir, "plugin.conf")
    with open(conf, "w") as f:
        f.write("base_image = %s\n" % ram_image(d2))
    criu.dump(g.pid, d3, env={"CRIU_QEMU_CONFIG": conf})
    harness.wait_pid_gone(g.pid)
    at3 = g.last_status()
    same, shared, mib = reuse_stats(d3)
    assert shared == same and mib >= 200, (same, shared, mib)
    shutil.rmtree(d2)
    restore_and_verify(criu, g, d3, at3)
    assert subprocess.run([harness.IMGTOOL, "verify", ram_image(d3)]).returncode == 0


def test_incremental_without_reflinks_writes_everything(workdir, criu, guests):
    # ext4 has no reflinks: the dump says so once and stays a full one.
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    d1, d2 = (os.path.join(workdir, d) for d in ("d1", "d2"))
    criu.dump(g.pid, d1, leave_running=True)
    criu.dump(g.pid, d2, env={"CRIU_QEMU_BASE_IMAGE": d1})
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    log = harness.log_text(os.path.join(d2, "dump.log"))
    assert "no reflink from the base image" in log
    assert reuse_stats(d2)[1] == 0
    shutil.rmtree(d1)
    restore_and_verify(criu, g, d2, at)
