"""Deployment: the student kit holds no solution and installs with one command; hidden checks; Gradescope's autograder."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.deploy import build_autograder, build_kit
from grader.exceptions import UsageError
from grader.grade import grade_submission
from grader.outputs import gradescope_json
from grader.paths import reference_dir, template_dir
from grader.spec import load_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEFAULT = Path(__file__).resolve().parent.parent / "grader" / "specs" / "default.toml"
GRADESCOPE_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def hidden_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "hw.toml"
    spec.write_text(DEFAULT.read_text() + '\n[hidden]\nitems = ["SoftmaxLayer.backward"]\nchecks = ["edges"]\nsecret_env = "HW_SECRET"\n')
    return spec


def reference_lines() -> set[str]:
    """The lines of the reference's graded methods (forward, gradient, backward, eval) that compute something."""
    import ast

    template = {line.strip() for p in template_dir().glob("*.py") for line in p.read_text().splitlines()}
    lines = set()
    for path in reference_dir().glob("*.py"):
        source = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(source))):
            if isinstance(node, ast.FunctionDef) and node.name in ("forward", "gradient", "backward", "eval"):
                for stmt in node.body:
                    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                        continue  # the docstring states the rule, as the template does
                    for line in source[stmt.lineno - 1:stmt.end_lineno]:
                        line = line.strip()
                        computes = any(op in line for op in ("np.", " * ", " / ", " @ ", " - ", " + ", "**"))
                        if len(line) > 12 and computes and line not in template and "setPrev" not in line:
                            lines.add(line)
    return lines


def test_kit_holds_no_reference_code(tmp_path):
    kit = build_kit(tmp_path / "kit")
    secret_lines = reference_lines()
    assert len(secret_lines) > 15
    for path in kit.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            leaked = [line for line in secret_lines if line in text]
            assert not leaked, f"{path.relative_to(kit)} holds reference code: {leaked[:3]}"
    assert not list(kit.rglob("reference"))
    assert sorted(p.name for p in (kit / "my_work").iterdir()) == ["Layer.py", "layers.py", "objectives.py"]
    assert "pip install ./kit" in (kit / "README.md").read_text()


def test_kit_refuses_an_existing_folder(tmp_path):
    (tmp_path / "kit").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        build_kit(tmp_path / "kit")


def pip_install(project: Path, target: Path, env: dict) -> dict:
    """Install `project` the way students and setup.sh do (pip install <folder>), into `target`;
    the dependencies are this interpreter's own. Returns the environment that runs it."""
    run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(project)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return {**env, "PYTHONPATH": str(target)}


