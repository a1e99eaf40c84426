"""The development manager by itself: every Node method answers as WIRE.md
says, the JWT is checked, AddTaskLogs frames are decoded, globals and
results round-trip, MQTT heartbeats are recorded and commands published."""

import queue
import time

import grpc
import paho.mqtt.client as mqtt
import pytest

import nodelib
from devmanager import (METHODS, SERVICE, decode_logs, encode_logs,
                        hex_to_pair, pair_to_hex)
from common import informations_pb2 as info_pb
from common import results_pb2 as results_pb
from common import system_pb2 as system_pb
from common import tasks_pb2 as tasks_pb

NODE = "0123456789abcdef0123456789abcdef"
SWARM = "000000000000000000000000000000aa"
TASK = "000000000000000000000000000000bb"


@pytest.fixture
def channel(manager):
    ch = grpc.insecure_channel(manager.address)
    try:
        yield ch
    finally:
        ch.close()


def call(channel, method, req, token=nodelib.TOKEN):
    kind, req_cls, resp_cls = METHODS[method]
    path = "/%s/%s" % (SERVICE, method)
    args = dict(request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString)
    md = [("authorization", token)] if token is not None else None
    if kind == "uu":
        return channel.unary_unary(path, **args)(req, metadata=md, timeout=5)
    if kind == "us":
        return list(channel.unary_stream(path, **args)(req, metadata=md, timeout=5))
    return channel.stream_unary(path, **args)(iter(req), metadata=md, timeout=5)


def test_ids():
    p = hex_to_pair(NODE)
    assert p.head == 0x0123456789abcdef and p.tail == 0x0123456789abcdef
    assert pair_to_hex(system_pb.PairId(head=0, tail=0xdeadbeef)) == "0" * 24 + "deadbeef"
    assert nodelib.id_from_string("deadbeef") == "0" * 24 + "deadbeef"
    # b3sum of the empty input, 16 bytes: the BLAKE3 test vector's prefix.
    assert nodelib.b3sum16(b"") == "af1349b9f5f9a1a6a0404dea36dcc949"
    assert nodelib.id_from_string("node-a") == nodelib.b3sum16(b"node-a")


def test_log_framing():
    frame = encode_logs(SWARM, NODE, TASK, 3, 1, b"hello\nworld\n")
    assert len(frame) > 52
    d = decode_logs(frame)
    assert (d["swarm_id"], d["node_id"], d["task_id"]) == (SWARM, NODE, TASK)
    assert (d["iteration"], d["circular"], d["text"]) == (3, 1, "hello\nworld\n")
    with pytest.raises(ValueError):
        decode_logs(frame[:51])
    with pytest.raises(ValueError):
        decode_logs(frame[:52] + b"not zlib")


def test_register_and_auth(manager, channel):
    reg = call(channel, "RegisterNode", info_pb.NodeOverview(
        node_id=hex_to_pair(NODE), platform_info=info_pb.PlatformInfo(system="Linux")))
    assert reg.mqtt_broker_host == "127.0.0.1"
    assert reg.mqtt_broker_port == manager.broker_port
    assert list(reg.mqtt_topics) == ["node/%s/+" % NODE]
    r = manager.wait_call("RegisterNode", timeout=2)
    assert r.authorization == nodelib.TOKEN
    assert pair_to_hex(r.request.node_id) == NODE

    for token in (None, "wrong.token.x", "Bearer " + nodelib.TOKEN):
        with pytest.raises(grpc.RpcError) as e:
            call(channel, "IsAvailable", system_pb.Empty(), token=token)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    rejected = [x for x in manager.calls("IsAvailable") if x.rejected]
    assert len(rejected) == 3
    assert manager.calls("IsAvailable", accepted_only=True) == []


def test_every_unary_method(manager, channel):
    reqs = {
        "IsAvailable": system_pb.Empty(),
        "Ping": info_pb.Ping(node_id=hex_to_pair(NODE), cpu_percentage=1.5),
        "SetNodeStatus": info_pb.NodeStatus(node_id=hex_to_pair(NODE),
                                            status=info_pb.CONNECTED),
        "SetSystemSummary": info_pb.SetSystemSummaryRequest(node_id=hex_to_pair(NODE)),
        "SetOverviews": info_pb.DatasetOverviews(node_id=hex_to_pair(NODE)),
        "SendError": system_pb.Error(node_id=hex_to_pair(NODE), error_id=9,
                                     content="bad payload"),
        "StopSwarm": tasks_pb.TaskUpdate(swarm_id=hex_to_pair(SWARM)),
        "ScheduleTask": tasks_pb.TaskScheduling(task_to_schedule_alias="t"),
        "UpdateTask": tasks_pb.TaskUpdate(task_status=tasks_pb.RUNNING),
    }
    for m, req in reqs.items():
        assert METHODS[m][0] == "uu"
        assert isinstance(call(channel, m, req), METHODS[m][2])
        got = manager.wait_call(m, timeout=2)
        assert got.request == req
        assert got.authorization == nodelib.TOKEN
    assert manager.wait_call("SendError", timeout=1).request.content == "bad payload"


