"""Fault campaign: the disk fails with EIO while a dump writes or a restore
reads. The images go to a FUSE pass-through (test/faultfs) that fails the
chosen requests: writes of the RAM image, writes of CRIU's own page image,
fsync of the RAM image, reads of the RAM image's page data. A dump that
meets EIO fails with the error in dump.log, leaves the guest running with
its memory and no RAM image behind; a restore that meets it fails and
leaves no QEMU running, and the same images restore once the disk is good
again. A guardian that cannot read the image (giving pages back after a
failed dump, or serving a lazy restore) waits for the disk rather than
give the guest pages it does not have. Real QEMU, real CRIU."""
import json
import os
import shutil
import subprocess
import time

import pytest

import harness
from harness import guardian_log, img_tool, ram_image, restore_continues, start_guest, wait_guardian_gone

FAULTFS = os.path.join(harness.BUILD, "test", "faultfs")
EIO = "Input/output error"
# Page data of a 512 MiB guest's image starts at 2 MiB (criu-qemu-img show);
# 32 MiB further in, the writer has written part of the image already (the
# slots of the chunks with data follow each other: 64 MiB of workload and
# the guest kernel's pages fill more than 32).
PAGES_OFFSET = 2 << 20
WRITE_FAULT_AT = PAGES_OFFSET + (32 << 20)


def fuse_missing():
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: no FUSE to inject EIO with"
    with open("/proc/filesystems") as f:
        if not any(l.split()[-1] == "fuse" for l in f if l.strip()):
            return "the kernel has no fuse file system"
    return None


NO_FUSE = fuse_missing()
pytestmark = pytest.mark.skipif(NO_FUSE is not None, reason=NO_FUSE or "")


class FaultFS:
    """test/faultfs over workdir/backing, mounted on workdir/mnt."""

    def __init__(self, workdir):
        self.backing = os.path.join(workdir, "backing")
        self.mnt = os.path.join(workdir, "mnt")
        self.logpath = os.path.join(workdir, "faultfs.log")
        self.ctl = os.path.join(self.mnt, ".faultfs")
        self.proc = None
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)

    def start(self):
        err = open(self.logpath, "a")
        self.proc = subprocess.Popen([FAULTFS, self.backing, self.mnt], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err, start_new_session=True)
        err.close()
        deadline = time.time() + 10
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError("faultfs did not mount:\n" + self.log())
            time.sleep(0.05)
        return self

    def stop(self):
        """Unmount and wait for the daemon; a busy mount is detached."""
        for _ in range(50):
            if subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", self.mnt])
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        except ChildProcessError:
            pass  # reaped by harness.reap_zombies()
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", "-l", self.mnt])

    def restart(self):
        """A fresh mount: nothing of the old one's page cache is left, so
        every read reaches faultfs."""
        self.stop()
        return self.start()

    def arm(self, *rules):
        with open(self.ctl, "w") as f:
            f.write("".join(r + "\n" for r in rules))

    def off(self):
        self.arm("off")

    def hits(self):
        """Requests failed by the rules armed now."""
        with open(self.ctl) as f:
            return sum(int(l.rsplit("hits=", 1)[1]) for l in f if "hits=" in l)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()[-4000:]


@pytest.fixture
def faultfs(workdir, guests):
    if not os.path.exists(FAULTFS):
        pytest.fail("%s is missing: build it with make" % FAULTFS)
    fs = FaultFS(workdir).start()
    yield fs
    # Guests (and so their guardians, which hold the image open) first.
    for g in guests:
        g.kill()
    fs.stop()


def qemu_ram_files(imgdir):
    return [f for f in os.listdir(imgdir) if f.startswith("qemu-ram-")]


def plugin_tail(logpath, n=15):
    return "\n".join(harness.plugin_lines(logpath)[-n:])


