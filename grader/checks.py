"""The checks of every kind of item: `grader/check_table.py` names them, this module runs them.

A check function gets an `ItemContext`, asks the student's code for numbers through
`StudentCode`, computes what is expected from the SymPy truth in this process, and returns a
`CheckResult`. It may raise `StudentFailure` (the runner turns that into a failed check with
the student's error); it never judges anything inside the sandbox.

Three principles hold for every check:

- Only work earns points. Test points mix ordinary values with extreme ones, so a constant
  answer cannot match; auxiliary checks pay only as far as the values are right
  (`check_table.py`); backward() earns the own-gradient credit below only when it really
  applies the chain rule to a Jacobian that is not degenerate.
- Nothing off for what the slides do not ask. Wherever ε enters, every ε in the spec's range
  (added, or by clipping ŷ) is right: values are judged against the band the range spans
  (`SymbolicTruth.*_band`). Inputs are float arrays; lists are not graded.
- Judge at the precision the student computed in (`grader/precision.py`): tolerances, the
  finite-difference step and the diagnoses follow the coarsest dtype the check's answers had.

No double penalty: `gradient()` and `backward()` are judged on the true stored input and output
(set with setPrevIn/setPrevOut where the class has them), and `backward()` passes when it
applies the chain rule correctly to the student's own `gradient()`, even a wrong one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from grader import points
from grader.check_table import CHECK_TABLE
from grader.compare import compare
from grader.diagnose import Situation, diagnose
from grader.precision import Precision, precision_of
from grader.results import CheckResult
from grader.reference_truth import ReferenceTruth
from grader.sandbox import ObjectHandle
from grader.spec import ClassSpec, Item, Tolerance
from grader.student import StudentCode, StudentFailure, array_of
from grader.symbolic import Band, SymbolicTruth

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

    @property
    def precision(self) -> Precision:
        """The coarsest precision of the student's answers in this check so far."""
        return self.student.precision


# ----------------------------------------------------------------------------- judging


def judge(ctx: ItemContext, name: str, weight: float, got: np.ndarray, expected, situation: Situation, *,
          rtol: float | None = None, atol: float | None = None, what: str = "your result", note: str = "",
          sensitivity: np.ndarray | None = None) -> CheckResult:
    """Compare at the answer's precision; on a mismatch, name the mistake the numbers support.

    `expected` is an array, or a `Band` whose interval holds every right answer. `sensitivity`
    (input_sensitivity) widens it by what holding the inputs at the answer's precision moves the rule.
    """
    band = expected if isinstance(expected, Band) else Band(expected, expected, expected)
    precision = ctx.precision
    if sensitivity is not None:
        spread = np.broadcast_to(precision.propagated(sensitivity), np.shape(band.nominal))
        band = Band(band.nominal, np.minimum(band.lower, band.nominal) - spread, np.maximum(band.upper, band.nominal) + spread)
    value_rtol, value_atol = precision.values(ctx.tol)
    rtol = value_rtol if rtol is None else rtol
    atol = value_atol if atol is None else atol
    note = _with_precision_note(note, precision, situation.method)
    result = compare(got, band.nominal, rtol=rtol, atol=atol, what=what, lower=band.lower, upper=band.upper)
    if result.passed:
        return CheckResult(name, True, weight, note=note)
    diagnosis = diagnose(got, band.nominal, situation, rtol=rtol, atol=atol, lower=band.lower, upper=band.upper)
    return CheckResult(name, False, weight, message=result.message, diagnosis=diagnosis, note=note,
                       details=_details(got, band.nominal))


def _with_precision_note(note: str, precision: Precision, method: str) -> str:
    if not precision.reduced:
        return note
    if precision.judged_as != precision.name:
        said = (f"your {method}() computes in {precision.name}: judged at {precision.judged_as}'s precision, the coarsest "
                f"the grader allows, so {precision.name}'s own rounding errors count as differences")
    else:
        said = (f"your {method}() computes in {precision.name}: judged with {precision.name}'s rounding errors allowed, "
                "which costs nothing where the answer is right at it")
    return f"{note}; {said}" if note else said


