#!/usr/bin/python3
"""devmanager: a development Manta manager written from WIRE.md.

gRPC side: serves every method of node.node_service.Node (WIRE.md section 2)
and records each call (method, metadata, decoded request, time). Calls must
carry the expected JWT in the `authorization` metadata (no `Bearer `), else
they end with UNAUTHENTICATED (and are recorded with rejected=True).

MQTT side: a paho client on the broker, subscribed to manager/#, records
heartbeats (manager/set_system_summary), task updates
(manager/update_task_status) and node status (manager/set_node_status),
decoded; and publishes commands to a node (node/<id>/<command>).

In-process use (tests):

    m = DevManager(grpc_port, broker_host, broker_port, token)
    m.start()
    m.wait_call("RegisterNode", timeout=10)
    m.deploy_task(node_hex, MqttTask(...))
    m.stop()

Standalone (make demo, by hand):

    /usr/bin/python3 tests/devmanager.py --grpc-port P --broker-port Q --token T
"""

import argparse
import json
import os
import signal
import struct
import sys
import threading
import time
import zlib
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYGEN = os.path.join(ROOT, "build", "py")
if PYGEN not in sys.path:
    sys.path.insert(0, PYGEN)

import grpc  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402,F401

from common import informations_pb2 as info_pb  # noqa: E402
from common import results_pb2 as results_pb  # noqa: E402
from common import system_pb2 as system_pb  # noqa: E402
from common import tasks_pb2 as tasks_pb  # noqa: E402

SERVICE = "node.node_service.Node"

# WIRE.md section 8: 6 x uint64 then 2 x uint16, little-endian, no padding.
LOG_HEADER = struct.Struct("<QQQQQQHH")
assert LOG_HEADER.size == 52

# method -> (kind, request class, response class)
# kind: "uu" unary-unary, "us" unary-stream (server stream), "su" stream-unary.
METHODS = {
    "GetTaskResult": ("us", results_pb.ResultQuery, results_pb.ChunkResultValues),
    "AddTaskResult": ("su", results_pb.Result, system_pb.Ok),
    "GetGlobal": ("us", results_pb.GlobalTag, results_pb.GlobalValue),
    "SetGlobal": ("su", results_pb.GlobalUpdate, system_pb.Ok),
    "RegisterNode": ("uu", info_pb.NodeOverview, info_pb.Registration),
    "IsAvailable": ("uu", system_pb.Empty, system_pb.Ok),
    "Ping": ("uu", info_pb.Ping, system_pb.Ok),
    "SetNodeStatus": ("uu", info_pb.NodeStatus, system_pb.Ok),
    "SetSystemSummary": ("uu", info_pb.SetSystemSummaryRequest, system_pb.Ok),
    "SetOverviews": ("uu", info_pb.DatasetOverviews, system_pb.Ok),
    "SendError": ("uu", system_pb.Error, system_pb.Ok),
    "StopSwarm": ("uu", tasks_pb.TaskUpdate, system_pb.Ok),
    "AddTaskLogs": ("su", system_pb.Logs, system_pb.Ok),
    "ScheduleTask": ("uu", tasks_pb.TaskScheduling, system_pb.Ok),
    "UpdateTask": ("uu", tasks_pb.TaskUpdate, system_pb.Ok),
}

# MQTT topics the node publishes on (WIRE.md section 5) -> payload class.
MANAGER_TOPICS = {
    "manager/set_system_summary": info_pb.SetSystemSummaryRequest,
    "manager/update_task_status": tasks_pb.TaskUpdate,
    "manager/set_node_status": info_pb.NodeStatus,
}


PROBE_PREFIX = "manager/devmanager-probe/"


# ---- ids (WIRE.md section 1) ----

def pair_to_hex(p):
    """PairId -> 32 lowercase hex digits."""
    return "%032x" % ((p.head << 64) | p.tail)


def hex_to_pair(h):
    """32-hex text (or an int) -> PairId."""
    v = h if isinstance(h, int) else int(h, 16)
    if v < 0 or v >= 1 << 128:
        raise ValueError("id out of range: %r" % (h,))
    return system_pb.PairId(head=v >> 64, tail=v & ((1 << 64) - 1))


