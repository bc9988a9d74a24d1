"""Ground truth of the convolutional layer, derived by SymPy at each size it is asked for.

Only the definition is written here: the valid 2-D cross-correlation of an H×W image X with a
kH×kW kernel K, Y[i, j] = Σ_a Σ_b X[i+a, j+b] K[a, b]. For a symbolic image, kernel and incoming
gradient G of one size, SymPy differentiates J = Σ G ∘ Y: ∂J/∂X (what backward returns) and
∂J/∂K (what updateWeights steps along). Each is lambdified and cached like every derived
function (`symbolic.numpy_function`): a warm run reads generated arithmetic and imports no SymPy.
The rule the course writes (∂J/∂X = pad(G) ⋆ rot180(K), ∂J/∂K = X ⋆ G) is never used as truth;
`tests/test_cnn.py` checks that it agrees with the derivation.
"""
from __future__ import annotations

import functools

import numpy as np

from grader.truth.remembered import remembered
from grader.truth.symbolic import numpy_function

ROLES = ("forward", "input_gradient", "kernel_gradient")


@functools.lru_cache(maxsize=None)
def convolution_exprs(h: int, w: int, kh: int, kw: int):
    """(X, K, G symbols, Y's entries, ∂J/∂X's entries, ∂J/∂K's entries) at one size, derived by SymPy."""
    import sympy as sp

    X = sp.Matrix(h, w, sp.symbols(f"x0:{h * w}", real=True))
    K = sp.Matrix(kh, kw, sp.symbols(f"k0:{kh * kw}", real=True))
    oh, ow = h - kh + 1, w - kw + 1
    G = sp.Matrix(oh, ow, sp.symbols(f"g0:{oh * ow}", real=True))
    Y = sp.Matrix(oh, ow, lambda i, j: sum(X[i + a, j + b] * K[a, b] for a in range(kh) for b in range(kw)))
    J = sum(G[i, j] * Y[i, j] for i in range(oh) for j in range(ow))
    return (list(X), list(K), list(G), list(Y), [sp.diff(J, x) for x in X], [sp.diff(J, k) for k in K])


def _function(role: str, h: int, w: int, kh: int, kw: int):
    def build():
        x, k, g, y, dx, dk = convolution_exprs(h, w, kh, kw)
        return {"forward": (x + k, y), "input_gradient": (k + g, dx), "kernel_gradient": (x + g, dk)}[role]
    return numpy_function(f"convolution_{role}|{h}x{w}|{kh}x{kw}", build)


def _values(fn, arrays, shape) -> np.ndarray:
    args = [v for a in arrays for v in np.asarray(a, dtype=float).ravel()]
    return np.array([float(v) for v in fn(*args)], dtype=float).reshape(shape)


@remembered
def forward(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Y = X ⋆ K (valid cross-correlation) of one H×W image."""
    (h, w), (kh, kw) = X.shape, K.shape
    return _values(_function("forward", h, w, kh, kw), (X, K), (h - kh + 1, w - kw + 1))


@remembered
def input_gradient(X_shape: tuple[int, int], K: np.ndarray, G: np.ndarray) -> np.ndarray:
    """∂J/∂X for J = Σ G ∘ (X ⋆ K): what backward(G) returns (it does not depend on X)."""
    (h, w), (kh, kw) = X_shape, K.shape
    return _values(_function("input_gradient", h, w, kh, kw), (K, G), (h, w))


@remembered
def kernel_gradient(X: np.ndarray, K_shape: tuple[int, int], G: np.ndarray) -> np.ndarray:
    """∂J/∂K for J = Σ G ∘ (X ⋆ K): what updateWeights(G, η) subtracts η times."""
    (h, w), (kh, kw) = X.shape, K_shape
    return _values(_function("kernel_gradient", h, w, kh, kw), (X, G), (kh, kw))


# ----------------------------------------------------------------------------- named mistakes (numbers only)


def correlate(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Plain valid cross-correlation, for the named mistakes (never the truth)."""
    kh, kw = K.shape
    oh, ow = X.shape[0] - kh + 1, X.shape[1] - kw + 1
    if oh < 1 or ow < 1:
        return np.zeros((0, 0))
    return np.array([[np.sum(X[i:i + kh, j:j + kw] * K) for j in range(ow)] for i in range(oh)])


def padded(G: np.ndarray, kh: int, kw: int) -> np.ndarray:
    return np.pad(G, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
