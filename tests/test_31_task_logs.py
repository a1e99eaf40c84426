"""AddTaskLogs through mantad-register: a TaskLogs handed over IPC (as
mantad-exec does) is stored in register.db before it is acknowledged, sent
to the manager with the client-streaming AddTaskLogs (one Logs message,
WIRE.md section 8 framing, UTC timestamp, the JWT), and deleted once the
manager said OK. A duplicate key is acknowledged and not sent twice; a
frame whose header names another task is refused; logs written while the
manager is away, even across a restart of mantad-register, go out in order
once it is back; the outbox is bounded."""

import os
import signal
import sqlite3
import time

import nodelib
from devmanager import decode_logs, hex_to_pair

import ipc_pb2  # noqa: E402  (build/py, put on sys.path by nodelib)

SWARM = "00000000000000000000000000005a5a"
TASK = "0123456789abcdef0123456789abcdef"
ZERO = "0" * 32


def task_logs(key, raw, node=ZERO, swarm=SWARM, task=TASK, iteration=1, circular=2,
              content=None):
    tl = ipc_pb2.TaskLogs(swarm_id=hex_to_pair(swarm), task_id=hex_to_pair(task),
                          iteration=iteration, circular=circular, key=key)
    tl.content = content if content is not None else nodelib.log_frame(
        swarm, node, task, iteration, circular, raw)
    return ipc_pb2.Msg(task_logs=tl)


def send(node, msg, timeout=10):
    rep = nodelib.ipc_call(node.run_dir, "register", msg, timeout=timeout)
    assert rep.WhichOneof("body") == "reply", rep
    return rep.reply


def outbox_rows(node):
    db = sqlite3.connect(os.path.join(node.state_dir, "register.db"), timeout=5)
    try:
        return db.execute("SELECT key FROM task_logs ORDER BY seq").fetchall()
    finally:
        db.close()


def log_calls(manager):
    return manager.calls("AddTaskLogs", accepted_only=True)


def test_logs_delivered(manager, node):
    node_id = node.wait_online()["node_id"]
    t0 = time.time()
    rep = send(node, task_logs("k1", b"hello from the task\n"))
    assert rep.code == 0, rep.error
    rec = manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(15))
    assert rec.authorization == nodelib.TOKEN
    assert len(rec.requests) == 1
    d = decode_logs(rec.requests[0].content)
    assert d["swarm_id"] == SWARM
    assert d["task_id"] == TASK
    assert d["node_id"] == node_id      # filled in by register: the frame had zero
    assert (d["iteration"], d["circular"]) == (1, 2)
    assert d["text"] == "hello from the task\n"
    ts = rec.requests[0].timestamp
    assert ts.seconds > 0 and abs(ts.seconds - t0) < 60
    # Deleted once the manager had it.
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")

    # A frame already carrying our node id is sent as is.
    rep = send(node, task_logs("k2", b"second", node=node_id))
    assert rep.code == 0, rep.error
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(15),
                      pred=lambda r: decode_logs(r.requests[0].content)["text"] == "second")


def test_duplicate_and_refused(manager, node):
    node.wait_online()
    assert send(node, task_logs("dup", b"once")).code == 0
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(15))
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")
    # The same key again (exec retrying after a lost acknowledgement): acked, dropped.
    assert send(node, task_logs("dup", b"once")).code == 0
    # Another task in the header than in the message: refused, not stored.
    bad = task_logs("bad", b"x", content=nodelib.log_frame(
        SWARM, ZERO, "ff" * 16, 1, 2, b"x"))
    rep = send(node, bad)
    assert rep.code != 0 and "header" in rep.error, rep
    # Another node in the header: refused.
    rep = send(node, task_logs("other-node", b"x", node="11" * 16))
    assert rep.code != 0 and "node" in rep.error, rep
    # Too short to carry the header: refused by validation.
    rep = send(node, task_logs("short", b"", content=b"\0" * 10))
    assert rep.code != 0
    # A marker after them: once it is delivered, nothing else came.
    assert send(node, task_logs("marker", b"marker")).code == 0
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(15),
                      pred=lambda r: decode_logs(r.requests[0].content)["text"] == "marker")
    texts = [decode_logs(r.requests[0].content)["text"] for r in log_calls(manager)]
    assert texts == ["once", "marker"], texts
    assert node.daemon("mantad-register", node.wait_online())["restarts"] == 0


def test_manager_away_then_back(manager, managers, node):
    """Acked while the manager is gone, kept across a kill -9 of
    mantad-register, delivered in order after it registers again."""
    node.wait_online()
    port = manager.grpc_port
    manager.stop()
    node.wait_status(lambda s: s["manager"]["registered"] is False, 30,
                     "registered false after the manager went away")
    for i in range(5):
        assert send(node, task_logs("away-%d" % i, b"line %d\n" % i)).code == 0
    assert [k for (k,) in outbox_rows(node)] == ["away-%d" % i for i in range(5)]

    # kill -9 mantad-register: the supervisor restarts it; the rows stay.
    pid = node.pids()["mantad-register"]
    os.kill(pid, signal.SIGKILL)
    node.wait_status(lambda s: any(d["name"] == "mantad-register" and d["state"] == "up"
                                   and d["pid"] != pid for d in s["daemons"]), 30,
                     "mantad-register restarted")
    assert len(outbox_rows(node)) == 5

    m2 = managers(port)
    m2.wait_call("RegisterNode", timeout=nodelib.deadline(30))
    nodelib.wait_for(lambda: len(log_calls(m2)) >= 5, 30, "5 AddTaskLogs calls")
    texts = [decode_logs(r.requests[0].content)["text"] for r in log_calls(m2)]
    assert texts == ["line %d\n" % i for i in range(5)], texts
    # Sent after the registration, never before.
    reg = m2.calls("RegisterNode")[0]
    assert all(r.time >= reg.time for r in log_calls(m2))
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")


