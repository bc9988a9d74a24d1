"""Adam's truth: the steps of the recurrence over T calls, for symbolic gradients, derived by SymPy.

`FullyConnectedLayer.updateWeights(gradIn, t, p1, p2, η, δ)` under the `adam` spec moves each
entry θ of W and b by −η m̂ₜ/(√v̂ₜ + δ), where, with g = ∂J/∂θ of call t (`update_truth`):

    mₜ = p1 mₜ₋₁ + (1 − p1) gₜ,  vₜ = p2 vₜ₋₁ + (1 − p2) gₜ²,  m̂ₜ = mₜ/(1 − p1ᵗ),  v̂ₜ = vₜ/(1 − p2ᵗ),  m₀ = v₀ = 0.

Only the recurrence is written here, over symbols g₁…g_T (and q₁…q_T, what the second moment
accumulates: gₜ² for the rule; a named mistake may feed it something else); SymPy unrolls it into
one expression per step, lambdified and cached like every derived function, so a warm run imports
no SymPy. The variants are the named mistakes' recurrences, derived the same way.
"""
from __future__ import annotations

import numpy as np

from grader.truth.remembered import remembered
from grader.truth.symbolic import numpy_function

#: The recurrence as the course writes it, and the mistakes it is compared against (code → how it differs).
VARIANTS = {
    "course": "m̂ = m/(1 − p1ᵗ), v̂ = v/(1 − p2ᵗ)",
    "no_correction": "no bias correction: m and v used as they are",
    "power_of_complement": "(1 − p)ᵗ instead of 1 − pᵗ in both corrections",
    "power_of_complement_v": "(1 − p2)ᵗ instead of 1 − p2ᵗ in the second moment's correction",
    "reset": "moments reset every call: m = (1 − p1)g, v = (1 − p2)g² each time",
    # not a mistake: the course's rule with t counted from 0 (the caller passes 0, 1, 2 …), credited as such
    "zero_based": "t counted from 0: m̂ = m/(1 − p1ᵗ⁺¹), v̂ = v/(1 − p2ᵗ⁺¹) when called with t",
    # not mistakes either: δ written inside the square root, m̂/√(v̂ + δ) (of the course's t, or t counted from 0)
    "delta_inside": "δ inside the square root: m̂/√(v̂ + δ)",
    "zero_based_delta_inside": "t counted from 0, δ inside the square root",
}


def adam_exprs(steps: int, variant: str = "course"):
    """(symbols g₁…g_T, q₁…q_T, p1, p2, δ; [m̂ₜ/(√v̂ₜ + δ) for t = 1…T]) (imports SymPy)."""
    import sympy as sp

    g = sp.symbols(f"g1:{steps + 1}", real=True)
    q = sp.symbols(f"q1:{steps + 1}", nonnegative=True)
    p1, p2, delta = sp.symbols("p1 p2 delta", positive=True)
    m = v = sp.Integer(0)
    out = []
    for t in range(1, steps + 1):
        if variant == "reset":
            m = v = sp.Integer(0)
        m = p1 * m + (1 - p1) * g[t - 1]
        v = p2 * v + (1 - p2) * q[t - 1]
        c1, c2 = 1 - p1 ** t, 1 - p2 ** t
        if variant == "no_correction":
            c1 = c2 = sp.Integer(1)
        elif variant == "power_of_complement":
            c1, c2 = (1 - p1) ** t, (1 - p2) ** t
        elif variant == "power_of_complement_v":
            c2 = (1 - p2) ** t
        elif variant.startswith("zero_based"):
            c1, c2 = 1 - p1 ** (t + 1), 1 - p2 ** (t + 1)
        out.append((m / c1) / sp.sqrt(v / c2 + delta) if variant.endswith("delta_inside") else (m / c1) / (sp.sqrt(v / c2) + delta))
    return [*g, *q, p1, p2, delta], out


@remembered
def adam_directions(grads, p1: float, p2: float, delta: float, variant: str = "course", seconds=None) -> np.ndarray:
    """m̂ₜ/(√v̂ₜ + δ) for t = 1…T, entry by entry, for the gradients `grads` (T arrays of one shape);
    `seconds` (T arrays) is what v accumulates, gₜ² unless given. The step of call t is −η times it."""
    grads = [np.asarray(g, dtype=float) for g in grads]
    seconds = [g * g for g in grads] if seconds is None else [np.asarray(s, dtype=float) for s in seconds]
    steps = len(grads)
    fn = numpy_function(f"adam|{variant}|{steps}", lambda: adam_exprs(steps, variant))
    with np.errstate(all="ignore"):
        values = fn(*grads, *seconds, float(p1), float(p2), float(delta))
    return np.array([np.broadcast_to(np.asarray(v, dtype=float), grads[0].shape) for v in values])
