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
from grader.checking.diagnose import Situation, spec_mistakes
from grader.checking.layer_checks import LayerKind, diagonal
from grader.truth.symbolic import Band, class_values


class Elementwise(LayerKind):
    def true_forward(self, truth, cls, X, W=None, b=None, data=None):
        return truth.elementwise_forward(cls, X)

    def true_jacobian(self, truth, cls, X, W=None, b=None):
        return truth.elementwise_jacobian(cls, X)

    def jacobian(self, ctx: ItemContext, X, W=None, b=None) -> Band:
        band = ctx.truth.elementwise_derivative_band(ctx.cls, X)
        return Band(*(diagonal(a) for a in (band.nominal, band.lower, band.upper)))

    def jacobian_entries(self, own: np.ndarray) -> np.ndarray:
        return np.einsum("nkk->nk", own)


# ----------------------------------------------------------------------------- named mistakes


def _elementwise_forward(s: Situation):
    cls = s.cls
    yield "elementwise.applied_twice", "activation applied twice: g(g(z))", lambda: class_values(cls, "twice", [s.X])
    yield "elementwise.input_unchanged", "returned the input unchanged", lambda: s.X
    yield ("elementwise.overflow", "the formula evaluated as written overflows: e^z is inf at large |z| (use a stable form, e.g. np.tanh or e^(−|z|))",
           lambda: class_values(cls, "value", [s.X], precise=False))


def _elementwise_gradient(s: Situation):
    cls = s.cls
    g = lambda: class_values(cls, "value", [s.X])  # noqa: E731
    yield from spec_mistakes(s, lambda: [s.X, g()])
    yield "elementwise.output_not_derivative", "returned the output g(z) instead of the derivative", g
    yield ("elementwise.derivative_at_output", "the derivative evaluated at the output g(z) instead of the input z: g′(g(z)), the activation applied twice",
           lambda: class_values(cls, "derivative", [g()]))


def _backward(s: Situation):
    J = s.extra["jacobian"]  # the true N×K×K (or N×K×D) Jacobian
    diag = np.einsum("nkk->nk", J) if J.shape[1] == J.shape[2] else None
    yield "elementwise.broadcast_through_jacobian", "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, :, None] * J
    yield "elementwise.broadcast_through_jacobian", "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, None, :] * J
    yield "elementwise.gradin_ignored", "gradIn ignored: returned the layer's gradient itself", lambda: diag
    yield "elementwise.times_output", "δ multiplied by the output g(z) instead of the derivative g′(z)", lambda: s.G * class_values(s.cls, "value", [s.X])
    yield "elementwise.gradin_unchanged", "returned gradIn unchanged", lambda: s.G


MISTAKES = {"forward": _elementwise_forward, "gradient": _elementwise_gradient, "backward": _backward}


LAYER = Elementwise()
CHECKS = layer_checks.table("elementwise")
