"""Restore integrity: a RAM image is used only for the checkpoint it belongs
to, and only into the mappings it was dumped from. Each case restores the
right state or fails clearly; the guest verifies its own memory after every
restore that succeeds. Real QEMU, real CRIU."""
import json
import os
import shutil
import subprocess

import pytest
import xxhash

import harness
from harness import img_tool, ram_image, restore_continues, start_guest, wait_guardian_gone


def restore_fails(criu, g, imgdir, why, env=None):
    rc, _ = criu.restore(imgdir, expect_ok=False, env=env)
    assert rc != 0, "restore succeeded, expected: %s" % why
    harness.wait_pid_gone(g.pid)
    log = harness.log_text(os.path.join(imgdir, "restore.log"))
    assert why in log, "no '%s' in restore.log:\n%s" % (why, "\n".join(harness.plugin_lines(
        os.path.join(imgdir, "restore.log"))[-10:]))
    assert "RAM restored" not in log
    return log


def copy_dir(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("restore.log"))
    return dst


# --- header forging: as image-format.md says, checksums recomputed ----------

def forge_header(path, edit):
    """edit(header_items, blocks) changes the decoded header in place (blocks:
    a list of {field: value} dicts); the header and its checksum are
    rewritten, so only the plugin's consistency checks can find it out."""
    with open(path, "r+b") as f:
        prefix = bytearray(f.read(32))
        hdr = f.read(int.from_bytes(prefix[12:16], "little"))
        items = harness.pb_message_items(hdr)
        blocks = [dict(harness.pb_message_items(v)) for k, v in items if k == 3]
        items = [(k, v) for k, v in items if k != 3]
        edit(f, items, blocks)
        items = items[:2] + [(3, harness.pb_encode(sorted(b.items()))) for b in blocks] + items[2:]
        new = harness.pb_encode(items)
        prefix[12:16] = len(new).to_bytes(4, "little")
        prefix[16:24] = xxhash.xxh3_64_intdigest(new).to_bytes(8, "little")
        f.seek(32)
        f.write(new)
        f.seek(0)
        f.write(prefix)


def set_pid(pid):
    def edit(f, items, blocks):
        items[:] = [(k, pid if k == 1 else v) for k, v in items]
    return edit


def shift_host(delta):
    def edit(f, items, blocks):
        blocks[0][2] += delta
    return edit


