"""Batch grading: every export layout, parallel runs that survive crashes and hangs, resume, class outputs."""
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader import __version__
from grader.course.batch import Entry, content_hash, detect, grade_batch, looks_like_batch
from grader.exceptions import ClusterError, GradingStopped
from grader.assignment.spec import load_spec
from grader.course.batch import grade_one as _REAL_GRADE_ONE
from grader.sandbox import Limits

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUBMISSIONS = FIXTURES / "submissions"
BATCHES = FIXTURES / "batches"
FAST = Limits(call_timeout=1.0, total_timeout=60.0)


def zip_folder(folder: Path, archive: Path):
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.rglob("*"):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())


def test_folders_layout(tmp_path, spec):
    for name in ("fc_gradient_w", "tanh_missing"):
        shutil.copytree(SUBMISSIONS / name, tmp_path / name)
    (tmp_path / "empty").mkdir()
    (tmp_path / "README.txt").write_text("hi")
    assert looks_like_batch(tmp_path, spec)
    found = detect(tmp_path, tmp_path / "work")
    # a student folder without .py files is a student all the same: graded as 0 with the reason
    assert found.layout == "folders" and [e.id for e in found.entries] == ["empty", "fc_gradient_w", "tanh_missing"]
    assert found.skipped == [("README.txt", "not a folder, .zip, .py or .ipynb")]
    assert found.describe() == "batch layout: folders, 3 submissions; skipped 1: README.txt (not a folder, .zip, .py or .ipynb)"


def test_one_submission_split_over_folders_is_not_a_batch(spec):
    assert not looks_like_batch(SUBMISSIONS / "layout_absolute_import", spec)
    assert not looks_like_batch(SUBMISSIONS / "layout_relative_package", spec)


def test_zips_layout(tmp_path, spec):
    for name in ("fc_gradient_w", "aliases_correct"):
        zip_folder(SUBMISSIONS / name, tmp_path / f"{name}.zip")
    assert looks_like_batch(tmp_path, spec)
    found = detect(tmp_path, tmp_path / "work")
    assert found.layout == "zips" and [e.id for e in found.entries] == ["aliases_correct", "fc_gradient_w"]


def test_canvas_layout_groups_files_and_keeps_resubmissions(tmp_path, spec):
    assert looks_like_batch(BATCHES / "canvas", spec)
    found = detect(BATCHES / "canvas", tmp_path)
    assert found.layout == "canvas"
    assert [(e.id, e.name) for e in found.entries] == [("jonesbob_1002", "jonesbob"), ("leecarol_1003", "leecarol"),
                                                       ("smithalice_1001", "smithalice")]
    alice = next(e for e in found.entries if e.id == "smithalice_1001")
    assert sorted(p.name for p in alice.path.iterdir()) == ["layers.py", "objectives.py"]
    assert "return -2 * (Y - Yhat)" in (alice.path / "objectives.py").read_text()  # the -1 resubmission won
    assert ("smithalice_1001_5001_objectives.py", "superseded by smithalice_1001_5001_objectives-1.py") in found.skipped
    assert ("notes.txt", "not named like a Canvas submission file") in found.skipped


def test_canvas_zip_is_a_batch(tmp_path, spec):
    archive = tmp_path / "submissions.zip"
    zip_folder(BATCHES / "canvas", archive)
    assert looks_like_batch(archive, spec)
    assert len(detect(archive, tmp_path / "work").entries) == 3


def test_gradescope_layout_takes_names_and_emails(tmp_path, spec):
    found = detect(BATCHES / "gradescope", tmp_path)
    assert found.layout == "gradescope"
    assert [(e.id, e.name, e.email) for e in found.entries] == [
        ("submission_111111", "Alice Smith", "alice@example.edu"),
        ("submission_222222", "Bob Jones & Carol Lee", "bob@example.edu, carol@example.edu")]