def decode_logs(content):
    """WIRE.md section 8 framing -> dict with the header ids and the text.
    Raises ValueError on a malformed frame."""
    if len(content) < LOG_HEADER.size:
        raise ValueError("log frame shorter than its 52-byte header (%d bytes)"
                         % len(content))
    sh, st, nh, nt, th, tt, it, circ = LOG_HEADER.unpack_from(content, 0)
    try:
        raw = zlib.decompress(content[LOG_HEADER.size:])
    except zlib.error as e:
        raise ValueError("log frame: bad zlib stream: %s" % e)
    return {
        "swarm_id": "%032x" % ((sh << 64) | st),
        "node_id": "%032x" % ((nh << 64) | nt),
        "task_id": "%032x" % ((th << 64) | tt),
        "iteration": it,
        "circular": circ,
        "raw": raw,
        "text": raw.decode("utf-8", "replace"),
    }


def encode_logs(swarm_hex, node_hex, task_hex, iteration, circular, raw):
    """The inverse of decode_logs (for tests of the dev manager itself)."""
    s, n, t = (int(x, 16) for x in (swarm_hex, node_hex, task_hex))
    m = (1 << 64) - 1
    hdr = LOG_HEADER.pack(s >> 64, s & m, n >> 64, n & m, t >> 64, t & m,
                          iteration, circular)
    return hdr + zlib.compress(raw, 9)


def msg_to_dict(msg):
    return json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                     including_default_value_fields=False)


class Record(object):
    """One thing the dev manager received (a gRPC call or an MQTT message)."""

    __slots__ = ("kind", "method", "metadata", "request", "requests", "time",
                 "peer", "rejected", "extra")

    def __init__(self, kind, method, metadata=None, request=None,
                 requests=None, peer=None, rejected=False, extra=None):
        self.kind = kind            # "grpc" or "mqtt"
        self.method = method        # gRPC method name, or MQTT topic
        self.metadata = metadata or {}
        self.request = request      # decoded message (last one of a stream)
        self.requests = requests    # all messages of a client stream
        self.time = time.monotonic()
        self.peer = peer
        self.rejected = rejected
        self.extra = extra or {}

    @property
    def authorization(self):
        return self.metadata.get("authorization")

    def to_json(self):
        d = {
            "kind": self.kind,
            "method": self.method,
            "time": time.time(),
            "rejected": self.rejected,
        }
        if self.kind == "grpc":
            d["metadata"] = self.metadata
            d["peer"] = self.peer
        if self.requests is not None:
            d["requests"] = [msg_to_dict(r) for r in self.requests]
        elif self.request is not None:
            d["request"] = msg_to_dict(self.request)
        for k, v in self.extra.items():
            if k == "raw":
                v = v.hex()
            elif isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            d[k] = v
        return d

    def __repr__(self):
        return "Record(%s %s%s)" % (self.kind, self.method,
                                   " rejected" if self.rejected else "")


class _RawRequest(object):
    """A request as received: its bytes and the decoded message."""

    __slots__ = ("raw", "msg")

    def __init__(self, raw, msg):
        self.raw = raw
        self.msg = msg

    @staticmethod
    def parser(cls):
        return lambda b: _RawRequest(bytes(b), cls.FromString(b))


