"""The default spec loads as CONTRACT.md's assignment; every malformed spec is refused with its exact message."""
import numpy as np
import pytest
import sympy as sp

from grader.exceptions import SpecError
from grader.assignment.spec import Z, load_spec, parse_spec
from grader.truth.rules import rules_for
from grader.truth.symbolic import SymbolicTruth


def test_default_spec_is_the_contract_assignment(spec):
    assert spec.max_score == 100
    names = [item.name for item in spec.items]
    assert len(names) == 26 and "FullyConnectedLayer.updateWeights" in names
    assert names[:2] == ["SquaredError.eval", "SquaredError.gradient"]
    assert "SoftmaxLayer.gradient" in names and "InputLayer.forward" in names
    assert "InputLayer.gradient" not in names
    assert spec.find_class("leastsquares").name == "SquaredError"
    assert spec.find_class("RELULAYER").name == "ReLuLayer"
    assert spec.find_class("SigmoidLayer").name == "LogisticSigmoidLayer"
    assert spec.classes["FullyConnectedLayer"].method_names("getBiases") == ("getBiases", "getBias")
    assert spec.classes["SoftmaxLayer"].options.gradient_forms == ("jacobian",)
    assert spec.classes["ReLuLayer"].options.kinks == (0.0,)
    assert spec.classes["CrossEntropy"].options.reduction == "mean_rows"
    assert [n.item_name for n in spec.networks] == ["Network.classifier", "Network.binary"]


def base():
    return {
        "assignment": {"name": "t"},
        "classes": {"Soft": {"kind": "elementwise", "forward": "z", "points": {"forward": 1}}},
    }


def with_class(**body):
    data = base()
    data["classes"]["Soft"] = {"kind": "elementwise", "forward": "z", "points": {"forward": 1}, **body}
    return data


CASES = [
    ({"assignment": {}, "extra": 1}, "t.toml: key 'extra': unknown key; allowed here: assignment, classes, conventions, environment, hidden, late, networks, tolerance"),
    ({"assignment": {"nam": "x"}}, "t.toml: key 'assignment.nam': unknown key; did you mean 'name'? allowed here: description, epsilon, epsilon_range, name, title"),
    ({"assignment": {}}, "t.toml: declares no [classes.<Name>] table: a spec needs at least one gradable class"),
    (with_class(kind="attention"), "t.toml: [classes.Soft] key 'kind': unknown kind 'attention'; use one of objective, elementwise, softmax, fully_connected, fully_connected_adam, input, convolution, max_pool, flatten"),
    (with_class(colour="red"), "t.toml: [classes.Soft] key 'colour': unknown key; allowed here: adam, aliases, ddof, domain, estimates, forward, gradient_forms, image, images, kernel, kind, kinks, loss, methods, mistakes, pin, points, pool, reduction, rule_formulas, rules, stride, targets, tolerance, update_reduction"),
    (with_class(points={"forward": -2}), "t.toml: [classes.Soft] key 'points.forward': must not be negative, got -2"),
    (with_class(points={"forward": "two"}), "t.toml: [classes.Soft] key 'points.forward': must be a number, got 'two'"),
    (with_class(points={"eval": 1}), "t.toml: [classes.Soft] key 'points.eval': 'eval' is not graded for kind elementwise; graded: forward, gradient, backward"),
    (with_class(points={"forward": 0}), "t.toml: gives no points at all: set `points` on at least one class"),
    (with_class(forward="log(1 + exp(z)"), "t.toml: [classes.Soft] key 'forward': 'log(1 + exp(z)' is not a valid formula ('(' was never closed at column 4)"),
    (with_class(forward="__import__('os').system('true')"), "t.toml: [classes.Soft] key 'forward': '__import__('os').system('true')': the function '__import__('os').system' is not allowed"),
    (with_class(forward="q * z"), "t.toml: [classes.Soft] key 'forward': 'q * z': the name 'q' is not allowed"),
    (with_class(forward="z < 0"), "t.toml: [classes.Soft] key 'forward': 'z < 0' is a condition, not a value"),
    (with_class(forward=3), "t.toml: [classes.Soft] key 'forward': an elementwise class needs `forward = \"<formula in z>\"`"),
    (with_class(aliases=["Soft Plus"]), "t.toml: [classes.Soft] key 'aliases': must be a list of Python identifiers"),
    (with_class(gradient_forms=["matrix"]), "t.toml: [classes.Soft] key 'gradient_forms': accepted forms for elementwise are diagonal, jacobian; got ['matrix']"),
    (with_class(tolerance={"rtol": 0}), "t.toml: [classes.Soft] key 'tolerance.rtol': must be positive, got 0"),
    (with_class(tolerance={"rtl": 1e-3}), "t.toml: [classes.Soft] key 'tolerance.rtl': unknown key; did you mean 'rtol'? allowed here: atol, fd_atol, fd_rtol, fd_step, rtol"),
    (with_class(domain=[2, 1]), "t.toml: [classes.Soft] key 'domain': must be [low, high] with low < high"),
    (with_class(methods={"fly": ["Fly"]}), "t.toml: [classes.Soft] key 'methods.fly': unknown method 'fly' for kind elementwise; known: forward, gradient, backward, setPrevIn, setPrevOut, getPrevIn, getPrevOut"),
    (with_class(mistakes=[{"method": "gradient", "name": "x", "formula": "h"}]), "t.toml: [classes.Soft] key 'mistakes[0].formula': 'h': the name 'h' is not allowed"),
    (with_class(loss="y"), "t.toml: [classes.Soft] key 'loss': only objectives take 'loss'"),
    ({"assignment": {}, "classes": {"L": {"kind": "objective", "loss": "y**2", "points": {"eval": 1}}}},
     "t.toml: [classes.L] key 'loss': the loss does not depend on yhat, so it has no gradient"),
    ({"assignment": {}, "classes": {"L": {"kind": "objective", "loss": "(y-yhat)**2", "reduction": "median", "points": {"eval": 1}}}},
     "t.toml: [classes.L] key 'reduction': must be one of mean, mean_rows, sum; got 'median'"),
    ({"assignment": {}, "classes": {"S": {"kind": "softmax", "forward": "z", "points": {"forward": 1}}}},
     "t.toml: [classes.S] key 'forward': a softmax class has its forward built in; only elementwise classes take a formula"),
    ({"assignment": {}, "conventions": {"input_ddof": 2}, "classes": base()["classes"]}, "t.toml: key 'conventions.input_ddof': must be 0 or 1"),
    ({"assignment": {}, "classes": {"A": {"kind": "elementwise", "forward": "z", "points": {"forward": 1}},
                                    "B": {"kind": "elementwise", "forward": "z", "aliases": ["a"], "points": {"forward": 1}}}},
     "t.toml: [classes.B] key 'aliases': the name 'a' is used by both A and B"),
    ({**base(), "networks": [{"name": "n", "layers": ["Nope"], "objective": "Soft"}]}, "t.toml: key 'networks[0].layers': 'Nope' is not a layer class of this spec"),
]


