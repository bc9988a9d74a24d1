"""The instructor's toolbox: late policy, overrides, copying by code and by shared wrong answers."""
import csv
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.course.batch import detect, grade_batch
from grader.cli import main
from grader.exceptions import SpecError, UsageError
from grader.assignment.late import Dates, assess, gradescope_dates, parse_policy
from grader.assignment.spec import default_spec_path, load_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BATCHES = ROOT / "tests" / "fixtures" / "batches"
FAST = None


def readme_late_table() -> str:
    """The [late] example of the README, exactly as an instructor would copy it."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- late-example")[1].split("<!-- /late-example -->")[0]
    return re.search(r"```toml\n(.*?)```", block, re.S).group(1)


@pytest.fixture(scope="module")
def late_spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "hw.toml"
    path.write_text(default_spec_path().read_text() + "\n" + readme_late_table())
    return path


def rows_of(out: Path) -> dict:
    return {r["identifier"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}


# ----------------------------------------------------------------------------- late policy


def policy(**late):
    return parse_policy(late, "t.toml")


def test_the_readme_late_example_works_in_the_default_spec(late_spec_file):
    spec = load_spec(late_spec_file)
    assert spec.late.percent == 10 and spec.late.cap_percent == 50 and spec.late.grace.total_seconds() == 900
    assert dict(spec.late.extensions)["dee@example.edu"].days == 3


def test_penalties_per_started_day_grace_cap_hard_deadline_and_extensions():
    due = tomllib.loads("a = 2026-11-20T23:59:00-05:00")["a"]
    hard = tomllib.loads("a = 2026-11-27T23:59:00-05:00")["a"]
    p = policy(due=due, hard_deadline=hard, grace="15m", percent=10, cap_percent=35, extensions={"Dee": "3d"})
    at = lambda when, *keys: assess(p, Dates(submitted_at=when), keys)  # noqa: E731
    assert at("2026-11-20 23:00:00.000000000 -05:00").percent == 0
    grace = at("2026-11-21 00:10:00.000000000 -05:00")
    assert grace.percent == 0 and "grace" in grace.explanation
    assert at("2026-11-21 00:20:00 -05:00").percent == 10  # one started day
    two = at("2026-11-22T02:00:00-05:00")
    assert two.percent == 20 and "2 started days × 10 % = 20 %" in two.explanation
    assert at("2026-11-25T02:00:00-05:00").percent == 35  # 5 days, capped
    past = at("2026-11-28T09:00:00-05:00")
    assert past.zero and "hard deadline" in past.explanation
    assert at("2026-11-23T12:00:00-05:00", "dee").percent == 0  # extension: due 2026-11-23 23:59
    assert at("2026-11-28T09:00:00-05:00", "dee").percent == 40 - 5  # her hard deadline moved too: capped, not zero
    # the same instant in another zone is the same lateness
    assert at("2026-11-22T07:00:00+00:00").percent == 20
    hourly = policy(due=due, per="hour", percent=2)
    assert assess(hourly, Dates(submitted_at="2026-11-21T02:30:00-05:00")).percent == 6  # 2 h 31 min: 3 started hours
    capped = policy(due=due, hard_deadline=hard, percent=10, cap_percent=30, past_hard_deadline="cap")
    late = assess(capped, Dates(submitted_at="2026-12-01T00:00:00-05:00"))
    assert late.percent == 30 and not late.zero


def test_flagged_late_without_a_time_loses_what_the_spec_says():
    assert assess(policy(flagged_percent=15), Dates(flagged=True)).percent == 15
    silent = assess(policy(percent=10), Dates(flagged=True))
    assert silent.percent == 0 and "flagged_percent" in silent.explanation
    assert assess(None, Dates(flagged=True)).percent == 0


@pytest.mark.parametrize("late, message", [
    ({"due": "2026-11-20T23:59:00"}, "give the time zone"),
    ({"due": "friday"}, "is not a date and time"),
    ({"grace": "soon"}, "is not a duration"),
    ({"percent": 120}, "from 0 to 100"),
    ({"per": "week"}, '"day" or "hour"'),
    ({"past_hard_deadline": "half"}, '"zero"'),
    ({"pecent": 10}, "unknown key pecent"),
    ({"due": "2026-11-20T23:59:00Z", "hard_deadline": "2026-11-19T23:59:00Z"}, "before the due date"),
])
def test_a_wrong_late_table_is_a_spec_error_naming_the_key(late, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_policy(late, "t.toml")


def test_gradescope_autograder_metadata_gives_dates_and_a_users_own_extension():
    meta = {"created_at": "2026-11-22T02:00:00.365935-05:00",
            "assignment": {"due_date": "2026-11-20T23:59:00.000000-05:00", "late_due_date": "2026-11-27T23:59:00.000000-05:00"},
            "users": [{"email": "ben@example.edu", "id": 7, "name": "Ben Cho"}]}
    dates = gradescope_dates(meta)
    p = policy(percent=10)
    assert assess(p, dates).percent == 20  # the metadata's own due date, none in the spec
    meta["users"][0]["assignment"] = {"due_date": "2026-11-22T23:59:00.000000-05:00", "late_due_date": "2026-11-29T23:59:00-05:00"}
    assert assess(p, gradescope_dates(meta)).percent == 0


def test_a_gradescope_export_gets_raw_penalty_and_final_everywhere(tmp_path, late_spec_file):
    out = tmp_path / "out"
    run = CliRunner().invoke(main, [str(BATCHES / "gradescope_late"), "--out", str(out), "--spec", str(late_spec_file),
                                    "--sandbox", "process", "-q", "-j", "2"])
    assert run.exit_code == 0, run.output
    rows = rows_of(out)
    expected = {"submission_301": 0.0, "submission_302": 20.0, "submission_303": 100.0, "submission_304": 0.0, "submission_305": 0.0}
    for sid, penalty in expected.items():
        row = rows[sid]
        assert float(row["raw_score"]) == 100.0, row
        assert float(row["late_penalty"]) == penalty and float(row["total"]) == 100.0 - penalty, row
    assert "2 started days × 10 % = 20 %" in rows["submission_302"]["notes"]
    assert "hard deadline" in rows["submission_303"]["notes"] and "extension" not in rows["submission_303"]["notes"]
    result = json.loads((out / "submission_302.json").read_text())
    assert result["score"] == 80.0 and result["raw_score"] == 100.0 and result["late_penalty"] == 20.0
    assert result["lateness"]["submitted_at"].startswith("2026-11-22 02:00")
    report = (out / "submission_302.html").read_text()
    assert "late penalty −20.00" in report and "final 80.00" in report
    summary = (out / "index.html").read_text()
    assert "Late −" in summary and json.loads((out / "summary.json").read_text())["submissions"][1]["late_penalty"] == 20.0
    # the due date moves a day later: regrading (only those whose key changed) recomputes the penalty
    moved = tmp_path / "moved.toml"
    moved.write_text(late_spec_file.read_text().replace("due = 2026-11-20T23:59:00-05:00", "due = 2026-11-21T23:59:00-05:00"))
    run = CliRunner().invoke(main, [str(BATCHES / "gradescope_late"), "--out", str(out), "--spec", str(moved),
                                    "--sandbox", "process", "-q", "--resume"])
    assert run.exit_code == 0, run.output
    assert float(rows_of(out)["submission_302"]["late_penalty"]) == 10.0


def test_the_autograder_reads_the_submission_metadata(tmp_path, late_spec_file):
    meta = tmp_path / "submission_metadata.json"
    meta.write_text(json.dumps({"created_at": "2026-11-21T12:00:00.000000-05:00",
                                "assignment": {"due_date": "2026-11-20T23:59:00.000000-05:00", "late_due_date": None},
                                "users": [{"email": "eve@example.edu", "id": 5, "name": "Eve Gray"}]}))
    results = tmp_path / "results.json"
    run = CliRunner().invoke(main, [str(ROOT / "reference"), "--out", str(tmp_path / "out"), "--spec", str(late_spec_file),
                                    "--sandbox", "process", "--gradescope", str(results), "--submission-metadata", str(meta), "-q"])
    assert run.exit_code == 0, run.output
    data = json.loads(results.read_text())
    assert data["score"] == 90.0 and sum(t["score"] for t in data["tests"]) == pytest.approx(100.0)
    assert "late penalty −10\\.00" in data["output"]  # Markdown, escaped


def test_canvas_late_flag_costs_flagged_percent(tmp_path, late_spec_file):
    out = tmp_path / "out"
    run = CliRunner().invoke(main, [str(BATCHES / "canvas"), "--out", str(out), "--spec", str(late_spec_file),
                                    "--sandbox", "process", "-q"])
    assert run.exit_code == 0, run.output
    bob = rows_of(out)["jonesbob_1002"]
    assert float(bob["late_penalty"]) == 10.0 and float(bob["total"]) == float(bob["raw_score"]) - 10.0
    assert "marked late by the export (no time given): 10 %" in bob["notes"]
    assert float(rows_of(out)["smithalice_1001"]["late_penalty"]) == 0.0
    canvas = list(csv.reader(io.StringIO((out / "canvas_grades.csv").read_text())))
    assert [r[-1] for r in canvas if r[1] == "1002"] == [bob["total"]]


# ----------------------------------------------------------------------------- overrides


OVERRIDES_CSV = """student,item,points,comment
alice@example.edu,FullyConnectedLayer.forward,+2,regrade request
Bob Jones,total,-5,shared code
submission_222222,SoftmaxLayer.gradient,3,set by hand
"""


def test_overrides_apply_to_outputs_never_to_results_and_survive_resume(tmp_path):
    out = tmp_path / "out"
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(OVERRIDES_CSV)
    graded = CliRunner().invoke(main, [str(BATCHES / "gradescope"), "--out", str(out), "--sandbox", "process", "-q"])
    assert graded.exit_code == 0, graded.output
    before = {p.name: p.read_text() for p in out.glob("submission_*.json")}
    raw = rows_of(out)
    run = CliRunner().invoke(main, [str(BATCHES / "gradescope"), "--out", str(out), "--sandbox", "process", "-q",
                                    "--resume", "--overrides", str(overrides)])
    assert run.exit_code == 0, run.output
    assert {p.name: p.read_text() for p in out.glob("submission_*.json")} == before  # results untouched
    rows = rows_of(out)
    alice, team = rows["submission_111111"], rows["submission_222222"]
    assert float(alice["FullyConnectedLayer.forward"]) == float(raw["submission_111111"]["FullyConnectedLayer.forward"]) + 2
    assert float(alice["total"]) == pytest.approx(float(raw["submission_111111"]["total"]) + 2)
    assert float(team["SoftmaxLayer.gradient"]) == 3.0
    assert float(team["total"]) == pytest.approx(float(raw["submission_222222"]["total"]) - 6 + 3 - 5)
    assert "total adjusted by the instructor: −5.00 — shared code" in team["notes"]
    report = (out / "submission_111111.html").read_text()
    assert "Adjusted by the instructor: +2.00 — regrade request" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submissions"][1]["adjustments"][0]["comment"] == "shared code"
    # a later run without --overrides keeps applying the same file; removing the line undoes it
    again = CliRunner().invoke(main, [str(BATCHES / "gradescope"), "--out", str(out), "--sandbox", "process", "-q", "--resume"])
    assert again.exit_code == 0 and rows_of(out)["submission_222222"]["total"] == team["total"]
    overrides.write_text(OVERRIDES_CSV.replace("Bob Jones,total,-5,shared code\n", ""))
    CliRunner().invoke(main, [str(BATCHES / "gradescope"), "--out", str(out), "--sandbox", "process", "-q", "--resume"])
    assert float(rows_of(out)["submission_222222"]["total"]) == pytest.approx(float(team["total"]) + 5)


def test_progress_lines_print_the_total_the_gradebook_gets(tmp_path, late_spec_file):
    """The line printed as each student is done says the total of grades.csv: late penalty and overrides in."""
    out = tmp_path / "out"
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("student,item,points,comment\nsubmission_302,total,-5,shared code\n"
                         "submission_301,SoftmaxLayer.gradient,+1,regrade\n")
    run = CliRunner().invoke(main, [str(BATCHES / "gradescope_late"), "--out", str(out), "--spec", str(late_spec_file),
                                    "--sandbox", "process", "-q", "-j", "2", "--overrides", str(overrides)])
    assert run.exit_code == 0, run.output
    printed = dict(re.findall(r"^\[\d/5\] (submission_\d+): (.*)$", run.stderr, re.M))
    rows = rows_of(out)
    assert set(printed) == set(rows)
    for sid, row in rows.items():
        assert printed[sid].split("/")[0] == row["total"], (sid, printed[sid], row)
    assert printed["submission_302"] == "75.00/100.00 (late penalty −20.00, instructor's overrides)"
    assert printed["submission_301"] == "101.00/100.00 (instructor's overrides)"  # an override may give extra credit
    assert printed["submission_303"] == "0.00/100.00 (late penalty −100.00)"


def test_toml_overrides_and_what_an_unknown_student_or_item_says(tmp_path):
    from grader.course.overrides import load, resolve

    students = {e.id: e.keys for e in detect(BATCHES / "gradescope", tmp_path / "work").entries}
    items = [i.name for i in load_spec().items]
    toml = tmp_path / "o.toml"
    toml.write_text('[[override]]\nstudent = "carol@example.edu"\nitem = "total"\npoints = "+1.5"\ncomment = "bonus"\n'
                    '[[override]]\nstudent = "Alice Smith"\nitem = "TanhLayer.gradient"\npoints = 2\n')
    found = resolve(load(toml), students, items)
    assert found["submission_222222"][0].kind == "delta" and found["submission_222222"][0].points == 1.5
    assert found["submission_111111"][0].kind == "set"
    bad = tmp_path / "bad.csv"
    for text, message in [("student,item,points,comment\nalicia@example.edu,,+1,\n", "bad.csv line 2: no student 'alicia@example.edu' in this batch; did you mean 'alice@example.edu'"),
                          ("student,item,points,comment\nAlice Smith,TanhLayer.gradeint,+1,\n", "no item 'TanhLayer.gradeint' in the spec; did you mean 'TanhLayer.gradient'"),
                          ("student,item,points,comment\nAlice Smith,,lots,\n", "points 'lots' is not a number"),
                          ("name,points\nAlice,1\n", "the first line must name the columns")]:
        bad.write_text(text)
        with pytest.raises(UsageError, match=re.escape(message)):
            resolve(load(bad), students, items)


def test_an_unknown_student_stops_the_run_before_grading(tmp_path):
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("student,item,points,comment\nmallory,total,+10,\n")
    run = CliRunner().invoke(main, [str(BATCHES / "gradescope"), "--out", str(tmp_path / "out"), "--sandbox", "process",
                                    "-q", "--overrides", str(overrides)])
    assert run.exit_code == 2 and "overrides.csv line 2: no student 'mallory' in this batch" in run.output
    assert not list((tmp_path / "out").glob("submission_*.json"))


# ----------------------------------------------------------------------------- copying


COPYING = BATCHES / "copying"


@pytest.fixture(scope="module")
def copying_batch(tmp_path_factory):
    """The copying class, graded once: alice and bob share an unusual bug (bob's file is alice's,
    renamed); carol and dan make one named mistake; ivan and judy return zeros; gina and hank hand
    in the bare template; frank wrote it independently; erin is right."""
    out = tmp_path_factory.mktemp("copying") / "out"
    found = detect(COPYING, out.parent / "work")
    grade_batch(found.entries, spec=load_spec(), out_dir=out, jobs=2, sandbox="process", similarity=True)
    return out


def test_shared_unusual_wrong_answers_group_the_students_who_share_them(copying_batch):
    groups = json.loads((copying_batch / "summary.json").read_text())["shared_wrong_answers"]
    assert [g["students"] for g in groups] == [["alice", "bob"]]
    answers = groups[0]["answers"]
    assert {a["item"] for a in answers} == {"TanhLayer.gradient"} and len(answers) >= 2
    assert all(a["count"] == 2 and a["judged"] == 8 and a["diagnosis"] == "" for a in answers)
    page = (copying_batch / "index.html").read_text()
    section = page.split("Identical unusual wrong answers")[1].split("<h2>")[0]
    assert "alice" in section and "bob" in section and "2 of 8 students gave exactly this answer" in section
    for independent in ("carol", "dan", "ivan", "judy", "gina", "hank", "frank", "erin"):
        assert f">{independent}<" not in section  # a named mistake, zeros, the template, right answers: no group


def test_shared_answers_need_the_same_test_points(copying_batch):
    from grader.course.batch import load_results
    from grader.course.shared_answers import groups

    results = load_results(copying_batch, ["alice", "bob"])
    assert groups(results)
    results[1].seed = 12345  # other test points: other numbers, nothing to compare
    results[1].seed_kind = "given"
    assert groups(results) == []


def test_similar_code_by_copydetect_with_the_template_as_boilerplate(copying_batch):
    data = json.loads((copying_batch / "similarity.json").read_text())
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}
    copied = pairs[("alice", "bob")]
    assert copied["similarity_a"] >= 0.95 and copied["similarity_b"] >= 0.95 and data["boilerplate"]
    assert any(shared for _, shared in copied["regions_a"]) and any(shared for _, shared in copied["regions_b"])
    # the independent implementation is far less alike; the bare template shares nothing beyond itself
    frank = [max(p["similarity_a"], p["similarity_b"]) for (a, b), p in pairs.items() if "frank" in (a, b)]
    assert all(s < 0.5 for s in frank)
    assert not [p for p in data["pairs"] if {"gina", "hank"} & {p["a"], p["b"]}]
    page = (copying_batch / "index.html").read_text()
    section = page.split("<h2>Similar code</h2>")[1]
    assert "<mark>" in section and "side by side" in section and "100%" in section


def test_student_code_in_the_side_by_side_view_stays_text(tmp_path):
    from grader.course import similarity
    from grader.outputs.html_report import render_summary

    for name in ("p", "q"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.py").write_text('html = "</pre><script>alert(1)</script>"\n' + "\n".join(
            f"def f{i}(a, b):\n    return [a * {i} + b for _ in range({i})]" for i in range(30)))

    class E:
        def __init__(self, name):
            self.id, self.path, self.problem = name, tmp_path / name, ""

    data = similarity.compare([E("p"), E("q")], None)
    page = render_summary([], similarity=data)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_similarity_without_copydetect_says_how_to_install_it(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_copydetect(name, *args, **kwargs):
        if name == "copydetect" or name.startswith("copydetect."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_copydetect)
    run = CliRunner().invoke(main, [str(COPYING), "--out", str(tmp_path / "out"), "--sandbox", "process", "-q", "--similarity"])
    assert run.exit_code == 2 and "pip install 'nn-grader[similarity]'" in run.output
    assert not list((tmp_path / "out").glob("*.json"))


def test_overrides_and_similarity_are_for_a_batch(tmp_path):
    run = CliRunner().invoke(main, [str(ROOT / "reference"), "--out", str(tmp_path / "out"), "--similarity"])
    assert run.exit_code == 2 and "for a batch" in run.output


# ----------------------------------------------------------------------------- Canvas's own gradebook

GRADEBOOK = ROOT / "tests" / "fixtures" / "canvas_gradebook.csv"


def test_canvas_gradebook_round_trip_fills_one_column_and_changes_nothing_else(tmp_path):
    out = tmp_path / "out"
    run = CliRunner().invoke(main, [str(BATCHES / "canvas"), "--out", str(out), "--sandbox", "process", "-q",
                                    "--canvas-gradebook", str(GRADEBOOK), "--canvas-assignment", "HW2 Gradients (222)"])
    assert run.exit_code == 0, run.output
    assert "Canvas gradebook: " in run.stderr and "column 'HW2 Gradients (222)' (worth 100.00 points in Canvas), 3 rows to fill" in run.stderr
    totals = {r["identifier"].rsplit("_", 1)[1]: r["total"] for r in rows_of(out).values()}
    assert set(totals) == {"1001", "1002", "1003"}
    before = GRADEBOOK.read_bytes().decode().split("\r\n")
    after = (out / "canvas_grades.csv").read_bytes().decode().split("\r\n")
    assert len(after) == len(before) and after[0] == before[0]  # same header, same rows, Canvas's line ends
    old, new = [list(csv.reader(io.StringIO("\n".join(t)))) for t in (before, after)]
    column = old[0].index("HW2 Gradients (222)")
    for line_before, line_after, row_before, row_after in zip(before, after, old + [[]], new + [[]]):
        if row_before and row_before[1] in totals:
            # only the assignment's cell changed: the read-only totals and the other assignments are as exported
            assert row_after == row_before[:column] + [totals[row_before[1]]] + row_before[column + 1:]
        else:  # Points Possible, Manual Posting, the test student, Eve and Dan who handed nothing in: byte for byte
            assert line_after == line_before
    by_id = {r[1]: r for r in new[1:] if r and r[1]}
    assert by_id["1005"][column] == "" and by_id["9999"][0] == "Student, Test" and by_id["1004"][0] == 'O\'Brien, Dan "DJ"'
    assert new[2][0].strip() == "Points Possible" and new[2][column] == "100.00" and new[2][8] == "(read only)"
    # a later run of the batch keeps filling the same gradebook
    again = CliRunner().invoke(main, [str(BATCHES / "canvas"), "--out", str(out), "--sandbox", "process", "-q", "--resume"])
    assert again.exit_code == 0 and "named by an earlier run of this batch" in again.stderr
    assert (out / "canvas_grades.csv").read_bytes().decode().split("\r\n") == after


def test_canvas_gradebook_mistakes_are_named_before_grading(tmp_path):
    def grade(gradebook, assignment, *more):
        return CliRunner().invoke(main, [str(BATCHES / "canvas"), "--out", str(tmp_path / "out"), "--sandbox", "process", "-q",
                                         "--canvas-gradebook", str(gradebook), "--canvas-assignment", assignment, *more])

    wrong = grade(GRADEBOOK, "HW2 Gradient")
    assert wrong.exit_code == 2
    assert ("--canvas-assignment 'HW2 Gradient': no such column in " in wrong.stderr
            and "the closest: 'HW2 Gradients (222)'" in " ".join(wrong.stderr.split()))
    assert not list((tmp_path / "out").glob("*.json"))  # stopped before anything was graded
    no_id = tmp_path / "no_id.csv"
    no_id.write_text(GRADEBOOK.read_text().replace("Student,ID,", "Student,Canvas user,", 1))
    missing_id = grade(no_id, "HW2 Gradients (222)")
    assert missing_id.exit_code == 2 and "has no ID column" in missing_id.stderr
    alone = grade(GRADEBOOK, "HW2 Gradients (222)", str(ROOT / "reference"))  # not only a Canvas download: still fine
    assert alone.exit_code == 0, alone.output
    only_half = tmp_path / "half.csv"
    only_half.write_text("".join(line for line in GRADEBOOK.read_text().splitlines(keepends=True)
                                 if not line.startswith(('"Lee, Carol"', '"Smith, Alice"'))))
    partial = grade(only_half, "HW2 Gradients")  # the name without Canvas's id finds its one column
    assert partial.exit_code == 0, partial.output
    assert ("warning: 2 students of the download have no row in " in partial.stderr and
            "(not filled in canvas_grades.csv; their totals are in grades.csv): leecarol (ID 1003), smithalice (ID 1001)"
            in " ".join(partial.stderr.split()))
    filled = {r[1]: r[6] for r in csv.reader(io.StringIO((tmp_path / "out" / "canvas_grades.csv").read_text())) if r[1]}
    assert filled["1002"] == rows_of(tmp_path / "out")["jonesbob_1002"]["total"] and "1001" not in filled
