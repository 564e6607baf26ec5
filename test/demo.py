#!/usr/bin/env python3
"""make demo: boot a real guest, checkpoint it with criu + the plugin,
restore it, and show that the guest continued where it was."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import harness  # noqa: E402

MEM = os.environ.get("DEMO_MEM", "2G")
WL_MB = int(os.environ.get("DEMO_WL_MB", "768"))


def say(msg):
    print(msg, flush=True)


def fmt_status(st):
    return "pass %d, %d page rewrites, checksum %016x, corrupt pages %d" % (
        st["pass"], st["w"], st["sum"], st["corrupt"])


def plugin_figures(log):
    keep = ("RAM block", "RAM saved", "RAM restored", "handed", "live pass", "live final",
            "live phase", "complete and durable")
    return [l.split("qemu_plugin: ", 1)[1] for l in harness.plugin_lines(log)
            if any(k in l for k in keep)]


def main():
    harness.become_subreaper()
    work = tempfile.mkdtemp(prefix="criu-qemu-demo-", dir="/var/tmp")
    criu = harness.Criu(work)
    say("criu: %s" % criu.version())
    say("== booting a TCG guest: %s RAM, workload owns %d MiB and verifies it continuously" % (MEM, WL_MB))
    g = harness.Guest(work, mem=MEM, wl_mb=WL_MB, rate_kbs=4096).start()
    try:
        t0 = time.monotonic()
        g.wait_ready(timeout=300)
        say("   guest ready in %.1fs (QEMU pid %d)" % (time.monotonic() - t0, g.pid))
        g.wait_passes(2, timeout=300)
        say("   running: " + fmt_status(g.last_status()))

        imgdir = os.path.join(work, "img")
        say("== criu dump -t %d --libdir build/plugin" % g.pid)
        _, t_dump = criu.dump(g.pid, imgdir)
        harness.wait_pid_gone(g.pid)
        at_dump = g.last_status()
        stats = harness.criu_dump_stats(imgdir)
        say("   dump took %.2fs, of which the VM was frozen %.0f ms; last status: %s"
            % (t_dump, stats["frozen_ms"], fmt_status(at_dump)))
        for line in plugin_figures(os.path.join(imgdir, "dump.log")):
            say("   plugin: " + line)
        ram = [f for f in os.listdir(imgdir) if f.startswith("qemu-ram-")]
        say("   CRIU's own pages-*.img: %.1f MiB; our RAM image: %.1f MiB on disk"
            % (harness.pages_img_bytes(imgdir) / 2**20,
               sum(harness.allocated_bytes(os.path.join(imgdir, f)) for f in ram) / 2**20))
        for f in ram:
            subprocess.run([harness.IMGTOOL, "show", os.path.join(imgdir, f)])

        say("== criu restore -d --libdir build/plugin")
        _, t_restore = criu.restore(imgdir)
        say("   restore took %.2fs" % t_restore)
        for line in plugin_figures(os.path.join(imgdir, "restore.log")):
            say("   plugin: " + line)
        after = g.wait_passes(2, after=at_dump, timeout=300)
        after = g.wait_progress(after=at_dump, timeout=300)
        say("   guest continued: " + fmt_status(after))
        g.check_console()
        say("== OK: the restored guest re-verified all %d MiB twice, its rewrite counter went on "
            "from %d and its checksum matches the expected sequence" % (WL_MB, at_dump["w"]))
        say("   timings: dump %.2fs (VM frozen %.0f ms), restore %.2fs"
            % (t_dump, stats["frozen_ms"], t_restore))
    finally:
        g.kill()
        harness.reap_zombies()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
