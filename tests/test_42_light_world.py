"""mantad-light, World service from the host: each method proxied to the
development manager with the calling task's ids, the node id and iteration
filled in, the JWT as `authorization`; large messages streamed through with
the daemon's memory bounded; the manager's errors relayed; the manager down
or silent -> UNAVAILABLE within a deadline, not a hang."""

import socket
import threading
import time

import grpc
import pytest

import nodelib
from conftest import need_bins

C = grpc.StatusCode


@pytest.fixture
def env(request):
    need_bins("mantad-light")
    # "localhost": the manager's name goes through the resolver, under seccomp.
    e = nodelib.LightEnv(overrides={"network": {"manager_host": "localhost"}})
    yield e
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        print("---- light.log ----\n" + e.daemon.log()[-6000:])
    e.cleanup()


def L():
    from node import light_service_pb2
    return light_service_pb2


def ids(e):
    return dict(swarm_id=nodelib.pair(e.swarm), task_id=nodelib.pair(e.task))


def test_every_method(env):
    c = env.client(token=env.token)
    m = env.manager
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="g", data=b"hello", **ids(env))]))
    got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="g", **ids(env)))
    assert b"".join(v.data for v in got) == b"hello"
    c.call("World/AddTaskResult", iter([L().LightResult(tag="r", data=b"part1", **ids(env)),
                                         L().LightResult(tag="r", data=b"part2", **ids(env))]))
    got = c.call("World/GetTaskResult", L().LightResultQuery(tag="r", size=1, method=1, **ids(env)))
    assert [(nodelib.pair_hex(v.node_id), v.data) for v in got] == [(env.node_id, b"part1part2")]
    c.call("World/ScheduleTask", nodelib._pb("tasks.TaskScheduling")(
        task_to_schedule_alias="next", node_ids=[nodelib.pair(env.node_id)], **ids(env)))
    c.call("World/StopSwarm", nodelib._pb("system.EnvId")(**ids(env)))

    def one(method):
        recs = m.calls(method, accepted_only=True)
        assert len(recs) == 1, (method, recs)
        assert recs[0].authorization == nodelib.TOKEN
        return recs[0]
    sg = one("SetGlobal").requests
    assert [(nodelib.pair_hex(r.swarm_id), r.tag, r.data) for r in sg] == [(env.swarm, "g", b"hello")]
    gg = one("GetGlobal").request
    assert (nodelib.pair_hex(gg.swarm_id), gg.tag) == (env.swarm, "g")
    ar = one("AddTaskResult").requests
    assert len(ar) == 2
    for r in ar:
        assert (nodelib.pair_hex(r.swarm_id), nodelib.pair_hex(r.task_id),
                nodelib.pair_hex(r.node_id), r.iteration, r.tag) == \
            (env.swarm, env.task, env.node_id, 7, "r")
    gr = one("GetTaskResult").request
    assert (nodelib.pair_hex(gr.swarm_id), nodelib.pair_hex(gr.task_id),
            nodelib.pair_hex(gr.node_id), gr.iteration, gr.tag, gr.size, gr.method) == \
        (env.swarm, env.task, env.node_id, 7, "r", 1, 1)
    st = one("ScheduleTask").request
    assert (nodelib.pair_hex(st.swarm_id), nodelib.pair_hex(st.task_id),
            st.task_to_schedule_alias) == (env.swarm, env.task, "next")
    ss = one("StopSwarm").request
    assert (nodelib.pair_hex(ss.swarm_id), nodelib.pair_hex(ss.task_id),
            nodelib.pair_hex(ss.node_id), ss.iteration, ss.circular, ss.task_status) == \
        (env.swarm, env.task, env.node_id, 7, 1, 2)
    # A row is written when its call ends, which may be just after the reply
    # reached the task: wait for all of them.
    want = {"World/SetGlobal", "World/GetGlobal", "World/AddTaskResult", "World/StopSwarm"}

    def world_rows():
        rows = [r for r in nodelib.audit_rows(env.node.state_dir)
                if r["method"].startswith("World/")]
        return rows if {r["method"] for r in rows} >= want else None
    rows = nodelib.wait_for(world_rows, 5, "audit rows of every World call")
    assert {r["method"] for r in rows} >= want


def test_manager_errors_relayed(env):
    c = env.client()
    code = nodelib.grpc_code(lambda: c.call("World/GetGlobal",
                                            L().GetGlobalRequest(tag="missing", **ids(env))))
    assert code == C.NOT_FOUND
    env.manager.fail["StopSwarm"] = C.FAILED_PRECONDITION
    code = nodelib.grpc_code(lambda: c.call("World/StopSwarm",
                                            nodelib._pb("system.EnvId")(**ids(env))))
    assert code == C.FAILED_PRECONDITION


