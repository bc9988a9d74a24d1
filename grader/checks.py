"""The checks of every kind of item, as a registry: (kind, method) → [(check, weight, function)].

A check function gets an `ItemContext`, asks the student's code for numbers through
`StudentCode`, computes what is expected from the SymPy truth in this process, and returns a
`CheckResult`. It may raise `StudentFailure` (the runner turns that into a failed check with
the student's error); it never judges anything inside the sandbox.

No double penalty: `gradient()` and `backward()` are judged on the true stored input and output
(set with setPrevIn/setPrevOut where the class has them), and `backward()` passes when it
applies the chain rule correctly to the student's own `gradient()`, even a wrong one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grader import points
from grader.compare import compare
from grader.diagnose import Situation, diagnose
from grader.results import CheckResult
from grader.reference_truth import ReferenceTruth
from grader.sandbox import ObjectHandle
from grader.spec import ClassSpec, Item, Tolerance
from grader.student import StudentCode, StudentFailure, array_of
from grader.symbolic import SymbolicTruth

N, D, K = points.N, points.D, points.K


@dataclass
class ItemContext:
    """Everything a check of one item needs."""

    item: Item
    student: StudentCode
    truth: SymbolicTruth
    rng: np.random.Generator
    problems: list[str] = field(default_factory=list)  # faults of the grader's own ground truth

    @property
    def cls(self) -> ClassSpec:
        return self.item.cls

    @property
    def tol(self) -> Tolerance:
        return self.item.cls.tolerance


# ----------------------------------------------------------------------------- judging


def judge(ctx: ItemContext, name: str, weight: float, got: np.ndarray, expected: np.ndarray, situation: Situation, *,
          rtol: float | None = None, atol: float | None = None, what: str = "your result", note: str = "",
          alternative: np.ndarray | None = None, alternative_note: str = "") -> CheckResult:
    """Compare, and on a mismatch name the mistake; `alternative` is a second right answer (own-gradient chain)."""
    rtol = ctx.tol.rtol if rtol is None else rtol
    atol = ctx.tol.atol if atol is None else atol
    result = compare(got, expected, rtol=rtol, atol=atol, what=what)
    if result.passed:
        return CheckResult(name, True, weight, note=note)
    if alternative is not None and compare(got, alternative, rtol=rtol, atol=atol).passed:
        return CheckResult(name, True, weight, note=alternative_note)
    details = _details(got, expected)
    diagnosis = diagnose(got, expected, situation, rtol=rtol, atol=atol)
    return CheckResult(name, False, weight, message=result.message, diagnosis=diagnosis, details=details)


def _details(got, expected) -> dict:
    """Small arrays for the reports (heatmaps, got and expected); large ones are left out."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.size > 400 or expected.size > 400:
        return {}
    return {"got": json_numbers(got), "expected": json_numbers(expected)}


def json_numbers(a: np.ndarray):
    """Nested lists with NaN and ±inf as None: strict JSON has no such numbers."""
    return np.where(np.isfinite(a), a, None).tolist() if a.ndim else (float(a) if np.isfinite(a) else None)


def cross_checked(ctx: ItemContext, expected, reference) -> np.ndarray:
    """Return the symbolic truth after checking that the reference implementation agrees with it.

    The two ground truths are kept in agreement by the test suite; a disagreement here is a
    fault of the grader (a spec whose formula no longer matches reference/), never the student's.
    """
    if reference is not None and not compare(reference, expected, rtol=ctx.tol.rtol, atol=ctx.tol.atol).passed:
        ctx.problems.append(f"ground truths disagree for {ctx.item.name}: reference/ and the spec's SymPy definition differ; "
                            "fix the spec or the reference")
    return expected


def unchanged(ctx: ItemContext, name: str, weight: float, outcome, originals: list[tuple[str, np.ndarray]]) -> CheckResult:
    """Check that the call left its input arrays as they were."""
    changed = []
    for (label, original), after in zip(originals, outcome.args_after):
        if after.kind != "array" or after.value.shape != original.shape or not np.array_equal(after.value, original, equal_nan=True):
            changed.append(label)
    if not changed:
        return CheckResult(name, True, weight)
    return CheckResult(name, False, weight, diagnosis="input mutated",
                       message=f"your method changed its input {', '.join(changed)} in place; work on a copy "
                               f"(e.g. `X = np.array(X, dtype=float)`) or use operations that return new arrays.")


