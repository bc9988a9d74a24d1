"""The `adam` spec: FullyConnectedLayer.updateWeights graded as Adam (grader/kinds/adam.py) — its
SymPy truth against the reference, the signatures students write, each named mistake costing the
Adam item alone, trivial answers earning nothing, the kit's stub."""
import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.assignment.spec import load_spec
from grader.grade import grade_submission
from grader.kinds.adam import adam_plan
from grader.kinds.fully_connected_update import plan_from_signature
from grader.paths import reference_dir, template_dir
from grader.sandbox import Limits
from grader.truth.adam_truth import adam_directions

SUBMISSIONS = Path(__file__).resolve().parent / "fixtures" / "submissions"
FAST = Limits(call_timeout=2.0, total_timeout=120.0)
ADAM = "FullyConnectedLayer.updateWeights"


@pytest.fixture(scope="module")
def spec():
    return load_spec("adam")


@pytest.fixture(scope="module")
def graded(spec):
    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = grade_submission(path, spec=spec, sandbox="process", limits=FAST)
        return cache[path]
    return get


def test_truth_is_the_recurrence_and_agrees_with_the_reference():
    from grader.truth.reference_truth import reference_module

    FullyConnectedLayer = reference_module().FullyConnectedLayer  # reference/, installed or in the checkout

    rng = np.random.default_rng(3)
    layer = FullyConnectedLayer(4, 2)
    W0, b0 = layer.getWeights().copy(), layer.getBiases().copy()
    grads, thetas = [], [np.vstack([W0, b0])]
    for t in (1, 2, 3):
        X, G = rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
        layer.forward(X)
        layer.updateWeights(G, 0.01, t, 0.8, 0.99, 1e-8)
        grads.append(np.vstack([X.T @ G / 5, G.mean(axis=0, keepdims=True)]))
        thetas.append(np.vstack([layer.getWeights(), layer.getBiases()]))
    truth = adam_directions(grads, 0.8, 0.99, 1e-8)
    np.testing.assert_allclose(-np.diff(np.array(thetas), axis=0) / 0.01, truth, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.abs(truth[0]), 1, rtol=1e-6)  # the first step is ≈ sign(g): only later steps tell Adam


def test_reference_scores_full_marks_and_the_template_nothing(graded, spec):
    ref = graded(reference_dir())
    assert ref.score == spec.max_score == 100
    assert ref.item(ADAM).graded_as["signature"] == "updateWeights(gradIn, eta=0.001, t=None, p1=0.9, p2=0.999, delta=1e-08)"
    assert graded(template_dir()).score == 0


def test_the_default_spec_still_reads_the_reference_as_the_plain_step():
    source = (reference_dir() / "layers.py").read_text()
    fc = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "FullyConnectedLayer")
    function = next(f for f in fc.body if isinstance(f, ast.FunctionDef) and f.name == "updateWeights")
    assert plan_from_signature(function).shape == "gradIn, eta"
    result = grade_submission(reference_dir(), sandbox="process", limits=FAST)
    assert result.score == 100


# (fixture, the Adam item's status, its score out of 5, the diagnosis code of its failed checks)
MISTAKES = [
    ("adam_no_bias_correction", "failed", 0.0, "fully_connected_adam.no_correction"),
    ("adam_power_of_complement", "failed", 0.0, "fully_connected_adam.power_of_complement_v"),
    ("adam_moments_reset", "failed", 0.0, "fully_connected_adam.reset"),
    ("adam_gradin_moments", "partial", 1.25, "fully_connected_adam.gradin_moments"),  # its bias is Adam's: the bias check (and next_forward) pass
    ("adam_bias_plain_sgd", "partial", 4.25, "fully_connected_adam.bias_plain_sgd"),  # the course's Adam moves b too: only the bias check
    ("adam_plain_sgd", "failed", 0.0, "fully_connected_adam.plain_sgd"),
    ("adam_sign", "failed", 0.0, "fully_connected_adam.sign"),
    ("adam_constructor_flag", "partial", 4.25, "fully_connected_adam.bias_plain_sgd"),  # DeLens: Adam=True given to the constructor too
]


@pytest.mark.parametrize("fixture,status,score,code", MISTAKES)
def test_each_mistake_costs_the_adam_item_alone(fixture, status, score, code, graded):
    result = graded(SUBMISSIONS / fixture)
    lost = [i.name for i in result.items if i.score < i.max_score]
    assert lost == [ADAM]
    item = result.item(ADAM)
    assert item.status == status and item.score == pytest.approx(score)
    failed = [c for c in item.checks if not c.passed]
    assert failed and all(getattr(c.diagnosis, "code", None) in (code, "fully_connected_adam.bias_plain_sgd") for c in failed)
    assert any(c.diagnosis.code == code for c in failed)


