"""Podman (rootful, runc) checkpoints of a VM container with the plugin:
checkpoint/restore, --export/--import under a new name, --leave-running,
--create-image through a local registry to a second storage root, and the
stale-image sequences of issue 12 (a checkpoint without the plugin into a
directory that still holds an older RAM image). The container runs QEMU TCG
from an image built from the host's files (engines.rootfs_tar); every
restore is verified by the guest itself on its console (a bind mount)."""
import os
import shutil

import pytest

import engines
import harness

MEM, WL_MB = "512M", 64


@pytest.fixture(scope="module")
def podman():
    engines.skip_unless_runs(engines.cannot_run("podman", "runc"))
    base = engines.engine_base()
    pm = engines.podman_env(base)
    yield pm
    pm.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def registry(podman, workdir):
    engines.skip_unless_runs(engines.cannot_run("docker-registry"))
    reg = engines.Registry(workdir)
    yield reg
    reg.stop()


def boot(podman, workdir, guests, name):
    return engines.start_container_guest(podman, workdir, guests, name, mem=MEM, wl_mb=WL_MB)


def checkpoint(podman, g, *args):
    """podman container checkpoint; the guest's last status before it."""
    podman.run("container", "checkpoint", *args, g.cname)
    harness.wait_pid_gone(g.pid)
    return g.last_status()


def dumped_by_plugin(podman, name):
    d = podman.userdata(name)
    log = harness.log_text(os.path.join(d, "dump.log"))
    assert "qemu_plugin:" in log and "complete and durable" in log, "plugin did not save RAM"
    assert os.path.exists(os.path.join(d, "checkpoint", "qemu-ram-1.img")), os.listdir(d)
    return d


def restore(podman, g, *args, name=None, rewinds=False, at=None):
    """podman container restore --keep (restore.log stays) args, the
    container's name last, unless name: then it is the new container of
    --import or of a checkpoint image; the guest goes on from `at`.
    Returns restore.log."""
    mark = g.mark()
    podman.run("container", "restore", "--keep", *(args + (("--name", name) if name else (g.cname,))))
    g.refresh(name)
    engines.restored_continues(g, at, mark, rewinds=rewinds)
    return harness.log_text(os.path.join(podman.userdata(g.cname), "restore.log"))


def test_checkpoint_restore(podman, workdir, guests):
    """Checkpoint and restore twice: the second checkpoint goes into the
    directory of the first, whose RAM image the plugin moves aside and
    removes in the background. (That removal ran in a thread of CRIU's,
    and while it lived CRIU could not setns() into the restored
    container's mount namespace: the second checkpoint failed.)"""
    g = boot(podman, workdir, guests, "pm-basic")
    at = checkpoint(podman, g, "--keep")
    dumped_by_plugin(podman, g.cname)
    log = restore(podman, g, at=at)
    assert "RAM restored" in log
    at = checkpoint(podman, g, "--keep")
    dumped_by_plugin(podman, g.cname)
    ckpt = os.path.join(podman.userdata(g.cname), "checkpoint")
    log = restore(podman, g, at=at)
    assert "RAM restored" in log
    assert not [f for f in os.listdir(ckpt) if ".old." in f], os.listdir(ckpt)


def test_export_import_new_name(podman, workdir, guests):
    g = boot(podman, workdir, guests, "pm-export")
    archive = os.path.join(workdir, "ckpt.tar")
    at = checkpoint(podman, g, "--export", archive, "--compress", "none")
    podman.run("rm", g.cname)
    log = restore(podman, g, "--import", archive, name="pm-imported", at=at)
    assert "RAM restored" in log


