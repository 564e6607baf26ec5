#!/usr/bin/python3
"""Podman figures with and without the plugin, one guest, one run:
checkpoint and restore (--keep), a second checkpoint into the directory
of the first, export and import (--export/--import,
uncompressed archive), the archive's size and what the RAM image occupies
after the import. Not part of make check; run as root under the test lock:

    flock /tmp/criu-qemu-it.lock /usr/bin/python3 test/bench/podman.py [--mem 1G] [--wl-mb 256]

(BUILD= another build directory, as for the tests.)"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import engines  # noqa: E402
import harness  # noqa: E402


def du(path):
    """(apparent, allocated) bytes of a file or a directory tree."""
    if os.path.isfile(path):
        st = os.stat(path)
        return st.st_size, st.st_blocks * 512
    app = alloc = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            app, alloc = app + st.st_size, alloc + st.st_blocks * 512
    return app, alloc


def one_round(pm, g, workdir, tag):
    r = {}
    at = g.last_status()
    r["checkpoint_s"] = pm.run("container", "checkpoint", "--keep", g.cname)[1]
    harness.wait_pid_gone(g.pid)
    ckpt = os.path.join(pm.userdata(g.cname), "checkpoint")
    r["checkpoint_dir"] = du(ckpt)
    # CRIU's stats-dump is in its work directory (runc: the userdata).
    r["frozen_ms"] = harness.criu_dump_stats(pm.userdata(g.cname))["frozen_ms"]
    mark = g.mark()
    r["restore_s"] = pm.run("container", "restore", "--keep", g.cname)[1]
    engines.restored_continues(g, at, mark)

    # Again, into the directory that holds the first checkpoint's images
    # (issue 12, item 4: an older RAM image there delayed the dump).
    at = g.last_status()
    r["checkpoint_again_s"] = pm.run("container", "checkpoint", "--keep", g.cname)[1]
    harness.wait_pid_gone(g.pid)
    mark = g.mark()
    pm.run("container", "restore", "--keep", g.cname)
    engines.restored_continues(g, at, mark)

    archive = os.path.join(workdir, "ckpt-%s.tar" % tag)
    at = g.last_status()
    r["export_s"] = pm.run("container", "checkpoint", "--export", archive, "--compress", "none", g.cname)[1]
    harness.wait_pid_gone(g.pid)
    r["archive"] = du(archive)
    pm.run("rm", g.cname)
    name = "bench-%s" % tag
    mark = g.mark()
    r["import_s"] = pm.run("container", "restore", "--keep", "--import", archive, "--name", name)[1]
    g.refresh(name)
    engines.restored_continues(g, at, mark)
    ckpt = os.path.join(pm.userdata(g.cname), "checkpoint")
    imgs = [f for f in os.listdir(ckpt) if f.startswith("qemu-ram-")]
    r["ram_image_after_import"] = du(os.path.join(ckpt, imgs[0])) if imgs else None
    r["checkpoint_dir_after_import"] = du(ckpt)
    os.unlink(archive)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--wl-mb", type=int, default=256)
    ap.add_argument("-o", default=os.path.join(harness.TOP, "build", "bench", "podman.json"))
    a = ap.parse_args()
    why = engines.cannot_run("podman", "runc")
    if why:
        sys.exit("podman bench: " + why)
    harness.become_subreaper()
    base = engines.engine_base()
    pm = engines.podman_env(base)
    guests = []
    res = {"mem": a.mem, "wl_mb": a.wl_mb}
    try:
        # A container of its own for each mode: one checkpointed with the
        # plugin keeps its RAM image in its directory, which CRIU alone
        # would then carry along (a stale image the restore ignores).
        for mode in ("plugin", "criu"):
            pm.shim.plugin(mode == "plugin")
            workdir = os.path.join(base, "guest-" + mode)
            g = engines.ContainerGuest(pm, workdir, "bench-" + mode, mem=a.mem, wl_mb=a.wl_mb).start()
            guests.append(g)
            g.wait_ready()
            g.wait_passes(2)
            res[mode] = one_round(pm, g, base, mode)
            g.kill()
    finally:
        for g in guests:
            g.kill()
        pm.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.dirname(a.o), exist_ok=True)
    with open(a.o, "w") as f:
        json.dump(res, f, indent=1)
    mib = lambda b: "%.0f" % (b / 2**20)  # noqa: E731
    print("%-28s %12s %12s" % ("", "plugin", "CRIU only"))
    print("%-28s %12.0f %12.0f" % ("frozen_ms", res["plugin"]["frozen_ms"], res["criu"]["frozen_ms"]))
    for k in ("checkpoint_s", "restore_s", "checkpoint_again_s", "export_s", "import_s"):
        print("%-28s %12.2f %12.2f" % (k, res["plugin"][k], res["criu"][k]))
    for k in ("checkpoint_dir", "archive", "checkpoint_dir_after_import", "ram_image_after_import"):
        v = [res[m][k] for m in ("plugin", "criu")]
        print("%-28s %12s %12s" % (k + " MiB (app/alloc)",
                                   *["%s/%s" % (mib(x[0]), mib(x[1])) if x else "-" for x in v]))
    print("written to", a.o)


if __name__ == "__main__":
    main()
