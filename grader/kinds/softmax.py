"""The softmax layer: row-wise softmax; gradient() is the per-observation Jacobian N×K×K (its
diagonal alone is wrong unless a spec accepts it).

Its checks are the layer checks (`grader/checking/layer_checks.py`) with an activation's hooks;
its true Jacobian is the full one.
"""
from __future__ import annotations

import numpy as np

from grader.checking import layer_checks
from grader.checking.diagnose import Situation
from grader.checking.layer_checks import LayerKind


class Softmax(LayerKind):
    def true_forward(self, truth, cls, X, W=None, b=None, data=None):
        return truth.softmax_forward(X)

    def true_jacobian(self, truth, cls, X, W=None, b=None):
        return truth.softmax_jacobian(X)

    def edge_input(self, ctx):
        """Rows near ±1000 beside small rows."""
        return np.array([[1000.0, 999.0, 998.0], [-3.0, 0.5, 2.0], [-1000.0, -999.0, -1001.0], [0.1, 0.2, 0.3]])


# ----------------------------------------------------------------------------- named mistakes


def _softmax_forward(s: Situation):
    X = s.X
    with np.errstate(all="ignore"):
        yield "softmax.no_max_shift", "softmax without the max shift: e^z overflows for large logits", lambda: np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
        yield "softmax.global_max", "softmax shifted by one global max instead of each row's max", lambda: np.exp(X - X.max()) / np.exp(X - X.max()).sum(axis=1, keepdims=True)
        yield "softmax.batch_normalised", "softmax normalised over the whole batch instead of each row", lambda: np.exp(X - X.max()) / np.exp(X - X.max()).sum()
        yield "softmax.column_normalised", "softmax normalised over columns instead of rows", lambda: np.exp(X - X.max(axis=0)) / np.exp(X - X.max(axis=0)).sum(axis=0)


def _softmax_gradient(s: Situation):
    g = s.truth.softmax_forward(s.X)
    outer = np.einsum("ni,nj->nij", g, g)
    eye = np.eye(g.shape[1])
    yield "softmax.diagonal_only", "only the diagonal of the softmax Jacobian, g(1 − g)", lambda: g * (1 - g)
    yield "softmax.negative_outer_only", "softmax Jacobian from −g·gᵀ without the diagonal term", lambda: -outer
    yield "softmax.outer_only", "softmax Jacobian from g·gᵀ without the diagonal term", lambda: outer
    yield "softmax.offdiagonal_sign", "softmax Jacobian with the off-diagonal signs flipped", lambda: np.einsum("ni,ij->nij", g, eye) - outer * eye + outer * (1 - eye)
    yield "softmax.outer_missing", "only diag(g): the −g·gᵀ term is missing", lambda: np.einsum("ni,ij->nij", g, eye)
    yield ("softmax.elementwise_square", "−g·gᵀ computed element-wise: `row.T * row` on a 1-D row is g², not the outer product g·gᵀ",
           lambda: np.einsum("ni,ij->nij", g, eye) - (g * g)[:, None, :])
    yield ("softmax.inner_product", "−gᵀg, a number, where the outer product g·gᵀ belongs (`g.T @ g` on a 1-D row)",
           lambda: np.einsum("ni,ij->nij", g, eye) - np.sum(g * g, axis=1)[:, None, None])


def _backward(s: Situation):
    J = s.extra["jacobian"]  # the true N×K×K (or N×K×D) Jacobian
    diag = np.einsum("nkk->nk", J) if J.shape[1] == J.shape[2] else None
    yield "softmax.broadcast_through_jacobian", "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, :, None] * J
    yield "softmax.broadcast_through_jacobian", "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", lambda: s.G[:, None, :] * J
    yield "softmax.diagonal_only_backward", "only the diagonal of the softmax Jacobian used: δ ⊙ g(1 − g)", lambda: s.G * diag
    yield "softmax.gradin_ignored", "gradIn ignored: returned the layer's gradient itself", lambda: diag
    yield "softmax.gradin_unchanged", "returned gradIn unchanged", lambda: s.G


MISTAKES = {"forward": _softmax_forward, "gradient": _softmax_gradient, "backward": _backward}


LAYER = Softmax()
CHECKS = layer_checks.table("softmax")
