"""mantad-register's two threads and its database (issue 15, finding 3):
the main thread stores task logs and the drain flag while the link thread
sends the logs to the manager. Each thread has its own SQLite connection:
libcommon/db.c logs "one connection used by two threads" otherwise (SQLite
is not instrumented and its global mutexes order every call, so
ThreadSanitizer alone cannot see it). Every log arrives once, and the last
drain state holds."""

import os
import sqlite3
import threading

import nodelib
from devmanager import decode_logs, hex_to_pair

import ipc_pb2  # noqa: E402  (build/py, put on sys.path by nodelib)

SWARM = "00000000000000000000000000005a5a"
TASK = "0123456789abcdef0123456789abcdef"
ZERO = "0" * 32
N = 60


def task_logs(key, raw):
    tl = ipc_pb2.TaskLogs(swarm_id=hex_to_pair(SWARM), task_id=hex_to_pair(TASK),
                          iteration=1, circular=0, key=key)
    tl.content = nodelib.log_frame(SWARM, ZERO, TASK, 1, 0, raw)
    return ipc_pb2.Msg(task_logs=tl)


def call(node, msg):
    rep = nodelib.ipc_call(node.run_dir, "register", msg, timeout=20)
    assert rep.WhichOneof("body") == "reply", rep
    assert rep.reply.code == 0, rep.reply
    return rep.reply


def test_logs_and_drain_from_both_threads(manager, node):
    node.wait_online()
    errors = []

    def drains():
        # The main thread writes the drain flag while the link thread is
        # busy with the outbox.
        try:
            for i in range(2 * N):
                call(node, ipc_pb2.Msg(drain=ipc_pb2.DrainRequest(undrain=i % 2 == 1)))
        except Exception as e:      # reported below, in the test's thread
            errors.append(e)
    t = threading.Thread(target=drains)
    t.start()
    try:
        for i in range(N):
            call(node, task_logs("race-%d" % i, b"line %d\n" % i))
    finally:
        t.join(nodelib.deadline(60))
    assert not errors, errors
    assert not t.is_alive()

    def delivered():
        got = set()
        for c in manager.calls("AddTaskLogs", accepted_only=True):
            for lg in c.requests:
                got.add(decode_logs(lg.content)["text"])
        return got
    want = {"line %d\n" % i for i in range(N)}
    nodelib.wait_for(lambda: want <= delivered(), 30, "every log delivered")
    sent = [decode_logs(lg.content)["text"]
            for c in manager.calls("AddTaskLogs", accepted_only=True) for lg in c.requests]
    assert sorted(sent) == sorted(want), "a log sent twice or a stray one"
    # The last request was an undrain: that is what register.db keeps.
    db = sqlite3.connect(os.path.join(node.state_dir, "register.db"), timeout=5)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'draining'").fetchone()
    finally:
        db.close()
    assert row == ("0",), row
    # libcommon/db.c logs a connection that a second thread uses.
    assert "used by two threads" not in node.log(), node.log_tail()