class Throttle(object):
    """A TCP relay in front of the manager's gRPC port that moves bytes at
    a set rate in each direction, as a slow link would: a message of any
    size arrives in pieces at that pace (libgrpc and grpcio only ever see
    whole messages, so a slow manager is made here, below HTTP/2).

    down: bytes/s from the manager to the node (None: unlimited);
    up: bytes/s from the node to the manager (a slow receiver);
    frozen: when set, nothing moves either way and the connections stay
    open (a link that went silent);
    hold_down_after: on each connection, only that many bytes go down (to
    the node) until release() (e.g. 4: an MQTT CONNACK, then nothing: a
    broker slow to acknowledge the subscriptions).
    Point the node at host:.port."""

    CHUNK = 64 * 1024

    def __init__(self, target_port, target_host="127.0.0.1", down=None, up=None,
                 host="127.0.0.1", hold_down_after=None):
        import socket
        self.target = (target_host, target_port)
        self.hold_down_after = hold_down_after
        self._released = threading.Event()
        self.down = down
        self.up = up
        self._moving = threading.Event()    # clear while frozen
        self.frozen = False
        self.moved = {"down": 0, "up": 0}
        self._lsn = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsn.bind((host, 0))
        self._lsn.listen(64)
        self._lsn.settimeout(0.2)
        self.port = self._lsn.getsockname()[1]
        self._stop = threading.Event()
        self._socks = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def frozen(self):
        return not self._moving.is_set()

    @frozen.setter
    def frozen(self, value):
        if value:
            self._moving.clear()
        else:
            self._moving.set()

    def _accept(self):
        import socket
        while not self._stop.is_set():
            try:
                a, _ = self._lsn.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                b = socket.create_connection(self.target, timeout=5)
            except OSError:
                a.close()
                continue
            for s in (a, b):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # Small buffers, as a slow link has: what the node sees
                # acknowledged is about what went through.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
            self._socks += [a, b]
            for src, dst, way in ((a, b, "up"), (b, a, "down")):
                t = threading.Thread(target=self._pump, args=(src, dst, way), daemon=True)
                t.start()
                self._threads.append(t)

    def release(self):
        """Lets the bytes held by hold_down_after go, and all after them."""
        self._released.set()

    def _hold(self, dst, data, done):
        """Sends what may go before the hold point, waits for release(),
        and returns the rest (None: stopped while waiting)."""
        cut = max(0, self.hold_down_after - done)
        if cut:
            dst.sendall(data[:cut])
        while not self._released.wait(0.2):
            if self._stop.is_set():
                return None
        return data[cut:]

    def _pump(self, src, dst, way):
        import select
        import socket
        t0, sent = time.monotonic(), 0
        conn_moved = 0
        while not self._stop.is_set():
            if self.frozen:
                self._moving.wait()         # until thawed, or closed
                t0, sent = time.monotonic(), 0
                continue
            rate = getattr(self, way)
            n = self.CHUNK if rate is None else max(1, min(self.CHUNK, rate // 20))
            try:
                if not select.select([src], [], [], 0.2)[0]:
                    continue
                data = src.recv(n)
            except (OSError, ValueError):
                break
            if not data:
                break
            if rate is not None:
                # Paced from the start of the stream: no burst after a pause.
                sent += len(data)
                ahead = t0 + sent / float(rate) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                elif ahead < -1:
                    t0, sent = time.monotonic(), 0
            try:
                if (way == "down" and self.hold_down_after is not None and
                        not self._released.is_set() and
                        conn_moved + len(data) > self.hold_down_after):
                    rest = self._hold(dst, data, conn_moved)
                    if rest is None:
                        break
                    conn_moved += len(data) - len(rest)
                    data = rest
                dst.sendall(data)
            except OSError:
                break
            conn_moved += len(data)
            self.moved[way] += len(data)
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        import socket
        self._stop.set()
        self._moving.set()                  # a frozen pump sees the stop
        self._released.set()
        try:
            self._lsn.close()
        except OSError:
            pass
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)
        for s in self._socks:
            s.close()


class DevManager(object):
    """A development Manta manager: gRPC Node service + an MQTT client.

    grpc_port: port to listen on (127.0.0.1 unless grpc_host); 0 picks one
    (see .grpc_port after start()).
    broker_host/broker_port: the MQTT broker given to nodes in Registration
    and used by the manager's own client; broker_port None: no MQTT side.
    token: the JWT expected in `authorization`; None accepts any call.
    topics: Registration.mqtt_topics; a list of format strings, "{node}" is
    replaced by the node id hex (default ["node/{node}/+"]).
    tls: None (plaintext gRPC) or {"cert": PATH, "key": PATH, "ca": PATH or
    None, "require_client_auth": bool} to serve gRPC over TLS, verifying
    client certificates against ca when require_client_auth.
    mqtt_tls: None or {"ca": PATH, "cert": PATH, "key": PATH} for the
    manager's own MQTT client to a TLS broker.
    """

    def __init__(self, grpc_port=0, broker_host="127.0.0.1", broker_port=None,
                 token="aaa.bbb.ccc", topics=None, jsonl=None, grpc_host="127.0.0.1",
                 echo=None, registration_broker_host=None,
                 registration_broker_port=None, tls=None, mqtt_tls=None):
        self.tls = tls
        self.mqtt_tls = mqtt_tls
        self.grpc_host = grpc_host
        self.grpc_port = grpc_port
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.reg_broker_host = registration_broker_host or broker_host
        self.reg_broker_port = registration_broker_port or broker_port or 0
        self.token = token
        self.topics = list(topics) if topics is not None else ["node/{node}/+"]
        self.jsonl_path = jsonl
        self.echo = echo            # callable(Record) or None

        self.lock = threading.Condition()
        self.records = []           # every Record, in arrival order
        self.globals = {}           # (swarm hex, tag) -> bytes
        self.results = []           # Result messages (data concatenated per call)
        self.logs = []              # decoded AddTaskLogs frames (dicts)
        self.nodes = {}             # node hex -> NodeOverview of its last RegisterNode
        # Per-method behaviour overrides: method -> grpc.StatusCode to fail with.
        self.fail = {}
        # method name -> seconds the answer is held back (a slow manager)
        self.answer_delay = {}
        # A manager built against the reference advances a swarm's task graph
        # on a task's logs upload, its only end-of-task signal (WIRE.md
        # section 6): callable(decoded frame dict) run on each AddTaskLogs.
        self.on_task_end = None
        # method -> seconds the handler waits, sending nothing, before it
        # answers (a stalled manager; it gives up early if the call ends).
        self.stall = {}

        self._server = None
        self._mqtt = None
        self._jsonl = None
        self._stopped = False

    # ---- life cycle ----

    def start(self):
        if self.jsonl_path:
            self._jsonl = open(self.jsonl_path, "a", buffering=1)
        self._start_grpc()
        if self.broker_port:
            self._start_mqtt()
        return self

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        if self._mqtt is not None:
            try:
                self._mqtt.disconnect()
            except Exception:
                pass
            self._mqtt.loop_stop()
            self._mqtt = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return "%s:%d" % (self.grpc_host, self.grpc_port)

    # ---- recording ----

    def _record(self, rec):
        with self.lock:
            self.records.append(rec)
            self.lock.notify_all()
        if rec.method.startswith(PROBE_PREFIX):
            return                  # our own round trips, not worth showing
        if self._jsonl is not None:
            try:
                self._jsonl.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")
            except Exception:
                pass
        if self.echo is not None:
            try:
                self.echo(rec)
            except Exception:
                pass

    def calls(self, method=None, kind="grpc", accepted_only=False):
        """Snapshot of the records of one gRPC method (or all)."""
        with self.lock:
            return [r for r in self.records
                    if r.kind == kind and (method is None or r.method == method)
                    and not (accepted_only and r.rejected)]

    def messages(self, topic=None):
        """Snapshot of the MQTT records (topic None: all)."""
        return self.calls(topic, kind="mqtt")

    @property
    def heartbeats(self):
        return self.messages("manager/set_system_summary")

    @property
    def task_updates(self):
        """The TaskUpdates, less the broker's redeliveries: a QoS 1 message
        the broker sends again (DUP set) because this client's PUBACK was
        lost when the broker stopped, as a subscriber that acknowledges
        after processing dedups them. What the node publishes twice is
        kept: a second publication from the node has no DUP."""
        seen, out = set(), []
        for r in self.messages("manager/update_task_status"):
            p = r.extra.get("payload")
            if r.extra.get("dup") and p in seen:
                continue
            seen.add(p)
            out.append(r)
        return out

    def task_ends(self, task_hex=None):
        """The AddTaskLogs uploads, which a manager built against the
        reference reads as the ends of tasks (one per run): [(task hex,
        iteration, circular, monotonic time)] from the frames' headers (the
        counters' low 16 bits), in arrival order."""
        return [(r.extra["log"]["task_id"], r.extra["log"]["iteration"],
                 r.extra["log"]["circular"], r.time)
                for r in self.calls("AddTaskLogs", accepted_only=True)
                if "log" in r.extra and (task_hex is None
                                         or r.extra["log"]["task_id"] == task_hex)]

    @property
    def node_statuses(self):
        return self.messages("manager/set_node_status")

    def wait_more(self, count, timeout):
        """Waits until more than count records have arrived, or timeout
        seconds; returns how many there are (a driver's idle wait)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.records) <= count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return len(self.records)

    def wait_record(self, pred, timeout, what="a record"):
        """Waits until a record satisfying pred arrives (or one already has);
        returns it. Raises AssertionError with what after timeout seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.lock:
            while True:
                for r in self.records[seen:]:
                    if pred(r):
                        return r
                seen = len(self.records)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "dev manager: timed out after %.1fs waiting for %s; "
                        "received: %s" % (timeout, what, self._summary()))
                self.lock.wait(min(left, 0.2))

    def wait_call(self, method, timeout=10.0, pred=None, after=None,
                  accepted_only=True):
        """Waits for a gRPC call of method (recorded after time `after`, a
        time.monotonic() value, if given) for which pred(record) holds."""
        def match(r):
            return (r.kind == "grpc" and r.method == method
                    and (after is None or r.time >= after)
                    and not (accepted_only and r.rejected)
                    and (pred is None or pred(r)))
        return self.wait_record(match, timeout, "gRPC %s" % method)

    def wait_message(self, topic, timeout=10.0, pred=None, after=None):
        def match(r):
            return (r.kind == "mqtt" and r.method == topic
                    and (after is None or r.time >= after)
                    and (pred is None or pred(r)))
        return self.wait_record(match, timeout, "MQTT message on %s" % topic)

    def _summary(self):
        counts = {}
        for r in self.records:
            k = "%s %s%s" % (r.kind, r.method, " (rejected)" if r.rejected else "")
            counts[k] = counts.get(k, 0) + 1
        return ", ".join("%s x%d" % kv for kv in sorted(counts.items())) or "nothing"

    def clear(self):
        with self.lock:
            del self.records[:]

    # ---- gRPC ----

    def _start_grpc(self):
        handlers = {}
        for name, (kind, req_cls, resp_cls) in METHODS.items():
            impl = getattr(self, "_rpc_" + name)
            wrapped = self._wrap(name, kind, impl)
            args = dict(request_deserializer=req_cls.FromString,
                        response_serializer=resp_cls.SerializeToString)
            if kind != "su":
                # Single requests keep their bytes too (Record.extra["raw"]):
                # what a reference-built manager would have to parse.
                args["request_deserializer"] = _RawRequest.parser(req_cls)
            if kind == "uu":
                handlers[name] = grpc.unary_unary_rpc_method_handler(wrapped, **args)
            elif kind == "us":
                handlers[name] = grpc.unary_stream_rpc_method_handler(wrapped, **args)
            elif kind == "su":
                handlers[name] = grpc.stream_unary_rpc_method_handler(wrapped, **args)
            else:
                raise AssertionError(kind)
        generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
        opts = [("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0)]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                   handlers=[generic], options=opts)
        addr = "%s:%d" % (self.grpc_host, self.grpc_port)
        if self.tls:
            def slurp(p):
                with open(p, "rb") as f:
                    return f.read()
            ca = self.tls.get("ca")
            creds = grpc.ssl_server_credentials(
                [(slurp(self.tls["key"]), slurp(self.tls["cert"]))],
                root_certificates=slurp(ca) if ca else None,
                require_client_auth=bool(self.tls.get("require_client_auth")))
            port = self._server.add_secure_port(addr, creds)
        else:
            port = self._server.add_insecure_port(addr)
        if port == 0:
            raise RuntimeError("dev manager: unable to bind %s:%d"
                               % (self.grpc_host, self.grpc_port))
        self.grpc_port = port
        self._server.start()

    def _wrap(self, name, kind, impl):
        def handler(request_or_iter, context):
            md = {}
            for k, v in context.invocation_metadata():
                md[k] = v
            peer = context.peer()
            if kind == "su":
                # A client stream the node cancelled is no call the manager
                # acted on: recorded as rejected, whether the cancel reached
                # grpc as an error or as an early end of the stream.
                try:
                    reqs = list(request_or_iter)
                except grpc.RpcError:
                    self._record(Record("grpc", name, md, None, [], peer, rejected=True,
                                        extra={"cancelled": True}))
                    raise
                req = reqs[-1] if reqs else None
                if not reqs or not context.is_active():
                    self._record(Record("grpc", name, md, req, reqs, peer, rejected=True,
                                        extra={"cancelled": not context.is_active()}))
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT
                                  if context.is_active() else grpc.StatusCode.CANCELLED,
                                  "dev manager: empty or cancelled %s stream" % name)
            else:
                reqs = None
                req = request_or_iter
            raw = None
            if isinstance(req, _RawRequest):
                raw, req = req.raw, req.msg
            auth = md.get("authorization")
            if self.token is not None and auth != self.token:
                self._record(Record("grpc", name, md, req, reqs, peer, rejected=True))
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "missing or invalid authorization token")
            code = self.fail.get(name)
            if code is not None:
                self._record(Record("grpc", name, md, req, reqs, peer, rejected=True,
                                    extra={"failed_with": code.name}))
                context.abort(code, "dev manager: %s set to fail" % name)
            rec = Record("grpc", name, md, req, reqs, peer)
            held = self.answer_delay.get(name)
            if held:
                time.sleep(held)        # the slow manager itself, not a test wait
                rec.extra["cancelled"] = not context.is_active()
            if raw is not None:
                rec.extra["raw"] = raw
            self._stall(name, context)
            if self.tls:
                # The client certificate's CN when mutual TLS (else None).
                cn = context.auth_context().get("x509_common_name") or [b""]
                rec.extra["peer_cn"] = cn[0].decode("utf-8", "replace") or None
            try:
                return impl(reqs if kind == "su" else req, context, rec)
            finally:
                self._record(rec)
        return handler

    def _stall(self, name, context):
        t = self.stall.get(name)
        if not t:
            return
        end = time.monotonic() + t
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.05)

    def _rpc_IsAvailable(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_RegisterNode(self, req, ctx, rec):
        node_hex = pair_to_hex(req.node_id)
        with self.lock:
            self.nodes[node_hex] = req
        rec.extra["node_id"] = node_hex
        return info_pb.Registration(
            mqtt_broker_host=self.reg_broker_host,
            mqtt_broker_port=self.reg_broker_port,
            mqtt_topics=[t.format(node=node_hex) for t in self.topics])

    def _rpc_Ping(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_SetNodeStatus(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_SetSystemSummary(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_SetOverviews(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_SendError(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_StopSwarm(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_ScheduleTask(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_UpdateTask(self, req, ctx, rec):
        return system_pb.Ok()

    def _rpc_AddTaskLogs(self, reqs, ctx, rec):
        content = b"".join(r.content for r in reqs)
        try:
            d = decode_logs(content)
        except ValueError as e:
            rec.extra["log_error"] = str(e)
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if reqs and reqs[0].HasField("timestamp"):
            d["timestamp"] = reqs[0].timestamp.ToDatetime()
        rec.extra["log"] = {k: v for k, v in d.items() if k not in ("raw", "timestamp")}
        with self.lock:
            self.logs.append(d)
        if self.on_task_end is not None:
            try:
                self.on_task_end(d)
            except Exception:
                pass
        return system_pb.Ok()

    def _rpc_SetGlobal(self, reqs, ctx, rec):
        if not reqs:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty SetGlobal stream")
        key = (pair_to_hex(reqs[0].swarm_id), reqs[0].tag)
        with self.lock:
            self.globals[key] = b"".join(r.data for r in reqs)
        return system_pb.Ok()

    def _rpc_GetGlobal(self, req, ctx, rec):
        key = (pair_to_hex(req.swarm_id), req.tag)
        with self.lock:
            data = self.globals.get(key)
        if data is None:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no global %r for swarm %s"
                      % (req.tag, key[0]))
        return iter([results_pb.GlobalValue(data=data)])

    def _rpc_AddTaskResult(self, reqs, ctx, rec):
        if not reqs:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty AddTaskResult stream")
        r = results_pb.Result()
        r.CopyFrom(reqs[0])
        r.data = b"".join(x.data for x in reqs)
        with self.lock:
            self.results.append(r)
        return system_pb.Ok()

    def _rpc_GetTaskResult(self, req, ctx, rec):
        with self.lock:
            found = [r for r in self.results
                     if r.swarm_id == req.swarm_id and r.task_id == req.task_id
                     and r.tag == req.tag]
        if req.method == results_pb.LAST:
            last = {}
            for r in found:
                last[pair_to_hex(r.node_id)] = r
            found = list(last.values())
        if req.size:
            found = found[-req.size:]
        return iter([results_pb.ChunkResultValues(node_id=r.node_id, data=r.data)
                     for r in found])

    # ---- MQTT ----

    def _mqtt_session(self):
        """(client id, clean_session) of the manager's MQTT connection."""
        return "devmanager-%d-%d" % (os.getpid(), id(self)), True

    def _start_mqtt(self):
        client_id, clean = self._mqtt_session()
        c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(min_delay=1, max_delay=1)
        if self.mqtt_tls:
            import ssl
            c.tls_set(ca_certs=self.mqtt_tls["ca"], certfile=self.mqtt_tls.get("cert"),
                      keyfile=self.mqtt_tls.get("key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._mqtt = c
        c.connect_async(self.broker_host, self.broker_port, keepalive=10)
        c.loop_start()

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            client.subscribe("manager/#", qos=1)

    def _on_disconnect(self, client, userdata, rc):
        pass

    def _on_message(self, client, userdata, msg):
        cls = MANAGER_TOPICS.get(msg.topic)
        extra = {"qos": msg.qos, "retain": bool(msg.retain), "payload": msg.payload,
                 "dup": bool(msg.dup)}
        req = None
        if cls is not None:
            try:
                req = cls.FromString(msg.payload)
            except Exception as e:  # protobuf DecodeError
                extra["decode_error"] = str(e)
        self._record(Record("mqtt", msg.topic, request=req, extra=extra))

    def wait_mqtt(self, timeout=10.0):
        """Waits until the manager's MQTT client is connected and subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self._mqtt
            if c is not None and c.is_connected():
                # Subscriptions are sent right after CONNACK; a round trip
                # through the broker proves they are in place.
                if self._probe(deadline - time.monotonic()):
                    return
            time.sleep(0.05)
        raise AssertionError("dev manager: MQTT client not connected to %s:%s "
                             "after %.1fs" % (self.broker_host, self.broker_port,
                                              timeout))

    def _probe(self, timeout):
        topic = "%s%d" % (PROBE_PREFIX, id(self))
        t0 = time.monotonic()
        try:
            self._mqtt.publish(topic, b"probe", qos=0)
        except Exception:
            return False
        try:
            self.wait_message(topic, timeout=max(0.1, min(timeout, 2.0)), after=t0)
            return True
        except AssertionError:
            return False

    def publish(self, topic, payload, qos=1, wait=True):
        """Publishes raw bytes; waits until the broker has them (QoS 1)
        unless wait is false (the caller waits on the returned info)."""
        if self._mqtt is None:
            raise RuntimeError("dev manager has no MQTT side")
        if isinstance(payload, str):
            payload = payload.encode()
        info = self._mqtt.publish(topic, payload, qos=qos)
        if qos > 0 and wait:
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                raise AssertionError("dev manager: publish on %s not acknowledged"
                                     % topic)
        return info

    def command_topic(self, node_hex, command):
        return "node/%s/%s" % (node_hex, command)

    def deploy_task(self, node_hex, task, wait=True):
        """task: common.tasks.MqttTask."""
        return self.publish(self.command_topic(node_hex, "deploy_task"),
                            task.SerializeToString(), wait=wait)

    def stop_task(self, node_hex, env_id):
        """env_id: common.system.EnvId."""
        return self.publish(self.command_topic(node_hex, "stop_task"),
                            env_id.SerializeToString())

    def stop_swarm(self, node_hex, swarm_id):
        """swarm_id: common.system.PairId or 32-hex text."""
        if not isinstance(swarm_id, system_pb.PairId):
            swarm_id = hex_to_pair(swarm_id)
        return self.publish(self.command_topic(node_hex, "stop_swarm"),
                            swarm_id.SerializeToString())

    def stop_node(self, node_hex):
        return self.publish(self.command_topic(node_hex, "stop_node"), b"")

    def collect_information(self, node_hex, text):
        return self.publish(self.command_topic(node_hex, "collect_information"),
                            text.encode("utf-8"))

    def raw(self, topic, payload, qos=1):
        return self.publish(topic, payload, qos=qos)


# ---- standalone ----

def describe(rec):
    """One human line for a Record."""
    t = time.strftime("%H:%M:%S")
    if rec.kind == "grpc":
        tag = "REJECTED " if rec.rejected else ""
        body = ""
        if rec.method == "RegisterNode" and rec.request is not None:
            pi = rec.request.platform_info
            body = "node_id=%s platform=%s %s %s host=%s" % (
                pair_to_hex(rec.request.node_id), pi.system, pi.release,
                pi.machine, pi.hostname)
        elif rec.method == "AddTaskLogs" and "log" in rec.extra:
            lg = rec.extra["log"]
            body = "task=%s swarm=%s:\n%s" % (lg["task_id"], lg["swarm_id"],
                                              lg["text"].rstrip("\n"))
        elif rec.requests is not None:
            body = "%d message(s)" % len(rec.requests)
        elif rec.request is not None:
            body = json.dumps(msg_to_dict(rec.request), sort_keys=True)
        return "%s grpc %s%s %s" % (t, tag, rec.method, body)
    if rec.method == "manager/set_system_summary" and rec.request is not None:
        m = rec.request.metrics_snapshot
        return ("%s mqtt heartbeat node=%s cpu=%.1f%% (%d cpus) mem=%d/%d MiB free"
                % (t, pair_to_hex(rec.request.node_id), m.cpu.usage_percent,
                   m.cpu.count, m.memory.available_bytes >> 20,
                   m.memory.total_bytes >> 20))
    if rec.request is not None:
        return "%s mqtt %s %s" % (t, rec.method,
                                  json.dumps(msg_to_dict(rec.request), sort_keys=True))
    return "%s mqtt %s %d bytes%s" % (t, rec.method, len(rec.extra.get("payload", b"")),
                                      " (undecodable)" if "decode_error" in rec.extra
                                      else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description="development Manta manager")
    ap.add_argument("--grpc-host", default="127.0.0.1")
    ap.add_argument("--grpc-port", type=int, default=50051)
    ap.add_argument("--broker-host", default="127.0.0.1")
    ap.add_argument("--broker-port", type=int, default=1883)
    ap.add_argument("--token", default="aaa.bbb.ccc",
                    help="JWT expected in `authorization` ('' accepts any)")
    ap.add_argument("--topic", action="append", dest="topics",
                    help="Registration.mqtt_topics entry, {node} = node id "
                    "(default node/{node}/+)")
    ap.add_argument("--jsonl", help="also append every record to this file")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="do not print heartbeats")
    a = ap.parse_args(argv)

    def echo(rec):
        if a.quiet and rec.method == "manager/set_system_summary":
            return
        print(describe(rec), flush=True)

    m = DevManager(grpc_port=a.grpc_port, grpc_host=a.grpc_host,
                   broker_host=a.broker_host, broker_port=a.broker_port or None,
                   token=a.token or None, topics=a.topics, jsonl=a.jsonl, echo=echo)
    m.start()
    print("devmanager: gRPC %s, broker %s:%d, token %s" % (
        m.address, a.broker_host, a.broker_port,
        "any" if not a.token else "required"), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: done.set())
    signal.signal(signal.SIGINT, lambda *x: done.set())
    while not done.wait(1):
        pass
    m.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