def halve_length(f, items, blocks):
    """Block 0 keeps its first half: bitmap, checksum and chunk tables, their
    checksums and the present count all recomputed for it."""
    b = blocks[0]
    b[3] //= 2
    nr_pages = b[3] // b[4]
    f.seek(b[6])
    bitmap = f.read(nr_pages // 8)
    f.seek(b[7])
    csums = f.read(-(-nr_pages // b[9]) * 8)
    f.seek(b[13])
    chunks = f.read(-(-nr_pages // b[9]) * 8)
    b[10] = sum(bin(x).count("1") for x in bitmap)
    b[11] = xxhash.xxh3_64_intdigest(bitmap)
    b[12] = xxhash.xxh3_64_intdigest(csums)
    b[14] = xxhash.xxh3_64_intdigest(chunks)


def set_executable(name, value):
    """Block `name`'s executable mark (field 15) set, or dropped (value 0)."""
    def edit(f, items, blocks):
        b = [b for b in blocks if b[1] == name.encode()][0]
        b.pop(15, None)
        if value:
            b[15] = value
    return edit


# --- tests ----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["no plugin", "enabled = no"])
def test_stale_image_beside_dump_without_plugin(workdir, criu, guests, how):
    """A checkpoint taken with the plugin, then one without it (plugin not
    loaded, or enabled = no) into the same directory: the old image stays
    beside CRIU's new images and must be ignored -- the guest continues from
    the newer dump, not on the older RAM."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir, leave_running=True)
    old = ram_image(imgdir)
    wait_guardian_gone(g)
    g.wait_progress(after=g.last_status())
    if how == "no plugin":
        criu.dump(g.pid, imgdir, plugin=False)
    else:
        criu.dump(g.pid, imgdir, env={"CRIU_QEMU_ENABLED": "no"})
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    assert os.path.exists(old), "the stale image is part of this case"
    log = restore_continues(criu, g, imgdir, at)
    assert "ignored: the checkpoint was dumped without the plugin" in log
    assert "RAM restored" not in log


def test_image_of_another_checkpoint(workdir, criu, guests):
    """CRIU's images of dump B with the RAM image of dump A, a second image
    for the same pid, a deleted image, the plugin disabled at restore: each
    fails the restore clearly; B's own image then restores exactly."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    dir_a, dir_b = os.path.join(workdir, "a"), os.path.join(workdir, "b")
    criu.dump(g.pid, dir_a, leave_running=True)
    wait_guardian_gone(g)
    g.wait_progress(after=g.last_status())
    criu.dump(g.pid, dir_b)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    name = os.path.basename(ram_image(dir_b))

    mixed = copy_dir(dir_b, os.path.join(workdir, "mixed"))
    shutil.copy(os.path.join(dir_a, name), os.path.join(mixed, name))
    restore_fails(criu, g, mixed, "is not of this checkpoint")
    restore_fails(criu, g, mixed, "but no RAM image of it")

    two = copy_dir(dir_b, os.path.join(workdir, "two"))
    shutil.copy(os.path.join(two, name), os.path.join(two, name[:-4] + "-a.img"))
    restore_fails(criu, g, two, "a renamed or copied image")

    gone = copy_dir(dir_b, os.path.join(workdir, "gone"))
    os.unlink(os.path.join(gone, name))
    restore_fails(criu, g, gone, "but no RAM image of it")

    restore_fails(criu, g, dir_b, "the plugin is disabled (enabled = no)",
                  env={"CRIU_QEMU_ENABLED": "no"})

    log = restore_continues(criu, g, dir_b, at)
    assert "of this checkpoint (CRIU run" in log


def test_forged_headers_fail_restore(workdir, criu, guests):
    """Headers changed with their checksums recomputed (they pass
    `criu-qemu-img verify`): the restore refuses to write guest RAM where the
    block was not mapped as dumped, or for another pid."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    cases = {
        "pid": (set_pid(99999), "holds the RAM of pid 99999"),
        "length": (halve_length, "ends inside the mapping"),
        "shift": (shift_host(4096), "starts earlier"),
        # Guest RAM marked executable: its mapping is rw-, not rwx.
        "exec": (set_executable("pc.ram", 1), "is rw-p anonymous, not executable anon-private"),
        # TCG's code buffer no longer marked so: the first page CRIU holds of
        # it (its vdso probe's) is let through only for an executable block.
        "tcg": (set_executable("tcg-code", 0), "CRIU stored pages"),
    }
    for how, (edit, why) in cases.items():
        bad = copy_dir(imgdir, os.path.join(workdir, "bad-" + how))
        forge_header(ram_image(bad), edit)
        r = img_tool("verify", ram_image(bad))
        assert r.returncode == 0, "%s: forged image should pass verify: %s" % (how, r.stdout)
        restore_fails(criu, g, bad, why)
    restore_continues(criu, g, imgdir, at)


def test_disk_full_while_criu_writes_removes_image(workdir, criu, guests):
    """The file system fills up while CRIU writes its own pages, after our
    image is complete: the dump fails, no valid-looking RAM image stays
    behind, and the guest keeps running with its memory."""
    g = start_guest(workdir, guests, mem="512M", wl_mb=64)
    probe = os.path.join(workdir, "probe")
    criu.dump(g.pid, probe, leave_running=True)
    ours = harness.allocated_bytes(ram_image(probe))
    theirs = harness.pages_img_bytes(probe)
    assert theirs > 8 << 20, "CRIU's pages too small to fill a disk between: %d" % theirs
    size_mb = (ours + theirs // 2) >> 20
    wait_guardian_gone(g)
    small = os.path.join(workdir, "small")
    os.makedirs(small)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", small], check=True)
    try:
        rc, _ = criu.dump(g.pid, small, expect_ok=False)
        log = harness.log_text(os.path.join(small, "dump.log"))
        assert rc != 0, "dump into a %d MiB file system succeeded" % size_mb
        assert "complete and durable" in log, "our image should have been complete first"
        assert "No space left on device" in log or "ENOSPC" in log
        assert not [f for f in os.listdir(small) if f.startswith("qemu-ram-")], os.listdir(small)
        assert harness.pid_alive(g.pid)
        g.keeps_running(g.last_status())
    finally:
        subprocess.run(["umount", "-l", small])


def test_equal_size_blocks_keep_their_names(workdir, criu, guests):
    """Two RAM backends of one size and kind (NUMA nodes; one dump=off):
    /proc/PID/maps cannot tell them apart, so each is placed where QEMU says
    it is mapped and saved under its own name; the guest restores exactly."""
    numa = ["-object", "memory-backend-ram,id=m0,size=256M",
            "-object", "memory-backend-ram,id=m1,size=256M,dump=off",
            "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"]
    g = start_guest(workdir, guests, mem="512M", wl_mb=64, extra_args=numa)
    where = {}
    for name, gpa in (("m0", 0), ("m1", 256 << 20)):
        out = g.qmp("human-monitor-command", {"command-line": "gpa2hva %#x" % gpa})
        assert "(%s)" % name in out, out
        where[name] = int(out.split(" is ")[1], 16)
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at = g.last_status()
    show = json.loads(img_tool("show", "--json", ram_image(imgdir)).stdout)
    saved = {b["name"]: int(b["host_addr"], 0) if isinstance(b["host_addr"], str) else b["host_addr"]
             for b in show["blocks"] if not b["executable"]}
    assert saved == where, "blocks saved under the wrong names: %s, QEMU: %s" % (saved, where)
    restore_continues(criu, g, imgdir, at)


def test_two_qemus_in_one_tree(workdir, criu, guests):
    """One checkpoint of a process tree with two QEMUs: each gets its own
    image of the same CRIU run, CRIU's inventory names the plugin once and
    each image by name; with one image deleted the restore fails, and with
    both the guests restore exactly."""
    a = harness.Guest(workdir, mem="512M", wl_mb=32, name="a")
    b = harness.Guest(workdir, mem="512M", wl_mb=32, name="b")
    script = " & ".join(" ".join("'%s'" % w for w in g.cmd) for g in (a, b)) + " & wait"
    sh = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def qemu_children():
            """{name: pid} of the shell's children that have exec'd QEMU (a
            child that has only forked still shows the shell's cmdline)."""
            with open("/proc/%d/task/%d/children" % (sh.pid, sh.pid)) as f:
                kids = [int(p) for p in f.read().split()]
            found = {}
            for pid in kids:
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                for g in (a, b):
                    if ("-name\0%s\0" % g.name).encode() in cmdline:
                        found[g.name] = pid
            return found
        def both_started():
            found = qemu_children()
            return found if len(found) == 2 else None
        pids = harness.Guest.wait_for(a, both_started, 30, "two QEMUs")
        for g in (a, b):
            g.pid = pids[g.name]
            guests.append(g)	# killed after the test, whatever happens
        for g in (a, b):
            g.wait_ready(timeout=300)	# two guests booting at once
        imgdir = os.path.join(workdir, "img")
        criu.dump(sh.pid, imgdir)
        harness.wait_pid_gone(sh.pid)
        at = {g.name: g.last_status() for g in (a, b)}
        imgs = sorted(f for f in os.listdir(imgdir) if f.startswith("qemu-ram-"))
        assert imgs == sorted("qemu-ram-%d.img" % g.pid for g in (a, b)), imgs
        with open(os.path.join(imgdir, "inventory.img"), "rb") as f:
            inv = f.read()
        entries = [b"qemu_plugin:qemu-ram-%d.img" % g.pid for g in (a, b)]
        assert inv.count(b"qemu_plugin") == 3 and all(e in inv for e in entries), inv
        # One image gone: the other still matches, but the restore must fail
        # before any task is created rather than start a guest without RAM.
        partial = os.path.join(workdir, "partial")
        subprocess.run(["cp", "-a", "--sparse=always", imgdir, partial], check=True)
        os.unlink(os.path.join(partial, "qemu-ram-%d.img" % b.pid))
        rc, _ = criu.restore(partial, expect_ok=False)
        log = harness.log_text(os.path.join(partial, "restore.log"))
        assert rc != 0, log[-2000:]
        assert "Missing required plugin: qemu_plugin:qemu-ram-%d.img" % b.pid in log, log[-2000:]
        assert "RAM restored" not in log
        marks = {g.name: g.mark() for g in (a, b)}
        criu.restore(imgdir)
        log = harness.log_text(os.path.join(imgdir, "restore.log"))
        assert log.count("RAM restored") == 2, log[-2000:]
        for g in (a, b):
            g.keeps_running(at[g.name], since=marks[g.name], passes=2)
    finally:
        if sh.poll() is None:
            sh.kill()
        harness.reap_zombies()