@pytest.mark.parametrize("data,message", CASES, ids=[m.split(": ", 1)[1][:50] for _, m in CASES])
def test_malformed_spec_is_rejected_with_its_message(data, message):
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="t.toml")
    assert str(info.value).startswith(message)


def test_spec_file_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match=r"missing\.toml: no such file"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[assignment\nname = 1")
    with pytest.raises(SpecError, match=r"bad\.toml: is not valid TOML"):
        load_spec(bad)


SOFTPLUS_LEAKY = """
[assignment]
name = "extra-activations"
[classes.SoftplusLayer]
kind = "elementwise"
forward = "log(1 + exp(z))"
points = { forward = 2, gradient = 2, backward = 2 }
[classes.LeakyReLuLayer]
kind = "elementwise"
forward = "Piecewise((0.01*z, z < 0), (z, True))"
points = { forward = 2, gradient = 2, backward = 2 }
"""


def test_formula_declared_activations_get_the_derived_gradient(tmp_path):
    path = tmp_path / "extra.toml"
    path.write_text(SOFTPLUS_LEAKY)
    spec = load_spec(path)
    truth = SymbolicTruth(spec.epsilon)
    z = np.array([[-2.0, -0.5, 0.5, 2.0, 30.0, -30.0]])
    softplus = spec.classes["SoftplusLayer"]
    np.testing.assert_allclose(truth.elementwise_derivative(softplus, z), 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(truth.elementwise_forward(softplus, z), np.logaddexp(0, z), rtol=1e-12, atol=1e-15)
    leaky = spec.classes["LeakyReLuLayer"]
    assert leaky.options.kinks == (0.0,)
    np.testing.assert_allclose(truth.elementwise_derivative(leaky, z), np.where(z < 0, 0.01, 1.0))
    assert sp.simplify(sp.diff(softplus.expr, Z) - sp.exp(Z) / (1 + sp.exp(Z))) == 0
    assert "e^{z}" in rules_for(softplus)["gradient"].latex


def objective(**body):
    return {"assignment": {}, "classes": {"L": {"kind": "objective", "loss": "-y*log(yhat + eps)", "points": {"gradient": 1}, **body}}}


@pytest.mark.parametrize("data,message", [
    (objective(rule_formulas={"gradient": "-y/(yhat*yhat + eps)"}),
     "t.toml: [classes.L] key 'rule_formulas.gradient': is not the derived rule at ε = 0: at y = 1, yhat = 0.07 it gives -204.082, "
     "the derivative of the definition -14.2857"),
    (objective(rule_formulas={"eval": "y"}),
     "t.toml: [classes.L] key 'rule_formulas.eval': only the gradient's rule can be given as a formula (the rest is the definition)"),
    (objective(rule_formulas={"gradient": "q"}), "t.toml: [classes.L] key 'rule_formulas.gradient': 'q': the name 'q' is not allowed "
     "(symbols: eps, y, yhat; functions: Abs, Heaviside, Max, Min, Piecewise, abs, asinh, atan, cos, cosh, erf, exp, ln, log, max, min, "
     "sign, sin, sinh, sqrt, tan, tanh)"),
    ({"assignment": {"epsilon_range": [1e-6, 1e-8]}, "classes": base()["classes"]},
     "t.toml: key 'assignment.epsilon_range': must be [low, high] with 0 ≤ low < high"),
    ({"assignment": {"epsilon": 1e-3}, "classes": base()["classes"]},
     "t.toml: key 'assignment.epsilon_range': must contain the assignment's epsilon 0.001"),
])
def test_rule_formulas_and_the_epsilon_range_are_validated(data, message):
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="t.toml")
    assert str(info.value) == message


def test_the_slides_forms_of_the_default_spec_are_the_derived_rules_at_eps_zero(spec):
    forms = {name: c.rule_formulas["gradient"] for name, c in spec.classes.items() if c.rule_formulas}
    assert forms["LogLoss"] == "-(y - yhat)/(yhat*(1 - yhat) + eps)" and forms["LogisticSigmoidLayer"] == "g*(1 - g) + eps"
    assert spec.classes["LogLoss"].epsilon_range == (0.0, 1e-6)


def test_the_spec_does_not_import_the_check_logic():
    # data flows one way: the spec validates check names against the table, never the functions
    import subprocess
    import sys

    code = "import sys, grader.assignment.spec; print('grader.checking.checks' in sys.modules, 'grader.assignment.check_table' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
