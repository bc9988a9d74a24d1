"""The update step, FullyConnectedLayer.updateWeights: its SymPy truth, the call read from the
signature students write, the spec's reduction, what graded_as records."""
import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.assignment.spec import load_spec
from grader.exceptions import SpecError
from grader.grade import grade_submission
from grader.kinds.fully_connected_update import plan_from_signature
from grader.paths import reference_dir
from grader.sandbox import Limits
from grader.truth.update_truth import update_exprs, update_gradients

SUBMISSIONS = Path(__file__).resolve().parent / "fixtures" / "submissions"
FAST = Limits(call_timeout=2.0, total_timeout=120.0)
UPDATE = "FullyConnectedLayer.updateWeights"


@pytest.mark.parametrize("n,d,k", [(7, 5, 3), (1, 5, 3), (4, 3, 3), (6, 2, 1)])
def test_truth_is_derived_and_is_x_transpose_delta_over_n(n, d, k):
    rng = np.random.default_rng(n * 100 + d * 10 + k)
    X, G = rng.normal(size=(n, d)), rng.normal(size=(n, k))
    gW, gb = update_gradients(X, G)
    np.testing.assert_allclose(gW, X.T @ G / n, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, G.mean(axis=0, keepdims=True), rtol=1e-12, atol=1e-14)
    sW, sb = update_gradients(X, G, "sum")
    np.testing.assert_allclose(sW, X.T @ G, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sb, G.sum(axis=0, keepdims=True), rtol=1e-12, atol=1e-14)


def test_the_derivation_is_sympys_and_depends_on_no_weight():
    args, derived = update_exprs(2, 3, 2, "mean")
    assert len(args) == 2 * 3 + 2 * 2 and len(derived) == 3 * 2 + 2
    names = {str(s) for e in derived for s in e.free_symbols}
    assert names and not any(n.startswith(("W", "b")) for n in names)  # linear in W and b: their gradient holds neither


def _plan(source: str):
    return plan_from_signature(ast.parse(source).body[0])


@pytest.mark.parametrize("source,shape,before", [
    ("def updateWeights(self, gradIn, eta): pass", "gradIn, eta", ()),
    ("def updateWeights(self, GradIn, learningRate): pass", "gradIn, eta", ()),
    ("def updateWeights(self, gradIn, lr=0.1): pass", "gradIn, eta", ()),
    ("def updateWeights(self, gradIn, learning_rate=0.001): pass", "gradIn, eta", ()),
    ("def updateWeights(self, gradIn, eta, Adam=False, epoch=0): pass", "gradIn, eta", ()),
    ("def updateWeights(self, gradIn, momentum=0.0, lr=0.1): pass", "gradIn, eta", (0.0,)),
    ("def updateWeights(self, gradIn): pass", "gradIn", ()),
    ("def updateWeights(self, gradIn, epoch=1): pass", "gradIn", ()),
    ("def updateWeights(self, learning_rate): pass", "eta after backward", ()),
    ("def updateWeights(self): pass", "after backward", ()),
    ("def updateWeights(self, gradIn, t, p_1=0.9, p_2=0.999, eta=0.0001, delta=10e-8, optimizer='Adam'): pass", "not gradable", ()),
    ("def updateWeights(self, gradIn, eta=0.001, optimizer='Adam'): pass", "not gradable", ()),
    ("def updateWeights(self, gradIn, eta, Adam=True): pass", "not gradable", ()),
])
def test_the_call_is_read_from_the_signature(source, shape, before):
    plan = _plan(source)
    assert plan.shape == shape and plan.before_rate == before
    if shape == "not gradable":
        assert plan.reason and plan.written in plan.reason


@pytest.fixture(scope="module")
def graded():
    cache = {}

    def get(name, **kw):
        if name not in cache:
            cache[name] = grade_submission(SUBMISSIONS / name, sandbox="process", limits=FAST, **kw)
        return cache[name]
    return get


