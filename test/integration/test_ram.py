"""Guest RAM saved by the plugin as fixed-ram images, never by CRIU's pagemap;
safe handoff; parallel restore. Real QEMU, real CRIU."""
import json
import os

import pytest

import harness
from harness import corrupt_copy, dump_and_check_handoff, img_tool, ram_image, restore_and_verify, start_guest


def test_anon_ram_leaves_criu_pages_empty(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=256)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()

    img = ram_image(imgdir)
    assert img_tool("verify", img).returncode == 0
    ours = harness.allocated_bytes(img)
    theirs = harness.pages_img_bytes(imgdir)
    # The workload alone owns 256 MiB of non-zero pages, all in our image.
    assert ours >= 240 << 20, ours
    # CRIU stored not a single page of guest RAM: what it keeps is QEMU's
    # own memory (heap, ROMs; TCG's code buffer is the plugin's too).
    ram = harness.plugin_ram_ranges(os.path.join(imgdir, "dump.log"))
    assert ram, "plugin logged no RAM block"
    pagemap = harness.criu_pagemap(imgdir, g.pid)
    assert sum(n for _, n in pagemap) * 4096 == theirs
    inside = [(va, n) for va, n in pagemap for lo, hi in ram if va < hi and va + n * 4096 > lo]
    assert not inside, "CRIU's pagemap holds guest RAM pages: %s" % inside[:5]
    restore_and_verify(criu, g, imgdir, at_dump)


def tcg_code_range(pid):
    """QEMU's translation buffer: its large private anonymous rwx mapping."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if perms == "rwxp" and len(line.split()) == 5 and hi - lo >= 64 << 20:
                return lo, hi
    return None


def criu_pages_in(imgdir, pid, lo, hi):
    """How many pages CRIU itself stored in [lo, hi)."""
    return sum(min(hi, va + n * 4096) - max(lo, va) for va, n in harness.criu_pagemap(imgdir, pid)
               if va < hi and va + n * 4096 > lo) // 4096


@pytest.mark.parametrize("tcg_code", ["1", "0"])
def test_tcg_code_buffer_saved_like_ram(workdir, criu, guests, tcg_code):
    """TCG's code buffer is a block of the image (CRIU copies none of it
    while the VM is frozen, but the one page its vdso probe reads), and the
    restored QEMU runs on it; with tcg_code = no CRIU stores it."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    code = tcg_code_range(g.pid)
    assert code, "no TCG code buffer in QEMU's maps"
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir, env={"CRIU_QEMU_TCG_CODE": tcg_code})
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    blocks = json.loads(img_tool("show", "--json", ram_image(imgdir)).stdout)["blocks"]
    saved = [b for b in blocks if b["executable"]]
    theirs = criu_pages_in(imgdir, g.pid, *code)
    if tcg_code == "1":
        assert [(b["name"], b["host_addr"], b["host_addr"] + b["length"]) for b in saved] == \
            [("tcg-code", code[0], code[1])]
        # Translated code of the guest's kernel and workload: hundreds of pages.
        assert saved[0]["pages_present"] > 100, saved[0]
        assert theirs <= 1, "CRIU stored %d pages of the code buffer" % theirs
    else:
        assert not saved
        assert theirs > 100, "CRIU stored only %d pages of the code buffer" % theirs
    restore_and_verify(criu, g, imgdir, at_dump)


