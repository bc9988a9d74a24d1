"""The max-pooling layer, built as (pool size, stride): forward takes each window's maximum;
backward(G) sends each output's gradient to the position of its window's maximum. Where
overlapping windows share a maximum their gradients add; where a window's maximum is tied, any
of its positions is right (the whole gradient at one of them).

The rule is a routing, not a formula: the truth is computed here from the windows, and
cross-checked against reference/. backward is judged after the grader's own forward(X).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from grader.checking.checks import ItemContext, cross_checked, exact, named
from grader.checking.compare import compare
from grader.checking.results import CheckResult
from grader.kinds import image_layers as il
from grader.truth.reference_truth import reference_class


def windows(shape, pool: int, stride: int):
    """[(output index, row slice, column slice)] of every window, row by row."""
    oh, ow = (shape[0] - pool) // stride + 1, (shape[1] - pool) // stride + 1
    return [((i, j), slice(i * stride, i * stride + pool), slice(j * stride, j * stride + pool))
            for i in range(oh) for j in range(ow)], (oh, ow)


def pooled(X, pool, stride):
    spans, shape = windows(X.shape, pool, stride)
    out = np.zeros(shape)
    for index, rows, cols in spans:
        out[index] = X[rows, cols].max()
    return out


def routed(X, G, pool, stride, *, add=True, first=False, spread=False, reverse=False):
    """The gradient each input gets (add=False: a later window's overwrites, or with `reverse` the first
    window's stays; first: to the window's first position; spread: to every position of the window) —
    the truth and its named mistakes."""
    spans, _ = windows(X.shape, pool, stride)
    spans = spans[::-1] if reverse else spans
    out = np.zeros(X.shape)
    for index, rows, cols in spans:
        block = X[rows, cols]
        if spread:
            out[rows, cols] += G[index]
            continue
        r, c = (0, 0) if first else np.unravel_index(np.argmax(block), block.shape)
        if add:
            out[rows.start + r, cols.start + c] += G[index]
        else:
            out[rows.start + r, cols.start + c] = G[index]
    return out


def per_image(fn, X, *rest):
    return np.stack([fn(x, *(r[i] for r in rest)) for i, x in enumerate(X)]) if X.ndim == 3 else fn(X, *rest)


def layer_of(ctx: ItemContext, pool: int, stride: int):
    """A student pooling layer built as (pool, stride): every check builds its own."""
    return ctx.student.new(ctx.cls, pool, stride)


def case_geometry(ctx: ItemContext, case: str):
    """(image shape, pool, stride) of a check: the spec's, or overlapping windows (3, 2) on an odd image."""
    g = il.geometry(ctx)
    if case == "overlapping_windows":
        return (9, 7), 3, 2
    return g["image"], g["pool"], g["stride"]


def shared_maxima(ctx: ItemContext, shape) -> np.ndarray:
    """An image whose overlapping windows (3, 2) share their maxima: large values planted where windows meet."""
    X = il.image(ctx, shape)
    for image in (X if X.ndim == 3 else [X]):
        for n, (r, c) in enumerate(((2, 2), (4, 4), (6, 2), (2, 4))):
            if r < image.shape[0] and c < image.shape[1]:
                image[r, c] = 5.0 + n
    return X


