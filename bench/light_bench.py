#!/usr/bin/python3
"""make bench (bench/bench.py runs every bench/*_bench.py): mantad-light.

- GetBinaryData throughput of a 1 GiB sparse dataset file, next to two
  floors measured in the same run with the same Python client: a plain
  gRPC server stream on loopback (Python grpcio, pre-built messages of the
  same chunk size, nothing read from disk) and raw loopback TCP;
- the daemon's VmRSS and RssAnon while streaming (peak, from /proc);
- World SetGlobal + GetGlobal round trip (1 KiB global, median of
  BENCH_ROUNDS, default 200) through mantad-light, next to the same two
  calls made straight to the development manager;
- a 64 MiB global through SetGlobal + GetGlobal, both ways, idem;
- a large global (BENCH_SLOW_MB, default 200 MB) up and down a link
  throttled to BENCH_SLOW_RATE bytes/s (default 20 MB/s; the dev manager's
  Throttle relay): time of each call and the daemon's VmRSS, RssAnon and
  PSS, peak while the call runs and once it ended (issue 11's figure).

Figures are printed, never asserted. BENCH_LIGHT_GIB sets the file size."""

import os
import socket
import statistics
import sys
import threading
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import grpc  # noqa: E402

import nodelib  # noqa: E402

CHUNK = 128 * 1024          # mantad-light's LIGHT_CHUNK
SIZE = int(float(os.environ.get("BENCH_LIGHT_GIB", "1")) * (1 << 30))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
SLOW_BYTES = int(float(os.environ.get("BENCH_SLOW_MB", "200")) * 1e6)
SLOW_RATE = int(float(os.environ.get("BENCH_SLOW_RATE", "20e6")))


def ident(b):
    return b


def drain(stream):
    n = 0
    for m in stream:
        n += len(m)
    return n


def mib_s(nbytes, secs):
    return nbytes / secs / (1 << 20)


# ---- floors ----

