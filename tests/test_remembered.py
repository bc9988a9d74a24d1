"""Remembered truth (grader/truth/remembered.py): a self-check run again looks its truth up on disk,
and every verdict is the one computing it afresh gives."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader.truth import remembered
from grader.truth.band import Band

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "submissions"

GRADE = """
    import json, sys
    from grader.assignment.spec import load_spec
    from grader.grade import grade_submission
    from grader.truth import symbolic
    result = grade_submission({path!r}, sandbox="process", spec={spec}, remember_truth={remember})
    out = result.to_dict()
    for volatile in ("elapsed_s", "graded_at", "sandbox", "sandbox_note"):
        out.pop(volatile, None)
    print(json.dumps({{"result": out, "functions_read": len(symbolic._MEMORY), "mpmath": "mpmath" in sys.modules}}))
"""


def _grade(path, cache: Path, *, remember=True, spec="None") -> dict:
    """Grade in a fresh interpreter with this cache folder (a student's next self-check)."""
    env = {"GRADER_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    code = textwrap.dedent(GRADE.format(path=str(path), spec=spec, remember=remember))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_self_check_run_again_looks_its_truth_up_and_judges_exactly_alike(tmp_path):
    first = _grade(ROOT / "reference", tmp_path)
    assert first["functions_read"] > 20  # computed: the derived functions read from the cache
    (stored,) = tmp_path.glob("*.truth")
    second = _grade(ROOT / "reference", tmp_path)
    assert second["functions_read"] == 0 and not second["mpmath"]  # every answer looked up
    assert second["result"] == first["result"]
    assert second["result"]["score"] == second["result"]["max_score"]
    written = stored.stat().st_mtime_ns
    _grade(ROOT / "reference", tmp_path)
    assert stored.stat().st_mtime_ns == written  # the same answers used: not written again


@pytest.mark.parametrize("fixture", ["fc_backward_untransposed", "ce_gradient_shortcut", "answers_of_every_shape"])
def test_wrong_answers_are_judged_alike_with_remembered_truth_and_without(tmp_path, fixture):
    """A student's code changed since the last run (here: the reference's run, then a buggy one):
    the points it shares are looked up, the new ones computed, and every verdict, diagnosis and
    message is the one a run without remembered truth gives."""
    _grade(ROOT / "reference", tmp_path)
    looked_up = _grade(FIXTURES / fixture, tmp_path)
    again = _grade(FIXTURES / fixture, tmp_path)
    afresh = _grade(FIXTURES / fixture, tmp_path / "empty", remember=False)
    assert looked_up["result"] == afresh["result"] == again["result"]
    assert looked_up["result"]["score"] < looked_up["result"]["max_score"]


def test_the_cnn_spec_is_remembered_too(tmp_path):
    first = _grade(ROOT / "reference", tmp_path, spec="load_spec('cnn')")
    second = _grade(ROOT / "reference", tmp_path, spec="load_spec('cnn')")
    assert second["functions_read"] == 0 and second["result"] == first["result"]


@pytest.mark.parametrize("damage", [b"", b"junk", remembered.MAGIC + b"{not json\n",
                                    remembered.MAGIC + b'["a list"]\n',
                                    "offsets"])
def test_a_damaged_truth_file_is_computed_afresh(tmp_path, damage):
    first = _grade(ROOT / "reference", tmp_path)
    (stored,) = tmp_path.glob("*.truth")
    if damage == "offsets":  # every entry pointing past the numbers, or with a bad shape
        data = stored.read_bytes()
        header, _, _ = data[len(remembered.MAGIC):].partition(b"\n")
        index = {k: ["a", 10**9, [3]] if i % 2 else ["a", 0, [-1]] for i, k in enumerate(json.loads(header))}
        damage = remembered.MAGIC + json.dumps(index).encode() + b"\n" + b"\0" * 16
    stored.write_bytes(damage)
    again = _grade(ROOT / "reference", tmp_path)
    assert again["result"] == first["result"] and again["functions_read"] > 20


def test_hidden_checks_points_stay_off_the_disk(tmp_path, monkeypatch):
    """With the instructor's secret (hidden checks run at secret points) nothing is stored."""
    spec_file = tmp_path / "hidden.toml"
    default = (ROOT / "grader" / "assignment" / "specs" / "default.toml").read_text()
    spec_file.write_text(default + '\n[hidden]\nitems = ["TanhLayer.gradient"]\n')
    cache = tmp_path / "cache"
    env_code = f"import os; os.environ['GRADER_HIDDEN_SECRET'] = 'sesame'\n"
    code = env_code + textwrap.dedent(GRADE.format(path=str(ROOT / "reference"), spec=f"load_spec({str(spec_file)!r})", remember=True))
    env = {"GRADER_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])["result"]
    assert any(i.get("hidden") for i in result["items"])  # the hidden item was graded, with the secret
    assert not list(cache.glob("*.truth"))


def test_answers_keep_their_types_through_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(remembered, "_MEMORY", __import__("collections").OrderedDict())
    calls = []

    @remembered.remembered
    def answer(kind, x):
        calls.append(kind)
        return {
            "array": x * 2,
            "scalar": np.float64(x.sum()),
            "float": float(x.sum()),
            "band": Band(x, x - 1, x + 1),
            "list": [np.float64(1.5), np.float64(-2.0)],
            "tuple": (x, x.T),
            "integers": np.arange(3),  # another dtype: kept in memory only
        }[kind]

    x = np.array([[1.0, -2.5]])
    kinds = ("array", "scalar", "float", "band", "list", "tuple", "integers")
    assert not remembered.load("t")
    first = {k: answer(k, x) for k in kinds}
    remembered.store("t")
    monkeypatch.setattr(remembered, "_MEMORY", __import__("collections").OrderedDict())  # a new process
    assert remembered.load("t")
    again = {k: answer(k, x) for k in kinds}
    assert calls == [*kinds, "integers"]  # all but the integer array read back, none computed again
    for k in kinds:
        assert type(again[k]) is type(first[k]), k
    np.testing.assert_array_equal(again["array"], x * 2)
    assert again["band"].upper.tolist() == [[2.0, -1.5]] and again["tuple"][1].shape == (2, 1)
    again["array"][:] = 0  # handed out as a copy
    np.testing.assert_array_equal(answer("array", x), x * 2)
    remembered.stop()
