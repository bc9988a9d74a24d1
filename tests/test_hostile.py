"""Red team: hostile and broken submissions, alone and in a batch, under every sandbox.

Each must cost only what its own code breaks: cheats earn nothing, other items keep their
points, nothing outside the throwaway copy changes, no process outlives grading, no secret of
the grader's environment reaches the student or a report, and the grader stays bounded.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from grader.course.batch import Entry, grade_batch
from grader.exceptions import GradingStopped
from grader.course.batch import grade_one as _REAL_GRADE_ONE
from grader.grade import grade_submission
from grader.sandbox import OUTPUT_LIMIT, Limits, bwrap_available
from grader.sandbox.process import others_can_run

ROOT = Path(__file__).resolve().parent.parent
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
    # second red-team pass: replies forged on the protocol pipe, /tmp filled
    "forged_huge_reply": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),
    "forged_deep_reply": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),
    "forged_list_reply": ({"TanhLayer"}, {"TanhLayer.forward": "error"}),
    "fills_tmp": ({"TanhLayer"}, {}),
    # third pass (issue 19): text the parser cannot hold is a note on its file; everything else is graded
    "deep_expression_helper": (set(), {}),
    "deep_expression_notebook": (set(), {}),
    "deep_json_notebook": (set(), {}),
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
    _hostile_alone(name, sandbox, arena)


#: What a self-check changes (the grader and its worker polling for each other's messages, the
#: truth remembered on disk) must not change what these cost: hangs, deaths, forged replies.
SELF_CHECK_CASES = ["loop_in_method", "os_exit_in_method", "sys_exit_in_method", "keyboard_interrupt_in_method",
                    "forged_huge_reply", "forged_deep_reply", "output_flood", "loop_at_import", "returns_weird"]


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("name", SELF_CHECK_CASES)
def test_hostile_submission_in_a_self_check(name, sandbox, arena, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    _hostile_alone(name, sandbox, arena, alone=True, remember_truth=True)


def _hostile_alone(name, sandbox, arena, **how):
    if name == "reads_reference" and sandbox == "process":
        pytest.skip("the process sandbox does not hide the filesystem (README: threat model)")
    if name == "writes_files" and sandbox == "process" and not AS_ROOT:
        pytest.skip("the process sandbox guards files by dropping to nobody, which needs root (README: threat model)")
    shutil.copytree(HOSTILE / name, arena / "class" / name)
    before = snapshot(arena)
    result = grade_submission(arena / "class" / name, sandbox=sandbox, limits=LIMITS, **how)
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
    from grader.outputs.html_report import render_report

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


# ----------------------------------------------------------------------------- second red-team pass (issue 12)

SLOW = Limits(call_timeout=90.0, load_timeout=10.0, total_timeout=300.0)
ISOLATED = [s for s in SANDBOXES if s == "bwrap" or AS_ROOT]  # the process sandbox is a boundary only as root


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_a_forged_reply_is_that_students_error_and_the_grader_stays_small(sandbox, arena):
    for name in ("forged_huge_reply", "forged_deep_reply", "forged_list_reply"):
        shutil.copytree(HOSTILE / name, arena / "class" / name)
        result = grade_submission(arena / "class" / name, sandbox=sandbox, limits=LIMITS)
        item = result.item("TanhLayer.forward")
        assert item.status == "error" and "which the grader does not read" in item.feedback, item.feedback
        assert result.item("SoftmaxLayer.forward").score > 0  # the other class is still graded
        assert not result.errors
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1024 * 1024  # KiB: the 128 MiB reply was never read


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed or cannot run here")
def test_the_grader_and_the_solution_cannot_be_found_under_bubblewrap(arena):
    # The whole visible file system, every sys.path entry. (The process sandbox hides the running
    # grader's files, the results and the secret, but not other copies lying on the disk: the
    # test below; README: threat model.)
    shutil.copytree(HOSTILE / "searches_for_the_grader", arena / "class" / "search")
    result = grade_submission(arena / "class" / "search", sandbox="bwrap", limits=SLOW)
    assert "FOUND: []" in result.output, result.output[-2000:]
    assert int(result.output.split("searched ")[1].split()[0]) > 1000  # it did look around
    assert result.item("SoftmaxLayer.forward").score == 0


@pytest.mark.skipif(not (AS_ROOT and bwrap_available() and shutil.which("unshare")), reason="needs root, bubblewrap and unshare")
def test_a_system_wide_install_in_dist_packages_is_hidden(tmp_path):
    """As Gradescope's setup.sh installs it: the grader in /usr/local/lib/python3.X/dist-packages, which
    bubblewrap's /usr binds. Installed in a private mount namespace, so the host stays as it was."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    dist = f"/usr/local/lib/{version}/dist-packages"
    site = str(Path(np.__file__).resolve().parent.parent)
    shutil.copytree(HOSTILE / "searches_for_the_grader", tmp_path / "search")
    grade = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import grader; assert grader.__file__.startswith(sys.argv[1]); "
             "from grader.grade import grade_submission; from grader.sandbox import Limits; "
             "r = grade_submission(sys.argv[3], sandbox='bwrap', limits=Limits(call_timeout=90)); print(r.output)")
    script = (f"set -e; mount -t tmpfs tmpfs /usr/local/lib; mkdir -p {dist}; "
              f"{sys.executable} -m pip install -q --no-deps --target {dist} {ROOT}; "
              f"{sys.executable} -S -c \"{grade}\" {dist} {site} {tmp_path / 'search'}")
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "FOUND: []" in run.stdout, run.stdout[-2000:]
    assert not Path(dist, "grader").exists()  # nothing of it left on the host


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_classmates_can_neither_be_read_rewritten_nor_killed(sandbox, arena, spec):
    shutil.copytree(HOSTILE / "attacks_classmates", arena / "class" / "aaa_attacker")
    for n in range(6):
        (arena / "class" / f"victim{n}").mkdir()
        shutil.copy(BASE, arena / "class" / f"victim{n}" / "submission.py")
    (arena / "class" / "victim" / "submission.py").unlink()
    (arena / "class" / "victim").rmdir()
    entries = [Entry(p.name, p) for p in sorted((arena / "class").iterdir())]
    limits = Limits(call_timeout=5.0, load_timeout=10.0, total_timeout=60.0)
    counts = grade_batch(entries, spec=spec, out_dir=arena / "out2", jobs=2, sandbox=sandbox, limits=limits)
    assert counts["failed"] == 0
    scores = {s["submission"]: s["score"] for s in json.loads((arena / "out2" / "summary.json").read_text())["submissions"]}
    assert all(scores[f"victim{n}"] == 100.0 for n in range(6)), scores
    said = json.loads((arena / "out2" / "aaa_attacker.json").read_text())["output"]
    assert "stole 0, rewrote 0, killed 0" in said, said
    assert worker_processes() == []


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_temporary_space_is_capped_and_nothing_is_left(sandbox, arena):
    shutil.copytree(HOSTILE / "fills_tmp", arena / "class" / "fill")
    result = grade_submission(arena / "class" / "fill", sandbox=sandbox, limits=LIMITS)
    written = int(result.output.split("wrote ")[1].split()[0])
    if sandbox == "bwrap":
        assert written <= 64  # MiB: the sandbox's /tmp is a capped tmpfs, not host memory without end
    assert not [p for p in Path("/tmp").iterdir() if p.name.startswith("leftover-") or p.name == "also-left"]


