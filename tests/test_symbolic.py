"""The two ground truths agree: reference vs SymPy-derived values and Jacobians, and both vs central differences."""
import numpy as np
import pytest
import sympy as sp

from grader.checking.points import objective_pair
from grader.truth.reference_truth import ReferenceTruth, reference_module
from grader.assignment.spec import load_spec, parse_spec
from grader.truth.rules import rules_for
from grader.truth.symbolic import SymbolicTruth, class_values, numpy_function


def compile_exprs(args, exprs):
    """A numpy function of SymPy expressions through the cache, named by what they are."""
    return numpy_function("test|" + sp.srepr(tuple(args)) + sp.srepr(tuple(exprs)), lambda: (args, exprs))


SPEC = load_spec()
TRUTH = SymbolicTruth(SPEC.epsilon)
RT = ReferenceTruth()
ST = SymbolicTruth(SPEC.epsilon)
RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(1, k) for k in (1, 2, 3, 7, 20)] + [(7, k) for k in (1, 3, 5, 20)]


def kinds(*names):
    return [c for c in SPEC.classes.values() if c.kind in names]


def central_jacobian(f, X, h=1e-6):
    """∂f(X)[n, j]/∂X[n, i] by central differences, perturbing column i of every row at once."""
    n, d = X.shape
    cols = []
    for i in range(d):
        e = np.zeros_like(X)
        e[:, i] = h
        cols.append((f(X + e) - f(X - e)) / (2 * h))
    return np.stack(cols, axis=-1)  # N×K×D


