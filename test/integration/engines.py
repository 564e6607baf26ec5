"""Container engines for the integration tests: the VM container image built
from the host's files, a CRIU for the engine that loads the plugin of this
build, rootful Podman (runc) on a storage root of its own, a local OCI
registry on loopback, and a harness.Guest that runs in a container.

Nothing of the host's engine configuration is used or changed: Podman gets
--root/--runroot/--tmpdir under the test's directory and CONTAINERS_CONF
(build/engines/containers.conf, from scripts/engines.sh); the criu it runs
from PATH is a wrapper here (CriuShim) that sets CRIU_FAULT, points CRIU at
the build's plugin (CRIU_CONFIG_FILE with `libdir`, which CRIU reads in RPC
mode too, where runc gives it no libdir) and the plugin at a config file of
its own (CRIU_QEMU_CONFIG): engines start criu with a clean environment, so
the wrapper is where these settings can go. `make install` does the same
for real use (README, "Containers").
"""
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time

import pytest

import harness

ENGINE_DIR = os.path.join(harness.TOP, "build", "engines")
CONTAINERS_CONF = os.path.join(ENGINE_DIR, "containers.conf")
QEMU_BIN = "/usr/bin/qemu-system-x86_64"
QEMU_MODULES = "/usr/lib/x86_64-linux-gnu/qemu"
FIRMWARE = ("/usr/share/qemu", "/usr/share/seabios")
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE = "localhost/criu-qemu-vm:1"


def cannot_run(*tools):
    """Why an engine test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (rootful engine, CRIU)"
    for t in tools:
        if not shutil.which(t):
            return "%s is not installed (scripts/engines.sh installs it)" % t
    if not os.path.exists(CONTAINERS_CONF):
        return "no %s (run scripts/engines.sh)" % CONTAINERS_CONF
    return None


def skip_unless_runs(reason):
    """Skip with the reason; under CI (CI set) an engine that cannot run is
    a failure: make check installs every engine there."""
    if not reason:
        return
    if os.environ.get("CI"):
        pytest.fail("engine test cannot run under CI: " + reason)
    pytest.skip(reason)


def _libs(path):
    out = subprocess.run(["ldd", path], stdout=subprocess.PIPE, text=True, check=True).stdout
    return [l.split("=>")[-1].split("(")[0].strip() for l in out.splitlines()
            if l.split("=>")[-1].strip().startswith("/")]


def _usr(path):
    """Where path lives on a merged-/usr system (/lib/x -> /usr/lib/x)."""
    for top in ("/lib/", "/lib64/", "/bin/", "/sbin/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def rootfs_tar(path):
    """A container root file system from the host's files: QEMU, the
    libraries it and its TCG module link, its module directory (QEMU loads
    accel-tcg-x86_64.so from there), firmware (/usr/share/qemu with the
    seabios it links to) and the test guest's kernel and initramfs in
    /guest. /work is where a test mounts the guest's directory."""
    files = {QEMU_BIN}
    files.update(_libs(QEMU_BIN))
    files.update(_libs(os.path.join(QEMU_MODULES, "accel-tcg-x86_64.so")))
    with tarfile.open(path, "w") as t:
        for d in ("tmp", "work", "guest", "etc", "proc", "sys", "dev", "run", "usr/lib64"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            t.addfile(ti)
        for link in ("lib", "lib64", "bin", "sbin"):
            ti = tarfile.TarInfo(link)
            ti.type, ti.linkname = tarfile.SYMTYPE, "usr/" + link
            t.addfile(ti)
        for f in sorted(files):
            t.add(os.path.realpath(f), arcname=_usr(f).lstrip("/"))
        for d in (QEMU_MODULES,) + FIRMWARE:
            t.add(d, arcname=d.lstrip("/"))
        for f in ("vmlinuz", "initramfs.cpio.gz"):
            t.add(os.path.join(harness.GUEST_DIR, f), arcname="guest/" + f)
    return path


class CriuShim:
    """bin/criu in dir: the criu an engine runs from PATH, with CRIU_FAULT,
    the build's plugin and a plugin config file of its own."""

    def __init__(self, d):
        self.dir = d
        self.bin_dir = os.path.join(d, "bin")
        self.criu_conf = os.path.join(d, "criu.conf")
        self.plugin_conf = os.path.join(d, "qemu_plugin.conf")
        os.makedirs(self.bin_dir, exist_ok=True)
        with open(self.criu_conf, "w") as f:
            f.write("libdir %s\n" % harness.PLUGIN_DIR)
        self.plugin(True)
        wrapper = os.path.join(self.bin_dir, "criu")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexport CRIU_FAULT=%s CRIU_CONFIG_FILE=%s CRIU_QEMU_CONFIG=%s\n"
                    "export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1\nexec %s \"$@\"\n"
                    % (harness.CRIU_FAULT, self.criu_conf, self.plugin_conf, harness.criu_bin()))
        os.chmod(wrapper, 0o755)

    def plugin(self, enabled):
        """The plugin's config file: enabled = yes or no."""
        with open(self.plugin_conf, "w") as f:
            f.write("enabled = %s\n" % ("yes" if enabled else "no"))