@pytest.mark.parametrize("fixture,signature,called_as", [
    ("adam_correct", "updateWeights(gradIn, t, p1=0.9, p2=0.999, eta=0.001, delta=1e-08)", "updateWeights(gradIn, t, p1, p2, η, δ)"),
    ("adam_shape_flag", "updateWeights(gradIn, eta, Adam=False, epoch=0)", "updateWeights(gradIn, η, True, t)"),
    ("adam_shape_own_method", "updateWeights2(GradIn, learningRate, beta1=0.9, beta2=0.999, epsilon=1e-08)",
     "updateWeights2(gradIn, η, p1, p2, δ)"),
    ("adam_shape_t_inside", "updateWeights(gradIn, eta=0.001, p1=0.9, p2=0.999, delta=1e-08)", "updateWeights(gradIn, η, p1, p2, δ)"),
])
def test_signatures_are_driven_and_recorded(fixture, signature, called_as, graded):
    result = graded(SUBMISSIONS / fixture)
    item = result.item(ADAM)
    assert result.score == 100 and item.status == "passed"
    assert item.graded_as["signature"] == signature and item.graded_as["called_as"].startswith(called_as)


def test_a_constructor_flag_is_switched_on_and_said(graded):
    """DeLens: __init__(sizeIn, sizeOut, xavier=False, Adam=False) creates the moments only when Adam is on."""
    item = graded(SUBMISSIONS / "adam_constructor_flag").item(ADAM)
    assert item.graded_as["notes"][0] == ("its constructor switches Adam on by a flag: each layer built as "
                                          "FullyConnectedLayer(sizeIn, sizeOut, xavier=False, Adam=True)")
    assert [c.name for c in item.checks if not c.passed] == ["bias"]


def test_an_adam_method_of_its_own_switched_on_by_a_string_is_graded_with_the_constants_it_sets(graded, tmp_path):
    """cwma86: updateWeights(gradIn, epoch=1) is a plain step (its epoch only decays the weights), the
    Adam step adam_weight_update, whose moments and constants the constructor sets on self only when
    weight_up_func == "adam_weight_update". The grader followed the epoch into the plain step."""
    item = graded(SUBMISSIONS / "adam_string_switch").item(ADAM)
    assert item.status == "passed" and item.score == 5
    assert item.graded_as["signature"] == "adam_weight_update(gradIn, epoch=1)"
    assert "weight_up_func='adam_weight_update'" in item.graded_as["notes"][0]
    # its own constants, read from the constructor: a p2 of its own is right, not the course's 0.999 assumed
    folder = tmp_path / "own_p2"
    shutil.copytree(SUBMISSIONS / "adam_string_switch", folder)
    source = (folder / "submission.py").read_text()
    (folder / "submission.py").write_text(source.replace("self.p2 = 0.999", "self.p2 = 0.95"))
    assert graded(folder).item(ADAM).score == 5
    # … and the moments of gradIn in it are named, the bias kept right
    folder = tmp_path / "gradin_moments"
    shutil.copytree(SUBMISSIONS / "adam_string_switch", folder)
    (folder / "submission.py").write_text(source.replace(
        "self.s = self.p1 * self.s + (1 - self.p1) * dJdW", "self.s = self.p1 * self.s + (1 - self.p1) * np.mean(gradIn, axis=0)").replace(
        "self.r = self.p2 * self.r + (1 - self.p2) * dJdW * dJdW", "self.r = self.p2 * self.r + (1 - self.p2) * np.mean(gradIn * gradIn, axis=0)"))
    wrong = graded(folder).item(ADAM)
    assert wrong.score < 5 and any(getattr(c.diagnosis, "code", "") == "fully_connected_adam.gradin_moments" for c in wrong.checks)


def test_a_constructor_that_cannot_run_is_not_gradable_not_the_students_error(graded):
    """zsheff1: the constructor sets W and the moments only for the student's own activation class;
    the grader's fallback (None) bypasses it, and learn(gradIn, t) then misses the moments."""
    result = graded(SUBMISSIONS / "adam_constructor_needs_class")
    item = result.item(ADAM)
    assert [i.name for i in result.items if i.score < i.max_score] == [ADAM]
    assert item.status == "failed" and item.score == 0
    assert item.reason.startswith("FullyConnectedLayer's constructor could not run as written "
                                  "(FullyConnectedLayer(5, 3, None) raised AttributeError), and learn needs state only it sets")
    assert "'mW'" in item.reason and item.graded_as["not_gradable"] == item.reason
    assert all(not c.passed and c.diagnosis is None and c.message.startswith("not gradable as written: ") for c in item.checks)


