"""systemd's readiness protocol (manta-node@.service, Type=notify):
`mantactl start` with $NOTIFY_SOCKET sends READY=1 only once every daemon
is up, STOPPING=1 when a stop begins, and its daemons do not inherit the
variable; an abstract socket name ('@') and a path both work. And SIGUSR2
(the package's postinst at upgrades): the node stops, exits 75, and a
start on the new programs adopts the task still running, whose updates
arrive exactly once."""

import os
import signal
import socket
import tempfile

import pytest

import nodelib
from common import tasks_pb2 as tasks_pb


class Listener(object):
    """The service manager's end: a datagram socket, abstract or a path."""

    def __init__(self, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "manta-test-notify-%d-%s" % (os.getpid(), os.urandom(4).hex())
            self.sock.bind("\0" + name)
            self.env = "@" + name
            self.dir = None
        else:
            self.dir = tempfile.mkdtemp(prefix="mnt-notify-", dir="/tmp")
            self.env = os.path.join(self.dir, "notify")
            self.sock.bind(self.env)
        self.got = []

    def wait(self, key, timeout, check=None):
        """Datagrams until one assigns key (e.g. "READY=1"); check(fields)
        runs as soon as that one arrives. Returns its fields."""
        def one():
            self.sock.settimeout(max(0.05, min(0.5, nodelib.deadline(timeout))))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                return None
            fields = dict(l.split("=", 1) for l in data.split("\n") if "=" in l)
            self.got.append(fields)
            if key in ("%s=%s" % kv for kv in fields.items()):
                if check is not None:
                    check(fields)
                return fields
            return None
        return nodelib.wait_for(one, timeout, "%s on NOTIFY_SOCKET (got %r)"
                                % (key, self.got), interval=0)

    def close(self):
        self.sock.close()
        if self.dir:
            os.unlink(self.env)
            os.rmdir(self.dir)


@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "path"])
def test_ready_after_every_daemon(manager, make_node, monkeypatch, abstract):
    lis = Listener(abstract)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", lis.env)
        node = make_node(manager.grpc_port)
        node.start(wait=False)

        def all_up(fields):
            # Asked the moment READY=1 arrives: every daemon is up already.
            rc, st = node.status()
            assert rc == 0, node.last_status
            states = {d["name"]: d["state"] for d in st["daemons"]}
            assert set(nodelib.DAEMONS) <= set(states), states
            assert all(s == "up" for s in states.values()), states
        ready = lis.wait("READY=1", 30, all_up)
        assert "all" in ready.get("STATUS", ""), ready
        # Nothing said READY before that.
        assert [f for f in lis.got[:-1] if f.get("READY")] == []
        # The daemons do not inherit the socket (they would speak for
        # the supervisor).
        for name, pid in node.pids().items():
            if name == "mantactl":
                continue
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            assert not any(e.startswith(b"NOTIFY_SOCKET=") for e in env), name
        node.wait_ready(30)
        monkeypatch.delenv("NOTIFY_SOCKET")
        node.stop(timeout=60)
        lis.wait("STOPPING=1", 10)
    finally:
        lis.close()


def test_bad_notify_socket_warns(manager, make_node, monkeypatch):
    """A NOTIFY_SOCKET that names no unix socket: a warning, and the node
    starts all the same."""
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify")
    node = make_node(manager.grpc_port)
    node.start()
    node.wait_ready(30)
    assert "NOTIFY_SOCKET=relative/notify names no unix socket" in node.log()


def test_sigusr2_restart_keeps_task(manager, make_node, bbroot, runtime):
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    tid = "8a" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        tid, "#!/bin/sh\necho start\nsleep 8\necho end\n"))
    nodelib.wait_task_status(manager, tid, tasks_pb.RUNNING)
    old = node.pids()
    node.terminate(signal.SIGUSR2)
    assert node.wait_exit(30) == 75
    node.wait_no_process(15)
    # The container still runs, its shim too: nothing was stopped.
    assert [u[3] for u in nodelib.task_updates(manager, tid)] == [tasks_pb.RUNNING]
    assert "stopping for a restart" in node.log()
    node.start()
    node.wait_ready(30)
    assert node.pids()["mantad-exec"] != old["mantad-exec"]
    nodelib.wait_for(lambda: "recovered: 1 containers adopted" in node.log(), 10,
                     "mantad-exec adopting the running container")
    nodelib.wait_task_status(manager, tid, tasks_pb.COMPLETED, timeout=30)
    assert [u[3] for u in nodelib.task_updates(manager, tid)] == \
        [tasks_pb.RUNNING, tasks_pb.COMPLETED]
    nodelib.wait_for(lambda: nodelib.task_log_text(manager, tid) == "start\nend\n",
                     15, "the adopted task's whole output")
