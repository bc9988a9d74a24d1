"""The ground-truth cache: a warm run needs no SymPy, and a change to what was derived from derives afresh."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader import cache
from grader.truth import symbolic
from grader.assignment.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cache_dir: Path) -> dict:
    """Run `code` in a fresh interpreter with this cache; it prints one JSON line, returned here."""
    env = {"GRADER_CACHE_DIR": str(cache_dir), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


GRADE_REFERENCE = """
    import json, sys
    from grader.grade import grade_submission
    result = grade_submission("reference", sandbox="process")
    print(json.dumps({"score": result.score, "max": result.max_score, "sympy": "sympy" in sys.modules,
                      "rules": "grader.truth.rule_derivation" in sys.modules}))
"""


def test_a_warm_run_imports_no_sympy_and_grades_the_same(tmp_path):
    cold = _run(GRADE_REFERENCE, tmp_path)
    assert cold["sympy"]  # an empty cache: everything derived
    warm = _run(GRADE_REFERENCE, tmp_path)
    assert not warm["sympy"] and not warm["rules"]
    assert warm["score"] == cold["score"] == warm["max"]


def test_a_changed_spec_derives_afresh_with_a_warm_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    truth = symbolic.SymbolicTruth(0.0)
    z = np.array([[0.5, -1.0]])

    def layer(formula):
        return parse_spec({"assignment": {}, "classes": {"G": {"kind": "elementwise", "forward": formula, "points": {"forward": 1}}}}).classes["G"]

    first = truth.elementwise_derivative(layer("tanh(z)"), z)
    monkeypatch.setattr(symbolic, "_MEMORY", {})  # a new process: only the disk cache
    second = truth.elementwise_derivative(layer("2*tanh(z)"), z)
    np.testing.assert_allclose(second, 2 * first)
    np.testing.assert_allclose(first, 1 - np.tanh(z) ** 2)


def test_the_key_changes_with_the_grader_source_and_library_versions(monkeypatch):
    before = cache.key("numpy", "value|x")
    cache.code_digest.cache_clear()
    real = cache.installed_version
    monkeypatch.setattr(cache, "installed_version", lambda name: "0.0" if name == "sympy" else real(name))
    try:
        assert cache.key("numpy", "value|x") != before
    finally:
        monkeypatch.undo()
        cache.code_digest.cache_clear()
    assert cache.key("numpy", "value|x") == before


def test_library_versions_are_read_without_importing_them_as_importlib_metadata_reads_them():
    import importlib.metadata

    for name in ("sympy", "numpy", "mpmath", "click", "jinja2"):
        assert cache.installed_version(name) == importlib.metadata.version(name)
    assert cache.installed_version("surely_not_installed_pkg") == "none"
    code = "import sys; from grader.cache import installed_version; installed_version('sympy'); print('sympy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_spec_facts_are_read_from_the_cache_and_a_damaged_entry_is_derived_again(tmp_path, monkeypatch):
    from grader.assignment.spec import default_spec_path

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    first = load_spec(default_spec_path())
    (entry,) = tmp_path.glob("*.spec.json")
    facts = json.loads(entry.read_text())
    assert facts["SquaredError"]["squared_error"] and not facts["LogLoss"]["squared_error"]
    assert facts["ReLuLayer"]["kinks"] == [0.0]
    entry.write_text("{damaged")
    again = load_spec(default_spec_path())
    assert {n: c.options for n, c in again.classes.items()} == {n: c.options for n, c in first.classes.items()}
    assert json.loads(entry.read_text()) == facts


def test_preloading_reads_what_the_last_run_used_and_derives_no_function(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    spec = load_spec()
    symbolic.preload(spec)  # an empty cache: no function is derived, none is kept
    assert not symbolic._MEMORY
    truth = symbolic.SymbolicTruth(spec.epsilon)
    truth.elementwise_forward(spec.classes["TanhLayer"], np.zeros((1, 2)))
    truth.softmax_jacobian(np.zeros((2, 3)))
    used = set(symbolic._MEMORY)
    symbolic.note_used(spec)
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    symbolic.preload(spec)  # a new run: what the last one used, read from the disk
    assert set(symbolic._MEMORY) == used
    assert ("numpy", f"value|{spec.classes['TanhLayer'].definition}") in used and ("numpy", "softmax_jacobian|3") in used
    (entry,) = tmp_path.glob("*.used.json")
    written = entry.stat().st_mtime_ns
    symbolic.note_used(spec)  # nothing new: not written again
    assert entry.stat().st_mtime_ns == written
    entry.write_text('[["numpy", 5], ["shell", "rm -rf /"], "junk"]')  # a damaged list is skipped entry by entry
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    symbolic.preload(spec)
    assert not symbolic._MEMORY


def test_cached_mpmath_code_runs_only_when_it_is_arithmetic(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    spec = load_spec()
    sigmoid = spec.classes["LogisticSigmoidLayer"]
    truth = symbolic.SymbolicTruth(spec.epsilon)
    edge = np.array([[-1000.0, 0.0]])  # e^1000 / e^1000 in numpy: redone with mpmath
    expected = truth.elementwise_derivative(sigmoid, edge)
    assert np.isfinite(expected).all() and expected[0, 1] == pytest.approx(0.25)
    (planted,) = tmp_path.glob("*.mp.py")
    marker = tmp_path / "ran"
    planted.write_text(f"def _lambdifygenerated(z):\n    return open({str(marker)!r}, 'w')\n")
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    np.testing.assert_array_equal(truth.elementwise_derivative(sigmoid, edge), expected)
    assert not marker.exists()
    for text in ("def _lambdifygenerated(z):\n    return __import__('os')\n",
                 "def _lambdifygenerated(z):\n    return quad(z, [0, 1])\n",
                 "def _lambdifygenerated(z):\n    return exp.__globals__\n"):
        with pytest.raises(ValueError, match="cached code refused"):
            symbolic._load_mpmath(text, "x.py")


def test_the_numpy_names_of_cached_code_are_those_lambdify_uses():
    import sympy as sp

    theirs = sp.lambdify([], 0, modules="numpy").__globals__
    ours = symbolic._numpy_namespace()
    shared = [n for n in ours if n in theirs and n not in ("__builtins__", "reduce")]
    assert len(shared) > 50
    for name in shared:
        if isinstance(ours[name], float):
            assert ours[name] == theirs[name] or np.isnan(ours[name]) and np.isnan(theirs[name]), name
        else:
            assert ours[name] is theirs[name], name


def test_remembered_truth_is_handed_out_as_copies(monkeypatch):
    from grader.truth import remembered

    monkeypatch.setattr(remembered, "_MEMORY", __import__("collections").OrderedDict())
    spec = load_spec()
    truth = symbolic.SymbolicTruth(spec.epsilon)
    tanh = spec.classes["TanhLayer"]
    z = np.array([[0.3, -2.0]])
    first = truth.elementwise_forward(tanh, z)
    first[:] = 99.0  # a caller scribbling on its result
    kept = len(remembered._MEMORY)
    again = truth.elementwise_forward(tanh, z)
    np.testing.assert_allclose(again, np.tanh(z))
    assert len(remembered._MEMORY) == kept
    Y, Yhat = np.array([[1.0, 0.0]]), np.array([[0.8, 0.1]])
    band = truth.objective_gradient_band(spec.classes["LogLoss"], Y, Yhat)
    expected = band.lower.copy()
    band.lower.fill(0)
    np.testing.assert_array_equal(truth.objective_gradient_band(spec.classes["LogLoss"], Y, Yhat).lower, expected)
    # other points, another class with the same name but another formula: not confused
    assert not np.allclose(truth.elementwise_forward(tanh, z + 1), again)
    other = parse_spec({"assignment": {}, "classes": {"TanhLayer": {"kind": "elementwise", "forward": "2*tanh(z)",
                                                                    "points": {"forward": 1}}}}).classes["TanhLayer"]
    np.testing.assert_allclose(truth.elementwise_forward(other, z), 2 * np.tanh(z))


def test_the_warm_up_runs_while_the_worker_starts_and_cannot_break_grading(tmp_path):
    from grader.grade import grade_submission

    calls = []
    result = grade_submission(ROOT / "reference", sandbox="process", prepare=lambda: calls.append("prepared"))
    assert calls == ["prepared"] and result.score == result.max_score

    def broken():
        raise RuntimeError("a warm-up that fails")

    result = grade_submission(ROOT / "reference", sandbox="process", prepare=broken)
    assert result.score == result.max_score and not result.errors


def test_the_environment_is_resolved_once_and_read_back_without_importlib_metadata(tmp_path):
    code = """
        import json, sys
        from grader.sandbox.environment import resolve
        env = resolve(("numpy",))
        print(json.dumps({"paths": env.paths, "modules": sorted(env.modules), "metadata": "importlib.metadata" in sys.modules}))
    """
    first, second = _run(code, tmp_path), _run(code, tmp_path)
    assert first["metadata"] and not second["metadata"]
    assert first["paths"] == second["paths"] and first["modules"] == second["modules"] == ["numpy"]
    assert {name for _, name in first["paths"]} >= {"numpy"}


def test_a_planted_environment_entry_cannot_mount_the_grader_or_a_foreign_folder(tmp_path, monkeypatch):
    from grader.sandbox import environment
    from grader.paths import reference_dir

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    environment.resolve.cache_clear()
    honest = environment.resolve(("numpy",))
    (entry,) = tmp_path.glob("*.env.json")
    site = honest.paths[0][0]
    secret = tmp_path / "secret"
    secret.mkdir()
    for planted in ([str(reference_dir().parent), reference_dir().name],  # the reference solution
                    [str(tmp_path), "secret"],  # a folder that is not on sys.path
                    [site, "../../.."]):  # out of the site folder
        stored = json.loads(entry.read_text())
        folders = {**stored["folders"], planted[0]: os.stat(planted[0]).st_mtime_ns}  # consistent, so only the mount check can refuse it
        entry.write_text(json.dumps({**stored, "paths": stored["paths"] + [planted], "folders": folders}))
        environment.resolve.cache_clear()
        assert environment.resolve(("numpy",)) == honest, planted
        entry.write_text(json.dumps(stored))
    environment.resolve.cache_clear()


def test_installing_or_removing_a_package_resolves_the_environment_afresh(tmp_path, monkeypatch):
    from grader.sandbox import environment

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    environment.resolve.cache_clear()
    first = environment.resolve(("numpy",))
    (entry,) = tmp_path.glob("*.env.json")
    stored = json.loads(entry.read_text())
    assert set(stored["folders"]) == {folder for folder, _ in first.paths}
    environment.resolve.cache_clear()
    assert environment.resolve(("numpy",)) == first and entry.read_text() == json.dumps(stored)  # read back
    folder = next(iter(stored["folders"]))  # an install there changes the folder's time
    entry.write_text(json.dumps({**stored, "paths": stored["paths"][:1], "folders": {folder: stored["folders"][folder] - 1}}))
    environment.resolve.cache_clear()
    assert environment.resolve(("numpy",)) == first  # resolved again: the truncated entry was not used
    assert json.loads(entry.read_text()) == stored
    environment.resolve.cache_clear()


def test_the_worker_is_launched_before_the_grader_imports_numpy(tmp_path):
    """Both then start together on two cores (warm cache): a top-level numpy import in what runs
    before the launch (cli, api, grade, spec, sandbox) would cost a self-check some 40 ms."""
    code = """
        import json, sys
        from grader.sandbox import parent
        seen = []
        launch = parent.Sandbox.launch
        def noted(self):
            seen.append("numpy" in sys.modules)
            return launch(self)
        parent.Sandbox.launch = noted
        from grader.api import run
        from grader.sandbox import Limits
        status = run(paths=[__import__("pathlib").Path("reference")], out_dir=__import__("pathlib").Path(sys.argv[1]),
                     sandbox="bwrap" if parent.bwrap_available() else "process", echo=lambda text: None)
        print(json.dumps({"numpy_before_launch": seen, "status": status}))
    """
    for run in ("cold", "warm"):  # a cold cache derives the spec's facts with SymPy, which imports numpy
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "out")], capture_output=True, text=True,
                              env={"GRADER_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}, cwd=str(ROOT), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data == {"numpy_before_launch": [False], "status": 0}


def test_the_grade_program_asks_for_one_blas_thread_before_numpy_is_imported(tmp_path):
    code = ("import os, sys; import grader.cli as cli; cli.quick_exit = lambda command: print("
            "os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'), 'numpy' in sys.modules); cli.program()")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=60)
    assert done.stdout.split() == ["1", "1", "False"], done.stderr
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, "OPENBLAS_NUM_THREADS": "4"},
                          cwd=str(ROOT), timeout=60)
    assert done.stdout.split() == ["4", "1", "False"]  # what the user set stays


@pytest.mark.parametrize("body", [
    "return x.__class__", "return __import__('os')", "import os\n    return x", "return [y for y in x]", "return (lambda: x)()",
    "return x[0]", "del x\n    return 1", "global q\n    return x", "return (y := x)", "return f'{x}'", "return b'x'",
    "return 'text'", "return exp(x, out=x)", "return open('f')", "x.y = 1\n    return x", "return q", "return {x: 1}",
    "def inner():\n        return x\n    return inner()", "return exp(*x)", "return exp(**x)", "return exp(x)[0]",
    "for y in x:\n        pass\n    return x", "return x if x else x.y",
])
def test_cached_numpy_code_that_is_not_plain_arithmetic_is_refused(body):
    # the check walks the tree with a stack of its own: every node kind lambdify never writes is still refused
    with pytest.raises(ValueError, match="cached code refused"):
        symbolic._load_lambdified(f"def _lambdifygenerated(x):\n    {body}\n", "x.py")


def test_cached_numpy_code_as_lambdify_writes_it_is_read():
    text = ("def _lambdifygenerated(z, epsilon):\n    x0 = exp(-z)\n    x1 = x0 + 1\n"
            "    return [select([less(z, 0), True], [x0/x1**2, -x1 + 2.0], default=nan), -x0 if z > 1 else epsilon]\n")
    fn = symbolic._load_lambdified(text, "x.py")
    assert fn(np.array(-1.0), 1e-7)[0] == pytest.approx(np.e / (np.e + 1) ** 2)
