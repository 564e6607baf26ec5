"""Shared guest RAM (memory-backend-memfd share=on, and memory-backend-ram
share=on, a shared anonymous mapping): the plugin saves it in its image and
punches the shmem object, so CRIU's memfd/shmem dump finds holes and stores
nothing of it; restore refills it through the mapping. Real QEMU, real CRIU."""
import os

import pytest

import harness
from harness import (dump_and_check_handoff, img_tool, live_passes, ram_image, restore_and_verify,
                     start_guest)


def _pagemap_pages(path):
    """Pages listed in one CRIU pagemap image (pagemap_head, then entries)."""
    with open(path, "rb") as f:
        data = f.read()
    i, pages, first = 8, 0, True  # two magics
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "little")
        msg = data[i + 4:i + 4 + n]
        i += 4 + n
        if first:
            first = False
            continue
        pages += harness.pb_message_fields(msg)[2]
    return pages


def shmem_pages(imgdir):
    """Pages CRIU stored for shared memory objects (memfd, shared anon)."""
    return sum(_pagemap_pages(os.path.join(imgdir, f)) for f in os.listdir(imgdir)
               if f.startswith("pagemap-shmem-") and f.endswith(".img"))


def check_shared_handoff(imgdir, pid):
    """The shared block was saved and punched, not left to CRIU."""
    lines = harness.plugin_lines(os.path.join(imgdir, "dump.log"))
    blocks = [l for l in lines if ": RAM block " in l and " at 0x" in l]
    assert any("shared-fd" in l for l in blocks), "no shared block saved:\n" + "\n".join(blocks)
    assert [l for l in lines if "handed to guardian" in l], "no handoff:\n" + "\n".join(lines[-20:])
    assert not [l for l in lines if "stays with CRIU" in l or ("left to CRIU" in l and "ram0" in l)]
    glog = harness.log_text(os.path.join(imgdir, "guardian-%d.log" % pid))
    assert "(shared, punched)" in glog, glog


# memory-backend-ram share=on maps shared anonymous memory ("/dev/zero (deleted)").
SHARED_ANON = ["-object", "memory-backend-ram,id=ram0,size=1G,share=on", "-machine", "memory-backend=ram0"]


@pytest.mark.parametrize("backend", ["memfd", "ram-share"])
def test_memfd_ram_leaves_criu_pages_empty(workdir, criu, guests, backend):
    # 4 MiB/s of rewrites: the live phase (uffd-wp on shmem) has to track them.
    if backend == "memfd":
        g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=4096, memfd=True)
    else:
        g = start_guest(workdir, guests, mem="1G", wl_mb=256, rate_kbs=4096, extra_args=SHARED_ANON)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    check_shared_handoff(imgdir, g.pid)
    passes = live_passes(os.path.join(imgdir, "dump.log"))
    # Pages written after the last live pass were copied by the final one.
    assert len(passes) >= 3 and passes[-1][0] == "final" and passes[-1][2] > 0, passes

    img = ram_image(imgdir)
    assert img_tool("verify", img).returncode == 0
    ours = harness.allocated_bytes(img)
    theirs = harness.pages_img_bytes(imgdir)
    # The workload alone owns 256 MiB of non-zero pages, all in our image.
    assert ours >= 240 << 20, ours
    # CRIU found the memfd punched and stored not a page of it (its memfd
    # image still records the object and its size): all of its pages-*.img
    # is QEMU's own private memory (heap, TCG code buffer, ROMs), far less
    # than the workload it would otherwise hold.
    assert shmem_pages(imgdir) == 0, "CRIU stored %d memfd pages" % shmem_pages(imgdir)
    assert sum(n for _, n in harness.criu_pagemap(imgdir, g.pid)) * 4096 == theirs
    assert theirs < 256 << 20, "CRIU stored %d MiB of pages" % (theirs >> 20)
    restore_and_verify(criu, g, imgdir, at_dump)


def test_memfd_leave_running_keeps_guest_and_image_restores(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128, memfd=True)
    imgdir = os.path.join(workdir, "img")
    mark = g.mark()
    dump_and_check_handoff(criu, g, imgdir, leave_running=True)
    assert harness.pid_alive(g.pid)
    at_dump = g.last_status()
    check_shared_handoff(imgdir, g.pid)
    assert shmem_pages(imgdir) == 0
    # The original keeps running on its memfd, refilled by the guardian.
    g.keeps_running(at_dump, since=mark)
    gb = [l for l in harness.log_text(os.path.join(imgdir, "guardian-%d.log" % g.pid)).splitlines()
          if "gave back" in l]
    assert gb, "the guardian logged no give-back"

    g.kill()
    restore_and_verify(criu, g, imgdir, at_dump, rewinds=True)


def test_memfd_criu_killed_guest_keeps_memory(workdir, criu, guests):
    """CRIU dies right after the memfd was punched: the guardian refills it."""
    g = start_guest(workdir, guests, mem="1G", wl_mb=128, memfd=True)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, env={"CRIU_QEMU_TEST_CRASH": "after-handoff"}, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    check_shared_handoff(imgdir, g.pid)
    assert harness.pid_alive(g.pid)
    at = g.last_status()
    g.keeps_running(at)
