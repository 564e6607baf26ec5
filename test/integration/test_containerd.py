"""containerd 1.6 with runc as the engine: `ctr` checkpoints and restores a
container running a TCG QEMU guest, CRIU (the build's, run by runc over
RPC) with the plugin saving and restoring guest RAM, the guest verifying
its memory after every restore.

The containerd is the test's own (scripts/containerd.sh: socket, state and
root under the test's directory, runc's state too with --runc-root). The
container image is built here from the host's files (QEMU, its libraries,
module directory and firmware, the test guest, a static busybox as the
shell) and imported with `ctr image import`: no registry. The test's
directory is bind-mounted at the same path, so harness.Guest reads the
guest's console (`-chardev file,...,append=on`) as usual.

runc runs `criu` from PATH: the test's containerd gets a PATH whose first
directory holds a `criu` wrapper that sets CRIU_FAULT (this host's quirk)
and runs the build's CRIU. Which plugin directory CRIU loads and where it
logs come from a CRIU configuration file of the test's own, named by the
container's `org.criu.config` annotation: runc hands it to CRIU over RPC,
and its settings win over runc's.

containerd pauses the task (cgroup freezer) before every checkpoint, for
the whole of it. The plugin sees QEMU frozen at PAUSE_DEVICES and neither
asks its monitor (a connection would wait, never accepted, in the QMP
socket's queue, where CRIU refuses to dump it) nor runs a live pre-dump;
the container's QEMU has its QMP monitor as any other, and the test checks
the plugin said so.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

import harness

CONTAINERD_SH = os.path.join(harness.TOP, "scripts", "containerd.sh")
IMAGE = "localhost/criu-qemu-guest:test"
# The container's QEMU is the system's whatever QEMU= says (the QEMU 10
# pass is about QEMU, these tests about the engine).
QEMU_BIN = "/usr/bin/qemu-system-x86_64"
QEMU_MODULES = "/usr/lib/x86_64-linux-gnu/qemu"
# QEMU looks for firmware in the first two (Debian builds it with
# --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu).
QEMU_DATA = ("/usr/share/qemu", "/usr/share/seabios")
CRIU_LAYER = "application/vnd.containerd.container.criu.checkpoint.criu.tar"
GUEST_KW = dict(mem="512M", wl_mb=64)


# --- the container image, from the host's files -----------------------------

def _add_path(tar, path, seen):
    """path into the layer at its own place, with every symlink on the way
    to it (and what they point to) at theirs: /lib -> usr/lib stays a link."""
    path = os.path.normpath(path)
    if path == "/" or path in seen:
        return
    seen.add(path)
    parent = os.path.dirname(path)
    _add_path(tar, parent, seen)
    real_parent = os.path.realpath(parent)
    if real_parent != parent:
        _add_path(tar, os.path.join(real_parent, os.path.basename(path)), seen)
        return
    tar.add(path, arcname=path.lstrip("/"), recursive=False)
    if os.path.islink(path):
        _add_path(tar, os.path.join(parent, os.readlink(path)), seen)


def _add_tree(tar, top, seen):
    for d, _, files in os.walk(top):
        _add_path(tar, d, seen)
        for f in files:
            _add_path(tar, os.path.join(d, f), seen)


def _libraries(binary):
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
            libs.append(words[words.index("=>") + 1])
        elif words and words[0].startswith("/"):
            libs.append(words[0])  # the loader
    return libs


def _blob(blobs, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def build_image(path):
    """An OCI image archive at path: QEMU with its libraries, modules and
    firmware, busybox as /bin/sh, the test guest at its host path."""
    qemu = os.path.realpath(QEMU_BIN)
    layer = io.BytesIO()
    seen = set()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for p in ["/bin", qemu] + _libraries(qemu):
            _add_path(tar, p, seen)
        _add_tree(tar, QEMU_MODULES, seen)
        for d in QEMU_DATA:
            _add_tree(tar, d, seen)
        _add_path(tar, shutil.which("busybox"), seen)
        sh = tarfile.TarInfo(os.path.join(os.path.dirname(os.path.realpath(shutil.which("busybox"))),
                                          "sh").lstrip("/"))
        sh.type, sh.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(sh)
        for f in ("vmlinuz", "initramfs.cpio.gz"):
            _add_path(tar, os.path.join(harness.GUEST_DIR, f), seen)
        for d in ("dev", "proc", "sys", "tmp"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
    layer = layer.getvalue()
    blobs = {}
    layer_desc = _blob(blobs, layer, "application/vnd.oci.image.layer.v1.tar")
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = _blob(blobs, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = _blob(blobs, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"io.containerd.image.name": IMAGE,
                                    "org.opencontainers.image.ref.name": IMAGE.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    with tarfile.open(path, "w") as tar:
        def put(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        put("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest, data)
    return len(layer)


# --- the test's containerd ---------------------------------------------------

def cannot_run():
    """Why containerd cannot run here, or None; installs it when missing."""
    if os.geteuid() != 0:
        return "needs root (containerd, runc and CRIU run rootful)"
    if not all(shutil.which(t) for t in ("containerd", "ctr", "runc")):
        r = subprocess.run([CONTAINERD_SH, "install"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return "containerd/runc not installed and apt-get failed: " + r.stdout[-500:]
    return None


def skip_unless_runs(reason):
    """Skip with the reason; under CI (CI set) it is a failure: make check
    installs containerd there."""
    if not reason:
        return
    if os.environ.get("CI"):
        pytest.fail("containerd test cannot run under CI: " + reason)
    pytest.skip(reason)


class Containerd:
    """A containerd of the test's own in self.dir, its `criu` the wrapper in
    self.dir/bin."""

    def __init__(self, base, name):
        self.dir = os.path.join(base, name)
        self.sock = os.path.join(self.dir, "containerd.sock")
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        with open(os.path.join(bindir, "criu"), "w") as f:
            f.write("#!/bin/sh\nCRIU_FAULT=%s exec %s \"$@\"\n"
                    % (harness.CRIU_FAULT, harness.criu_bin()))
        os.chmod(os.path.join(bindir, "criu"), 0o755)
        self.path = bindir + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")

    def start(self):
        r = subprocess.run([CONTAINERD_SH, "start", self.dir, self.path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return None if r.returncode == 0 else "containerd did not start: " + r.stdout[-1500:]

    def stop(self):
        subprocess.run([CONTAINERD_SH, "stop", self.dir])

    def ctr(self, *args):
        """ctr with args against this containerd; (stdout, seconds)."""
        t0 = time.monotonic()
        r = subprocess.run(["ctr", "--address", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        took = time.monotonic() - t0
        harness.reap_zombies()
        assert r.returncode == 0, "ctr %s: rc %d: %s" % (" ".join(args), r.returncode,
                                                          r.stderr.decode(errors="replace"))
        return r.stdout.decode(errors="replace"), took

    def task(self, name):
        """(pid, status) of the container's task, or None."""
        out, _ = self.ctr("tasks", "list")
        for line in out.splitlines()[1:]:
            w = line.split()
            if w[0] == name:
                return int(w[1]), w[2]
        return None

    def task_pid(self, name):
        t = self.task(name)
        assert t and t[1] == "RUNNING", "task %s: %s" % (name, t)
        return t[0]

    def image_digest(self, ref):
        out, _ = self.ctr("images", "list")
        for line in out.splitlines()[1:]:
            w = line.split()
            if w[0] == ref:
                return w[2]
        raise AssertionError("no image %s:\n%s" % (ref, out))

    def checkpoint_files(self, ref, into):
        """{name: size} of CRIU's images in checkpoint ref (its criu tar
        layer); the small ones (under 1 MiB) are also extracted into `into`."""
        index = json.loads(self.ctr("content", "get", self.image_digest(ref))[0])
        layer = [m for m in index["manifests"] if m["mediaType"] == CRIU_LAYER]
        assert len(layer) == 1, index
        p = subprocess.Popen(["ctr", "--address", self.sock, "content", "get", layer[0]["digest"]],
                             stdout=subprocess.PIPE)
        files = {}
        os.makedirs(into, exist_ok=True)
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for ti in tar:
                if ti.isfile():
                    files[os.path.basename(ti.name)] = ti.size
                    if ti.size < (1 << 20):
                        with open(os.path.join(into, os.path.basename(ti.name)), "wb") as f:
                            f.write(tar.extractfile(ti).read())
        assert p.wait() == 0
        return files

    def discard(self, name):
        """Container `name` and its task gone, if there (a failed test's)."""
        for args in (("tasks", "kill", "-s", "KILL", name), ("tasks", "delete", "-f", name),
                     ("containers", "delete", name)):
            subprocess.run(["ctr", "--address", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.reap_zombies()

    def remove(self, name):
        """Kill the container's task, delete it and the container."""
        pid = self.task_pid(name)
        self.ctr("tasks", "kill", "-s", "KILL", name)
        harness.wait_pid_gone(pid)
        for _ in range(50):  # the shim reaps QEMU, then the task is STOPPED
            if self.task(name)[1] != "RUNNING":
                break
            time.sleep(0.1)
        self.ctr("tasks", "delete", name)
        self.ctr("containers", "delete", name)


@pytest.fixture(scope="module")
def engines():
    """Two containerds with the guest image: "a" and "b", a second host."""
    skip_unless_runs(cannot_run())
    base = tempfile.mkdtemp(prefix="criu-qemu-containerd-",
                            dir=os.environ.get("CRIU_QEMU_TEST_DIR", "/var/tmp"))
    image = os.path.join(base, "image.tar")
    build_image(image)
    started = []
    try:
        for name in ("a", "b"):
            c = Containerd(base, name)
            why = c.start()
            if why:
                skip_unless_runs(why)
            started.append(c)
            c.ctr("images", "import", image)
        yield dict((n, c) for n, c in zip("ab", started))
    finally:
        for c in started:
            c.stop()
        harness.reap_zombies()
        shutil.rmtree(base, ignore_errors=True)


def criu_config(workdir, tag, plugin=True):
    """The CRIU configuration the container names (org.criu.config): the
    build's plugin directory (or an empty one), and CRIU's work directory
    (its log, criu.log, and its stats) workdir/criu-tag, which runc would
    have in a directory containerd removes. Rewritten before each
    checkpoint and restore, so each has its own. Returns that directory."""
    libdir = harness.PLUGIN_DIR if plugin else os.path.join(workdir, "no-plugins")
    work = os.path.join(workdir, "criu-" + tag)
    os.makedirs(libdir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(workdir, "criu.conf"), "w") as f:
        f.write("libdir %s\nwork-dir %s\nlog-file %s/criu.log\n" % (libdir, work, work))
    return work


def run_guest(ctrd, workdir, guests, name):
    """A harness.Guest in container `name` of ctrd, booted and two passes
    through. Its QEMU runs under busybox sh only to send its output to
    workdir (then execs it); the workdir is bind-mounted at its own path."""
    g = harness.Guest(workdir, name=name, **GUEST_KW)
    criu_config(workdir, "unused")
    ctrd.discard(name)
    ctrd.ctr("run", "-d", "--null-io", "--runc-root", os.path.join(ctrd.dir, "runc"),
             "--mount", "type=bind,src=%s,dst=%s,options=rbind:rw" % (workdir, workdir),
             "--annotation", "org.criu.config=" + os.path.join(workdir, "criu.conf"),
             IMAGE, name, "sh", "-c", 'exec "$@" </dev/null >>%s 2>&1' % g.stderr_path, "sh",
             QEMU_BIN, *g.cmd[1:])
    g.pid = ctrd.task_pid(name)
    guests.append(g)
    g.wait_ready()
    g.wait_passes(2)
    return g


def checkpoint(ctrd, workdir, name, ref, plugin=True):
    """`ctr containers checkpoint --task`: CRIU's images go into the content
    store as image ref; the task runs on (containerd has no other way).
    Returns (CRIU's log, {file: size} of the checkpoint, the directory of
    its small files, CRIU's work directory, seconds)."""
    tag = ref.replace("/", "-").replace(":", "-")
    work = criu_config(workdir, "dump-" + tag, plugin)
    log = os.path.join(work, "criu.log")
    subprocess.run(["ctr", "--address", ctrd.sock, "images", "rm", ref],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # a failed test's
    _, took = ctrd.ctr("containers", "checkpoint", "--task", name, ref)
    small = os.path.join(workdir, "ck-" + tag)
    files = ctrd.checkpoint_files(ref, small)
    text = harness.log_text(log)
    assert "Dumping finished successfully" in text
    if plugin:
        assert "complete and durable" in text, "plugin did not save RAM"
        assert "its cgroup is frozen (an engine paused it)" in text, "containerd did not pause QEMU?"
        assert "qemu-ram-1.img" in files, files  # QEMU is pid 1 in the container
    else:
        assert "qemu_plugin" not in text and not any(f.startswith("qemu-ram-") for f in files)
    return text, files, small, work, took


def restore(ctrd, workdir, g, name, ref, at, plugin=True):
    """`ctr containers restore --live` of checkpoint ref as container name;
    the guest continues from the status `at` (on its console, rewinding to
    it: the checkpointed task ran on). Returns (CRIU's log, seconds)."""
    log = os.path.join(criu_config(workdir, "restore-" + name, plugin), "criu.log")
    mark = g.mark()
    ctrd.discard(name)
    _, took = ctrd.ctr("containers", "restore", "--live", name, ref)
    g.pid = ctrd.task_pid(name)
    text = harness.log_text(log)
    assert "Restore finished successfully" in text
    assert ("RAM restored" in text) == plugin
    g.keeps_running(at, since=mark, passes=2, restarts_at=[mark])
    return text, took


def pages_bytes(files):
    return sum(v for k, v in files.items() if k.startswith("pages-"))


def figures(what, **kw):
    print("containerd figures: %s: %s" % (what, " ".join("%s=%s" % kv for kv in kw.items())))


# --- the tests ----------------------------------------------------------------

@pytest.mark.parametrize("plugin", [True, False], ids=["plugin", "no-plugin"])
def test_checkpoint_restore(engines, workdir, guests, plugin):
    """Checkpoint a running VM container (it runs on and its guest goes on
    checking its memory), then replace it by its checkpoint: the guest
    continues from where it was checkpointed. With the plugin its RAM is in
    qemu-ram-1.img, not in CRIU's pages; without, CRIU stores it."""
    ctrd = engines["a"]
    ref = "ckpt/vm:%s" % ("plugin" if plugin else "no-plugin")
    g = run_guest(ctrd, workdir, guests, "vm")
    at = g.last_status()
    dump, files, small, work, t_ck = checkpoint(ctrd, workdir, "vm", ref, plugin)
    if plugin:
        # CRIU's pages are QEMU's own memory (heap, TCG code buffer), no
        # page of guest RAM.
        ram = harness.plugin_ram_ranges(os.path.join(work, "criu.log"))
        assert ram, "plugin logged no RAM block"
        inside = [(va, n) for va, n in harness.criu_pagemap(small, 1)
                  for lo, hi in ram if va < hi and va + n * 4096 > lo]
        assert not inside, "CRIU's pagemap holds guest RAM pages: %s" % inside[:5]
    else:
        assert pages_bytes(files) > (64 << 20), files  # the workload alone
    g.keeps_running(at, passes=2)
    ctrd.remove("vm")
    rlog, t_rs = restore(ctrd, workdir, g, "vm", ref, at, plugin)
    stats = harness.criu_dump_stats(work)
    figures("plugin" if plugin else "no-plugin", checkpoint_s="%.2f" % t_ck,
            criu_frozen_ms="%.0f" % stats["frozen_ms"], restore_s="%.2f" % t_rs,
            checkpoint_mib="%.1f" % (sum(files.values()) / 2**20),
            ram_img_mib="%.1f" % (files.get("qemu-ram-1.img", 0) / 2**20),
            pages_mib="%.1f" % (pages_bytes(files) / 2**20))
    ctrd.remove("vm")
    ctrd.ctr("images", "rm", ref)


def test_restore_on_second_containerd(engines, workdir, guests):
    """The way a checkpoint moves between nodes: exported from containerd a
    (`ctr image export`), imported into containerd b (its own root, state
    and runc root), restored there under another name from the RAM image
    that came with it."""
    a, b = engines["a"], engines["b"]
    g = run_guest(a, workdir, guests, "vm-a")
    at = g.last_status()
    checkpoint(a, workdir, "vm-a", "ckpt/vm-a:1")
    a.remove("vm-a")
    archive = os.path.join(workdir, "ckpt.tar")
    _, t_exp = a.ctr("images", "export", "--skip-manifest-json", archive, "ckpt/vm-a:1")
    _, t_imp = b.ctr("images", "import", "--no-unpack", archive)
    rlog, t_rs = restore(b, workdir, g, "vm-b", "ckpt/vm-a:1", at)
    assert "qemu_plugin" in rlog
    figures("export/import", export_s="%.2f" % t_exp, import_s="%.2f" % t_imp,
            archive_mib="%.1f" % (os.path.getsize(archive) / 2**20), restore_s="%.2f" % t_rs)
    b.remove("vm-b")
    a.ctr("images", "rm", "ckpt/vm-a:1")
    b.ctr("images", "rm", "ckpt/vm-a:1")
