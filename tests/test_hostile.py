"""Red team: hostile and broken submissions, alone and in a batch, under every sandbox.

Each must cost only what its own code breaks: cheats earn nothing, other items keep their
points, nothing outside the throwaway copy changes, no process outlives grading, no secret of
the grader's environment reaches the student or a report, and the grader stays bounded.
"""
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path

import pytest

from grader.batch import Entry, grade_batch
from grader.grade import grade_submission
from grader.sandbox import OUTPUT_LIMIT, Limits, bwrap_available

HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"
BASE = Path(__file__).resolve().parent / "fixtures" / "base_submission.py"
SANDBOXES = ["process"] + (["bwrap"] if bwrap_available() else [])
LIMITS = Limits(call_timeout=1.0, load_timeout=3.0, total_timeout=60.0)
SECRET = "tok-SECRET-4242"
AS_ROOT = os.geteuid() == 0
ALL = "all"

# fixture -> (the classes whose items may lose points, {item: status} that must hold)
EXPECTED = {
    "syntax_error": (ALL, {"SoftmaxLayer.forward": "error"}),
    "missing_module": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),  # imports tensorflow, uses it in TanhLayer.forward
    "exception_at_import": (ALL, {"SquaredError.eval": "error"}),
    "sys_exit_at_import": (ALL, {"SquaredError.eval": "error"}),
    "os_exit_at_import": ({"TanhLayer"}, {"TanhLayer.forward": "error", "TanhLayer.gradient": "error"}),
    "loop_at_import": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),
    "loop_in_method": ({"SoftmaxLayer"}, {"SoftmaxLayer.gradient": "timeout", "SoftmaxLayer.backward": "timeout"}),
    "sys_exit_in_method": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),
    "os_exit_in_method": ({"TanhLayer"}, {"TanhLayer.gradient": "error"}),
    "keyboard_interrupt_in_method": ({"SoftmaxLayer"}, {"SoftmaxLayer.forward": "error"}),
    "system_exit_in_method": ({"CrossEntropy"}, {"CrossEntropy.gradient": "error"}),
    # MemoryError or the time limit, whichever comes first on the machine: either is a clear status.
    "deep_recursion": ({"TanhLayer"}, {"TanhLayer.forward": ("timeout", "error")}),
    "memory_bomb": ({"TanhLayer"}, {"TanhLayer.forward": ("timeout", "error")}),
    "fork_bomb": ({"TanhLayer"}, {}),
    "output_flood": (set(), {}),
    "monkeypatch_numpy": ({"SoftmaxLayer"}, {"SoftmaxLayer.forward": "failed"}),
    "lying_ndarray": ({"SoftmaxLayer"}, {"SoftmaxLayer.forward": "failed"}),
    "returns_weird": ({"LinearLayer", "ReLuLayer", "LogisticSigmoidLayer", "TanhLayer", "SoftmaxLayer", "FullyConnectedLayer", "SquaredError"},
                      {"LinearLayer.forward": "failed", "ReLuLayer.forward": "failed", "FullyConnectedLayer.forward": "failed"}),
    "writes_files": (set(), {}),
    "outlives_grading": (set(), {}),
    "sigterm_handler": (set(), {}),
    "reads_environment": (set(), {}),
    "reads_reference": ({"SoftmaxLayer"}, {}),
}