def test_kit_installs_with_one_pip_command_and_self_checks(tmp_path):
    kit = build_kit(tmp_path / "kit", spec_file=hidden_spec(tmp_path))
    env = {k: v for k, v in os.environ.items() if k != "HW_SECRET"}
    env = pip_install(kit, tmp_path / "site", env)
    grade = [str(tmp_path / "site" / "bin" / "grade")]
    work = kit / "my_work"
    run = subprocess.run(grade + [".", "--sandbox", "process"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "not_implemented" in run.stdout and "0.00/" in run.stdout
    assert "this is a self-check: 28 hidden checks (in 1 hidden items and others) will run at grading time" in run.stdout
    where = subprocess.run([sys.executable, "-c", "import grader; print(grader.__file__)"], cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(tmp_path / "site"))  # the kit's grader ran, not this checkout's
    for path in work.glob("*.py"):
        path.unlink()
    shutil.copy(FIXTURES / "base_submission.py", work / "solution.py")
    run = subprocess.run(grade + [".", "--sandbox", "process", "-q", "--fail-under", "95"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "my_work: 95.00/95.00", run.stdout + run.stderr


def test_hidden_checks_run_only_with_the_secret(tmp_path, monkeypatch):
    spec = load_spec(hidden_spec(tmp_path))
    monkeypatch.delenv("HW_SECRET", raising=False)
    selfcheck = grade_submission(FIXTURES / "submissions" / "softmax_no_max_shift", spec=spec, sandbox="process")
    assert selfcheck.hidden_pending == 5 + 24 - 1 and selfcheck.hidden_items_pending == 1
    assert "SoftmaxLayer.backward" not in [i.name for i in selfcheck.items]
    assert not any(c.name == "edges" for i in selfcheck.items for c in i.checks)
    assert selfcheck.item("SoftmaxLayer.forward").status == "passed"  # its only fault is at the (hidden) edges
    monkeypatch.setenv("HW_SECRET", "s3cr3t")
    graded = grade_submission(FIXTURES / "submissions" / "softmax_no_max_shift", spec=spec, sandbox="process")
    assert graded.hidden_pending == 0 and graded.max_score == 100
    edges = next(c for c in graded.item("SoftmaxLayer.forward").checks if c.name == "edges")
    assert edges.hidden and not edges.passed
    tests = json.loads(gradescope_json(graded))["tests"]
    assert {t["visibility"] for t in tests} <= GRADESCOPE_VISIBILITY
    hidden = {t["name"]: t for t in tests if t["visibility"] == "hidden"}
    assert "SoftmaxLayer.backward" in hidden and "SoftmaxLayer.forward (hidden checks)" in hidden
    assert hidden["SoftmaxLayer.forward (hidden checks)"]["score"] == 0
    visible = next(t for t in tests if t["name"] == "SoftmaxLayer.forward")
    assert visible["visibility"] == "visible" and visible["score"] == visible["max_score"] == 4.0
    assert sum(t["max_score"] for t in tests) == pytest.approx(100)


def test_hidden_points_come_from_the_secret(tmp_path, monkeypatch):
    from grader.points import rng_for
    from grader.seeding import secret_seed

    a, b = rng_for(secret_seed("one"), "X/edges").normal(size=3), rng_for(secret_seed("two"), "X/edges").normal(size=3)
    assert not (a == b).all()


def test_autograder_zip_runs_like_on_gradescope(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("instructor-only\n")
    archive, made = build_autograder(tmp_path / "autograder.zip", spec_file=hidden_spec(tmp_path), secret_file=secret)
    assert made is None
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "spec.toml", "hidden_secret"} <= set(names)
        assert not any(n.startswith("grader_src/grader/reference/") for n in names)  # only the symbolic truth is needed
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
    root = tmp_path / "autograder"
    with zipfile.ZipFile(archive) as z:
        z.extractall(root / "source")
    for script in ("setup.sh", "run_autograder"):
        os.chmod(root / "source" / script, 0o755)
    shutil.copytree(FIXTURES / "submissions" / "softmax_diagonal_only", root / "submission")
    site = tmp_path / "site"
    env = {**os.environ, "PYTHON": sys.executable, "GRADER_SKIP_APT": "1", "PIP_FLAGS": f"-q --no-deps --target {site}",
           "AUTOGRADER_ROOT": str(root), "GRADE": str(site / "bin" / "grade"), "PYTHONPATH": str(site)}
    env.pop("HW_SECRET", None)
    setup = subprocess.run(["bash", "setup.sh"], cwd=root / "source", env=env, capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    run = subprocess.run([str(root / "source" / "run_autograder")], cwd=root / "source", env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert set(results) <= {"score", "execution_time", "output", "output_format", "tests", "visibility", "stdout_visibility"}
    monkeypatch.setenv("HW_SECRET", "instructor-only")
    from grader.seeding import choose

    spec = load_spec(hidden_spec(tmp_path))
    expected = grade_submission(root / "submission", spec=spec, sandbox="auto", seed=choose(spec, official=True))
    assert expected.seed_kind == "secret" and expected.seed is None
    assert results["score"] == pytest.approx(expected.score) and expected.score < 100
    for test in results["tests"]:
        assert set(test) == {"name", "number", "score", "max_score", "status", "output", "output_format", "visibility"}
        assert isinstance(test["name"], str) and test["status"] in ("passed", "failed")
        assert test["visibility"] in GRADESCOPE_VISIBILITY
    assert any(t["visibility"] == "hidden" for t in results["tests"])  # the secret reached the run
    assert "hidden checks were not run" not in results["output"]
    assert (root / "results" / "reports" / "submission.html").is_file()
    # Gradescope's metadata reaches the [late] policy: 1 d 2 h late at 10 % per started day
    (root / "submission_metadata.json").write_text(json.dumps({
        "created_at": "2026-11-22T02:00:00.000000-05:00", "users": [{"name": "S", "email": "s@x.edu", "id": 1}],
        "assignment": {"due_date": "2026-11-20T23:59:00.000000-05:00", "late_due_date": None}}))
    with open(root / "source" / "spec.toml", "a") as handle:
        handle.write("\n[late]\npercent = 10\n")
    run = subprocess.run([str(root / "source" / "run_autograder")], cwd=root / "source", env=env, capture_output=True, text=True, timeout=300)
    late = json.loads((root / "results" / "results.json").read_text())
    assert late["score"] == pytest.approx(expected.score - 20.0) and "late penalty −20\\.00" in late["output"], run.stderr  # Markdown, escaped


def test_autograder_makes_a_secret_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("HW_SECRET", raising=False)
    monkeypatch.delenv("GRADER_HIDDEN_SECRET", raising=False)
    archive, made = build_autograder(tmp_path / "a.zip", spec_file=hidden_spec(tmp_path))
    assert made == tmp_path / "a.zip.secret" and (made.stat().st_mode & 0o777) == 0o600
    with zipfile.ZipFile(archive) as z:
        assert z.read("hidden_secret").decode().strip() == made.read_text().strip()
    with pytest.raises(UsageError, match="already exists"):
        build_autograder(tmp_path / "a.zip", spec_file=hidden_spec(tmp_path))  # never overwrites a secret


def test_fail_under_exit_status(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    low = CliRunner().invoke(main, [str(FIXTURES / "submissions" / "tanh_missing"), "--out", str(tmp_path), "-q",
                                    "--sandbox", "process", "--fail-under", "90"])
    assert low.exit_code == 3 and "tanh_missing: 88.00 is below --fail-under 90" in low.output
    ok = CliRunner().invoke(main, [str(FIXTURES / "submissions" / "tanh_missing"), "--out", str(tmp_path), "-q",
                                   "--sandbox", "process", "--fail-under", "88"])
    assert ok.exit_code == 0


def test_a_hidden_item_whose_checks_could_not_run_stays_hidden(tmp_path, monkeypatch):
    # softmax_no_backward has no SoftmaxLayer.backward: the hidden item is "missing", with its rule
    monkeypatch.setenv("HW_SECRET", "s3cr3t")
    result = grade_submission(FIXTURES / "submissions" / "softmax_no_backward", spec=load_spec(hidden_spec(tmp_path)),
                              sandbox="process")
    item = result.item("SoftmaxLayer.backward")
    assert item.status == "missing" and not item.checks and item.hidden
    tests = {t["name"]: t for t in json.loads(gradescope_json(result))["tests"]}
    assert tests["SoftmaxLayer.backward"]["visibility"] == "hidden"
    assert [n for n, t in tests.items() if n.startswith("SoftmaxLayer.backward")] == ["SoftmaxLayer.backward"]


def test_grade_admin_makes_a_secret_that_official_grading_uses(tmp_path):
    from click.testing import CliRunner

    from grader.admin_cli import main as admin
    from grader.cli import main as grade

    made = CliRunner().invoke(admin, ["secret", str(tmp_path / "hw.secret")])
    assert made.exit_code == 0 and (tmp_path / "hw.secret").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(admin, ["secret", str(tmp_path / "hw.secret")])
    assert again.exit_code == 2 and "already exists" in again.output
    entries_dir = tmp_path / "class"
    shutil.copytree(FIXTURES / "submissions" / "tanh_missing", entries_dir / "a")
    shutil.copytree(FIXTURES / "submissions" / "aliases_correct", entries_dir / "b")
    run = CliRunner().invoke(grade, [str(entries_dir), "--out", str(tmp_path / "out"), "-q", "--sandbox", "process",
                                     "--secret-file", str(tmp_path / "hw.secret")])
    assert run.exit_code == 0, run.output
    assert "test points: drawn from the instructor's secret" in run.output
    result = json.loads((tmp_path / "out" / "a.json").read_text())
    assert result["seed_kind"] == "secret" and result["seed"] is None
    missing = CliRunner().invoke(grade, [str(entries_dir), "--out", str(tmp_path / "o2"), "--secret-file", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "make one with: grade-admin secret FILE" in missing.output