@pytest.mark.skipif(not AS_ROOT, reason="the process sandbox hides files by uid and mount namespace only as root")
def test_the_process_sandbox_hides_the_graders_files_the_results_and_the_secret(arena, spec):
    import grader

    secret = arena / "secret.txt"
    secret.write_text("instructor-only\n")
    (arena / "out" / "alice.json").write_text('{"score": 12}')
    probes = [Path(grader.__file__).resolve(), Path(grader.__file__).resolve().parent / "assignment" / "specs" / "default.toml",
              arena / "out" / "alice.json", secret]
    code = ("import os\nimport numpy as np\n\n\nclass TanhLayer:\n    def forward(self, X):\n"
            f"        readable = [p for p in {[str(p) for p in probes]!r} if os.access(p, os.R_OK)]\n"
            "        print('READABLE:', readable)\n        return np.tanh(X)\n")
    (arena / "class" / "snoop").mkdir()
    (arena / "class" / "snoop" / "snoop.py").write_text(code)
    from grader.course.batch import private_paths

    result = grade_submission(arena / "class" / "snoop", sandbox="process", limits=LIMITS,
                              hidden=private_paths(spec, arena / "out") + (str(secret),))
    assert "READABLE: []" in result.output, result.output


def test_a_bubblewrap_that_cannot_run_is_said_not_downgraded_silently(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from grader.cli import main
    from grader.sandbox import bubblewrap
    from grader.sandbox.parent import resolve_sandbox

    monkeypatch.setattr(bubblewrap, "probe", lambda: (False, "bubblewrap is installed but cannot create namespaces here"))
    choice = resolve_sandbox("auto")
    assert choice.kind == "process" and choice.note.startswith("bubblewrap is installed but cannot create namespaces here")
    with pytest.raises(Exception, match="--sandbox bwrap: bubblewrap is installed but cannot create namespaces here"):
        resolve_sandbox("bwrap")
    run = CliRunner().invoke(main, [str(BASE), "--out", str(tmp_path), "--gradescope", str(tmp_path / "gs.json")])
    assert run.exit_code == 0 and "warning: sandbox: bubblewrap is installed but cannot create namespaces" in run.output
    result = json.loads((tmp_path / "base_submission.json").read_text())
    assert result["sandbox"] == "process" and "cannot create namespaces" in result["sandbox_note"]
    assert "Sandbox: bubblewrap is installed but cannot create namespaces" in (tmp_path / "base_submission.html").read_text()
    tests = json.loads((tmp_path / "gs.json").read_text())["tests"]
    note = next(t for t in tests if t["name"] == "Sandbox (instructors only)")
    assert note["visibility"] == "hidden" and "cannot create namespaces" in note["output"]
    refused = CliRunner().invoke(main, [str(BASE), "--sandbox", "bwrap", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "--sandbox bwrap: bubblewrap is installed but cannot" in refused.output


def test_batch_grading_as_an_ordinary_user_in_the_process_sandbox_needs_consent(monkeypatch, tmp_path, arena):
    from grader import api
    from grader.exceptions import UsageError
    from grader.sandbox import bubblewrap

    monkeypatch.setattr(bubblewrap, "probe", lambda: (False, "bubblewrap is not installed"))
    monkeypatch.setattr(api, "as_root", lambda: False)
    monkeypatch.setattr("grader.sandbox.parent.process.as_root", lambda: False)
    (arena / "class" / "other").mkdir()
    shutil.copy(BASE, arena / "class" / "other" / "submission.py")
    with pytest.raises(UsageError, match="pass --sandbox process to accept it"):
        api.run(paths=[arena / "class"], out_dir=tmp_path / "o", batch=True, echo=lambda s: None)
    notes = []
    api.run(paths=[arena / "class"], out_dir=tmp_path / "o", batch=True, sandbox="process", echo=lambda s: None, note=notes.append,
            limits=LIMITS)
    assert any("not a boundary" in n for n in notes)
    summary = (tmp_path / "o" / "index.html").read_text()
    assert "not a boundary" in summary


def _as_nobody():
    os.setgid(65534)
    os.setuid(65534)


@pytest.mark.skipif(not AS_ROOT or not others_can_run(sys.executable), reason="needs root and an interpreter another user may run")
def test_a_grader_that_is_not_dumpable_keeps_its_environment_from_same_user_code(tmp_path):
    # As an ordinary user, student code runs as that user: marked not dumpable, the grader's
    # /proc/<pid>/environ (where an instructor's secret may be) is root's, not the user's.
    code = ("import os, sys, time\nsys.path.insert(0, sys.argv[1])\nfrom grader.sandbox.process import not_dumpable\n"
            "if sys.argv[2] == '1':\n    not_dumpable()\nprint(os.getpid(), flush=True)\ntime.sleep(30)\n")
    for dumpable, readable in (("0", True), ("1", False)):
        proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), dumpable], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "HW_SECRET": "s3cr3t"}, preexec_fn=_as_nobody)
        try:
            pid = int(proc.stdout.readline())
            reader = subprocess.run([sys.executable, "-c", f"print(b's3cr3t' in open('/proc/{pid}/environ', 'rb').read())"],
                                    capture_output=True, text=True, preexec_fn=_as_nobody)
            assert ("True" in reader.stdout) == readable, reader.stdout + reader.stderr
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not AS_ROOT or shutil.which("unshare") is None, reason="needs root and unshare (a private mount namespace)")
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_fresh_worker_under_a_job_uid_starts_although_the_grader_is_covered(tmp_path, sandbox):
    """One submission in the process sandbox starts a fresh interpreter (no fork server) as the
    job's user, in a mount namespace that covers the grader's folders, its worker's among them:
    the worker's files are read from a copy outside them (this graded 0 before that copy). The
    job's user must be able to run the interpreter: where this one lies in a folder it may not
    enter (pyenv under /root), the same interpreter is run through a bind mount it may, in a
    private mount namespace, so the host stays as it was. An interpreter built with a shared
    libpython (pyenv's) still names it at its own path, which the job's user cannot enter and
    bubblewrap does not bind: both sandboxes make that file visible (exit 127 before, a 0)."""
    site = str(Path(np.__file__).resolve().parent.parent)
    if sandbox == "process" and not all(os.stat(folder).st_mode & 0o005 == 0o005
                                        for folder in [Path(np.__file__).resolve().parent, *Path(site).parents]):
        pytest.skip("numpy is installed where another user may not read it")
    python, setup = sys.executable, ""
    if not others_can_run(sys.executable):
        base = Path(sys.base_prefix).resolve()
        python = str(Path("/mnt/grade-test-python", Path(sys.executable).resolve().relative_to(base)))
        setup = f"mount -t tmpfs tmpfs /mnt && mkdir /mnt/grade-test-python && mount --bind {base} /mnt/grade-test-python && "
    code = "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; from grader.cli import main; main(sys.argv[3:])"
    script = (setup + f"{python} -S -c '{code}' {ROOT} {site} {ROOT / 'reference'} --sandbox {sandbox} "
              f"--out {tmp_path / 'out'} -q")
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script], capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "GRADER_CACHE_DIR": str(tmp_path / "cache")})
    assert run.returncode == 0 and run.stdout.strip().endswith("100.00/100.00"), run.stdout[-2000:] + run.stderr[-2000:]


