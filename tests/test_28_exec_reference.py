"""The task lifecycle as a manager built against the reference node sees it
(issue 11, WIRE.md sections 6, 8, 9, 10), on reference-style files
(stream_logs = true, max_concurrent = 2, default_cpu_limit = "2.0"):

- exactly one AddTaskLogs per run that ends by itself (any exit code, an
  empty output too, a timeout), none while it runs, none for a run ended by
  stop_task, stop_swarm, a next round or the node's stop;
- SendError ids as the reference: unparsable deploy_task 22 (exec's side;
  mantad-beat's is tested with beat), the same round
  again 19, unknown stop_task 19, deployment failures 18;
- iteration and circular above 65535 run; the log header has their low 16
  bits;
- CPU is shared: three tasks of one swarm that wait on each other complete
  on this 2-core machine with default_cpu_limit = "2.0"; a task that waits
  says why (mantactl tasks, status); one that can never run fails at once;
- `mantactl config check` and mantad-exec's start log say what the keys the
  reference ignores do here;
- a manager that advances a swarm on the uploads (dev manager's
  on_task_end) starts the aggregator only after its workers ended;
- issue 15: the same task in two swarms, a runtime slow in kill/delete, a
  repeated hand-off; issue 13: the log store's bound;
- the latency from a task's exit to its AddTaskLogs (printed)."""

import http.server
import statistics
import threading
import time

import pytest

import nodelib
from devmanager import hex_to_pair, pair_to_hex
from common import system_pb2 as system_pb
from common import tasks_pb2 as tasks_pb

pytestmark = nodelib.skip_unless_built("mantad-exec")

RUNNING, COMPLETED, FAILED, STOPPED = (tasks_pb.RUNNING, tasks_pb.COMPLETED,
                                       tasks_pb.FAILED, tasks_pb.STOPPED)
SWARM = "5a" * 16
OTHER = "6b" * 16
ZERO = "0" * 32
# What every reference file carries (WIRE.md section 10).
REFERENCE = {"containers": {"default_cpu_limit": "2.0", "default_memory_limit": "4G"},
             "tasks": {"max_concurrent": 2, "task_timeout": 3600, "retry_attempts": 3,
                       "cleanup_on_failure": True, "stream_logs": True},
             "resources": {"reserve_cpu_percent": 10, "reserve_memory_mb": 512}}
FOREVER = "#!/bin/sh\ntrap 'exit 0' TERM\necho up\nsleep 600 &\nwait\n"


@pytest.fixture(scope="module")
def rt(bbroot):
    """One OCI runtime: these tests are about the wire, not the runtime."""
    return nodelib.pick_runtime(bbroot)


class Control(object):
    """A small HTTP server on the host's loopback that the tasks (host
    network, busybox wget) use to wait on each other and on the test:
    GET /go/NAME answers "yes" once release(NAME); /done/NAME records NAME;
    /count is how many are done; /exit/NAME records the time (a task's last
    act before it exits)."""

    def __init__(self):
        ctl = self
        self.lock = threading.Lock()
        self.released, self.done, self.exits = set(), [], {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                with ctl.lock:
                    if parts[0] == "go":
                        body = "yes" if parts[1] in ctl.released else "no"
                    elif parts[0] == "done":
                        ctl.done.append(parts[1])
                        body = "ok"
                    elif parts[0] == "count":
                        body = str(len(ctl.done))
                    elif parts[0] == "exit":
                        ctl.exits[parts[1]] = time.monotonic()
                        body = "ok"
                    else:
                        body = ""
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.th = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.th.start()

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path)

    def release(self, name):
        with self.lock:
            self.released.add(name)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def control():
    c = Control()
    yield c
    c.stop()


def uploads(manager, task):
    return manager.task_ends(task)


def statuses(manager, task):
    return [u[3] for u in nodelib.task_updates(manager, task)]


def errors_for(manager, task):
    return [c.request for c in manager.calls("SendError")
            if pair_to_hex(c.request.task_id) == task]