def points(n, k, seed=0, low=-3, high=3):
    rng = np.random.default_rng(seed + 31 * k + n)
    X = rng.uniform(low, high, size=(n, k))
    X[np.abs(X) < 0.05] += 0.1  # keep clear of ReLU's kink
    return X


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("cls", kinds("elementwise"), ids=lambda c: c.name)
def test_elementwise_reference_matches_symbolic(cls, n, k):
    X = points(n, k)
    layer = RT.layer(cls, X)
    np.testing.assert_allclose(layer.getPrevOut(), ST.elementwise_forward(cls, X), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(RT.jacobian(cls, X), ST.elementwise_jacobian(cls, X), rtol=RTOL, atol=ATOL)
    fd = central_jacobian(lambda A: ST.elementwise_forward(cls, A), X)
    np.testing.assert_allclose(ST.elementwise_jacobian(cls, X), fd, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n,k", SHAPES)
def test_softmax_reference_matches_symbolic(n, k):
    cls = SPEC.classes["SoftmaxLayer"]
    X = points(n, k)
    layer = RT.layer(cls, X)
    np.testing.assert_allclose(layer.getPrevOut(), ST.softmax_forward(X), rtol=RTOL, atol=ATOL)
    jac = ST.softmax_jacobian(X)
    np.testing.assert_allclose(RT.jacobian(cls, X), jac, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(jac, central_jacobian(ST.softmax_forward, X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (1, 4, 3), (7, 5, 3), (3, 20, 2), (5, 2, 20)])
def test_fully_connected_reference_matches_symbolic(n, d, k):
    cls = SPEC.classes["FullyConnectedLayer"]
    rng = np.random.default_rng(d * 100 + k)
    X, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, k)), rng.normal(size=(1, k))
    layer = RT.layer(cls, X, W=W, b=b)
    np.testing.assert_allclose(layer.getPrevOut(), ST.fully_connected_forward(X, W, b), rtol=RTOL, atol=ATOL)
    jac = ST.fully_connected_jacobian(X, W, b)
    assert jac.shape == (n, k, d)
    np.testing.assert_allclose(RT.jacobian(cls, X, W=W, b=b), jac, rtol=RTOL, atol=ATOL)
    fd = central_jacobian(lambda A: ST.fully_connected_forward(A, W, b), X)
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n,d", [(2, 1), (7, 5), (20, 3)])
def test_input_layer_reference_matches_symbolic(n, d):
    cls = SPEC.classes["InputLayer"]
    rng = np.random.default_rng(n + d)
    data = rng.normal(3, 2, size=(n, d))
    data[:, 0] = 4.0  # a constant column: σ = 0 counts as 1
    X = rng.normal(size=(4, d))
    layer = RT.layer(cls, X, data=data)
    expected = ST.input_forward(data, X, cls.options.ddof)
    np.testing.assert_allclose(layer.getPrevOut(), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(expected[:, 0], X[:, 0] - 4.0)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("cls", kinds("objective"), ids=lambda c: c.name)
def test_objective_reference_matches_symbolic(cls, n, k):
    Y, Yhat = objective_pair(np.random.default_rng(n * 7 + k), cls, n, k)
    ref = RT.objective(cls)
    value = ST.objective_value(cls, Y, Yhat)
    assert ref.eval(Y, Yhat) == pytest.approx(value, rel=RTOL, abs=ATOL)
    grad = ST.objective_gradient(cls, Y, Yhat)
    np.testing.assert_allclose(ref.gradient(Y, Yhat), grad, rtol=RTOL, atol=ATOL)
    # ∂J/∂ŷ is per entry: central differences of J, scaled back by the reduction's divisor.
    scale = {"mean": n * k, "mean_rows": n, "sum": 1}[cls.options.reduction]
    h = 1e-6
    fd = np.zeros_like(Yhat)
    for idx in np.ndindex(*Yhat.shape):
        e = np.zeros_like(Yhat)
        e[idx] = h
        fd[idx] = (ST.objective_value(cls, Y, Yhat + e) - ST.objective_value(cls, Y, Yhat - e)) / (2 * h) * scale
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5)


def test_edges_stay_finite_and_exact():
    tanh, sigmoid = SPEC.classes["TanhLayer"], SPEC.classes["LogisticSigmoidLayer"]
    Z = np.array([[1000.0, -1000.0, 40.0, -40.0]])
    np.testing.assert_allclose(ST.elementwise_forward(tanh, Z), [[1, -1, 1, -1]])
    np.testing.assert_allclose(ST.elementwise_forward(sigmoid, Z), [[1, 0, 1, 0]], atol=1e-15)
    np.testing.assert_allclose(ST.elementwise_derivative(tanh, Z), [[0, 0, 0, 0]], atol=1e-30)
    big = np.array([[1000.0, 999.0, -1000.0], [0.1, 0.2, 0.3]])
    out = ST.softmax_forward(big)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    for cls in kinds("objective"):
        Y = np.array([[1.0, 0.0]])
        for yhat in ([[0.0, 1.0]], [[1.0, 0.0]]):
            assert np.isfinite(ST.objective_value(cls, Y, np.array(yhat)))
            assert np.isfinite(ST.objective_gradient(cls, Y, np.array(yhat))).all()


def test_lambdified_code_round_trips_through_the_disk_cache(tmp_path, monkeypatch):
    import sympy as sp

    from grader.truth import symbolic

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    z = sp.Symbol("z")
    fresh = compile_exprs([z], [sp.exp(-z) / (1 + sp.exp(-z)) ** 2, z**2])
    files = list(tmp_path.glob("*.py"))
    assert len(files) == 1 and "def _lambdifygenerated" in files[0].read_text()
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    cached = compile_exprs([z], [sp.exp(-z) / (1 + sp.exp(-z)) ** 2, z**2])
    assert cached is not fresh
    x = np.linspace(-2, 2, 5)
    np.testing.assert_allclose(cached(x), fresh(x))


def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    import sympy as sp

    from grader.truth import symbolic

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    z = sp.Symbol("z")
    compile_exprs([z], [z + 1])
    path = next(tmp_path.glob("*.py"))
    path.write_text("this is not python")
    monkeypatch.setattr(symbolic, "_MEMORY", {})
    assert compile_exprs([z], [z + 1])(np.array([1.0]))[0] == pytest.approx(2.0)


def test_rules_are_derived_once_then_read_from_disk(tmp_path, monkeypatch):
    from grader.truth import rules

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    sigmoid = SPEC.classes["LogisticSigmoidLayer"]
    rules._cached_rules.cache_clear()
    derived = rules_for(sigmoid)
    assert len(list(tmp_path.glob("*.rules.json"))) == 1

    def no_derivation(*args):
        raise AssertionError("derived again although the rules were on disk")

    rules._cached_rules.cache_clear()  # a new process: nothing in memory
    monkeypatch.setattr(rules, "_rules", no_derivation)
    assert rules_for(sigmoid) == derived

    next(tmp_path.glob("*.rules.json")).write_text("{not json")  # damaged: derived again, never trusted
    rules._cached_rules.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    assert rules_for(sigmoid) == derived
    rules._cached_rules.cache_clear()


def test_rules_are_the_general_indexed_rules():
    softmax = rules_for(SPEC.classes["SoftmaxLayer"])["gradient"]
    assert r"\left(\delta_{ij} - {g}_{j}\right) {g}_{i}" in softmax.latex
    assert softmax.mathml.startswith("<mrow>") and ("&#948;" in softmax.mathml or "δ" in softmax.mathml)
    fc = rules_for(SPEC.classes["FullyConnectedLayer"])["gradient"]
    assert fc.latex.endswith("{W}_{i,j}")
    # as the slides write them (the spec's rule_formulas), not SymPy's spellings −(g − 1)·g or −2y + 2ŷ
    sigmoid = rules_for(SPEC.classes["LogisticSigmoidLayer"])["gradient"]
    assert sigmoid.latex.endswith(r"= g{\left(z \right)} \left(1 - g{\left(z \right)}\right) + \epsilon")
    assert rules_for(SPEC.classes["TanhLayer"])["gradient"].latex.endswith(r"= 1 - g^{2}{\left(z \right)} + \epsilon")
    assert rules_for(SPEC.classes["SquaredError"])["gradient"].plain == "∂J/∂ŷ = −2·(y − ŷ)"
    assert rules_for(SPEC.classes["LogLoss"])["gradient"].plain == "∂J/∂ŷ = −(y − ŷ)/(ŷ·(1 − ŷ) + ε)"
    ce = rules_for(SPEC.classes["CrossEntropy"])["gradient"]
    assert ce.latex.endswith(r"- \frac{y}{ŷ + \epsilon}")
    # a class without a rule formula still shows the derived rule, also in terms of its output
    spec = parse_spec({"assignment": {}, "classes": {"S": {"kind": "elementwise", "forward": "1/(1 + exp(-z))", "points": {"gradient": 1}}}})
    assert rules_for(spec.classes["S"])["gradient"].latex.endswith(r"= \left(1 - g{\left(z \right)}\right) g{\left(z \right)}")


@pytest.mark.parametrize("name", [n for n, c in SPEC.classes.items() if c.rule_formulas])
def test_each_displayed_rule_is_the_derived_rule(name):
    """Exactly at ε = 0; within the grading tolerance at the spec's ε (the slides place ε differently)."""
    cls = SPEC.classes[name]
    rng = np.random.default_rng(5)
    if cls.kind == "objective":
        Y_, Yhat = objective_pair(rng, cls, 40, 3)
        values = lambda eps: [Y_, Yhat, np.full(Yhat.shape, eps)]  # noqa: E731
        derived = lambda eps: TRUTH.objective_gradient(cls, Y_, Yhat, eps)  # noqa: E731
        shown = lambda eps: class_values(cls, "rule", values(eps))  # noqa: E731
    else:
        Z_ = rng.uniform(-4, 4, size=(40, 3))
        derived = lambda eps: TRUTH.elementwise_derivative(cls, Z_)  # noqa: E731
        shown = lambda eps: class_values(cls, "rule", [Z_, TRUTH.elementwise_forward(cls, Z_), np.full(Z_.shape, eps)])  # noqa: E731
    assert np.allclose(shown(0.0), derived(0.0), rtol=1e-12, atol=1e-14)
    assert np.allclose(shown(cls.epsilon), derived(cls.epsilon), rtol=cls.tolerance.rtol, atol=cls.tolerance.atol)
    assert "\\" not in rules_for(cls)["gradient"].plain  # one line of Unicode for terminals, no LaTeX


def test_reference_package_exports_every_spec_class():
    module = reference_module()
    for cls in SPEC.classes.values():
        assert isinstance(getattr(module, cls.name), type), cls.name


@pytest.mark.parametrize("text", ["-(g - 1)*g", "-(g - 1)*(g + 1)", "-g**2 + g", "2*g*(g - 3)", "-(g + 2)*(g - 1)"])
def test_readable_forms_are_the_same_function(text):
    from grader.truth.rule_derivation import _leading_sign_inside, readable

    g = sp.Symbol("g")
    form = sp.sympify(text, locals={"g": g})
    for shown in (_leading_sign_inside(form), readable(form, _leading_sign_inside(form), sp.expand(form))):
        assert sp.expand(shown - form) == 0


def test_the_gradient_band_holds_every_accepted_eps_and_the_slides_form(spec, truth):
    cls = spec.classes["LogLoss"]
    Y, Yhat = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), np.array([[0.05, 0.3, 0.95], [0.0, 1.0, 0.5]])
    band = truth.objective_gradient_band(cls, Y, Yhat)
    for eps in (0.0, 1e-8, 1e-7, 1e-6):
        slides = -(Y[0] - Yhat[0]) / (Yhat[0] * (1 - Yhat[0]) + eps)
        derived = -Y[0] / (Yhat[0] + eps) + (1 - Y[0]) / (1 - Yhat[0] + eps)
        for answer in (slides, derived):
            assert np.all((band.lower[0] <= answer + 1e-12) & (answer - 1e-12 <= band.upper[0]))
    # at ŷ = 0 and 1 the rule has no value at ε = 0: any finite answer is accepted there
    assert np.isinf(band.lower[1, :2]).all() and np.isinf(band.upper[1, :2]).all()
    assert np.isfinite(band.lower[1, 2]) and band.upper[1, 2] - band.lower[1, 2] < 1e-5