def test_large_global_bounded(env):
    """A 256 MiB global, one message as the SDK sends it, through and back;
    the daemon holds it about once, not once per copy."""
    size = 256 << 20
    data = bytes(range(256)) * (size // 256)
    c = env.client(token=env.token)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], nodelib.rss_kb(env.daemon.pid)[1])
            except OSError:
                pass
            time.sleep(0.01)
    t = threading.Thread(target=watch)
    t.start()
    try:
        c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="big", data=data, **ids(env))]),
               timeout=120)
        got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="big", **ids(env)), timeout=120)
    finally:
        stop.set()
        t.join()
    assert b"".join(v.data for v in got) == data
    # One copy of the message in flight plus libgrpc's buffers. Not under
    # ASAN (make SANITIZE=1): its quarantine keeps freed copies resident.
    if not nodelib.sanitized(env.daemon.pid):
        assert peak[0] < (size >> 10) * 1.6 + 32 * 1024, "peak RssAnon %d KiB" % peak[0]


def test_manager_down(env):
    c = env.client(token=env.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="a", data=b"1", **ids(env))]))
    env.manager.stop()
    for method, req in [
            ("World/GetGlobal", L().GetGlobalRequest(tag="a", **ids(env))),
            ("World/SetGlobal", iter([L().SetGlobalRequest(tag="a", data=b"2", **ids(env))])),
            ("World/StopSwarm", nodelib._pb("system.EnvId")(**ids(env)))]:
        t0 = time.monotonic()
        code = nodelib.grpc_code(lambda: c.call(method, req, timeout=30))
        assert code == C.UNAVAILABLE, (method, code)
        assert time.monotonic() - t0 < nodelib.deadline(5), method
    # Local calls do not depend on the manager.
    assert nodelib.grpc_code(lambda: c.call("Local/Exists", env.dir_request("x"))) == C.OK


def test_manager_silent(request):
    """A manager that accepts connections and never answers: UNAVAILABLE
    once its connection attempts (500 ms each) fail, well within the
    bound; a manager that answers and then stalls is test_46's."""
    need_bins("mantad-light")
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(16)
    port = lsn.getsockname()[1]
    conns = []
    stop = threading.Event()

    def accept():
        lsn.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(lsn.accept()[0])
            except socket.timeout:
                pass
    t = threading.Thread(target=accept)
    t.start()
    e = nodelib.LightEnv(overrides={"network": {"manager_port": port}})
    try:
        c = e.client(token=e.token)
        t0 = time.monotonic()
        code = nodelib.grpc_code(lambda: c.call("World/GetGlobal",
                                                L().GetGlobalRequest(tag="a", **ids(e)), timeout=60))
        took = time.monotonic() - t0
        assert code == C.UNAVAILABLE, code
        assert took < nodelib.deadline(25), took
    finally:
        stop.set()
        t.join()
        for s in conns:
            s.close()
        lsn.close()
        e.cleanup()


def test_world_over_mutual_tls(request, pki):
    """World calls over TLS to a manager that requires a client
    certificate: mantad-light shows node.crt (from cert_folder, read before
    its sandbox) and the manager sees the node's CN on every call."""
    need_bins("mantad-light")
    ca, srv = pki["ca"], pki["server"]
    e = nodelib.LightEnv(overrides={"security": {"use_tls": True},
                                    "network": {"manager_host": "localhost"}},
                         manager_tls={"cert": srv[0], "key": srv[1], "ca": ca.crt,
                                      "require_client_auth": True},
                         start=False)

    def fin():
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            print("---- light.log ----\n" + e.daemon.log()[-6000:])
        e.cleanup()
    request.addfinalizer(fin)
    ca.cert_folder(e.node.sections["security"]["cert_folder"], node=pki["node"])
    e.start()
    c = e.client(token=e.token)
    c.call("World/SetGlobal", iter([L().SetGlobalRequest(tag="t", data=b"over tls", **ids(e))]),
           timeout=30)
    got = c.call("World/GetGlobal", L().GetGlobalRequest(tag="t", **ids(e)), timeout=30)
    assert b"".join(v.data for v in got) == b"over tls"
    for method in ("SetGlobal", "GetGlobal"):
        recs = e.manager.calls(method, accepted_only=True)
        assert len(recs) == 1 and recs[0].extra["peer_cn"] == "node-client", (method, recs)
        assert recs[0].authorization == nodelib.TOKEN
