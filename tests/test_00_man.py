"""Every man page (man/*.[0-9]) passes `mandoc -Tlint` without a message."""

import glob
import os
import re
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


def _section(page, title):
    r = subprocess.run(["mandoc", "-Tascii", page], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    text = re.sub(".\b", "", r.stdout)    # overstrike (bold, underline)
    assert title in text, "%s has no section %s" % (page, title)
    body = text.split(title, 1)[1]
    end = body.find("\nSEE ALSO")
    return body if end < 0 else body[:end]


def test_differences_from_the_reference():
    """manta-node(7) lists what still differs from the reference node, in
    three groups, and names every key whose effect here `mantactl config
    check` reports (libcommon/cfg_notes.c); the README points to it."""
    page = os.path.join(nodelib.ROOT, "man", "manta-node.7")
    sec = _section(page, "DIFFERENCES FROM THE REFERENCE")
    for group in ("Signals a manager ignores or welcomes",
                  "Behaviours an operator sees", "Not implemented"):
        assert group in sec, "manta-node(7) lacks the group %r" % group
    with open(os.path.join(nodelib.ROOT, "libcommon", "cfg_notes.c")) as f:
        keys = sorted(set(re.findall(r'"([a-z_]+)\.([a-z_]+) = ', f.read())))
    assert len(keys) >= 10, keys
    flat = " ".join(sec.split())
    missing = ["%s.%s" % k for k in keys if k[1] not in flat]
    assert not missing, "config check notes keys manta-node(7) omits: %r" % missing
    with open(os.path.join(nodelib.ROOT, "README.md")) as f:
        readme = " ".join(f.read().split())
    assert "drop-in for the reference node" in readme
    assert "DIFFERENCES FROM THE REFERENCE" in readme
