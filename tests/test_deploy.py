"""Deployment: the student kit holds no solution and installs with one command; hidden checks; Gradescope's autograder."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course.deploy import build_autograder, build_kit
from grader.exceptions import UsageError
from grader.grade import grade_submission
from grader.outputs.writers import gradescope_json
from grader.paths import reference_dir, template_dir
from grader.assignment.spec import load_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEFAULT = Path(__file__).resolve().parent.parent / "grader" / "assignment" / "specs" / "default.toml"
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
    for name in ("Layer.py", "layers.py", "objectives.py"):  # the built-in spec's kit is the template, nothing added
        assert (kit / "my_work" / name).read_text() == (template_dir() / name).read_text()
    assert "pip install ./kit" in (kit / "README.md").read_text()


SOFTPLUS = """
[classes.SoftplusLayer]
kind = "elementwise"
forward = "log(1 + exp(z))"
points = { forward = 2, gradient = 2, backward = 2 }
"""

# Imports the kit's starting files as a student would, calls every method of SoftplusLayer and
# prints what each raised and its docstring.
PROBE = """
import json, numpy as np
from layers import SoftplusLayer
from Layer import Layer
layer = SoftplusLayer()
out = {"is_layer": isinstance(layer, Layer)}
for name, args in (("forward", (np.ones((2, 3)),)), ("gradient", ()), ("backward", (np.ones((2, 3)),))):
    try:
        getattr(layer, name)(*args)
        raised = None
    except Exception as exc:
        raised = type(exc).__name__ + ": " + str(exc)
    out[name] = {"raised": raised, "doc": getattr(SoftplusLayer, name).__doc__}
