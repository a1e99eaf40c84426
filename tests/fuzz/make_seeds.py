#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (small valid and
invalid inputs; the files are committed, so that a fuzz run and the replay
of `make check` need neither this script nor protoc).

    make build/py/.stamp && /usr/bin/python3 tests/fuzz/make_seeds.py

Files named crash-* are regression inputs found by fuzzing: this script
never writes nor removes them."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "build", "py"))

import ipc_pb2  # noqa: E402
from common import informations_pb2, system_pb2, tasks_pb2  # noqa: E402
from node import light_service_pb2  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")
HEX = "0123456789abcdef0123456789abcdef"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def clear(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if not n.startswith("crash-"):
                os.unlink(os.path.join(d, n))


def pair(head, tail):
    return system_pb2.PairId(head=head, tail=tail)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wt, payload):
    """One raw protobuf field: payload bytes for LEN, an int for VARINT."""
    if wt == 0:
        return varint(num << 3) + varint(payload)
    return varint((num << 3) | 2) + varint(len(payload)) + payload


# ---- ipc: one manta.ipc.Msg per file ----
def ipc_seeds():
    t = "ipc"
    clear(t)
    M = ipc_pb2

    def msg(name, **body):
        m = M.Msg(**body)
        write(t, name, m.SerializeToString())

    gpu = informations_pb2.GpuDevice(name="Tesla", uuid="GPU-1", memory_total_bytes=1 << 34)
    msg("reply-ok", reply=M.Reply(code=0))
    msg("reply-error", reply=M.Reply(code=2, error="bad message: no body"))
    msg("status-req", status_req=M.StatusRequest())
    st = M.StatusReply(
        supervisor=M.SupervisorStatus(daemons=[M.DaemonState(name="mantad-res", pid=42, state="up",
                                                             restarts=1, uptime_s=10)],
                                      config_path="/etc/manta/node.toml"),
        register=M.RegisterStatus(node_id=HEX, alias="node-1", manager_host="localhost",
                                  manager_port=50051, registered=True, link="online",
                                  generation=3, broker="localhost:1883", cpu_count=4,
                                  cpu_model="x86", gpus=[gpu]),
        beat=M.BeatStatus(broker="localhost:1883", connected=True, outbox=2, heartbeats=9),
        res=M.ResStatus(cpu_count=4, mem_total_bytes=1 << 30, samples=5),
        exec=M.ExecStatus(queued=1, running=2, draining=True))
    msg("status", status=st)
    msg("snapshot-req", snapshot_req=M.SnapshotRequest(fresh=True))
    msg("snapshot", snapshot=M.Snapshot(metrics=informations_pb2.MetricsSnapshot(
        cpu=informations_pb2.CpuMetrics(usage_percent=12.5, per_cpu_percent=[1.0, 2.0], count=2))))
    msg("capacity-req", capacity_req=M.CapacityRequest())
    msg("capacity", capacity=M.Capacity(cpu_count=8, mem_total_bytes=1 << 33, disk_free_bytes=1 << 30,
                                        gpus=[gpu], cpu_model="EPYC"))
    for name in ("deploy_task", "stop_task", "stop_swarm", "stop_node", "collect_information"):
        msg("command-" + name, command=M.Command(name=name, topic="manta/node/%s/%s" % (HEX, name),
                                                  payload=b"\x0a\x04\x08\x01\x10\x02"))
    msg("publish-qos0", publish=M.Publish(topic="manager/set_system_summary", payload=b"\x0a\x00", qos=0))
    msg("publish-qos1", publish=M.Publish(topic="manager/update_task", payload=b"x", qos=1,
                                          key="task-1-3"))
    msg("registration", registration=M.RegistrationNotice(node_id=pair(1, 2), broker_host="127.0.0.1",
                                                          broker_port=1883, generation=4,
                                                          topics=["manta/node/%s/#" % HEX, "a/+/b"]))
    msg("registration-req", registration_req=M.RegistrationRequest())
    msg("report-error", report_error=M.ReportError(error=system_pb2.Error(
        swarm_id=pair(1, 1), task_id=pair(2, 2), error_id=9, content="payload is not a MqttTask")))
    msg("shutdown", shutdown=M.Shutdown())
    msg("tasks-req", tasks_req=M.TasksRequest())
    msg("tasks", tasks=M.TaskList(tasks=[M.TaskInfo(swarm_id=HEX, task_id=HEX[::-1], status="RUNNING",
                                                    iteration=1, image="busybox", has_exit_code=True,
                                                    exit_code=0, started_at="2024-01-01T00:00:00Z")]))
    msg("logs-req", logs_req=M.LogsRequest(task_id=HEX, offset=10, max=4096))
    msg("logs", logs=M.LogsChunk(data=b"hello\n", next_offset=6, finished=True))
    msg("task-logs", task_logs=M.TaskLogs(swarm_id=pair(1, 2), task_id=pair(3, 4), iteration=1,
                                          content=bytes(52) + b"x\x9c\x03\x00\x00\x00\x00\x01",
                                          key="t-0-1"))
    msg("drain", drain=M.DrainRequest(undrain=False))
    msg("task-lookup-token", task_lookup=M.TaskLookup(token="tok-123"))
    msg("task-lookup-ids", task_lookup=M.TaskLookup(swarm_id=pair(1, 2), task_id=pair(3, 4)))
    msg("task-identity", task_identity=M.TaskIdentity(found=True, swarm_id=pair(1, 2), task_id=pair(3, 4),
                                                      running=True, token_matched=True))
    # refused by ipc_validate
    msg("bad-command-name", command=M.Command(name="rm_rf", topic="x"))
    msg("bad-command-topic", command=M.Command(name="stop_node", topic="a\x01b"))
    msg("bad-publish-wildcard", publish=M.Publish(topic="manager/#", payload=b"x"))
    msg("bad-publish-empty", publish=M.Publish(topic="", payload=b"x"))
    msg("bad-publish-qos2", publish=M.Publish(topic="a/b", qos=2))
    msg("bad-registration-port", registration=M.RegistrationNotice(broker_host="h", broker_port=70000))
    msg("bad-registration-topic", registration=M.RegistrationNotice(broker_host="h", broker_port=1,
                                                                    topics=["ok", ""]))
    msg("bad-registration-host", registration=M.RegistrationNotice(broker_port=1))
    msg("bad-report-error-none", report_error=M.ReportError())
    msg("bad-report-error-id", report_error=M.ReportError(error=system_pb2.Error(error_id=99)))
    msg("bad-logs-req-upper", logs_req=M.LogsRequest(task_id=HEX.upper()))
    msg("bad-task-logs-short", task_logs=M.TaskLogs(swarm_id=pair(1, 2), task_id=pair(3, 4),
                                                    content=b"short", key="k"))
    msg("bad-task-lookup-empty", task_lookup=M.TaskLookup())
    msg("bad-tasks-id", tasks=M.TaskList(tasks=[M.TaskInfo(swarm_id="xyz", task_id=HEX)]))
    msg("bad-reply-control", reply=M.Reply(code=1, error="line\nbreak"))
    msg("bad-status-daemons", status=M.StatusReply(supervisor=M.SupervisorStatus(
        daemons=[M.DaemonState(name="d%d" % i) for i in range(17)])))
    write(t, "bad-no-body", b"")
    # refused by protobuf-c
    good = M.Msg(publish=M.Publish(topic="a/b", payload=b"0123456789")).SerializeToString()
    write(t, "bad-truncated", good[:-3])
    write(t, "bad-wire-type", b"\x4b\x00\x00")            # field 9 as a group start
    write(t, "bad-length", b"\x4a\xff\xff\xff\xff\x0f")    # length past the end
    write(t, "bad-utf8-string", field(8, 2, field(1, 2, b"stop\xff")))
    # oneof set twice (the last wins), unknown fields kept
    write(t, "two-bodies", M.Msg(shutdown=M.Shutdown()).SerializeToString() + good)
    write(t, "unknown-fields", good + field(99, 0, 7) + field(100, 2, b"junk"))
    write(t, "nested-unknown", field(9, 2, field(1, 2, b"a/b") + field(50, 2, b"??")))


