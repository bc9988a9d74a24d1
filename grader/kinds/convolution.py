"""The convolutional layer: forward = the valid 2-D cross-correlation of an H×W image with its
kH×kW kernel; backward(G) = ∂J/∂X, the full convolution of G with the kernel (G zero-padded,
cross-correlated with the kernel turned 180°); updateWeights(G, η) steps the kernel by
−η ∂J/∂K, ∂J/∂K = X ⋆ G with X the stored input.

The truth is SymPy's (`grader/truth/convolution.py`), cross-checked against reference/. No
double penalty: backward and updateWeights run after the grader's own forward(X) on a layer
holding the grader's kernel, so they are judged on the stored input, whatever forward returned.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from grader.checking.checks import ItemContext, NotGradable, cross_checked, exact, named
from grader.checking.results import CheckResult
from grader.kinds import image_layers as il
from grader.truth import convolution as truth
from grader.truth.reference_truth import reference_class

ETA = 0.1


def kernel_of(ctx: ItemContext, shape=None) -> np.ndarray:
    kh, kw = shape or il.geometry(ctx)["kernel"]
    return np.round(ctx.rng.uniform(-1.5, 1.5, size=(kh, kw)), 6) + np.arange(kh * kw).reshape(kh, kw) * 1e-3


def sizes(ctx: ItemContext, case: str):
    """(image shape, kernel shape) of a check: the spec's, another odd one, or an image as small as the kernel."""
    (h, w), (kh, kw) = il.geometry(ctx)["image"], il.geometry(ctx)["kernel"]
    if case == "other_size":
        return (h + 2, max(w - 2, kw) if w - 2 != h + 2 else w + 4), (kh, kw)
    if case == "smallest_image":
        return (kh, kw), (kh, kw)
    return (h, w), (kh, kw)


def per_image(fn, X, *rest):
    """fn on each image of a batch (N×H×W) (and the matching entries of `rest`), or on the one image."""
    return np.stack([fn(x, *(r[i] for r in rest)) for i, x in enumerate(X)]) if X.ndim == 3 else fn(X, *rest)


def conv(X, K):
    """The SymPy truth of forward, image by image."""
    return per_image(lambda x: truth.forward(x, K), X)


def layer_with(ctx: ItemContext, K: np.ndarray):
    """A student convolution holding K: constructor (kH, kW), else (k) or (k, 1) for a square kernel, else
    one kernel of a multi-kernel layer, (1, kH, kW) as (n_kernels, kH, kW) or (1, 1, k) as (channels, filters, k)."""
    kh, kw = K.shape
    variants = [(kh, kw)] + ([(kh,), (kh, 1)] if kh == kw else []) + [(1, kh, kw)] + ([(1, 1, kh)] if kh == kw else [])
    return il.new_layer(ctx, variants, check=lambda layer, args: il.set_kernel(ctx, layer, K, args))


def forward_of(ctx, layer, X, K):
    out = per_image(lambda x: np.zeros((x.shape[0] - K.shape[0] + 1, x.shape[1] - K.shape[1] + 1)), X)
    outcome = il.call_image(ctx, layer, "forward", X, out.size, return_args=True, shape=out.shape)
    return outcome, out.shape


def reference(ctx: ItemContext, method: str, X, K, G=None, eta=ETA):
    """What reference/'s ConvolutionalLayer gives (None where it is not shipped)."""
    ref = reference_class(ctx.cls)
    if ref is None:
        return None
    outs = []
    for i, x in enumerate(X if X.ndim == 3 else [X]):
        layer = ref(*K.shape)
        layer.setKernel(K.copy())
        y = layer.forward(x)
        if method == "forward":
            outs.append(y)
        elif method == "backward":
            outs.append(layer.backward(G[i] if X.ndim == 3 else G))
        else:
            layer.updateWeights(G[i] if X.ndim == 3 else G, eta)
            outs.append(layer.getKernel())
    return np.stack(outs) if X.ndim == 3 else outs[0]


