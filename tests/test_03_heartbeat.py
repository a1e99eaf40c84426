"""Heartbeats: SetSystemSummaryRequest on manager/set_system_summary every
mqtt.ping_interval seconds, QoS 0, not retained, with plausible figures."""

import os
import time

import nodelib
from devmanager import pair_to_hex


def meminfo(key):
    with open("/proc/meminfo") as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1]) * 1024
    raise KeyError(key)


def wait_heartbeats(manager, node_id, n, after, timeout):
    def enough():
        hb = [r for r in manager.heartbeats if r.time >= after and r.request is not None
              and pair_to_hex(r.request.node_id) == node_id]
        return hb if len(hb) >= n else None
    return nodelib.wait_for(enough, timeout, "%d heartbeats from %s" % (n, node_id))


def count_over(manager, node_id, window):
    """Heartbeats of node_id received during the next window seconds (a
    condition wait on a clock, not a sleep for something to happen)."""
    t0 = time.monotonic()
    end = t0 + window
    nodelib.wait_for(lambda: time.monotonic() >= end, window + 1, "window")
    return [r for r in manager.heartbeats if t0 <= r.time < end
            and r.request is not None and pair_to_hex(r.request.node_id) == node_id]


def test_heartbeat_rate_and_content(manager, node):
    st = node.wait_online()
    node_id = st["node_id"]
    wait_heartbeats(manager, node_id, 1, 0, 15)
    hb = count_over(manager, node_id, 6.0)
    # ping_interval 1: about 6 in 6 s; allow scheduling slack, not a flood.
    assert 4 <= len(hb) <= 8, "%d heartbeats in 6 s at ping_interval 1" % len(hb)

    undecodable = [r for r in manager.heartbeats if "decode_error" in r.extra]
    assert not undecodable, undecodable[0].extra
    for r in hb:
        assert r.extra["qos"] == 0 and not r.extra["retain"]
    m = hb[-1].request.metrics_snapshot
    assert m.cpu.count == os.cpu_count()
    assert 0 <= m.cpu.usage_percent <= 100
    assert len(m.cpu.per_cpu_percent) == os.cpu_count()
    for p in m.cpu.per_cpu_percent:
        assert 0 <= p <= 100
    assert 0 <= m.cpu.idle_percent <= 100
    total = meminfo("MemTotal")
    assert m.memory.total_bytes == total
    assert 0 < m.memory.available_bytes <= m.memory.total_bytes
    assert 0 < m.memory.used_bytes <= m.memory.total_bytes
    assert 0 <= m.memory.percent_used <= 100
    assert m.memory.swap_used_bytes <= m.memory.swap_total_bytes
    # A UTC timestamp of now.
    assert abs(m.timestamp.ToSeconds() - time.time()) < 60, m.timestamp


def test_heartbeat_follows_ping_interval(manager, make_node):
    n = make_node(manager.grpc_port, ping_interval=2).start()
    node_id = n.wait_online()["node_id"]
    wait_heartbeats(manager, node_id, 1, 0, 15)
    hb = count_over(manager, node_id, 8.0)
    assert 3 <= len(hb) <= 5, "%d heartbeats in 8 s at ping_interval 2" % len(hb)
