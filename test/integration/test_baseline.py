"""Foundation: a real TCG guest dumped and restored by CRIU with the plugin
loaded; a non-QEMU process untouched by the plugin."""
import os
import subprocess
import time

import harness


def test_tcg_guest_survives_dump_restore(workdir, criu, guests):
    g = harness.Guest(workdir, mem="512M", wl_mb=64).start()
    guests.append(g)
    g.wait_ready()
    before = g.wait_passes(2)

    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir)
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    assert at_dump["w"] >= before["w"]

    lines = harness.plugin_lines(os.path.join(imgdir, "dump.log"))
    assert any("is QEMU" in l and str(g.pid) in l for l in lines), lines

    mark = g.mark()
    criu.restore(imgdir)
    assert harness.pid_alive(g.pid), "restored QEMU is not running"
    # Two full verification passes after restore: every page was re-read.
    g.keeps_running(at_dump, since=mark, passes=2)


def test_non_qemu_process_is_left_alone(workdir, criu):
    p = subprocess.Popen(["sleep", "1000"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        imgdir = os.path.join(workdir, "img")
        criu.dump(p.pid, imgdir)
        p.wait(timeout=10)
        harness.wait_pid_gone(p.pid)

        lines = harness.plugin_lines(os.path.join(imgdir, "dump.log"))
        assert any("is not QEMU" in l for l in lines), lines
        # Nothing but "loaded", "not QEMU" and "finished" from the plugin.
        activity = [l for l in lines if "qemu_plugin:" in l and not any(
            k in l for k in ("loaded for", "is not QEMU", "finished with"))]
        assert not activity, activity
        assert not [f for f in os.listdir(imgdir) if f.startswith("qemu-ram")]

        criu.restore(imgdir)
        assert harness.pid_alive(p.pid)
        rlines = harness.plugin_lines(os.path.join(imgdir, "restore.log"))
        assert not [l for l in rlines if "Error" in l], rlines
    finally:
        try:
            os.kill(p.pid, 9)
        except ProcessLookupError:
            pass
        harness.wait_pid_gone(p.pid)


def test_detector_catches_corruption(workdir, guests):
    """The verification these tests rely on must be able to fail: a guest
    that flips one byte of its own memory is reported as corrupt."""
    g = harness.Guest(workdir, mem="256M", wl_mb=16, kernel_args="wl.self_test_corrupt=1").start()
    guests.append(g)
    g.wait_ready()
    g.wait_for(lambda: any("WL CORRUPT" in l for l in g.lines()), 60, "a CORRUPT line")
    try:
        g.check_console()
    except AssertionError as e:
        assert "CORRUPT" in str(e)
    else:
        raise AssertionError("check_console() accepted a corrupt guest")


def test_plugin_exports_only_its_descriptor():
    """CRIU looks up CR_PLUGIN_DESC alone; nothing else of ours may land in
    CRIU's symbol namespace (-fvisibility=hidden)."""
    so = os.path.join(harness.PLUGIN_DIR, "qemu_plugin.so")
    out = subprocess.run(["nm", "-D", "--defined-only", so], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    assert [l.split()[-1] for l in out.splitlines()] == ["CR_PLUGIN_DESC"], out
