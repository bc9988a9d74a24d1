"""Element-wise activations (linear, ReLU, sigmoid, tanh, and any a spec defines by formula):
z ↦ g(z) entry by entry; gradient() is the diagonal N×K or the full Jacobian N×K×K.

Its checks are the layer checks (`grader/checking/layer_checks.py`) with an activation's hooks;
its true Jacobian is diagonal, with the band its ε rule spans, and a Jacobian did work when its
diagonal does.
"""
from __future__ import annotations

import numpy as np

from grader.checking import layer_checks
from grader.checking.checks import ItemContext
from grader.checking.layer_checks import LayerKind, diagonal
from grader.truth.symbolic import Band


class Elementwise(LayerKind):
    def jacobian(self, ctx: ItemContext, X, W=None, b=None) -> Band:
        band = ctx.truth.elementwise_derivative_band(ctx.cls, X)
        return Band(*(diagonal(a) for a in (band.nominal, band.lower, band.upper)))

    def jacobian_entries(self, own: np.ndarray) -> np.ndarray:
        return np.einsum("nkk->nk", own)


LAYER = Elementwise()
CHECKS = layer_checks.table("elementwise")
