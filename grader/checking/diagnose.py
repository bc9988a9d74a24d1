"""Named diagnoses: which known mistake the student's numbers are.

Each kind's catalogue of named mistakes lives in its module (`grader/kinds/<kind>.py`,
`MISTAKES`), each with a stable code beside its text (`softmax.diagonal_only`); this module is
the engine that tries them, then the mistakes of any kind (a factor, a transpose).

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
from grader.checking.results import Diagnosis
from grader.assignment.spec import ClassSpec
from grader.kinds import KINDS, implementation
from grader.truth.symbolic import SymbolicTruth, class_values

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
             lower=None, upper=None) -> Diagnosis | None:
    """Return the known mistake `got` matches (its text, with its code beside), or None.

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
        for code, name, numbers in _candidates(situation):
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
                return Diagnosis(name, code)
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
    if situation.method == "gradient" and _may_be_diagonal(situation):
        if value.ndim == 2:
            yield np.einsum("nk,kj->nkj", value, np.eye(value.shape[1]))
        elif value.ndim == 3:
            yield np.einsum("nkk->nk", value)


def _may_be_diagonal(situation: Situation) -> bool:
    """Whether the kind's gradient() may take the form of a diagonal (its declared forms)."""
    return "diagonal" in KINDS[situation.cls.kind].gradient_forms


def _factor_or_transpose(got, expected, situation, rtol, atol, lower=None, upper=None) -> Diagnosis | None:
    k = expected.shape[-1] if expected.ndim else 0
    if (situation.method == "gradient" and _may_be_diagonal(situation) and got.shape == (k, k)
            and expected.shape[0] > 1 and got.shape != expected.shape):
        return Diagnosis("one K×K matrix for the whole batch instead of one Jacobian per observation (N×K×K) or the N×K diagonal",
                         "gradient.one_matrix_for_the_batch")
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
                    return Diagnosis(known[1], known[2])
                if int(mask.sum()) >= 2:  # one number is always some factor of another: that says nothing
                    return Diagnosis(f"off by a constant factor of {c:.6g}", "factor.constant")
    if got.ndim >= 2 and got.shape == expected.shape[:-2] + expected.shape[-1:] + expected.shape[-2:-1]:
        if close(np.swapaxes(got, -1, -2), expected, rtol, atol):
            return Diagnosis("transposed: rows and columns swapped", "transposed")
    return None


def _known_factor(c: float, situation: Situation) -> tuple[float, str, str] | None:
    """The factor a mistake usually makes (−1, 2, N, K, …) close to `c`, with its name and code, or None."""
    n, k = _nk(situation)
    known = [
        (-1.0, "sign flipped", "factor.sign_flipped"),
        (2.0, "an extra factor of 2", "factor.extra_2"),
        (0.5, "a factor of 2 missing", "factor.missing_2"),
        (-2.0, "sign flipped and an extra factor of 2", "factor.sign_flipped_extra_2"),
        (-0.5, "sign flipped and a factor of 2 missing", "factor.sign_flipped_missing_2"),
    ]
    if n and n > 1:
        known += [(1.0 / n, f"divided by N (= {n}): the gradient is per entry, not averaged", "factor.divided_by_n"),
                  (float(n), f"multiplied by N (= {n})", "factor.multiplied_by_n")]
    if k and k > 1:
        known += [(1.0 / k, f"divided by K (= {k})", "factor.divided_by_k"), (float(k), f"multiplied by K (= {k})", "factor.multiplied_by_k")]
    if n and k and n * k > 1 and n > 1 and k > 1:
        known += [(1.0 / (n * k), f"divided by N·K (= {n * k})", "factor.divided_by_nk"),
                  (float(n * k), f"multiplied by N·K (= {n * k}): summed instead of averaged", "factor.multiplied_by_nk")]
    for value, name, code in known:
        if np.isclose(c, value, rtol=1e-3):
            return value, name, code
    return None


def _nk(situation: Situation) -> tuple[int | None, int | None]:
    for arr in (situation.Yhat, situation.X):
        if arr is not None and np.ndim(arr) == 2:
            return arr.shape
    return None, None


# ------------------------------------------------------------------------ the catalogue


def _candidates(s: Situation):
    """(code, text, numbers) of every named mistake of the kind's method, from the kind's module
    (its `MISTAKES`), in the order they are tried."""
    builder = implementation(s.cls.kind).MISTAKES.get(s.method)
    return list(builder(s)) if builder else []


def spec_mistakes(s: Situation, values):
    """The spec's own `mistakes` of this method (code `spec:<its name>`)."""
    for i, mistake in enumerate(s.cls.mistakes):
        if mistake.method == s.method:
            yield f"spec:{mistake.name}", mistake.name, lambda i=i: class_values(s.cls, f"mistake:{i}", values())