def failed_dump(criu, g, faultfs, imgdir, env=None):
    """The dump fails on the armed fault; the guest keeps running with its
    memory, with no userfaultfd registration and no RAM image left."""
    at = g.last_status()
    rc, _ = criu.dump(g.pid, imgdir, expect_ok=False, env=env)
    dumplog = os.path.join(imgdir, "dump.log")
    log = harness.log_text(dumplog)
    assert rc != 0, "dump succeeded on a failing disk:\n" + plugin_tail(dumplog)
    assert faultfs.hits() > 0, "the fault never hit:\n" + faultfs.log()
    assert harness.pid_alive(g.pid)
    left = qemu_ram_files(imgdir)
    assert not left, "RAM image of the failed dump left behind: %s (verify: %s)" % (
        left, img_tool("verify", os.path.join(imgdir, left[0])).stdout.strip())
    faultfs.off()
    wait_guardian_gone(g)
    g.keeps_running(at)
    assert not harness.uffd_vmas(g.pid)
    return log


@pytest.mark.parametrize("live", ["live", "frozen", "frozen-odirect"])
def test_eio_writing_ram_image(workdir, criu, guests, faultfs, live):
    """The RAM image's page data cannot be written past 64 MiB: in the live
    pre-dump (which then falls back to the copy after the freeze, and fails
    there too) or, with live = no, in the frozen copy (also with O_DIRECT)."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    faultfs.arm("write qemu-ram- %d" % WRITE_FAULT_AT)
    env = {"CRIU_QEMU_LIVE": "1" if live == "live" else "0",
           "CRIU_QEMU_ODIRECT": "1" if live.endswith("odirect") else "0"}
    log = failed_dump(criu, g, faultfs, imgdir, env)
    lines = "\n".join(harness.plugin_lines(os.path.join(imgdir, "dump.log")))
    assert "of the RAM image: " + EIO in lines, lines
    assert "writing guest RAM failed: " + EIO in lines, lines
    if live == "live":
        assert "live pre-dump failed (%s)" % EIO in lines, lines
    assert "complete and durable" not in log


def test_eio_writing_criu_pages(workdir, criu, guests, faultfs):
    """CRIU's own pages-*.img fails 1 MiB in, after our image is complete
    and handed to the guardian: the guardian gives every page back."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    faultfs.arm("write pages- %d" % (1 << 20))
    log = failed_dump(criu, g, faultfs, imgdir)
    assert "complete and durable" in log, "our image should have been complete first"
    assert EIO in log, "no I/O error in dump.log"