def test_batch_outputs_and_their_formats(tmp_path, spec):
    found = detect(BATCHES / "gradescope", tmp_path / "work")
    counts = grade_batch(found.entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process")
    assert counts == {"graded": 2, "skipped": 0, "failed": 0, "total": 2}
    out = tmp_path / "out"
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert list(rows[0])[:7] == ["identifier", "name", "email", "total", "max_score", "raw_score", "late_penalty"]
    assert len(rows[0]) == 7 + 26 + 1 and list(rows[0])[-1] == "notes"
    assert rows[1]["raw_score"] == rows[1]["total"] and rows[1]["late_penalty"] == "0.00"  # the spec has no [late]
    assert rows[1]["identifier"] == "submission_222222" and rows[1]["name"] == "Bob Jones & Carol Lee"
    assert rows[1]["total"] == "95.00" and rows[1]["FullyConnectedLayer.forward"] == "0.00"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 2 and summary["submissions"][0]["email"] == "alice@example.edu"
    assert summary["submissions"][1]["items"]["FullyConnectedLayer.forward"]["diagnoses"] == ["bias ignored: h = xW without + b"]
    assert '<a href="submission_111111.html">submission_111111</a>' in (out / "index.html").read_text()
    for entry in found.entries:
        assert json.loads((out / f"{entry.id}.json").read_text())["resume_key"]


def crash_and_hang(tmp_path) -> list[Entry]:
    root = tmp_path / "class"
    for name in ("se_gradient_missing_2", "fc_gradient_w"):
        shutil.copytree(SUBMISSIONS / name, root / name)
    (root / "crasher").mkdir()
    (root / "crasher" / "s.py").write_text("import os\nos._exit(1)\n" + (FIXTURES / "base_submission.py").read_text())
    (root / "hanger").mkdir()
    (root / "hanger" / "s.py").write_text((SUBMISSIONS / "softmax_gradient_loops_forever" / "submission.py").read_text())
    return [Entry(p.name, p) for p in sorted(root.iterdir())]


def test_a_crashing_and_a_hanging_submission_do_not_stop_the_batch(tmp_path, spec):
    entries = crash_and_hang(tmp_path)
    counts = grade_batch(entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process", limits=FAST)
    assert counts["graded"] == 4
    scores = {r["submission"]: r["score"] for r in json.loads((tmp_path / "out" / "summary.json").read_text())["submissions"]}
    assert scores == {"crasher": 0.0, "fc_gradient_w": 96.0, "hanger": 89.0, "se_gradient_missing_2": 96.0}
    crasher = json.loads((tmp_path / "out" / "crasher.json").read_text())
    assert "died" in crasher["items"][0]["reason"] and "exited with status 1" in crasher["items"][0]["reason"]


def test_interrupted_batch_resumes_without_grading_anything_twice(tmp_path, spec):
    entries = crash_and_hang(tmp_path)
    out = tmp_path / "out"
    seen = []

    def interrupt_after_two(event, counts, result):
        if event == "done":
            seen.append(result.submission)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grade_batch(entries, spec=spec, out_dir=out, jobs=1, sandbox="process", limits=FAST, progress=interrupt_after_two)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "summary.json"}
    assert sorted(first) == sorted(f"{s}.json" for s in seen)
    assert len(json.loads((out / "summary.json").read_text())["submissions"]) == 2  # rebuilt from disk even so

    regraded = []
    counts = grade_batch(entries, spec=spec, out_dir=out, jobs=2, sandbox="process", limits=FAST, resume=True,
                         progress=lambda e, c, r: regraded.append(r.submission) if e == "done" else None)
    assert counts == {"graded": 2, "skipped": 2, "failed": 0, "total": 4}
    assert sorted(regraded) == sorted(e.id for e in entries if e.id not in seen)
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in first.items())
    fresh = grade_batch(entries, spec=spec, out_dir=tmp_path / "fresh", jobs=2, sandbox="process", limits=FAST)
    assert fresh["graded"] == 4
    resumed = json.loads((out / "summary.json").read_text())["submissions"]
    again = json.loads((tmp_path / "fresh" / "summary.json").read_text())["submissions"]
    assert [(s["submission"], s["score"]) for s in resumed] == [(s["submission"], s["score"]) for s in again]


def test_resume_regrades_a_changed_submission(tmp_path, spec):
    root = tmp_path / "class"
    shutil.copytree(SUBMISSIONS / "fc_gradient_w", root / "a")
    entries = [Entry("a", root / "a")]
    grade_batch(entries, spec=spec, out_dir=tmp_path / "out", jobs=1, sandbox="process")
    (root / "a" / "submission.py").write_text((FIXTURES / "base_submission.py").read_text())
    counts = grade_batch(entries, spec=spec, out_dir=tmp_path / "out", jobs=1, sandbox="process", resume=True)
    assert counts["graded"] == 1
    assert json.loads((tmp_path / "out" / "a.json").read_text())["score"] == 100


