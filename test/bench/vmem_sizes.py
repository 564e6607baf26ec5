#!/usr/bin/env python3
"""Image size and restore time of a mostly unplugged virtio-mem guest (issue 14).

    python3 test/bench/vmem_sizes.py [--json OUT]

One TCG guest under QEMU 10 (build/qemu10, scripts/qemu10.sh): 1 GiB boot
RAM plus a 3 GiB virtio-mem device, all plugged at boot so the workload's
512 MiB live in it, then all of it unplugged (the guest migrates the data
into boot RAM, QEMU discards the 3 GiB). Of that same running guest:

  plugin   criu dump --leave-running with the plugin
  native   criu dump --leave-running without plugins (CRIU's own pages)
  qemu     QEMU 10 `migrate file:` with mapped-ram (the guest stops there)

then each is restored in turn (the source is gone by then): criu restore -d,
or a new QEMU with -incoming defer + migrate-incoming + cont, timed until
the command returns and until the guest's workload makes progress. The
restored QEMU's populated pages in the virtio-mem mapping say whether a
restore brought back the unplugged memory. Not part of make check: it runs
minutes and needs QEMU 10 and a few GiB of disk under $CRIU_QEMU_TEST_DIR.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("QEMU", os.path.join(TOP, "build", "qemu10", "qemu-system-x86_64"))
sys.path.insert(0, os.path.join(TOP, "test", "integration"))
import harness  # noqa: E402

MiB = 1 << 20
VMEM = 3 << 30
CAPS = [{"capability": "mapped-ram", "state": True}]


def guest(work, name, incoming=False):
    extra = ["-object", "memory-backend-ram,id=vmem0,size=%d" % VMEM,
             "-device", "virtio-mem-pci,memdev=vmem0,id=vm0,requested-size=%d" % VMEM]
    if incoming:
        extra += ["-S", "-incoming", "defer"]
    return harness.Guest(work, mem="1G,maxmem=4G", wl_mb=512, rate_kbs=512, zero_every=0,
                         seed=4242, kernel_args="memhp_default_state=online_movable wl.mem_mb=%d"
                         % (1024 - 160 + (VMEM >> 20)),
                         extra_args=extra, name=name)


def plugged(g):
    return g.qmp("qom-get", {"path": "vm0", "property": "size"})


def vmem_populated(pid):
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            if b - a == VMEM:
                return len(harness.present_pages(pid, a, b)) * 4096
    return None


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))


def until_progress(g, at, since, t0):
    g.wait_passes(1, after=at, since=since, timeout=600)
    g.wait_progress(after=at, since=since, timeout=600)
    return time.monotonic() - t0


def criu_restore(criu, g, imgdir, at, plugin):
    mark = g.mark()
    t0 = time.monotonic()
    criu.restore(imgdir, plugin=plugin)
    res = {"restore_s": time.monotonic() - t0}
    res["vmem_populated_bytes"] = vmem_populated(g.pid)
    res["until_progress_s"] = until_progress(g, at, mark, t0)
    res["rss_bytes"] = rss(g.pid)
    g.kill()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    harness.become_subreaper()
    base = os.environ.get("CRIU_QEMU_TEST_DIR", "/var/tmp")
    work = tempfile.mkdtemp(prefix="criu-qemu-vmem-bench-", dir=base)
    criu = harness.Criu(work)
    out = {"qemu_binary": harness.QEMU, "guest": "1 GiB boot RAM + 3 GiB virtio-mem, all unplugged, 512 MiB workload"}
    g = guest(work, "src").start()
    try:
        g.wait_ready(timeout=300)
        g.wait_passes(1)
        out["vmem_populated_before_unplug"] = vmem_populated(g.pid)
        g.qmp("qom-set", {"path": "vm0", "property": "requested-size", "value": 0})
        g.wait_for(lambda: plugged(g) == 0, 300, "unplug of 3 GiB")
        g.wait_passes(1)
        out["vmem_populated_after_unplug"] = vmem_populated(g.pid)
        out["source_rss_bytes"] = rss(g.pid)

        imgs = {}
        for kind, plugin in (("plugin", True), ("native", False)):
            imgdir = os.path.join(work, kind)
            _, dump_s = criu.dump(g.pid, imgdir, plugin=plugin, leave_running=True)
            at = g.last_status()
            if plugin:
                harness.wait_guardian_gone(g)
            size = sum(harness.allocated_bytes(os.path.join(imgdir, f)) for f in os.listdir(imgdir))
            imgs[kind] = (imgdir, at)
            out[kind] = {"dump_s": dump_s, "image_bytes": size,
                         "criu_pages_bytes": harness.pages_img_bytes(imgdir)}
            if plugin:
                ram = harness.ram_image(imgdir)
                out[kind]["ram_image_allocated_bytes"] = harness.allocated_bytes(ram)
                out[kind]["ram_image_present_bytes"] = 4096 * sum(
                    len(v) for v in harness.image_present_pages(ram).values())

        path = os.path.join(work, "qemu-mapped-ram.img")
        g.qmp("migrate-set-capabilities", {"capabilities": CAPS})
        g.qmp("migrate-set-parameters", {"max-bandwidth": 1 << 40})
        t0 = time.monotonic()
        g.qmp("migrate", {"uri": "file:" + path})
        while True:
            st = g.qmp("query-migrate")
            if st["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.02)
        assert st["status"] == "completed", st
        at_qemu = g.last_status()
        out["qemu"] = {"dump_s": time.monotonic() - t0, "file_size": os.path.getsize(path),
                       "image_bytes": harness.allocated_bytes(path),
                       "transferred_bytes": st["ram"]["transferred"],
                       "normal_bytes": st["ram"].get("normal-bytes")}
        g.kill()

        for kind, plugin in (("plugin", True), ("native", False)):
            imgdir, at = imgs[kind]
            out[kind].update(criu_restore(criu, g, imgdir, at, plugin))

        dst = guest(work, "dst", incoming=True)
        t0 = time.monotonic()
        dst.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                dst.qmp("migrate-set-capabilities", {"capabilities": CAPS})
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        dst.qmp("migrate-incoming", {"uri": "file:" + path}, timeout=600)
        while dst.qmp("query-migrate")["status"] != "completed":
            time.sleep(0.005)
        dst.qmp("cont")
        out["qemu"]["restore_s"] = time.monotonic() - t0
        out["qemu"]["vmem_populated_bytes"] = vmem_populated(dst.pid)
        out["qemu"]["until_progress_s"] = until_progress(dst, at_qemu, 0, t0)
        out["qemu"]["rss_bytes"] = rss(dst.pid)
        out["qemu"]["plugged_after_restore"] = plugged(dst)
        dst.kill()
    finally:
        g.kill()
        harness.reap_zombies()
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if not os.environ.get("CRIU_QEMU_KEEP_WORKDIR"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