def _details(got, expected) -> dict:
    """What a wrong answer leaves for the reports: its digest (grader/shared_answers.py), and the
    arrays themselves (heatmaps, got and expected) when they are small."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    digest, constant = answer_digest(got)
    out = {"answer": digest, "answer_constant": constant}
    if got.size <= 400 and expected.size <= 400:
        out.update({"got": json_numbers(got), "expected": json_numbers(expected)})
    return out


def answer_digest(got: np.ndarray) -> tuple[str, bool]:
    """(a short hash of the answer rounded to 8 significant digits, whether all its entries are one number).

    Two students' equal answers on the same test points have equal digests, whatever rounding
    noise their code adds below that; a constant answer (zeros, ones) is one anybody can give."""
    values = [f"{v:.8g}" for v in (np.asarray(got, dtype=float) + 0.0).ravel()]  # + 0.0: −0 is 0
    text = f"{np.shape(got)}|" + "|".join(values)
    return hashlib.sha256(text.encode()).hexdigest()[:16], len(set(values)) <= 1


def json_numbers(a: np.ndarray):
    """Nested lists with NaN and ±inf as None: strict JSON has no such numbers."""
    return np.where(np.isfinite(a), a, None).tolist() if a.ndim else (float(a) if np.isfinite(a) else None)


def cross_checked(ctx: ItemContext, expected: Band, reference) -> Band:
    """Return the symbolic truth after checking that the reference implementation agrees with it.

    The two ground truths are kept in agreement by the test suite; a disagreement here is a
    fault of the grader (a spec whose formula no longer matches reference/), never the student's.
    """
    if reference is not None and not compare(reference, expected.nominal, rtol=ctx.tol.rtol, atol=ctx.tol.atol,
                                             lower=expected.lower, upper=expected.upper).passed:
        ctx.problems.append(f"ground truths disagree for {ctx.item.name}: reference/ and the spec's SymPy definition differ; "
                            "fix the spec or the reference")
    return expected


def input_sensitivity(f, *arrays: np.ndarray) -> np.ndarray:
    """Σ over every entry x of the inputs of |∂f/∂x|·|x|, entry by entry of f's value: how far the
    rule moves when its inputs are rounded relative to their size (Precision.propagated). Central
    differences of the true rule in float64, with a step relative to each input."""
    total = np.zeros(np.shape(f(*arrays)), dtype=float)
    for i, A in enumerate(arrays):
        A = np.asarray(A, dtype=float)
        for idx in np.ndindex(A.shape):
            x = float(A[idx])
            if x == 0.0 or not np.isfinite(x):
                continue
            h = 1e-6 * max(1.0, abs(x))
            moved = []
            for sign in (1, -1):
                B = A.copy()
                B[idx] = x + sign * h
                moved.append(np.asarray(f(*arrays[:i], B, *arrays[i + 1:]), dtype=float))
            with np.errstate(invalid="ignore", over="ignore"):
                total += np.nan_to_num(np.abs(moved[0] - moved[1]) / (2 * h), nan=0.0, posinf=0.0) * abs(x)
    return total


def layer_sensitivity(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    """input_sensitivity of the true forward, to X and (a fully connected layer) to W and b."""
    if ctx.cls.kind == "fully_connected" and W is not None and b is not None:
        return input_sensitivity(lambda A, V, c: true_forward(ctx, A, V, c), X, W, b)
    return input_sensitivity(lambda A: true_forward(ctx, A, W, b), X)


def exact(value) -> Band:
    """A truth with no ε in it: one right answer."""
    return Band(value, value, value)


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


def finite_difference_band(fd: np.ndarray, fd_true: np.ndarray, true_derivative: np.ndarray, noise: float) -> Band:
    """Central differences as a measurement: right within their truncation error (how far the
    same differences of the truth are from the true derivative) and their rounding noise."""
    with np.errstate(invalid="ignore"):
        error = np.nan_to_num(np.abs(fd_true - true_derivative), nan=0.0, posinf=0.0) + noise
    return Band(fd, fd - error, fd + error)


# ----------------------------------------------------------------------------- layers: setup


def true_forward(ctx: ItemContext, X, W=None, b=None) -> np.ndarray:
    return ctx.truth.layer_forward(ctx.cls, X, W=W, b=b)


def true_jacobian(ctx: ItemContext, X, W=None, b=None) -> Band:
    """The N×K×D Jacobian; for an element-wise layer with the band its ε rule spans on the diagonal."""
    if ctx.cls.kind != "elementwise":
        return exact(ctx.truth.layer_jacobian(ctx.cls, X, W=W, b=b))
    band = ctx.truth.elementwise_derivative_band(ctx.cls, X)
    return Band(*(_diagonal(a) for a in (band.nominal, band.lower, band.upper)))


def _diagonal(d: np.ndarray) -> np.ndarray:
    return np.einsum("nk,kj->nkj", d, np.eye(d.shape[1]))


def new_layer(ctx: ItemContext, X: np.ndarray, k: int, *, need_bias: bool = True) -> tuple[ObjectHandle, np.ndarray | None, np.ndarray | None]:
    """A fresh student layer for the input X; a fully connected one gets our W and b (or we read the student's).

    Where the biases do not matter (gradient, backward), a layer whose biases can be neither set
    nor read is still graded, with the grader's b standing for them.
    """
    cls, student = ctx.cls, ctx.student
    d = X.shape[1]
    if cls.kind != "fully_connected":
        return student.new(cls, data=X), None, None
    return student.fully_connected(cls, *points.weights(ctx.rng, d, k), need_bias=need_bias)


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
    forms = ctx.cls.gradient_forms
    if "diagonal" in forms and got.shape == (n, k) and k == d:
        return _diagonal(got)
    if ("jacobian" in forms or "per_observation" in forms) and got.shape == (n, k, d):
        return got
    if ("jacobian" in forms and n == 1 and got.shape == (k, d)) or ("matrix" in forms and got.shape == (k, d)):
        return np.broadcast_to(got, (n, k, d)).copy()
    return None


def expected_form(ctx: ItemContext, got: np.ndarray, jac: Band) -> Band:
    """The truth in the form the student chose (diagonal or full), or the spec's first form."""
    n, k, d = jac.nominal.shape
    forms = ctx.cls.gradient_forms
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
        layer, W, b = new_layer(ctx, X, k)
        got = ctx.student.value(layer, ctx.cls, "forward", X)
        reference = ReferenceTruth().layer(ctx.cls, X, W=W, b=b)
        expected = cross_checked(ctx, exact(true_forward(ctx, X, W, b)), reference.getPrevOut() if reference else None)
        result = judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, W=W, b=b),
                       sensitivity=layer_sensitivity(ctx, X, W, b))
        return setters_checked(ctx, result, layer, X, W, b, got)
    return check