# ---- mqtt: byte 0 picks the command (fuzz_mqtt.c), then the payload ----
def mqtt_seeds():
    t = "mqtt"
    clear(t)
    task = tasks_pb2.MqttTask(swarm_id=pair(1, 2), task_id=pair(3, 4), iteration=1, circular=0,
                              payload=b"print('hi')", image="busybox:latest", alias="t1",
                              network="bridge", auth_key="k", login_server="registry.local", gpu=False)
    write(t, "deploy", b"\x00" + task.SerializeToString())
    write(t, "deploy-no-task-id", b"\x00" + tasks_pb2.MqttTask(swarm_id=pair(1, 2)).SerializeToString())
    write(t, "deploy-garbage", b"\x00\xff\xff\xff\xff")
    write(t, "deploy-empty", b"\x00")
    write(t, "deploy-over-limit", b"\x80" + task.SerializeToString() + bytes(64))
    env = system_pb2.EnvId(swarm_id=pair(1, 2), task_id=pair(3, 4))
    write(t, "stop-task", b"\x01" + env.SerializeToString())
    write(t, "stop-task-zero", b"\x01" + system_pb2.EnvId(swarm_id=pair(1, 2)).SerializeToString())
    write(t, "stop-swarm", b"\x02" + pair(0xFFFFFFFFFFFFFFFF, 1).SerializeToString())
    write(t, "stop-swarm-zero", b"\x02")
    write(t, "stop-node", b"\x03anything")
    write(t, "collect", b"\x04set_node_status")
    write(t, "collect-spaces", b"\x04  set_overviews\n")
    write(t, "collect-utf8", "\x04caf\u00e9 \u2603 \U0001F600".encode("utf-8"))
    write(t, "collect-bad-utf8", b"\x04ab\xc0\xafcd\xed\xa0\x80")
    write(t, "collect-nul", b"\x04set\x00node")
    write(t, "collect-too-long", b"\x04" + b"a" * 1025)
    write(t, "collect-empty", b"\x04")
    write(t, "topic-deploy", b"\x05manta/node/x/deploy_task\n" + task.SerializeToString())
    write(t, "topic-unknown", b"\x05manta/node/x/reboot\npayload")
    write(t, "topic-no-slash", b"\x05stop_node\n")
    write(t, "topic-empty", b"\x05\npayload")
    write(t, "topic-wildcards", b"\x07a/+/b/#\n")
    write(t, "topic-bad-utf8", b"\x05a/\xff\xfe/stop_node\n")
    write(t, "topic-nul", b"\x05a\x00b/stop_swarm\n" + pair(5, 6).SerializeToString())
    write(t, "topic-trailing-slash", b"\x05manta/stop_task/\n")
    for name, text in (("id-hex", HEX), ("id-upper", HEX.upper()), ("id-0x", "0x" + HEX[:20]),
                       ("id-underscore", "dead_beef"), ("id-bad-underscore", "dead__beef"),
                       ("id-alias", "my-node"), ("id-2p128", "1" + "0" * 32),
                       ("id-spaces", "  ff  "), ("id-33", HEX + "0"), ("id-empty", "")):
        write(t, name, b"\x06" + text.encode())