def forward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        image_shape, kernel_shape = sizes(ctx, "values" if case == "input_not_mutated" else case)
        K, X = kernel_of(ctx, kernel_shape), il.image(ctx, image_shape)
        layer = layer_with(ctx, K)
        before = None if case == "input_not_mutated" else il.forward_before(ctx, layer, image_shape, conv(X, K).size, conv(X, K).shape)
        outcome, shape = forward_of(ctx, layer, X, K)
        if case == "input_not_mutated":
            il.value(outcome, f"{ctx.cls.name}.forward()")
            return il.unchanged_arg(name, weight, outcome, X, "X")
        got = il.value(outcome, f"{ctx.cls.name}.forward()")
        got = il.shaped(got, shape)
        expected = cross_checked(ctx, exact(conv(X, K)), reference(ctx, "forward", X, K)).nominal
        return il.verdict(ctx, name, weight, got, expected, what=f"forward(X) of a {'×'.join(map(str, image_shape))} image (the layer's second call)",
                          mistakes=[*_forward(Case(X=X, K=K)), il.first_answer_again("forward", lambda: conv(before, K))])
    return named(il.guarded(check), f"convolution.forward.{case}")


def backward_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        image_shape, kernel_shape = sizes(ctx, "values" if case == "gradIn_not_mutated" else case)
        K, X = kernel_of(ctx, kernel_shape), il.image(ctx, image_shape)
        layer = layer_with(ctx, K)
        _, out_shape = forward_of(ctx, layer, X, K)  # the stored input is the grader's X, whatever forward returns
        if case != "gradIn_not_mutated":
            before = il.called_before(ctx, layer, "backward", out_shape, X, int(np.prod(out_shape)), out_shape=out_shape)
        G = np.round(ctx.rng.uniform(-1, 1, size=out_shape), 6)
        outcome = il.call_image(ctx, layer, "backward", G, None, return_args=True)
        if case == "gradIn_not_mutated":
            il.value(outcome, f"{ctx.cls.name}.backward()")
            return il.unchanged_arg(name, weight, outcome, G, "gradIn")
        got = il.value(outcome, f"{ctx.cls.name}.backward()")
        got = il.shaped(got, X.shape)
        expected = cross_checked(ctx, exact(per_image(lambda x, g: truth.input_gradient(x.shape, K, g), X, G)),
                                 reference(ctx, "backward", X, K, G)).nominal
        return il.verdict(ctx, name, weight, got, expected, what=f"backward(gradIn) after forward of a {'×'.join(map(str, image_shape))} image",
                          mistakes=[*_backward(Case(X=X, K=K, G=G)), il.first_answer_again(
                              "backward", lambda: per_image(lambda x, g: truth.input_gradient(x.shape, K, g), X, before))])
    return named(il.guarded(check), f"convolution.backward.{case}")


def refuse_another_optimiser(ctx: ItemContext):
    """A kernel step whose signature needs more than (gradIn, η) — Adam's time step, an optimiser flag
    defaulting to Adam — is not the plain step K ← K − η ∂J/∂K: not gradable as written, never a wrong
    answer. The signature is read statically, as the fully connected layer's is (once per submission)."""
    from grader.kinds.fully_connected_update import call_plan_for
    plan = call_plan_for(ctx.student, ctx.cls)
    if plan.shape == "not gradable":
        raise NotGradable(plan.reason.replace("W ← W − η ∂J/∂W", "K ← K − η ∂J/∂K"))


