"""`online` means a command published now reaches the node: the broker has
acknowledged every subscription (SUBACK), not only the connection (CONNACK).

Found by CI (test_81): a deploy published right after the node's status
said online was never received; the node had connected, but its
SUBSCRIBE had not been processed by the broker yet, and a fresh
persistent session holds only messages of topics it is subscribed to."""

import time

from devmanager import Throttle
import nodelib


def test_online_only_once_subscribed(manager, broker, make_node):
    # Between the node and the broker, a relay that lets the CONNACK (4
    # bytes) through and holds back everything after it: the SUBACKs.
    relay = Throttle(broker.port, hold_down_after=4)
    try:
        manager.reg_broker_port = relay.port
        n = make_node(manager.grpc_port)
        n.start()
        nodelib.wait_for(lambda: "connected to 127.0.0.1:%d" % relay.port in n.log(),
                         30, "mantad-beat connected through the relay")
        # Connected, subscriptions not acknowledged: not online. Heartbeats
        # (node -> broker) still go up meanwhile.
        hb = len(manager.heartbeats)
        nodelib.wait_for(lambda: len(manager.heartbeats) >= hb + 2, 15,
                         "two heartbeats through the relay")
        rc, st = n.status()
        assert rc == 0 and st["state"] == "offline", st
        relay.release()
        node_id = n.wait_online(15)["node_id"]
        # Online: a command published now, once, is received and acted on.
        t0 = time.monotonic()
        manager.collect_information(node_id, "set_node_status")
        manager.wait_call("SetNodeStatus", timeout=15, after=t0)
    finally:
        relay.close()