def test_dask_local_cluster_gives_the_same_results(tmp_path, spec):
    distributed = pytest.importorskip("dask.distributed")
    entries = [Entry(n, SUBMISSIONS / n) for n in ("fc_gradient_w", "tanh_one_minus_g", "aliases_correct")]
    grade_batch(entries, spec=spec, out_dir=tmp_path / "local", jobs=2, sandbox="process")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        counts = grade_batch(entries, spec=spec, out_dir=tmp_path / "dask", sandbox="process", dask_address=cluster.scheduler_address)
    assert counts["graded"] == 3
    local = json.loads((tmp_path / "local" / "summary.json").read_text())["submissions"]
    remote = json.loads((tmp_path / "dask" / "summary.json").read_text())["submissions"]
    assert [(s["submission"], s["score"], s["items"]) for s in local] == [(s["submission"], s["score"], s["items"]) for s in remote]


def _flaky(entry, *args):
    """grade_one, but the grader fails on the student called "b" (pickled by name, so a pool's
    process runs it whether it was forked or started afresh)."""
    if entry.id == "b":
        raise RuntimeError("simulated grader bug")
    return _REAL_GRADE_ONE(entry, *args)


def test_a_grader_failure_on_one_submission_is_recorded_and_the_batch_goes_on(tmp_path, spec, monkeypatch):
    import grader.course.batch as batch

    monkeypatch.setattr(batch, "grade_one", _flaky)
    entries = [Entry("a", SUBMISSIONS / "fc_gradient_w"), Entry("b", SUBMISSIONS / "tanh_missing")]
    counts = grade_batch(entries, spec=spec, out_dir=tmp_path, jobs=2, sandbox="process")
    assert counts == {"graded": 2, "skipped": 0, "failed": 1, "total": 2}
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["errors"] == ["the grader failed on this submission: RuntimeError: simulated grader bug"]
    assert {i["status"] for i in b["items"]} == {"error"}
    assert json.loads((tmp_path / "a.json").read_text())["score"] == 96.0


def test_a_process_with_threads_of_its_own_starts_its_pool_without_forking(tmp_path, spec):
    """Forking a multi-threaded process may deadlock the child (Python 3.12+ warns): a caller with a
    thread of its own gets a pool of fresh interpreters, which grade the same."""
    import threading
    import warnings

    from grader.course.batch import pool_context

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert pool_context().get_start_method() == "spawn"
        entries = [Entry("a", SUBMISSIONS / "fc_gradient_w"), Entry("b", SUBMISSIONS / "tanh_missing")]
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            counts = grade_batch(entries, spec=spec, out_dir=tmp_path, jobs=2, sandbox="process", limits=FAST)
    finally:
        stop.set()
        other.join()
    assert [str(w.message) for w in seen if "multi-threaded" in str(w.message)] == []
    assert counts == {"graded": 2, "skipped": 0, "failed": 0, "total": 2}
    assert json.loads((tmp_path / "a.json").read_text())["score"] == 96.0


def test_a_batch_run_by_a_threaded_caller_forks_no_threaded_process(tmp_path):
    """The same through the command, in a process of its own with a thread already running (as a
    caller's event loop or plugin may have): with every warning shown (-W always; -W error would
    hide this one, which os.fork drops when it is an error), neither the grader nor its pool's
    processes say they forked a multi-threaded process (Python 3.12+ would), and the batch grades."""
    import subprocess
    import sys

    for name in ("fc_gradient_w", "tanh_missing"):
        shutil.copytree(SUBMISSIONS / name, tmp_path / "class" / name)
    code = ("import sys, threading; threading.Thread(target=threading.Event().wait, daemon=True).start(); "
            "from grader.cli import main; main(sys.argv[1:])")
    run = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", code, str(tmp_path / "class"),
                          "--sandbox", "process", "-j", "2", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "multi-threaded" not in run.stderr, run.stderr[-2000:]
    scores = {s["submission"]: s["score"] for s in json.loads((tmp_path / "out" / "summary.json").read_text())["submissions"]}
    assert scores == {"fc_gradient_w": 96.0, "tanh_missing": 88.0}