def test_t_counted_from_zero_is_credited_and_said(graded):
    """whood23: corrections 1 − pᵗ⁺¹ when called with t (its training loop passes 0, 1, 2 …) is the rule, not a mistake."""
    result = graded(SUBMISSIONS / "adam_zero_based_t")
    item = result.item(ADAM)
    assert result.score == 100 and item.status == "passed"
    from grader.kinds.adam import ZERO_BASED_NOTE
    assert item.graded_as["notes"][-1] == ZERO_BASED_NOTE.format(call="updateWeights")
    assert all(ZERO_BASED_NOTE.format(call="updateWeights") in c.note for c in item.checks if c.name != "next_forward")


def _plan(source, constants=None):
    return adam_plan(ast.parse(source).body[0], class_constants=constants)


@pytest.mark.parametrize("source,roles", [
    ("def updateWeights(self, gradIn, t, p_1=0.9, p_2=0.999, eta=0.0001, delta=10e-8, optimizer='Adam'): pass",
     ("gradIn", "t", "p1", "p2", "eta", "delta", ("flag", "Adam"))),
    ("def updateWeights(self, gradIn, eta, useAdam=False, iteration=1): pass", ("gradIn", "eta", ("flag", True), "t")),
    ("def learn(self, gradIn, t): pass", ("gradIn", "t")),
    ("def updateWeights2(self, gradIn, epochnum, learningRate=0.001): pass", ("gradIn", "t", "eta")),
    ("def adam_weight_update(self, gradIn, epoch=1): pass", ("gradIn", "t")),
])
def test_name_variants_are_read_by_role(source, roles):
    assert _plan(source).roles == roles


def test_constants_not_taken_are_the_students_own_or_said():
    plan = _plan("def learn(self, gradIn, t): pass", {"eta": 0.01, "p1": 0.9, "p2": 0.999, "delta": 1e-8})
    assert dict(plan.own) == {"eta": 0.01, "p1": 0.9, "p2": 0.999, "delta": 1e-8}
    plan = _plan("def adam_weight_update(self, gradIn, epoch=1): pass")
    assert dict(plan.own)["eta"] is None and any("η estimated from the first step" in n for n in plan.notes)


def test_a_shape_it_cannot_drive_is_not_gradable_never_wrong():
    plan = _plan("def updateWeights(self, gradIn, t, optimizerState): pass")
    assert not plan.gradable and "optimizerState" in plan.reason
    plan = _plan("def updateWeights(self, gradIn, t, *, state): pass")
    assert not plan.gradable and "state" in plan.reason


@pytest.mark.parametrize("fixture,code", [
    ("adam_shared_moments", "fully_connected_adam.shared_moments"),  # one layer alone right, two in turn wrong
    ("adam_no_sqrt", None),  # wrong for one layer too: an unnamed mistake, not shared moments
])
def test_shared_moments_are_said_only_when_one_layer_alone_is_right(fixture, code, graded):
    item = graded(SUBMISSIONS / fixture).item(ADAM)
    per_layer = next(c for c in item.checks if c.name == "per_layer")
    assert not per_layer.passed and getattr(per_layer.diagnosis, "code", None) == code
    assert any(c.passed for c in item.checks if c.name != "next_forward") == (code is not None)


def test_the_kit_hands_out_the_adam_stub(tmp_path):
    from grader.course.deploy import build_kit

    kit = build_kit(tmp_path / "kit", spec_file=Path("adam"))
    text = (kit / "my_work" / "layers.py").read_text()
    fc = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == "FullyConnectedLayer")
    function = next(f for f in fc.body if isinstance(f, ast.FunctionDef) and f.name == "updateWeights")
    assert ast.unparse(function.args) == "self, gradIn, t, p1=0.9, p2=0.999, eta=0.001, delta=1e-08"
    assert "m ← p1 m + (1 − p1) g" in ast.get_docstring(function)
    assert text.count("def updateWeights") == 1


# Trivial Adam steps (after the real step ran, the state is replaced): none earns any of the Adam item.
ADAM_TRIVIAL = {
    "no_op": "W0, b0",
    "zeros": "np.zeros_like(W0), np.zeros_like(b0)",
    "ones": "np.ones_like(W0), np.ones_like(b0)",
    "random": "np.random.default_rng().random(np.shape(W0)), np.random.default_rng().random(np.shape(b0))",
    "constant_step": "W0 - 0.75 * eta, b0 - 0.75 * eta",
}


