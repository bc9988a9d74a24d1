"""The input layer: z-scores its input with the mean and the standard deviation (ddof from the
spec, 1 by default) of the data its constructor was given; a zero deviation counts as 1.
"""
from __future__ import annotations

import numpy as np

from grader.checking import points
from grader.checking.checks import ItemContext, cross_checked, exact, input_sensitivity, judge, named, situation, unchanged
from grader.checking.layer_checks import getters_missing, stored_after_forward
from grader.checking.diagnose import Situation
from grader.checking.results import CheckResult
from grader.checking.student import array_of
from grader.truth.reference_truth import ReferenceTruth

N, D = points.N, points.D


class InputLayer:
    """The input layer's truth adapter (it has no gradient, so none of the layer checks' hooks)."""

    def true_forward(self, truth, cls, X, W=None, b=None, data=None):
        return truth.input_forward(data, X, cls.options.ddof)

    network_weights = False
    network_scales_data = True

    def in_network(self, student, cls, X, zeros, width, out, rng):
        return student.new(cls, X), None, None, X


LAYER = InputLayer()


def input_values(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        data = points.input_data(ctx.rng, N, D)
        if case == "constant_column":
            data[:, 1] = 2.5
        X = {"batch": data, "constant_column": data, "new_data": points.input_data(ctx.rng, 4, D),
             "single": points.input_data(ctx.rng, 1, D)}[case]
        layer = student.new(cls, data)
        got = student.value(layer, cls, "forward", X)
        reference = ReferenceTruth().layer(cls, X, data=data) if cls.options.ddof == 1 else None
        expected = cross_checked(ctx, exact(ctx.truth.input_forward(data, X, cls.options.ddof)), reference.getPrevOut() if reference else None)
        what = {"batch": "forward(X) on the constructor's data", "constant_column": "forward with a constant column (σ = 0 counts as 1)",
                "new_data": "forward of new data (the constructor's μ and σ apply)", "single": "forward of one observation"}[case]
        sensitivity = lambda: input_sensitivity(lambda A, B: ctx.truth.input_forward(B, A, cls.options.ddof), X, data)  # noqa: E731
        return judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, data=data), what=what, sensitivity=sensitivity)
    return named(check, f"input.forward.{ {'batch': 'values', 'single': 'single_observation'}.get(case, case)}")


def input_stores(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """The input layer's forward() keeps its input and output too: it is a layer like the others."""
    missing = getters_missing(ctx, name, weight)
    if missing:
        return missing
    data = points.input_data(ctx.rng, N, D)
    return stored_after_forward(ctx, name, weight, ctx.student.new(ctx.cls, data), data)


def input_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    data = points.input_data(ctx.rng, N, D)
    original = data.copy()
    layer = ctx.student.new(ctx.cls, data)
    outcome = ctx.student.call(layer, ctx.cls, "forward", data, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", original)])


# ----------------------------------------------------------------------------- named mistakes


def _input_forward(s: Situation):
    data, X, cls = s.data, s.X, s.cls
    other = 1 - cls.options.ddof
    zscore = lambda A, by, ddof: (A - by.mean(axis=0)) / _safe_std(by.std(axis=0, ddof=ddof))  # noqa: E731
    with np.errstate(all="ignore"):
        yield "input.other_ddof", f"z-scored with ddof={other} instead of ddof={cls.options.ddof}", lambda: zscore(X, data, other)
        yield "input.whole_matrix", "z-scored over the whole matrix (one mean and std for all columns)", lambda: (X - data.mean()) / data.std(ddof=cls.options.ddof)
        yield "input.whole_matrix", "z-scored over the whole matrix (one mean and std for all columns)", lambda: (X - data.mean()) / data.std(ddof=other)
        yield "input.new_data_statistics", "z-scored with the new data's own mean and std, not the constructor's", lambda: zscore(X, X, cls.options.ddof)
        yield "input.new_data_statistics", "z-scored with the new data's own mean and std, not the constructor's", lambda: zscore(X, X, other)
        yield "input.zero_std_kept", "a zero standard deviation not replaced by 1 (division by zero)", lambda: (X - data.mean(axis=0)) / data.std(axis=0, ddof=cls.options.ddof)
        yield "input.zero_std_kept", "a zero standard deviation not replaced by 1 (division by zero)", lambda: (X - data.mean(axis=0)) / data.std(axis=0, ddof=other)
        yield "input.only_centred", "only centred: not divided by the standard deviation", lambda: X - data.mean(axis=0)
        yield "input.over_rows", "z-scored over rows instead of columns", lambda: (X - X.mean(axis=1, keepdims=True)) / _safe_std(X.std(axis=1, ddof=cls.options.ddof, keepdims=True))


def _safe_std(std):
    return np.where(std == 0, 1.0, std)


MISTAKES = {"forward": _input_forward}


CHECKS = {
    "forward": {"values": input_values("batch"), "new_data": input_values("new_data"),
                "constant_column": input_values("constant_column"), "single_observation": input_values("single"),
                "stores_input_output": input_stores, "input_not_mutated": input_unchanged},
}