def broken_export(root: Path) -> Path:
    """A Canvas download where some students' files cannot be graded, beside two good ones."""
    good = (FIXTURES / "base_submission.py").read_text()
    root.mkdir()
    (root / "alice_1001_5001_layers.py").write_text(good)
    (root / "bob_1002_5002_hw.py").write_text(good)
    with zipfile.ZipFile(root / "carol_1003_5003_hw.zip", "w") as z:  # `hw` as a file and as a folder
        z.writestr("hw", "a file")
        z.writestr("hw/layers.py", good)
    (root / "dave_1004_5004_hw.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with zipfile.ZipFile(root / "erin_1005_5005_hw.zip", "w") as z:  # a name too long for the file system
        z.writestr("x" * 300 + ".py", good)
    with zipfile.ZipFile(root / "frank_1006_5006_hw.zip", "w") as z:
        z.writestr("/".join(["deep"] * 60) + "/layers.py", good)
    (root / "gina_1007_5007_layers.py").symlink_to("/dev/zero")
    (root / "hank_LATE_1008_5008_layers.py").symlink_to("/root/.nothing-to-see")
    return root


def test_one_bad_submission_costs_only_itself(tmp_path, spec):
    export = broken_export(tmp_path / "canvas")
    found = detect(export, tmp_path / "work")
    assert found.layout == "canvas"
    counts = grade_batch(found.entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process", limits=FAST)
    assert counts["failed"] == 0  # none is blamed on the grader
    rows = {r["identifier"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text()))}
    assert rows["alice_1001"]["total"] == "100.00" and rows["bob_1002"]["total"] == "100.00"
    problems = {i: json.loads((tmp_path / "out" / f"{i}.json").read_text())["problem"] for i in rows}
    assert "the zip cannot be unpacked" in problems["carol_1003"]
    assert "not a readable zip file" in problems["dave_1004"]
    assert "cannot be unpacked" in problems["erin_1005"]
    assert "no Python file" in problems["frank_1006"]  # too deep to be taken: nothing to grade
    assert set(rows) == {f"{n}_{1001 + k}" for k, n in enumerate("alice bob carol dave erin frank gina hank".split())}
    for student in ("carol_1003", "dave_1004", "erin_1005", "frank_1006", "gina_1007", "hank_1008"):
        assert rows[student]["total"] == "0.00", student


def test_a_folder_of_links_and_devices_is_never_followed(tmp_path, spec):
    root = tmp_path / "class"
    (root / "zed").mkdir(parents=True)
    shutil.copy(FIXTURES / "base_submission.py", root / "zed" / "submission.py")
    (root / "zed" / "zero.py").symlink_to("/dev/zero")
    (root / "zed" / "up").symlink_to(tmp_path)
    (root / "linked").symlink_to(root / "zed")
    (root / "amy").mkdir()
    shutil.copy(FIXTURES / "base_submission.py", root / "amy" / "submission.py")
    assert content_hash(root / "zed") == content_hash(root / "zed")  # returns, never reads /dev/zero
    found = detect(root, tmp_path / "work")
    counts = grade_batch(found.entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process", limits=FAST)
    scores = {s["submission"]: s["score"] for s in json.loads((tmp_path / "out" / "summary.json").read_text())["submissions"]}
    assert scores == {"amy": 100.0, "linked": 0.0, "zed": 100.0} and counts["failed"] == 0
    assert "symbolic link" in json.loads((tmp_path / "out" / "linked.json").read_text())["problem"]


def test_student_text_cannot_start_a_formula_or_move_the_cursor(tmp_path, spec):
    from click.testing import CliRunner

    from grader.cli import main

    root = tmp_path / "gradescope"
    root.mkdir()
    (root / "submission_metadata.yml").write_text(
        "submission_1:\n  :submitters:\n  - :name: =HYPERLINK(\"http://evil\",\"x\")\n    :email: +1+cmd|' /C calc'!A0\n")
    (root / "submission_1").mkdir()
    shutil.copy(FIXTURES / "base_submission.py", root / "submission_1" / "submission.py")
    evil = root / "\x1b[2K\rtotal 100.00"
    evil.mkdir()
    shutil.copy(FIXTURES / "submissions" / "tanh_missing" / "submission.py", evil / "x.py")
    run = CliRunner().invoke(main, [str(root), "--out", str(tmp_path / "out"), "--sandbox", "process", "-q"])
    assert run.exit_code == 0, run.output
    assert "\x1b" not in run.output and "\r" not in run.output
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    cells = [c for row in rows[1:] for c in row[:3]]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells and "'+1+cmd|' /C calc'!A0" in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)


def test_official_seeds_are_secret_or_recorded_and_reused(tmp_path, spec, monkeypatch):
    from grader.checking.seeding import SEED_FILE, choose

    monkeypatch.delenv("GRADER_HIDDEN_SECRET", raising=False)
    assert choose(spec, official=False) == choose(spec, official=False)  # a self-check: fixed
    assert choose(spec, official=False).kind == "fixed" and choose(spec, official=False).seed == 0
    first = choose(spec, official=True, out_dir=tmp_path)
    assert first.kind == "batch" and (tmp_path / SEED_FILE).read_text().strip() == str(first.seed)
    assert choose(spec, official=True, out_dir=tmp_path) == first  # a regrade reuses it
    monkeypatch.setenv("GRADER_HIDDEN_SECRET", "instructor-only")
    secret = choose(spec, official=True, out_dir=tmp_path)
    assert secret.kind == "secret" and secret.shown is None and secret.seed != first.seed
    result = grade_batch_one(tmp_path, spec, secret)
    assert result["seed_kind"] == "secret" and result["seed"] is None and "instructor-only" not in json.dumps(result)


def grade_batch_one(tmp_path, spec, seeding) -> dict:
    entries = [Entry("a", SUBMISSIONS / "tanh_missing")]
    grade_batch(entries, spec=spec, out_dir=tmp_path / "o", jobs=1, sandbox="process", limits=FAST, seed=seeding)
    return json.loads((tmp_path / "o" / "a.json").read_text())


def test_every_student_of_a_canvas_download_is_in_both_gradebooks(tmp_path, spec):
    root = tmp_path / "canvas"
    root.mkdir()
    good = (FIXTURES / "base_submission.py").read_text()
    (root / "smithalice_1001_5001_layers.py").write_text(good)
    (root / "jonesbob_LATE_1002_5002_layers.py").write_text(good.replace("return g * (1 - g) + EPS", "return g + EPS"))
    with zipfile.ZipFile(root / "leecarol_1003_5003_hw.zip", "w"):
        pass  # an empty zip
    (root / "kimdan_1004_5004_hw.zip").write_bytes(b"not a zip at all")
    (root / "ngoeve_1005_5005_notes.txt").write_text("my code is on my laptop")
    found = detect(root, tmp_path / "work")
    grade_batch(found.entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process", limits=FAST)
    rows = {r["identifier"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text()))}
    assert set(rows) == {"smithalice_1001", "jonesbob_1002", "leecarol_1003", "kimdan_1004", "ngoeve_1005"}
    assert rows["leecarol_1003"]["total"] == "0.00" and "no Python file in the submission" in rows["leecarol_1003"]["notes"]
    assert "not a readable zip" in rows["kimdan_1004"]["notes"] and "no Python file" in rows["ngoeve_1005"]["notes"]
    assert rows["jonesbob_1002"]["notes"] == "marked late by the export"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert not any(s["errors"] for s in summary["submissions"])  # none is blamed on the grader
    # Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then the assignment;
    # ID is the Canvas user id from the file names; a "Points Possible" row as in Canvas's own export
    canvas = list(csv.reader(io.StringIO((tmp_path / "out" / "canvas_grades.csv").read_text())))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", spec.title]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][5] == "100.00"
    ids = {row[1]: row[5] for row in canvas[2:]}
    assert ids == {"1001": "100.00", "1002": "96.00", "1003": "0.00", "1004": "0.00", "1005": "0.00"}
    assert all(len(row) == 6 for row in canvas)


def test_every_zero_and_every_error_says_why_in_the_gradebook(tmp_path, spec):
    root = tmp_path / "class"
    root.mkdir()
    (root / "empty.py").write_text("")
    (root / "broken").mkdir()
    (root / "broken" / "layers.py").write_text("class SquaredError:\n    def eval(self, Y, Yhat)\n        return 0\n")
    shutil.copytree(SUBMISSIONS / "fc_gradient_w", root / "good")
    found = detect(root, tmp_path / "work")
    grade_batch(found.entries, spec=spec, out_dir=tmp_path / "out", jobs=2, sandbox="process", limits=FAST)
    rows = {r["identifier"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text()))}
    assert rows["empty"]["total"] == "0.00"
    assert rows["empty"]["notes"] == ("0 points: every item missing; e.g. SquaredError.eval: no class named SquaredError "
                                      "or LeastSquares was found in any .py file of the submission")
    assert rows["broken"]["total"] == "0.00"
    assert rows["broken"]["notes"] == "problem while grading: syntax error: layers.py, line 2: expected ':'"
    assert rows["good"]["notes"] == ""