NO_START = "import os, sys; sys.stderr.write('error while loading shared libraries: libpython'); sys.stderr.flush(); os._exit(127)"


def _with_a_worker_that_cannot_start(entry, *args, **kwargs):
    """grade_one where no worker can start (pickled by name: the pool's process runs it whether it
    was forked or started afresh), as on an interpreter whose libpython the sandbox cannot see."""
    from grader.sandbox import process

    process._BOOT = NO_START
    return _REAL_GRADE_ONE(entry, *args, **kwargs)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_worker_that_cannot_start_is_the_graders_failure_not_the_students_zero(sandbox, monkeypatch, tmp_path, arena, spec):
    """A single run stops with exit status 1 and writes no result (Gradescope then says the
    autograder failed, not 0 for the student); a batch records a grader failure for each."""
    from click.testing import CliRunner

    import grader.course.batch as batch
    from grader.cli import main
    from grader.sandbox import process

    with monkeypatch.context() as patch:
        patch.setattr(process, "_BOOT", NO_START)
        patch.setattr(process.ForkServer, "_shared", None)  # a single run may take the fork server: a new one, broken too
        run = CliRunner().invoke(main, [str(ROOT / "reference"), "--sandbox", sandbox, "--out", str(tmp_path / "single"),
                                        "--gradescope", str(tmp_path / "results.json")])
    assert run.exit_code == 1, run.output
    assert f"internal error: the sandbox ({sandbox}) could not start its worker" in run.output, run.output
    assert "exited with status 127" in run.output and "your code" not in run.output
    assert not (tmp_path / "results.json").exists()

    monkeypatch.setattr(batch, "grade_one", _with_a_worker_that_cannot_start)
    (arena / "class" / "other").mkdir()
    shutil.copy(BASE, arena / "class" / "other" / "submission.py")
    entries = [Entry(p.name, p) for p in sorted((arena / "class").iterdir())]
    # the same fault on every submission stops the batch (no gradebook of zeros); each result kept says why
    with pytest.raises(GradingStopped, match="failed in the grader the same way \\(WorkerStartFailed"):
        grade_batch(entries, spec=spec, out_dir=tmp_path / "batch", jobs=2, sandbox=sandbox, limits=LIMITS)
    assert not (tmp_path / "batch" / "grades.csv").exists()
    for name in ("other", "victim"):
        result = json.loads((tmp_path / "batch" / f"{name}.json").read_text())
        assert [e.split(":", 2)[:2] for e in result["errors"]] == [["the grader failed on this submission", " WorkerStartFailed"]]
        assert {i["status"] for i in result["items"]} == {"error"}