# ---- cfg: TOML files ----
def cfg_seeds():
    t = "cfg"
    clear(t)
    for n in sorted(os.listdir(os.path.join(ROOT, "tests", "configs"))):
        if n.endswith(".toml"):
            with open(os.path.join(ROOT, "tests", "configs", n), "rb") as f:
                write(t, n[:-5], f.read())
    write(t, "full", """[identity]
secured_token = "${FUZZ_TOKEN}"
alias = "edge-1"
random_id = false

[metadata]
name = "fuzz-node"
created_at = 2024-05-14T09:31:07Z
version = "1.0.0"
description = "a \\"quoted\\" description\\twith a tab"

[network]
manager_host = "manager.local"
manager_port = "${FUZZ_PORT:50051}"
light_service_host = "127.0.0.1"
light_service_port = 50052

[mqtt]
ping_interval = 2
reconnect_attempts = 0
reconnect_delay = 0.5
broker_host = "broker.local"
broker_port = 1883
topics = ["manta/node/+/deploy_task", "manta/#"]

[containers]
gpu_enabled = "auto"
default_memory_limit = "1.5GiB"
default_cpu_limit = "0.5"
docker_network = "none"
runtime = "crun"
pull_timeout = 30
image_dir = "~/images"
network = "none"

[containers.log_config]
type = "json-file"
config = { max-size = "1m", max-file = 2 }

[datasets]
base_path = "~/data"
mount_readonly = true
cache_metadata = false
mappings = { mnist = "/data/mnist", "odd name" = "rel/path" }

[tasks]
max_concurrent = 4
task_timeout = 0
retry_attempts = 0
temp_folder = "${FUZZ_EMPTY:/tmp}"
cleanup_on_failure = "${FUZZ_UNSET:false}"
stream_logs = true

[resources]
reserve_cpu_percent = 0
reserve_memory_mb = 0
max_disk_usage_percent = 100
monitor_interval = 1

[logging]
level = "debug"
filename = "/var/log/manta.log"
log_to_file = false
log_to_console = true
debug_mode = false
max_file_size = "10 MB"
backup_count = 0

[security]
use_tls = true
cert_folder = "~root/certs"
verify_ssl = false
token_refresh_interval = 60
task_token_required = true

[paths]
run_dir = "/tmp/manta-fuzz/run"
state_dir = "/tmp/manta-fuzz/state"
""")
    write(t, "dotted-keys", 'identity.secured_token = "a.b.c"\nmqtt.topics = ["x"]\n'
          'containers.log_config.config.max-size = "5k"\n')
    write(t, "inline-tables", '[identity]\nsecured_token = "a.b.c"\n[datasets.mappings]\n'
          'a = "x"\n"b.c" = "~/y"\n')
    write(t, "bad-nul-escape", '[identity]\nsecured_token = "a.b\\u0000.c"\n')
    write(t, "bad-env", '[identity]\nsecured_token = "${NO_SUCH_VAR}"\n')
    write(t, "bad-env-syntax", '[identity]\nsecured_token = "${FUZZ:a.b.c"\n')
    write(t, "bad-home-user", '[identity]\nsecured_token = "a.b.c"\n[paths]\nrun_dir = "~nosuchuser/x"\n')
    write(t, "bad-size", '[identity]\nsecured_token = "a.b.c"\n[containers]\n'
          'default_memory_limit = "18446744073709551615T"\n')
    write(t, "bad-cpu", '[identity]\nsecured_token = "a.b.c"\n[containers]\ndefault_cpu_limit = "nan"\n')
    write(t, "bad-mapping-name", '[identity]\nsecured_token = "a.b.c"\n[datasets.mappings]\n".." = "/x"\n')
    write(t, "bad-log-opts", '[identity]\nsecured_token = "a.b.c"\n[containers.log_config.config]\n'
          'max-file = 0\ncompress = true\n')
    write(t, "bad-deep", "a = " + "[" * 40 + "]" * 40 + "\n")
    write(t, "bad-dots", "[" + ".".join(["a"] * 300) + "]\n")
    write(t, "bad-float-range", '[identity]\nsecured_token = "a.b.c"\n[mqtt]\nreconnect_delay = inf\n')
    write(t, "bad-int-env", '[identity]\nsecured_token = "a.b.c"\n[network]\nmanager_port = "${FUZZ_TOKEN}"\n')
    write(t, "bad-section-type", 'identity = 5\n')
    write(t, "bad-utf8", b'[identity]\nsecured_token = "a.b.c\xff"\n')
    write(t, "empty", "")