@pytest.mark.parametrize("fixture,signature,called_as", [
    ("eps_variants_correct", "updateWeights(gradIn, eta)", "updateWeights(gradIn, η)"),
    ("fc_update_shapes_learning_rate", "updateWeights(gradIn, learningRate, Adam=False, epoch=0)", "updateWeights(gradIn, η)"),
    ("fc_update_shapes_own_rate", "updateWeights(gradIn, epoch=1)", "updateWeights(gradIn)"),
    ("fc_update_shapes_after_backward", "updateWeights(learning_rate)", "backward(gradIn); updateWeights(η)"),
])
def test_graded_as_records_the_signature_and_the_call(fixture, signature, called_as, graded):
    item = graded(fixture).item(UPDATE)
    assert item.status == "passed" and item.score == 5
    assert item.graded_as["signature"] == signature and item.graded_as["called_as"] == called_as


def test_a_rate_of_its_own_is_graded_at_that_rate_with_a_note(graded):
    item = graded("fc_update_shapes_own_rate").item(UPDATE)
    assert "takes no learning rate: graded at the rate its step applies" in item.checks[0].note
    assert "η ≈ 0.001 here" in item.checks[0].note


def test_adam_by_default_is_not_gradable_as_written_never_a_wrong_answer(graded):
    item = graded("fc_update_shapes_adam_default").item(UPDATE)
    assert item.score == 0 and item.graded_as["called_as"] == "not called"
    assert "runs Adam unless told otherwise (optimizer='Adam')" in item.graded_as["not_gradable"]
    assert all("not gradable as written" in c.message and not c.diagnosis for c in item.checks)
    # said as every kind says it (checks.not_gradable): the same status, wording and places as an image layer's
    assert item.status == "failed" and all(c.message.startswith("not gradable as written: updateWeights(") for c in item.checks)
    assert all(c.outcome == "ok" and c.not_gradable == item.graded_as["not_gradable"] for c in item.checks)
    assert item.reason.startswith("updateWeights(gradIn, t, p_1=0.9, p_2=0.999, eta=0.0001, optimizer='Adam') runs Adam")


def test_the_rule_is_shown_as_derived(graded):
    item = graded("eps_variants_correct").item(UPDATE)
    assert item.rule_plain == "W′_ij = W_ij − η·Σₙ δ_nj·x_ni/N;  b′_j = b_j − η·Σₙ δ_nj/N"
    assert "<mfrac>" in item.rule_mathml and r"\frac{\eta \sum_{n=1}^{N}" in item.rule_latex


def _sum_spec(tmp_path) -> Path:
    text = (Path(load_spec().source).read_text()
            .replace('update_reduction = "mean"', 'update_reduction = "sum"'))
    path = tmp_path / "sum.toml"
    path.write_text(text)
    return path


def test_the_spec_names_the_reduction_a_sum_course_grades_the_mean_as_its_mistake(tmp_path):
    spec = load_spec(_sum_spec(tmp_path))
    assert spec.classes["FullyConnectedLayer"].options.update_reduction == "sum"
    item = grade_submission(reference_dir(), spec=spec, sandbox="process", limits=FAST).item(UPDATE)
    assert item.status == "partial" and item.score == pytest.approx(1.25)  # one observation: a mean is a sum
    assert "averaged instead of summed: Xᵀδ/N, N (= 7) times too small" in item.diagnoses
    assert item.rule_plain == "W′_ij = W_ij − η·Σₙ δ_nj·x_ni;  b′_j = b_j − η·Σₙ δ_nj"
    summed = grade_submission(SUBMISSIONS / "fc_update_summed", spec=spec, sandbox="process", limits=FAST)
    assert summed.item(UPDATE).status == "passed"


def test_update_reduction_is_checked(tmp_path):
    path = _sum_spec(tmp_path)
    path.write_text(path.read_text().replace('update_reduction = "sum"', 'update_reduction = "median"'))
    with pytest.raises(SpecError, match="update_reduction"):
        load_spec(path)