print(json.dumps(out))
"""

SOFTPLUS_SOLVED = {
    "forward": "self.setPrevIn(dataIn)\n        self.setPrevOut(np.logaddexp(0, dataIn))\n        return self.getPrevOut()",
    "gradient": "return 0.5 * (1 + np.tanh(self.getPrevIn() / 2))",
    "backward": "return gradIn * self.gradient()",
}


def test_kit_has_a_stub_for_a_class_the_spec_adds(tmp_path):
    spec_file = tmp_path / "hw.toml"
    spec_file.write_text(DEFAULT.read_text() + SOFTPLUS)
    spec = load_spec(spec_file)
    work = build_kit(tmp_path / "kit", spec_file=spec_file) / "my_work"
    assert sorted(p.name for p in work.iterdir()) == ["Layer.py", "layers.py", "objectives.py"]
    layers = work / "layers.py"
    assert layers.read_text().startswith((template_dir() / "layers.py").read_text())  # the template, and the stub after it
    assert (work / "objectives.py").read_text() == (template_dir() / "objectives.py").read_text()
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=work, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    stub = json.loads(probe.stdout)
    assert stub["is_layer"]
    for method in ("forward", "gradient", "backward"):
        assert stub[method]["raised"] == f"NotImplementedError: TODO: SoftplusLayer.{method}"
    assert "g(z) = log(1 + exp(z))" in stub["forward"]["doc"]  # the rule as the reports print it
    assert "g′(z) = exp(z)/(1 + exp(z))" in stub["gradient"]["doc"]
    assert "N×K (the diagonal of each observation's Jacobian), or N×K×K" in stub["gradient"]["doc"]
    assert "δ_out = g′(z)·δ_in" in stub["backward"]["doc"]

    bare = grade_submission(work, spec=spec, sandbox="process")
    assert bare.score == 0 and bare.max_score == 106
    assert {i.name: i.status for i in bare.items} == {i.name: "not_implemented" for i in bare.items}
    assert [i.name for i in bare.items if i.name.startswith("SoftplusLayer")] == [
        "SoftplusLayer.forward", "SoftplusLayer.gradient", "SoftplusLayer.backward"]

    text = layers.read_text()
    for method, body in SOFTPLUS_SOLVED.items():
        text = text.replace(f'raise NotImplementedError("TODO: SoftplusLayer.{method}")', body)
    layers.write_text(text)
    solved = grade_submission(work, spec=spec, sandbox="process")
    softplus = [i for i in solved.items if i.name.startswith("SoftplusLayer")]
    assert [(i.name, i.status, i.score) for i in softplus] == [
        ("SoftplusLayer.forward", "passed", 2), ("SoftplusLayer.gradient", "passed", 2), ("SoftplusLayer.backward", "passed", 2)]
    assert solved.score == 6
    readme = (work.parent / "README.md").read_text()
    assert "This assignment also has `SoftplusLayer`: its starting code is at the end of `my_work/layers.py`" in readme


REPO = Path(__file__).resolve().parent.parent


def repository_files() -> list[Path]:
    """The files of the repository as a clone has them (git's list where there is one)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        return [REPO / name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]
    skipped = {".git", ".venv", "reports", "__pycache__", "nn_grader.egg-info"}
    return [p for p in REPO.rglob("*") if p.is_file() and not skipped & set(p.relative_to(REPO).parts)]


def test_the_contract_is_in_the_repository_and_in_the_kit(tmp_path):
    outside, elsewhere = ".." + "/shared", "shared" + "/CONTRACT"  # spelled apart, so that this file does not hold them
    files = repository_files()
    assert len(files) > 50
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert outside not in text and elsewhere not in text, f"{path.relative_to(REPO)} points outside the repository"
    contract = REPO / "grader" / "CONTRACT.md"
    words = contract.read_text()
    for topic in ("Rows are observations", "N×K×K", "any ε from 0 to 1e-6", "float32", "Only work earns points",
                  "not graded", "`ReLULayer`", "placeholder", "`.zip`"):
        assert topic.lower() in words.lower(), topic
    assert "(grader/CONTRACT.md)" in (REPO / "README.md").read_text()
    assert "grader/CONTRACT.md" in DEFAULT.read_text().split("[assignment]")[0]  # the spec's header
    kit = build_kit(tmp_path / "kit")
    assert (kit / "CONTRACT.md").read_text() == words and (kit / "grader" / "CONTRACT.md").is_file()
    assert "[CONTRACT.md](CONTRACT.md)" in (kit / "README.md").read_text()
    assert '"grader" = ["CONTRACT.md"]' in (kit / "pyproject.toml").read_text()  # installed with the kit's grader


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
    assert (tmp_path / "site" / "grader" / "CONTRACT.md").is_file()  # package data: the contract installs with the grader
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
    from grader.checking.points import rng_for
    from grader.checking.seeding import secret_seed

    a, b = rng_for(secret_seed("one"), "X/edges").normal(size=3), rng_for(secret_seed("two"), "X/edges").normal(size=3)
    assert not (a == b).all()


def externally_managed_python(folder: Path) -> Path:
    """A python3 like Debian's and Ubuntu 24.04's: this interpreter's base installation, copied with
    its standard library marked EXTERNALLY-MANAGED (PEP 668), so that pip refuses to install into it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix)
    binary, stdlib = base / "bin" / version, base / "lib" / version
    if not binary.is_file() or not (stdlib / "os.py").is_file():
        pytest.skip(f"no base interpreter laid out as {base}/bin/{version} with lib/{version}")
    (folder / "bin").mkdir(parents=True)
    (folder / "lib" / version).mkdir(parents=True)
    shutil.copy2(binary, folder / "bin" / version)  # a copy, not a link: its prefix is then `folder`
    (folder / "bin" / "python3").symlink_to(version)
    for library in (base / "lib").glob("libpython*"):
        (folder / "lib" / library.name).symlink_to(library)
    # The standard library copied as a distribution's is (a file tree of its own: under bubblewrap only
    # the interpreter's own prefix is mounted, so links into another would not resolve there); its
    # packages (site-packages) and the test suite linked, not copied.
    # Its site-packages reaches the packages the test's own interpreter has (a .pth file): the suite may
    # run in a virtual environment (CI's Python 3.10 and 3.13 do) whose base has no click or numpy.
    import site

    (folder / "lib" / version / "site-packages").mkdir()
    (folder / "lib" / version / "site-packages" / "test-deps.pth").write_text(
        "\n".join(dict.fromkeys([*site.getsitepackages(), str(stdlib / "site-packages")])) + "\n")
    for entry in stdlib.iterdir():
        if entry.name == "site-packages":
            continue
        if entry.name in ("test", "idlelib", "tkinter", "ensurepip"):
            (folder / "lib" / version / entry.name).symlink_to(entry)
        elif entry.is_dir():
            shutil.copytree(entry, folder / "lib" / version / entry.name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "EXTERNALLY-MANAGED"))
        elif entry.name != "EXTERNALLY-MANAGED":
            shutil.copy2(entry, folder / "lib" / version / entry.name)
    (folder / "lib" / version / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This python3 is managed by the distribution (a test's copy).\n")
    python = folder / "bin" / "python3"
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
    if prefix.stdout.strip() != str(folder):
        pytest.skip(f"the copied interpreter does not take its own prefix: {prefix.stdout}{prefix.stderr}")
    return python


def apt_shims(folder: Path) -> Path:
    """`apt-get` that only records its arguments (in apt.log beside it): setup.sh's apt steps, offline."""
    folder.mkdir()
    shim = folder / "apt-get"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {folder / "apt.log"}\n')
    shim.chmod(0o755)
    return folder


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
    # Gradescope's image as Ubuntu 24.04 has it: python3 refuses system-wide pip installs (PEP 668)
    python = externally_managed_python(tmp_path / "system-python")
    refused = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", str(root / "source" / "grader_src")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr  # the failure setup.sh must avoid
    shims = apt_shims(tmp_path / "shims")
    env = {**os.environ, "PATH": f"{shims}:{python.parent}:/usr/bin:/bin", "AUTOGRADER_ROOT": str(root),
           "VENV_FLAGS": "--system-site-packages", "PIP_FLAGS": "-q --no-deps"}  # offline: the dependencies are the system's
    for name in ("HW_SECRET", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    setup = subprocess.run(["bash", "setup.sh"], cwd=root / "source", env=env, capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    if os.getuid() == 0:  # setup.sh runs apt only as root, as on Gradescope
        assert (shims / "apt.log").read_text().splitlines() == ["update -qq", "install -y -qq python3 python3-venv bubblewrap"]
    where = subprocess.run([str(root / "venv" / "bin" / "python"), "-c", "import grader; print(grader.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(root / "venv" / "lib")), where.stdout + where.stderr  # the venv's grader grades
    run = subprocess.run([str(root / "source" / "run_autograder")], cwd=root / "source", env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert set(results) <= {"score", "execution_time", "output", "output_format", "tests", "visibility", "stdout_visibility"}
    monkeypatch.setenv("HW_SECRET", "instructor-only")
    from grader.checking.seeding import choose

    spec = load_spec(hidden_spec(tmp_path))
    expected = grade_submission(root / "submission", spec=spec, sandbox="auto", seed=choose(spec, official=True))
    assert expected.seed_kind == "secret" and expected.seed is None
    assert results["score"] == pytest.approx(expected.score) and expected.score < 100, results["output"] + run.stdout[-3000:] + run.stderr[-3000:]
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