# ----------------------------------------------------------------------------- layers: setup


def true_forward(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    return ctx.truth.layer_forward(ctx.cls, X, W=W, b=b)


def true_jacobian(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    return ctx.truth.layer_jacobian(ctx.cls, X, W=W, b=b)


def new_layer(ctx: ItemContext, d: int, k: int) -> tuple[ObjectHandle, np.ndarray | None, np.ndarray | None]:
    """A fresh student layer; a fully connected one gets our W and b (or we read the student's)."""
    cls, student = ctx.cls, ctx.student
    if cls.kind != "fully_connected":
        return student.new(cls), None, None
    return student.fully_connected(cls, *points.weights(ctx.rng, d, k))


def stored_layer(ctx: ItemContext, X: np.ndarray, k: int) -> tuple[ObjectHandle, np.ndarray, np.ndarray, str]:
    """A student layer whose stored input and output are the true ones, so a wrong forward costs nothing here."""
    cls, student = ctx.cls, ctx.student
    layer, W, b = new_layer(ctx, X.shape[1], k)
    if student.has(cls, "setPrevIn") and student.has(cls, "setPrevOut"):
        student.tell(layer, cls, "setPrevIn", X)
        student.tell(layer, cls, "setPrevOut", true_forward(ctx, X, W, b))
        return layer, W, b, ""
    array_of(student.call(layer, cls, "forward", X), f"{cls.name}.forward() (needed before gradient())")
    return layer, W, b, "without setPrevIn/setPrevOut, gradient() was judged after your own forward()"


def as_jacobian(ctx: ItemContext, got: np.ndarray, n: int, k: int, d: int) -> np.ndarray | None:
    """The student's gradient() as an N×K×D Jacobian, if it has one of the spec's accepted forms."""
    forms = ctx.cls.gradient_forms
    if "diagonal" in forms and got.shape == (n, k) and k == d:
        return np.einsum("nk,kj->nkj", got, np.eye(k))
    if ("jacobian" in forms or "per_observation" in forms) and got.shape == (n, k, d):
        return got
    if ("jacobian" in forms and n == 1 and got.shape == (k, d)) or ("matrix" in forms and got.shape == (k, d)):
        return np.broadcast_to(got, (n, k, d)).copy()
    return None


def expected_form(ctx: ItemContext, got: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """The truth in the form the student chose (diagonal or full), or the spec's first form."""
    n, k, d = jac.shape
    forms = ctx.cls.gradient_forms
    if "diagonal" in forms and (got.ndim == 2 and got.shape[0] == n or forms[0] == "diagonal" and got.ndim != 3) and k == d:
        return np.einsum("nkk->nk", jac)
    if "matrix" in forms and (got.ndim == 2 or forms[0] == "matrix" and got.ndim != 3):
        return jac[0]
    return jac


def chain(G: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """δ · J for each observation: (N×K) with (N×K×D) gives N×D."""
    return np.einsum("nk,nkd->nd", G, jac)


def layer_sizes(ctx: ItemContext, single: bool = False) -> tuple[int, int, int]:
    """(N, D_in, K_out): a fully connected layer maps D to K; an activation keeps K."""
    n = 1 if single else N
    if ctx.cls.kind == "fully_connected":
        return n, D, K
    return n, K, K


def jacobian_points(ctx: ItemContext, single: bool, edges: bool) -> tuple[np.ndarray, int, int, int]:
    """(X, N, D, K) for a gradient or backward check: ordinary, one observation, or the edges."""
    if edges and ctx.cls.kind != "fully_connected":
        X = points.edge_input(ctx.cls)
        return X, X.shape[0], X.shape[1], X.shape[1]
    n, d, k = (3, 4, 1) if edges else layer_sizes(ctx, single)  # edges of FC: a single output, where (1,)-shaped slips show
    return layer_input(ctx, n, d), n, d, k


def layer_input(ctx: ItemContext, n: int, d: int) -> np.ndarray:
    return points.layer_input(ctx.rng, ctx.cls, n, d)


def situation(ctx: ItemContext, method: str, **kw) -> Situation:
    return Situation(ctx.cls, method, ctx.truth, **kw)


# ----------------------------------------------------------------------------- layers: forward


def forward_values(single: bool):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        n, d, k = layer_sizes(ctx, single)
        X = layer_input(ctx, n, d)
        layer, W, b = new_layer(ctx, d, k)
        got = ctx.student.value(layer, ctx.cls, "forward", X)
        reference = ReferenceTruth().layer(ctx.cls, X, W=W, b=b)
        expected = cross_checked(ctx, true_forward(ctx, X, W, b), reference.getPrevOut() if reference else None)
        return judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, W=W, b=b))
    return check


def forward_edges(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Large |z| (and rows near ±1000 for softmax), then a plain Python list of ints."""
    cls, student = ctx.cls, ctx.student
    if cls.kind == "fully_connected":
        X = np.array([[300.0, -200.0, 1e3, 0.0, -1e3]])
    else:
        X = points.edge_input(cls)
    layer, W, b = new_layer(ctx, X.shape[1], K if cls.kind == "fully_connected" else X.shape[1])
    got = student.value(layer, cls, "forward", X)
    result = judge(ctx, name, weight, got, true_forward(ctx, X, W, b), situation(ctx, "forward", X=X, W=W, b=b),
                   what=f"your forward at large inputs {X.tolist()}")
    if not result.passed:
        return result
    ints = [[1, -2, 3], [0, 2, -1]] if cls.kind != "fully_connected" else [[1, -2, 3, 0, 2]]
    Xi = np.array(ints, dtype=float)
    layer, W, b = new_layer(ctx, Xi.shape[1], K if cls.kind == "fully_connected" else Xi.shape[1])
    got = student.value(layer, cls, "forward", ints)
    return judge(ctx, name, weight, got, true_forward(ctx, Xi, W, b), situation(ctx, "forward", X=Xi, W=W, b=b),
                 what="your forward of a Python list of ints")


def forward_stores(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """forward() keeps its input and output, for gradient() to use."""
    cls, student = ctx.cls, ctx.student
    if not (student.has(cls, "getPrevIn") and student.has(cls, "getPrevOut")):
        return CheckResult(name, False, weight, outcome="missing",
                           message=f"{cls.name} has no getPrevIn/getPrevOut: inherit the course's Layer base class.")
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    layer, W, b = new_layer(ctx, d, k)
    out = student.value(layer, cls, "forward", X)
    stored_in = student.value(layer, cls, "getPrevIn")
    stored_out = student.value(layer, cls, "getPrevOut")
    sit = situation(ctx, "stores", X=X)
    first = judge(ctx, name, weight, stored_in, X, sit, what="getPrevIn() after forward(X)")
    if not first.passed:
        first.message = "forward(X) must store X with setPrevIn(X).\n" + first.message
        return first
    second = judge(ctx, name, weight, stored_out, out, sit, what="getPrevOut() after forward(X)")
    if not second.passed:
        second.message = "forward(X) must store its output with setPrevOut(out).\n" + second.message
    return second


def forward_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    layer, _, _ = new_layer(ctx, d, k)
    outcome = ctx.student.call(layer, ctx.cls, "forward", X, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", X)])


# ----------------------------------------------------------------------------- layers: gradient


def gradient_values(single: bool, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls = ctx.cls
        X, n, d, k = jacobian_points(ctx, single, edges)
        layer, W, b, note = stored_layer(ctx, X, k)
        got = ctx.student.value(layer, cls, "gradient")
        jac = true_jacobian(ctx, X, W, b)
        full = as_jacobian(ctx, got, n, k, d)
        sit = situation(ctx, "gradient", X=X, W=W, b=b)
        if full is not None:
            return judge(ctx, name, weight, full, jac, sit, note=note)
        return judge(ctx, name, weight, got, expected_form(ctx, got, jac), sit, note=note,
                     what=f"your gradient() (accepted forms: {', '.join(cls.gradient_forms)})")
    return check


def gradient_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """gradient() against central differences of the student's own forward (or the true one, if theirs is wrong)."""
    cls, student, h = ctx.cls, ctx.student, ctx.tol.fd_step
    n, d, k = layer_sizes(ctx)
    n = 4
    X = layer_input(ctx, n, d)
    layer, W, b, note = stored_layer(ctx, X, k)
    got = student.value(layer, cls, "gradient")
    full = as_jacobian(ctx, got, n, k, d)
    if full is None:
        jac = true_jacobian(ctx, X, W, b)
        return judge(ctx, name, weight, got, expected_form(ctx, got, jac), situation(ctx, "gradient", X=X, W=W, b=b),
                     what=f"your gradient() (accepted forms: {', '.join(cls.gradient_forms)})")
    probe = student.fully_connected(cls, W, b)[0] if cls.kind == "fully_connected" else student.new(cls)
    inputs = [(X,)]
    for i in range(d):
        e = np.zeros_like(X)
        e[:, i] = h
        inputs += [(X + e,), (X - e,)]
    try:
        outs = student.calls(probe, cls, "forward", inputs)
    except StudentFailure:  # a forward that crashes or hangs: judge against the true forward instead
        outs = []
    values = [o.value for o in outs]
    own_forward_right = bool(outs) and all(o.ok and o.value.shape == (n, k) for o in outs) and compare(
        values[0], true_forward(ctx, X, W, b), rtol=ctx.tol.rtol, atol=ctx.tol.atol).passed
    if own_forward_right:
        fd = np.stack([(values[1 + 2 * i] - values[2 + 2 * i]) / (2 * h) for i in range(d)], axis=-1)
        source = "central differences of your own forward()"
    else:
        fd = np.stack([(true_forward(ctx, X + _unit(X, i, h), W, b) - true_forward(ctx, X - _unit(X, i, h), W, b)) / (2 * h)
                       for i in range(d)], axis=-1)
        source = "central differences of the true forward (your forward() is not right, so it was not used)"
        note = (note + "; " if note else "") + "judged against " + source
    result = judge(ctx, name, weight, full, fd, situation(ctx, "gradient", X=X, W=W, b=b),
                   rtol=ctx.tol.fd_rtol, atol=ctx.tol.fd_atol, what=f"your gradient() vs {source}", note=note)
    return result


def _unit(X, i, h):
    e = np.zeros_like(X)
    e[:, i] = h
    return e


# ----------------------------------------------------------------------------- layers: backward


def backward_values(single: bool, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        X, n, d, k = jacobian_points(ctx, single, edges)
        G = points.upstream(ctx.rng, n, k)
        layer, W, b, note = stored_layer(ctx, X, k)
        own = None
        if student.has(cls, "gradient"):
            own_outcome = student.call(layer, cls, "gradient")
            if own_outcome.ok:
                full = as_jacobian(ctx, own_outcome.value, n, k, d)
                own = chain(G, full) if full is not None else None
        got = student.value(layer, cls, "backward", G)
        jac = true_jacobian(ctx, X, W, b)
        expected = chain(G, jac)
        return judge(ctx, name, weight, got, expected, situation(ctx, "backward", X=X, W=W, b=b, G=G, extra={"jacobian": jac}),
                     note=note, alternative=own,
                     alternative_note=f"backward() applies the chain rule correctly to your gradient(), which is not right: "
                                      f"see {cls.name}.gradient. Full marks here.")
    return check


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
    layer, W, b = new_layer(ctx, d, k)
    student.tell(layer, cls, "forward", X)  # its value is judged elsewhere; an exception surfaces at the next call
    own = None
    if student.has(cls, "gradient"):
        outcome = student.call(layer, cls, "gradient")
        full = as_jacobian(ctx, outcome.value, n, k, d) if outcome.ok else None
        own = chain(G, full) if full is not None else None
    got = student.value(layer, cls, "backward", G)
    jac = true_jacobian(ctx, X, W, b)
    return judge(ctx, name, weight, got, chain(G, jac), situation(ctx, "backward", X=X, W=W, b=b, G=G, extra={"jacobian": jac}),
                 alternative=own, alternative_note="after forward(), backward() applies the chain rule correctly to your own gradient().")


# ----------------------------------------------------------------------------- input layer


def input_values(kind: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        data = points.input_data(ctx.rng, N, D)
        if kind == "constant_column":
            data[:, 1] = 2.5
        X = {"batch": data, "constant_column": data, "new_data": points.input_data(ctx.rng, 4, D),
             "single": points.input_data(ctx.rng, 1, D)}[kind]
        layer = student.new(cls, data)
        got = student.value(layer, cls, "forward", X)
        reference = ReferenceTruth().layer(cls, X, data=data) if cls.ddof == 1 else None
        expected = cross_checked(ctx, ctx.truth.input_forward(data, X, cls.ddof), reference.getPrevOut() if reference else None)
        what = {"batch": "forward(X) on the constructor's data", "constant_column": "forward with a constant column (σ = 0 counts as 1)",
                "new_data": "forward of new data (the constructor's μ and σ apply)", "single": "forward of one observation"}[kind]
        return judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, data=data), what=what)
    return check


def input_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    data = points.input_data(ctx.rng, N, D)
    original = data.copy()
    layer = ctx.student.new(ctx.cls, data)
    outcome = ctx.student.call(layer, ctx.cls, "forward", data, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", original)])


# ----------------------------------------------------------------------------- objectives


def objective_values(method: str, single: bool):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_pair(ctx.rng, cls, 1 if single else N, K)
        obj = student.new(cls)
        got = student.value(obj, cls, method, Y, Yhat)
        sit = situation(ctx, method, Y=Y, Yhat=Yhat)
        reference = ReferenceTruth().objective(cls)
        if method == "eval":
            expected = np.float64(ctx.truth.objective_value(cls, Y, Yhat))
            got = _as_scalar(got)
        else:
            expected = ctx.truth.objective_gradient(cls, Y, Yhat)
        expected = cross_checked(ctx, expected, getattr(reference, method)(Y, Yhat) if reference else None)
        return judge(ctx, name, weight, got, expected, sit)
    return check


def _as_scalar(got: np.ndarray) -> np.ndarray:
    """A 1×1 or (1,) array is as good as a number for J."""
    return got.reshape(()) if got.size == 1 else got


def objective_edges(method: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_edges(cls)
        obj = student.new(cls)
        got = student.value(obj, cls, method, Y, Yhat)
        sit = situation(ctx, method, Y=Y, Yhat=Yhat)
        if method == "eval":
            expected = np.float64(ctx.truth.objective_value(cls, Y, Yhat))
            result = judge(ctx, name, weight, _as_scalar(got), expected, sit, rtol=1e-3,
                           what=f"J at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
        else:
            expected = ctx.truth.objective_gradient(cls, Y, Yhat)
            # Right forms differ at the edges (ε placed differently): ask for finite values of the right shape and sign.
            finite_expected = np.where(np.isfinite(got) if got.shape == expected.shape else True, expected, np.nan)
            if got.shape == expected.shape and np.isfinite(got).all() and np.all(np.sign(got) * np.sign(expected) >= 0):
                result = CheckResult(name, True, weight)
            else:
                result = judge(ctx, name, weight, got, expected, sit, rtol=np.inf, atol=np.inf,
                               what=f"∂J/∂ŷ at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
                if result.passed:
                    result = CheckResult(name, False, weight, diagnosis="sign flipped at the edges",
                                         message="the signs of your gradient at ŷ = 0 or 1 differ from the truth's.",
                                         details=_details(got, finite_expected))
        if not result.passed:
            return result
        Yl, Yhatl = points.objective_pair(ctx.rng, cls, 3, K)
        got = student.value(student.new(cls), cls, method, Yl.tolist(), Yhatl.tolist())
        if method == "eval":
            return judge(ctx, name, weight, _as_scalar(got), np.float64(ctx.truth.objective_value(cls, Yl, Yhatl)),
                         situation(ctx, method, Y=Yl, Yhat=Yhatl), what="your result for plain Python lists")
        return judge(ctx, name, weight, got, ctx.truth.objective_gradient(cls, Yl, Yhatl),
                     situation(ctx, method, Y=Yl, Yhat=Yhatl), what="your result for plain Python lists")
    return check


def objective_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """∂J/∂ŷ against central differences of the student's own eval, scaled back to per-entry."""
    cls, student, h = ctx.cls, ctx.student, ctx.tol.fd_step
    n, k = 3, K
    Y, Yhat = points.objective_pair(ctx.rng, cls, n, k)
    obj = student.new(cls)
    got = student.value(obj, cls, "gradient", Y, Yhat)
    scale = {"mean": n * k, "mean_rows": n, "sum": 1}[cls.reduction]
    inputs = [(Y, Yhat)]
    for idx in np.ndindex(n, k):
        e = np.zeros_like(Yhat)
        e[idx] = h
        inputs += [(Y, Yhat + e), (Y, Yhat - e)]
    evals = [_as_scalar(array_of(o, f"{cls.name}.eval()")) if student.has(cls, "eval") else None
             for o in (student.calls(obj, cls, "eval", inputs) if student.has(cls, "eval") else [])]
    note = ""
    own_right = bool(evals) and all(e.shape == () for e in evals) and compare(
        evals[0], ctx.truth.objective_value(cls, Y, Yhat), rtol=ctx.tol.rtol, atol=ctx.tol.atol).passed
    if own_right:
        fd = np.array([(evals[1 + 2 * i] - evals[2 + 2 * i]) / (2 * h) for i in range(n * k)]).reshape(n, k) * scale
        source = "central differences of your own eval()"
    else:
        value = lambda A: ctx.truth.objective_value(cls, Y, A)  # noqa: E731
        fd = np.array([(value(Yhat + _entry(Yhat, idx, h)) - value(Yhat - _entry(Yhat, idx, h))) / (2 * h)
                       for idx in np.ndindex(n, k)]).reshape(n, k) * scale
        source = "central differences of the true J (your eval() is not right, so it was not used)"
        note = "judged against " + source
    return judge(ctx, name, weight, got, fd, situation(ctx, "gradient", Y=Y, Yhat=Yhat), rtol=ctx.tol.fd_rtol,
                 atol=ctx.tol.fd_atol, what=f"your gradient() vs {source}, times the {scale} entries J averages over", note=note)


def _entry(A, idx, h):
    e = np.zeros_like(A)
    e[idx] = h
    return e


def objective_unchanged(method: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_pair(ctx.rng, cls, N, K)
        obj = student.new(cls)
        outcome = student.call(obj, cls, method, Y, Yhat, return_args=True)
        array_of(outcome, f"{cls.name}.{method}()")
        return unchanged(ctx, name, weight, outcome, [("Y", Y), ("Yhat", Yhat)])
    return check


# ----------------------------------------------------------------------------- the registry

_LAYER_CHECKS = {
    "forward": [
        ("values", 0.45, forward_values(single=False)),
        ("single_observation", 0.15, forward_values(single=True)),
        ("edges", 0.2, forward_edges),
        ("stores_input_output", 0.1, forward_stores),
        ("input_not_mutated", 0.1, forward_unchanged),
    ],
    "gradient": [
        ("jacobian", 0.45, gradient_values(single=False)),
        ("single_observation", 0.15, gradient_values(single=True)),
        ("finite_differences", 0.25, gradient_finite_differences),
        ("edges", 0.15, gradient_values(single=False, edges=True)),
    ],
    "backward": [
        ("chain_rule", 0.45, backward_values(single=False)),
        ("single_observation", 0.15, backward_values(single=True)),
        ("after_forward", 0.15, backward_after_forward),
        ("edges", 0.1, backward_values(single=False, edges=True)),
        ("gradIn_not_mutated", 0.15, backward_unchanged),
    ],
}

CHECKS = {
    **{(kind, method): checks for kind in ("elementwise", "softmax", "fully_connected") for method, checks in _LAYER_CHECKS.items()},
    ("input", "forward"): [
        ("values", 0.4, input_values("batch")),
        ("new_data", 0.2, input_values("new_data")),
        ("constant_column", 0.2, input_values("constant_column")),
        ("single_observation", 0.1, input_values("single")),
        ("input_not_mutated", 0.1, input_unchanged),
    ],
    ("objective", "eval"): [
        ("values", 0.5, objective_values("eval", single=False)),
        ("single_observation", 0.2, objective_values("eval", single=True)),
        ("edges", 0.2, objective_edges("eval")),
        ("inputs_not_mutated", 0.1, objective_unchanged("eval")),
    ],
    ("objective", "gradient"): [
        ("values", 0.45, objective_values("gradient", single=False)),
        ("single_observation", 0.15, objective_values("gradient", single=True)),
        ("finite_differences", 0.2, objective_finite_differences),
        ("edges", 0.1, objective_edges("gradient")),
        ("inputs_not_mutated", 0.1, objective_unchanged("gradient")),
    ],
}