@pytest.mark.parametrize("kind", sorted(ADAM_TRIVIAL))
def test_a_trivial_adam_step_earns_nothing(kind, spec, tmp_path):
    import shutil

    dest = tmp_path / f"trivial_{kind}"  # a folder named after a stdlib module (random) would shadow it
    shutil.copytree(reference_dir(), dest, ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "layers.py"
    tree = ast.parse(path.read_text())
    fc = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FullyConnectedLayer")
    real = next(f for f in fc.body if isinstance(f, ast.FunctionDef) and f.name == "updateWeights")
    real.name = "_real_updateWeights"
    fc.body.append(ast.parse("def updateWeights(self, gradIn, eta=0.001, t=None, p1=0.9, p2=0.999, delta=1e-8):\n"
                             "    W0, b0 = np.array(self.getWeights()), np.array(self.getBiases())\n"
                             "    self._real_updateWeights(gradIn, eta, t, p1, p2, delta)\n"
                             f"    W, b = {ADAM_TRIVIAL[kind]}\n"
                             "    self.setWeights(W)\n    self.setBiases(b)\n").body[0])
    path.write_text("import numpy as np\n" + ast.unparse(tree))
    result = grade_submission(dest, spec=spec, sandbox="process", limits=FAST)
    item = result.item(ADAM)
    assert [i.name for i in result.items if i.score < i.max_score] == [ADAM]
    assert item.score == 0 and item.status == "failed"
    assert all(not c.passed for c in item.checks if c.name != "next_forward")


# issue 22, attacked as a student would: δ as students write it is right; shared moments judged whatever the order
@pytest.mark.parametrize("fixture", ["adam_delta_inside_sqrt", "adam_delta_10e8_in_body"])
def test_delta_written_otherwise_is_credited_and_said(fixture, graded):
    """m̂/√(v̂ + δ), or the slides' "10e-8" (= 1e-7), differ from the course's δ = 1e-8 only where the gradient is
    tiny: both are Adam. (Before: 3.75/5 and 4.5/5, lost on whichever check drew a small gradient.)"""
    from grader.kinds.adam import DELTA_NOTE

    result = graded(SUBMISSIONS / fixture)
    item = result.item(ADAM)
    assert result.score == 100 and item.status == "passed"
    said = DELTA_NOTE.format(delta=1e-8, most=1e-7)
    assert any(said in (c.note or "") for c in item.checks)


@pytest.mark.parametrize("fixture,code", [
    ("adam_sign", "fully_connected_adam.sign"),
    ("adam_no_bias_correction", "fully_connected_adam.no_correction"),
    ("adam_moments_reset", "fully_connected_adam.reset"),
])
def test_the_delta_band_lets_no_mistake_through(fixture, code, graded):
    item = graded(SUBMISSIONS / fixture).item(ADAM)
    assert item.score == 0 and all(getattr(c.diagnosis, "code", None) == code for c in item.checks if c.name != "next_forward")


def test_moments_kept_once_on_the_class_are_shared_moments_whatever_the_order(graded):
    """Moments created once on the class (`if not hasattr(FullyConnectedLayer, 'mW')`): each check
    starts from the classes as importing left them (the worker's "fresh"), so the verdict is the
    one of moments shared between layers, 4.5/5, not one that depends on which check ran first
    (it was 2.25/5)."""
    item = graded(SUBMISSIONS / "adam_shared_moments_lazy").item(ADAM)
    per_layer = next(c for c in item.checks if c.name == "per_layer")
    assert getattr(per_layer.diagnosis, "code", None) == "fully_connected_adam.shared_moments"
    assert item.score == pytest.approx(graded(SUBMISSIONS / "adam_shared_moments").item(ADAM).score)


def test_moments_in_a_dict_of_the_class_are_shared_moments_whatever_the_order(graded):
    """Moments kept in a dict created on the class at import and updated in place (never reset):
    the dict is refilled as importing left it before each check, so this too is shared moments,
    4.5/5 (it was 2.25/5: every check after the first started from the last one's moments)."""
    item = graded(SUBMISSIONS / "adam_moments_in_class_dict").item(ADAM)
    failed = [c.name for c in item.checks if not c.passed]
    assert failed == ["per_layer"]
    per_layer = next(c for c in item.checks if c.name == "per_layer")
    assert getattr(per_layer.diagnosis, "code", None) == "fully_connected_adam.shared_moments"
    assert item.score == pytest.approx(graded(SUBMISSIONS / "adam_shared_moments").item(ADAM).score)
