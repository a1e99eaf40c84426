"""Every cmocka unit test binary (build/unit/tests/test_*, built by `make
unit`, which links build/unit to the flavor's build dir) as one case."""

import glob
import os
import subprocess

import pytest

import nodelib

UNIT_DIR = os.path.join(nodelib.ROOT, "build", "unit", "tests")
SRC_DIR = os.path.join(nodelib.ROOT, "tests", "unit")


def binaries():
    return sorted(p for p in glob.glob(os.path.join(UNIT_DIR, "test_*"))
                  if os.path.isfile(p) and os.access(p, os.X_OK))


def test_every_unit_source_is_built():
    """A tests/unit/test_X.c without its binary means `make unit` was not run
    or failed to build it: that must fail, not silently skip."""
    built = {os.path.basename(p) for p in binaries()}
    srcs = {os.path.basename(p)[:-2] for p in glob.glob(os.path.join(SRC_DIR, "test_*.c"))}
    missing = sorted(srcs - built)
    assert not missing, "unit tests not built (make unit): %s" % ", ".join(missing)


BINARIES = binaries()


@pytest.mark.parametrize("binary", BINARIES, ids=[os.path.basename(b) for b in BINARIES])
def test_unit(binary):
    try:
        r = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=nodelib.deadline(60),
                           cwd=nodelib.ROOT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        pytest.fail("%s still running after %.0f s (killed); output so far:\n%s"
                    % (os.path.basename(binary), e.timeout, out[-8000:]))
    assert r.returncode == 0, "%s exited with %d:\n%s" % (
        os.path.basename(binary), r.returncode, r.stdout[-8000:])
