import os
import shutil
import tempfile

import pytest

import harness


def pytest_report_header(config):
    return "criu: %s (%s)" % (harness.Criu("/tmp").version(), harness.criu_bin())


@pytest.fixture(scope="session", autouse=True)
def subreaper():
    harness.become_subreaper()
    yield
    harness.reap_zombies()


@pytest.fixture
def workdir(request):
    base = os.environ.get("CRIU_QEMU_TEST_DIR", "/var/tmp")
    d = tempfile.mkdtemp(prefix="criu-qemu-%s-" % request.node.name[:40], dir=base)
    yield d
    # Kept when the test failed, or on request (CRIU_QEMU_KEEP_WORKDIR=1).
    if not getattr(request.node, "rep_failed", False) and not os.environ.get("CRIU_QEMU_KEEP_WORKDIR"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_failed = True


@pytest.fixture
def criu(workdir):
    return harness.Criu(workdir)


@pytest.fixture
def guests():
    """Guests registered here are killed and reaped after the test."""
    started = []
    yield started
    for g in started:
        g.kill()
    harness.reap_zombies()