def test_the_staged_worker_is_a_read_only_copy_outside_the_grader(tmp_path):
    from grader.sandbox import process
    from grader.sandbox.visibility import grader_paths, inside

    folder = Path(process.staged_worker())
    assert not inside(str(folder.resolve()), grader_paths())
    for name in process.WORKER_FILES:
        copy = folder / name
        assert copy.read_bytes() == (process.WORKER_SCRIPT.parent / name).read_bytes()
        assert copy.stat().st_mode & 0o777 == 0o644 and copy.stat().st_mtime == (process.WORKER_SCRIPT.parent / name).stat().st_mtime
    assert folder.stat().st_mode & 0o777 == 0o755
    cached = process.worker_bytecode()  # none where bytecode is not written (PYTHONDONTWRITEBYTECODE)
    assert sorted(p.name for p in folder.glob("__pycache__/*.pyc")) == sorted(Path(c).name for _, c in cached)


_UID_PROBE = "import os\nprint('student code runs as uid', os.getuid(), flush=True)\n"


@pytest.mark.skipif(not AS_ROOT, reason="a job uid is taken only as root")
def test_one_submission_in_the_process_sandbox_never_runs_as_root(arena):
    """As root, a self-check or Gradescope run in the process sandbox runs student code as a job
    uid of its own, whatever the interpreter: where that uid may not run it (pyenv under /root, as
    here), the fork server serves instead of a fresh interpreter (this ran as uid 0 before, and a
    classmate-attacking fixture graded that way killed every process of the machine)."""
    folder = arena / "class" / "probe"
    folder.mkdir()
    (folder / "submission.py").write_text(_UID_PROBE + BASE.read_text())
    run = subprocess.run([sys.executable, "-m", "grader", str(folder), "--sandbox", "process", "--out", str(arena / "o"),
                          "--json", str(arena / "probe.json"), "-q"], capture_output=True, text=True, timeout=300)
    result = json.loads((arena / "probe.json").read_text())
    assert run.returncode == 0 and result["score"] == 100.0, run.stderr[-2000:]
    uid = int(result["output"].split("runs as uid")[1].split()[0])
    assert uid not in (0, os.getuid()), result["output"]


