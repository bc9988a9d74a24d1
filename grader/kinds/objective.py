"""Objectives (squared error, log loss, cross-entropy, and any a spec defines by formula): eval(Y, Ŷ)
is J, reduced as the spec says; gradient(Y, Ŷ) is ∂J/∂ŷ entry by entry, N×K. Every ε in the
spec's range is right: values are judged against the band the range spans.
"""
from __future__ import annotations

import numpy as np

from grader.checking import points
from grader.checking.checks import ItemContext, cross_checked, finite_difference_band, judge, named, own_values, situation, unchanged
from grader.checking.diagnose import Situation, diagnose, spec_mistakes
from grader.checking.results import CheckResult
from grader.checking.student import array_of
from grader.truth.reference_truth import ReferenceTruth
from grader.truth.symbolic import Band, reduce_loss

N, K = points.N, points.K


def objective_truth(ctx: ItemContext, method: str, Y: np.ndarray, Yhat: np.ndarray) -> Band:
    """J or ∂J/∂ŷ with the band every accepted ε spans."""
    if method == "eval":
        return ctx.truth.objective_value_band(ctx.cls, Y, Yhat)
    return ctx.truth.objective_gradient_band(ctx.cls, Y, Yhat)


def objective_values(method: str, single: bool):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_pair(ctx.rng, cls, 1 if single else N, K)
        got = student.value(student.new(cls), cls, method, Y, Yhat)
        reference = ReferenceTruth().objective(cls)
        expected = cross_checked(ctx, objective_truth(ctx, method, Y, Yhat), getattr(reference, method)(Y, Yhat) if reference else None)
        return judge(ctx, name, weight, _as_scalar(got) if method == "eval" else got, expected, situation(ctx, method, Y=Y, Yhat=Yhat))
    return named(check, f"objective.{method}.{'single_observation' if single else 'values'}")


def _as_scalar(got: np.ndarray) -> np.ndarray:
    """A 1×1 or (1,) array is as good as a number for J."""
    return got.reshape(()) if got.size == 1 else got


