"""Judging at the precision the student computed in.

The worker reports the dtype of every array the student's code returns, before anything is
converted to float64. A check is judged at the lowest precision among the answers it used:
float64 answers by the spec's tolerances; float32 and float16 ones by tolerances of their own,
for values and for finite differences (step and tolerance), in the way `jax.test_util.check_grads`
picks its defaults per dtype (gradient tolerance 2e-3 for float32, 1e-5 for float64). Integer and
boolean answers are exact, so they are judged like float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.assignment.spec import Tolerance


@dataclass(frozen=True)
class Precision:
    """A floating-point precision and the tolerances that are fair at it."""

    name: str
    eps: float  # machine epsilon
    rtol: float = 0.0  # floors for value comparisons (the spec's own apply when larger)
    atol: float = 0.0
    fd_step: float = 0.0  # finite-difference step (0: the spec's)
    fd_rtol: float = 0.0
    fd_atol: float = 0.0

    @property
    def reduced(self) -> bool:
        """True below float64: worth a note in the feedback."""
        return self.eps > np.finfo(np.float64).eps

    def values(self, tol: Tolerance) -> tuple[float, float]:
        """(rtol, atol) for comparing values at this precision."""
        return max(tol.rtol, self.rtol), max(tol.atol, self.atol)

    def finite_differences(self, tol: Tolerance) -> tuple[float, float, float]:
        """(step, rtol, atol) for central differences of answers at this precision."""
        return max(tol.fd_step, self.fd_step), max(tol.fd_rtol, self.fd_rtol), max(tol.fd_atol, self.fd_atol)

    def rounding(self, magnitude: float) -> float:
        """How far a value of this size can be off from rounding alone, with a margin for a few operations."""
        return 8.0 * self.eps * float(magnitude)


FLOAT64 = Precision("float64", float(np.finfo(np.float64).eps))
PRECISIONS = {
    "float64": FLOAT64,
    "float32": Precision("float32", float(np.finfo(np.float32).eps), rtol=1e-4, atol=1e-5,
                         fd_step=1e-3, fd_rtol=2e-3, fd_atol=2e-3),
    "float16": Precision("float16", float(np.finfo(np.float16).eps), rtol=1e-2, atol=1e-3,
                         fd_step=3e-2, fd_rtol=5e-2, fd_atol=5e-2),
}


def precision_of(dtype: str | None) -> Precision:
    """The precision of an answer of this numpy dtype name (exact types and unknown ones: float64)."""
    if not dtype:
        return FLOAT64
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return FLOAT64
    if dt.kind == "f":
        return PRECISIONS.get(dt.name, FLOAT64 if dt.itemsize >= 8 else PRECISIONS["float16"])
    return FLOAT64


def lowest(precisions) -> Precision:
    """The coarsest of several precisions (float64 when there are none)."""
    return max(precisions, key=lambda p: p.eps, default=FLOAT64)
