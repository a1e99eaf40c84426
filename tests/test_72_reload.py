"""SIGHUP reloads the configuration (issue 6): the supervisor parses the
whole file first and, on any error, logs FILE:LINE: KEY and changes
nothing; else it hands SIGHUP to every daemon, which parses it again and
applies what it can while running (log level everywhere,
mqtt.ping_interval in mantad-beat, resources.monitor_interval in
mantad-res, tasks.max_concurrent and task_timeout in mantad-exec), keeping
its old configuration on error. No daemon restarts, the node stays online."""

import os
import re
import signal
import time

import pytest

import faultlib
import nodelib
from devmanager import pair_to_hex


def beat_gaps(manager, node_id, after):
    """Seconds between consecutive heartbeats of node_id received after `after`."""
    ts = [r.time for r in manager.heartbeats if r.time > after
          and r.request is not None and pair_to_hex(r.request.node_id) == node_id]
    return [b - a for a, b in zip(ts, ts[1:])]


def log_since(node, mark):
    return node.log()[mark:]


def test_hup_reload_and_bad_file(manager, node):
    st = node.wait_ready()
    node_id = st["node_id"]
    pids = {d["name"]: d["pid"] for d in st["daemons"]}
    t0 = time.monotonic()
    nodelib.wait_for(lambda: len(beat_gaps(manager, node_id, t0)) >= 3, 15,
                     "heartbeats every second")
    assert max(beat_gaps(manager, node_id, t0)) < 2.0

    # A good file: heartbeat every 3 s, debug logs.
    node.sections["mqtt"]["ping_interval"] = 3
    node.sections["logging"]["level"] = "DEBUG"
    node.sections["resources"]["monitor_interval"] = 2
    node.write_config()
    mark = len(node.log())
    os.kill(node.supervisor_pid, signal.SIGHUP)
    nodelib.wait_for(lambda: "daemons told to reload" in log_since(node, mark), 10,
                     "the supervisor's reload line")
    for prog, what in (("mantad-beat", "heartbeat every 3 s"),
                       ("mantad-res", "sampling every 2 s"),
                       ("mantad-register", "SIGHUP: log level DEBUG"),
                       ("mantad-exec", "configuration reloaded")):
        if prog not in pids:
            continue
        nodelib.wait_for(lambda: re.search(r"%s: info: .*%s" % (prog, re.escape(what)),
                                           log_since(node, mark)), 10,
                         "%s reloaded (%s)" % (prog, what))
    nodelib.wait_for(lambda: "mantad-beat: debug:" in log_since(node, mark), 15,
                     "debug lines from mantad-beat")
    t1 = time.monotonic()
    nodelib.wait_for(lambda: len(beat_gaps(manager, node_id, t1 + 0.5)) >= 2, 20,
                     "heartbeats after the reload")
    gaps = beat_gaps(manager, node_id, t1 + 0.5)
    assert min(gaps) > 2.5, gaps

    # A broken file: the supervisor names file, line and key; nothing changes.
    good = open(node.config).read()
    bad = good.replace("ping_interval = 3", "ping_interval = 0")
    assert bad != good
    node.write_config(bad)
    mark = len(node.log())
    os.kill(node.supervisor_pid, signal.SIGHUP)
    line = nodelib.wait_for(
        lambda: re.search(r"SIGHUP: bad config: (\S+):(\d+): mqtt\.ping_interval",
                          log_since(node, mark)), 10, "the bad config named")
    assert line.group(1) == node.config
    assert good.splitlines()[int(line.group(2)) - 1].startswith("ping_interval")
    # Straight to mantad-beat too (as s6 would): it keeps its config.
    os.kill(pids["mantad-beat"], signal.SIGHUP)
    nodelib.wait_for(lambda: re.search(r"mantad-beat: warning: SIGHUP: bad config: .*"
                                       r"mqtt\.ping_interval.*keeping",
                                       log_since(node, mark)), 10,
                     "mantad-beat keeps its config")
    t2 = time.monotonic()
    nodelib.wait_for(lambda: len(beat_gaps(manager, node_id, t2)) >= 2, 20,
                     "heartbeats after the bad reload")
    assert min(beat_gaps(manager, node_id, t2)) > 2.5
    assert "daemons told to reload" not in log_since(node, mark)
    assert node.processes() and node.proc.poll() is None
    node.write_config(good)     # mantactl status itself needs a good file
    st = node.wait_ready()
    assert {d["name"]: d["pid"] for d in st["daemons"]} == pids, "a daemon restarted"
    assert all(d["restarts"] == 0 for d in st["daemons"])
    assert "mantad-beat: debug:" in node.log()[-20000:]


def test_hup_max_concurrent(manager, make_node, bbroot):
    if not os.access(os.path.join(nodelib.BIN, "mantad-exec"), os.X_OK):
        pytest.skip("bin/mantad-exec not built")
    runtime = faultlib.runc_or_skip(bbroot)
    node = nodelib.exec_node(manager, make_node, bbroot, runtime,
                             tasks={"max_concurrent": 3})
    node.sections["tasks"]["max_concurrent"] = 1
    node.write_config()
    mark = len(node.log())
    os.kill(node.supervisor_pid, signal.SIGHUP)
    nodelib.wait_for(lambda: "at most 1 tasks at once" in log_since(node, mark), 10,
                     "mantad-exec reloaded")
    ids = ["%032x" % (0x7200 + i) for i in range(3)]
    for t in ids:
        manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\nsleep 0.5\n"))
    nodelib.wait_for(lambda: all(faultlib.COMPLETED in faultlib.statuses(manager, t)
                                 for t in ids), 60, "3 tasks completed")
    running, peak = set(), 0
    for t, _i, _c, s in nodelib.task_updates(manager):
        if s == faultlib.RUNNING:
            running.add(t)
        elif s in faultlib.FINAL:
            running.discard(t)
        peak = max(peak, len(running))
    assert peak == 1, nodelib.task_updates(manager)