def heartbeats_pass(manager, n=3):
    """Waits for n more heartbeats: about n mqtt.ping_interval seconds of
    the node's own clock, longer than a streamed frame's period."""
    k = len(manager.heartbeats)
    nodelib.wait_for(lambda: len(manager.heartbeats) >= k + n, 15 + n,
                     "%d more heartbeats" % n)


def wait_upload(manager, task, n=1, timeout=15):
    return nodelib.wait_for(lambda: len(uploads(manager, task)) >= n and
                            uploads(manager, task), timeout,
                            "%d AddTaskLogs of %s" % (n, task))


def test_one_upload_per_natural_end(manager, make_node, bbroot, rt, control):
    over = dict(REFERENCE)
    over["tasks"] = dict(REFERENCE["tasks"], max_concurrent=8)
    over["containers"] = dict(REFERENCE["containers"], default_memory_limit="128M")
    node = nodelib.exec_node(manager, make_node, bbroot, rt, **over)
    nat, bad, empty = "a1" * 16, "a2" * 16, "a3" * 16
    stopped, swarmed, rounds = "a4" * 16, "a5" * 16, "a6" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(nat, (
        "#!/bin/sh\necho first\n"
        "until [ \"$(wget -q -O - %s)\" = yes ]; do sleep 0.1; done\necho second\n"
        % control.url("go/nat"))))
    manager.deploy_task(node.node_id, nodelib.task_msg(stopped, FOREVER))
    manager.deploy_task(node.node_id, nodelib.task_msg(swarmed, FOREVER, swarm_hex=OTHER))
    manager.deploy_task(node.node_id, nodelib.task_msg(rounds, FOREVER, iteration=0))
    for t in (nat, stopped, swarmed, rounds):
        nodelib.wait_task_status(manager, t, RUNNING)
    # Running, with output, and tasks.stream_logs = true: nothing uploaded.
    nodelib.wait_for(lambda: "first" in nodelib.mantactl("logs", nat, "-c",
                                                         node.config).stdout,
                     10, "the first line in mantactl logs")
    heartbeats_pass(manager)
    assert manager.task_ends() == [], "logs sent while tasks run"

    # Stopped by the manager: STOPPED at once, no upload.
    manager.stop_task(node.node_id, system_pb.EnvId(swarm_id=hex_to_pair(SWARM),
                                                    task_id=hex_to_pair(stopped)))
    manager.stop_swarm(node.node_id, OTHER)
    manager.deploy_task(node.node_id, nodelib.task_msg(
        rounds, "#!/bin/sh\necho round 1\n", iteration=1))
    for t in (stopped, swarmed):
        nodelib.wait_task_status(manager, t, STOPPED, timeout=20)
    # Natural ends: exit 0, exit 3, no output at all.
    manager.deploy_task(node.node_id, nodelib.task_msg(bad, "#!/bin/sh\necho oops\nexit 3\n"))
    manager.deploy_task(node.node_id, nodelib.task_msg(empty, "#!/bin/sh\nexit 0\n"))
    control.release("nat")
    nodelib.wait_task_status(manager, nat, COMPLETED)
    nodelib.wait_task_status(manager, bad, FAILED)
    nodelib.wait_task_status(manager, empty, COMPLETED)
    for t in (nat, bad, empty):
        wait_upload(manager, t)
    wait_upload(manager, rounds)
    # A marker after everything: once its upload is in, nothing else came.
    marker = "af" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(marker, "#!/bin/sh\necho m\n"))
    wait_upload(manager, marker)
    assert nodelib.task_log_text(manager, nat) == "first\nsecond\n"
    assert nodelib.task_log_text(manager, bad) == "oops\n"
    assert nodelib.task_log_text(manager, empty) == ""      # header only
    assert nodelib.task_log_text(manager, rounds) == "round 1\n"
    for t in (nat, bad, empty, marker):
        assert len(uploads(manager, t)) == 1, (t, uploads(manager, t))
    assert [(u[1], u[2]) for u in uploads(manager, rounds)] == [(1, 0)]
    for t in (stopped, swarmed):
        assert uploads(manager, t) == [], t
    assert [u[3] for u in nodelib.task_updates(manager, rounds) if u[1] == 0] == \
        [RUNNING, STOPPED]
    # The natural end came after the last update of its run.
    end = uploads(manager, nat)[0][3]
    done = manager.wait_message("manager/update_task_status", timeout=1,
                                pred=lambda r: r.request is not None and
                                pair_to_hex(r.request.task_id) == nat and
                                r.request.task_status == COMPLETED)
    assert end >= done.time - 0.5

    # The node's own graceful stop ends a running task: no upload either.
    late = "b0" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(late, FOREVER))
    nodelib.wait_task_status(manager, late, RUNNING)
    r = node.stop(timeout=30, drain=1)
    assert r.returncode == 0, r.stderr
    node.start()
    node.wait_online()
    nodelib.wait_task_status(manager, late, STOPPED, timeout=20)
    marker2 = "ae" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(marker2, "#!/bin/sh\ntrue\n"))
    wait_upload(manager, marker2)
    assert uploads(manager, late) == []
    assert "late" not in nodelib.task_log_text(manager, late)


