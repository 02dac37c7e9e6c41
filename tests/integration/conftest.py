# pytest glue for the integration tests: a deadline per test (SIGALRM, since
# pytest-timeout is not installed by default), the `env` fixture that owns
# every process a test starts, and log tails attached to failure reports.

import faulthandler
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sshtund_testlib as tl  # noqa: E402

DEFAULT_ALARM_SECONDS = 120


class AlarmTimeout(BaseException):
    """The test ran past its deadline (a BaseException, so no `except
    Exception` in a test can swallow it)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "alarm(seconds): per-test deadline, default "
                            f"{DEFAULT_ALARM_SECONDS} s, setup and teardown included")


def _on_alarm(signum, frame):
    # Where every thread was, for hangs inside the harness's own threads.
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    raise AlarmTimeout("test deadline passed (see the alarm marker)")


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("alarm")
    seconds = int(marker.args[0]) if marker else DEFAULT_ALARM_SECONDS
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def env(request):
    """A TestEnv: temporary directory, nodes, servers, daemons; all torn
    down after the test, and the daemon's clean exit checked."""
    e = tl.TestEnv(request.node.name)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def api(env):
    """The Kubernetes API stand-in (kube_standin.py) on the test's address."""
    import kube_standin as ks
    s = ks.KubeStandin(env.dir, env.addr())
    try:
        yield s
    finally:
        s.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for e in tl.ACTIVE_ENVS:
            e.failed = True
            for label, text in e.log_tails():
                rep.sections.append((f"log: {label}", text))
