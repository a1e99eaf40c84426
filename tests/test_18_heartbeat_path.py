"""Issue 14, the heartbeat's path in mantad-beat: the main loop asks
mantad-res for the Snapshot itself, on a socket it keeps connected, and
hands the heartbeat to paho; no worker thread wakes for it (a hand-off to
a worker and back cost a few wake-ups and context switches every second).
A mantad-res that goes away and comes back is asked again: heartbeats
resume."""

import glob
import os
import signal
import time

import nodelib
from devmanager import pair_to_hex


def _worker_switches(pid):
    """Voluntary context switches of mantad-beat's own threads but the
    main one (its workers: paho's and ZeroMQ's have names of their own)."""
    n = 0
    for d in glob.glob("/proc/%d/task/*" % pid):
        if int(os.path.basename(d)) == pid:
            continue
        try:
            with open(d + "/comm") as f:
                if f.read().strip() != "mantad-beat":
                    continue
            with open(d + "/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def _heartbeats(manager, node_id, after):
    return [r for r in manager.heartbeats if r.time >= after and r.request is not None
            and pair_to_hex(r.request.node_id) == node_id]


def test_no_worker_wakes_for_heartbeats(manager, node):
    node_id = node.wait_online()["node_id"]
    nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, 0)) >= 2, 15,
                     "2 heartbeats")
    pid = node.pids()["mantad-beat"]
    w0 = _worker_switches(pid)
    t0 = time.monotonic()
    hb = nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, t0)) >= 4
                          and _heartbeats(manager, node_id, t0), 15, "4 heartbeats")
    w = _worker_switches(pid) - w0
    assert len(hb) >= 4
    assert w <= 1, "mantad-beat's workers woke %d times for %d heartbeats" % (w, len(hb))


def test_heartbeats_resume_after_res_restart(manager, node):
    st = node.wait_online()
    node_id = st["node_id"]
    nodelib.wait_for(lambda: _heartbeats(manager, node_id, 0), 15, "a heartbeat")
    old = node.daemon("mantad-res", st)["pid"]
    os.kill(old, signal.SIGKILL)
    node.wait_status(lambda s: node.daemon("mantad-res", s)["pid"] != old
                     and node.daemon("mantad-res", s)["state"] == "up", 30,
                     "mantad-res restarted")
    t0 = time.monotonic()
    hb = nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, t0)) >= 3
                          and _heartbeats(manager, node_id, t0), 20,
                          "3 heartbeats after mantad-res restarted")
    assert hb[-1].request.metrics_snapshot.memory.total_bytes > 0
    # And while res was away, beat kept its loop: it answers status.
    rc, s = node.status()
    assert rc == 0 and s["mqtt"]["connected"], s


def _snap_call(path, data):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    try:
        s.connect(path)
        s.send(data)
        return s.recv(1 << 20)
    finally:
        s.close()


def test_res_snapshot_socket(node):
    """mantad-res's snapshot socket (the heartbeat's way in) answers a
    SnapshotRequest with a Snapshot and closes on anything else."""
    import ipc_pb2
    st = node.wait_ready()
    pid = node.daemon("mantad-res", st)["pid"]
    path = os.path.join(node.run_dir, "res-snap.sock")
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    req = ipc_pb2.Msg(snapshot_req=ipc_pb2.SnapshotRequest())
    rep = ipc_pb2.Msg.FromString(_snap_call(path, req.SerializeToString()))
    assert rep.WhichOneof("body") == "snapshot", rep
    assert rep.snapshot.metrics.memory.total_bytes > 0
    assert rep.snapshot.metrics.cpu.count == os.cpu_count()
    # What a heartbeat carries, nothing more is read for it.
    assert not rep.snapshot.HasField("additional") and not rep.snapshot.HasField("gpu")
    # Not a SnapshotRequest: no answer, the connection is closed.
    other = ipc_pb2.Msg(status_req=ipc_pb2.StatusRequest())
    assert _snap_call(path, other.SerializeToString()) == b""
    assert _snap_call(path, b"\xff\xff\xff") == b""
    # Still serving.
    rep = ipc_pb2.Msg.FromString(_snap_call(path, req.SerializeToString()))
    assert rep.WhichOneof("body") == "snapshot"
    assert node.daemon("mantad-res")["pid"] == pid


SNAP_CHILD = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.send(bytes.fromhex(sys.argv[2]))
    print(s.recv(1 << 20).hex())
except OSError as e:
    print("error", e.errno)
"""


def _snap_as(path, user, gid, data):
    import subprocess

    def drop():
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(user.pw_uid)
    r = subprocess.run(["/usr/bin/python3", "-c", SNAP_CHILD, path, data.hex()],
                       preexec_fn=drop, cwd="/", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_res_snapshot_socket_callers(manager, make_node):
    """With security.daemon_user and light_user: beat (the daemon account)
    gets its heartbeats through the socket; mantad-light's account, in the
    daemon group and so able to connect, gets nothing (SO_PEERCRED), as on
    the endpoint."""
    import ipc_pb2
    acct = nodelib.daemon_account()
    light = nodelib.light_account()
    n = make_node(manager.grpc_port, overrides={"security": {
        "daemon_user": acct.pw_name, "light_user": light.pw_name,
        "allow_root_daemons": False}})
    os.chmod(n.dir, 0o711)
    n.start()
    node_id = n.wait_online(30)["node_id"]
    t0 = time.monotonic()
    nodelib.wait_for(lambda: len(_heartbeats(manager, node_id, t0)) >= 2, 20,
                     "2 heartbeats from a node of daemon_user")
    path = os.path.join(n.run_dir, "res-snap.sock")
    assert os.stat(path).st_mode & 0o777 == 0o660
    req = ipc_pb2.Msg(snapshot_req=ipc_pb2.SnapshotRequest()).SerializeToString()
    ok = _snap_as(path, acct, acct.pw_gid, req)
    assert ipc_pb2.Msg.FromString(bytes.fromhex(ok)).WhichOneof("body") == "snapshot"
    # Closed unanswered: an empty read, a reset (the request unread) or a
    # broken pipe (closed before the request went).
    out = _snap_as(path, light, acct.pw_gid, req)
    assert out == "" or out.startswith("error "), out
    nodelib.wait_log(n, r"res-snap\.sock: refused a caller of uid %d" % light.pw_uid)
