"""CRIU driven over RPC the way runc drives it: `criu swrk FD` on a
SOCK_SEQPACKET socket, one CriuReq, notifications answered, one CriuResp.

The few fields used of CRIU's images/rpc.proto are encoded with the
harness's protobuf helpers, so no protobuf package is needed.
"""
import os
import socket
import subprocess
import time

import harness

# criu_req_type
DUMP, NOTIFY = 1, 6


def _message(fields):
    return harness.pb_encode(fields)


def _parse(buf):
    """{field number: [values]}: varints as int, length-delimited as bytes."""
    out = {}
    for num, v in harness.pb_message_items(buf):
        out.setdefault(num, []).append(v)
    return out


class RpcResult:
    def __init__(self, success, errno, errmsg, notifies, elapsed):
        self.success = success
        self.errno = errno
        self.errmsg = errmsg
        self.notifies = notifies	# the scripts CRIU notified, in order
        self.elapsed = elapsed


def dump(pid, imgdir, leave_running=False, fail_post_dump=False, log_level=4, timeout=300):
    """Dump pid into imgdir through `criu swrk`, the plugin loaded from the
    build (CRIU_LIBS_DIR); dump.log in imgdir. Notifications are answered
    as runc does, with success (fail_post_dump: post-dump fails, and CRIU
    lets the tasks run). Returns an RpcResult."""
    os.makedirs(imgdir, exist_ok=True)
    dfd = os.open(imgdir, os.O_RDONLY | os.O_DIRECTORY)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = harness.Criu(imgdir)._env({"CRIU_LIBS_DIR": harness.PLUGIN_DIR})
    t0 = time.monotonic()
    try:
        # images_dir_fd is a descriptor of ours: CRIU opens /proc/OUR_PID/fd/N.
        opts = [(1, dfd), (2, pid), (9, log_level), (10, "dump.log"), (12, True)]
        if leave_running:
            opts.append((3, True))
        p = subprocess.Popen([harness.criu_bin(), "swrk", str(theirs.fileno())],
                             pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                             env=env)
        theirs.close()
        ours.settimeout(timeout)
        ours.send(_message([(1, DUMP), (2, _message(opts))]))
        notifies = []
        while True:
            resp = _parse(ours.recv(1 << 20))
            if resp[1][0] != NOTIFY:
                break
            script = _parse(resp[5][0])[1][0].decode()
            notifies.append(script)
            ok = not (fail_post_dump and script == "post-dump")
            ours.send(_message([(1, NOTIFY), (3, ok)]))
        p.wait(timeout)
        harness.reap_zombies()
        return RpcResult(bool(resp[2][0]), resp.get(7, [0])[0],
                         resp.get(9, [b""])[0].decode(errors="replace"), notifies,
                         time.monotonic() - t0)
    finally:
        ours.close()
        os.close(dfd)