def test_the_value_band_at_the_edges_spans_eps_from_tiny_to_1e6_added_or_clipped(spec, truth):
    cls = spec.classes["CrossEntropy"]
    Y, Yhat = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([[0.0, 0.5, 0.5], [0.2, 0.7, 0.1]])
    band = truth.objective_value_band(cls, Y, Yhat)
    for clip in (1e-15, 1e-8, 1e-6):
        answer = -np.mean(np.sum(Y * np.log(np.clip(Yhat, clip, 1)), axis=1))
        assert band.lower <= answer <= band.upper
    assert band.upper == pytest.approx(-np.log(1e-16) / 2 - np.log(0.7) / 2, rel=1e-6)
    with np.errstate(divide="ignore"):
        missing = -np.mean(np.sum(Y * np.log(Yhat), axis=1))
    assert not np.isfinite(missing)  # no ε at all: not in any band


def test_the_sigmoid_derivative_band_is_g_1_minus_g_plus_eps(spec, truth):
    cls = spec.classes["LogisticSigmoidLayer"]
    Z_ = np.array([[0.5, -40.0]])
    band = truth.elementwise_derivative_band(cls, Z_)
    g = 1 / (1 + np.exp(-Z_))
    assert np.allclose(band.lower, g * (1 - g)) and np.allclose(band.upper, g * (1 - g) + 1e-6)


