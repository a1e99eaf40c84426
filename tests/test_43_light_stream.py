"""mantad-light streams a 1 GiB (sparse) dataset file through GetBinaryData
chunk by chunk, one message in flight: the daemon's memory stays bounded
(VmRSS read from /proc during the stream), and a task that stops reading
holds the stream, not the daemon's memory."""

import os
import time

import pytest

import nodelib
from conftest import need_bins

GIB = 1 << 30


@pytest.fixture
def env(request):
    need_bins("mantad-light")
    e = nodelib.LightEnv(start=False, mappings={"big": "big.bin"})
    with open(os.path.join(e.datasets, "big.bin"), "wb") as f:
        f.truncate(GIB)
        f.seek(GIB - 5)
        f.write(b"tail!")
    e.start()
    yield e
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        print("---- light.log ----\n" + e.daemon.log()[-4000:])
    e.cleanup()


def test_1gib_sparse_rss_bounded(env):
    c = env.client(token=env.token)
    pid = env.daemon.pid
    base_rss, base_anon = nodelib.rss_kb(pid)
    watch = nodelib.RssPeak(pid, interval=0.02)
    total = 0
    last = b""
    t0 = time.monotonic()
    try:
        for chunk in c.call("Local/GetBinaryData", env.data_request("big"), timeout=300, raw=True):
            total += len(chunk.content)
            last = chunk.content
    finally:
        peak = watch.stop()
    took = time.monotonic() - t0
    assert total == GIB
    assert last.endswith(b"tail!")
    print("1 GiB in %.2fs (%.0f MiB/s); VmRSS %d -> peak %d KiB, RssAnon %d -> peak %d KiB"
          % (took, GIB / took / (1 << 20), base_rss, peak[0], base_anon, peak[1]))
    # Bounded: a few chunks and libgrpc's buffers, nowhere near the file.
    # Not under ASAN (make SANITIZE=1): its quarantine keeps up to 256 MiB
    # of freed chunks resident.
    if not nodelib.sanitized(pid):
        assert peak[0] - base_rss < 16 * 1024, peak
        assert peak[1] < 16 * 1024, peak
    rows = nodelib.wait_for(lambda: [r for r in nodelib.audit_rows(env.node.state_dir)
                                     if r["method"] == "Local/GetBinaryData"] or None, 5, "audit")
    assert rows[-1]["bytes"] >= GIB and rows[-1]["status"] == 0


def test_slow_reader(env):
    """A task that reads one chunk and sleeps: the daemon does not read
    ahead into memory (HTTP/2 flow control holds it)."""
    c = env.client(token=env.token)
    base_anon = nodelib.rss_kb(env.daemon.pid)[1]
    it = c.call("Local/GetBinaryData", env.data_request("big"), timeout=60, raw=True)
    next(it)
    time.sleep(1)
    rss, anon = nodelib.rss_kb(env.daemon.pid)
    # Grown by a few chunks at most (relative: a sanitizer build starts
    # higher), not by the 64 MiB and more a read-ahead would take.
    assert anon - base_anon < 16 * 1024, (base_anon, anon)
    it.cancel()
    # The cancelled stream is ended and recorded.
    rows = nodelib.wait_for(lambda: [r for r in nodelib.audit_rows(env.node.state_dir)
                                     if r["method"] == "Local/GetBinaryData"] or None, 5, "audit")
    assert rows[-1]["status"] == 1          # CANCELLED
    assert rows[-1]["bytes"] < 64 << 20