def test_streams(manager, channel):
    # Globals: chunks are concatenated; GetGlobal streams the stored value.
    call(channel, "SetGlobal", [
        results_pb.GlobalUpdate(swarm_id=hex_to_pair(SWARM), tag="w", data=b"ab"),
        results_pb.GlobalUpdate(swarm_id=hex_to_pair(SWARM), tag="w", data=b"cd")])
    vals = call(channel, "GetGlobal",
                results_pb.GlobalTag(swarm_id=hex_to_pair(SWARM), tag="w"))
    assert b"".join(v.data for v in vals) == b"abcd"
    with pytest.raises(grpc.RpcError) as e:
        call(channel, "GetGlobal", results_pb.GlobalTag(swarm_id=hex_to_pair(SWARM),
                                                        tag="missing"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    # Results.
    for data in (b"r1", b"r2"):
        call(channel, "AddTaskResult", [results_pb.Result(
            swarm_id=hex_to_pair(SWARM), task_id=hex_to_pair(TASK),
            node_id=hex_to_pair(NODE), tag="acc", data=data)])
    q = results_pb.ResultQuery(swarm_id=hex_to_pair(SWARM), task_id=hex_to_pair(TASK),
                               tag="acc", method=results_pb.ALL)
    assert [c.data for c in call(channel, "GetTaskResult", q)] == [b"r1", b"r2"]
    q.method = results_pb.LAST
    got = call(channel, "GetTaskResult", q)
    assert [c.data for c in got] == [b"r2"]
    assert pair_to_hex(got[0].node_id) == NODE

    # Logs, cut in two messages.
    frame = encode_logs(SWARM, NODE, TASK, 2, 0, b"line one\nline two\n")
    call(channel, "AddTaskLogs", [system_pb.Logs(content=frame[:30]),
                                  system_pb.Logs(content=frame[30:])])
    rec = manager.wait_call("AddTaskLogs", timeout=2)
    assert rec.extra["log"]["text"] == "line one\nline two\n"
    assert manager.logs[-1]["task_id"] == TASK and manager.logs[-1]["iteration"] == 2
    with pytest.raises(grpc.RpcError) as e:
        call(channel, "AddTaskLogs", [system_pb.Logs(content=b"short")])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cancelled_or_empty_stream_is_not_accepted(manager, channel):
    """A client stream that carried nothing is no call the manager acted
    on: a test that asks for accepted calls must not find it. (A Light
    proxy cancels a stream it refuses halfway, and grpc may end such a
    stream for the handler as if it had carried no message: test_41 found
    that record among the accepted SetGlobals.)"""
    with pytest.raises(grpc.RpcError) as e:
        call(channel, "SetGlobal", [])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rec = manager.wait_call("SetGlobal", timeout=5, accepted_only=False)
    assert rec.rejected and rec.request is None
    assert manager.calls("SetGlobal", accepted_only=True) == []


def test_fail_switch(manager, channel):
    manager.fail["IsAvailable"] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as e:
        call(channel, "IsAvailable", system_pb.Empty())
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    del manager.fail["IsAvailable"]
    call(channel, "IsAvailable", system_pb.Empty())


def test_mqtt(manager, broker):
    got = queue.Queue()
    c = mqtt.Client(client_id=NODE, clean_session=True)
    c.on_message = lambda cl, u, msg: got.put((msg.topic, msg.payload))
    c.on_connect = lambda cl, u, f, rc: cl.subscribe("node/%s/+" % NODE, qos=0)
    c.connect(broker.host, broker.port, 60)
    c.loop_start()
    try:
        nodelib.wait_for(c.is_connected, 5, "test client connected")
        # Heartbeats from the "node" reach the manager decoded.
        hb = info_pb.SetSystemSummaryRequest(node_id=hex_to_pair(NODE))
        hb.metrics_snapshot.cpu.count = 4
        t0 = time.monotonic()
        c.publish("manager/set_system_summary", hb.SerializeToString(), qos=0)
        r = manager.wait_message("manager/set_system_summary", timeout=5, after=t0)
        assert r.request.metrics_snapshot.cpu.count == 4
        assert pair_to_hex(r.request.node_id) == NODE
        c.publish("manager/update_task_status", b"\xff\xff garbage", qos=0)
        r = manager.wait_message("manager/update_task_status", timeout=5)
        assert "decode_error" in r.extra

        # Commands reach the node's topics (subscription may lag: retry).
        def commanded():
            manager.collect_information(NODE, "set_node_status")
            try:
                return got.get(timeout=0.5)
            except queue.Empty:
                return None
        topic, payload = nodelib.wait_for(commanded, 10, "command delivered")
        assert topic == "node/%s/collect_information" % NODE
        assert payload == b"set_node_status"
        env = system_pb.EnvId(swarm_id=hex_to_pair(SWARM), task_id=hex_to_pair(TASK))
        manager.stop_task(NODE, env)
        manager.stop_swarm(NODE, SWARM)
        manager.deploy_task(NODE, tasks_pb.MqttTask(swarm_id=hex_to_pair(SWARM),
                                               image="busybox"))
        manager.raw("node/%s/whatever" % NODE, b"\x00\x01")
        seen = [got.get(timeout=5) for _ in range(4)]
        assert [t.rsplit("/", 1)[1] for t, _ in seen] == [
            "stop_task", "stop_swarm", "deploy_task", "whatever"]
        assert system_pb.EnvId.FromString(seen[0][1]) == env
        assert system_pb.PairId.FromString(seen[1][1]) == hex_to_pair(SWARM)
        assert tasks_pb.MqttTask.FromString(seen[2][1]).image == "busybox"
    finally:
        c.loop_stop()
        c.disconnect()


def test_mqtt_reconnects_after_broker_restart(manager, broker):
    broker.restart()
    manager.wait_mqtt(15)