def test_cached_code_runs_only_when_it_is_arithmetic(tmp_path, monkeypatch):
    # The disk cache is writable by the grader's user, and so by student code in the process
    # sandbox as that user: a planted file must never run, only be derived afresh.
    from grader.truth import symbolic

    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    symbolic._MEMORY.clear()
    z = sp.Symbol("z_planted_test", real=True)
    fn = compile_exprs([z], [sp.exp(z) + 1])
    (cached,) = list(tmp_path.glob("*.py"))
    marker = tmp_path / "ran"
    cached.write_text(f"def _lambdifygenerated(z):\n    return [open({str(marker)!r}, 'w')]\n")
    symbolic._MEMORY.clear()
    again = compile_exprs([z], [sp.exp(z) + 1])
    assert not marker.exists() and np.allclose(again(np.array([0.0]))[0], 2.0) and fn is not again
    for text in ("import os\ndef _lambdifygenerated(z):\n    return [z]\n",
                 "def _lambdifygenerated(z):\n    return [z.__class__]\n",
                 "def _lambdifygenerated(z):\n    return [eval('1')]\n",
                 "def _lambdifygenerated(z):\n    return [loadtxt('x')]\n"):
        with pytest.raises(ValueError, match="cached code refused"):
            symbolic._load_lambdified(text, "x.py")


def test_remembered_truth_is_keyed_by_module_and_qualified_name():
    """Two kinds' modules may each define a `forward`: their remembered results never mix (issue 20)."""
    from grader.truth.remembered import remembered

    class First:
        def remember_key(self):
            return ("truth", 1e-7)

        @remembered
        def forward(self, x):
            return np.array([1.0]) * x

    class Second:
        def remember_key(self):
            return ("truth", 1e-7)

        @remembered
        def forward(self, x):
            return np.array([2.0]) * x

    assert First().forward(1.0)[0] == 1.0
    assert Second().forward(1.0)[0] == 2.0
