"""The input layer: z-scores its input with the mean and the standard deviation (ddof from the
spec, 1 by default) of the data its constructor was given; a zero deviation counts as 1.
"""
from __future__ import annotations

from grader.checking import points
from grader.checking.checks import ItemContext, cross_checked, exact, judge, named, situation, unchanged
from grader.checking.results import CheckResult
from grader.checking.student import array_of
from grader.truth.reference_truth import ReferenceTruth

N, D = points.N, points.D


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
        reference = ReferenceTruth().layer(cls, X, data=data) if cls.ddof == 1 else None
        expected = cross_checked(ctx, exact(ctx.truth.input_forward(data, X, cls.ddof)), reference.getPrevOut() if reference else None)
        what = {"batch": "forward(X) on the constructor's data", "constant_column": "forward with a constant column (σ = 0 counts as 1)",
                "new_data": "forward of new data (the constructor's μ and σ apply)", "single": "forward of one observation"}[case]
        return judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, data=data), what=what)
    return named(check, f"input.forward.{ {'batch': 'values', 'single': 'single_observation'}.get(case, case)}")


def input_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    data = points.input_data(ctx.rng, N, D)
    original = data.copy()
    layer = ctx.student.new(ctx.cls, data)
    outcome = ctx.student.call(layer, ctx.cls, "forward", data, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", original)])


CHECKS = {
    "forward": {"values": input_values("batch"), "new_data": input_values("new_data"),
                "constant_column": input_values("constant_column"), "single_observation": input_values("single"),
                "input_not_mutated": input_unchanged},
}
