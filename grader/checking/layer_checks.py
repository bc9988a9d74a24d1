"""The checks of every layer kind but the input layer: forward, gradient() and backward().

The checks are the same for an element-wise activation, softmax and a fully connected layer;
what differs is asked of the kind's `LayerKind` (`ctx.layer`): how a layer is built, its sizes,
its edge points, its true Jacobian. Each layer kind's module (`grader/kinds/`) subclasses it and
makes its table with `table(prefix)`.
"""
from __future__ import annotations

import numpy as np

from grader.checking import points
from grader.checking.checks import (ItemContext, cross_checked, exact, finite_difference_band, input_sensitivity, judge,
                                    measured_noise, named, own_values, situation, unchanged)
from grader.checking.compare import compare
from grader.checking.results import CheckResult
from grader.checking.student import StudentFailure, array_of
from grader.sandbox import ObjectHandle
from grader.truth.reference_truth import ReferenceTruth
from grader.truth.symbolic import Band, SymbolicTruth

N, D, K = points.N, points.D, points.K


class LayerKind:
    """What a layer kind changes in the layer checks; the defaults are an activation layer's
    (it keeps the width K, is built on its input data and has no parameters)."""

    def true_forward(self, truth: SymbolicTruth, cls, X, W=None, b=None, data=None) -> np.ndarray:
        """The true output (a truth adapter: which of the truth's functions this kind is)."""
        raise NotImplementedError

    def true_jacobian(self, truth: SymbolicTruth, cls, X, W=None, b=None) -> np.ndarray:
        """The true per-observation Jacobian N×K×D."""
        raise NotImplementedError

    def jacobian(self, ctx: ItemContext, X, W=None, b=None) -> Band:
        """The true N×K×D Jacobian as the checks judge by it (a band where ε enters)."""
        return exact(self.true_jacobian(ctx.truth, ctx.cls, X, W=W, b=b))

    def jacobian_entries(self, own: np.ndarray) -> np.ndarray:
        """The entries of a student's Jacobian that tell whether it did work (a diagonal Jacobian:
        its diagonal, whatever the kind)."""
        return np.einsum("nkk->nk", own) if _is_diagonal(own) else own

    def new_layer(self, ctx: ItemContext, X: np.ndarray, k: int, need_bias: bool) -> tuple[ObjectHandle, np.ndarray | None, np.ndarray | None]:
        return ctx.student.new(ctx.cls, data=X), None, None

    def probe(self, ctx: ItemContext, X: np.ndarray, W, b) -> ObjectHandle:
        """A layer to take central differences of the student's own forward on."""
        return ctx.student.new(ctx.cls, data=X)

    def sizes(self, n: int) -> tuple[int, int, int]:
        """(N, D_in, K_out) of ordinary points."""
        return n, K, K

    def edge_input(self, ctx: ItemContext) -> np.ndarray:
        """Large |z| beside ordinary values in every row."""
        return points.edge_input(ctx.cls)

    def edge_points(self, ctx: ItemContext) -> tuple[np.ndarray, int, int, int]:
        """(X, N, D, K) of the edges of gradient() and backward()."""
        X = self.edge_input(ctx)
        return X, X.shape[0], X.shape[1], X.shape[1]

    def forward_edge_points(self, ctx: ItemContext) -> tuple[np.ndarray, int]:
        """(X, K) of forward's edges."""
        X = self.edge_input(ctx)
        return X, X.shape[1]

    def forward_judged(self, ctx: ItemContext, result: CheckResult, layer, X, W, b, got) -> CheckResult:
        """A forward check's result, with what the kind can say more about a wrong one."""
        return result

    def backward_judged(self, ctx: ItemContext, result: CheckResult, X, W, b, G, got) -> CheckResult:
        """A backward check's result, with what the kind can say more about a wrong one."""
        return result

    #: In the end-to-end network diagnostic (`network.py`): the layer has weights the grader
    #: draws, and the layer scales raw data (so the network is fed raw data).
    network_weights = False
    network_scales_data = False

    def in_network(self, student, cls, X, zeros, width: int, out: int, rng):
        """(student handle, W, b, data) of this layer in the network diagnostic, `width` wide in
        and `out` wide out; X is the network's input, `zeros` an input of this layer's width."""
        return student.new(cls, data=zeros), None, None, None


