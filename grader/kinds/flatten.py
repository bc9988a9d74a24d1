"""The flattening layer: forward turns an H×W image into a 1×HW row (an N×H×W batch into N×HW),
row-major or column-major, as the student chooses; backward(G) turns such a row back into the
image's shape. Either order is right when backward undoes the student's own forward: backward
is judged in the order the student's forward flattens (on the grader's stored input).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from grader.checking.checks import ItemContext, named
from grader.checking.results import CheckResult
from grader.kinds import image_layers as il

ORDERS = {"C": "row-major", "F": "column-major"}


def flat(X: np.ndarray, order: str) -> np.ndarray:
    """Each image as one row, in `order` ("C" row-major, "F" column-major)."""
    images = X if X.ndim == 3 else X[None]
    return np.stack([x.ravel(order=order) for x in images])


def unflat(G: np.ndarray, shape, order: str) -> np.ndarray:
    images = G.reshape(-1, int(np.prod(shape[-2:])))
    out = np.stack([g.reshape(shape[-2:], order=order) for g in images])
    return out if len(shape) == 3 else out[0]


def image_shape(ctx: ItemContext, case: str):
    h, w = il.geometry(ctx)["image"]
    return (h + 2, w + 2) if case == "other_size" else (h, w)


def order_of(got, X) -> str | None:
    """The order the student's forward flattened X in, or None when it is neither."""
    for order in ("C", "F"):
        truth = flat(X, order)
        if np.size(got) == truth.size and np.allclose(np.reshape(got, truth.shape), truth, rtol=1e-12, atol=0):
            return order
    return None


def as_rows(got, X):
    """A single image's answer as 1×HW ((HW,) is read as one row too); a batch's as it came."""
    n = 1 if X.ndim == 2 else X.shape[0]
    ok = got.shape == (n, X.size // n) or (X.ndim == 2 and got.shape == (X.size,))
    return got.reshape(n, -1) if ok else got


def flat_rows(X):
    """Whether an answer of forward is X flattened in shape (its image form is decided by it: an H×W
    image taken for a batch of H rows keeps its size, not its shape)."""
    return lambda got: as_rows(got, X).shape == flat(X, "C").shape


def forward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        X = il.image(ctx, image_shape(ctx, case))
        layer = il.new_layer(ctx, [()])
        before = None if case == "input_not_mutated" else il.forward_before(ctx, layer, X.shape[-2:], flat_rows(X))
        outcome = il.call_image(ctx, layer, "forward", X, flat_rows(X), return_args=True)
        got = il.value(outcome, f"{ctx.cls.name}.forward()")
        if case == "input_not_mutated":
            return il.unchanged_arg(name, weight, outcome, X, "X")
        got = as_rows(got, X)
        order = order_of(got, X) if got.shape == flat(X, "C").shape else None
        expected = flat(X, order or "C")
        return il.verdict(ctx, name, weight, got, expected, what=f"forward(X) of a {'×'.join(map(str, X.shape))} input (the layer's second call)",
                          accepted=[("flattened column-major: right, as long as backward undoes it", flat(X, "F"))],
                          mistakes=[il.first_answer_again("forward", lambda: flat(before, order or "C"))],
                          note=f"flattened {ORDERS[order]}" if order else "")
    return named(il.guarded(check), f"flatten.forward.{case}")


def backward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        X = il.image(ctx, image_shape(ctx, "values"))
        layer = il.new_layer(ctx, [()])
        forwarded = il.call_image(ctx, layer, "forward", X, flat_rows(X))  # the stored input is the grader's X
        rows = forwarded.ok and as_rows(forwarded.value, X).shape == flat(X, "C").shape  # flat, as forward must be
        own = order_of(forwarded.value, X) if rows else None
        shape_in = forwarded.value.shape if rows else flat(X, "C").shape
        if case != "gradIn_not_mutated":
            before = il.called_before(ctx, layer, "backward", shape_in, X, flat_rows(X))
        if case == "undoes_forward" and own is not None:  # backward of the student's own flattening of another image gives it back
            G = flat(il.image(ctx, X.shape[-2:]), own).reshape(forwarded.value.shape)  # (of X itself, returning the stored input would pass)
        else:
            G = np.round(ctx.rng.uniform(-1, 1, size=shape_in), 6)
        outcome = il.call_image(ctx, layer, "backward", G, None, return_args=True)
        got = il.value(outcome, f"{ctx.cls.name}.backward()")
        if case == "gradIn_not_mutated":
            return il.unchanged_arg(name, weight, outcome, G, "gradIn")
        got = il.shaped(got, X.shape)
        orders = [own] if own else ["C", "F"]
        expected = unflat(G, X.shape, orders[0])
        other = "F" if orders[0] == "C" else "C"
        accepted = [] if own else [("forward flattens in neither order: either order is right here", unflat(G, X.shape, "F"))]
        what = ("backward(G) after forward(X), G another image X′ flattened as forward does (X′ back)" if case == "undoes_forward"
                else "backward(gradIn) after forward(X)")
        return il.verdict(ctx, name, weight, got, expected, what=what, accepted=accepted,
                          mistakes=[*_backward(Case(G=G, shape=X.shape, own=own)),
                                    il.first_answer_again("backward", lambda: unflat(before, X.shape, orders[0]))],
                          note=f"judged in the order your forward flattens: {ORDERS[own]}" if own else "")
    return named(il.guarded(check), f"flatten.backward.{case}")


# ----------------------------------------------------------------------------- named mistakes: (code, text, numbers)


class Case(SimpleNamespace):
    """The inputs of one check (gradIn, the image's shape, the order forward flattened in)."""


def _backward(c):
    if c.own:
        other = "F" if c.own == "C" else "C"
        yield ("flatten.other_order", f"backward restores {ORDERS[other]} what forward flattened {ORDERS[c.own]}: it does not undo forward",
               lambda: unflat(c.G, c.shape, other))


MISTAKES = {"backward": _backward}

CHECKS = {
    "forward": {c: forward_check(c) for c in ("values", "other_size", "input_not_mutated")},
    "backward": {c: backward_check(c) for c in ("values", "undoes_forward", "gradIn_not_mutated")},
}
