"""mantactl top (issue 14): the node's resource history from res.db, one
row per interval with CPU, memory and the tasks that ran; printed once
when stdout is not a terminal (or with --once). It still shows the history
of a stopped node, and refuses a bad --minutes."""

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")


def top(config, *args):
    return nodelib.mantactl("top", "-c", config, *args, timeout=20)


def test_top_history_and_tasks(manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    r = top(node.config, "--minutes", "1")
    assert r.returncode == 0, r.stderr

    task = "d1" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(task, "#!/bin/sh\nsleep 3\n"))
    nodelib.wait_task_status(manager, task, tasks_pb.COMPLETED)

    def shown():
        r = top(node.config, "--minutes", "1")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("node node: ") and "samples in the last 1 min" in lines[0]
        assert lines[1].split() == ["TIME", "CPU%", "MEM%", "MEM_USED", "TASKS"]
        data = [l.split() for l in lines[2:]]
        assert len(data) == 30
        full = [d for d in data if d[1] != "-"]
        # 2 s per row and a sample a second: the rows since the start have figures.
        assert len(full) >= 3, r.stdout
        for d in full:
            assert 0 <= float(d[1]) <= 100 and 0 < float(d[3]) <= 100
            assert d[4].isdigit() and d[5] == "MiB"
        # The task ran about 3 s: a row counts it.
        return any(d[-1] == "1" for d in full) and r.stdout
    nodelib.wait_for(shown, 15, "the task in mantactl top")

    # --once: the same on a terminal; here stdout is a pipe either way.
    assert top(node.config, "--once").returncode == 0
    # Bad --minutes: usage, exit 2, nothing printed.
    for bad in ("0", "x", "99999"):
        r = top(node.config, "--minutes", bad)
        assert r.returncode == 2 and r.stdout == "" and "--minutes" in r.stderr

    # Stopped: the history is still there, the tasks column says why not.
    node.stop()
    r = top(node.config, "--minutes", "1")
    assert r.returncode == 0, r.stderr
    assert "tasks: the node is not running" in r.stdout.splitlines()[0]
    assert any(l.split()[1] != "-" for l in r.stdout.splitlines()[2:])


def test_top_no_history(manager, make_node):
    n = make_node(manager.grpc_port)
    r = top(n.config)
    assert r.returncode == 3 and r.stdout == "" and "no resource history" in r.stderr
