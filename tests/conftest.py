"""pytest fixtures of the integration tests: broker, manager, managers,
node, make_node; pbroker, pmanager, restartable_manager (fault tests);
bbroot, runtime, pyroot (task tests); pki (TLS tests).
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


@pytest.fixture(autouse=True)
def tsan_clean():
    """Under MANTA_TEST_TSAN, a ThreadSanitizer report from any process the
    test started fails it (checked after every other fixture stopped its
    processes)."""
    yield
    reports = nodelib.tsan_reports()
    if reports:
        pytest.fail("ThreadSanitizer:\n" + reports[-30000:], pytrace=False)


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


def _started_manager(broker, cls=DevManager):
    """A dev manager of class cls on a free port, connected to broker's MQTT;
    stopped when the generator is closed (a fixture's teardown)."""
    m = cls(grpc_port=nodelib.free_port(), broker_host=broker.host,
            broker_port=broker.port, token=nodelib.TOKEN)
    m.start()
    try:
        m.wait_mqtt(10)
        yield m
    finally:
        m.stop()


@pytest.fixture
def manager(broker):
    yield from _started_manager(broker)


@pytest.fixture
def managers(broker):
    """start(port, wait_mqtt=False) -> a new, started DevManager on port
    (with wait_mqtt, once connected to the broker); all stopped at teardown."""
    started = []

    def start(port, wait_mqtt=False):
        m = DevManager(grpc_port=port, broker_host=broker.host,
                       broker_port=broker.port, token=nodelib.TOKEN)
        started.append(m)
        m.start()
        if wait_mqtt:
            m.wait_mqtt(10)
        return m
    try:
        yield start
    finally:
        for m in started:
            m.stop()


# ---- fault tests (faultlib) ----

@pytest.fixture
def pbroker():
    """A started faultlib.PersistentBroker (sessions survive a restart)."""
    import faultlib
    b = faultlib.PersistentBroker()
    try:
        yield b.start()
    finally:
        b.cleanup()


@pytest.fixture
def pmanager(pbroker):
    """A faultlib.Manager (persistent MQTT session, restartable gRPC side)
    connected to pbroker."""
    import faultlib
    yield from _started_manager(pbroker, faultlib.Manager)


@pytest.fixture
def restartable_manager(broker):
    """A faultlib.Manager (restartable gRPC side) on the plain broker."""
    import faultlib
    yield from _started_manager(broker, faultlib.Manager)


# ---- task tests: images and runtimes ----

@pytest.fixture(scope="session")
def bbroot(tmp_path_factory):
    """The busybox rootfs (tests/images/busybox.sh), built once a session;
    tests import it, none writes into it."""
    return nodelib.busybox_rootfs(str(tmp_path_factory.mktemp("bb") / "rootfs"))


@pytest.fixture(params=nodelib.RUNTIMES)
def runtime(request, bbroot):
    """Each OCI runtime of nodelib.RUNTIMES in turn, skipped where it cannot
    run a container here."""
    return nodelib.runtime_or_skip(request.param, bbroot)


@pytest.fixture(scope="session")
def pyroot():
    """The cached Debian Python rootfs (tests/images/python.sh). Built in
    fixture set-up: the first build takes about a minute, past a test's own
    time limit on a slow mirror; later runs find the cache."""
    root = nodelib.python_rootfs()
    if root is None:
        pytest.skip("the Python test image cannot be built here (tests/images/python.sh)")
    return root


# ---- TLS tests ----

@pytest.fixture
def pki():
    """A test CA (nodelib.TestCA) and what it signed: the server's
    certificate (127.0.0.1 and localhost), the node's two client ones (CN
    node-client, mqtt-client) and the dev manager's MQTT client one, each a
    (crt, key) pair."""
    ca = nodelib.TestCA()
    yield {"ca": ca, "server": ca.server("server"), "node": ca.client("node", "node-client"),
           "mqtt": ca.client("mqtt", "mqtt-client"),
           "manager_mqtt": ca.client("manager-mqtt")}
    ca.cleanup()


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
            # libcommon/db.c: a SQLite connection used by two threads.
            if "used by two threads" in n.log():
                errors.append("node %s: %s" % (n.dir, "\n".join(
                    ln for ln in n.log().splitlines() if "used by two threads" in ln)))
            if nodelib.VALGRIND:
                v = n.valgrind_errors()
                if v:
                    errors.append("valgrind:\n" + v)
            n.remove()
        if errors:
            pytest.fail("\n".join(errors)[-20000:], pytrace=False)


@pytest.fixture
def node(manager, make_node):
    """A started node registered with the dev manager, online, every daemon up."""
    n = make_node(manager.grpc_port)
    n.start()
    n.wait_ready(30)
    return n