def test_a_copy_of_reference_with_a_noop_update_earns_nothing(tmp_path):
    folder = tmp_path / "noop"
    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    layers = folder / "layers.py"
    text = layers.read_text()
    start = text.index("    def updateWeights(self, gradIn, eta")
    end = text.index("class LinearLayer")
    layers.write_text(text[:start] + "    def updateWeights(self, gradIn, eta):\n        self.getPrevIn().T @ gradIn\n\n\n" + text[end:])
    result = grade_submission(folder, sandbox="process", limits=FAST)
    item = result.item(UPDATE)
    assert item.score == 0 and "W and b did not change (no update, or an update of a copy)" in item.diagnoses
    assert result.score == 95


def test_next_forward_catches_an_update_that_forward_does_not_see(tmp_path):
    text = (SUBMISSIONS / "eps_variants_correct" / "submission.py").read_text()
    for old, new in (("        self.weights = self.weights - eta * dJdW\n        self.biases = self.biases - eta * dJdb",
                      "        self.shown = (self.getWeights() - eta * dJdW, self.getBiases() - eta * dJdb)"),
                     ("    def getWeights(self):\n        return self.weights", "    def getWeights(self):\n        return getattr(self, 'shown', (self.weights,))[0]"),
                     ("    def getBiases(self):\n        return self.biases", "    def getBiases(self):\n        return getattr(self, 'shown', (0, self.biases))[1]")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "copies").mkdir()
    (tmp_path / "copies" / "submission.py").write_text(text)
    item = grade_submission(tmp_path / "copies", sandbox="process", limits=FAST).item(UPDATE)
    assert [c.name for c in item.checks if not c.passed] == ["next_forward"] and item.score == pytest.approx(4.5)
    assert any(d.startswith("forward() after the update does not use the W and b the getters return") for d in item.diagnoses)


def test_gradescope_shows_the_update_like_the_other_items(graded):
    import json

    from grader.outputs.writers import gradescope_json

    tests = {t["name"]: t for t in json.loads(gradescope_json(graded("fc_update_ascent")))["tests"]}
    update = next(t for name, t in tests.items() if name.startswith(UPDATE))
    assert update["max_score"] == 5 and update["score"] == 0 and "gradient ascent" in update["output"]
    assert sum(t["max_score"] for t in tests.values()) == pytest.approx(100)


def test_the_central_differences_of_the_own_forward_take_one_round_trip(monkeypatch):
    # 24 shifted weights (W and b, ±h), each set and run forward: asked together, answered in order
    import grader.grade as grade
    from grader.sandbox import Sandbox

    requests, inside = [], []
    request, run_check = Sandbox.request, grade._run_check

    def counting(self, message, timeout=None):
        if any(inside):
            requests.append(message["op"])
        return request(self, message, timeout)

    def watched(check, ctx, name, weight, result):
        inside.append(ctx.item.name == "FullyConnectedLayer.updateWeights" and name == "finite_differences")
        try:
            return run_check(check, ctx, name, weight, result)
        finally:
            inside.clear()
    monkeypatch.setattr(Sandbox, "request", counting)
    monkeypatch.setattr(grade, "_run_check", watched)
    item = grade_submission(reference_dir(), sandbox="process", limits=FAST).item("FullyConnectedLayer.updateWeights")
    assert [c.passed for c in item.checks if c.name == "finite_differences"] == [True]
    assert requests.count("chain") == 1 and len(requests) == 8, requests  # before: 32 (24 of them the shifted forwards)


def test_a_setter_failing_among_the_shifted_weights_is_reported_as_it_was(tmp_path):
    folder = tmp_path / "submission"
    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    layers = folder / "layers.py"
    text = layers.read_text()
    head = "    def setWeights(self, weights):\n"
    assert head in text
    layers.write_text(text.replace(head, head + "        self.__dict__['sets'] = self.__dict__.get('sets', 0) + 1\n"
                                               "        if self.sets == 9:\n            raise ValueError('ninth set')\n", 1))
    item = grade_submission(folder, sandbox="process", limits=FAST).item("FullyConnectedLayer.updateWeights")
    (check,) = [c for c in item.checks if c.name == "finite_differences"]
    assert not check.passed and check.outcome == "error"
    assert check.message.startswith("FullyConnectedLayer.setWeights() gave ") and "ninth set" in check.message, check.message