def test_error_ids(manager, make_node, bbroot, rt):
    node = nodelib.exec_node(manager, make_node, bbroot, rt)
    # A deploy_task payload that does not decode: MQTT (22). mantad-beat
    # refuses most itself (its own tests); here one handed to exec as is.
    import ipc_pb2
    t0 = time.monotonic()
    rep = nodelib.ipc_call(node.run_dir, "exec", ipc_pb2.Msg(command=ipc_pb2.Command(
        name="deploy_task", topic="node/%s/deploy_task" % node.node_id,
        payload=b"\xff\xff\xff\xff\x0f")))
    assert rep.WhichOneof("body") == "reply" and rep.reply.code != 0, rep
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10), after=t0)
    assert err.request.error_id == 22 and "deploy_task" in err.request.content, err.request

    # The same round again: NODE (19), no second run.
    dup = "c1" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(dup, "#!/bin/sh\necho once\n"))
    nodelib.wait_task_status(manager, dup, COMPLETED)
    t0 = time.monotonic()
    manager.deploy_task(node.node_id, nodelib.task_msg(dup, "#!/bin/sh\necho twice\n"))
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10), after=t0,
                            pred=lambda r: pair_to_hex(r.request.task_id) == dup)
    assert err.request.error_id == 19 and "already" in err.request.content

    # stop_task of a task this node never had: NODE (19).
    unknown = "c2" * 16
    manager.stop_task(node.node_id, system_pb.EnvId(swarm_id=hex_to_pair(SWARM),
                                                    task_id=hex_to_pair(unknown)))
    err = manager.wait_call("SendError", timeout=nodelib.deadline(10),
                            pred=lambda r: pair_to_hex(r.request.task_id) == unknown)
    assert err.request.error_id == 19 and "not known" in err.request.content
    # ... of one that ended already: nothing (its final update is out).
    manager.stop_task(node.node_id, system_pb.EnvId(swarm_id=hex_to_pair(SWARM),
                                                    task_id=hex_to_pair(dup)))

    # Deployment failures: DOCKER (18).
    noimg, net, gpu = "c3" * 16, "c4" * 16, "c5" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(noimg, "#!/bin/sh\ntrue\n",
                                                       image="no-such-image:1"))
    manager.deploy_task(node.node_id, nodelib.task_msg(net, "#!/bin/sh\ntrue\n",
                                                       network="swarm-net"))
    failing = [noimg, net]
    if not any(n.startswith("nvidia") and n[6:].isdigit() for n in nodelib.os.listdir("/dev")):
        manager.deploy_task(node.node_id, nodelib.task_msg(gpu, "#!/bin/sh\ntrue\n",
                                                           gpu=True))
        failing.append(gpu)
    for t in failing:
        nodelib.wait_task_status(manager, t, FAILED)
        e = nodelib.wait_for(lambda: errors_for(manager, t), 10, "SendError of %s" % t)
        assert [x.error_id for x in e] == [18], (t, e)
    # A marker: the stop_task of the ended task said nothing meanwhile.
    marker = "cf" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(marker, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, marker, COMPLETED)
    assert [e.error_id for e in errors_for(manager, dup)] == [19]
    assert statuses(manager, dup) == [RUNNING, COMPLETED]
    assert len(uploads(manager, dup)) == 1


