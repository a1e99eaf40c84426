"""mantad-light: a task acts only as itself (INTERFACE.md, Task identity on
the Light service). With a `manta-task-token` the request's ids must be the
token's task (else PERMISSION_DENIED; an unknown token UNAUTHENTICATED);
without one the ids must name a task running on this node, unless
security.task_token_required. mantad-exec is played by nodelib.FakeExec."""

import grpc
import pytest

import nodelib
from conftest import need_bins

C = grpc.StatusCode


def make_env(request, **kw):
    need_bins("mantad-light")
    e = nodelib.LightEnv(mappings={"d": "d"}, **kw)
    request.addfinalizer(e.cleanup)
    return e


@pytest.fixture
def env(request):
    import os
    e = make_env(request, start=False)
    os.makedirs(os.path.join(e.datasets, "d"))
    e.start()
    return e


def exists_code(e, token=None, swarm=None, task=None):
    c = e.client(token=token)
    return nodelib.grpc_code(lambda: c.call("Local/Exists",
                                            e.dir_request("d", "", swarm=swarm, task=task)))


def set_global(e, token=None, msgs=None):
    from node import light_service_pb2 as L
    c = e.client(token=token)
    msgs = msgs or [L.SetGlobalRequest(swarm_id=nodelib.pair(e.swarm),
                                       task_id=nodelib.pair(e.task), tag="t", data=b"v")]
    return nodelib.grpc_code(lambda: c.call("World/SetGlobal", iter(msgs)))


def test_token(env):
    assert exists_code(env, token=env.token) == C.OK
    # The token's task naming another task, or another swarm: refused.
    assert exists_code(env, token=env.token, task=nodelib.random_hex()) == C.PERMISSION_DENIED
    assert exists_code(env, token=env.token, swarm=nodelib.random_hex()) == C.PERMISSION_DENIED
    # A token nobody was given, or a malformed one.
    assert exists_code(env, token="f" * 32) == C.UNAUTHENTICATED
    assert exists_code(env, token="has space") == C.UNAUTHENTICATED
    assert exists_code(env, token="x" * 300) == C.UNAUTHENTICATED


def test_impersonation_refused_on_world(env):
    from node import light_service_pb2 as L
    other_swarm, other_task = nodelib.random_hex(), nodelib.random_hex()
    env.exec.add_task(other_swarm, other_task, token="other-" + nodelib.random_hex())
    # Our token, the other task's ids: nothing reaches the manager.
    forged = [L.SetGlobalRequest(swarm_id=nodelib.pair(other_swarm),
                                 task_id=nodelib.pair(other_task), tag="t", data=b"evil")]
    assert set_global(env, token=env.token, msgs=forged) == C.PERMISSION_DENIED
    # A stream that starts as itself and then names the other task.
    mixed = [L.SetGlobalRequest(swarm_id=nodelib.pair(env.swarm), task_id=nodelib.pair(env.task),
                                tag="t", data=b"a"), forged[0]]
    assert set_global(env, token=env.token, msgs=mixed) == C.PERMISSION_DENIED
    # As itself it works, and the manager sees our swarm.
    assert set_global(env, token=env.token) == C.OK
    rec = env.manager.wait_call("SetGlobal", timeout=5, pred=lambda r: r.request is not None
                                and r.request.data == b"v")
    assert nodelib.pair_hex(rec.request.swarm_id) == env.swarm
    # Nothing forged reached the manager, accepted or not. (The mixed
    # stream's first message, the task's own, may: Light forwards a stream
    # as it comes and cancels it upstream at the forged one, and grpcio may
    # end a cancelled stream for its handler as if it had been closed.)
    for r in env.manager.calls("SetGlobal"):
        for m in r.requests or []:
            assert m.data != b"evil" and nodelib.pair_hex(m.swarm_id) != other_swarm, r


def test_without_token(env):
    # Compatibility mode (the reference's): ids of a task running here.
    assert exists_code(env) == C.OK
    assert exists_code(env, task=nodelib.random_hex()) == C.PERMISSION_DENIED
    stopped = nodelib.random_hex()
    env.exec.add_task(env.swarm, stopped, running=False)
    assert exists_code(env, task=stopped) == C.PERMISSION_DENIED