# ----------------------------------------------------------------------------- a cluster that cannot run the grader

#: Run in a dask worker (client.run(exec, BLOCK_GRADER, {})) or at a Python's start (sitecustomize):
#: from then on `import grader` fails there, as on a machine where nn-grader is not installed.
BLOCK_GRADER = """
import sys
class _NoGrader:
    def find_spec(self, name, path=None, target=None):
        if name == "grader" or name.startswith("grader."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoGrader())
for _name in [m for m in sys.modules if m == "grader" or m.startswith("grader.")]:
    del sys.modules[_name]
"""


def class_folder(root: Path, names=("fc_gradient_w", "tanh_missing")) -> Path:
    root.mkdir(parents=True)
    for name in names:
        shutil.copytree(SUBMISSIONS / name, root / name)
    return root


def test_workers_that_cannot_import_the_grader_stop_the_run_before_grading(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    distributed = pytest.importorskip("dask.distributed")
    subs = class_folder(tmp_path / "subs")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(exec, BLOCK_GRADER, {})
        [worker] = client.run(lambda: 0)  # noqa: E731 - the one worker's address
        run = CliRunner().invoke(main, [str(subs), "--out", str(tmp_path / "out"), "--sandbox", "process",
                                        "--dask", cluster.scheduler_address])
    assert run.exit_code == 1, run.output
    assert (f"worker {worker} ({sys.executable} on {socket.gethostname()}) cannot import the grader "
            "(ModuleNotFoundError: No module named 'grader')") in run.stderr
    assert f"install nn-grader {__version__} (pip install 'nn-grader[cluster]' from the same source as here) into " \
           f"{sys.executable} on {socket.gethostname()}. Nothing was graded." in " ".join(run.stderr.split())
    assert "the scheduler" not in run.stderr  # the in-process scheduler imports it
    assert not list((tmp_path / "out").glob("*.json")) and not (tmp_path / "out" / "grades.csv").exists()


def _start(args, env, log):
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd="/", start_new_session=True)


