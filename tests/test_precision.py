"""Judging at the student's precision: which dtype is which, and the tolerances each gets."""
import numpy as np

from grader.checking.checks import input_sensitivity
from grader.checking.precision import FLOAT64, PRECISIONS, lowest, precision_of
from grader.assignment.spec import Tolerance


def test_dtypes_map_to_their_precision_and_exact_types_to_float64():
    assert precision_of("float32") is PRECISIONS["float32"] and precision_of("float16") is PRECISIONS["float16"]
    for exact in ("float64", "int64", "bool", "int8", "", None, "not a dtype"):
        assert precision_of(exact) is FLOAT64
    assert lowest([FLOAT64, PRECISIONS["float32"], FLOAT64]).name == "float32"
    assert lowest([PRECISIONS["float32"], PRECISIONS["float16"]]).name == "float16"
    assert lowest([]) is FLOAT64


def test_float32_buys_only_its_rounding_error_never_a_wider_band():
    tol = Tolerance()
    f32 = PRECISIONS["float32"]
    # the spec's tolerances already hold float32's rounding (measured on the float32 fixture): nothing looser
    assert f32.values(tol) == FLOAT64.values(tol) == (tol.rtol, tol.atol)
    assert f32.finite_differences(tol) == (1e-3, tol.fd_rtol, tol.fd_atol)  # a step float32 resolves, the spec's tolerances
    assert FLOAT64.finite_differences(tol) == (tol.fd_step, tol.fd_rtol, tol.fd_atol)
    # a spec finer than float32's rounding gets a few rounding errors as a floor, no more
    eps32 = float(np.finfo(np.float32).eps)
    assert f32.values(Tolerance(rtol=1e-9, atol=1e-9)) == (8 * eps32, 8 * eps32)
    assert f32.values(Tolerance(rtol=0.5, atol=0.5)) == (0.5, 0.5)
    assert f32.reduced and not FLOAT64.reduced


def test_float16_gets_nothing_coarser_than_float32():
    tol = Tolerance()
    f16, f32 = PRECISIONS["float16"], PRECISIONS["float32"]
    assert f16.values(tol) == f32.values(tol) and f16.finite_differences(tol) == f32.finite_differences(tol)
    assert f16.rounding(1.0) == f32.rounding(1.0)
    assert f16.reduced and f16.judged_as == "float32" and f32.judged_as == "float32"


def test_rounding_scales_with_magnitude_and_epsilon():
    f32 = PRECISIONS["float32"]
    assert f32.rounding(1000.0) == 8 * np.finfo(np.float32).eps * 1000.0
    assert FLOAT64.rounding(1.0) < 1e-14


def test_values_from_large_inputs_get_the_rounding_of_those_inputs_and_no_more():
    def softmax(X):
        e = np.exp(X - X.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    X = np.array([[1000.0, 999.0, 998.0], [0.1, 0.2, 0.3]])
    s = softmax(X)
    S = input_sensitivity(softmax, X)
    # Σ_j |∂s_i/∂x_j|·|x_j| = |x|·2 s_i(1 − s_i) on a row of near-equal |x|
    assert np.allclose(S[0], 2 * s[0] * (1 - s[0]) * 999, rtol=2e-3)
    assert (S[1] < 0.2).all()
    # float32's softmax through log-sum-exp there is off by 1.3e-5 relative: inside float32's band, not float64's
    m = X.astype(np.float32).max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(X.astype(np.float32) - m).sum(axis=1, keepdims=True))
    off = np.abs(np.exp(X.astype(np.float32) - lse) - s)
    assert off.max() > 1e-5 * s.max()
    assert (off <= PRECISIONS["float32"].propagated(S)).all()
    assert (FLOAT64.propagated(S) < 1e-12).all()
    # what ε = 1e-4 in a sigmoid gradient changes is far outside the band its ordinary inputs get
    def sigmoid_gradient(Z):
        g = 1 / (1 + np.exp(-Z))
        return g * (1 - g)
    Z = np.linspace(-5, 5, 11)[None, :]
    assert (PRECISIONS["float32"].propagated(input_sensitivity(sigmoid_gradient, Z)) < 1e-5).all()


def test_a_wider_band_never_fails_what_a_narrower_one_passes():
    # judge() skips computing the rounding band of an answer right without it: sound only if widening is monotone
    from grader.checking.checks import widened
    from grader.checking.compare import compare
    from grader.truth.symbolic import Band

    rng = np.random.default_rng(0)
    for _ in range(300):
        nominal = rng.normal(size=6)
        lower, upper = nominal + rng.normal(scale=0.1, size=6), nominal + rng.normal(scale=0.1, size=6)  # either side, as ε bands are
        lower[rng.random(6) < 0.2], upper[rng.random(6) < 0.2] = np.nan, np.inf
        got = nominal + rng.normal(scale=0.1, size=6)
        band = Band(nominal, lower, upper)
        r = rng.random(6)
        spreads = [0.0, r * 0.05, r * 0.2, r * np.inf]  # growing entry by entry
        verdicts = [compare(got, b.nominal, rtol=1e-2, atol=1e-3, lower=b.lower, upper=b.upper).passed
                    for b in (widened(band, s) for s in spreads)]
        assert verdicts == sorted(verdicts), verdicts  # once passed, passed at every larger spread


def test_the_rounding_band_is_computed_only_for_an_answer_not_right_without_it(monkeypatch):
    from pathlib import Path

    import grader.checking.layer_checks as layer_checks
    import grader.kinds.input as input_kind
    from grader.grade import grade_submission
    from grader.paths import reference_dir
    from grader.sandbox import Limits

    calls = []

    def counted(f, *arrays):
        calls.append(f)
        return input_sensitivity(f, *arrays)
    monkeypatch.setattr(layer_checks, "input_sensitivity", counted)
    monkeypatch.setattr(input_kind, "input_sensitivity", counted)
    limits = Limits(call_timeout=2.0, total_timeout=120.0)
    assert grade_submission(reference_dir(), sandbox="process", limits=limits).score == 100.0
    assert calls == []  # 22 forward checks, every one right at the truth's own numbers: no band computed
    # a float32 softmax through log-sum-exp is right only with the band: it is computed there, and the verdict stands
    result = grade_submission(Path(__file__).parent / "fixtures" / "submissions" / "float32_softmax_logsumexp", sandbox="process", limits=limits)
    assert calls and result.score == 100.0
    assert [c.passed for c in result.item("SoftmaxLayer.forward").checks if c.name == "edges"] == [True]
