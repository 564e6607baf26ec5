"""QEMU's monitor held by another client (a management tool) during a dump.
QEMU serves one QMP client at a time; a second connection waits in its
listening socket's backlog, and stays there once we give up: CRIU then
refuses to dump QEMU ("Found a closed in-flight socket"). The plugin must
not connect, fall back to the command line, and the guest restore exactly."""
import json
import os
import socket

import harness


def hold_monitor(path):
    """Connect and negotiate like a management tool; keep it open."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    assert "return" in json.loads(f.readline())
    return s, f


def qemu_side_inode(g):
    """Inode of QEMU's end of the accepted monitor connection."""
    fds = {os.readlink("/proc/%d/fd/%s" % (g.pid, n)) for n in os.listdir("/proc/%d/fd" % g.pid)}
    with open("/proc/%d/net/unix" % g.pid) as f:
        for line in f:
            w = line.split()
            if len(w) == 8 and w[7] == g.qmp_path and w[5] == "03" and "socket:[%s]" % w[6] in fds:
                return w[6]
    raise AssertionError("QEMU has no accepted monitor connection")


def test_busy_monitor_falls_back_to_command_line(workdir, criu, guests):
    g = harness.Guest(workdir, mem="512M", wl_mb=64).start()
    guests.append(g)
    g.wait_ready()
    g.wait_passes(2)
    s, f = hold_monitor(g.qmp_path)
    ino = qemu_side_inode(g)

    # The tool's end is outside the dumped tree: CRIU must be told (and
    # given a socket for it at restore), with or without the plugin.
    imgdir = os.path.join(workdir, "img")
    criu.dump(g.pid, imgdir, extra=["--external", "unix[%s]" % ino])
    log = harness.log_text(os.path.join(imgdir, "dump.log"))
    assert "is busy" in log and "using the command line" in log
    assert "complete and durable" in log
    harness.wait_pid_gone(g.pid)
    at_dump = g.last_status()
    f.close()
    s.close()

    mine, peer = socket.socketpair()
    mark = g.mark()
    criu.restore(imgdir, extra=["--inherit-fd", "fd[%d]:socket:[%s]" % (mine.fileno(), ino)],
                 pass_fds=[mine.fileno()])
    mine.close()
    assert harness.pid_alive(g.pid)
    g.keeps_running(at_dump, since=mark, passes=2)
    assert "RAM restored" in harness.log_text(os.path.join(imgdir, "restore.log"))
    # The restored monitor served the inherited connection; once it is
    # gone QEMU takes the next client.
    peer.close()
    assert g.qmp("query-status")["running"]
