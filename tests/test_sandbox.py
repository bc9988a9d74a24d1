"""The sandbox: student code runs in a child, with a scrubbed environment and limits; only data comes back."""
import time
from pathlib import Path

import numpy as np
import pytest

from grader.paths import reference_dir
from grader.sandbox import OUTPUT_LIMIT, ForkServer, Limits, Sandbox, WorkerDied, WorkerTimeout, bwrap_available

from grader.sandbox.process import fresh_worker_isolated

# A fresh interpreter ("process") is refused as root where a job's uid may not run it (pyenv under
# /root): the fork server serves there, and the refusal has its own test in test_hostile.py.
KINDS = (["process"] if fresh_worker_isolated() else []) + ["process+fork-server"] + (["bwrap"] if bwrap_available() else [])

PROBE = '''
import os, sys, time
import numpy as np

class Sub(np.ndarray):
    def __eq__(self, other):
        return True

class Probe:
    def env(self, name):
        return 1.0 if name in os.environ else 0.0
    def hang(self):
        while True:
            pass
    def die(self):
        os._exit(3)
    def shout(self, n):
        sys.stdout.write("x" * int(n))
        return 0.0
    def subclass(self):
        return np.arange(3.0).view(Sub)
    def objects(self):
        return np.array([object(), 1], dtype=object)
    def nothing(self):
        return None
    def text(self):
        return "hello"
    def exists(self, path):
        return 1.0 if os.path.exists(path) else 0.0
    def network(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        except OSError:
            return 0.0
        return 1.0
    def hog(self):
        return np.ones(10**9)
    def boom(self):
        raise ValueError("student bug")
'''


@pytest.fixture
def tmp_path():
    """A workspace the unprivileged user can pass through (pytest's own are private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=KINDS)
def box(request, tmp_path):
    root = tmp_path / "sub"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    kind, _, server = request.param.partition("+")
    sandbox = Sandbox(root, kind=kind, limits=Limits(call_timeout=2.0, memory_bytes=1024**3), load_request={
        "path": [str(root)], "path_last": [str(tmp_path)], "modules": ["probe"], "classes": {"P": ["probe", "Probe"]},
        "describe": {"P": ["env", "hang", "missing_method"]}},
        fork_server=ForkServer.shared() if server else False)
    result = sandbox.start()
    assert result == {"kind": "ok", "failed": {}, "loaded": ["P"], "methods": {"P": ["env", "hang"]}}
    yield sandbox
    sandbox.close()


def call(box, method, *args):
    handle = box.new("P")
    return box.call_many(handle, method, [args])[0]


def test_environment_is_scrubbed(box, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "s3cret")
    box.restart()  # started after the secret was set
    assert call(box, "env", "GRADER_SECRET_TOKEN").value == 1.0 - 1.0
    assert call(box, "env", "PATH").value == 1.0


def test_hang_times_out_and_a_fresh_worker_answers(box):
    started = time.monotonic()
    with pytest.raises(WorkerTimeout):
        call(box, "hang")
    assert time.monotonic() - started < 5
    box.restart()
    assert call(box, "env", "PATH").kind == "array"


def test_os_exit_is_a_death_with_its_status(box):
    with pytest.raises(WorkerDied, match="exited with status 3"):
        call(box, "die")


def test_printed_output_is_kept_apart_and_truncated(box):
    assert call(box, "shout", 3 * OUTPUT_LIMIT).value == 0.0
    box.close()
    assert box.printed_output.startswith("x" * 100)
    assert len(box.printed_output) < OUTPUT_LIMIT + 100
    assert box.printed_output.endswith("more characters not kept]")


def test_only_plain_data_comes_back(box):
    sub = call(box, "subclass")
    assert sub.kind == "array" and type(sub.value) is np.ndarray and sub.value.tolist() == [0.0, 1.0, 2.0]
    assert call(box, "objects").kind == "other" and "dtype object" in call(box, "objects").detail
    assert call(box, "nothing").kind == "none"
    assert call(box, "text").kind == "other" and call(box, "text").type == "builtins.str"
    boom = call(box, "boom")
    assert boom.kind == "error" and boom.error_type == "ValueError" and "probe.py" in boom.traceback


def test_memory_limit_turns_a_hog_into_an_error(box):
    outcome = call(box, "hog")
    assert outcome.kind == "error" and outcome.error_type == "MemoryError"


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_bubblewrap_hides_the_grader_and_the_network(tmp_path):
    root = tmp_path / "sub"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    box = Sandbox(root, kind="bwrap", limits=Limits(), load_request={
        "path": [str(root)], "path_last": [], "modules": ["probe"], "classes": {"P": ["probe", "Probe"]}})
    box.start()
    try:
        assert call(box, "exists", str(reference_dir() / "layers.py")).value == 0.0
        assert call(box, "exists", str(tmp_path.parent)).value == 0.0 or str(tmp_path.parent) == "/tmp"
        assert call(box, "network").value == 0.0
    finally:
        box.close()


def test_a_probe_begun_in_the_background_is_the_one_waited_for(monkeypatch):
    import subprocess

    from grader.sandbox import bubblewrap

    started = []
    real = subprocess.Popen

    def counted(*args, **kwargs):
        started.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counted)
    bubblewrap._probe.cache_clear()
    try:
        bubblewrap.probe_soon()
        answer = bubblewrap.probe()
        assert answer == bubblewrap.probe() and isinstance(answer[0], bool)
        assert len(started) == (1 if bubblewrap.shutil.which("bwrap") else 0)
        assert bubblewrap._begun is None
        bubblewrap.probe_soon()  # answered already: nothing more is started
        assert len(started) <= 1
    finally:
        monkeypatch.undo()
        bubblewrap._probe.cache_clear()
