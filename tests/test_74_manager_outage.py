"""Manager outage while tasks run (issue 6): the manager's gRPC side goes
away; the running tasks are never stopped and end normally (their updates
still go over MQTT), a deploy still runs; their logs wait in
mantad-register's outbox (register.db), whose depth `mantactl status
--json` shows as manager.outbox, as do the errors to report. When the
manager returns the node registers again with the same id, and every log
chunk arrives, in order, exactly once; so does the SendError."""

import time

import faultlib
import nodelib
from devmanager import pair_to_hex

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED = faultlib.RUNNING, faultlib.COMPLETED, faultlib.FAILED


def test_logs_survive_manager_outage(restartable_manager, make_node, bbroot):
    runtime = faultlib.runc_or_skip(bbroot)
    manager = restartable_manager
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 4})
    ids = ["%032x" % (0x7400 + i) for i in range(3)]
    lines = [40, 50, 60]
    for t, n in zip(ids, lines):
        manager.deploy_task(node.node_id, nodelib.task_msg(
            t, faultlib.counting_script(n, pause="0.1")))
    for t in ids:
        nodelib.wait_task_status(manager, t, RUNNING)
    registers = len(manager.calls("RegisterNode"))

    manager.stop_grpc()
    node.wait_status(lambda s: not s["manager"]["registered"], 30,
                     "the manager seen gone")
    # A deploy during the outage still runs (MQTT is up); a refused one's
    # SendError waits.
    late, bad = "74" * 16, "75" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(
        late, faultlib.counting_script(20, pause="0.05")))
    manager.deploy_task(node.node_id, nodelib.task_msg(bad, "#!/bin/sh\ntrue\n",
                                                       image="no-such-image"))
    nodelib.wait_task_status(manager, bad, FAILED)
    peak = [0]

    def all_done(s):
        peak[0] = max(peak[0], s["manager"]["outbox"] or 0)
        return s["tasks"]["completed"] == len(ids) + 1 and s["tasks"]["running"] == 0
    node.wait_status(all_done, 60, "every task done during the outage")
    for t in ids + [late]:
        assert faultlib.statuses(manager, t) == [RUNNING, COMPLETED], t
    st = node.wait_status(lambda s: True, 5)
    assert st["manager"]["outbox"] > 0 and st["state"] in ("registering", "offline"), st
    peak[0] = max(peak[0], st["manager"]["outbox"])
    logs_before = len(manager.logs)

    t0 = time.monotonic()
    manager.start_grpc()
    r = manager.wait_call("RegisterNode", timeout=nodelib.deadline(30), after=t0)
    assert pair_to_hex(r.request.node_id) == node.node_id
    assert len(manager.calls("RegisterNode")) == registers + 1
    node.wait_status(lambda s: s["state"] == "online" and s["manager"]["outbox"] == 0,
                     60, "log outbox flushed")
    for t, n in zip(ids + [late], lines + [20]):
        text = nodelib.task_log_text(manager, t)
        assert faultlib.check_lines(text, n) == ([], []), (t, text)
        assert text == "".join("line %d\n" % i for i in range(n)), t
    err = manager.wait_call("SendError", timeout=nodelib.deadline(15), after=t0,
                            pred=lambda c: pair_to_hex(c.request.task_id) == bad)
    assert "no-such-image" in err.request.content
    assert len([c for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) == bad]) == 1
    st = node.wait_ready()
    assert all(d["restarts"] == 0 for d in st["daemons"]), st["daemons"]
    print("log outbox depth reached: %d messages; %d frames delivered after the"
          " manager returned" % (peak[0], len(manager.logs) - logs_before))
