"""Diagnoses come from numbers: constant factors, transposes, and the catalogue's own mistakes."""
import numpy as np
import pytest

from grader.checking.diagnose import Situation, diagnose
from grader.assignment.spec import load_spec
from grader.truth.symbolic import SymbolicTruth

SPEC = load_spec()
TRUTH = SymbolicTruth(SPEC.epsilon)


def situation(name, method, **kw):
    return Situation(SPEC.classes[name], method, TRUTH, **kw)


@pytest.mark.parametrize("factor,name", [(-1, "sign flipped"), (2, "an extra factor of 2"), (0.5, "a factor of 2 missing"),
                                         (1 / 7, "divided by N (= 7): the gradient is per entry, not averaged"), (1 / 3, "divided by K (= 3)"),
                                         (21, "multiplied by N·K (= 21): summed instead of averaged"),
                                         (3.7, "off by a constant factor of 3.7")])
def test_constant_factors_are_named(factor, name):
    rng = np.random.default_rng(1)
    Y, Yhat = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    expected = -2 * (Y - Yhat)
    s = situation("SquaredError", "gradient", Y=Y, Yhat=Yhat)
    assert diagnose(expected * factor, expected, s, rtol=1e-6, atol=1e-8) == name


def test_transposed_is_named():
    rng = np.random.default_rng(2)
    expected = rng.normal(size=(4, 3, 5))
    s = situation("FullyConnectedLayer", "gradient", X=rng.normal(size=(4, 5)), W=rng.normal(size=(2, 2)), b=np.zeros((1, 2)))
    assert diagnose(np.swapaxes(expected, 1, 2), expected, s, rtol=1e-6, atol=1e-8) == "transposed: rows and columns swapped"


def test_unknown_mistake_gets_no_name():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 3))
    s = situation("TanhLayer", "forward", X=X)
    assert diagnose(np.sin(X), np.tanh(X), s, rtol=1e-6, atol=1e-8) is None


def test_spec_mistake_formula_is_matched():
    X = np.random.default_rng(4).uniform(-3, 3, size=(7, 3))
    g = np.tanh(X)
    s = situation("TanhLayer", "gradient", X=X)
    assert diagnose(1 - g, 1 - g**2, s, rtol=1e-6, atol=1e-8) == "1 − g instead of 1 − g²"
    # the same numbers given as an N×K×K Jacobian are recognised too
    full = np.einsum("nk,kj->nkj", 1 - g, np.eye(3))
    assert diagnose(full, np.einsum("nk,kj->nkj", 1 - g**2, np.eye(3)), s, rtol=1e-6, atol=1e-8) == "1 − g instead of 1 − g²"


def test_softmax_batch_normalisation_is_recognised():
    X = np.random.default_rng(5).normal(size=(4, 3))
    wrong = np.exp(X) / np.exp(X).sum()
    s = situation("SoftmaxLayer", "forward", X=X)
    assert diagnose(wrong, TRUTH.softmax_forward(X), s, rtol=1e-6, atol=1e-8) == "softmax normalised over the whole batch instead of each row"


def test_a_named_mistake_has_a_stable_code_beside_its_text_and_keeps_it_through_json_and_pickle():
    """Tests and tools matched English sentences; each named mistake now has a code (issue 20)."""
    import pickle
    from pathlib import Path

    from grader.checking.results import SubmissionResult
    from grader.grade import grade_submission

    fixture = Path(__file__).parent / "fixtures" / "submissions" / "softmax_diagonal_only"
    result = grade_submission(fixture, sandbox="process")
    checks = {c.name: c for c in result.item("SoftmaxLayer.gradient").checks}
    assert checks["jacobian"].diagnosis == "only the diagonal of the softmax Jacobian, g(1 − g)"  # the text, unchanged
    assert checks["jacobian"].diagnosis.code == "softmax.diagonal_only"
    backward = next(c for c in result.item("SoftmaxLayer.backward").checks if c.name == "chain_rule")
    assert backward.diagnosis.code == "softmax.diagonal_only_backward"
    as_json = result.to_dict()
    row = next(c for i in as_json["items"] if i["name"] == "SoftmaxLayer.gradient" for c in i["checks"] if c["name"] == "jacobian")
    assert row["diagnosis_code"] == "softmax.diagonal_only" and row["diagnosis"] == checks["jacobian"].diagnosis
    again = SubmissionResult.from_dict(as_json)
    assert next(c for c in again.item("SoftmaxLayer.gradient").checks if c.name == "jacobian").diagnosis.code == "softmax.diagonal_only"
    assert pickle.loads(pickle.dumps(checks["jacobian"].diagnosis)).code == "softmax.diagonal_only"


def test_every_kind_names_its_mistakes_with_codes_of_its_own():
    import ast
    import inspect

    from grader.kinds import KINDS, implementation

    for name in KINDS:
        tree = ast.parse(inspect.getsource(implementation(name)))
        codes = [node.value.elts[0].value for node in ast.walk(tree) if isinstance(node, ast.Yield)
                 and isinstance(node.value, ast.Tuple) and isinstance(node.value.elts[0], ast.Constant)]
        assert codes and all(code.startswith(name + ".") for code in codes), (name, codes)
        for node in ast.walk(tree):  # every candidate is (code, text, numbers)
            if isinstance(node, ast.Yield) and node.value is not None:
                assert isinstance(node.value, ast.Tuple) and len(node.value.elts) == 3, (name, ast.unparse(node))
