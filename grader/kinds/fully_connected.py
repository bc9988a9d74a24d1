"""The fully connected layer: h = XW + b, W D×K and b 1×K, set by the grader through the
student's setters (or read through the getters); gradient() = Wᵀ.

Its checks are the layer checks (`grader/checking/layer_checks.py`) with this kind's hooks: the
layer is built with the grader's W and b, maps D to K, and a wrong forward that comes from
setters that did not take effect is named so.
"""
from __future__ import annotations

import numpy as np

from grader.checking import layer_checks, points
from grader.checking.checks import ItemContext
from grader.checking.compare import compare
from grader.checking.diagnose import Situation
from grader.checking.layer_checks import D, K, LayerKind, true_forward
from grader.checking.results import CheckResult, Diagnosis


class FullyConnected(LayerKind):
    def true_forward(self, truth, cls, X, W=None, b=None, data=None):
        return truth.fully_connected_forward(X, W, b)

    def true_jacobian(self, truth, cls, X, W=None, b=None):
        return truth.fully_connected_jacobian(X, W, b)

    def new_layer(self, ctx: ItemContext, X, k, need_bias):
        return ctx.student.fully_connected(ctx.cls, *points.weights(ctx.rng, X.shape[1], k), need_bias=need_bias)

    def probe(self, ctx: ItemContext, X, W, b):
        return ctx.student.fully_connected(ctx.cls, W, b, need_bias=False)[0]

    def sizes(self, n):
        return n, D, K

    def edge_points(self, ctx: ItemContext):
        n, d, k = 3, 4, 1  # a single output, where (1,)-shaped slips show
        return layer_checks.layer_input(ctx, n, d), n, d, k

    def forward_edge_points(self, ctx: ItemContext):
        return np.array([[300.0, -200.0, 1e3, 0.0, -1e3], [0.4, -1.2, 2.0, 0.7, -0.3]]), K

    def forward_judged(self, ctx: ItemContext, result: CheckResult, layer, X, W, b, got) -> CheckResult:
        return setters_checked(ctx, result, layer, X, W, b, got)

    network_weights = True

    def in_network(self, student, cls, X, zeros, width, out, rng):
        handle, W, b = student.fully_connected(cls, rng.normal(scale=0.5, size=(width, out)), rng.normal(scale=0.1, size=(1, out)))
        return handle, W, b, None


def setters_checked(ctx: ItemContext, result: CheckResult, layer, X, W, b, got) -> CheckResult:
    """A fully connected forward that is wrong because setWeights/setBiases did not take effect
    (they set another attribute) is named so: read back, the layer holds other values, and its
    forward is right for those."""
    cls, student = ctx.cls, ctx.student
    if result.passed:
        return result
    held = {}
    for getter, given in (("getWeights", W), ("getBiases", b)):
        if student.has(cls, getter):
            outcome = student.call(layer, cls, getter)
            if outcome.ok and outcome.value.size == np.size(given):
                held[getter] = outcome.value.reshape(np.shape(given))
    W_held, b_held = held.get("getWeights", W), held.get("getBiases", b)
    ignored = [s for s, g, h in (("setWeights", W, W_held), ("setBiases", b, b_held)) if not np.allclose(g, h)]
    rtol, atol = ctx.precision.values(ctx.tol)
    if ignored and compare(got, true_forward(ctx, X, W_held, b_held), rtol=rtol, atol=atol).passed:
        result.diagnosis = Diagnosis(f"{' and '.join(ignored)}() did not change what forward() uses (read back, the layer still holds "
                                     "its own values): does it set another attribute, e.g. self.biases where forward uses self.__biases?",
                                     "fully_connected.setters_ignored")
    return result


# ----------------------------------------------------------------------------- named mistakes


def _fc_forward(s: Situation):
    yield "fully_connected.bias_ignored", "bias ignored: h = xW without + b", lambda: s.X @ s.W
    yield "fully_connected.bias_subtracted", "bias subtracted instead of added", lambda: s.X @ s.W - s.b


def _fc_gradient(s: Situation):
    yield "fully_connected.w_not_transposed", "W instead of Wᵀ", lambda: s.W
    yield "fully_connected.w_not_transposed", "W instead of Wᵀ", lambda: np.broadcast_to(s.W, (s.X.shape[0], *s.W.shape))
    yield "fully_connected.returned_input", "returned the input x instead of ∂h/∂x", lambda: s.X


def _fc_backward(s: Situation):
    yield "fully_connected.gradin_unchanged", "returned gradIn unchanged", lambda: s.G
    yield "fully_connected.w_not_transposed", "multiplied by W without transposing (works only when D = K)", lambda: s.G @ s.W if s.W.shape[0] == s.W.shape[1] else None


MISTAKES = {"forward": _fc_forward, "gradient": _fc_gradient, "backward": _fc_backward}


LAYER = FullyConnected()
CHECKS = layer_checks.table("fully_connected")
