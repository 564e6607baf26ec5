"""CRIU over RPC as runc drives it (`criu swrk`, criu_rpc.py): the plugin
reads the dump's verdict from CRIU's options, where the command line says
nothing, and the guardian gives guest RAM back at once when the task runs
on. Real QEMU, real CRIU."""
import os

import criu_rpc
import harness
from harness import guardian_log, log_text, restore_and_verify, start_guest


def rpc_dump(g, imgdir, **kw):
    """An RPC dump that succeeded with the plugin saving RAM; dump.log."""
    r = criu_rpc.dump(g.pid, imgdir, **kw)
    assert r.success, "RPC dump failed: errno %d: %s" % (r.errno, r.errmsg)
    assert r.notifies[-1] == "post-dump", r.notifies
    log = log_text(os.path.join(imgdir, "dump.log"))
    assert "complete and durable" in log, "plugin did not save RAM"
    return log


def guardian_done(g, imgdir):
    """The guardian's log once it has exited."""
    g.wait_for(lambda: "exiting" in guardian_log(imgdir, g.pid), 60, "guardian exit")
    return guardian_log(imgdir, g.pid)


def test_rpc_leave_running_gives_back_at_once(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    imgdir = os.path.join(workdir, "img")
    mark = g.mark()
    log = rpc_dump(g, imgdir, leave_running=True)
    assert "verdict: leave-running (from CRIU's opts.final_state, RPC mode)" in log
    assert harness.pid_alive(g.pid)
    at_dump = g.last_status()
    g.keeps_running(at_dump, since=mark)
    glog = guardian_done(g, imgdir)
    # Told at the verdict, not learnt from the task's faults.
    assert "giving guest RAM back: verdict: the task runs again" in glog, glog
    assert "gave back" in glog, glog

    g.kill()
    restore_and_verify(criu, g, imgdir, at_dump, rewinds=True)


def test_rpc_dump_kills_task_and_restores(workdir, criu, guests):
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    imgdir = os.path.join(workdir, "img")
    log = rpc_dump(g, imgdir)
    assert "verdict: killed (from CRIU's opts.final_state, RPC mode)" in log
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    glog = guardian_done(g, imgdir)
    assert "pid %d exited" % g.pid in glog, glog
    assert "giving guest RAM back" not in glog, glog
    restore_and_verify(criu, g, imgdir, at_dump)


def test_rpc_failed_post_dump_gives_back_at_once(workdir, criu, guests):
    """The verdict says killed, but the client fails post-dump and CRIU lets
    the task run: the guardian sees CRIU let go of it (or its first fault)
    and gives everything back at once."""
    g = start_guest(workdir, guests, mem="1G", wl_mb=128)
    imgdir = os.path.join(workdir, "img")
    mark = g.mark()
    r = criu_rpc.dump(g.pid, imgdir, fail_post_dump=True)
    assert not r.success
    log = log_text(os.path.join(imgdir, "dump.log"))
    assert "verdict: killed (from CRIU's opts.final_state, RPC mode)" in log
    assert harness.pid_alive(g.pid), "CRIU killed the guest although post-dump failed"
    at = g.last_status()
    g.keeps_running(at, since=mark)
    glog = guardian_done(g, imgdir)
    assert ("CRIU let go of the task after the done verdict" in glog or
            "the task faults after the done verdict" in glog), glog
    assert "gave back" in glog, glog
