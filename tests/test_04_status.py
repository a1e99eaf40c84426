"""`mantactl status --json`: exactly the INTERFACE.md keys plus the
documented additive ones (mantactl(8): "refusing", "waiting", and "outbox" in
"manager" and "mqtt", issue 6; "security" and each daemon's "uid", issue 13),
consistent with the processes and the
machine; "online" once registered and connected; exit 3 when the node is
not running."""

import os

import nodelib

TOP = {"node_id", "alias", "state", "manager", "mqtt", "daemons", "tasks", "resources",
       "refusing", "waiting", "security"}
SECURITY = {"seccomp", "allow_root_daemons", "root_daemons"}
MANAGER = {"host", "port", "registered", "outbox"}
MQTT = {"broker", "connected", "outbox", "commands_waiting"}
DAEMON = {"name", "pid", "state", "restarts", "uptime_s", "uid"}
TASKS = {"queued", "pending", "running", "completed", "failed", "stopped"}
RESOURCES = {"cpu_count", "mem_total_bytes", "mem_available_bytes", "gpus"}
STATES = {"starting", "registering", "online", "offline", "draining", "drained",
          "stopping"}


def test_status_not_running_before_start(make_node):
    n = make_node(nodelib.free_port())
    rc, st = n.status()
    assert rc == 3, "status of a never started node: exit %r %r" % (rc, n.last_status)


def test_status_keys(manager, broker, node):
    st = node.wait_status(lambda s: s["resources"]["mem_total_bytes"] > 0, 15,
                          "resources in status")
    assert set(st) == TOP, "top-level keys: %s" % sorted(set(st) ^ TOP)
    assert set(st["manager"]) == MANAGER, sorted(st["manager"])
    assert set(st["mqtt"]) == MQTT, sorted(st["mqtt"])
    assert set(st["tasks"]) == TASKS, sorted(st["tasks"])
    assert set(st["resources"]) == RESOURCES, sorted(st["resources"])
    assert set(st["security"]) == SECURITY, sorted(st["security"])
    assert st["security"]["seccomp"] == "kill"
    assert st["daemons"], "no daemons listed"
    for d in st["daemons"]:
        assert set(d) == DAEMON, sorted(d)

    assert nodelib.node_hex_ok(st["node_id"])
    assert st["state"] == "online" and st["state"] in STATES
    assert st["manager"] == {"host": "127.0.0.1", "port": manager.grpc_port,
                             "registered": True, "outbox": 0}
    assert st["mqtt"] == {"broker": "127.0.0.1:%d" % broker.port, "connected": True,
                          "outbox": 0, "commands_waiting": 0}
    assert st["refusing"] is None
    for k in TASKS:
        assert st["tasks"][k] == 0, st["tasks"]

    r = st["resources"]
    assert r["cpu_count"] == os.cpu_count()
    with open("/proc/meminfo") as f:
        total = int(next(l for l in f if l.startswith("MemTotal:")).split()[1]) * 1024
    assert r["mem_total_bytes"] == total
    assert 0 < r["mem_available_bytes"] <= total
    assert isinstance(r["gpus"], list)

    # daemons[] agrees with the processes of this instance.
    procs = node.pids()
    names = {d["name"] for d in st["daemons"]}
    for name in nodelib.DAEMONS:
        assert name in names, "%s missing from daemons: %s" % (name, sorted(names))
    for d in st["daemons"]:
        if d["name"] not in nodelib.DAEMONS:
            continue
        assert d["state"] == "up", d
        assert d["restarts"] == 0, d
        assert isinstance(d["uptime_s"], int) and d["uptime_s"] >= 0, d
        assert procs.get(d["name"]) == d["pid"], "status pid %r, /proc says %r" % (
            d["pid"], procs)


def test_status_alias(manager, make_node):
    n = make_node(manager.grpc_port, alias="status-alias").start()
    st = n.wait_online()
    assert st["alias"] == "status-alias"
    assert st["node_id"] == nodelib.b3sum16(b"status-alias")


def test_status_after_stop(node):
    r = node.stop()
    assert r.returncode == 0, "mantactl stop: %d %s" % (r.returncode, r.stderr)
    assert node.proc.wait(5) == 0, "supervisor exit status after stop"
    rc, st = node.status()
    assert rc == 3, "status after stop: exit %r %r" % (rc, node.last_status)
    assert not node.processes()