def tied(ctx: ItemContext, shape, pool: int) -> np.ndarray:
    """Every window (pool, stride = pool) has its maximum twice, the rest of the image below it; some all negative."""
    X = il.image(ctx, shape, low=-3.0, high=-0.5)
    spans, _ = windows(shape, pool, pool)
    for image in (X if X.ndim == 3 else [X]):
        for n, (_, rows, cols) in enumerate(spans):
            block = image[rows, cols]
            top = -0.1 if n % 2 else 1.0 + n
            block.flat[0 if n % 3 else -1] = top
            block.flat[block.size // 2] = top
    return X


def reference(ctx, X, pool, stride, G=None):
    ref = reference_class(ctx.cls)
    if ref is None:
        return None
    outs = []
    for i, x in enumerate(X if X.ndim == 3 else [X]):
        layer = ref(pool, stride)
        y = layer.forward(x)
        outs.append(y if G is None else layer.backward(G[i] if X.ndim == 3 else G))
    return np.stack(outs) if X.ndim == 3 else outs[0]


def forward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        shape, pool, stride = case_geometry(ctx, case)
        X = shared_maxima(ctx, shape) if case == "overlapping_windows" else tied(ctx, shape, pool) if case == "edges" else il.image(ctx, shape)
        if case == "edges":
            stride = pool
        layer = layer_of(ctx, pool, stride)
        expected = per_image(lambda x: pooled(x, pool, stride), X)
        before = None if case == "input_not_mutated" else il.forward_before(ctx, layer, shape, expected.size, expected.shape)
        outcome = il.call_image(ctx, layer, "forward", X, expected.size, return_args=True, shape=expected.shape)
        got = il.value(outcome, f"{ctx.cls.name}.forward()")
        if case == "input_not_mutated":
            return il.unchanged_arg(name, weight, outcome, X, "X")
        got = il.shaped(got, expected.shape)
        cross_checked(ctx, exact(expected), reference(ctx, X, pool, stride))
        what = {"values": f"forward(X) with pool {pool}, stride {stride}",
                "overlapping_windows": f"forward(X) with overlapping windows (pool {pool}, stride {stride})",
                "edges": "forward(X) with tied maxima and windows of negative numbers only"}[case]
        return il.verdict(ctx, name, weight, got, expected, what=what + " (the layer's second call)",
                          mistakes=[*_forward(Case(X=X, pool=pool, stride=stride)),
                                    il.first_answer_again("forward", lambda: per_image(lambda x: pooled(x, pool, stride), before))])
    return named(il.guarded(check), f"max_pool.forward.{case}")


def backward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        shape, pool, stride = case_geometry(ctx, case)
        if case == "ties":
            stride, X = pool, tied(ctx, shape, pool)
        else:
            X = shared_maxima(ctx, shape) if case == "overlapping_windows" else il.image(ctx, shape)
        layer = layer_of(ctx, pool, stride)
        out_shape = per_image(lambda x: pooled(x, pool, stride), X).shape
        il.call_image(ctx, layer, "forward", X, int(np.prod(out_shape)), shape=out_shape)
        if case != "gradIn_not_mutated":
            before = il.called_before(ctx, layer, "backward", out_shape, X, int(np.prod(out_shape)), out_shape=out_shape)
        G = np.round(ctx.rng.uniform(0.5, 2.0, size=out_shape), 6) * ctx.rng.choice([-1.0, 1.0], size=out_shape)
        outcome = il.call_image(ctx, layer, "backward", G, None, return_args=True)
        got = il.value(outcome, f"{ctx.cls.name}.backward()")
        if case == "gradIn_not_mutated":
            return il.unchanged_arg(name, weight, outcome, G, "gradIn")
        got = il.shaped(got, X.shape)
        if case == "ties":
            return ties_verdict(ctx, name, weight, got, X, G, pool)
        expected = per_image(lambda x, g: routed(x, g, pool, stride), X, G)
        cross_checked(ctx, exact(expected), reference(ctx, X, pool, stride, G))
        what = f"backward(gradIn) after forward(X), pool {pool}, stride {stride}" + (" (windows sharing maxima)" if case == "overlapping_windows" else "")
        return il.verdict(ctx, name, weight, got, expected, what=what, mistakes=[
            *_backward(Case(X=X, G=G, pool=pool, stride=stride)),
            il.first_answer_again("backward", lambda: per_image(lambda x, g: routed(x, g, pool, stride), X, before))])
    return named(il.guarded(check), f"max_pool.backward.{case}")


def ties_verdict(ctx: ItemContext, name: str, weight: float, got, X, G, pool) -> CheckResult:
    """Right when each window's whole gradient is at one of its tied maxima, and nothing elsewhere."""
    expected = per_image(lambda x, g: routed(x, g, pool, pool), X, G)  # one right answer (the first maximum), for the message
    if np.shape(got) != np.shape(expected):
        return il.verdict(ctx, name, weight, got, expected, what="backward(gradIn) with tied maxima")
    rtol, atol = ctx.precision.values(ctx.tol)
    ok = True
    for x, g, mine in zip(*(a if X.ndim == 3 else [a] for a in (X, G, got))):
        spans, _ = windows(x.shape, pool, pool)
        covered = np.zeros(x.shape, bool)
        for index, rows, cols in spans:
            covered[rows, cols] = True
            block, top = mine[rows, cols], x[rows, cols] == x[rows, cols].max()
            at_top = np.sort(block[top])
            target = np.sort(np.append(np.zeros(at_top.size - 1), g[index]))
            ok &= compare(block[~top], np.zeros((~top).sum()), rtol=rtol, atol=atol).passed
            ok &= compare(at_top, target, rtol=rtol, atol=atol).passed
        ok &= compare(mine[~covered], np.zeros((~covered).sum()), rtol=rtol, atol=atol).passed
    if ok:
        return CheckResult(name, True, weight, note="where a window's maximum is tied, any of its positions is right")
    return il.verdict(ctx, name, weight, got, expected, what="backward(gradIn) with tied maxima (any one maximum's position is right)",
                      mistakes=_ties(Case(X=X, G=G, pool=pool)))


def stride_mismatch(x, g, pool):
    """The gradient of a backward that walks its windows pool apart (not stride apart): window (i, j)
    at (i·pool, j·pool) takes gradIn[i, j]."""
    spans, _ = windows(x.shape, pool, pool)
    out = np.zeros(x.shape)
    for (i, j), rows, cols in spans:
        if i < g.shape[0] and j < g.shape[1]:
            r, c = np.unravel_index(np.argmax(x[rows, cols]), (pool, pool))
            out[rows.start + r, cols.start + c] += g[i, j]
    return out


def _to_every_top(x, g, pool):
    out = np.zeros(x.shape)
    for index, rows, cols in windows(x.shape, pool, pool)[0]:
        block = x[rows, cols]
        out[rows, cols] += np.where(block == block.max(), g[index], 0.0)
    return out


# ----------------------------------------------------------------------------- named mistakes: (code, text, numbers)


class Case(SimpleNamespace):
    """The inputs of one check (X, G, pool, stride), from which each mistake's numbers are computed."""


def _forward(c):
    if c.stride != c.pool:
        yield ("max_pool.stride_is_pool", "windows taken with a stride equal to the pool size",
               lambda: per_image(lambda x: pooled(x, c.pool, c.pool), c.X))


def _backward(c):
    X, G, pool, stride = c.X, c.G, c.pool, c.stride
    yield ("max_pool.spread", "the gradient spread over the whole window, not sent to its maximum",
           lambda: per_image(lambda x, g: routed(x, g, pool, stride, spread=True), X, G))
    yield ("max_pool.first_position", "the gradient sent to the first position of each window",
           lambda: per_image(lambda x, g: routed(x, g, pool, stride, first=True), X, G))
    yield ("max_pool.overwritten", "where overlapping windows share a maximum, one window's gradient overwrites the others' (they add)",
           lambda: per_image(lambda x, g: routed(x, g, pool, stride, add=False), X, G))
    yield ("max_pool.first_window_only", "where overlapping windows share a maximum, only the first window's gradient reaches it (they add)",
           lambda: per_image(lambda x, g: routed(x, g, pool, stride, add=False, reverse=True), X, G))
    if stride != pool:
        yield ("max_pool.stride_mismatch", "backward walks the windows with a stride equal to the pool size (a stride mismatch with forward)",
               lambda: per_image(lambda x, g: stride_mismatch(x, g, pool), X, G))


def _ties(c):
    yield ("max_pool.every_tie", "a tied maximum's gradient given to every tied position (counted twice)",
           lambda: per_image(lambda x, g: _to_every_top(x, g, c.pool), c.X, c.G))


MISTAKES = {"forward": _forward, "backward": _backward}  # and _ties, for the ties check

CHECKS = {
    "forward": {c: forward_check(c) for c in ("values", "overlapping_windows", "edges", "input_not_mutated")},
    "backward": {c: backward_check(c) for c in ("values", "overlapping_windows", "ties", "gradIn_not_mutated")},
}
