#!/usr/bin/python3
"""Print (or check) the module table of Documentation/design.md.

    scripts/module-table.py          print the table for the tree as it is
    scripts/module-table.py --check  exit 1 if design.md's table names other files or
                                     mechanisms, or a count is off by more than 15 %

Every C source of criu-plugin/, guardian/, common/ and images/ (and the BPF
program) must have a line in MODULES below; lines are counted with their
header (foo.c + foo.h)."""
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(TOP, "Documentation", "design.md")
BEGIN, END = "<!-- module table: scripts/module-table.py -->", "<!-- end of module table -->"

MODULES = [
    ("criu-plugin/plugin.c", "CRIU hook registration; refusals go back to CRIU as errors"),
    ("criu-plugin/detect.c", "QEMU recognition, command-line parsing"),
    ("criu-plugin/config.c", "config file + environment"),
    ("criu-plugin/qmp.c", "QMP client (jansson), deadline-bounded; is the monitor busy?"),
    ("criu-plugin/ramblocks.c", "RAM block discovery: monitor + maps"),
    ("criu-plugin/sparse.c", "which pages hold data (`PAGEMAP_SCAN`, pagemap fallback)"),
    ("criu-plugin/dump.c", "the dump sequence of one QEMU"),
    ("criu-plugin/dump-writer.c", "the parallel dump writer"),
    ("criu-plugin/dump-reuse.c", "incremental dumps: chunks unchanged since a base image shared by reflink"),
    ("criu-plugin/ram-io.c", "options, stats, layout checks and chunk buffers of the RAM data paths"),
    ("criu-plugin/ram-work.c", "the work queue and worker threads of the RAM data paths"),
    ("criu-plugin/ram-remote.c", "batched process_vm_readv/writev of page runs"),
    ("criu-plugin/ram-data.c", "populated pages of a chunk, its bitmap word, punching pages that lost data"),
    ("criu-plugin/live.c", "live pre-dump: uffd-wp async tracking, PAGEMAP_SCAN passes"),
    ("criu-plugin/live-patch.c", "live pre-dump: in-place image patching"),
    ("criu-plugin/uffd-busy.c", "is QEMU's memory still registered with a userfaultfd (an earlier guardian)?"),
    ("criu-plugin/handoff.c", "the atomic range handoff to the guardian"),
    ("criu-plugin/handoff-vma.c", "handoff: VMA inspection"),
    ("criu-plugin/handoff-spawn.c", "handoff: starting the guardian"),
    ("criu-plugin/handoff-watch.c", "handoff: REMAP events read if the guardian dies mid-mremap"),
    ("criu-plugin/handoff-shmem.c", "handoff: which shmem objects may be punched"),
    ("criu-plugin/restore.c", "the restore sequence"),
    ("criu-plugin/restore-fill.c", "the parallel restore filler (process_vm_writev)"),
    ("criu-plugin/restore-check.c", "restore-time fit: CRIU's pagemap, the restored task's mappings"),
    ("criu-plugin/restore-guard.c", "the stop guard while a restored task is completed"),
    ("criu-plugin/ckpt-id.c", "checkpoint identity through CRIU's inventory (run id, plugin list)"),
    ("criu-plugin/criu-opts.c", "the dump's verdict (killed / leave-running) from CRIU's opts, CLI and RPC"),
    ("criu-plugin/rsys.c", "syscalls injected into a stopped task (ptrace), fd transfer both ways, armed detach"),
    ("criu-plugin/rsys-frame.c", "the signal frame that restores the task if CRIU dies mid-call"),
    ("criu-plugin/fault-inject.c", "crash and pause points for the safety tests"),
    ("criu-plugin/kvm-dump.c", "KVM: the dump sequence (find, quiesce, capture, hand over); DUMP_EXT_FILE"),
    ("criu-plugin/kvm-restore.c", "KVM: RESTORE_EXT_FILE stand-ins, the VM rebuilt in the restored QEMU"),
    ("criu-plugin/kvm-find.c", "KVM: the VM, vCPU and /dev/kvm fds, kvm_run mappings, KVM's worker threads"),
    ("criu-plugin/kvm-quiesce.c", "KVM: a vCPU thread frozen in device emulation brought back to KVM_RUN"),
    ("criu-plugin/kvm-exec.c", "KVM: ioctls run inside QEMU (rsys) or locally"),
    ("criu-plugin/kvm-vcpu.c", "KVM: a vCPU's state read and written, in KVM's dependency order"),
    ("criu-plugin/kvm-vm.c", "KVM: irqchip, PIT, clock; VM creation, memslots, routes, irqfds, ioeventfds, MSR filter"),
    ("criu-plugin/kvm-caps.c", "KVM: the settings QEMU made (KVM_ENABLE_CAP...) from struct kvm's fields, rebuilt"),
    ("criu-plugin/kvm-state.c", "KVM: the state image's messages built and read"),
    ("criu-plugin/kvm-bpf.c", "KVM: the BPF iterator loaded, run and its records decoded"),
    ("criu-plugin/bpf/kvm-iter.bpf.c", "KVM: CO-RE `iter/task_file` program: memslots, irqfds, ioeventfds, routes, MSR filter, fields"),
    ("guardian/guardian.c", "the guardian process: state machine, fault service, give-back"),
    ("guardian/guardian-main.c", "the guardian's main"),
    ("guardian/guardian-map.c", "the guardian's map of the ranges it holds"),
    ("guardian/guardian-uffd.c", "the guardian's page source: image chunks for userfaultfd faults"),
    ("guardian/guardian-cgroup.c", "the guardian joins QEMU's cgroups"),
    ("common/log.c", "logging into CRIU's log or stderr, per-file prefixes, rate limit"),
    ("common/guardian-proto.c", "the control protocol between plugin and guardian"),
    ("common/io.c", "whole-buffer pread/pwrite, fd passing"),
    ("common/cgroup.c", "cgroup hierarchy mount points; is a task's cgroup frozen?"),
    ("common/detach.c", "a function run in a process detached from CRIU's tree (raw clones)"),
    ("common/proc.c", "reading /proc: maps, smaps, pagemap, cmdline, status, fdinfo, stat, task and fd walks"),
    ("common/clock.h", "the one monotonic clock"),
    ("common/uapi-compat.h", "uapi constants newer than the build host's headers"),
    ("common/criu-weak.h", "the criu binary's functions the plugin uses, weak"),
    ("images/fixedram.c", "the RAM image format (`images/bitmap.h`: its bitmaps)"),
    ("images/kvm-image.c", "the KVM state image frame: magic, version, checksum, atomic write"),
    ("images/kvm-show.c", "`criu-qemu-img show/verify` of KVM state images"),
    ("images/tool.c", "`criu-qemu-img`"),
]


