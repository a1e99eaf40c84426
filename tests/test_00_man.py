"""Every man page (man/*.[0-9]) passes `mandoc -Tlint` without a message."""

import glob
import os
import subprocess

import pytest

import nodelib

PAGES = sorted(glob.glob(os.path.join(nodelib.ROOT, "man", "*.[0-9]")))


def test_pages_exist():
    names = {os.path.basename(p) for p in PAGES}
    want = ["mantactl.8", "manta.toml.5", "manta-node.7"]
    want += [os.path.basename(b) + ".8"
             for b in sorted(glob.glob(os.path.join(nodelib.BIN, "mantad-*")))]
    for w in want:
        assert w in names, "man/%s missing (have: %s)" % (w, sorted(names))


@pytest.mark.parametrize("page", PAGES, ids=[os.path.basename(p) for p in PAGES])
def test_mandoc_lint(page):
    r = subprocess.run(["mandoc", "-Tlint", page], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    assert r.stdout == "", "mandoc -Tlint %s:\n%s" % (os.path.basename(page), r.stdout)
