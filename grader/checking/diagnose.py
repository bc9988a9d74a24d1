"""Named diagnoses: which known mistake the student's numbers are.

A diagnosis is never read from source code. For each check, the numbers each known mistake
would produce on the same test points are computed (from the spec's SymPy expressions where
possible: g(g(z)), g′ at the output, the formula with ε = 0, a spec's own `mistakes`), and the
student's numbers are compared with each. Failing those, a constant factor (−1, 2, N, K, …) or
a transpose between the student's numbers and the truth is named.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from grader.checking.compare import close, compare
from grader.assignment.spec import ClassSpec
from grader.truth.symbolic import SymbolicTruth, class_values, reduce_loss

REDUCTION_WORDS = {
    "mean": "the mean over all N·K entries",
    "mean_rows": "the mean over the N observations of each row's sum",
    "sum": "the sum over all entries",
}


@dataclass
class Situation:
    """The inputs of one check, from which each mistake's numbers are computed."""

    cls: ClassSpec
    method: str
    truth: SymbolicTruth
    X: np.ndarray | None = None
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    G: np.ndarray | None = None  # upstream δ
    Y: np.ndarray | None = None
    Yhat: np.ndarray | None = None
    data: np.ndarray | None = None  # an input layer's constructor data
    extra: dict = field(default_factory=dict)


