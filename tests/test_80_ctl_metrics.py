"""mantactl metrics (issue 14): the node's figures in the Prometheus text
exposition format. A node runs tasks, then its output passes Debian's
`promtool check metrics` (skipped only where promtool is missing) and says
what happened: tasks by state, launch and heartbeat histograms, a daemon's
restart. Exit 3 when the node is not running."""

import os
import re
import signal
import subprocess

import pytest

import nodelib
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

PROMTOOL = "/usr/bin/promtool"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def metrics(config):
    r = nodelib.mantactl("metrics", "-c", config)
    assert r.returncode == 0, (r.returncode, r.stderr)
    return r.stdout


def parse(text):
    """{(name, labels text): value} and {name: type} of an exposition."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values, types


def test_metrics_not_running(manager, make_node):
    n = make_node(manager.grpc_port)
    r = nodelib.mantactl("metrics", "-c", n.config)
    assert r.returncode == 3 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "not running" in r.stderr


def test_metrics_after_work(manager, make_node, bbroot):
    runtime = nodelib.pick_runtime(bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime)
    ok, bad = "c1" * 16, "c2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(ok, "#!/bin/sh\necho hi\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(bad, "#!/bin/sh\nexit 4\n"))
    nodelib.wait_task_status(manager, ok, tasks_pb.COMPLETED)
    nodelib.wait_task_status(manager, bad, tasks_pb.FAILED)
    nodelib.wait_for(lambda: len(manager.heartbeats) >= 2, 15, "two heartbeats")

    def settled():
        v, _ = parse(metrics(node.config))
        return (v.get(("manta_node_tasks", '{state="completed"}')) == 1
                and v.get(("manta_node_heartbeats_total", "")) >= 1) and v
    v = nodelib.wait_for(settled, 15, "tasks and heartbeats in the metrics")
    text = metrics(node.config)
    v, types = parse(text)

    assert v[("manta_node_tasks", '{state="failed"}')] == 1
    assert v[("manta_node_tasks", '{state="running"}')] == 0
    assert types["manta_node_task_launch_duration_seconds"] == "histogram"
    assert v[("manta_node_task_launch_duration_seconds_count", "")] == 2
    assert v[("manta_node_task_launch_duration_seconds_bucket", '{le="+Inf"}')] == 2
    assert v[("manta_node_task_launch_duration_seconds_sum", "")] > 0
    assert types["manta_node_heartbeat_duration_seconds"] == "histogram"
    assert v[("manta_node_heartbeat_duration_seconds_count", "")] >= 1
    assert v[("manta_node_mqtt_connected", "")] == 1
    assert v[("manta_node_registered", "")] == 1
    assert any(k[0] == "manta_node_info" and 'node_id="%s"' % node.node_id in k[1]
               for k in v)
    for d in nodelib.DAEMONS:
        assert v[("manta_node_daemon_up", '{daemon="%s"}' % d)] == 1
        assert v[("manta_node_daemon_restarts_total", '{daemon="%s"}' % d)] == 0
        assert v[("manta_node_daemon_resident_memory_bytes", '{daemon="%s"}' % d)] > 0
    assert v[("manta_node_memory_total_bytes", "")] > 0
    assert 0 <= v[("manta_node_cpu_usage_ratio", "")] <= 1
    assert ("manta_node_outbox_messages", '{outbox="broker"}') in v
    # Counters end in _total; every family has a HELP line.
    for name, typ in types.items():
        assert name.startswith("manta_node_")
        assert (typ == "counter") == name.endswith("_total"), name
        assert "# HELP %s " % name in text

    # A daemon the supervisor restarts shows in its counter.
    res_pid = [d["pid"] for d in node.status()[1]["daemons"]
               if d["name"] == "mantad-res"][0]
    os.kill(res_pid, signal.SIGKILL)
    nodelib.wait_for(lambda: parse(metrics(node.config))[0].get(
        ("manta_node_daemon_restarts_total", '{daemon="mantad-res"}')) == 1,
        30, "mantad-res restart counted")

    if os.access(PROMTOOL, os.X_OK):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           universal_newlines=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, "promtool check metrics:\n%s\n%s" % (r.stdout, text)
    else:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
