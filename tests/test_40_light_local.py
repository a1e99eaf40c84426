"""mantad-light, Local service from the host (WIRE.md section 7): Exists,
ListDir, GetBinaryData, ReadFileLines on mapped and base_path datasets;
traversal, absolute paths, symlink escapes and NUL bytes refused; every
call in light.db; the daemon confined (no capabilities, seccomp, no new
privileges)."""

import os

import grpc
import pytest

import nodelib
from conftest import need_bins

OK = grpc.StatusCode.OK


def serve(request, e):
    """Starts the LightEnv e for a fixture and yields it; at teardown, the
    daemon's log when the test failed, then e's cleanup."""
    e.start()
    try:
        yield e
    finally:
        if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
            print("---- light.log ----\n" + e.daemon.log()[-6000:])
        e.cleanup()


@pytest.fixture
def env(request):
    need_bins("mantad-light")
    e = nodelib.LightEnv(start=False, mappings={"d1": "d1", "blob": "blob.bin",
                                                "outside": "/etc"})
    ds = e.datasets
    os.makedirs(os.path.join(ds, "d1", "sub"))
    with open(os.path.join(ds, "d1", "a.txt"), "wb") as f:
        f.write(b"one\ntwo\r\nthree\rfour")
    with open(os.path.join(ds, "d1", "sub", "b.csv"), "w") as f:
        f.write("x,y\n1,2\n")
    with open(os.path.join(ds, "blob.bin"), "wb") as f:
        f.write(os.urandom(1000003))
    with open(os.path.join(ds, "secret.txt"), "w") as f:
        f.write("not in d1\n")
    os.symlink("/etc/passwd", os.path.join(ds, "d1", "evil"))
    os.symlink("../secret.txt", os.path.join(ds, "d1", "up"))
    os.symlink("sub/b.csv", os.path.join(ds, "d1", "inside"))
    os.makedirs(os.path.join(ds, "pool", "p1"))
    with open(os.path.join(ds, "pool", "p1", "c.txt"), "w") as f:
        f.write("pool\n")
    yield from serve(request, e)


def exists(e, c, name, path):
    return c.call("Local/Exists", e.dir_request(name, path)).value


def test_exists_and_listdir(env):
    c = env.client()
    assert exists(env, c, "d1", "a.txt")
    assert exists(env, c, "d1", "sub/b.csv")
    assert exists(env, c, "d1", "sub/../a.txt")     # normalized, as the reference
    assert exists(env, c, "d1", "inside")
    assert exists(env, c, "d1", "")
    assert exists(env, c, "blob", "")
    assert not exists(env, c, "d1", "nope")
    assert not exists(env, c, "nope", "")
    r = c.call("Local/ListDir", env.dir_request("d1"))
    got = {(p.value, p.is_file, p.name) for p in r.paths}
    assert got == {("a.txt", True, ""), ("sub", False, ""), ("evil", False, ""),
                   ("up", False, ""), ("inside", True, "")}, got
    r = c.call("Local/ListDir", env.dir_request("d1", "sub"))
    assert [(p.value, p.is_file) for p in r.paths] == [("b.csv", True)]
    # A folder under base_path that no mapping names is a dataset by its name.
    r = c.call("Local/ListDir", env.dir_request("pool", "p1"))
    assert [p.value for p in r.paths] == ["c.txt"]