def update_check(case: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        image_shape, kernel_shape = sizes(ctx, "other_size" if case == "other_size" else "values")
        eta = 0.37 if case == "learning_rate" else ETA
        refuse_another_optimiser(ctx)
        K, X = kernel_of(ctx, kernel_shape), il.image(ctx, image_shape)
        layer = layer_with(ctx, K)
        _, out_shape = forward_of(ctx, layer, X, K)
        if case != "gradIn_not_mutated":  # a step first, the kernel then set back to K
            before = il.called_before(ctx, layer, "updateWeights", out_shape, X, int(np.prod(out_shape)), eta, out_shape=out_shape,
                                      then=lambda: il.set_kernel(ctx, layer, K, il.driven(ctx)["constructor_args"]))
        G = np.round(ctx.rng.uniform(-1, 1, size=out_shape), 6)
        outcome = il.call_image(ctx, layer, "updateWeights", G, None, eta, return_args=True)
        if outcome.kind == "error":
            il.value(outcome, f"{ctx.cls.name}.updateWeights()")
        if case == "gradIn_not_mutated":
            return il.unchanged_arg(name, weight, outcome, G, "gradIn")
        dK = per_image(lambda x, g: truth.kernel_gradient(x, K.shape, g), X, G)
        accepted = [("the batch's ∂J/∂K averaged over its images", K - eta * dK.mean(axis=0))] if X.ndim == 3 else []
        dK = dK.sum(axis=0) if X.ndim == 3 else dK  # a batch's gradient adds over its images (or its mean: accepted)
        expected = K - eta * dK
        ref = reference(ctx, "updateWeights", X, K, G, eta)
        if ref is not None and X.ndim == 2:
            cross_checked(ctx, exact(expected), ref)
        held = il.read_kernel(ctx, layer, K.shape)
        note = ""
        if held is None:  # no getter, no attribute: judged by the updated layer's own forward
            X2 = il.image(ctx, image_shape)
            outcome2, shape2 = forward_of(ctx, layer, X2, K)
            got = il.value(outcome2, f"{ctx.cls.name}.forward()").reshape(shape2)
            note = "judged by forward() after the update (the class has no getter for its kernel)"
            return il.verdict(ctx, name, weight, got, conv(X2, expected), what="forward(X) after updateWeights(gradIn, η)", note=note,
                              accepted=[(a, conv(X2, k)) for a, k in accepted])
        return il.verdict(ctx, name, weight, held, expected, what=f"the kernel after updateWeights(gradIn, η = {eta:g})",
                          mistakes=[*_update(Case(X=X, K=K, G=G, eta=eta, dK=dK)), il.first_answer_again("updateWeights", lambda: K - eta * (
                              per_image(lambda x, g: truth.kernel_gradient(x, K.shape, g), X, before).reshape(-1, *K.shape).sum(axis=0)))],
                          accepted=accepted)
    return named(il.guarded(check), f"convolution.updateWeights.{case}")


# ----------------------------------------------------------------------------- named mistakes: (code, text, numbers)


class Case(SimpleNamespace):
    """The inputs of one check (X, K, G, η, the true ∂J/∂K), from which each mistake's numbers are computed."""


def _forward(c):
    yield ("convolution.kernel_flipped", "a convolution (kernel flipped) where the course cross-correlates",
           lambda: per_image(lambda x: truth.correlate(x, np.rot90(c.K, 2)), c.X))


def _backward(c):
    kh, kw = c.K.shape
    yield ("convolution.not_turned", "backward without the 180° turn of the kernel (the padded gradient cross-correlated with K itself)",
           lambda: per_image(lambda g: truth.correlate(truth.padded(g, kh, kw), c.K), c.G))
    if kh == kw:
        yield ("convolution.transposed", "the kernel transposed instead of turned 180°",
               lambda: per_image(lambda g: truth.correlate(truth.padded(g, kh, kw), c.K.T), c.G))
    yield ("convolution.not_padded", "backward without zero padding (a valid cross-correlation of gradIn: too small)",
           lambda: per_image(lambda g: truth.correlate(g, np.rot90(c.K, 2)), c.G))
    kernel_gradient = lambda: per_image(lambda x, g: truth.kernel_gradient(x, c.K.shape, g), c.X, c.G)  # noqa: E731
    yield ("convolution.kernel_gradient", "backward returned ∂J/∂K = X ⋆ gradIn, the kernel's gradient (what the update "
           "steps along), where it passes ∂J/∂X, the gradient of the layer's input, back", kernel_gradient)
    if c.X.ndim == 3:
        yield ("convolution.kernel_gradient", "backward returned ∂J/∂K = X ⋆ gradIn added over the batch, the kernel's "
               "gradient, where it passes ∂J/∂X, the gradient of the layer's input, back", lambda: kernel_gradient().sum(axis=0))


def _update(c):
    yield "convolution.kernel_unchanged", "the kernel did not change", lambda: c.K
    yield "convolution.uphill", "the step taken uphill: K + η ∂J/∂K", lambda: c.K + c.eta * c.dK
    yield ("convolution.operands_swapped", "∂J/∂K with the operands swapped (gradIn ⋆ X: the true ∂J/∂K turned 180°)",
           lambda: c.K - c.eta * np.rot90(c.dK, 2))
    yield "convolution.from_output", "∂J/∂K from the output Y in place of the input X", lambda: c.K - c.eta * np.sum(conv(c.X, c.K) * c.G)
    if c.eta != ETA:
        yield "convolution.eta_ignored", "η ignored (a learning rate of its own)", lambda: c.K - ETA * c.dK


MISTAKES = {"forward": _forward, "backward": _backward, "updateWeights": _update}

CHECKS = {
    "forward": {c: forward_check(c) for c in ("values", "other_size", "smallest_image", "input_not_mutated")},
    "backward": {c: backward_check(c) for c in ("values", "other_size", "smallest_image", "gradIn_not_mutated")},
    "updateWeights": {c: update_check(c) for c in ("values", "other_size", "learning_rate", "gradIn_not_mutated")},
}