def test_manager_refuses_then_accepts(manager, node):
    """A manager that fails AddTaskLogs (not unavailable: it answers) gets
    the frame again later; nothing is lost or duplicated."""
    import grpc
    node.wait_online()
    manager.fail["AddTaskLogs"] = grpc.StatusCode.INTERNAL
    assert send(node, task_logs("retry", b"again")).code == 0
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(15), accepted_only=False)
    del manager.fail["AddTaskLogs"]
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(20))
    assert len(log_calls(manager)) == 1
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")


def test_outbox_bounded(manager, managers, node):
    """64 MiB of logs wait at most; beyond that TaskLogs is refused (exec
    keeps its copy) and the daemon stays up."""
    node.wait_online()
    manager.stop()
    node.wait_status(lambda s: s["manager"]["registered"] is False, 30,
                     "registered false after the manager went away")
    big = b"\0" * 52 + os.urandom(30 << 20)     # header of zero ids is not checked here
    big = nodelib.log_frame(SWARM, ZERO, TASK, 1, 2, b"")[:52] + big[52:]
    assert send(node, task_logs("big-1", b"", content=big), timeout=30).code == 0
    assert send(node, task_logs("big-2", b"", content=big), timeout=30).code == 0
    rep = send(node, task_logs("big-3", b"", content=big), timeout=30)
    assert rep.code != 0 and "full" in rep.error, rep
    assert len(outbox_rows(node)) == 2
    st = node.wait_status(lambda s: True, 10)
    assert node.daemon("mantad-register", st)["restarts"] == 0


def hold_db_when(manager, node, text):
    """When the manager takes the frame whose text is `text`, this takes
    register.db's write lock before the manager answers OK (a busy
    database, as while the IPC thread commits a new frame): register has
    the answer and cannot record it in register.db. release(held) ends it."""
    path = os.path.join(node.state_dir, "register.db")
    held = {}

    def on_end(d):
        if d["text"] == text and "db" not in held:
            db = sqlite3.connect(path, timeout=10, isolation_level=None,
                                 check_same_thread=False)
            db.execute("BEGIN IMMEDIATE")
            held["db"] = db
    manager.on_task_end = on_end
    return held


def release(manager, held):
    manager.on_task_end = None
    if "db" in held:
        held["db"].execute("ROLLBACK")
        held["db"].close()


def gone(pid):
    """The process ended (a zombie not yet reaped counts as ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def texts_now(manager):
    return [decode_logs(r.requests[0].content)["text"] for r in log_calls(manager)]


def send_marker(manager, node):
    """A last frame; once the manager has it, everything before it went out."""
    assert send(node, task_logs("marker", b"marker\n")).code == 0
    manager.wait_call("AddTaskLogs", timeout=nodelib.deadline(30),
                      pred=lambda r: decode_logs(r.requests[0].content)["text"]
                      == "marker\n")


def test_answered_frame_not_sent_again_after_kill(manager, node):
    """Issue 15: mantad-register killed after the manager answered OK and
    before register.db recorded it: the answer was noted first
    (register.ack), so the restarted daemon does not upload the frame again
    (a manager reads each AddTaskLogs as the end of a run)."""
    node.wait_online()
    held = hold_db_when(manager, node, "answered\n")
    try:
        assert send(node, task_logs("answered", b"answered\n")).code == 0
        nodelib.wait_log(node, r"logs sent to the manager \(\d+ bytes, answered\)", 20)
        pid = node.pids()["mantad-register"]
        os.kill(pid, signal.SIGKILL)
        nodelib.wait_for(lambda: gone(pid), 10, "mantad-register killed")
    finally:
        release(manager, held)
    node.wait_status(lambda s: any(d["name"] == "mantad-register" and d["state"] == "up"
                                   and d["pid"] != pid for d in s["daemons"]), 30,
                     "mantad-register restarted")
    node.wait_online(30)
    send_marker(manager, node)
    assert texts_now(manager) == ["answered\n", "marker\n"]
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")


def test_answered_frame_not_sent_again_when_db_busy(manager, node):
    """Issue 15: register.db too busy to record the manager's OK (the busy
    timeout ran out): the row is marked sent later, not uploaded again."""
    node.wait_online()
    held = hold_db_when(manager, node, "busy\n")
    try:
        assert send(node, task_logs("busy", b"busy\n")).code == 0
        nodelib.wait_log(node, r"mantad-register: warning: sqlite: database is locked", 30)
    finally:
        release(manager, held)
    send_marker(manager, node)
    assert texts_now(manager) == ["busy\n", "marker\n"]
    nodelib.wait_for(lambda: outbox_rows(node) == [], 10, "outbox empty")
    assert node.daemon("mantad-register", node.wait_online())["restarts"] == 0