@pytest.mark.skipif(not AS_ROOT, reason="a job uid is taken only as root")
def test_a_fresh_worker_that_could_not_drop_to_its_uid_is_refused_not_run_as_root(monkeypatch):
    from grader.sandbox import process

    monkeypatch.setattr(process, "others_can_run", lambda program: False)
    identity = process.JobIdentity(process.JOB_UID_BASE + 1, process.JOB_UID_BASE + 1, "/tmp")
    with pytest.raises(OSError, match="does not run student code as root"):
        process.preexec(LIMITS, identity, [])
    assert not process.fresh_worker_isolated()


@pytest.mark.skipif(not AS_ROOT, reason="the copy is made for workers under a job uid (root)")
@pytest.mark.skipif(AS_ROOT and not others_can_run(sys.executable),
                    reason="a job uid may not run this interpreter: without a fork server a batch is refused (test above)")
def test_a_batch_without_its_fork_server_leaves_no_copy_of_the_worker_behind(monkeypatch, arena, spec):
    """Without a fork server the pool's processes start fresh workers, each process from its own
    copy of the worker's files; a pool's process leaves without exit handlers, yet the copy goes."""
    import grader.course.batch as batch

    monkeypatch.setattr(batch, "grade_one", _without_fork_server)
    before = set(Path(tempfile.gettempdir()).glob("grade-worker-*"))
    for name in ("first", "second", "third"):
        (arena / "class" / name).mkdir()
        shutil.copy(BASE, arena / "class" / name / "submission.py")
    entries = [Entry(p.name, p) for p in sorted((arena / "class").iterdir())]
    counts = grade_batch(entries, spec=spec, out_dir=arena / "out3", jobs=2, sandbox="process", limits=LIMITS)
    scores = {s["submission"]: s["score"] for s in json.loads((arena / "out3" / "summary.json").read_text())["submissions"]}
    assert counts["failed"] == 0 and set(scores.values()) == {100.0}, scores
    assert set(Path(tempfile.gettempdir()).glob("grade-worker-*")) == before