class Podman:
    """Rootful Podman with runc, on storage of its own under base."""

    def __init__(self, base, shim, runroot=None):
        """runroot: another Podman's (see test_podman.py, the second host)."""
        self.base = base
        self.shim = shim
        self.root = os.path.join(base, "root")
        # Podman refuses a runroot path longer than 50 characters.
        self.own_runroot = runroot is None
        self.runroot = runroot or tempfile.mkdtemp(prefix="criu-qemu-", dir="/run")
        self.args = ["podman", "--root", self.root, "--runroot", self.runroot,
                     "--tmpdir", os.path.join(base, "tmp"), "--events-backend", "file"]
        self.env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF,
                        PATH=shim.bin_dir + ":" + STD_PATH)

    def run(self, *args, check=True, timeout=300):
        """podman args; returns (CompletedProcess, seconds)."""
        t0 = time.monotonic()
        r = subprocess.run(self.args + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, env=self.env)
        elapsed = time.monotonic() - t0
        harness.reap_zombies()
        if check and r.returncode != 0:
            raise harness.CriuError("podman %s failed (rc %d):\n%s"
                                    % (" ".join(args), r.returncode, r.stdout[-4000:]))
        return r, elapsed

    def out(self, *args):
        return self.run(*args)[0].stdout.strip()

    def inspect(self, name, fmt):
        return self.out("inspect", "--type", "container", name, "--format", fmt)

    def pid(self, name):
        return int(self.inspect(name, "{{.State.Pid}}"))

    def userdata(self, name):
        """The container's directory: checkpoint/, dump.log, restore.log."""
        return os.path.join(self.root, "overlay-containers", self.inspect(name, "{{.ID}}"), "userdata")

    def cleanup(self):
        self.run("rm", "-a", "-f", "-t", "0", check=False)
        self.run("rmi", "-a", "-f", check=False)
        umount_under(self.base)
        if self.own_runroot:
            umount_under(self.runroot)
            shutil.rmtree(self.runroot, ignore_errors=True)


def umount_under(base):
    """Unmount everything below base, deepest first (the overlay driver keeps
    its directory mounted)."""
    with open("/proc/self/mountinfo") as f:
        mnts = [l.split()[4] for l in f]
    for m in sorted((m for m in mnts if m.startswith(base.rstrip("/") + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)


class Registry:
    """Debian's docker-registry on 127.0.0.1, storage under dir."""

    def __init__(self, d):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.addr = "127.0.0.1:%d" % self.port
        conf = os.path.join(d, "registry.yml")
        with open(conf, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                    "    rootdirectory: %s\nhttp:\n  addr: %s\n" % (os.path.join(d, "registry"), self.addr))
        self.log = open(os.path.join(d, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start; see %s" % self.log.name)
                time.sleep(0.1)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def podman_env(base):
    """A Podman on storage under base, its criu a CriuShim, the VM image
    imported."""
    shim = CriuShim(os.path.join(base, "criu"))
    pm = Podman(os.path.join(base, "podman"), shim)
    pm.run("import", rootfs_tar(os.path.join(base, "rootfs.tar")), IMAGE)
    return pm


def engine_base():
    """A directory for an engine's storage; on the same file system as the
    tests' work directories."""
    return tempfile.mkdtemp(prefix="criu-qemu-engine-", dir=os.environ.get("CRIU_QEMU_TEST_DIR", "/var/tmp"))


class ContainerGuest(harness.Guest):
    """harness.Guest in a container: QEMU runs in the image, the guest's
    directory (console, monitor socket) is bind-mounted at /work, so the
    console is read here as for any Guest. pid is QEMU's pid on the host
    (refresh() after a restore); name the current container."""

    def __init__(self, engine, workdir, name, **kw):
        super().__init__(workdir, name=name, **kw)
        self.engine = engine
        self.names = [name]
        cmd = [QEMU_BIN] + self.cmd[1:]
        self.cmd = [a.replace(harness.GUEST_DIR, "/guest").replace(self.workdir, "/work") for a in cmd]

    @property
    def cname(self):
        return self.names[-1]

    def start(self, keep_console=False):
        for p in (self.qmp_path,) + (() if keep_console else (self.console,)):
            if os.path.exists(p):
                os.unlink(p)
        self.engine.run("run", "-d", "--name", self.name, "--network", "none",
                        "-v", "%s:/work" % self.workdir, IMAGE, *self.cmd)
        self.refresh()
        return self

    def refresh(self, name=None):
        """After a restore (under a new name): QEMU's pid again."""
        if name and name != self.cname:
            self.names.append(name)
        self.pid = self.engine.pid(self.cname)
        assert self.pid > 0, "container %s is not running" % self.cname
        return self.pid

    def qemu_log(self):
        return self.engine.run("logs", self.cname, check=False)[0].stdout[-4000:]

    def kill(self):
        for n in self.names:
            self.engine.run("rm", "-f", "-t", "0", n, check=False)
        if self.pid:
            harness.wait_pid_gone(self.pid)


def start_container_guest(engine, workdir, guests, name, **kw):
    """A ContainerGuest (kw: Guest's) registered in guests, booted, its
    workload ready and two passes through."""
    g = ContainerGuest(engine, workdir, name, **kw)
    guests.append(g)
    g.start()
    g.wait_ready()
    g.wait_passes(2)
    return g


def restored_continues(g, at, since, rewinds=False):
    """After a restore: the guest goes on from `at` in console lines past
    `since` (two full verification passes, new rewrites), its counters never
    go back -- except, with rewinds, where this restore starts from an
    older checkpoint -- and no page is corrupt."""
    g.refresh()
    g.keeps_running(at, since=since, passes=2, restarts_at=[since] if rewinds else [])