def test_counters_above_u16(manager, make_node, bbroot, rt):
    """WIRE.md section 6: the counters are opaque to the node; the log
    header's u16 fields carry their low 16 bits."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt)
    t = "d1" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\necho big\n",
                                                       iteration=70000, circular=65541))
    nodelib.wait_task_status(manager, t, COMPLETED)
    ups = nodelib.task_updates(manager, t)
    assert [(u[1], u[2], u[3]) for u in ups] == [(70000, 65541, RUNNING),
                                                  (70000, 65541, COMPLETED)]
    (task, it, circ, _), = wait_upload(manager, t)
    assert (it, circ) == (70000 & 0xffff, 65541 & 0xffff) == (4464, 5)
    assert nodelib.task_log_text(manager, t) == "big\n"
    rc, tasks = nodelib.tasks_json(node.config)
    assert [(x["iteration"], x["circular"], x["status"]) for x in tasks] == \
        [(70000, 65541, "COMPLETED")]


def test_swarm_of_three_on_reference_file(manager, make_node, bbroot, rt, control):
    """An aggregator that waits for two workers' results, deployed first, on
    this 2-core machine with a reference file: with each CPU limit reserved
    the aggregator ran alone and the swarm never finished. The queued worker
    says why it waits."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt, **REFERENCE)
    agg, w1, w2 = "e0" * 16, "e1" * 16, "e2" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(agg, (
        "#!/bin/sh\necho aggregator up\n"
        "until [ \"$(wget -q -O - %s)\" = 2 ]; do sleep 0.1; done\necho aggregated\n"
        % control.url("count"))))
    for name, t in (("w1", w1), ("w2", w2)):
        manager.deploy_task(node.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\necho %s up\n"
            "until [ \"$(wget -q -O - %s)\" = yes ]; do sleep 0.1; done\n"
            "wget -q -O - %s\necho\necho %s done\n"
            % (name, control.url("go/" + name), control.url("done/" + name), name))))
    nodelib.wait_task_status(manager, agg, RUNNING)
    nodelib.wait_task_status(manager, w1, RUNNING, timeout=20)
    # max_concurrent = 2: the second worker waits, and says why.
    rc, tasks = nodelib.tasks_json(node.config)
    q = [x for x in tasks if x["task_id"] == w2][0]
    assert q["status"] == "QUEUED" and "tasks.max_concurrent = 2" in q["reason"], q
    st = node.wait_status(lambda s: s["waiting"], 10, "status says why tasks wait")
    assert "waiting for a slot" in st["waiting"], st
    control.release("w1")
    nodelib.wait_task_status(manager, w1, COMPLETED, timeout=20)
    nodelib.wait_task_status(manager, w2, RUNNING, timeout=20)
    control.release("w2")
    for t in (w2, agg):
        nodelib.wait_task_status(manager, t, COMPLETED, timeout=30)
    for t in (agg, w1, w2):
        assert statuses(manager, t) == [RUNNING, COMPLETED], t
        assert len(wait_upload(manager, t)) == 1
    assert nodelib.task_log_text(manager, agg) == "aggregator up\naggregated\n"
    st = node.wait_status(lambda s: s["waiting"] is None, 10, "nothing waits")
    # The start log says what the reference file's inert keys do here.
    log = node.log()
    assert "config: tasks.task_timeout = 3600: tasks running longer than 3600 s" \
        " are stopped and reported FAILED" in log, node.log_tail()
    assert "config: containers.default_cpu_limit = \"2.0\"" in log


