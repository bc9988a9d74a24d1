"""Batch grading: every export layout, parallel runs that survive crashes and hangs, resume, class outputs."""
import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from grader.course.batch import Entry, content_hash, detect, grade_batch, looks_like_batch
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
    assert found.skipped == [("README.txt", "not a folder, .zip or .py")]
    assert found.describe() == "batch layout: folders, 3 submissions; skipped 1: README.txt (not a folder, .zip or .py)"


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


def test_a_grader_failure_on_one_submission_is_recorded_and_the_batch_goes_on(tmp_path, spec, monkeypatch):
    import grader.course.batch as batch

    real = batch.grade_one

    def flaky(entry, *args):
        if entry.id == "b":
            raise RuntimeError("simulated grader bug")
        return real(entry, *args)

    # Pickled by name as grader.course.batch.grade_one, which the forked pool resolves to this patch.
    flaky.__module__, flaky.__qualname__ = real.__module__, real.__qualname__
    monkeypatch.setattr(batch, "grade_one", flaky)
    entries = [Entry("a", SUBMISSIONS / "fc_gradient_w"), Entry("b", SUBMISSIONS / "tanh_missing")]
    counts = grade_batch(entries, spec=spec, out_dir=tmp_path, jobs=2, sandbox="process")
    assert counts == {"graded": 2, "skipped": 0, "failed": 1, "total": 2}
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["errors"] == ["the grader failed on this submission: RuntimeError: simulated grader bug"]
    assert {i["status"] for i in b["items"]} == {"error"}
    assert json.loads((tmp_path / "a.json").read_text())["score"] == 96.0


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