def objective_edges(method: str):
    """ŷ exactly 0 and 1 beside ordinary estimates. There the slides ask for finite results: J
    within the band of every accepted ε (the smallest 1e-16), ∂J/∂ŷ any finite value where the
    rule has none at ε = 0; the ordinary entries are judged as usual.

    J is one number, and the band of the extreme entries is wide (−ln ε from 13.8 to 36.8), so J
    is asked twice, with other ordinary estimates beside the same extreme ones: the difference of
    the two answers, where the student's ε cancels, must be the truth's. A constant, or a loss of
    another formula that happens to land in the band, cannot pass.
    """
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_edges(cls)
        sit = situation(ctx, method, Y=Y, Yhat=Yhat)
        if method == "gradient":
            got = student.value(student.new(cls), cls, method, Y, Yhat)
            return judge(ctx, name, weight, got, objective_truth(ctx, method, Y, Yhat), sit,
                         what=f"∂J/∂ŷ at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
        Y2, Yhat2 = points.objective_edges(cls, variant=1)
        obj = student.new(cls)
        first, second = (_as_scalar(student.value(obj, cls, method, Ya, Yb)) for Ya, Yb in ((Y, Yhat), (Y2, Yhat2)))
        if first.shape or second.shape:  # not a number: say so against the first point set alone
            return judge(ctx, name, weight, first, objective_truth(ctx, method, Y, Yhat), sit,
                         what=f"J at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
        difference = ctx.truth.objective_value_difference_band(cls, ((Y, Yhat), (Y2, Yhat2)))
        rounding = 2 * ctx.precision.rounding(max(abs(float(first)), abs(float(second)))) if np.isfinite(first + second) else 0.0
        bands = [objective_truth(ctx, method, Y, Yhat), objective_truth(ctx, method, Y2, Yhat2),
                 Band(difference.nominal, difference.lower - rounding, difference.upper + rounding)]  # both answers' rounding
        band = Band(*(np.array([getattr(b, part) for b in bands], dtype=float) for part in ("nominal", "lower", "upper")))
        with np.errstate(invalid="ignore"):
            got = np.array([first, second, first - second])
        result = judge(ctx, name, weight, got, band, sit,
                       what=f"[J₁, J₂, J₁ − J₂] for ŷ₁ = {Yhat.tolist()} and ŷ₂ = {Yhat2.tolist()} (the last row differs), "
                            f"y = {Y.tolist()}")
        if not result.passed:  # the mistakes are J's: named from the first point set
            rtol, atol = ctx.precision.values(ctx.tol)
            result.diagnosis = diagnose(first, bands[0].nominal, sit, rtol=rtol, atol=atol, lower=bands[0].lower, upper=bands[0].upper)
        return result
    return named(check, f"objective.{method}.edges")


def objective_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """∂J/∂ŷ against central differences of the student's own eval, scaled back to per-entry."""
    cls, student = ctx.cls, ctx.student
    n, k = 3, K
    Y, Yhat = points.objective_pair(ctx.rng, cls, n, k)
    obj = student.new(cls)
    got = student.value(obj, cls, "gradient", Y, Yhat)
    scale = {"mean": n * k, "mean_rows": n, "sum": 1}[cls.options.reduction]
    value = lambda A: ctx.truth.objective_value(cls, Y, A)  # noqa: E731
    own = own_values(ctx, obj, "eval", [(Y, Yhat)], value(Yhat), ()) if student.has(cls, "eval") else None
    h, rtol, atol = ctx.precision.finite_differences(ctx.tol)
    steps = [_entry(Yhat, idx, h) for idx in np.ndindex(n, k)]
    if own is not None:
        own = own_values(ctx, obj, "eval", [(Y, Yhat + sign * e) for e in steps for sign in (1, -1)], None, ())
    fd_true = np.array([(value(Yhat + e) - value(Yhat - e)) / (2 * h) for e in steps]).reshape(n, k) * scale
    note = ""
    if own is not None:
        fd = np.array([(own[2 * i] - own[2 * i + 1]) / (2 * h) for i in range(n * k)]).reshape(n, k) * scale
        noise = ctx.precision.rounding(max(abs(float(v)) for v in own)) / h * scale
        source = "central differences of your own eval()"
    else:
        fd, noise = fd_true, 0.0
        source = "central differences of the true J (your eval() is not right, so it was not used)"
        note = "judged against " + source
    band = finite_difference_band(fd, fd_true, ctx.truth.objective_gradient(cls, Y, Yhat), noise)
    return judge(ctx, name, weight, got, band, situation(ctx, "gradient", Y=Y, Yhat=Yhat), rtol=rtol, atol=atol,
                 what=f"your gradient() vs {source}, times the {scale} entries J averages over", note=note)


def _entry(A, idx, h):
    e = np.zeros_like(A)
    e[idx] = h
    return e


def objective_unchanged(method: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_pair(ctx.rng, cls, N, K)
        obj = student.new(cls)
        outcome = student.call(obj, cls, method, Y, Yhat, return_args=True)
        array_of(outcome, f"{cls.name}.{method}()")
        return unchanged(ctx, name, weight, outcome, [("Y", Y), ("Yhat", Yhat)])
    return named(check, f"objective.{method}.inputs_not_mutated")


# ----------------------------------------------------------------------------- named mistakes


REDUCTION_WORDS = {
    "mean": "the mean over all N·K entries",
    "mean_rows": "the mean over the N observations of each row's sum",
    "sum": "the sum over all entries",
}


def _objective_eval(s: Situation):
    cls, truth = s.cls, s.truth
    entries = lambda eps=None: truth.loss_entries(cls, s.Y, s.Yhat, eps)  # noqa: E731
    yield from spec_mistakes(s, lambda: [s.Y, s.Yhat, np.full(s.Yhat.shape, cls.epsilon)])
    yield "objective.not_reduced", "not reduced: returned the per-entry losses (N×K) instead of the number J", lambda: entries()
    for reduction, words in REDUCTION_WORDS.items():
        if reduction != cls.options.reduction:
            yield "objective.wrong_reduction", f"J reduced as {words} instead of {REDUCTION_WORDS[cls.options.reduction]}", lambda r=reduction: reduce_loss(entries(), r)
    yield "objective.missing_epsilon", "missing ε: ln(0) at ŷ = 0 or 1", lambda: reduce_loss(entries(0.0), cls.options.reduction)
    yield ("objective.wrong_axis", "J reduced along the wrong axis: summed over the N observations (axis=0) and averaged over the K classes",
           lambda: float(np.mean(np.sum(entries(), axis=0))))
    if cls.options.squared_error:
        yield ("objective.matrix_product_of_errors", "the mean of (Y − Ŷ)ᵀ(Y − Ŷ), a K×K matrix product, instead of the mean of the element-wise squares",
               lambda: float(np.mean((s.Y - s.Yhat).T @ (s.Y - s.Yhat))))
    if cls.options.estimates == "distribution":
        yield "objective.binary_log_loss", "binary log loss where cross entropy was asked", lambda: reduce_loss(_binary_log_loss(s.Y, s.Yhat, cls.epsilon), cls.options.reduction)
        yield "objective.binary_log_loss", "binary log loss where cross entropy was asked", lambda: float(np.mean(_binary_log_loss(s.Y, s.Yhat, cls.epsilon)))


def _objective_gradient(s: Situation):
    cls, truth = s.cls, s.truth
    yield from spec_mistakes(s, lambda: [s.Y, s.Yhat, np.full(s.Yhat.shape, cls.epsilon)])
    if cls.options.estimates != "real":
        yield "objective.yhat_minus_y_shortcut", "the Ŷ − Y shortcut: that is ∂J/∂z through the output activation, not ∂J/∂ŷ of the objective", lambda: s.Yhat - s.Y
        yield "objective.y_minus_yhat_shortcut", ("the Ŷ − Y shortcut, and with its sign flipped (Y − Ŷ): that is −∂J/∂z through the output activation, "
               "not ∂J/∂ŷ of the objective"), lambda: s.Y - s.Yhat
    yield "objective.missing_epsilon", "missing ε: division by zero at ŷ = 0 or 1", lambda: truth.objective_gradient(cls, s.Y, s.Yhat, 0.0)
    if cls.options.estimates == "distribution":
        yield "objective.binary_log_loss_gradient", "binary log loss gradient where cross entropy was asked", lambda: -(s.Y - s.Yhat) / (s.Yhat * (1 - s.Yhat) + cls.epsilon)
    yield "objective.loss_not_derivative", "returned the per-entry loss instead of its derivative", lambda: truth.loss_entries(cls, s.Y, s.Yhat)


def _binary_log_loss(Y, Yhat, eps):
    with np.errstate(all="ignore"):
        return -(Y * np.log(Yhat + eps) + (1 - Y) * np.log(1 - Yhat + eps))


MISTAKES = {"eval": _objective_eval, "gradient": _objective_gradient}


CHECKS = {
    "eval": {"values": objective_values("eval", single=False), "single_observation": objective_values("eval", single=True),
             "edges": objective_edges("eval"), "inputs_not_mutated": objective_unchanged("eval")},
    "gradient": {"values": objective_values("gradient", single=False),
                 "single_observation": objective_values("gradient", single=True),
                 "finite_differences": objective_finite_differences, "edges": objective_edges("gradient"),
                 "inputs_not_mutated": objective_unchanged("gradient")},
}