def lines_of(path):
    n = 0
    base, ext = os.path.splitext(path)
    for p in (path, base + ".h") if ext == ".c" else (path,):
        full = os.path.join(TOP, p)
        if os.path.exists(full):
            with open(full) as f:
                n += sum(1 for _ in f)
    return n


def sources():
    out = set()
    for d in ("criu-plugin", "guardian", "common", "images", "criu-plugin/bpf"):
        for f in os.listdir(os.path.join(TOP, d)):
            if f.endswith(".c"):
                out.add("%s/%s" % (d, f))
    return out


def table():
    rows = ["| file | lines (.c + .h) | mechanism |", "| --- | ---: | --- |"]
    for path, what in MODULES:
        rows.append("| `%s` | %d | %s |" % (path, lines_of(path), what))
    return "\n".join(rows)


def main():
    missing = sources() - {p for p, _ in MODULES}
    gone = {p for p, _ in MODULES if not os.path.exists(os.path.join(TOP, p))}
    if missing or gone:
        print("module table out of date: not listed %s, listed but gone %s"
              % (sorted(missing), sorted(gone)), file=sys.stderr)
        return 1
    if "--check" not in sys.argv:
        print(BEGIN)
        print(table())
        print(END)
        return 0
    with open(DOC) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        print("design.md has no generated module table", file=sys.stderr)
        return 1
    now = doc[doc.index(BEGIN) + len(BEGIN):doc.index(END)].strip().splitlines()[2:]
    want = table().splitlines()[2:]
    stale = [(a, b) for a, b in zip(now, want) if not close_enough(a, b)]
    if len(now) != len(want) or stale:
        print("design.md's module table differs from the tree (%s): run "
              "scripts/module-table.py and paste it in" % (stale[:3] or "rows"), file=sys.stderr)
        return 1
    return 0


def close_enough(doc_row, tree_row):
    """Same file and words; the line count within 15 % (or 20 lines)."""
    a, b = doc_row.split("|"), tree_row.split("|")
    if a[1] != b[1] or a[3] != b[3]:
        return False
    n, m = int(a[2]), int(b[2])
    return abs(n - m) <= max(20, m * 0.15)


if __name__ == "__main__":
    sys.exit(main())