def worker_processes() -> list[int]:
    """Descendants of this test process that run student code: none may be left after grading.

    The fork server this process keeps is not one of them; anything forked from it (a worker,
    or what a worker forked and orphaned, reparented to the server as subreaper) is.
    """
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    servers = [pid for pid in children.get(os.getpid(), []) if b"--fork-server" in _cmdline(pid)]
    found, stack = [], [(pid, False) for pid in children.get(os.getpid(), []) if pid not in servers]
    stack += [(pid, True) for server in servers for pid in children.get(server, [])]
    while stack:
        pid, from_server = stack.pop()
        stack += [(child, from_server) for child in children.get(pid, [])]
        cmdline = _cmdline(pid)
        # Other helpers of the test session (multiprocessing's resource tracker, say) are not ours.
        if from_server or b"worker.py" in cmdline or cmdline.startswith(b"bwrap"):
            found.append(pid)
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture
def arena(monkeypatch):
    """A class folder and an output folder the hostile code may try to write to, with a victim beside it."""
    monkeypatch.setenv("GRADER_SECRET_TOKEN", SECRET)
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    (root / "class" / "victim").mkdir(parents=True)
    shutil.copy(BASE, root / "class" / "victim" / "submission.py")
    (root / "out").mkdir()
    (root / "out" / "grades.csv").write_text("identifier,total\nvictim,42\n")
    (root / "out" / "victim.json").write_text('{"score": 42}')
    yield root
    shutil.rmtree(root, ignore_errors=True)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_submission_alone(name, sandbox, arena):
    if name == "reads_reference" and sandbox == "process":
        pytest.skip("the process sandbox does not hide the filesystem (README: threat model)")
    if name == "writes_files" and sandbox == "process" and not AS_ROOT:
        pytest.skip("the process sandbox guards files by dropping to nobody, which needs root (README: threat model)")
    shutil.copytree(HOSTILE / name, arena / "class" / name)
    before = snapshot(arena)
    result = grade_submission(arena / "class" / name, sandbox=sandbox, limits=LIMITS)
    affected, statuses = EXPECTED[name]
    for item in result.items:
        if item.name.startswith("Network."):
            continue
        cls = item.name.split(".")[0]
        if affected != ALL and cls not in affected:
            assert item.status == "passed", f"{item.name}: {item.feedback}"
    for item_name, status in statuses.items():
        allowed = status if isinstance(status, tuple) else (status,)
        assert result.item(item_name).status in allowed, result.item(item_name).feedback
    assert snapshot(arena) == before, "a file outside the throwaway copy changed"
    assert worker_processes() == []
    text = json.dumps(result.to_dict())
    assert SECRET not in text and len(result.output) <= OUTPUT_LIMIT + 100
    assert not [e for e in result.errors if "internal error" in e]


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_cheats_earn_nothing(sandbox, arena):
    for name in ("monkeypatch_numpy", "lying_ndarray") + (("reads_reference",) if sandbox == "bwrap" else ()):
        shutil.copytree(HOSTILE / name, arena / "class" / name)
        item = grade_submission(arena / "class" / name, sandbox=sandbox, limits=LIMITS).item("SoftmaxLayer.forward")
        values = [c for c in item.checks if c.name in ("values", "single_observation", "edges")]
        assert values and not any(c.passed for c in values), f"{name}: {item.feedback}"


def test_secret_never_reaches_the_student_or_a_report(arena, tmp_path):
    shutil.copytree(HOSTILE / "reads_environment", arena / "class" / "env")
    result = grade_submission(arena / "class" / "env", sandbox="process", limits=LIMITS)
    assert result.item("TanhLayer.forward").status == "passed"  # its output was only right with no secret in sight
    assert "GRADER_SECRET_TOKEN" not in result.output and "PATH" in result.output
    from grader.html_report import render_report

    assert SECRET not in render_report(result)


@pytest.mark.skipif(not AS_ROOT and not bwrap_available(), reason="needs root (process sandbox) or bubblewrap")
def test_rewriting_its_own_source_leaves_the_original_alone(arena):
    shutil.copytree(HOSTILE / "writes_files", arena / "class" / "w")
    original = (arena / "class" / "w" / "submission.py").read_bytes()
    grade_submission(arena / "class" / "w", sandbox="process" if AS_ROOT else "bwrap", limits=LIMITS)
    assert (arena / "class" / "w" / "submission.py").read_bytes() == original


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_batch_of_hostile_submissions_goes_on(sandbox, arena, spec):
    names = sorted(n for n in EXPECTED if AS_ROOT or sandbox == "bwrap" or n != "writes_files")
    for name in names:
        shutil.copytree(HOSTILE / name, arena / "class" / name)
    victim_before = snapshot(arena / "class" / "victim")
    entries = [Entry(p.name, p) for p in sorted((arena / "class").iterdir())]
    counts = grade_batch(entries, spec=spec, out_dir=arena / "batch-out", jobs=2, sandbox=sandbox, limits=LIMITS)
    assert counts["graded"] == len(names) + 1 and counts["failed"] == 0
    summary = json.loads((arena / "batch-out" / "summary.json").read_text())
    scores = {s["submission"]: s["score"] for s in summary["submissions"]}
    assert scores["victim"] == 100.0 and scores["outlives_grading"] == 100.0 and scores["output_flood"] == 100.0
    assert snapshot(arena / "class" / "victim") == victim_before
    assert (arena / "out" / "grades.csv").read_text() == "identifier,total\nvictim,42\n"
    assert worker_processes() == []
    assert SECRET not in (arena / "batch-out" / "index.html").read_text()
    # the grader's own memory stays bounded whatever the submissions did
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1024 * 1024  # KiB: under 1 GiB
