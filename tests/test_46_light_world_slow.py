"""mantad-light's World calls as a reference-built manager sees them
(issue 11): GetTaskResult's "all results" (size = -1) on the wire as the
reference writes it, and no fixed deadline on a call: a transfer over a
slow link (the dev manager's throttled relay) that takes well over the old
10 s per message arrives while bytes keep moving, and a manager that moves
nothing (a stalled handler, a link gone silent) fails the call UNAVAILABLE
after network.light_stall_timeout."""

import time

import grpc
import pytest
from google.protobuf.internal import encoder

import nodelib
from conftest import need_bins
from devmanager import Throttle

C = grpc.StatusCode
STALL = 8                       # network.light_stall_timeout in these tests


def L():
    from node import light_service_pb2
    return light_service_pb2


def R():
    from common import results_pb2
    return results_pb2


def ids(e):
    return dict(swarm_id=nodelib.pair(e.swarm), task_id=nodelib.pair(e.task))


def _dump(request, e):
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        print("---- light.log ----\n" + e.daemon.log()[-6000:])


@pytest.fixture
def env(request):
    need_bins("mantad-light")
    e = nodelib.LightEnv()
    yield e
    _dump(request, e)
    e.cleanup()


@pytest.fixture(params=["127.0.0.1"])
def slow(request):
    """A LightEnv whose manager is reached through a Throttle listening on
    the address of the parameter."""
    need_bins("mantad-light")
    thr = Throttle(0, host=request.param)
    e = nodelib.LightEnv(start=False, overrides={"network": {
        "manager_host": request.param, "manager_port": thr.port,
        "light_stall_timeout": STALL}})
    thr.target = ("127.0.0.1", e.manager.grpc_port)
    e.start()
    e.throttle = thr
    yield e
    _dump(request, e)
    thr.close()
    e.cleanup()


def test_result_query_size_on_the_wire(env):
    """size = -1 (the SDK's "all") goes out as field 6 = the 10-byte varint
    of 2^64 - 1, the rest of the message unchanged and in field order; a
    non-negative size is copied as it is."""
    c = env.client(token=env.token)
    m = env.manager
    c.call("World/AddTaskResult", iter([L().LightResult(tag="r", data=b"x", **ids(env))]))
    base = dict(swarm_id=nodelib.pair(env.swarm), task_id=nodelib.pair(env.task),
                node_id=nodelib.pair(env.node_id), iteration=7, tag="r")
    for size, method in [(-1, R().ALL), (-1, R().LAST), (3, R().ALL), (0, R().LAST),
                         (-2, R().ALL)]:
        t0 = time.monotonic()
        got = c.call("World/GetTaskResult", L().LightResultQuery(
            tag="r", size=size, method=method, **ids(env)))
        rec = m.wait_call("GetTaskResult", after=t0)
        raw = rec.extra["raw"]
        if size >= 0:
            want = R().ResultQuery(size=size, method=method, **base).SerializeToString()
        else:
            # What the reference's encoder writes: the int sign-extended
            # to 64 bits, as a uint64 varint (10 bytes).
            want = (R().ResultQuery(**base).SerializeToString() + b"\x30" +
                    encoder._VarintBytes(size & (1 << 64) - 1) +
                    R().ResultQuery(method=method).SerializeToString())
        assert raw == want, (size, method, raw.hex(), want.hex())
        if size == -1:
            assert raw.count(b"\x30" + b"\xff" * 9 + b"\x01") == 1
            # A uint32 reader that truncates sees 2^32 - 1: every result.
            assert rec.request.size == 0xffffffff
            assert [v.data for v in got] == [b"x"]


def test_slow_global_arrives(slow):
    """A 36 MB global down a 2.4 MB/s link: about 15 s for one message,
    more than the old 10 s bound and about twice network.light_stall_timeout,
    and it arrives because bytes keep moving. Then the same up to a
    manager that reads at that pace (SetGlobal)."""
    size = 36 << 20
    rate = 2400 * 1000
    data = bytes(range(256)) * (size // 256)
    c = slow.client(token=slow.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="big", data=data, **ids(slow))]),
           timeout=60)
    slow.throttle.down = rate
    t0 = time.monotonic()
    got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="big", **ids(slow)), timeout=120)
    took = time.monotonic() - t0
    assert b"".join(v.data for v in got) == data
    print("GetGlobal %d MiB at %.1f MB/s: %.1f s" % (size >> 20, rate / 1e6, took))
    assert took > 12, took              # the link really was slow
    slow.throttle.down = None
    slow.throttle.up = rate
    t0 = time.monotonic()
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="up", data=data, **ids(slow))]),
           timeout=120)
    took = time.monotonic() - t0
    print("SetGlobal %d MiB at %.1f MB/s: %.1f s" % (size >> 20, rate / 1e6, took))
    assert took > 12, took
    assert slow.manager.globals[(slow.swarm, "up")] == data


def test_stalled_manager(slow):
    """A manager that accepts the call and sends nothing: UNAVAILABLE after
    the stall bound, not a hang until the task's own deadline."""
    c = slow.client(token=slow.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="g", data=b"v", **ids(slow))]))
    slow.manager.stall["GetGlobal"] = 60
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        c.call("World/GetGlobal", L().GetGlobalRequest(tag="g", **ids(slow)), timeout=60)
    took = time.monotonic() - t0
    assert ei.value.code() == C.UNAVAILABLE, ei.value
    assert "light_stall_timeout" in ei.value.details()
    assert STALL - 0.5 < took < nodelib.deadline(STALL + 5), took
    # The manager saw the call end (cancelled), not left running.
    nodelib.wait_for(lambda: slow.manager.calls("GetGlobal"), 10, "GetGlobal handler done")


def test_link_goes_silent(slow):
    """A transfer that was moving and stops (nothing crosses the link any
    more, the connection stays open): UNAVAILABLE after the stall bound."""
    size = 24 << 20
    data = b"\x01" * size
    c = slow.client(token=slow.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="g", data=data, **ids(slow))]),
           timeout=60)
    slow.throttle.down = 2 << 20
    it = c.call("World/GetGlobal", L().GetGlobalRequest(tag="g", **ids(slow)), timeout=60,
                raw=True)
    nodelib.wait_for(lambda: slow.throttle.moved["down"] > 8 << 20 or None, 30,
                     "the global under way")
    slow.throttle.frozen = True
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        list(it)
    took = time.monotonic() - t0
    assert ei.value.code() == C.UNAVAILABLE, ei.value
    assert took < nodelib.deadline(STALL + 5), took


@pytest.mark.parametrize("slow", ["::1"], indirect=True)
def test_slow_global_ipv6(slow):
    """The same over IPv6, whose peer libgrpc names ipv6:[::1]:port (or
    %5B::1%5D): 12 MiB at 1 MB/s, longer than the stall bound."""
    size = 12 << 20
    data = b"\x02" * size
    c = slow.client(token=slow.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="v6", data=data, **ids(slow))]),
           timeout=60)
    slow.throttle.down = 1000 * 1000
    t0 = time.monotonic()
    got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="v6", **ids(slow)), timeout=120)
    took = time.monotonic() - t0
    assert b"".join(v.data for v in got) == data
    assert took > STALL + 2, took