def true_forward(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    return ctx.layer.true_forward(ctx.truth, ctx.cls, X, W=W, b=b)


def true_jacobian(ctx: ItemContext, X, W=None, b=None) -> Band:
    """The N×K×D Jacobian (the kind's: with the band an element-wise ε rule spans on its diagonal)."""
    return ctx.layer.jacobian(ctx, X, W, b)


def diagonal(d: np.ndarray) -> np.ndarray:
    return np.einsum("nk,kj->nkj", d, np.eye(d.shape[1]))


def new_layer(ctx: ItemContext, X: np.ndarray, k: int, *, need_bias: bool = True) -> tuple[ObjectHandle, np.ndarray | None, np.ndarray | None]:
    """A fresh student layer for the input X; a fully connected one gets our W and b (or we read the student's).

    Where the biases do not matter (gradient, backward), a layer whose biases can be neither set
    nor read is still graded, with the grader's b standing for them.
    """
    return ctx.layer.new_layer(ctx, X, k, need_bias)


def stored_layer(ctx: ItemContext, X: np.ndarray, k: int) -> tuple[ObjectHandle, np.ndarray, np.ndarray, str]:
    """A student layer whose stored input and output are the true ones, so a wrong forward costs nothing here."""
    cls, student = ctx.cls, ctx.student
    layer, W, b = new_layer(ctx, X, k, need_bias=False)
    if student.has(cls, "setPrevIn") and student.has(cls, "setPrevOut"):
        # Their own forward first, for a layer that also keeps copies of its own (self.prev_out);
        # then the true input and output, so that a wrong forward costs nothing here.
        try:
            student.call(layer, cls, "forward", X)
        except StudentFailure as failure:
            if failure.during != f"{cls.name}.forward()":  # the constructor failed: that is this check's answer
                raise
        student.tell(layer, cls, "setPrevIn", X)
        student.tell(layer, cls, "setPrevOut", true_forward(ctx, X, W, b))
        return layer, W, b, ""
    array_of(student.call(layer, cls, "forward", X), f"{cls.name}.forward() (needed before gradient())")
    return layer, W, b, "without setPrevIn/setPrevOut, gradient() was judged after your own forward()"


def as_jacobian(ctx: ItemContext, got: np.ndarray, n: int, k: int, d: int) -> np.ndarray | None:
    """The student's gradient() as an N×K×D Jacobian, if it has one of the spec's accepted forms."""
    forms = ctx.cls.options.gradient_forms
    if "diagonal" in forms and got.shape == (n, k) and k == d:
        return diagonal(got)
    if ("jacobian" in forms or "per_observation" in forms) and got.shape == (n, k, d):
        return got
    if ("jacobian" in forms and n == 1 and got.shape == (k, d)) or ("matrix" in forms and got.shape == (k, d)):
        return np.broadcast_to(got, (n, k, d)).copy()
    return None


def expected_form(ctx: ItemContext, got: np.ndarray, jac: Band) -> Band:
    """The truth in the form the student chose (diagonal or full), or the spec's first form."""
    n, k, d = jac.nominal.shape
    forms = ctx.cls.options.gradient_forms
    if "diagonal" in forms and (got.ndim == 2 and got.shape[0] == n or forms[0] == "diagonal" and got.ndim != 3) and k == d:
        return Band(*(np.einsum("nkk->nk", a) for a in (jac.nominal, jac.lower, jac.upper)))
    if "matrix" in forms and (got.ndim == 2 or forms[0] == "matrix" and got.ndim != 3):
        return Band(*(a[0] for a in (jac.nominal, jac.lower, jac.upper)))
    return jac


def chain(G: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """δ · J for each observation: (N×K) with (N×K×D) gives N×D."""
    return np.einsum("nk,nkd->nd", G, jac)


def chain_band(G: np.ndarray, jac: Band) -> Band:
    """δ · J for every J of the band: entry by entry, its extremes come from the band's ends."""
    ends = [chain(G, jac.lower), chain(G, jac.upper)]
    return Band(chain(G, jac.nominal), np.minimum(*ends), np.maximum(*ends))


def layer_sizes(ctx: ItemContext, single: bool = False) -> tuple[int, int, int]:
    """(N, D_in, K_out): a fully connected layer maps D to K; an activation keeps K."""
    return ctx.layer.sizes(1 if single else N)


def jacobian_points(ctx: ItemContext, single: bool, edges: bool) -> tuple[np.ndarray, int, int, int]:
    """(X, N, D, K) for a gradient or backward check: ordinary, one observation, or the edges."""
    if edges:
        return ctx.layer.edge_points(ctx)
    n, d, k = layer_sizes(ctx, single)
    return layer_input(ctx, n, d), n, d, k


def layer_input(ctx: ItemContext, n: int, d: int) -> np.ndarray:
    return points.layer_input(ctx.rng, ctx.cls, n, d)


# ----------------------------------------------------------------------------- layers: forward


def forward_values(single: bool, name: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        n, d, k = layer_sizes(ctx, single)
        X = layer_input(ctx, n, d)
        layer, W, b = new_layer(ctx, X, k)
        got = ctx.student.value(layer, ctx.cls, "forward", X)
        reference = ReferenceTruth().layer(ctx.cls, X, W=W, b=b)
        expected = cross_checked(ctx, exact(true_forward(ctx, X, W, b)), reference.getPrevOut() if reference else None)
        result = judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, W=W, b=b),
                       sensitivity=lambda: layer_sensitivity(ctx, X, W, b))
        return ctx.layer.forward_judged(ctx, result, layer, X, W, b, got)
    return named(check, name)


def layer_sensitivity(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    """input_sensitivity of the true forward, to X and (a layer with weights) to W and b."""
    if W is not None and b is not None:
        return input_sensitivity(lambda A, V, c: true_forward(ctx, A, V, c), X, W, b)
    return input_sensitivity(lambda A: true_forward(ctx, A, W, b), X)


def forward_edges(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Large |z| beside ordinary values (softmax rows near ±1000 beside small rows)."""
    cls, student = ctx.cls, ctx.student
    X, k = ctx.layer.forward_edge_points(ctx)
    layer, W, b = new_layer(ctx, X, k)
    got = student.value(layer, cls, "forward", X)
    result = judge(ctx, name, weight, got, exact(true_forward(ctx, X, W, b)), situation(ctx, "forward", X=X, W=W, b=b),
                   what=f"your forward at large inputs {X.tolist()}", sensitivity=lambda: layer_sensitivity(ctx, X, W, b))
    return ctx.layer.forward_judged(ctx, result, layer, X, W, b, got)


def forward_stores(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """forward() keeps its input and output, for gradient() to use."""
    missing = getters_missing(ctx, name, weight)
    if missing:
        return missing
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    layer, W, b = new_layer(ctx, X, k)
    return stored_after_forward(ctx, name, weight, layer, X)


def getters_missing(ctx: ItemContext, name: str, weight: float) -> CheckResult | None:
    """A failed storage check when the class cannot say what it stored, else None."""
    cls, student = ctx.cls, ctx.student
    if student.has(cls, "getPrevIn") and student.has(cls, "getPrevOut"):
        return None
    return CheckResult(name, False, weight, outcome="missing",
                       message=f"{cls.name} has no getPrevIn/getPrevOut: inherit the course's Layer base class.")


def stored_after_forward(ctx: ItemContext, name: str, weight: float, layer, X: np.ndarray) -> CheckResult:
    """After forward(X), getPrevIn() must give X and getPrevOut() what forward returned."""
    cls, student = ctx.cls, ctx.student
    out = student.value(layer, cls, "forward", X)
    stored_in = student.value(layer, cls, "getPrevIn")
    stored_out = student.value(layer, cls, "getPrevOut")
    sit = situation(ctx, "stores", X=X)
    first = judge(ctx, name, weight, stored_in, exact(X), sit, what="getPrevIn() after forward(X)")
    if not first.passed:
        first.message = "forward(X) must store X with setPrevIn(X).\n" + first.message
        return first
    second = judge(ctx, name, weight, stored_out, exact(out), sit, what="getPrevOut() after forward(X)")
    if not second.passed:
        second.message = "forward(X) must store its output with setPrevOut(out).\n" + second.message
    return second


def forward_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    layer, _, _ = new_layer(ctx, X, k)
    outcome = ctx.student.call(layer, ctx.cls, "forward", X, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", X)])


# ----------------------------------------------------------------------------- layers: gradient


def gradient_values(single: bool, name: str, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls = ctx.cls
        X, n, d, k = jacobian_points(ctx, single, edges)
        layer, W, b, note = stored_layer(ctx, X, k)
        got = ctx.student.value(layer, cls, "gradient")
        jac = true_jacobian(ctx, X, W, b)
        sit = situation(ctx, "gradient", X=X, W=W, b=b)
        got, expected = in_students_form(ctx, got, jac, n, k, d)
        return judge(ctx, name, weight, got, expected, sit, note=note,
                     what=f"your gradient() (accepted forms: {', '.join(cls.options.gradient_forms)})")
    return named(check, name)


def in_students_form(ctx: ItemContext, got: np.ndarray, jac: Band, n: int, k: int, d: int) -> tuple[np.ndarray, Band]:
    """(answer, truth) to compare, in the form the student returned (their diagonal is compared as an
    N×K diagonal, so a mismatch is reported at their indices), else as full Jacobians."""
    expected = expected_form(ctx, got, jac)
    if got.shape != expected.nominal.shape:
        full = as_jacobian(ctx, got, n, k, d)
        if full is not None:
            return full, jac
    return got, expected


def gradient_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """gradient() against central differences of the student's own forward (or the true one, if theirs is wrong).

    The step and the tolerances follow the precision the student's forward computes in; the
    differences are right within their own truncation and rounding error.
    """
    cls, student = ctx.cls, ctx.student
    _, d, k = layer_sizes(ctx)
    n = 4
    X = layer_input(ctx, n, d)
    layer, W, b, note = stored_layer(ctx, X, k)
    got = student.value(layer, cls, "gradient")
    full = as_jacobian(ctx, got, n, k, d)
    jac = true_jacobian(ctx, X, W, b)
    sit = situation(ctx, "gradient", X=X, W=W, b=b)
    if full is None:
        return judge(ctx, name, weight, got, expected_form(ctx, got, jac), sit,
                     what=f"your gradient() (accepted forms: {', '.join(cls.options.gradient_forms)})")
    measured = lambda fd, noise, fd_true: in_students_form(  # noqa: E731
        ctx, got, finite_difference_band(fd, fd_true, jac.nominal, noise), n, k, d)
    probe = ctx.layer.probe(ctx, X, W, b)
    forward = lambda A: true_forward(ctx, A, W, b)  # noqa: E731
    own = own_values(ctx, probe, "forward", [(X,)], forward(X), (n, k))
    h, rtol, atol = ctx.precision.finite_differences(ctx.tol)
    steps = [_unit(X, i, h) for i in range(d)]
    if own is not None:
        own = own_values(ctx, probe, "forward", [(X + sign * e,) for e in steps for sign in (1, -1)], None, (n, k))
    fd_true = np.stack([(forward(X + e) - forward(X - e)) / (2 * h) for e in steps], axis=-1)
    if own is not None:
        fd = np.stack([(own[2 * i] - own[2 * i + 1]) / (2 * h) for i in range(d)], axis=-1)
        truth = [forward(X + sign * e) for e in steps for sign in (1, -1)]
        noise = np.stack(measured_noise(ctx, own, truth, h), axis=-1)
        source = "central differences of your own forward()"
    else:
        fd, noise = fd_true, 0.0
        source = "central differences of the true forward (your forward() is not right, so it was not used)"
        note = (note + "; " if note else "") + "judged against " + source
    answer, band = measured(fd, noise, fd_true)
    return judge(ctx, name, weight, answer, band, sit, rtol=rtol, atol=atol, what=f"your gradient() vs {source}", note=note)


def _unit(X, i, h):
    e = np.zeros_like(X)
    e[:, i] = h
    return e


# ----------------------------------------------------------------------------- layers: backward


def informative(ctx: ItemContext, own: np.ndarray, true: np.ndarray, X: np.ndarray) -> bool:
    """True when a student's Jacobian is an answer that did work, not a trivial one.

    Degenerate: not finite; every entry the same (zeros, ones, a constant; of an element-wise
    layer, every entry of the diagonal); the same matrix for every observation where the truth's
    differ (an identity, say); or the stored input echoed. A backward built on such a Jacobian
    earns nothing from the own-gradient credit: it would be paid for an answer that did no work.
    """
    if not np.isfinite(own).all():
        return False
    part = ctx.layer.jacobian_entries(own)
    if np.ptp(part) == 0:
        return False
    if own.shape[0] > 1 and np.array_equal(own, np.broadcast_to(own[:1], own.shape)) and not np.allclose(true, true[:1]):
        return False
    return not (part.shape == X.shape and np.allclose(part, X))


def own_jacobian(ctx: ItemContext, got: np.ndarray, n: int, k: int, d: int) -> np.ndarray | None:
    """The student's gradient() as the Jacobian their backward() may chain: any form the grader reads.

    Beyond the spec's accepted forms, an N×K answer of a layer that keeps its width is read as the
    diagonal it stands for (a softmax gradient() that returns only g(1 − g) is wrong, and judged so
    in its own item; a backward() that applies the chain rule to it has done its own job)."""
    own = as_jacobian(ctx, got, n, k, d)
    if own is None and got.shape == (n, k) and k == d:
        return diagonal(got)
    if own is None and got.shape == (n, k, d):
        return got
    return own


def _is_diagonal(jac: np.ndarray) -> bool:
    """True when every observation's matrix is square and zero off its diagonal."""
    if jac.ndim != 3 or jac.shape[1] != jac.shape[2]:
        return False
    return not (jac * (1 - np.eye(jac.shape[1]))).any()


def own_chain_credit(ctx: ItemContext, layer, X: np.ndarray, k: int, jac: Band, deltas: list[np.ndarray]) -> bool:
    """True when backward() applies the chain rule to the student's own gradient(): for two
    different δ its answers are δ · J_own, and J_own is an informative Jacobian of the layer's shape."""
    cls, student = ctx.cls, ctx.student
    if not student.has(cls, "gradient"):
        return False
    try:
        outcome = student.call(layer, cls, "gradient")
    except StudentFailure:  # gradient() hangs: there is nothing to credit
        return False
    n, d = X.shape
    own = own_jacobian(ctx, outcome.value, n, k, d) if outcome.ok else None
    if own is None or not informative(ctx, own, jac.nominal, X):
        return False
    answers = own_values(ctx, layer, "backward", [(G,) for G in deltas], None, (n, d))
    if answers is None:
        return False
    rtol, atol = ctx.precision.values(ctx.tol)
    return all(compare(a, chain(G, own), rtol=rtol, atol=atol).passed for a, G in zip(answers, deltas))


def backward_values(single: bool, name: str, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        X, n, d, k = jacobian_points(ctx, single, edges)
        G = points.upstream(ctx.rng, n, k)
        layer, W, b, note = stored_layer(ctx, X, k)
        got = student.value(layer, cls, "backward", G)
        jac = true_jacobian(ctx, X, W, b)
        result = judge(ctx, name, weight, got, chain_band(G, jac),
                       situation(ctx, "backward", X=X, W=W, b=b, G=G, extra={"jacobian": jac.nominal}), note=note)
        result = ctx.layer.backward_judged(ctx, result, X, W, b, G, got)
        if not result.passed and own_chain_credit(ctx, layer, X, k, jac, [G, points.upstream(ctx.rng, n, k)]):
            return CheckResult(name, True, weight, note=f"backward() applies the chain rule correctly to your gradient(), "
                                                        f"which is not right: see {cls.name}.gradient. Full marks here.")
        return result
    return named(check, name)


def backward_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    G = points.upstream(ctx.rng, n, k)
    layer, _, _, _ = stored_layer(ctx, X, k)
    outcome = ctx.student.call(layer, ctx.cls, "backward", G, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.backward()")
    return unchanged(ctx, name, weight, outcome, [("gradIn", G)])


def backward_after_forward(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """The usual flow, forward(X) then backward(δ), with no help from setPrevIn."""
    cls, student = ctx.cls, ctx.student
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    G = points.upstream(ctx.rng, n, k)
    layer, W, b = new_layer(ctx, X, k, need_bias=False)
    note = ""
    if not student.call(layer, cls, "forward", X).ok and student.has(cls, "setPrevIn") and student.has(cls, "setPrevOut"):
        # forward() is judged elsewhere: when it fails, backward() is judged on the true stored state
        student.tell(layer, cls, "setPrevIn", X)
        student.tell(layer, cls, "setPrevOut", true_forward(ctx, X, W, b))
        note = "your forward() gave no usable answer, so backward() was judged after setPrevIn/setPrevOut instead"
    got = student.value(layer, cls, "backward", G)
    jac = true_jacobian(ctx, X, W, b)
    result = judge(ctx, name, weight, got, chain_band(G, jac),
                   situation(ctx, "backward", X=X, W=W, b=b, G=G, extra={"jacobian": jac.nominal}), note=note)
    result = ctx.layer.backward_judged(ctx, result, X, W, b, G, got)
    if not result.passed and own_chain_credit(ctx, layer, X, k, jac, [G, points.upstream(ctx.rng, n, k)]):
        return CheckResult(name, True, weight, note="after forward(), backward() applies the chain rule correctly to your own gradient().")
    return result


def table(prefix: str) -> dict[str, dict]:
    """{method: {check name: function}} of a layer kind; each function named `<prefix>.<method>.<check>`."""
    functions = {
        "forward": {"values": forward_values(False, f"{prefix}.forward.values"),
                    "single_observation": forward_values(True, f"{prefix}.forward.single_observation"),
                    "edges": forward_edges, "stores_input_output": forward_stores, "input_not_mutated": forward_unchanged},
        "gradient": {"jacobian": gradient_values(False, f"{prefix}.gradient.jacobian"),
                     "single_observation": gradient_values(True, f"{prefix}.gradient.single_observation"),
                     "finite_differences": gradient_finite_differences,
                     "edges": gradient_values(False, f"{prefix}.gradient.edges", edges=True)},
        "backward": {"chain_rule": backward_values(False, f"{prefix}.backward.chain_rule"),
                     "single_observation": backward_values(True, f"{prefix}.backward.single_observation"),
                     "after_forward": backward_after_forward,
                     "edges": backward_values(False, f"{prefix}.backward.edges", edges=True),
                     "gradIn_not_mutated": backward_unchanged},
    }
    return functions