class FloorServicer(object):
    """A plain server stream: SIZE bytes in CHUNK-sized Binary messages,
    serialized once up front."""

    def __init__(self):
        from common import system_pb2
        self.msg = system_pb2.Binary(content=b"\0" * CHUNK).SerializeToString()

    def handler(self):
        def stream(req, ctx):
            for _ in range(SIZE // CHUNK):
                yield self.msg
        h = grpc.unary_stream_rpc_method_handler(stream, request_deserializer=ident,
                                                 response_serializer=ident)
        return grpc.method_handlers_generic_handler("floor.Floor", {"Stream": h})


def grpc_floor():
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                      options=[("grpc.so_reuseport", 0)])
    srv.add_generic_rpc_handlers((FloorServicer().handler(),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        f = ch.unary_stream("/floor.Floor/Stream", request_serializer=ident,
                            response_deserializer=ident)
        t0 = time.monotonic()
        n = drain(f(b""))
        took = time.monotonic() - t0
        ch.close()
        return mib_s(n, took)
    finally:
        srv.stop(None)


def tcp_floor():
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    buf = b"\0" * CHUNK

    def send():
        c, _ = lsn.accept()
        for _ in range(SIZE // CHUNK):
            c.sendall(buf)
        c.close()
    t = threading.Thread(target=send)
    t.start()
    s = socket.create_connection(lsn.getsockname())
    t0 = time.monotonic()
    n = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        n += len(b)
    took = time.monotonic() - t0
    t.join()
    s.close()
    lsn.close()
    return mib_s(n, took)


# ---- mantad-light ----

def light_stream(e):
    ch = grpc.insecure_channel(e.daemon.target())
    f = ch.unary_stream("/node.light_service.Local/GetBinaryData",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=ident)
    pid = e.daemon.pid
    watch = nodelib.RssPeak(pid, interval=0.01)
    t0 = time.monotonic()
    try:
        n = drain(f(e.data_request("big"), metadata=[("manta-task-token", e.token)]))
    finally:
        took = time.monotonic() - t0
        peak = watch.stop()
        ch.close()
    return mib_s(n, took), peak


def round_trips(set_fn, get_fn, data):
    times = []
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        set_fn(data)
        got = get_fn()
        times.append(time.monotonic() - t0)
        assert got == data
    return statistics.median(times) * 1e3


def big_trip(set_fn, get_fn, data):
    t0 = time.monotonic()
    set_fn(data)
    got = get_fn()
    took = time.monotonic() - t0
    assert got == data
    return mib_s(2 * len(data), took)


def mem_kb(pid):
    """(VmRSS, RssAnon, Pss) of pid in KiB."""
    rss, anon = nodelib.rss_kb(pid)
    pss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, anon, pss


class MemPeak(object):
    """mem_kb(pid) sampled every 50 ms until stop(): the largest of each."""

    def __init__(self, pid):
        self.pid, self.peak = pid, [0, 0, 0]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = [max(a, b) for a, b in zip(self.peak, mem_kb(self.pid))]
            except OSError:
                pass
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.peak


def manager_globals(address, swarm, tag, timeout=120):
    """(channel, set(data), get() -> data) straight to the manager's
    SetGlobal and GetGlobal, as mantad-light calls them."""
    from common import results_pb2 as R
    ch = grpc.insecure_channel(address, options=[
        ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    md = [("authorization", nodelib.TOKEN)]
    dset = ch.stream_unary("/node.node_service.Node/SetGlobal",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=ident)
    dget = ch.unary_stream("/node.node_service.Node/GetGlobal",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=R.GlobalValue.FromString)

    def mset(d):
        dset(iter([R.GlobalUpdate(swarm_id=swarm, tag=tag, data=d)]), metadata=md,
             timeout=timeout)

    def mget():
        return b"".join(v.data for v in dget(R.GlobalTag(swarm_id=swarm, tag=tag),
                                              metadata=md, timeout=timeout))
    return ch, mset, mget


def slow_global():
    """A SLOW_BYTES global up then down a SLOW_RATE link."""
    from devmanager import Throttle
    from node import light_service_pb2 as L
    thr = Throttle(0)
    e = nodelib.LightEnv(start=False, overrides={"network": {"manager_port": thr.port}})
    thr.target = ("127.0.0.1", e.manager.grpc_port)
    try:
        e.start()
        pid = e.daemon.pid
        c = e.client(token=e.token)
        ids = dict(swarm_id=nodelib.pair(e.swarm), task_id=nodelib.pair(e.task))
        data = os.urandom(1 << 20) * (SLOW_BYTES // (1 << 20)) + os.urandom(SLOW_BYTES % (1 << 20))
        idle = mem_kb(pid)
        print("  slow link, %d MB global at %.0f MB/s (Throttle relay); daemon idle:"
              " VmRSS %d, RssAnon %d, Pss %d KiB" % ((SLOW_BYTES / 1e6, SLOW_RATE / 1e6) + idle))
        for way in ("up", "down"):
            setattr(thr, way, SLOW_RATE)
            w = MemPeak(pid)
            t0 = time.monotonic()
            if way == "up":
                c.call("World/SetGlobal", iter([L.SetGlobalRequest(tag="s", data=data, **ids)]),
                       timeout=600)
                name = "SetGlobal (slow manager reading)"
            else:
                got = c.call("World/GetGlobal", L.GetGlobalRequest(tag="s", **ids), timeout=600)
                assert b"".join(v.data for v in got) == data
                del got
                name = "GetGlobal (slow manager sending)"
            took = time.monotonic() - t0
            peak = w.stop()
            setattr(thr, way, None)
            # After: once the call's memory is handed back (malloc_trim).
            time.sleep(1)
            after = mem_kb(pid)
            print("  %s: %.1f s (%.1f MB/s); peak VmRSS %d, RssAnon %d, Pss %d KiB;"
                  " after VmRSS %d, RssAnon %d, Pss %d KiB"
                  % ((name, took, SLOW_BYTES / took / 1e6) + tuple(peak) + after))
        # The same link without mantad-light: what the relay and the
        # Python manager manage on this machine.
        ch, mset, mget = manager_globals("127.0.0.1:%d" % thr.port, ids["swarm_id"], "m",
                                         timeout=600)
        for way, fn in (("up", lambda: mset(data)), ("down", lambda: mget() == data)):
            setattr(thr, way, SLOW_RATE)
            t0 = time.monotonic()
            assert fn() is not False
            took = time.monotonic() - t0
            setattr(thr, way, None)
            print("  the same %s straight to the manager (no mantad-light): %.1f s (%.1f MB/s)"
                  % ("SetGlobal" if way == "up" else "GetGlobal", took, SLOW_BYTES / took / 1e6))
        ch.close()
    finally:
        thr.close()
        e.cleanup()


def main():
    from node import light_service_pb2 as L
    from common import results_pb2 as R
    e = nodelib.LightEnv(start=False, mappings={"big": "big.bin"})
    try:
        with open(os.path.join(e.datasets, "big.bin"), "wb") as f:
            f.truncate(SIZE)
        e.start()
        idle = nodelib.rss_kb(e.daemon.pid)
        print("mantad-light bench (%d MiB file, %d KiB chunks; Python grpcio client)"
              % (SIZE >> 20, CHUNK >> 10))
        print("  idle: VmRSS %d KiB, RssAnon %d KiB" % idle)
        cold, _ = light_stream(e)      # fills the page cache (holes are zeroed there)
        light, peak = light_stream(e)
        floor = grpc_floor()
        tcp = tcp_floor()
        print("  GetBinaryData, page cache cold: %.0f MiB/s (the kernel zero-fills the holes)"
              % cold)
        print("  GetBinaryData, warm: %.0f MiB/s; floor: plain gRPC stream %.0f MiB/s (%.0f %%),"
              " raw loopback TCP %.0f MiB/s (%.0f %%)"
              % (light, floor, 100 * light / floor, tcp, 100 * light / tcp))
        print("  while streaming: VmRSS peak %d KiB, RssAnon peak %d KiB" % tuple(peak))

        c = e.client(token=e.token)
        ids = dict(swarm_id=nodelib.pair(e.swarm), task_id=nodelib.pair(e.task))

        def lset(d):
            c.call("World/SetGlobal", iter([L.SetGlobalRequest(tag="b", data=d, **ids)]),
                   timeout=120)

        def lget():
            return b"".join(v.data for v in c.call("World/GetGlobal",
                                                  L.GetGlobalRequest(tag="b", **ids),
                                                  timeout=120))
        ch, mset, mget = manager_globals(e.manager.address, ids["swarm_id"], "b")
        small = os.urandom(1024)
        lt = round_trips(lset, lget, small)
        mt = round_trips(mset, mget, small)
        print("  World SetGlobal+GetGlobal, 1 KiB: median %.2f ms through mantad-light,"
              " %.2f ms straight to the manager (+%.2f ms)" % (lt, mt, lt - mt))
        big = os.urandom(1 << 20) * 64
        lb = big_trip(lset, lget, big)
        mb = big_trip(mset, mget, big)
        print("  World 64 MiB global, both ways: %.0f MiB/s through mantad-light,"
              " %.0f MiB/s straight to the manager (%.0f %%)" % (lb, mb, 100 * lb / mb))
        ch.close()
    finally:
        e.cleanup()
    slow_global()


if __name__ == "__main__":
    main()
