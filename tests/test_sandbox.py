"""The sandbox: student code runs in a child, with a scrubbed environment and limits; only data comes back."""
import time
from pathlib import Path

import numpy as np
import pytest

from grader.paths import reference_dir
from grader.sandbox import OUTPUT_LIMIT, ForkServer, Limits, Sandbox, WorkerDied, WorkerStartFailed, WorkerTimeout, bwrap_available

from grader.sandbox.process import fresh_worker_isolated

# A fresh interpreter per worker ("process") only where it can run as the job's uid: as root with an
# interpreter other users may not run (pyenv under /root), it is refused by design (test_hostile.py).
# "+polling": both sides poll for each other's messages before sleeping, as in a self-check.
KINDS = [pytest.param("process", marks=pytest.mark.skipif(not fresh_worker_isolated(), reason="a job's uid may not run this interpreter")),
         "process+fork-server", "process+fork-server+polling"] + (["bwrap", "bwrap+polling"] if bwrap_available() else [])

PROBE = '''
import os, sys, time
import numpy as np

class Sub(np.ndarray):
    def __eq__(self, other):
        return True

class Guard(type):
    def __delattr__(cls, name):  # a student's metaclass that never lets go of some attributes
        if name.startswith("trap"):
            while True:
                pass
        super().__delattr__(name)


class Probe(metaclass=Guard):
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
    scale = 1.0
    def plant(self):
        class Bomb:
            def __del__(self):
                while True:
                    pass
        Probe.bomb = Bomb()
        return 1.0
    def count(self):
        Probe.n = getattr(Probe, "n", 0) + 1
        Probe.scale = Probe.scale * 2
        return float(Probe.n * Probe.scale)
    history = []
    table = {"seen": [0.0]}
    weights = np.zeros(3)
    def keep(self):
        self.history.append(1.0)
        self.table["seen"].append(1.0)
        self.weights += 1.0
        return float(len(self.history) + len(self.table["seen"]) - 1 + self.weights[0])
    def trap(self):
        Probe.trap_x = 1.0
        return 0.0
    def trapped(self):
        return float(hasattr(Probe, "trap_x"))
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
    kind, *how = request.param.split("+")
    sandbox = Sandbox(root, kind=kind, limits=Limits(call_timeout=2.0, memory_bytes=1024**3), load_request={
        "path": [str(root)], "path_last": [str(tmp_path)], "modules": ["probe"], "classes": {"P": ["probe", "Probe"]},
        "describe": {"P": ["env", "hang", "missing_method"]}},
        fork_server=ForkServer.shared() if "fork-server" in how else False, polling=0.0005 if "polling" in how else 0.0)
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


#: A worker that dies before it is ready, as one whose interpreter cannot find its libpython does.
NO_START = "import os, sys; sys.stderr.write('error while loading shared libraries: libpython'); sys.stderr.flush(); os._exit(127)"


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_that_dies_before_it_is_ready_is_the_graders_fault(kind, tmp_path, monkeypatch):
    """Nothing of the submission has run before the worker says it is ready: a death (or no worker
    at all) until then is the grader's failure, never "sys.exit or os._exit in your code?"."""
    from grader.sandbox import process

    root = tmp_path / "sub"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    monkeypatch.setattr(process, "_BOOT", NO_START)
    kind, _, server = kind.partition("+")
    fork_server = ForkServer() if server else False  # started with the broken boot: it dies at once
    box = Sandbox(root, kind=kind, limits=Limits(call_timeout=2.0), load_request={
        "path": [str(root)], "path_last": [], "modules": ["probe"], "classes": {"P": ["probe", "Probe"]}},
        fork_server=fork_server)
    try:
        with pytest.raises(WorkerStartFailed) as failed:
            box.start()
    finally:
        box.close()
        if fork_server:
            fork_server.stop()
    said = str(failed.value)
    assert said.startswith(f"the sandbox ({kind}) could not start its worker") and "your code" not in said
    if not server:
        assert "before any of the submission's code ran: exited with status 127" in said and "libpython" in said


def test_a_worker_not_ready_in_time_is_the_graders_fault(tmp_path):
    root = tmp_path / "sub"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    box = Sandbox(root, kind="process", limits=Limits(load_timeout=1e-6), load_request={
        "path": [str(root)], "path_last": [], "modules": ["probe"], "classes": {"P": ["probe", "Probe"]}})
    try:
        with pytest.raises(WorkerStartFailed, match="before any of the submission's code ran: it was not ready in time"):
            box.start()
    finally:
        box.close()


def test_only_a_single_self_check_polls_and_only_with_a_core_for_each_side(monkeypatch):
    from grader.sandbox import parent

    monkeypatch.setattr(parent.os, "sched_getaffinity", lambda pid: {0})
    assert parent.polling_for_one() == 0.0  # one core: polling would take the time the other side needs
    monkeypatch.setattr(parent.os, "sched_getaffinity", lambda pid: {0, 1})
    assert parent.polling_for_one() == parent.SELF_CHECK_POLLING > 0
    monkeypatch.undo()
    import inspect

    from grader import api
    from grader.course import batch

    single = inspect.getsource(api._single)
    assert "alone=True" in single and "remember_truth=True" in single
    assert "alone=" not in inspect.getsource(batch) and "remember_truth" not in inspect.getsource(batch)


def test_fresh_puts_the_classes_back_as_importing_left_them(box):
    """What one check stores on a student class is not the next one's starting point."""
    assert call(box, "count").value == 2.0 and call(box, "count").value == 8.0  # n = 2, scale = 4
    box.post({"op": "fresh"}, "")
    assert call(box, "count").value == 2.0  # n and scale as importing left them


def test_fresh_refills_the_class_containers_and_runs_no_metaclass_code(box):
    """Entries added to a list, a dict or an array of the class are not the next check's starting
    point either (Adam moments kept in a dict on the class were 2.25/5 by the order of the checks),
    and a metaclass whose __delattr__ never returns does not make the next check time out."""
    assert call(box, "keep").value == 3.0 and call(box, "keep").value == 6.0
    assert call(box, "trap").value == 0.0 and call(box, "trapped").value == 1.0
    box.post({"op": "fresh"}, "")
    assert call(box, "keep").value == 3.0  # the list, the dict's list and the array as importing left them
    assert call(box, "trapped").value == 0.0


def test_fresh_runs_no_destructor_of_the_students(box):
    """A class attribute whose __del__ never returns, taken off by fresh: the next call answers at once
    (it used to cost the next check its time limit, charged to that check's item)."""
    assert call(box, "plant").value == 1.0
    box.post({"op": "fresh"}, "")
    assert call(box, "env", "PATH").value == 1.0  # no WorkerTimeout
