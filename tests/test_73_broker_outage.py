"""Broker outage while tasks run (issue 6): the tasks go on; their
TaskUpdates wait in mantad-beat's outbox (beat.db), whose depth
`mantactl status --json` shows as mqtt.outbox; heartbeats (QoS 0) are not
queued; after the broker returns every update is delivered, in the order
the tasks ended, each exactly once, and the outbox is empty again."""

import time

import faultlib
import nodelib

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED = faultlib.RUNNING, faultlib.COMPLETED


def test_updates_survive_broker_outage(pbroker, pmanager, make_node, bbroot):
    runtime = faultlib.runc_or_skip(bbroot)
    manager = pmanager
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 6})
    ids = ["%032x" % (0x7300 + i) for i in range(6)]
    # They end one after the other while the broker is away (3 s and more
    # after they start).
    for i, t in enumerate(ids):
        manager.deploy_task(node.node_id, nodelib.task_msg(
            t, faultlib.counting_script(40 + 5 * i, pause="0.15")))
    for t in ids:
        nodelib.wait_task_status(manager, t, RUNNING)

    pbroker.stop()
    node.wait_status(lambda s: not s["mqtt"]["connected"], 20, "broker lost")
    waiting = [t for t in ids if COMPLETED not in faultlib.statuses(manager, t)]
    assert len(waiting) >= 3, "too few tasks still running at the outage"
    peak = [0]

    def all_queued(s):
        peak[0] = max(peak[0], s["mqtt"]["outbox"] or 0)
        return (s["tasks"]["completed"] == len(ids)
                and s["mqtt"]["outbox"] == len(waiting))
    st = node.wait_status(all_queued, 60, "every final update in the outbox")
    assert st["state"] == "offline" and st["manager"]["registered"], st
    # The heartbeats of the outage were not kept: only the updates wait.
    st = node.wait_status(lambda s: True, 5)
    assert st["mqtt"]["outbox"] == len(waiting), st["mqtt"]
    rc, tasks = nodelib.tasks_json(node.config)
    ended = [t["task_id"] for t in sorted(tasks, key=lambda t: t["finished_at"])]
    ended = [t for t in ended if t in waiting]

    t0 = time.monotonic()
    pbroker.start()
    node.wait_status(lambda s: s["mqtt"]["connected"] and s["mqtt"]["outbox"] == 0,
                     60, "outbox flushed after the broker came back")
    nodelib.wait_for(lambda: all(COMPLETED in faultlib.statuses(manager, t) for t in ids),
                     20, "every final update at the manager")
    for t in ids:
        assert faultlib.statuses(manager, t) == [RUNNING, COMPLETED], t
    replayed = [u[0] for u in nodelib.task_updates(manager)
                if u[3] == COMPLETED and u[0] in waiting]
    assert replayed == ended, (replayed, ended)
    # Logs went through the manager's gRPC side all along, whole.
    for i, t in enumerate(ids):
        nodelib.wait_for(lambda: faultlib.check_lines(
            nodelib.task_log_text(manager, t), 40 + 5 * i) == ([], []), 15,
            "whole output of %s" % t)
    print("outbox depth reached: %d updates; delivered %.1f s after the broker"
          " returned" % (peak[0], time.monotonic() - t0))
