"""Judging at the precision the student computed in.

The worker reports the dtype of every array the student's code returns, before anything is
converted to float64. A check is judged at the lowest precision among the answers it used, and
a lower precision buys only the rounding error that computing the rule in it really produces,
never a wider band:

- values: the spec's tolerances, with floors of a few rounding errors (8 ε_mach relative and
  absolute). At float32 these floors (9.5e-7) lie below the default spec's rtol = 1e-5 and
  atol = 1e-6, which already hold float32's rounding error of every rule on the test points
  (measured on the float32 fixture, every rule computed in float32: at most 4.2e-7 absolute where
  z-scores are near 0, 1.3e-5 absolute but 8e-8 relative on the fully connected layer's edges),
  so a float32 answer is judged exactly as a float64 one, and an ε of 1e-4 fails at both.
- values computed from large inputs: also what rounding the inputs (and intermediates of their
  size) to the precision moves the rule by, Σ |∂f/∂x|·|x| times a few rounding errors
  (`propagated`): a float32 softmax of a row near ±1000 computed as exp(z − logsumexp z) is off by
  1.3e-5 relative, within float32's rounding of the rule and outside the spec's rtol.
- finite differences: a step the precision can resolve (1e-3 at float32, where the spec's 1e-6
  would be all noise) and the spec's tolerances; the rounding noise of the student's own
  differences is measured, entry by entry, and bounded by `rounding` (checks.py).
- float16, which no course asks for, is judged at float32's precision: nothing coarser than
  float32's is ever given, so float16's own rounding (some 5e-4 relative) counts as a mistake.

Integer and boolean answers are exact, so they are judged like float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.assignment.spec import Tolerance

ROUNDING_MARGIN = 8.0  # rounding errors of a few operations, each at most ε_mach/2 relative


@dataclass(frozen=True)
class Precision:
    """The dtype a student computed in, and the machine epsilon it is judged with."""

    name: str  # the student's dtype
    eps: float  # machine epsilon judged with: the dtype's own, but never coarser than float32's
    fd_step: float = 0.0  # finite-difference step (0: the spec's)
    own_eps: float = 0.0  # the dtype's own epsilon where it is coarser than `eps` (float16)

    @property
    def reduced(self) -> bool:
        """True below float64: worth a note in the feedback."""
        return max(self.eps, self.own_eps) > np.finfo(np.float64).eps

    @property
    def judged_as(self) -> str:
        """The precision whose rounding the answer is allowed: its own, or float32's for a coarser one."""
        return "float32" if self.own_eps > self.eps else self.name

    def values(self, tol: Tolerance) -> tuple[float, float]:
        """(rtol, atol) for comparing values: the spec's, or a few rounding errors where those are finer."""
        floor = ROUNDING_MARGIN * self.eps
        return max(tol.rtol, floor), max(tol.atol, floor)

    def finite_differences(self, tol: Tolerance) -> tuple[float, float, float]:
        """(step, rtol, atol) for central differences: a step this precision resolves, the spec's tolerances."""
        return max(tol.fd_step, self.fd_step), tol.fd_rtol, tol.fd_atol

    def rounding(self, magnitude: float) -> float:
        """How far a value of this size can be off from rounding alone, with a margin for a few operations."""
        return ROUNDING_MARGIN * self.eps * float(magnitude)

    def propagated(self, sensitivity: np.ndarray) -> np.ndarray:
        """How far each value can be off because its inputs are held at this precision: the rule's
        sensitivity Σ |∂f/∂x|·|x| over its inputs (checks.input_sensitivity), times a few rounding errors.

        Rounding an input x to this precision moves it by up to ε_mach/2·|x|, and an intermediate of
        the same size (a log-sum-exp near 1000, a mean of the data) moves as much: a value computed
        from large inputs is off by that much however carefully it is computed. In float32 a softmax
        of a row near 1000 is off by some 1e-5 relative; in float64 the same band is 1e-13."""
        return ROUNDING_MARGIN * self.eps * np.asarray(sensitivity, dtype=float)


FLOAT64 = Precision("float64", float(np.finfo(np.float64).eps))
_FLOAT32_EPS = float(np.finfo(np.float32).eps)
PRECISIONS = {
    "float64": FLOAT64,
    "float32": Precision("float32", _FLOAT32_EPS, fd_step=1e-3),
    "float16": Precision("float16", _FLOAT32_EPS, fd_step=1e-3, own_eps=float(np.finfo(np.float16).eps)),
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
    """The coarsest of several precisions (float64 when there are none); float16 before float32, which it is judged as."""
    return max(precisions, key=lambda p: (p.eps, p.own_eps), default=FLOAT64)