def test_leave_running_then_restore(podman, workdir, guests):
    g = boot(podman, workdir, guests, "pm-leave")
    archive = os.path.join(workdir, "ckpt.tar")
    podman.run("container", "checkpoint", "--leave-running", "--export", archive, g.cname)
    at = g.last_status()
    assert g.pid == podman.pid(g.cname), "container did not keep running"
    g.keeps_running(at, since=g.mark(), passes=2)
    # Later, the original gone, a restore from that checkpoint under a new
    # name: the guest goes back to the checkpoint's state and goes on.
    podman.run("rm", "-f", "-t", "0", g.cname)
    harness.wait_pid_gone(g.pid)
    log = restore(podman, g, "--import", archive, name="pm-leave-2", at=at, rewinds=True)
    assert "RAM restored" in log


def test_create_image_via_registry_to_second_root(podman, registry, workdir, guests):
    # The VM image goes to the registry too: the second host takes the
    # checkpoint's base image from there.
    remote_vm = "%s/criu-qemu-vm:1" % registry.addr
    remote_ckpt = "%s/criu-qemu-ckpt:1" % registry.addr
    podman.run("push", "--tls-verify=false", engines.IMAGE, remote_vm)
    g = boot(podman, workdir, guests, "pm-image")
    at = checkpoint(podman, g, "--keep", "--create-image", remote_ckpt)
    dumped_by_plugin(podman, g.cname)
    podman.run("push", "--tls-verify=false", remote_ckpt)

    # The second host: storage of its own, but the first one's runroot
    # path. Podman 4.3 carries the checkpointed container's runroot paths
    # into the restored one (conmon's pid file goes there), which two real
    # hosts share anyway (/run/containers/storage); the first Podman is
    # idle meanwhile, its container removed.
    podman.run("rm", g.cname)
    host2 = engines.Podman(os.path.join(workdir, "host2"), podman.shim, runroot=podman.runroot)
    try:
        host2.run("pull", "--tls-verify=false", remote_vm)
        host2.run("tag", remote_vm, engines.IMAGE)
        host2.run("pull", "--tls-verify=false", remote_ckpt)
        g.engine = host2
        log = restore(host2, g, remote_ckpt, name="pm-host2", at=at)
        assert "RAM restored" in log
    finally:
        g.kill()
        host2.cleanup()


def test_stale_image_checkpoint_without_plugin(podman, workdir, guests):
    """checkpoint --keep, restore --keep, a checkpoint without the plugin
    into the same directory, restore: the newer state comes back (CRIU's own
    pages), the older qemu-ram image is ignored and says so."""
    g = boot(podman, workdir, guests, "pm-stale")
    at = checkpoint(podman, g, "--keep")
    dumped_by_plugin(podman, g.cname)
    restore(podman, g, at=at)
    podman.shim.plugin(False)
    try:
        at = checkpoint(podman, g, "--keep")
    finally:
        podman.shim.plugin(True)
    ckpt = os.path.join(podman.userdata(g.cname), "checkpoint")
    assert os.path.exists(os.path.join(ckpt, "qemu-ram-1.img")), "no older image left to test with"
    log = restore(podman, g, at=at)
    assert "qemu-ram-1.img ignored" in log and "RAM restored" not in log


def test_stale_image_create_image_without_plugin(podman, workdir, guests):
    """The same with --create-image: a checkpoint image made without the
    plugin from a directory with an older RAM image, restored with it."""
    g = boot(podman, workdir, guests, "pm-stale-img")
    at = checkpoint(podman, g, "--keep")
    dumped_by_plugin(podman, g.cname)
    restore(podman, g, at=at)
    podman.shim.plugin(False)
    try:
        at = checkpoint(podman, g, "--keep", "--create-image", "localhost/pm-stale-ckpt:1")
    finally:
        podman.shim.plugin(True)
    assert os.path.exists(os.path.join(podman.userdata(g.cname), "checkpoint", "qemu-ram-1.img"))
    podman.run("rm", g.cname)
    log = restore(podman, g, "localhost/pm-stale-ckpt:1", name="pm-stale-img-2", at=at)
    assert "qemu-ram-1.img ignored" in log and "RAM restored" not in log
