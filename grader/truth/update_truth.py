"""The update step's truth: ∂J/∂W and ∂J/∂b through h = XW + b, derived by SymPy.

`FullyConnectedLayer.updateWeights(gradIn, η)` moves W and b against the gradient of the batch's
objective. Only definitions are written here: the objective seen from the layer is linear in its
output, J = reduce over the N rows of ⟨δₙ, xₙW + b⟩ with δ = gradIn = ∂J/∂H per observation (the
course's objectives give δ per entry, not divided by N), and the spec names the reduction
(`update_reduction`: "mean", the course's, or "sum"). `sympy.diff` gives ∂J/∂W and ∂J/∂b at the
shape asked, lambdified and cached like every derived function (`symbolic.numpy_function`), so a
warm run imports no SymPy. What comes out is Xᵀδ/N and the column means of δ — derived, not typed.
"""
from __future__ import annotations

import numpy as np

from grader.truth.remembered import remembered
from grader.truth.symbolic import numpy_function

#: How the batch objective combines its N observations' terms, and what a report calls it.
UPDATE_REDUCTIONS = {"mean": "mean over the N observations", "sum": "sum over the N observations"}


def update_exprs(n: int, d: int, k: int, reduction: str):
    """(symbols X then δ, [∂J/∂W row by row, then ∂J/∂b]) for J = reduce_n ⟨δₙ, xₙW + b⟩ (imports SymPy)."""
    import sympy as sp

    X = sp.Matrix(n, d, sp.symbols(f"x0:{n * d}", real=True))
    G = sp.Matrix(n, k, sp.symbols(f"g0:{n * k}", real=True))
    W = sp.Matrix(d, k, sp.symbols(f"W0:{d * k}", real=True))
    b = sp.Matrix(1, k, sp.symbols(f"b0:{k}", real=True))
    H = X * W + sp.ones(n, 1) * b
    total = sum(G[r, c] * H[r, c] for r in range(n) for c in range(k))
    J = total / n if reduction == "mean" else total
    derived = [sp.diff(J, w) for w in W] + [sp.diff(J, bj) for bj in b]
    if any(e.free_symbols & (set(W) | set(b)) for e in derived):  # the layer is linear: nothing of W or b stays
        raise ValueError("the update's derivation kept W or b")
    return list(X) + list(G), derived


@remembered
def update_gradients(X: np.ndarray, G: np.ndarray, reduction: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """(∂J/∂W D×K, ∂J/∂b 1×K) for the stored input X (N×D) and gradIn δ (N×K)."""
    if reduction not in UPDATE_REDUCTIONS:
        raise ValueError(f"unknown update reduction {reduction!r}")
    X, G = np.asarray(X, dtype=float), np.asarray(G, dtype=float)
    (n, d), k = X.shape, G.shape[1]
    fn = numpy_function(f"fully_connected_update|{reduction}|{n}x{d}x{k}", lambda: update_exprs(n, d, k, reduction))
    with np.errstate(all="ignore"):
        values = np.array([float(np.asarray(v)) for v in fn(*X.ravel(), *G.ravel())], dtype=float)
    return values[:d * k].reshape(d, k), values[d * k:].reshape(1, k)
