"""The chaos test in short form (issue 6; `make chaos` runs the long one,
tests/chaos.py): 30 short tasks on runc while a random daemon gets SIGKILL
every few seconds, the broker or the manager restarts now and then and
bursts of 5-10 deploys are published at once (issue 15). At
the end every task has exactly one terminal update, no log line is lost or
duplicated, nothing is left behind and the node is online."""

import os

import pytest

import nodelib

pytestmark = nodelib.skip_unless_built("mantad-exec")


def test_chaos_short():
    import chaos
    rootfs_ok = nodelib.runtime_usable("runc", nodelib.busybox_rootfs(
        os.path.join(nodelib.tempfile.mkdtemp(prefix="mnt-chaos-probe-", dir="/tmp"),
                     "rootfs")))
    if not rootfs_ok[0]:
        pytest.skip(rootfs_ok[1])
    res = chaos.run(ntasks=30, seconds=110, settle=25, concurrent=2, verbose=True,
                    burst=(5, 10))
    print("tasks=%d kills=%d restarts=%d lost=%d duplicated=%d" % (
        res["tasks"], res["kills"], res["restarts"], res["lost"], res["duplicated"]))
    assert res["tasks"] == 30
    assert res["kills"] >= 3, res
    assert res["bursts"] >= 1, res
    assert res["lost"] == 0 and res["duplicated"] == 0, res
    assert not res["leftovers"] and res["online"], res