def _no_fork_server(cls):
    raise OSError("no fork server here")


def _without_fork_server(entry, *args, **kwargs):
    """grade_one in a pool process that has no fork server (pickled by name: the pool's process runs
    it whether it was forked or started afresh); it then makes its own copy of the worker's files."""
    from grader.sandbox import process

    if process.ForkServer.shared.__func__ is not _no_fork_server:  # once per pool process
        process.ForkServer.shared = classmethod(_no_fork_server)
        process.staged_worker.cache_clear()  # a forked one makes its own
    return _REAL_GRADE_ONE(entry, *args, **kwargs)


def _killer(entry, *args, **kwargs):
    """grade_one, but the student called "killer" kills the pool process grading it (as a student
    running as the grader's own user can)."""
    if entry.id == "killer":
        os._exit(9)
    return _REAL_GRADE_ONE(entry, *args, **kwargs)


def test_a_submission_that_kills_its_pool_twice_costs_only_itself(monkeypatch, arena, spec):
    import grader.course.batch as batch

    monkeypatch.setattr(batch, "grade_one", _killer)
    (arena / "class" / "killer").mkdir()
    shutil.copy(BASE, arena / "class" / "killer" / "submission.py")
    (arena / "class" / "other").mkdir()
    shutil.copy(BASE, arena / "class" / "other" / "submission.py")
    entries = [Entry(p.name, p) for p in sorted((arena / "class").iterdir())]
    counts = grade_batch(entries, spec=spec, out_dir=arena / "o3", jobs=2, sandbox="process", limits=LIMITS)
    scores = {s["submission"]: s["score"] for s in json.loads((arena / "o3" / "summary.json").read_text())["submissions"]}
    assert scores == {"killer": 0.0, "other": 100.0, "victim": 100.0} and counts["graded"] == 3, [json.loads((arena / "o3" / f"{n}.json").read_text())["items"][0]["feedback"][:300] for n in ("other", "victim")]
    problem = json.loads((arena / "o3" / "killer.json").read_text())["problem"]
    assert problem.startswith("the process grading this submission was killed twice")


# Routes to a package the spec does not allow, one item each (tests/fixtures/hostile/imports_around_placeholders):
# with the real package each would be right; in every sandbox each meets the same placeholder.
IMPORT_ROUTES = {"LinearLayer.forward": "exec: mpmath", "ReLuLayer.forward": "importlib.import_module: sympy",
                 "LogisticSigmoidLayer.forward": "__import__: markupsafe", "TanhLayer.forward": "find_spec + module_from_spec: jinja2",
                 "SoftmaxLayer.forward": "builtins.__import__ and eval: click", "LogLoss.eval": "importlib.__import__: pluggy",
                 "CrossEntropy.eval": "pickle: pytest"}


def test_every_import_route_meets_the_same_placeholder_in_every_sandbox(arena):
    shutil.copytree(HOSTILE / "imports_around_placeholders", arena / "class" / "routes")
    verdicts = {}
    for sandbox in SANDBOXES:
        result = grade_submission(arena / "class" / "routes", sandbox=sandbox, limits=LIMITS)
        for name, route in IMPORT_ROUTES.items():
            item = result.item(name)
            assert item.status == "error" and item.score == 0, f"{sandbox}, {route}: {item.feedback}"
            package = route.split(": ")[1]
            assert f"`{package}` is not available while grading" in item.feedback, f"{sandbox}, {route}: {item.feedback}"
        # importlib.machinery.PathFinder, which skips sys.meta_path: the package folders' finders do not list it
        squared = result.item("SquaredError.eval")
        assert squared.status == "error" and "ImportError: packaging is not installed" in squared.feedback, squared.feedback
        for name in ("InputLayer.forward", "FullyConnectedLayer.forward", "FullyConnectedLayer.backward"):
            assert result.item(name).status == "passed", result.item(name).feedback
        assert {p["package"] for p in result.placeholders} == {r.split(": ")[1] for r in IMPORT_ROUTES.values()} | {"scipy"}
        verdicts[sandbox] = {i.name: (i.status, round(i.score, 6)) for i in result.items}
    assert all(v == verdicts["process"] for v in verdicts.values())