def test_never_admitted(manager, make_node, bbroot, rt):
    """More memory per task than the node has in all: FAILED at once with
    SendError 18 and the reason, not QUEUED forever."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt,
                             containers={"default_memory_limit": "4096G"})
    t = "f1" * 16
    t0 = time.monotonic()
    manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, t, FAILED, timeout=10)
    assert time.monotonic() - t0 < 5
    assert statuses(manager, t) == [FAILED]
    e = nodelib.wait_for(lambda: errors_for(manager, t), 10, "SendError")
    assert [x.error_id for x in e] == [18] and "cannot run on this node" in e[0].content
    rc, tasks = nodelib.tasks_json(node.config)
    assert tasks[0]["status"] == "FAILED" and "4096G" in tasks[0]["reason"], tasks


def test_config_check_notes():
    """A reference file: `config check` says what its inert keys do here."""
    r = nodelib.mantactl("config", "check", "-c", nodelib.os.path.join(
        nodelib.os.path.dirname(__file__), "configs", "reference.toml"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ("note: tasks.task_timeout = 3600: tasks running longer than 3600 s"
                 " are stopped and reported FAILED",
                 "note: tasks.max_concurrent = 2: at most 2 tasks run at once",
                 "note: containers.default_cpu_limit = \"2.0\": each task is capped"
                 " at 2.0 CPUs",
                 "note: containers.default_memory_limit = \"4G\"",
                 "note: tasks.stream_logs = true: no effect"):
        assert want in out, out
    assert "the reference ignores this key" in out


def test_exit_to_logs_latency(manager, make_node, bbroot, rt, control):
    """The figure for issue 11's closing note: from a task's last act (an
    HTTP request to the test, then exit) to its AddTaskLogs at the dev
    manager, over 20 runs one after another."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt, **REFERENCE)
    lat = []
    for i in range(20):
        t = "%032x" % (0x7700 + i)
        manager.deploy_task(node.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\necho run %d\nwget -q -O /dev/null %s\n"
            % (i, control.url("exit/%d" % i)))))
        (_, _, _, at), = wait_upload(manager, t, timeout=30)
        lat.append(at - control.exits[str(i)])
    med = statistics.median(lat)
    print("exit -> AddTaskLogs at the manager: median %.1f ms, min %.1f ms,"
          " max %.1f ms over %d runs" % (med * 1000, min(lat) * 1000,
                                          max(lat) * 1000, len(lat)))
    assert all(x > 0 for x in lat)
    assert med < 5, lat


