"""A task program (the __main__ of a zipapp, with the project's generated
protobuf modules beside it) that calls every method of the Light service
from inside its container, as task code does: at RPC_HOST:RPC_PORT, with
its ids from TASK_ID / SWARM_ID, and with MANTA_TASK_TOKEN as metadata
unless USE_TOKEN is replaced by False when the zipapp is built. It prints
one line "LIGHT-RESULTS <json>" and exits 0 when every call answered."""

import json
import os
import sys

import grpc

from common import results_pb2 as R
from common import system_pb2 as S
from common import tasks_pb2 as T
from node import light_service_pb2 as L

USE_TOKEN = True


def pair(h):
    v = int(h, 16)
    return S.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def main():
    sw, tk = os.environ["SWARM_ID"], os.environ["TASK_ID"]
    host, port = os.environ["RPC_HOST"], os.environ["RPC_PORT"]
    target = host if host.startswith("unix:") else "%s:%s" % (host, port)
    tok = os.environ.get("MANTA_TASK_TOKEN") if USE_TOKEN else None
    md = [("manta-task-token", tok)] if tok else None
    ch = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1),
                                                ("grpc.max_send_message_length", -1)])

    def stub(kind, svc, name, resp):
        f = {"uu": ch.unary_unary, "us": ch.unary_stream, "su": ch.stream_unary}[kind]
        s = f("/node.light_service.%s/%s" % (svc, name),
              request_serializer=lambda m: m.SerializeToString(),
              response_deserializer=resp.FromString)
        return lambda req: s(req, metadata=md, timeout=30)

    exists = stub("uu", "Local", "Exists", L.ExistsResponse)
    listdir = stub("uu", "Local", "ListDir", L.ListDirResponse)
    lines = stub("us", "Local", "ReadFileLines", S.Binary)
    binary = stub("us", "Local", "GetBinaryData", S.Binary)
    set_global = stub("su", "World", "SetGlobal", S.Ok)
    get_global = stub("us", "World", "GetGlobal", R.GlobalValue)
    add_result = stub("su", "World", "AddTaskResult", S.Ok)
    get_result = stub("us", "World", "GetTaskResult", R.ChunkResultValues)
    schedule = stub("uu", "World", "ScheduleTask", S.Ok)
    stop_swarm = stub("uu", "World", "StopSwarm", S.Ok)

    ids = dict(swarm_id=pair(sw), task_id=pair(tk))
    dr = L.DataRequest(name="ds", **ids)
    out = {"token": bool(tok)}
    out["exists"] = exists(L.DirRequest(data_request=dr, path="hello.txt")).value
    out["exists_escape"] = exists(L.DirRequest(data_request=dr, path="../../etc/passwd")).value
    out["listdir"] = sorted([p.value, p.is_file] for p in
                            listdir(L.DirRequest(data_request=dr, path="")).paths)
    out["lines"] = [b.content.decode() for b in lines(L.ReadText(
        data_request=dr, path=L.ProtoPath(value="hello.txt")))]
    out["binary"] = len(b"".join(b.content for b in binary(L.DataRequest(name="blob", **ids))))
    set_global(iter([L.SetGlobalRequest(tag="g-" + tk, data=b"from-" + tk.encode(), **ids)]))
    out["global"] = b"".join(v.data for v in get_global(
        L.GetGlobalRequest(tag="g-" + tk, **ids))).decode()
    add_result(iter([L.LightResult(tag="r", data=b"res-" + tk.encode(), **ids)]))
    out["result"] = [v.data.decode() for v in get_result(
        L.LightResultQuery(tag="r", size=1, method=R.LAST, **ids))]
    schedule(T.TaskScheduling(task_to_schedule_alias="next", **ids))
    # Another task of the same swarm: refused, whatever the credential.
    other = "%032x" % (int(tk, 16) ^ 1)
    try:
        exists(L.DirRequest(data_request=L.DataRequest(name="ds", swarm_id=pair(sw),
                                                       task_id=pair(other))))
        out["impersonate"] = "OK"
    except grpc.RpcError as e:
        out["impersonate"] = e.code().name
    stop_swarm(S.EnvId(**ids))
    print("LIGHT-RESULTS " + json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