def setters_checked(ctx: ItemContext, result: CheckResult, layer, X, W, b, got) -> CheckResult:
    """A fully connected forward that is wrong because setWeights/setBiases did not take effect
    (they set another attribute) is named so: read back, the layer holds other values, and its
    forward is right for those."""
    cls, student = ctx.cls, ctx.student
    if result.passed or cls.kind != "fully_connected":
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
        result.diagnosis = (f"{' and '.join(ignored)}() did not change what forward() uses (read back, the layer still holds "
                            "its own values): does it set another attribute, e.g. self.biases where forward uses self.__biases?")
    return result


def forward_edges(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Large |z| beside ordinary values (softmax rows near ±1000 beside small rows)."""
    cls, student = ctx.cls, ctx.student
    if cls.kind == "fully_connected":
        X = np.array([[300.0, -200.0, 1e3, 0.0, -1e3], [0.4, -1.2, 2.0, 0.7, -0.3]])
    else:
        X = points.edge_input(cls)
    layer, W, b = new_layer(ctx, X, K if cls.kind == "fully_connected" else X.shape[1])
    got = student.value(layer, cls, "forward", X)
    result = judge(ctx, name, weight, got, exact(true_forward(ctx, X, W, b)), situation(ctx, "forward", X=X, W=W, b=b),
                   what=f"your forward at large inputs {X.tolist()}", sensitivity=layer_sensitivity(ctx, X, W, b))
    return setters_checked(ctx, result, layer, X, W, b, got)


def forward_stores(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """forward() keeps its input and output, for gradient() to use."""
    missing = getters_missing(ctx, name, weight)
    if missing:
        return missing
    n, d, k = layer_sizes(ctx)
    X = layer_input(ctx, n, d)
    layer, W, b = new_layer(ctx, X, k)
    return stored_after_forward(ctx, name, weight, layer, X)


def input_stores(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """The input layer's forward() keeps its input and output too: it is a layer like the others."""
    missing = getters_missing(ctx, name, weight)
    if missing:
        return missing
    data = points.input_data(ctx.rng, N, D)
    return stored_after_forward(ctx, name, weight, ctx.student.new(ctx.cls, data), data)


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


def gradient_values(single: bool, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls = ctx.cls
        X, n, d, k = jacobian_points(ctx, single, edges)
        layer, W, b, note = stored_layer(ctx, X, k)
        got = ctx.student.value(layer, cls, "gradient")
        jac = true_jacobian(ctx, X, W, b)
        sit = situation(ctx, "gradient", X=X, W=W, b=b)
        got, expected = in_students_form(ctx, got, jac, n, k, d)
        return judge(ctx, name, weight, got, expected, sit, note=note,
                     what=f"your gradient() (accepted forms: {', '.join(cls.gradient_forms)})")
    return check


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
                     what=f"your gradient() (accepted forms: {', '.join(cls.gradient_forms)})")
    measured = lambda fd, noise, fd_true: in_students_form(  # noqa: E731
        ctx, got, finite_difference_band(fd, fd_true, jac.nominal, noise), n, k, d)
    probe = student.fully_connected(cls, W, b, need_bias=False)[0] if cls.kind == "fully_connected" else student.new(cls, data=X)
    forward = lambda A: true_forward(ctx, A, W, b)  # noqa: E731
    own = _own_values(ctx, probe, "forward", [(X,)], forward(X), (n, k))
    h, rtol, atol = ctx.precision.finite_differences(ctx.tol)
    steps = [_unit(X, i, h) for i in range(d)]
    if own is not None:
        own = _own_values(ctx, probe, "forward", [(X + sign * e,) for e in steps for sign in (1, -1)], None, (n, k))
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


def measured_noise(ctx: ItemContext, own: list[np.ndarray], truth: list[np.ndarray], h: float) -> list[np.ndarray]:
    """The rounding noise of each central difference of the student's own answers at ±h.

    `own` and `truth` hold f(x + h) and f(x − h) in turn. The student's difference is the true one
    plus (err₊ − err₋)/2h, where err is how far each answer is from the truth: that is the noise,
    measured entry by entry, and never more than the precision's rounding bound allows (an answer
    noisier than rounding makes does not widen its own band)."""
    bound = ctx.precision.rounding(max(np.abs(v).max() for v in own)) / h
    noise = []
    for i in range(0, len(own), 2):
        with np.errstate(invalid="ignore"):
            error = np.abs((own[i] - truth[i]) - (own[i + 1] - truth[i + 1])) / (2 * h)
        noise.append(np.minimum(np.nan_to_num(error, nan=bound, posinf=bound), bound))
    return noise


def _own_values(ctx: ItemContext, obj, method: str, calls: list[tuple], truth, shape) -> list[np.ndarray] | None:
    """The student's answers to `calls` if they all are arrays of `shape` (and the first is the truth,
    when one is given), else None: a wrong or broken method is not used to judge another."""
    try:
        outcomes = ctx.student.calls(obj, ctx.cls, method, calls)
    except StudentFailure:  # it crashes or hangs: judge against the truth instead
        return None
    if not all(o.ok and (o.value.shape == shape or shape == () and o.value.size == 1) for o in outcomes):
        return None
    values = [o.value.reshape(shape) for o in outcomes]
    if truth is not None:
        rtol, atol = precision_of(outcomes[0].dtype).values(ctx.tol)
        if not compare(values[0], truth, rtol=rtol, atol=atol).passed:
            return None
    return values


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
    part = np.einsum("nkk->nk", own) if ctx.cls.kind == "elementwise" or _is_diagonal(own) else own
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
        return _diagonal(got)
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
    answers = _own_values(ctx, layer, "backward", [(G,) for G in deltas], None, (n, d))
    if answers is None:
        return False
    rtol, atol = ctx.precision.values(ctx.tol)
    return all(compare(a, chain(G, own), rtol=rtol, atol=atol).passed for a, G in zip(answers, deltas))


def backward_values(single: bool, edges: bool = False):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        X, n, d, k = jacobian_points(ctx, single, edges)
        G = points.upstream(ctx.rng, n, k)
        layer, W, b, note = stored_layer(ctx, X, k)
        got = student.value(layer, cls, "backward", G)
        jac = true_jacobian(ctx, X, W, b)
        result = judge(ctx, name, weight, got, chain_band(G, jac),
                       situation(ctx, "backward", X=X, W=W, b=b, G=G, extra={"jacobian": jac.nominal}), note=note)
        if not result.passed and own_chain_credit(ctx, layer, X, k, jac, [G, points.upstream(ctx.rng, n, k)]):
            return CheckResult(name, True, weight, note=f"backward() applies the chain rule correctly to your gradient(), "
                                                        f"which is not right: see {cls.name}.gradient. Full marks here.")
        return result
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
    if not result.passed and own_chain_credit(ctx, layer, X, k, jac, [G, points.upstream(ctx.rng, n, k)]):
        return CheckResult(name, True, weight, note="after forward(), backward() applies the chain rule correctly to your own gradient().")
    return result


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
        expected = cross_checked(ctx, exact(ctx.truth.input_forward(data, X, cls.ddof)), reference.getPrevOut() if reference else None)
        what = {"batch": "forward(X) on the constructor's data", "constant_column": "forward with a constant column (σ = 0 counts as 1)",
                "new_data": "forward of new data (the constructor's μ and σ apply)", "single": "forward of one observation"}[kind]
        sensitivity = input_sensitivity(lambda A, B: ctx.truth.input_forward(B, A, cls.ddof), X, data)
        return judge(ctx, name, weight, got, expected, situation(ctx, "forward", X=X, data=data), what=what, sensitivity=sensitivity)
    return check


def input_unchanged(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    data = points.input_data(ctx.rng, N, D)
    original = data.copy()
    layer = ctx.student.new(ctx.cls, data)
    outcome = ctx.student.call(layer, ctx.cls, "forward", data, return_args=True)
    array_of(outcome, f"{ctx.cls.name}.forward()")
    return unchanged(ctx, name, weight, outcome, [("X", original)])


# ----------------------------------------------------------------------------- objectives


def objective_truth(ctx: ItemContext, method: str, Y: np.ndarray, Yhat: np.ndarray) -> Band:
    """J or ∂J/∂ŷ with the band every accepted ε spans."""
    if method == "eval":
        return ctx.truth.objective_value_band(ctx.cls, Y, Yhat)
    return ctx.truth.objective_gradient_band(ctx.cls, Y, Yhat)


def objective_values(method: str, single: bool):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_pair(ctx.rng, cls, 1 if single else N, K)
        got = student.value(student.new(cls), cls, method, Y, Yhat)
        reference = ReferenceTruth().objective(cls)
        expected = cross_checked(ctx, objective_truth(ctx, method, Y, Yhat), getattr(reference, method)(Y, Yhat) if reference else None)
        return judge(ctx, name, weight, _as_scalar(got) if method == "eval" else got, expected, situation(ctx, method, Y=Y, Yhat=Yhat))
    return check


def _as_scalar(got: np.ndarray) -> np.ndarray:
    """A 1×1 or (1,) array is as good as a number for J."""
    return got.reshape(()) if got.size == 1 else got


def objective_edges(method: str):
    """ŷ exactly 0 and 1 beside ordinary estimates. There the slides ask for finite results: J
    within the band of every accepted ε (the smallest 1e-16), ∂J/∂ŷ any finite value where the
    rule has none at ε = 0; the ordinary entries are judged as usual.

    J is one number, and the band of the extreme entries is wide (−ln ε from 13.8 to 36.8), so J
    is asked twice, with other ordinary estimates beside the same extreme ones: the difference of
    the two answers, where the student's ε cancels, must be the truth's. A constant, or a loss of
    another formula that happens to land in the band, cannot pass.
    """
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        cls, student = ctx.cls, ctx.student
        Y, Yhat = points.objective_edges(cls)
        sit = situation(ctx, method, Y=Y, Yhat=Yhat)
        if method == "gradient":
            got = student.value(student.new(cls), cls, method, Y, Yhat)
            return judge(ctx, name, weight, got, objective_truth(ctx, method, Y, Yhat), sit,
                         what=f"∂J/∂ŷ at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
        Y2, Yhat2 = points.objective_edges(cls, variant=1)
        obj = student.new(cls)
        first, second = (_as_scalar(student.value(obj, cls, method, Ya, Yb)) for Ya, Yb in ((Y, Yhat), (Y2, Yhat2)))
        if first.shape or second.shape:  # not a number: say so against the first point set alone
            return judge(ctx, name, weight, first, objective_truth(ctx, method, Y, Yhat), sit,
                         what=f"J at ŷ = {Yhat.tolist()}, y = {Y.tolist()}")
        difference = ctx.truth.objective_value_difference_band(cls, ((Y, Yhat), (Y2, Yhat2)))
        rounding = 2 * ctx.precision.rounding(max(abs(float(first)), abs(float(second)))) if np.isfinite(first + second) else 0.0
        bands = [objective_truth(ctx, method, Y, Yhat), objective_truth(ctx, method, Y2, Yhat2),
                 Band(difference.nominal, difference.lower - rounding, difference.upper + rounding)]  # both answers' rounding
        band = Band(*(np.array([getattr(b, part) for b in bands], dtype=float) for part in ("nominal", "lower", "upper")))
        with np.errstate(invalid="ignore"):
            got = np.array([first, second, first - second])
        result = judge(ctx, name, weight, got, band, sit,
                       what=f"[J₁, J₂, J₁ − J₂] for ŷ₁ = {Yhat.tolist()} and ŷ₂ = {Yhat2.tolist()} (the last row differs), "
                            f"y = {Y.tolist()}")
        if not result.passed:  # the mistakes are J's: named from the first point set
            rtol, atol = ctx.precision.values(ctx.tol)
            result.diagnosis = diagnose(first, bands[0].nominal, sit, rtol=rtol, atol=atol, lower=bands[0].lower, upper=bands[0].upper)
        return result
    return check


def objective_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """∂J/∂ŷ against central differences of the student's own eval, scaled back to per-entry."""
    cls, student = ctx.cls, ctx.student
    n, k = 3, K
    Y, Yhat = points.objective_pair(ctx.rng, cls, n, k)
    obj = student.new(cls)
    got = student.value(obj, cls, "gradient", Y, Yhat)
    scale = {"mean": n * k, "mean_rows": n, "sum": 1}[cls.reduction]
    value = lambda A: ctx.truth.objective_value(cls, Y, A)  # noqa: E731
    own = _own_values(ctx, obj, "eval", [(Y, Yhat)], value(Yhat), ()) if student.has(cls, "eval") else None
    h, rtol, atol = ctx.precision.finite_differences(ctx.tol)
    steps = [_entry(Yhat, idx, h) for idx in np.ndindex(n, k)]
    if own is not None:
        own = _own_values(ctx, obj, "eval", [(Y, Yhat + sign * e) for e in steps for sign in (1, -1)], None, ())
    fd_true = np.array([(value(Yhat + e) - value(Yhat - e)) / (2 * h) for e in steps]).reshape(n, k) * scale
    note = ""
    if own is not None:
        fd = np.array([(own[2 * i] - own[2 * i + 1]) / (2 * h) for i in range(n * k)]).reshape(n, k) * scale
        truth = [value(Yhat + sign * e) for e in steps for sign in (1, -1)]
        noise = np.array(measured_noise(ctx, own, truth, h)).reshape(n, k) * scale
        source = "central differences of your own eval()"
    else:
        fd, noise = fd_true, 0.0
        source = "central differences of the true J (your eval() is not right, so it was not used)"
        note = "judged against " + source
    band = finite_difference_band(fd, fd_true, ctx.truth.objective_gradient(cls, Y, Yhat), noise)
    return judge(ctx, name, weight, got, band, situation(ctx, "gradient", Y=Y, Yhat=Yhat), rtol=rtol, atol=atol,
                 what=f"your gradient() vs {source}, times the {scale} entries J averages over", note=note)


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

_LAYER_FUNCTIONS = {
    "forward": {"values": forward_values(single=False), "single_observation": forward_values(single=True),
                "edges": forward_edges, "stores_input_output": forward_stores, "input_not_mutated": forward_unchanged},
    "gradient": {"jacobian": gradient_values(single=False), "single_observation": gradient_values(single=True),
                 "finite_differences": gradient_finite_differences, "edges": gradient_values(single=False, edges=True)},
    "backward": {"chain_rule": backward_values(single=False), "single_observation": backward_values(single=True),
                 "after_forward": backward_after_forward, "edges": backward_values(single=False, edges=True),
                 "gradIn_not_mutated": backward_unchanged},
}
FUNCTIONS = {
    **{(kind, method): table for kind in ("elementwise", "softmax", "fully_connected") for method, table in _LAYER_FUNCTIONS.items()},
    ("input", "forward"): {"values": input_values("batch"), "new_data": input_values("new_data"),
                           "constant_column": input_values("constant_column"), "single_observation": input_values("single"),
                           "stores_input_output": input_stores, "input_not_mutated": input_unchanged},
    ("objective", "eval"): {"values": objective_values("eval", single=False), "single_observation": objective_values("eval", single=True),
                            "edges": objective_edges("eval"), "inputs_not_mutated": objective_unchanged("eval")},
    ("objective", "gradient"): {"values": objective_values("gradient", single=False),
                                "single_observation": objective_values("gradient", single=True),
                                "finite_differences": objective_finite_differences, "edges": objective_edges("gradient"),
                                "inputs_not_mutated": objective_unchanged("gradient")},
}

#: (kind, method) → [(CheckDef, function)]: the table of check_table.py with what runs each check.
CHECKS = {key: [(check, FUNCTIONS[key][check.name]) for check in checks] for key, checks in CHECK_TABLE.items()}