def test_get_binary_data(env):
    c = env.client()
    chunks = c.call("Local/GetBinaryData", env.data_request("blob"))
    with open(os.path.join(env.datasets, "blob.bin"), "rb") as f:
        want = f.read()
    assert b"".join(b.content for b in chunks) == want
    assert len(chunks) > 1              # streamed, not one message
    # A folder dataset is not a file.
    code = nodelib.grpc_code(lambda: c.call("Local/GetBinaryData", env.data_request("d1")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code = nodelib.grpc_code(lambda: c.call("Local/GetBinaryData", env.data_request("zz")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_read_file_lines(env):
    c = env.client()
    lines = [b.content for b in c.call("Local/ReadFileLines", env.read_text("d1", "a.txt"))]
    # newline "" (Python's open(newline="")): universal split, no translation.
    assert lines == [b"one\n", b"two\r\n", b"three\r", b"four"]
    lines = [b.content for b in c.call("Local/ReadFileLines",
                                       env.read_text("d1", "a.txt", newline="None"))]
    assert lines == [b"one\n", b"two\n", b"three\n", b"four"]
    lines = [b.content for b in c.call("Local/ReadFileLines",
                                       env.read_text("d1", "a.txt", newline="\n"))]
    assert lines == [b"one\n", b"two\r\n", b"three\rfour"]
    lines = [b.content for b in c.call("Local/ReadFileLines",
                                       env.read_text("d1", "sub/b.csv", encoding="utf-8",
                                                     errors="strict"))]
    assert lines == [b"x,y\n", b"1,2\n"]
    code = nodelib.grpc_code(lambda: c.call(
        "Local/ReadFileLines", env.read_text("d1", "a.txt", encoding="klingon")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_utf8_lines(env):
    with open(os.path.join(env.datasets, "d1", "bad.txt"), "wb") as f:
        f.write(b"ok\nbad \xff here\n")
    c = env.client()
    it = c.call("Local/ReadFileLines", env.read_text("d1", "bad.txt"), raw=True)
    assert next(it).content == b"ok\n"
    with pytest.raises(grpc.RpcError) as ei:
        next(it)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    lines = [b.content for b in c.call("Local/ReadFileLines",
                                       env.read_text("d1", "bad.txt", errors="replace"))]
    assert lines == [b"ok\n", b"bad \xef\xbf\xbd here\n"]
    lines = [b.content for b in c.call("Local/ReadFileLines",
                                       env.read_text("d1", "bad.txt", errors="ignore"))]
    assert lines == [b"ok\n", b"bad  here\n"]


@pytest.mark.parametrize("path,code", [
    ("../secret.txt", grpc.StatusCode.INVALID_ARGUMENT),     # climbs out: refused
    ("sub/../../secret.txt", grpc.StatusCode.INVALID_ARGUMENT),
    ("/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT),       # absolute
    ("a.txt\0../../etc/passwd", grpc.StatusCode.INVALID_ARGUMENT),  # NUL byte
    ("evil", grpc.StatusCode.PERMISSION_DENIED),             # symlink to /etc/passwd
    ("up", grpc.StatusCode.PERMISSION_DENIED),               # symlink to ../secret.txt
])
def test_escapes_refused(env, path, code):
    c = env.client()
    got = nodelib.grpc_code(lambda: c.call("Local/ReadFileLines", env.read_text("d1", path)))
    assert got == code, (path, got)
    got = nodelib.grpc_code(lambda: c.call("Local/ListDir", env.dir_request("d1", path)))
    assert got in (code, grpc.StatusCode.INVALID_ARGUMENT), (path, got)
    # Exists answers false, not an error, for a refused path.
    assert not exists(env, c, "d1", path)
    # And a dataset name cannot climb out of base_path either.
    got = nodelib.grpc_code(lambda: c.call("Local/GetBinaryData",
                                           env.data_request("../" + os.path.basename(env.node.dir))))
    assert got == grpc.StatusCode.INVALID_ARGUMENT


def test_audit_trail(env):
    c = env.client()
    assert exists(env, c, "d1", "a.txt")
    c.call("Local/GetBinaryData", env.data_request("blob"))
    nodelib.grpc_code(lambda: c.call("Local/ListDir", env.dir_request("d1", "evil")))

    def rows():
        r = nodelib.audit_rows(env.node.state_dir)
        return r if len(r) >= 3 else None
    rows = nodelib.wait_for(rows, 5, "three rows in light.db")
    ex, gb, ld = rows[-3:]
    assert (ex["method"], ex["dataset"], ex["path"], ex["status"]) == ("Local/Exists", "d1", "a.txt", 0)
    assert (gb["method"], gb["dataset"], gb["bytes"] >= 1000003) == ("Local/GetBinaryData", "blob", True)
    assert (ld["method"], ld["path"], ld["status"]) == ("Local/ListDir", "evil", 7)
    for r in (ex, gb, ld):
        assert (r["swarm_id"], r["task_id"], r["token"]) == (env.swarm, env.task, 0)
        assert r["time"].endswith("Z")


def test_confined(env):
    st = nodelib.proc_status(env.daemon.pid)
    assert st["CapEff"] == "0000000000000000", st["CapEff"]
    assert st["CapPrm"] == "0000000000000000", st["CapPrm"]
    assert st["CapBnd"] == "0000000000000000", st["CapBnd"]
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    # Every thread, not only the main one (libgrpc's, ZeroMQ's, ours).
    for tid in os.listdir("/proc/%d/task" % env.daemon.pid):
        with open("/proc/%d/task/%s/status" % (env.daemon.pid, tid)) as f:
            t = f.read()
        assert "Seccomp:\t2" in t and "CapEff:\t0000000000000000" in t, tid


def test_status_over_ipc(env):
    import ipc_pb2
    c = env.client()
    c.call("Local/Exists", env.dir_request("d1", "a.txt"))
    rep = nodelib.ipc_call(env.node.run_dir, "light", ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest()))
    ls = rep.status.light
    assert ls.port == env.daemon.port and ls.host == "127.0.0.1"
    assert ls.calls >= 1 and ls.datasets == 3 and not ls.token_required
    assert ls.unix_socket.endswith("light-grpc.sock")


# ---- datasets.permissions: some datasets for some swarms only ----

@pytest.fixture
def penv(request):
    """d1 for our swarm (written in capitals: ids are normalized) and one
    other; blob, hidden (a mapping under base_path) and pool (a folder
    under base_path) for the other swarm only; free for everyone."""
    need_bins("mantad-light")
    e = nodelib.LightEnv(start=False, mappings={"d1": "d1", "blob": "blob.bin",
                                                "hidden": "inner/h", "free": "free"})
    e.other_swarm, e.other_task = nodelib.random_hex(), nodelib.random_hex()
    e.third_swarm, e.third_task = nodelib.random_hex(), nodelib.random_hex()
    e.exec.add_task(e.other_swarm, e.other_task)
    e.exec.add_task(e.third_swarm, e.third_task)
    e.node.sections["datasets"]["permissions"] = {
        "d1": [e.swarm.upper(), e.other_swarm], "blob": [e.other_swarm],
        "hidden": [e.other_swarm], "pool": [e.other_swarm]}
    e.node.write_config()
    ds = e.datasets
    for d in ("d1", "inner/h", "pool/p1", "free"):
        os.makedirs(os.path.join(ds, d))
    for f in ("d1/a.txt", "inner/h/x.txt", "inner/y.txt", "pool/p1/c.txt", "free/f.txt"):
        with open(os.path.join(ds, f), "w") as fh:
            fh.write("line\n")
    with open(os.path.join(ds, "blob.bin"), "wb") as fh:
        fh.write(b"blob")
    yield from serve(request, e)


def as_task(e, swarm, task):
    """Requests of the task (swarm, task), without a token."""
    def dr(name, path=""):
        return e.dir_request(name, path, swarm=swarm, task=task)

    def rt(name, path):
        from node import light_service_pb2 as L
        return L.ReadText(data_request=e.data_request(name, swarm, task),
                          path=L.ProtoPath(value=path))
    return dr, rt


def test_permissions_allowed(penv):
    c = penv.client()
    dr, rt = as_task(penv, penv.swarm, penv.task)
    assert c.call("Local/Exists", dr("d1", "a.txt")).value
    assert [p.value for p in c.call("Local/ListDir", dr("d1")).paths] == ["a.txt"]
    assert [b.content for b in c.call("Local/ReadFileLines", rt("d1", "a.txt"))] == [b"line\n"]
    assert [p.value for p in c.call("Local/ListDir", dr("free")).paths] == ["f.txt"]
    # With its token, the same.
    ct = penv.client(token=penv.token)
    assert ct.call("Local/Exists", dr("d1", "a.txt")).value
    # The other swarm reads its datasets, by any name that reaches them.
    c2 = penv.client()
    dr2, rt2 = as_task(penv, penv.other_swarm, penv.other_task)
    chunks = c2.call("Local/GetBinaryData", penv.data_request("blob", penv.other_swarm,
                                                              penv.other_task))
    assert b"".join(b.content for b in chunks) == b"blob"
    assert [p.value for p in c2.call("Local/ListDir", dr2("pool", "p1")).paths] == ["c.txt"]
    assert [b.content for b in c2.call("Local/ReadFileLines", rt2("inner", "h/x.txt"))] == [b"line\n"]
    assert c2.call("Local/Exists", dr2("hidden", "x.txt")).value


@pytest.mark.parametrize("name,path", [
    ("blob", ""),
    ("pool", ""), ("pool", "p1"), ("./pool", "p1"), ("pool/p1", ""), ("pool/", "p1/c.txt"),
    ("hidden", ""), ("hidden", "x.txt"),
    ("inner", "h"), ("inner", "h/x.txt"), ("inner/h", ""), ("inner", "./h/../h/x.txt"),
])
def test_permissions_refused(penv, name, path):
    c = penv.client()
    dr, rt = as_task(penv, penv.swarm, penv.task)
    PD = grpc.StatusCode.PERMISSION_DENIED
    # Exists answers false, as for a path that is not there.
    assert not c.call("Local/Exists", dr(name, path)).value
    if name == "blob":
        got = nodelib.grpc_code(lambda: c.call("Local/GetBinaryData",
                                               penv.data_request(name)))
    elif path.endswith(".txt"):
        got = nodelib.grpc_code(lambda: c.call("Local/ReadFileLines", rt(name, path)))
    else:
        got = nodelib.grpc_code(lambda: c.call("Local/ListDir", dr(name, path)))
    assert got == PD, (name, path, got)


def test_permissions_third_swarm(penv):
    """A swarm in no list: only the datasets without an entry."""
    c = penv.client()
    dr, rt = as_task(penv, penv.third_swarm, penv.third_task)
    PD = grpc.StatusCode.PERMISSION_DENIED
    for name in ("d1", "d1/.", "./d1"):
        assert nodelib.grpc_code(lambda: c.call("Local/ListDir", dr(name))) == PD, name
    assert [p.value for p in c.call("Local/ListDir", dr("free")).paths] == ["f.txt"]
    # The folder above a restricted mapping lists, and its other files read.
    assert sorted(p.value for p in c.call("Local/ListDir", dr("inner")).paths) == ["h", "y.txt"]
    assert [b.content for b in c.call("Local/ReadFileLines", rt("inner", "y.txt"))] == [b"line\n"]


def test_permissions_audited(penv):
    c = penv.client()
    dr, rt = as_task(penv, penv.swarm, penv.task)
    assert not c.call("Local/Exists", dr("blob")).value
    nodelib.grpc_code(lambda: c.call("Local/GetBinaryData", penv.data_request("blob")))
    nodelib.grpc_code(lambda: c.call("Local/ReadFileLines", rt("pool", "p1/c.txt")))
    assert c.call("Local/Exists", dr("d1", "a.txt")).value

    def rows():
        r = nodelib.audit_rows(penv.node.state_dir)
        return r if len(r) >= 4 else None
    ex, gb, rl, ok = nodelib.wait_for(rows, 5, "four rows in light.db")[-4:]
    assert (ex["method"], ex["dataset"], ex["status"], ex["bytes"]) == ("Local/Exists", "blob", 7, 0)
    assert (gb["method"], gb["dataset"], gb["status"], gb["bytes"]) == ("Local/GetBinaryData", "blob", 7, 0)
    assert (rl["method"], rl["dataset"], rl["path"], rl["status"]) == (
        "Local/ReadFileLines", "pool", "p1/c.txt", 7)
    assert (ok["method"], ok["status"]) == ("Local/Exists", 0)
    for r in (ex, gb, rl, ok):
        assert (r["swarm_id"], r["task_id"]) == (penv.swarm, penv.task)
    import ipc_pb2
    rep = nodelib.ipc_call(penv.node.run_dir, "light",
                           ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest()))
    assert rep.status.light.refused >= 3