def test_a_scheduler_without_the_grader_an_old_worker_and_a_blind_worker_are_each_named(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    if shutil.which("bwrap") is None or subprocess.run(["bwrap", "--dev-bind", "/", "/", "true"]).returncode:
        pytest.skip("needs a working bubblewrap, to start a worker that cannot see the submissions")
    subs = class_folder(tmp_path / "subs")
    blocked, old = tmp_path / "blocked", tmp_path / "old"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(BLOCK_GRADER)
    (old / "grader").mkdir(parents=True)
    (old / "grader" / "__init__.py").write_text('__version__ = "0.0.1"\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "wb")
    worker = ["distributed.cli.dask_worker", "--scheduler-file", str(file), "--nthreads", "1", "--no-dashboard"]
    processes = [_start(["distributed.cli.dask_scheduler", "--scheduler-file", str(file), "--host", "127.0.0.1",
                         "--no-dashboard", "--port", "0"], env | {"PYTHONPATH": str(blocked)}, log)]
    try:
        for _ in range(600):
            if file.is_file() and file.stat().st_size:
                break
            time.sleep(0.1)
        processes.append(_start(worker + ["--name", "old"], env | {"PYTHONPATH": str(old)}, log))
        processes.append(subprocess.Popen(["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(subs), sys.executable, "-m", *worker,
                                           "--name", "blind"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        with distributed.Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
            names = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
        found = detect(subs, tmp_path / "work")
        with pytest.raises(ClusterError) as stopped:
            grade_batch(found.entries, spec=load_spec(None), out_dir=tmp_path / "out", sandbox="process", dask_address=address)
    finally:
        for p in processes:
            os.killpg(p.pid, signal.SIGTERM)
        for p in processes:
            p.wait(timeout=30)
        log.close()
    message = " ".join(str(stopped.value).split())
    host = f"{sys.executable} on {socket.gethostname()}"
    assert f"the scheduler ({host}) cannot import the grader (ModuleNotFoundError: No module named 'grader')" in message
    assert f"worker {names['old']} ({host}) grader 0.0.1 is installed, not {__version__}" in message
    assert f"worker {names['blind']} cannot see 2 of the 2 submissions (e.g. {subs / 'fc_gradient_w'})" in message
    assert "put the submissions on a file system every worker mounts at the same path as here" in message
    assert f"worker {names['blind']} (" not in message  # it imports the grader: only what it cannot see is said
    assert stopped.value.exit_code == 1
    assert not (tmp_path / "out" / "grades.csv").exists() and not list((tmp_path / "out").glob("*.json"))


def _broken(entry, *args):
    raise RuntimeError(f"Error during deserialization of the task graph (at {entry.path})")


_BUGS = {"bug0": "an index out of range", "bug1": "a key missing", "bug2": "a shape mismatch", "bug3": "a type error",
         "bug4": "a division by zero"}


def _differing_bugs(entry, *args):
    if entry.id in _BUGS:
        raise RuntimeError(f"simulated bug: {_BUGS[entry.id]}")
    return _REAL_GRADE_ONE(entry, *args)


def test_the_same_grader_failure_on_the_first_submissions_stops_the_batch(tmp_path, spec, monkeypatch):
    import grader.course.batch as batch

    monkeypatch.setattr(batch, "grade_one", _broken)  # module-level: reaches forked and spawned pools alike
    entries = [Entry(f"s{n}", SUBMISSIONS / name) for n, name in enumerate(["fc_gradient_w", "tanh_missing"] * 4)]
    (tmp_path / "grades.csv").write_text("an earlier gradebook\n")
    with pytest.raises(GradingStopped) as stopped:
        grade_batch(entries, spec=spec, out_dir=tmp_path, jobs=1, sandbox="process")
    assert str(stopped.value).startswith(
        "stopped: the first 5 submissions graded all failed in the grader the same way (RuntimeError: Error during "
        "deserialization of the task graph (at ")
    assert "no gradebook was written" in str(stopped.value)
    assert (tmp_path / "grades.csv").read_text() == "an earlier gradebook\n"  # not a gradebook of zeros
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "index.html").exists()
    kept = [json.loads(p.read_text()) for p in tmp_path.glob("s*.json")]  # kept, graded again by --resume
    assert len(kept) == 5 and all(r["resume_key"] == "" and r["score"] == 0 for r in kept)


def test_a_class_of_zeros_and_differing_failures_are_graded_to_the_end(tmp_path, spec, monkeypatch):
    """A student's 0 is not a grader failure, and failures that differ are not one fault."""
    import grader.course.batch as batch

    monkeypatch.setattr(batch, "grade_one", _differing_bugs)  # module-level: reaches forked and spawned pools alike
    for n in range(6):
        (tmp_path / "class" / f"zero{n}").mkdir(parents=True)
    (tmp_path / "class" / "zero0" / "layers.py").write_text("class SquaredError:\n    def eval(self, Y, Yhat)\n")
    entries = [Entry(f"bug{n}", SUBMISSIONS / "fc_gradient_w") for n in range(5)]
    counts = grade_batch(entries, spec=spec, out_dir=tmp_path / "bugs", jobs=2, sandbox="process")
    assert counts["failed"] == 5 and (tmp_path / "bugs" / "grades.csv").is_file()
    zeros = detect(tmp_path / "class", tmp_path / "work").entries
    counts = grade_batch(zeros, spec=spec, out_dir=tmp_path / "zeros", jobs=2, sandbox="process")
    assert counts == {"graded": 6, "skipped": 0, "failed": 0, "total": 6}  # a syntax error is the student's
    rows = list(csv.DictReader(io.StringIO((tmp_path / "zeros" / "grades.csv").read_text())))
    assert [r["total"] for r in rows] == ["0.00"] * 6