def test_same_task_in_two_swarms(manager, make_node, bbroot, rt, control):
    """Issue 15 finding 5: one task id, iteration and circular in two
    swarms are two runs: own bundle, own updates, own upload; the end of
    one leaves the other running."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt)
    t = "d7" * 16
    for sw, name in ((SWARM, "A"), (OTHER, "B")):
        manager.deploy_task(node.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\necho in %s\n"
            "until [ \"$(wget -q -O - %s)\" = yes ]; do sleep 0.1; done\necho %s done\n"
            % (name, control.url("go/" + name), name)), swarm_hex=sw))

    def updates(sw, st):
        return [r for r in manager.task_updates if r.request is not None
                and pair_to_hex(r.request.task_id) == t
                and pair_to_hex(r.request.swarm_id) == sw
                and r.request.task_status == st]
    nodelib.wait_for(lambda: updates(SWARM, RUNNING) and updates(OTHER, RUNNING), 20,
                     "both running")
    bundles = sorted(nodelib.os.listdir(nodelib.os.path.join(node.state_dir, "tasks")))
    assert bundles == sorted("%s-%s-0-0" % (sw, t) for sw in (SWARM, OTHER)), bundles
    control.release("B")
    nodelib.wait_for(lambda: updates(OTHER, COMPLETED), 20, "B completed")
    heartbeats_pass(manager, 2)
    assert not updates(SWARM, COMPLETED) and not updates(SWARM, FAILED)
    control.release("A")
    nodelib.wait_for(lambda: updates(SWARM, COMPLETED), 20, "A completed")
    for sw in (SWARM, OTHER):
        assert len(updates(sw, RUNNING)) == 1 and len(updates(sw, COMPLETED)) == 1
    logs = nodelib.wait_for(lambda: len([d for d in manager.logs if d["task_id"] == t]) == 2
                            and [d for d in manager.logs if d["task_id"] == t], 15,
                            "two uploads")
    assert sorted((d["swarm_id"], d["text"]) for d in logs) == \
        [(SWARM, "in A\nA done\n"), (OTHER, "in B\nB done\n")]
    assert not [c for c in manager.calls("SendError")
                if pair_to_hex(c.request.task_id) == t]


def test_log_store_bounded(manager, make_node, bbroot, rt):
    """Issue 13 finding 7: a flood of output keeps <state_dir>/logs under
    tasks.log_store_max_size, oldest finished runs first, and loses nothing
    the manager has not had: with AddTaskLogs failing meanwhile, every
    run's one upload still arrives whole."""
    import grpc
    node = nodelib.exec_node(manager, make_node, bbroot, rt, containers={
        "log_config": {"type": "json-file", "config": {"max-size": "600k", "max-file": "1"}}},
        tasks={"log_store_max_size": "1M", "max_concurrent": 2})
    manager.fail["AddTaskLogs"] = grpc.StatusCode.UNAVAILABLE
    ids = ["%032x" % (0x8800 + i) for i in range(6)]
    size = 400 * 1024
    for i, t in enumerate(ids):
        manager.deploy_task(node.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\nyes %d | head -c %d\n" % (i, size))))
    for t in ids:
        nodelib.wait_task_status(manager, t, COMPLETED, timeout=60)
    logs_dir = nodelib.os.path.join(node.state_dir, "logs")

    def stored():
        return sum(nodelib.os.path.getsize(nodelib.os.path.join(logs_dir, f))
                   for f in nodelib.os.listdir(logs_dir))
    nodelib.wait_for(lambda: stored() <= 1 << 20, 15, "logs under 1M")
    kept = [t for t in ids if nodelib.mantactl("logs", t, "-c", node.config).stdout]
    assert kept and kept == ids[len(ids) - len(kept):], kept   # the newest kept
    assert len(kept) < len(ids)
    assert "removed the output of" in node.log()
    # The manager comes back: every upload, whole, once.
    del manager.fail["AddTaskLogs"]
    for i, t in enumerate(ids):
        wait_upload(manager, t, timeout=60)
        assert nodelib.task_log_text(manager, t) == ("%d\n" % i * size)[:size], t
    for t in ids:
        assert len(uploads(manager, t)) == 1


def slow_runtime(tmp_path, rt, seconds=5):
    """A runtime wrapper that takes `seconds` in kill and delete."""
    real = nodelib.shutil.which(rt, path="/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin")
    path = tmp_path / ("slow-" + rt)
    path.write_text("#!/bin/sh\ncase \" $* \" in *\" kill \"*|*\" delete \"*) sleep %d ;; esac\n"
                    "exec %s \"$@\"\n" % (seconds, real))
    path.chmod(0o755)
    return str(path)


def test_slow_runtime_never_blocks(manager, make_node, bbroot, rt, tmp_path):
    """Issue 15 finding 2: with a runtime that takes 5 s in kill and delete,
    a container that lost its shim is cleaned up off the main loop: the
    commands handed over meanwhile are taken at once (none reported failed
    by mantad-beat and then run), status answers, the lost task ends FAILED
    once and nothing is left behind."""
    import signal
    node = nodelib.exec_node(manager, make_node, bbroot, slow_runtime(tmp_path, rt))
    lost, after = "91" * 16, ["%032x" % (0x9200 + i) for i in range(3)]
    manager.deploy_task(node.node_id, nodelib.task_msg(lost, FOREVER))
    nodelib.wait_task_status(manager, lost, RUNNING)
    shim_pid = nodelib.os.path.join(node.state_dir, "tasks", "%s-%s-0-0" % (SWARM, lost),
                                    "shim.pid")
    with open(shim_pid) as f:
        pid = int(f.read().split()[0])
    nodelib.os.kill(pid, signal.SIGKILL)
    nodelib.wait_task_status(manager, lost, FAILED, timeout=10)
    t0 = time.monotonic()
    for t in after:
        manager.deploy_task(node.node_id, nodelib.task_msg(t, "#!/bin/sh\necho fine\n"))
    rc, _ = node.status(timeout=3)
    assert rc == 0
    for t in after:
        nodelib.wait_task_status(manager, t, RUNNING, timeout=15)
    took = time.monotonic() - t0
    for t in after:
        nodelib.wait_task_status(manager, t, COMPLETED, timeout=30)
        assert statuses(manager, t) == [RUNNING, COMPLETED]
    assert statuses(manager, lost) == [RUNNING, FAILED]
    assert not [c for c in manager.calls("SendError") if "did not take" in c.request.content]
    assert [e.error_id for e in errors_for(manager, lost)] == [19]
    assert took < 8, "the deploys waited for the runtime: %.1f s" % took
    nodelib.wait_for(lambda: not nodelib.exec_leftovers(node, rt)["containers"], 30,
                     "the lost container deleted")


def test_repeated_handoff_is_one_command(manager, make_node, bbroot, rt):
    """Issue 15 finding 2: a Command handed over again with the same
    handoff id (the sender retrying after no answer) is the same command:
    acknowledged, run once, no SendError 19; the same round deployed again
    by the manager (a new hand-off) is still refused with 19."""
    import ipc_pb2
    node = nodelib.exec_node(manager, make_node, bbroot, rt)
    t = "93" * 16
    payload = nodelib.task_msg(t, "#!/bin/sh\necho once\n").SerializeToString()

    def hand(handoff):
        rep = nodelib.ipc_call(node.run_dir, "exec", ipc_pb2.Msg(command=ipc_pb2.Command(
            name="deploy_task", topic="node/%s/deploy_task" % node.node_id,
            payload=payload, handoff=handoff)))
        assert rep.WhichOneof("body") == "reply" and rep.reply.code == 0, rep
    hand("beat-1-42")
    hand("beat-1-42")
    nodelib.wait_task_status(manager, t, COMPLETED)
    hand("beat-1-42")
    marker = "94" * 16
    manager.deploy_task(node.node_id, nodelib.task_msg(marker, "#!/bin/sh\ntrue\n"))
    nodelib.wait_task_status(manager, marker, COMPLETED)
    assert errors_for(manager, t) == []
    assert statuses(manager, t) == [RUNNING, COMPLETED]
    assert len(wait_upload(manager, t)) == 1
    hand("beat-1-43")
    e = nodelib.wait_for(lambda: errors_for(manager, t), 10, "SendError 19")
    assert [x.error_id for x in e] == [19]


def test_manager_advancing_on_uploads(manager, make_node, bbroot, rt, control):
    """A manager built against the reference advances a swarm on the logs
    uploads (worker -> aggregator): the dev manager does so here. Workers
    that print, then wait, on a reference file (stream_logs = true) do not
    advance it; their natural ends do, once each."""
    node = nodelib.exec_node(manager, make_node, bbroot, rt, **REFERENCE)
    w1, w2, agg = "3a" * 16, "3b" * 16, "3c" * 16
    advanced = []

    def on_end(frame):
        done = {d["task_id"] for d in manager.logs}
        if {w1, w2} <= done and not advanced:
            advanced.append(time.monotonic())
            manager.deploy_task(node.node_id, nodelib.task_msg(
                agg, "#!/bin/sh\necho aggregating\n"))
    manager.on_task_end = on_end
    for name, t in (("w1", w1), ("w2", w2)):
        manager.deploy_task(node.node_id, nodelib.task_msg(t, (
            "#!/bin/sh\necho %s result\n"
            "until [ \"$(wget -q -O - %s)\" = yes ]; do sleep 0.1; done\n"
            % (name, control.url("go/" + name)))))
    for t in (w1, w2):
        nodelib.wait_task_status(manager, t, RUNNING)
    nodelib.wait_for(lambda: all("result" in nodelib.mantactl("logs", t, "-c", node.config)
                                 .stdout for t in (w1, w2)), 10, "the workers' output")
    heartbeats_pass(manager)
    assert not advanced and manager.task_ends() == []
    control.release("w1")
    control.release("w2")
    nodelib.wait_task_status(manager, agg, COMPLETED, timeout=30)
    done = {t: max(r.time for r in manager.task_updates if r.request is not None
                   and pair_to_hex(r.request.task_id) == t
                   and r.request.task_status == COMPLETED) for t in (w1, w2)}
    assert advanced and advanced[0] >= max(done.values()) - 0.5
    assert nodelib.wait_for(lambda: len(uploads(manager, agg)) == 1, 10, "agg's upload")
    assert [len(uploads(manager, t)) for t in (w1, w2, agg)] == [1, 1, 1]
