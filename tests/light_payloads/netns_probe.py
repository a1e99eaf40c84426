"""Run on the host inside a task's network namespace (nsenter --net=PATH),
which is what the task's own code sees: argv = light_port swarm task
other_task port... . Prints one JSON line: the gRPC codes of a Local/Exists
call without a token as the task, and naming another task; for each other
port, whether a TCP connection to 127.0.0.1:port succeeds."""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nodelib  # noqa: E402


def exists(port, swarm, task):
    from node import light_service_pb2 as L
    c = nodelib.LightClient("127.0.0.1:%d" % port)
    req = L.DirRequest(data_request=L.DataRequest(
        swarm_id=nodelib.pair(swarm), task_id=nodelib.pair(task), name="d"), path="")
    try:
        return nodelib.grpc_code(lambda: c.call("Local/Exists", req, timeout=10)).name
    finally:
        c.close()


def reach(port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


port, swarm, task, other = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
print(json.dumps({"self": exists(port, swarm, task),
                  "other": exists(port, swarm, other),
                  "reach": {p: reach(int(p)) for p in sys.argv[5:]}}))
