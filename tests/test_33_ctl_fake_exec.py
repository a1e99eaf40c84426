"""mantactl tasks and logs against a stand-in for mantad-exec: a ZeroMQ
ROUTER on <run_dir>/exec.sock answering TasksRequest and LogsRequest the
way proto/ipc.proto says, with the instance lock held as a running
supervisor holds it. Checks the JSON (exact keys, nulls), the table, the
log loop from offset 0, `logs -f` polling until LogsChunk.finished, an
unknown task (exit 1), and a running node whose exec does not answer
(exit 1, not 3)."""

import fcntl
import os
import subprocess
import threading
import time

import pytest

import nodelib
import ipc_pb2  # noqa: E402  (build/py, on sys.path through nodelib)

zmq = pytest.importorskip("zmq")

KEYS = ["swarm_id", "task_id", "status", "iteration", "circular", "image",
        "exit_code", "started_at", "finished_at", "reason"]
T1 = "0000000000000000000000000000b001"
T2 = "0000000000000000000000000000b002"
SW = "0000000000000000000000000000aaaa"


class FakeExec(object):
    """Answers on exec.sock from a thread. logs: task hex -> a list of
    (bytes, finished-when-read-to-here) growing over time."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.tasks = []
        self.logs = {}
        self.finished = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("ipc://%s/exec.sock" % run_dir)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, empty, body = self.sock.recv_multipart()
            m = ipc_pb2.Msg()
            m.ParseFromString(body)
            with self.lock:
                self.requests.append(m)
                rep = self.answer(m)
            self.sock.send_multipart([ident, empty, rep.SerializeToString()])
        self.sock.close()

    def answer(self, m):
        which = m.WhichOneof("body")
        if which == "tasks_req":
            return ipc_pb2.Msg(tasks=ipc_pb2.TaskList(tasks=self.tasks))
        if which == "logs_req":
            r = m.logs_req
            if r.task_id not in self.logs:
                return ipc_pb2.Msg(reply=ipc_pb2.Reply(code=1, error="no such task"))
            data = self.logs[r.task_id]
            end = min(len(data), r.offset + min(r.max or 4, 4))   # small chunks
            chunk = data[r.offset:end]
            return ipc_pb2.Msg(logs=ipc_pb2.LogsChunk(
                data=chunk, next_offset=end,
                finished=self.finished.get(r.task_id, False) and end == len(data)))
        return ipc_pb2.Msg(reply=ipc_pb2.Reply(code=2, error="unexpected"))

    def close(self):
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def running(tmp_path):
    """An instance that looks running: the supervisor lock held by us."""
    n = nodelib.Node(nodelib.free_port())
    os.makedirs(n.run_dir, mode=0o700)
    lock = open(os.path.join(n.run_dir, "supervise.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    lock.write("%d\n" % os.getpid())
    lock.flush()
    try:
        yield n
    finally:
        lock.close()
        n.cleanup()


def test_no_exec_answering(running):
    for args in (["tasks", "--json"], ["logs", T1]):
        r = nodelib.mantactl(*(args + ["-c", running.config]), timeout=30)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert "mantad-exec" in r.stderr, r.stderr


def test_tasks_json(running):
    fx = FakeExec(running.run_dir)
    try:
        fx.tasks = [
            ipc_pb2.TaskInfo(swarm_id=SW, task_id=T1, status="RUNNING", iteration=3,
                             circular=1, image="busybox", has_exit_code=False,
                             started_at="2026-01-02T03:04:05Z"),
            ipc_pb2.TaskInfo(swarm_id=SW, task_id=T2, status="FAILED", iteration=0,
                             circular=0, image="py:3", has_exit_code=True, exit_code=7,
                             started_at="2026-01-02T03:04:05Z",
                             finished_at="2026-01-02T03:05:00Z", reason="exit 7"),
            ipc_pb2.TaskInfo(swarm_id=SW, task_id="0" * 31 + "3", status="QUEUED",
                             image="busybox"),
        ]
        rc, arr = nodelib.tasks_json(running.config)
        assert rc == 0, arr
        assert [list(e.keys()) for e in arr] == [KEYS] * 3
        assert arr[0] == {"swarm_id": SW, "task_id": T1, "status": "RUNNING",
                          "iteration": 3, "circular": 1, "image": "busybox",
                          "exit_code": None, "started_at": "2026-01-02T03:04:05Z",
                          "finished_at": None, "reason": None}
        assert arr[1]["reason"] == "exit 7"
        assert arr[1]["exit_code"] == 7 and arr[1]["finished_at"] == "2026-01-02T03:05:00Z"
        assert arr[2]["started_at"] is None and arr[2]["exit_code"] is None
        # Not a terminal: JSON without --json too; the NAME-less forms too.
        r = nodelib.mantactl("tasks", "-c", running.config)
        assert r.returncode == 0 and r.stdout.startswith("["), r.stdout
        fx.tasks = []
        assert nodelib.tasks_json(running.config) == (0, [])
    finally:
        fx.close()


def test_logs_all_and_unknown(running):
    fx = FakeExec(running.run_dir)
    try:
        fx.logs[T1] = b"line one\nline two\n\x00binary\xff\n"
        fx.finished[T1] = False
        r = subprocess.run([nodelib.MANTACTL, "logs", T1.upper(), "-c", running.config],
                           stdout=subprocess.PIPE, timeout=30)
        assert r.returncode == 0
        assert r.stdout == fx.logs[T1]     # bytes as they are, all chunks
        first = [m for m in fx.requests if m.WhichOneof("body") == "logs_req"][0]
        assert first.logs_req.offset == 0 and first.logs_req.task_id == T1
        r = nodelib.mantactl("logs", T2, "-c", running.config)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert T2 in r.stderr and "no such task" in r.stderr
    finally:
        fx.close()


def test_logs_follow(running):
    fx = FakeExec(running.run_dir)
    try:
        fx.logs[T1] = b"start\n"
        fx.finished[T1] = False

        def later():
            time.sleep(1.0)
            with fx.lock:
                fx.logs[T1] += b"middle\n"
            time.sleep(1.0)
            with fx.lock:
                fx.logs[T1] += b"end\n"
                fx.finished[T1] = True
        t = threading.Thread(target=later)
        t.start()
        t0 = time.monotonic()
        r = nodelib.mantactl("logs", "-f", T1, "-c", running.config, timeout=30)
        took = time.monotonic() - t0
        t.join()
        assert r.returncode == 0, r.stderr
        assert r.stdout == "start\nmiddle\nend\n"
        # Ended when the task did (2 s), polling briefly, not on a long sleep.
        assert 1.9 < took < nodelib.deadline(5), took
        polls = [m for m in fx.requests if m.WhichOneof("body") == "logs_req"]
        assert len(polls) < 60, len(polls)
    finally:
        fx.close()
