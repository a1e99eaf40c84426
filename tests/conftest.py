"""pytest fixtures of the integration tests: broker, manager, node, make_node.
Each test gets its own broker port, manager port and node dirs; everything
started is stopped at teardown, also when the test fails."""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nodelib  # noqa: E402
from devmanager import DevManager  # noqa: E402

# A test that hangs must not hang `make check`: each test gets this long.
TEST_TIMEOUT = int(os.environ.get("MANTA_TEST_TIMEOUT", str(int(150 * nodelib.SCALE))))


class RunTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise RunTimeout("test ran past %d s (MANTA_TEST_TIMEOUT)" % TEST_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def need_bins(*names):
    """Fails (not skips: `make check` builds them first) when a program is missing."""
    missing = [n for n in names if not os.access(os.path.join(nodelib.BIN, n), os.X_OK)]
    if missing:
        pytest.fail("not built: %s (run make)" % ", ".join("bin/" + n for n in missing))


@pytest.fixture
def broker(request):
    b = nodelib.Broker()
    try:
        b.start()
        yield b
    finally:
        if _failed(request):
            sys.stderr.write("---- mosquitto log (%d) ----\n%s\n" % (b.port, b.log()[-4000:]))
        b.cleanup()


@pytest.fixture
def manager(broker):
    m = DevManager(grpc_port=nodelib.free_port(), broker_host=broker.host,
                   broker_port=broker.port, token=nodelib.TOKEN)
    m.start()
    try:
        m.wait_mqtt(10)
        yield m
    finally:
        m.stop()


@pytest.fixture
def make_node(request):
    """make_node(manager_port, **kw) -> an unstarted nodelib.Node; all are
    cleaned up at teardown (their logs printed if the test failed)."""
    need_bins("mantactl", *nodelib.DAEMONS)
    nodes = []

    def make(manager_port, **kw):
        n = nodelib.Node(manager_port, **kw)
        nodes.append(n)
        return n
    try:
        yield make
    finally:
        failed = _failed(request)
        errors = []
        for n in nodes:
            if failed:
                sys.stderr.write("---- node %s: mantactl.log ----\n%s\n"
                                 % (n.dir, n.log_tail(200)))
            n.cleanup(remove=False)
            if nodelib.VALGRIND:
                v = n.valgrind_errors()
                if v:
                    errors.append(v)
            n.remove()
        if errors:
            pytest.fail("valgrind:\n" + "\n".join(errors)[-20000:], pytrace=False)


@pytest.fixture
def node(manager, make_node):
    """A started node registered with the dev manager, online, every daemon up."""
    n = make_node(manager.grpc_port)
    n.start()
    n.wait_ready(30)
    return n
