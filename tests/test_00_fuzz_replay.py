"""The fuzz corpora (tests/fuzz/corpus/<target>/, seeds and crash-*
regression inputs) replayed through the replay build of each fuzz target
(gcc, ASAN+UBSAN): a sanitizer report, a leak or a broken invariant in any
input fails. `make fuzz` is what searches for new inputs; this only keeps
the ones we have passing."""

import glob
import os
import subprocess

import pytest

import nodelib

FUZZ_DIR = os.path.join(nodelib.ROOT, "tests", "fuzz")
CORPUS = os.path.join(FUZZ_DIR, "corpus")
BIN_DIR = os.path.join(nodelib.ROOT, "build", "fuzz", "replay")

ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:check_initialization_order=1",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
ENV.pop("FUZZ_VERBOSE", None)


def targets():
    return sorted(os.path.basename(p)[len("fuzz_"):-2]
                  for p in glob.glob(os.path.join(FUZZ_DIR, "fuzz_*.c")))


def make_argv():
    """make with tests/fuzz/fuzz.mk, whether the Makefile includes it yet or not
    (the file guards against a second inclusion)."""
    return ["make", "--no-print-directory", "-s", "-f", "Makefile", "-f", "tests/fuzz/fuzz.mk"]


@pytest.fixture(scope="module")
def replay_bins():
    # Built here (a fixture: outside the per-test alarm) when `make check`
    # did not build them already; a no-op when they are up to date.
    r = subprocess.run(make_argv() + ["fuzz-replay-bin"], cwd=nodelib.ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=nodelib.deadline(900))
    assert r.returncode == 0, "make fuzz-replay-bin failed:\n" + r.stdout[-8000:]
    return BIN_DIR


def test_every_target_has_a_corpus():
    for t in targets():
        files = [f for f in glob.glob(os.path.join(CORPUS, t, "*")) if os.path.isfile(f)]
        assert files, "tests/fuzz/corpus/%s/ is empty" % t


@pytest.mark.parametrize("target", targets())
def test_replay(replay_bins, target):
    binary = os.path.join(replay_bins, "fuzz_" + target)
    if not os.path.exists(binary):
        # fuzz.mk builds fuzz_path only once mantad-light/paths.c exists.
        pytest.skip("fuzz_%s not built (its sources are missing)" % target)
    try:
        r = subprocess.run([binary, os.path.join(CORPUS, target)], cwd=nodelib.ROOT, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=nodelib.deadline(120))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        pytest.fail("fuzz_%s replay still running after %.0f s:\n%s"
                    % (target, e.timeout, out[-8000:]))
    assert r.returncode == 0, "fuzz_%s failed on its corpus (exit %d):\n%s" % (
        target, r.returncode, r.stdout[-12000:])
    n = len([f for f in os.listdir(os.path.join(CORPUS, target))
             if os.path.isfile(os.path.join(CORPUS, target, f))])
    assert "replay: %d inputs, no failure" % n in r.stdout, r.stdout[-4000:]