# ---- path: byte 0 picks the call and dataset (fuzz_path.c), then the path ----
def path_seeds():
    t = "path"
    clear(t)
    # bits 0-1: 0 O_RDONLY, 1 O_PATH, 2 O_DIRECTORY, 3 paths_is_file;
    # bits 2-4: ds, mapped, mapfile, rel, gone, file.csv, ds/sub, 7 = name from input
    def sel(how, name):
        return bytes([how | (name << 2)])
    seeds = {
        "ds-file": (0, 0, "a.txt"), "ds-sub-file": (0, 0, "sub/deeper/c.txt"),
        "ds-root": (2, 0, ""), "ds-dot": (1, 0, "./sub/./b.txt"), "ds-dotdot-inside": (0, 0, "sub/../a.txt"),
        "ds-climb": (0, 0, "../file.csv"), "ds-climb-late": (0, 0, "sub/../../x"),
        "ds-absolute": (0, 0, "/etc/passwd"), "ds-link-in": (0, 0, "in/b.txt"),
        "ds-link-sibling": (0, 0, "sibling"), "ds-link-up": (1, 0, "up/secret.txt"),
        "ds-link-out": (0, 0, "out"), "ds-link-abs": (0, 0, "abs/passwd"), "ds-link-proc": (1, 0, "proc/etc"),
        "ds-link-loop": (0, 0, "self"), "ds-link-back": (0, 0, "sub/back"),
        "ds-slashes": (3, 0, "sub//deeper///c.txt/"), "ds-missing": (0, 0, "nope/x"),
        "ds-dir-as-file": (0, 0, "sub"), "ds-file-as-dir": (2, 0, "a.txt"),
        "mapped-file": (0, 1, "m.txt"), "mapped-out": (0, 1, "out"), "mapped-cwd": (1, 1, "cwd/x"),
        "mapfile-root": (0, 2, ""), "mapfile-sub": (0, 2, "x"), "rel-file": (0, 3, "b.txt"),
        "rel-climb": (0, 3, "../a.txt"), "gone": (0, 4, ""), "base-file-dataset": (3, 5, ""),
        "base-multi-name": (0, 6, "deeper/c.txt"),
    }
    for n, (how, name, path) in sorted(seeds.items()):
        write(t, n, sel(how, name) + path.encode())
    named = {
        "name-escape": (0, "escape", ""), "name-dotdot": (0, "..", "x"), "name-dot": (0, ".", ""),
        "name-abs": (0, "/etc", "passwd"), "name-empty": (0, "", "a.txt"),
        "name-climb": (0, "ds/../..", "x"), "name-inner": (3, "ds/sub/../in", "b.txt"),
    }
    for n, (how, name, path) in sorted(named.items()):
        write(t, n, sel(how, 7) + name.encode() + b"\n" + path.encode())
    write(t, "nul-in-path", sel(0, 0) + b"a.txt\x00../../secret.txt")
    write(t, "long-path", sel(0, 0) + b"a/" * 2100)
    write(t, "long-name", sel(1, 7) + b"n" * 300 + b"\nx")


