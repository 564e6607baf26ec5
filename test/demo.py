#!/usr/bin/env python3
"""make demo: boot a real guest, checkpoint it with criu + the plugin,
restore it, and show that the guest continued where it was.

make demo KVM=1 (test/demo.py --kvm): the same with QEMU under -accel kvm,
2 vCPUs, running the bare-metal test guest of test/kvm-guest (Linux cannot
boot under every KVM, e.g. PVM; see test/kvm-guest/README.md)."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import harness  # noqa: E402
import kvmguest  # noqa: E402

MEM = os.environ.get("DEMO_MEM", "2G")
WL_MB = int(os.environ.get("DEMO_WL_MB", "768"))


def say(msg):
    print(msg, flush=True)


def fmt_status(st):
    return "pass %d, %d page rewrites, checksum %016x, corrupt pages %d" % (
        st["pass"], st["w"], st["sum"], st["corrupt"])


def plugin_figures(log):
    keep = ("RAM block", "RAM saved", "RAM restored", "handed", "live pass", "live final",
            "live phase", "complete and durable", "KVM state of", "KVM VM rebuilt",
            "back to KVM_RUN")
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


KVM_MEM = os.environ.get("DEMO_KVM_MEM", "1G")
KVM_WL_MB = int(os.environ.get("DEMO_KVM_WL_MB", "384"))  # per vCPU


def fmt_kvm_status(st):
    s = "BSP: pass %d, %d rewrites, %d PIT ticks, corrupt %d" % (
        st["pass"], st["w"], st["ticks"], st["corrupt"])
    if "ap_pass" in st:
        s += "; AP: pass %d, %d rewrites, %d LAPIC ticks, corrupt %d" % (
            st["ap_pass"], st["ap_w"], st["ap_ticks"], st["ap_corrupt"])
    return s


def frozen_span_ms(dumplog):
    """From dump.log: the VM is frozen from CRIU's seize of QEMU (the line
    before the first "Seized task") until CRIU is done with the dump
    ("Unfreezing tasks", where a dump without --leave-running kills it)."""
    stamps = re.findall(r"^\((\d+\.\d+)\) (.*)$", harness.log_text(dumplog), re.M)
    start = end = None
    for i, (t, text) in enumerate(stamps):
        if start is None and text.startswith("Seized task"):
            start = float(stamps[i - 1][0] if i else t)
        if start is not None and text.startswith("Unfreezing tasks"):
            end = float(t)
    return (end - start) * 1000 if start is not None and end is not None else None


def main_kvm():
    why = kvmguest.kvm_unusable()
    if why:
        sys.exit("demo --kvm: KVM is not usable here: " + why)
    if not os.path.exists(kvmguest.ELF):
        sys.exit("demo --kvm: no %s (make kvm-guest)" % kvmguest.ELF)
    harness.become_subreaper()
    work = tempfile.mkdtemp(prefix="criu-qemu-demo-kvm-", dir="/var/tmp")
    criu = harness.Criu(work)
    say("criu: %s" % criu.version())
    say("== booting the bare-metal test guest under -accel kvm, 2 vCPUs, %s RAM; each vCPU "
        "owns %d MiB, rewrites and verifies it continuously" % (KVM_MEM, KVM_WL_MB))
    g = kvmguest.KvmGuest(work, accel="kvm", smp=2, mem=KVM_MEM, wl_mb=KVM_WL_MB,
                          rate_kbs=4096).start()
    try:
        t0 = time.monotonic()
        try:
            g.wait_ready(timeout=120)
        except (AssertionError, TimeoutError) as e:
            sys.exit("demo --kvm: the guest did not start under -accel kvm: %s\nQEMU's log:\n%s"
                     % (e, g.qemu_log()))
        say("   guest ready in %.1fs (QEMU pid %d)" % (time.monotonic() - t0, g.pid))
        g.wait_passes(3, timeout=120)
        say("   running: " + fmt_kvm_status(g.last_full_status()))

        imgdir = os.path.join(work, "img")
        say("== criu dump -t %d --libdir build/plugin" % g.pid)
        _, t_dump = criu.dump(g.pid, imgdir)
        harness.wait_pid_gone(g.pid)
        at_dump = g.last_full_status()
        dumplog = os.path.join(imgdir, "dump.log")
        if "KVM state of 2 vCPUs saved" not in harness.log_text(dumplog):
            sys.exit("demo --kvm: the plugin did not save the KVM state; see %s" % dumplog)
        stats = harness.criu_dump_stats(imgdir)
        span = frozen_span_ms(dumplog)
        say("   dump took %.2fs; VM frozen %.0f ms (dump.log, seize to end of dump; "
            "CRIU's stats: %.0f ms frozen); last status: %s"
            % (t_dump, span or float("nan"), stats["frozen_ms"], fmt_kvm_status(at_dump)))
        for line in plugin_figures(dumplog):
            say("   plugin: " + line)
        ram = [f for f in os.listdir(imgdir) if f.startswith("qemu-ram-")]
        kvm = [f for f in os.listdir(imgdir) if f.startswith("kvm-") and f != "kvm-files.img"]
        say("   image directory: %.1f MiB on disk; our RAM image %.1f MiB, KVM state %.1f KiB, "
            "CRIU's own pages-*.img %.1f MiB"
            % (sum(harness.allocated_bytes(os.path.join(imgdir, f)) for f in os.listdir(imgdir)) / 2**20,
               sum(harness.allocated_bytes(os.path.join(imgdir, f)) for f in ram) / 2**20,
               sum(os.path.getsize(os.path.join(imgdir, f)) for f in kvm) / 1024,
               harness.pages_img_bytes(imgdir) / 2**20))
        for f in ram:
            subprocess.run([harness.IMGTOOL, "show", os.path.join(imgdir, f)])

        say("== criu restore -d --libdir build/plugin")
        mark = g.mark()
        t0 = time.monotonic()
        _, t_restore = criu.restore(imgdir)
        say("   restore took %.2fs" % t_restore)
        for line in plugin_figures(os.path.join(imgdir, "restore.log")):
            say("   plugin: " + line)
        first = g.wait_progress(after=at_dump, since=mark, timeout=60)
        t_progress = time.monotonic() - t0
        after = g.wait_all_progress(at_dump, since=mark, passes=3, timeout=60)
        say("   guest continued: " + fmt_kvm_status(after))
        g.check_console()
        say("== OK: both vCPUs went on from where the dump stopped them (BSP rewrites from %d, "
            "AP rewrites from %d), their timers tick, every page of both %d MiB regions "
            "verified, no CORRUPT line, checksums match"
            % (at_dump["w"], at_dump.get("ap_w", 0), KVM_WL_MB))
        say("   timings: dump %.2fs (VM frozen %.0f ms), restore %.2fs, first progress %.2fs "
            "after the restore started (status %s)"
            % (t_dump, span or float("nan"), t_restore, t_progress, "pass %d" % first["pass"]))
    finally:
        g.kill()
        harness.reap_zombies()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvm", action="store_true",
                    help="QEMU -accel kvm, 2 vCPUs, the bare-metal test guest")
    if ap.parse_args().kvm:
        main_kvm()
    else:
        main()