@pytest.mark.parametrize("live", ["live", "frozen"])
def test_eio_on_fsync_of_ram_image(workdir, criu, guests, faultfs, live):
    """Every fsync/fdatasync of the RAM image fails: the image is never
    durable, so the dump must not succeed."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    faultfs.arm("fsync qemu-ram-")
    env = {"CRIU_QEMU_LIVE": "1" if live == "live" else "0"}
    log = failed_dump(criu, g, faultfs, imgdir, env)
    lines = "\n".join(harness.plugin_lines(os.path.join(imgdir, "dump.log")))
    assert "fsync of page data failed: " + EIO in lines, lines
    if live == "live":
        assert "live: fdatasync of the RAM image: " + EIO in lines, lines
    assert "complete and durable" not in log


@pytest.mark.parametrize("where", ["pages", "bitmap", "header"])
def test_eio_reading_ram_image_at_restore(workdir, criu, guests, faultfs, where):
    """The RAM image cannot be read past a present page in the middle of
    the page data (the filler fails), or past the start of the bitmap or
    of the header (the image is refused when the restore starts): the
    restore fails and no QEMU runs; once the disk reads again, the same
    images restore exactly."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    img = ram_image(imgdir)
    assert img_tool("verify", img).returncode == 0
    show = img_tool("show", "--json", img)
    block = json.loads(show.stdout)["blocks"][0]
    assert block["pages_offset"] == PAGES_OFFSET, "image layout changed: update PAGES_OFFSET"
    present = sorted(harness.image_present_pages(img)[block["name"]])
    page = present[len(present) // 2]
    chunk_off = block["chunk_offsets"][page // block["chunk_pages"]]
    off = {"pages": chunk_off + page % block["chunk_pages"] * block["page_size"],
           "bitmap": block["bitmap_offset"], "header": 0}[where]
    faultfs.restart()
    faultfs.arm("read qemu-ram- %d" % off)
    rc, _ = criu.restore(imgdir, expect_ok=False)
    restorelog = os.path.join(imgdir, "restore.log")
    log = harness.log_text(restorelog)
    shutil.copy(restorelog, os.path.join(workdir, "restore-eio.log"))
    assert rc != 0, "restore succeeded on a failing disk:\n" + plugin_tail(restorelog)
    assert faultfs.hits() > 0, "the fault never hit:\n" + faultfs.log()
    assert EIO in "\n".join(harness.plugin_lines(restorelog)), plugin_tail(restorelog)
    if where == "pages":
        assert "cannot read" in log, plugin_tail(restorelog)
    assert "RAM restored" not in log
    harness.wait_pid_gone(g.pid)
    assert not harness.pid_alive(g.pid)
    faultfs.off()
    log = restore_continues(criu, g, imgdir, at)
    assert "RAM restored" in log


def test_eio_reading_ram_image_while_giving_back(workdir, criu, guests, faultfs):
    """The dump fails after the handoff (CRIU's pages-*.img) while the RAM
    image's page data cannot be read: the guardian holds the only copy of
    guest RAM and must keep it -- no zero page for a page it cannot read --
    and give everything back once the disk reads again."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    # Header, bitmap and checksum table (below 2 MiB) read: the handoff works.
    faultfs.arm("write pages- %d" % (1 << 20), "read qemu-ram- %d" % PAGES_OFFSET)
    at = g.last_status()
    rc, _ = criu.dump(g.pid, imgdir, expect_ok=False)
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    assert rc != 0, "dump succeeded on a failing disk"
    assert "complete and durable" in log and "guardian gives the pages back" in log
    g.wait_for(lambda: "reading pages" in guardian_log(imgdir, g.pid), 30, "a failed read")
    time.sleep(3)
    assert harness.pid_alive(g.pid)
    assert harness.uffd_vmas(g.pid), "the guardian let go of RAM it could not read"
    gl = guardian_log(imgdir, g.pid)
    assert EIO in gl, gl[-2000:]
    assert "gave back" not in gl, gl[-2000:]
    # Retries back off and the log is rate-limited: 3 s of a failing disk
    # once made ~2,600 retries and a megabyte of log.
    assert "retrying up to every" in gl, gl[-2000:]
    assert len(gl) < 64 << 10, "guardian log grew to %d bytes in 3 s" % len(gl)
    faultfs.off()
    wait_guardian_gone(g)
    g.keeps_running(at)
    assert not qemu_ram_files(imgdir)


def test_eio_reading_ram_image_in_lazy_restore(workdir, criu, guests, faultfs):
    """Lazy restore while the RAM image's page data cannot be read: the
    guardian serves no fault it cannot read (the guest waits, or the restore
    fails), and once the disk reads again the guest goes on exactly."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(faultfs.mnt, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    faultfs.restart()
    faultfs.arm("read qemu-ram- %d" % PAGES_OFFSET)
    mark = g.mark()
    rc, _ = criu.restore(imgdir, expect_ok=False, env={"CRIU_QEMU_LAZY_RESTORE": "1"})
    log = harness.log_text(os.path.join(imgdir, "restore.log"))
    assert "lazy restore: guest RAM handed to guardian" in log, plugin_tail(
        os.path.join(imgdir, "restore.log"))
    time.sleep(3)
    assert faultfs.hits() > 0, "the fault never hit:\n" + faultfs.log()
    gl = guardian_log(imgdir, g.pid)
    assert EIO in gl, gl[-2000:]
    late = g.lines()[mark:]
    assert not [l for l in late if "CORRUPT" in l], "the guest ran on memory it did not have"
    if rc != 0:
        harness.wait_pid_gone(g.pid)
        return
    assert harness.pid_alive(g.pid)
    faultfs.off()
    g.keeps_running(at, since=mark, passes=2)
    g.wait_for(lambda: not harness.uffd_vmas(g.pid), 60, "no userfaultfd left")