# ---- wire: byte 0 picks scan or unpack and the slice count (fuzz_wire.c) ----
def wire_seeds():
    t = "wire"
    clear(t)
    L = light_service_pb2

    def scan(name, kind, slices, body):
        write(t, name, bytes([kind | ((slices - 1) << 2)]) + body)

    def unary(name, which, slices, body):
        write(t, name, bytes([2 | ((slices - 1) << 2), which]) + body)

    lr = L.LightResult(task_id=pair(3, 4), swarm_id=pair(1, 2), tag="loss", data=b"\x00\x01" * 40)
    sg = L.SetGlobalRequest(swarm_id=pair(1, 2), task_id=pair(3, 4), tag="weights", data=b"w" * 100)
    scan("result", 0, 1, lr.SerializeToString())
    scan("result-7-slices", 0, 7, lr.SerializeToString())
    scan("result-64-slices", 0, 64, lr.SerializeToString())
    scan("global", 1, 1, sg.SerializeToString())
    scan("global-3-slices", 1, 3, sg.SerializeToString())
    scan("result-empty", 0, 1, b"")
    scan("result-no-data", 0, 2, L.LightResult(task_id=pair(3, 4), tag="t").SerializeToString())
    scan("result-tag-max", 0, 5, L.LightResult(tag="x" * 4096).SerializeToString())
    scan("result-tag-too-long", 0, 5, L.LightResult(tag="x" * 4097).SerializeToString())
    scan("result-tag-nul", 0, 1, field(3, 2, b"a\x00b"))
    scan("result-ids-split", 0, 1, field(1, 2, field(1, 0, 7)) + field(1, 2, field(2, 0, 9)))
    scan("result-data-twice", 0, 2, field(4, 2, b"first") + field(4, 2, b"second"))
    scan("result-pair-padded", 0, 1, field(1, 2, field(1, 0, 1) + field(9, 2, bytes(70))))
    scan("result-truncated", 0, 3, lr.SerializeToString()[:-5])
    scan("result-group", 0, 1, b"\x0b\x0c")
    scan("result-big-field", 0, 1, b"\xfa\xff\xff\xff\xff\x0f\x00")
    scan("result-huge-len", 0, 1, b"\x22\xff\xff\xff\xff\xff\xff\xff\xff\x7f")
    scan("result-long-varint", 0, 1, b"\x08" + b"\xff" * 10 + b"\x01")
    scan("result-tag-varint", 0, 1, b"\x18\x05")
    dreq = L.DataRequest(task_id=pair(3, 4), swarm_id=pair(1, 2), name="mnist")
    unary("data-request", 0, 1, dreq.SerializeToString())
    unary("data-request-sliced", 0, 4, dreq.SerializeToString())
    unary("dir-request", 1, 1, L.DirRequest(data_request=dreq, path="train/x.csv").SerializeToString())
    unary("dir-request-nul", 1, 2, field(1, 2, dreq.SerializeToString()) + field(2, 2, b"a\x00/../../etc"))
    unary("dir-request-nested-nul", 1, 1, field(1, 2, field(3, 2, b"mn\x00ist")))
    unary("read-text", 2, 1, L.ReadText(data_request=dreq, path=L.ProtoPath(name="mnist", value="a.txt"),
                                        encoding="utf-8", errors="strict", newline="\n").SerializeToString())
    unary("read-text-path-nul", 2, 1, field(2, 2, field(2, 2, b"a\x00b")))
    unary("result-query", 3, 1, L.LightResultQuery(task_id=pair(3, 4), swarm_id=pair(1, 2), tag="t",
                                                   size=10, method=1).SerializeToString())
    unary("get-global", 4, 1, L.GetGlobalRequest(swarm_id=pair(1, 2), tag="g").SerializeToString())
    unary("env-id", 5, 1, system_pb2.EnvId(swarm_id=pair(1, 2), task_id=pair(3, 4)).SerializeToString())
    unary("task-scheduling", 6, 2, tasks_pb2.TaskScheduling(node_ids=[pair(5, 6), pair(7, 8)],
                                                            task_id=pair(3, 4), task_to_schedule_alias="next",
                                                            swarm_id=pair(1, 2)).SerializeToString())
    unary("unary-garbage", 0, 1, b"\xff\xff\xff")
    unary("unary-wrong-wire-type", 0, 1, b"\x1d\x00\x00\x00\x00")


def main():
    ipc_seeds()
    mqtt_seeds()
    cfg_seeds()
    path_seeds()
    wire_seeds()


if __name__ == "__main__":
    main()