def diagnose(got: np.ndarray, expected: np.ndarray, situation: Situation, *, rtol: float, atol: float,
             lower=None, upper=None) -> str | None:
    """Return the name of the known mistake `got` matches, or None.

    The tolerances are those the answer was judged by (its precision's), and a mistake whose
    numbers are right on these points (between `lower` and `upper`, when any ε is accepted) is
    never named: nothing there tells it from the right answer.
    """
    got = np.asarray(got, dtype=float)
    expected = np.asarray(expected, dtype=float)
    # A mistake computed at the spec's ε matches as closely as a right answer may differ from
    # the truth: by the width of the band of accepted ε (a student's own ε shifts both alike).
    slack = _band_width(expected, lower, upper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, numbers in _candidates(situation):
            try:
                with np.errstate(all="ignore"):
                    value = numbers()
            except Exception:  # a mistake that cannot be computed here simply does not match
                continue
            if value is None:
                continue
            for form in _forms(np.asarray(value, dtype=float), situation):
                if form.shape != got.shape or not close(got, form, rtol, atol + slack):
                    continue
                if form.shape == expected.shape and compare(form, expected, rtol=rtol, atol=atol, lower=lower, upper=upper).passed:
                    continue  # indistinguishable from the right answer here
                return name
        return _factor_or_transpose(got, expected, situation, rtol, atol, lower, upper)


def _band_width(expected, lower, upper) -> float:
    if lower is None or upper is None:
        return 0.0
    with np.errstate(invalid="ignore"):
        width = np.abs(np.asarray(upper, dtype=float) - np.asarray(lower, dtype=float))
    width = width[np.isfinite(width)]
    return float(width.max()) if width.size else 0.0


def _forms(value: np.ndarray, situation: Situation):
    """A diagonal may be given as an N×K×K Jacobian and the other way round: try both."""
    yield value
    if situation.method == "gradient" and situation.cls.kind in ("elementwise", "softmax"):
        if value.ndim == 2:
            yield np.einsum("nk,kj->nkj", value, np.eye(value.shape[1]))
        elif value.ndim == 3:
            yield np.einsum("nkk->nk", value)


def _factor_or_transpose(got, expected, situation, rtol, atol, lower=None, upper=None) -> str | None:
    k = expected.shape[-1] if expected.ndim else 0
    if (situation.method == "gradient" and situation.cls.kind in ("elementwise", "softmax") and got.shape == (k, k)
            and expected.shape[0] > 1 and got.shape != expected.shape):
        return "one K×K matrix for the whole batch instead of one Jacobian per observation (N×K×K) or the N×K diagonal"
    if got.shape == expected.shape and got.size and np.isfinite(got).all() and np.isfinite(expected).all():
        mask = np.abs(expected) > 1e-8
        if mask.any() and np.all(np.abs(got[~mask]) <= atol):
            c = float(np.median(got[mask] / expected[mask]))
            known = _known_factor(c, situation)
            factor = known[0] if known else c
            # got / c must be a right answer: within the band of accepted ε, like the answer itself
            if c != 0 and not np.isclose(factor, 1.0, rtol=1e-6) and compare(
                    got / factor, expected, rtol=rtol, atol=atol / abs(factor), lower=lower, upper=upper).passed:
                if known:
                    return known[1]
                if int(mask.sum()) >= 2:  # one number is always some factor of another: that says nothing
                    return f"off by a constant factor of {c:.6g}"
    if got.ndim >= 2 and got.shape == expected.shape[:-2] + expected.shape[-1:] + expected.shape[-2:-1]:
        if close(np.swapaxes(got, -1, -2), expected, rtol, atol):
            return "transposed: rows and columns swapped"
    return None


def _known_factor(c: float, situation: Situation) -> tuple[float, str] | None:
    """The factor a mistake usually makes (−1, 2, N, K, …) close to `c`, with its name, or None."""
    n, k = _nk(situation)
    known = [
        (-1.0, "sign flipped"),
        (2.0, "an extra factor of 2"),
        (0.5, "a factor of 2 missing"),
        (-2.0, "sign flipped and an extra factor of 2"),
        (-0.5, "sign flipped and a factor of 2 missing"),
    ]
    if n and n > 1:
        known += [(1.0 / n, f"divided by N (= {n}): the gradient is per entry, not averaged"), (float(n), f"multiplied by N (= {n})")]
    if k and k > 1:
        known += [(1.0 / k, f"divided by K (= {k})"), (float(k), f"multiplied by K (= {k})")]
    if n and k and n * k > 1 and n > 1 and k > 1:
        known += [(1.0 / (n * k), f"divided by N·K (= {n * k})"), (float(n * k), f"multiplied by N·K (= {n * k}): summed instead of averaged")]
    for value, name in known:
        if np.isclose(c, value, rtol=1e-3):
            return value, name
    return None


def _nk(situation: Situation) -> tuple[int | None, int | None]:
    for arr in (situation.Yhat, situation.X):
        if arr is not None and np.ndim(arr) == 2:
            return arr.shape
    return None, None


# ------------------------------------------------------------------------ the catalogue


def _candidates(s: Situation):
    kind, method = s.cls.kind, s.method
    table = {
        ("objective", "eval"): _objective_eval,
        ("objective", "gradient"): _objective_gradient,
        ("elementwise", "forward"): _elementwise_forward,
        ("elementwise", "gradient"): _elementwise_gradient,
        ("elementwise", "backward"): _backward,
        ("softmax", "forward"): _softmax_forward,
        ("softmax", "gradient"): _softmax_gradient,
        ("softmax", "backward"): _backward,
        ("fully_connected", "forward"): _fc_forward,
        ("fully_connected", "gradient"): _fc_gradient,
        ("fully_connected", "backward"): _fc_backward,
        ("input", "forward"): _input_forward,
    }
    builder = table.get((kind, method))
    return list(builder(s)) if builder else []


def _spec_mistakes(s: Situation, values):
    for i, mistake in enumerate(s.cls.mistakes):
        if mistake.method == s.method:
            yield mistake.name, lambda i=i: class_values(s.cls, f"mistake:{i}", values())


def _objective_eval(s: Situation):
    cls, truth = s.cls, s.truth
    entries = lambda eps=None: truth.loss_entries(cls, s.Y, s.Yhat, eps)  # noqa: E731
    yield from _spec_mistakes(s, lambda: [s.Y, s.Yhat, np.full(s.Yhat.shape, cls.epsilon)])
    yield "not reduced: returned the per-entry losses (N×K) instead of the number J", lambda: entries()
    for reduction, words in REDUCTION_WORDS.items():
        if reduction != cls.reduction:
            yield f"J reduced as {words} instead of {REDUCTION_WORDS[cls.reduction]}", lambda r=reduction: reduce_loss(entries(), r)
    yield "missing ε: ln(0) at ŷ = 0 or 1", lambda: reduce_loss(entries(0.0), cls.reduction)
    yield ("J reduced along the wrong axis: summed over the N observations (axis=0) and averaged over the K classes",
           lambda: float(np.mean(np.sum(entries(), axis=0))))
    if cls.squared_error:
        yield ("the mean of (Y − Ŷ)ᵀ(Y − Ŷ), a K×K matrix product, instead of the mean of the element-wise squares",
               lambda: float(np.mean((s.Y - s.Yhat).T @ (s.Y - s.Yhat))))
    if cls.estimates == "distribution":
        yield "binary log loss where cross entropy was asked", lambda: reduce_loss(_binary_log_loss(s.Y, s.Yhat, cls.epsilon), cls.reduction)
        yield "binary log loss where cross entropy was asked", lambda: float(np.mean(_binary_log_loss(s.Y, s.Yhat, cls.epsilon)))


def _objective_gradient(s: Situation):
    cls, truth = s.cls, s.truth
    yield from _spec_mistakes(s, lambda: [s.Y, s.Yhat, np.full(s.Yhat.shape, cls.epsilon)])
    if cls.estimates != "real":
        yield "the Ŷ − Y shortcut: that is ∂J/∂z through the output activation, not ∂J/∂ŷ of the objective", lambda: s.Yhat - s.Y
        yield ("the Ŷ − Y shortcut, and with its sign flipped (Y − Ŷ): that is −∂J/∂z through the output activation, "
               "not ∂J/∂ŷ of the objective"), lambda: s.Y - s.Yhat
    yield "missing ε: division by zero at ŷ = 0 or 1", lambda: truth.objective_gradient(cls, s.Y, s.Yhat, 0.0)
    if cls.estimates == "distribution":
        yield "binary log loss gradient where cross entropy was asked", lambda: -(s.Y - s.Yhat) / (s.Yhat * (1 - s.Yhat) + cls.epsilon)
    yield "returned the per-entry loss instead of its derivative", lambda: truth.loss_entries(cls, s.Y, s.Yhat)


def _elementwise_forward(s: Situation):
    cls = s.cls
    yield "activation applied twice: g(g(z))", lambda: class_values(cls, "twice", [s.X])
    yield "returned the input unchanged", lambda: s.X
    yield ("the formula evaluated as written overflows: e^z is inf at large |z| (use a stable form, e.g. np.tanh or e^(−|z|))",
           lambda: class_values(cls, "value", [s.X], precise=False))


def _elementwise_gradient(s: Situation):
    cls = s.cls
    g = lambda: class_values(cls, "value", [s.X])  # noqa: E731
    yield from _spec_mistakes(s, lambda: [s.X, g()])
    yield "returned the output g(z) instead of the derivative", g
    yield ("the derivative evaluated at the output g(z) instead of the input z: g′(g(z)), the activation applied twice",
           lambda: class_values(cls, "derivative", [g()]))


def _backward(s: Situation):
    J = s.extra["jacobian"]  # the true N×K×K (or N×K×D) Jacobian
    diag = np.einsum("nkk->nk", J) if J.shape[1] == J.shape[2] else None
    yield "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, :, None] * J
    yield "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, None, :] * J
    if s.cls.kind == "softmax":
        yield "only the diagonal of the softmax Jacobian used: δ ⊙ g(1 − g)", lambda: s.G * diag
    yield "gradIn ignored: returned the layer's gradient itself", lambda: diag if s.cls.kind != "fully_connected" else None
    if s.cls.kind == "elementwise":
        yield "δ multiplied by the output g(z) instead of the derivative g′(z)", lambda: s.G * class_values(s.cls, "value", [s.X])
    yield "returned gradIn unchanged", lambda: s.G


def _softmax_forward(s: Situation):
    X = s.X
    with np.errstate(all="ignore"):
        yield "softmax without the max shift: e^z overflows for large logits", lambda: np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
        yield "softmax shifted by one global max instead of each row's max", lambda: np.exp(X - X.max()) / np.exp(X - X.max()).sum(axis=1, keepdims=True)
        yield "softmax normalised over the whole batch instead of each row", lambda: np.exp(X - X.max()) / np.exp(X - X.max()).sum()
        yield "softmax normalised over columns instead of rows", lambda: np.exp(X - X.max(axis=0)) / np.exp(X - X.max(axis=0)).sum(axis=0)


def _softmax_gradient(s: Situation):
    g = s.truth.softmax_forward(s.X)
    outer = np.einsum("ni,nj->nij", g, g)
    eye = np.eye(g.shape[1])
    yield "only the diagonal of the softmax Jacobian, g(1 − g)", lambda: g * (1 - g)
    yield "softmax Jacobian from −g·gᵀ without the diagonal term", lambda: -outer
    yield "softmax Jacobian from g·gᵀ without the diagonal term", lambda: outer
    yield "softmax Jacobian with the off-diagonal signs flipped", lambda: np.einsum("ni,ij->nij", g, eye) - outer * eye + outer * (1 - eye)
    yield "only diag(g): the −g·gᵀ term is missing", lambda: np.einsum("ni,ij->nij", g, eye)
    yield ("−g·gᵀ computed element-wise: `row.T * row` on a 1-D row is g², not the outer product g·gᵀ",
           lambda: np.einsum("ni,ij->nij", g, eye) - (g * g)[:, None, :])
    yield ("−gᵀg, a number, where the outer product g·gᵀ belongs (`g.T @ g` on a 1-D row)",
           lambda: np.einsum("ni,ij->nij", g, eye) - np.sum(g * g, axis=1)[:, None, None])


def _fc_forward(s: Situation):
    yield "bias ignored: h = xW without + b", lambda: s.X @ s.W
    yield "bias subtracted instead of added", lambda: s.X @ s.W - s.b


def _fc_gradient(s: Situation):
    yield "W instead of Wᵀ", lambda: s.W
    yield "W instead of Wᵀ", lambda: np.broadcast_to(s.W, (s.X.shape[0], *s.W.shape))
    yield "returned the input x instead of ∂h/∂x", lambda: s.X


def _fc_backward(s: Situation):
    yield "returned gradIn unchanged", lambda: s.G
    yield "multiplied by W without transposing (works only when D = K)", lambda: s.G @ s.W if s.W.shape[0] == s.W.shape[1] else None


def _input_forward(s: Situation):
    data, X, cls = s.data, s.X, s.cls
    other = 1 - cls.ddof
    zscore = lambda A, by, ddof: (A - by.mean(axis=0)) / _safe_std(by.std(axis=0, ddof=ddof))  # noqa: E731
    with np.errstate(all="ignore"):
        yield f"z-scored with ddof={other} instead of ddof={cls.ddof}", lambda: zscore(X, data, other)
        yield "z-scored over the whole matrix (one mean and std for all columns)", lambda: (X - data.mean()) / data.std(ddof=cls.ddof)
        yield "z-scored over the whole matrix (one mean and std for all columns)", lambda: (X - data.mean()) / data.std(ddof=other)
        yield "z-scored with the new data's own mean and std, not the constructor's", lambda: zscore(X, X, cls.ddof)
        yield "z-scored with the new data's own mean and std, not the constructor's", lambda: zscore(X, X, other)
        yield "a zero standard deviation not replaced by 1 (division by zero)", lambda: (X - data.mean(axis=0)) / data.std(axis=0, ddof=cls.ddof)
        yield "a zero standard deviation not replaced by 1 (division by zero)", lambda: (X - data.mean(axis=0)) / data.std(axis=0, ddof=other)
        yield "only centred: not divided by the standard deviation", lambda: X - data.mean(axis=0)
        yield "z-scored over rows instead of columns", lambda: (X - X.mean(axis=1, keepdims=True)) / _safe_std(X.std(axis=1, ddof=cls.ddof, keepdims=True))


def _safe_std(std):
    return np.where(std == 0, 1.0, std)


def _binary_log_loss(Y, Yhat, eps):
    with np.errstate(all="ignore"):
        return -(Y * np.log(Yhat + eps) + (1 - Y) * np.log(1 - Yhat + eps))