def test_lookups_cached(env):
    n0 = len(env.exec.lookups)
    for _ in range(5):
        assert exists_code(env, token=env.token) == C.OK
    assert len(env.exec.lookups) - n0 == 1, env.exec.lookups[n0:]


def test_exec_silent(env):
    """mantad-exec not answering: UNAVAILABLE, quickly, not a hang."""
    import time
    env.exec.silent = True
    t0 = time.monotonic()
    assert exists_code(env, token="new-" + nodelib.random_hex()) == C.UNAVAILABLE
    assert time.monotonic() - t0 < nodelib.deadline(5)


def test_token_required(request):
    import os
    e = make_env(request, start=False, overrides={"security": {"task_token_required": True}})
    os.makedirs(os.path.join(e.datasets, "d"))
    e.start()
    assert exists_code(e) == C.UNAUTHENTICATED
    assert exists_code(e, token=e.token) == C.OK
    assert set_global(e) == C.UNAUTHENTICATED
    assert set_global(e, token=e.token) == C.OK


def light_status(e):
    import ipc_pb2
    rep = nodelib.ipc_call(e.node.run_dir, "light",
                           ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest()))
    return rep.status.light


def test_token_required_by_default_without_network(request):
    """containers.network = "none", task_token_required unset: tokens only."""
    import os
    e = make_env(request, start=False, overrides={"containers": {"network": "none"}})
    os.makedirs(os.path.join(e.datasets, "d"))
    e.start()
    assert light_status(e).token_required
    assert exists_code(e) == C.UNAUTHENTICATED
    assert exists_code(e, token=e.token) == C.OK
    assert set_global(e) == C.UNAUTHENTICATED


def test_compat_mode_chosen_without_network(request):
    """An explicit task_token_required = false keeps the compatibility mode
    for tasks without a network too."""
    import os
    e = make_env(request, start=False, overrides={"containers": {"network": "none"},
                                                  "security": {"task_token_required": False}})
    os.makedirs(os.path.join(e.datasets, "d"))
    e.start()
    assert not light_status(e).token_required
    assert exists_code(e) == C.OK
    assert exists_code(e, token=e.token) == C.OK
    assert exists_code(e, task=nodelib.random_hex()) == C.PERMISSION_DENIED
    assert set_global(e) == C.OK


def test_compat_mode_by_default_with_host_network(env):
    assert env.node.sections["containers"].get("network") in (None, "host")
    assert "task_token_required" not in env.node.sections["security"]
    assert not light_status(env).token_required
    assert exists_code(env) == C.OK
    assert exists_code(env, token=env.token) == C.OK


def test_refusals_log_rate_limited(request):
    """A task calling in a loop: refusals are logged at most 10 lines a
    second, the rest summed up; light.db has every call."""
    import os
    import re
    import time
    e = make_env(request, start=False, overrides={"logging": {"level": "INFO"}})
    os.makedirs(os.path.join(e.datasets, "d"))
    e.start()
    n = 200
    task = nodelib.random_hex()
    c = e.client()
    t0 = time.monotonic()
    for _ in range(n):
        code = nodelib.grpc_code(lambda: c.call("Local/Exists", e.dir_request("d", "", task=task)))
        assert code == C.PERMISSION_DENIED
    elapsed = time.monotonic() - t0

    def counts():
        log = e.daemon.log()
        logged = len(re.findall(r"Local/Exists from swarm \w+ task %s: .*\(status 7\)" % task, log))
        dropped = sum(int(m) for m in re.findall(
            r"(\d+) more refused or failed call\(s\) in the last \d+ ms not logged", log))
        return (logged, dropped) if logged + dropped == n else None
    logged, dropped = nodelib.wait_for(counts, 5, "every refusal logged or counted")
    assert logged <= 10 * (int(elapsed) + 2), (logged, elapsed)
    assert dropped > 0
    rows = [r for r in nodelib.audit_rows(e.node.state_dir) if r["task_id"] == task]
    assert len(rows) == n and all(r["status"] == 7 for r in rows)
    assert light_status(e).refused >= n
