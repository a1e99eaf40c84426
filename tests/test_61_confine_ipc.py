"""Issue 7, IPC: each endpoint accepts only its allowlisted message types.

For every endpoint of a running node (supervise, res, register, beat, and
exec and light when built), every Msg body type outside its allowlist (as
its source passes it to ipc_server_open, printed with -s) is sent, well formed (so that validation passes and the allowlist is what
refuses it), over a DEALER with the empty delimiter frame, as ipc_call
does; each must come back as Reply code 3. Then a message over the 64 MiB
cap goes to each endpoint: ZeroMQ drops the connection, and the daemon
answers the next request. No daemon may restart, and the run dir is 0700."""

import os
import re
import stat

import nodelib

# Where each endpoint's allowlist (passed to ipc_server_open) is written.
SOURCES = {
    "supervise": "mantactl/supervise.c",
    "res": "mantad-res/main.c",
    "register": "mantad-register/main.c",
    "beat": "mantad-beat/main.c",
    "exec": "mantad-exec/main.c",
    "light": "mantad-light/main.c",
}
DAEMON_OF = {"res": "mantad-res", "register": "mantad-register", "beat": "mantad-beat",
             "exec": "mantad-exec", "light": "mantad-light"}
IPC_MAX_MSG = 64 * 1024 * 1024


def allowed(ep):
    """Body names of ep's allowlist (its table of rules), read from its
    source; StatusRequest is always accepted from the owner (ipc.c)."""
    with open(os.path.join(nodelib.ROOT, SOURCES[ep])) as f:
        src = f.read()
    m = re.search(r"struct ipc_rule allowed\[\] = \{(.*?)\n\s*\};", src, re.S)
    assert m, "no allowlist in %s" % SOURCES[ep]
    names = {c.lower() for c in re.findall(r"MANTA__IPC__MSG__BODY_([A-Z_]+)", m.group(1))}
    return names | {"status_req"}


def valid_body(name):
    """A Msg with body `name` that passes ipc_validate.c."""
    import ipc_pb2
    from common import system_pb2
    pair = system_pb2.PairId(head=1, tail=2)
    examples = {
        "reply": ipc_pb2.Reply(code=0),
        "command": ipc_pb2.Command(name="collect_information", topic="node/x/collect_information"),
        "publish": ipc_pb2.Publish(topic="manager/test", payload=b"x", qos=0, key="k"),
        "registration": ipc_pb2.RegistrationNotice(node_id=pair, broker_host="127.0.0.1",
                                                   broker_port=1883, topics=["node/t"],
                                                   generation=1),
        "report_error": ipc_pb2.ReportError(error=system_pb2.Error(error_id=1, content="x")),
        "logs_req": ipc_pb2.LogsRequest(task_id="ab" * 16, offset=0, max=16),
        "task_logs": ipc_pb2.TaskLogs(swarm_id=pair, task_id=pair, content=b"\0" * 52, key="k"),
        "task_lookup": ipc_pb2.TaskLookup(token="t" * 32),
    }
    m = ipc_pb2.Msg()
    f = ipc_pb2.Msg.DESCRIPTOR.fields_by_name[name]
    if name in examples:
        getattr(m, name).CopyFrom(examples[name])
    else:
        getattr(m, name).SetInParent()  # no field ipc_validate.c checks
    assert m.WhichOneof("body") == name, (name, f)
    return m


def body_names():
    import ipc_pb2
    return [f.name for f in ipc_pb2.Msg.DESCRIPTOR.oneofs_by_name["body"].fields]


class Dealer(object):
    def __init__(self, run_dir, name):
        import zmq
        self.zmq = zmq
        self.s = zmq.Context.instance().socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect("ipc://%s/%s.sock" % (run_dir, name))
        self.name = name

    def call(self, msg, timeout=5):
        import ipc_pb2
        self.s.send_multipart([b"", msg.SerializeToString()])
        if not self.s.poll(int(nodelib.deadline(timeout) * 1000)):
            raise AssertionError("%s: no answer to %s within %.1fs"
                                 % (self.name, msg.WhichOneof("body"), nodelib.deadline(timeout)))
        frames = self.s.recv_multipart()
        assert len(frames) == 2 and frames[0] == b"", (self.name, frames[:1])
        rep = ipc_pb2.Msg()
        rep.ParseFromString(frames[1])
        return rep

    def close(self):
        self.s.close()


def endpoints(node):
    names = ["supervise", "res", "register", "beat"]
    for n in ("exec", "light"):
        if DAEMON_OF[n] in nodelib.DAEMONS:
            names.append(n)
    for n in names:
        assert os.path.exists(os.path.join(node.run_dir, n + ".sock")), n
    return names


def no_restart(node, before):
    st = node.wait_ready(10)
    for d in st["daemons"]:
        assert d["restarts"] == 0, d
    assert node.pids() == before, (node.pids(), before)


def test_run_dir_private(node):
    mode = stat.S_IMODE(os.stat(node.run_dir).st_mode)
    assert mode == 0o700, oct(mode)
    for n in endpoints(node):
        st = os.stat(os.path.join(node.run_dir, n + ".sock"))
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, (n, oct(st.st_mode))


def test_refuses_every_other_type(node):
    import ipc_pb2
    before = node.pids()
    names = body_names()
    refused = {}
    for ep in endpoints(node):
        ok = allowed(ep)
        assert ok <= set(names), (ep, ok - set(names))
        print("%s accepts: %s" % (ep, " ".join(sorted(ok))))
        d = Dealer(node.run_dir, ep)
        try:
            for b in names:
                if b in ok:
                    continue
                rep = d.call(valid_body(b))
                assert rep.WhichOneof("body") == "reply", (ep, b, rep)
                assert rep.reply.code == 3, (ep, b, rep.reply)
                refused.setdefault(ep, []).append(b)
            # Still serving: its own StatusRequest is answered.
            rep = d.call(ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest()))
            assert rep.WhichOneof("body") == "status", (ep, rep)
        finally:
            d.close()
    for ep, bs in refused.items():
        print("%s: refused %d types: %s" % (ep, len(bs), " ".join(bs)))
    no_restart(node, before)


def test_oversized_dropped(node):
    import ipc_pb2
    before = node.pids()
    big = ipc_pb2.Msg(publish=ipc_pb2.Publish(topic="manager/big",
                                              payload=b"\0" * (IPC_MAX_MSG + 1)))
    data = big.SerializeToString()
    assert len(data) > IPC_MAX_MSG
    for ep in endpoints(node):
        d = Dealer(node.run_dir, ep)
        try:
            d.s.send_multipart([b"", data])
            # ZeroMQ closes the connection at the size prefix: no answer.
            assert not d.s.poll(int(nodelib.deadline(1) * 1000)), ep
        finally:
            d.close()
        d = Dealer(node.run_dir, ep)
        try:
            rep = d.call(ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest()))
            assert rep.WhichOneof("body") == "status", (ep, rep)
        finally:
            d.close()
    no_restart(node, before)
