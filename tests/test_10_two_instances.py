"""Two instances side by side on one machine (own configs, aliases, run and
state dirs), one manager and broker: both register and heartbeat."""

import time

import nodelib
from devmanager import pair_to_hex


def test_two_instances(manager, make_node):
    a = make_node(manager.grpc_port, alias="node-one", name="one").start(wait=False)
    b = make_node(manager.grpc_port, alias="node-two", name="two").start(wait=False)
    ida, idb = nodelib.b3sum16(b"node-one"), nodelib.b3sum16(b"node-two")
    sa, sb = a.wait_ready(30), b.wait_ready(30)
    assert sa["node_id"] == ida and sb["node_id"] == idb
    assert sa["alias"] == "node-one" and sb["alias"] == "node-two"
    registered = {pair_to_hex(r.request.node_id) for r in manager.calls("RegisterNode")}
    assert {ida, idb} <= registered

    t0 = time.monotonic()

    def both():
        seen = {pair_to_hex(r.request.node_id) for r in manager.heartbeats
                if r.time > t0 and r.request is not None}
        return {ida, idb} <= seen
    nodelib.wait_for(both, 15, "heartbeats from both nodes")

    # Each status names its own daemons; none is shared.
    pa = {d["pid"] for d in sa["daemons"]}
    pb = {d["pid"] for d in sb["daemons"]}
    assert pa and pb and not (pa & pb)

    # Stopping one leaves the other online.
    a.stop()
    assert a.status()[0] == 3
    sb = b.wait_ready(10)
    assert {d["pid"] for d in sb["daemons"]} == pb