def test_sparse_guest_stores_only_data_pages(workdir, criu, guests):
    """2 GiB guest, 64 MiB touched: the image holds the data pages only."""
    g = start_guest(workdir, guests, mem="2G", wl_mb=64, zero_every=4)
    imgdir = os.path.join(workdir, "img")
    # The copy after the freeze (no live phase) logs how many zero pages it skipped.
    dump_and_check_handoff(criu, g, imgdir, env={"CRIU_QEMU_LIVE": "0"})
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()

    img = ram_image(imgdir)
    show = img_tool("show", "--json", img)
    assert show.returncode == 0, show.stdout
    blocks = json.loads(show.stdout)["blocks"]
    # TCG's translated code is in the image too (tens of MiB, not guest RAM).
    code = sum(b["pages_present"] * 4096 for b in blocks if b["executable"])
    assert code, "no TCG code buffer in the image"
    allocated = harness.allocated_bytes(img) - code
    apparent = os.path.getsize(img) - code
    # 64 MiB of workload (a quarter of it explicit zero pages, never stored)
    # plus the guest kernel's own pages; far below the 2 GiB of guest RAM.
    assert allocated < 160 << 20, "image allocates %d MiB" % (allocated >> 20)
    # Only chunks with data have a place in the file: its apparent size
    # follows the data too, so tools that do not keep holes (container
    # engines' tar archives) copy no more than that.
    assert apparent < 200 << 20, "image is %d MiB apparent" % (apparent >> 20)
    block = blocks[0]
    assert not block["executable"]
    assert block["slots"] < block["nr_chunks"] // 4, block["slots"]
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    saved = [l for l in log.splitlines() if "RAM saved" in l][0]
    zero = int(saved.split(" zero skipped")[0].rsplit(" ", 1)[1])
    assert zero >= (64 << 20) // 4096 // 4 * 0.9, saved
    restore_and_verify(criu, g, imgdir, at_dump)


def test_leave_running_keeps_guest_and_image_restores(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    imgdir = os.path.join(workdir, "img")
    mark = g.mark()
    dump_and_check_handoff(criu, g, imgdir, leave_running=True)
    assert harness.pid_alive(g.pid)
    at_dump = g.last_status()
    # The original keeps running on its pages, given back by the guardian.
    g.keeps_running(at_dump, since=mark)

    g.kill()
    restore_and_verify(criu, g, imgdir, at_dump, rewinds=True)


def test_failed_post_dump_script_gives_pages_back(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    script = harness.failing_post_dump_script(workdir)
    imgdir = os.path.join(workdir, "img")
    rc, _ = criu.dump(g.pid, imgdir, extra=["--action-script", script], expect_ok=False)
    assert rc != 0
    assert "complete and durable" in harness.log_text(os.path.join(imgdir, "dump.log"))
    assert harness.pid_alive(g.pid), "CRIU killed the guest although post-dump failed"
    at = g.last_status()
    g.keeps_running(at)


@pytest.mark.parametrize("when", ["after-handoff", "post-dump"])
def test_criu_killed_guest_keeps_memory(workdir, criu, guests, when):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    imgdir = os.path.join(workdir, "img")
    env, extra = {}, []
    if when == "after-handoff":
        # The plugin SIGKILLs CRIU right after the last range was handed over.
        env["CRIU_QEMU_TEST_CRASH"] = "after-handoff"
    else:
        script = os.path.join(workdir, "kill-criu.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && kill -9 $PPID\nexit 0\n')
        os.chmod(script, 0o755)
        extra = ["--action-script", script]
    rc, _ = criu.dump(g.pid, imgdir, extra=extra, env=env, expect_ok=False)
    assert rc == -9, "criu was expected to die by SIGKILL, rc %d" % rc
    assert harness.pid_alive(g.pid)
    at = g.last_status()
    g.keeps_running(at)


def test_bad_images_fail_restore_clearly(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    dump_and_check_handoff(criu, g, imgdir)
    harness.wait_pid_gone(g.pid)
    expect = {"truncate": "truncated", "magic": "not a criu-qemu RAM image", "page": "RAM image is corrupt"}
    for how, msg in expect.items():
        bad = corrupt_copy(imgdir, os.path.join(workdir, "bad-" + how), how)
        rc, _ = criu.restore(bad, expect_ok=False)
        assert rc != 0, "restore from a %s image succeeded" % how
        harness.wait_pid_gone(g.pid)
        log = harness.log_text(os.path.join(bad, "restore.log"))
        assert msg in log, "%s: no '%s' in restore.log" % (how, msg)
    # The intact image still restores.
    restore_and_verify(criu, g, imgdir, g.last_status())
