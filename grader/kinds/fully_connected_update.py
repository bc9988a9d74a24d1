"""The update step of a fully connected layer: `updateWeights`, judged from W and b read back.

The course writes W ← W − η ∂J/∂W and b ← b − η ∂J/∂b with ∂J/∂W = Xᵀδ/N and ∂J/∂b the column
means of δ (X the stored input, δ = gradIn); the truth is SymPy's (`grader/truth/update_truth.py`),
at the spec's `update_reduction`. Every check sets W and b (setters, or the student's own read
with the getters), stores the input (forward, then setPrevIn/setPrevOut), makes the call the
student's signature takes, reads W and b back with the getters and judges the step they moved by
as the gradient it applied, −(W_after − W)/η stacked over −(b_after − b)/η, against the truth.
A no-op, a constant step, zeros or random numbers apply no right gradient: they earn nothing.

How students write it is read from the method's signature, statically (`call_plan`), and
recorded in `graded_as`: updateWeights(gradIn, eta) under any of the rate's usual names;
updateWeights(gradIn) with a rate of its own (a default, the constructor's self.eta), graded at
the rate its step shows (estimated, with a note); updateWeights(eta) after backward(gradIn)
stored the gradient. A signature that needs more (Adam's t, an optimizer flag defaulting to
Adam) is not the plain update step: it is "not gradable as written", with the reason.
"""
from __future__ import annotations

import ast
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.checking import points
from grader.checking.checks import ItemContext, NotGradable, exact, finite_difference_band, judge, named, own_values, situation
from grader.checking.compare import close, compare
from grader.checking.results import CheckResult, Diagnosis
from grader.checking.student import Chained, StudentFailure, array_of
from grader.sandbox import Outcome
from grader.truth.symbolic import Band
from grader.truth.update_truth import update_gradients

N, D, K = points.N, points.D, points.K
#: Rates no student uses as a default, so that a rate of their own shows (0.1, 0.01, 1e-4 … do not).
ETA = 0.37
ETAS = (0.61, 0.13)

RATE_NAMES = {"eta", "lr", "learningrate", "rate", "alpha", "stepsize", "learnrate"}
OPTIMIZER_NAMES = {"adam", "optimizer", "useadam", "optim", "method"}


# ----------------------------------------------------------------------------- how the student calls it


@dataclass(frozen=True)
class CallPlan:
    """How the grader calls a student's updateWeights, from its signature."""

    shape: str  # "gradIn, eta" | "gradIn" | "eta after backward" | "after backward" | "not gradable"
    written: str = ""  # the signature as the student wrote it
    before_rate: tuple = ()  # default values of the parameters between gradIn and the rate, passed as written
    reason: str = ""

    @property
    def rate_given(self) -> bool:
        return self.shape in ("gradIn, eta", "eta after backward")

    def note(self) -> str:
        if self.shape == "after backward":
            return (f"{self.written} takes neither gradIn nor a rate: graded as backward(gradIn) then {self.written}, "
                    "at the rate its step applies (estimated from the step, the same for W and b)")
        if self.shape == "gradIn":
            return (f"{self.written} takes no learning rate: graded at the rate its step applies (estimated from "
                    "the step, the same for W and b), so a step N times too large cannot be told from a larger rate")
        if self.shape == "eta after backward":
            return f"{self.written}: graded as backward(gradIn), which stores ∂J/∂W and ∂J/∂b, then updateWeights(η)"
        return ""


def _normal(name: str) -> str:
    return name.lower().replace("_", "")


def plan_from_signature(function: ast.FunctionDef | None) -> CallPlan:
    """The call a signature takes (None, not found statically: the course's updateWeights(gradIn, eta))."""
    if function is None:
        return CallPlan("gradIn, eta", "updateWeights(gradIn, eta)")
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
    params = list(zip(positional, defaults))[0 if is_static else 1:]
    written = f"{function.name}({', '.join(ast.unparse(a) if d is None else f'{ast.unparse(a)}={ast.unparse(d)}' for a, d in params)}"
    written += (", *" + args.vararg.arg if args.vararg else "") + ")"
    for arg, default in params + list(zip(args.kwonlyargs, args.kw_defaults)):
        if _normal(arg.arg) in OPTIMIZER_NAMES and default is not None:
            value = _literal(default)
            if value is True or (isinstance(value, str) and "adam" in value.lower()):
                return CallPlan("not gradable", written, reason=f"{written} runs Adam unless told otherwise ({arg.arg}={ast.unparse(default)}); "
                                                                "the plain update step W ← W − η ∂J/∂W is what is graded here")
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if not params:  # the gradient stored by backward(), the rate its own
        if required_kw:
            return CallPlan("not gradable", written, reason=f"{written} needs {', '.join(required_kw)}")
        return CallPlan("after backward", written)
    names = [_normal(a.arg) for a, _ in params]
    if names[0] in RATE_NAMES:
        extra = [a.arg for a, d in params[1:] if d is None] + required_kw
        if extra:
            return CallPlan("not gradable", written, reason=f"{written} needs {', '.join(extra)}, which the plain update step does not have")
        return CallPlan("eta after backward", written)
    rate = next((i for i, n in enumerate(names) if i > 0 and n in RATE_NAMES), None)
    extra = [a.arg for i, (a, d) in enumerate(params) if i > 0 and i != rate and d is None] + required_kw
    if extra:
        return CallPlan("not gradable", written, reason=f"{written} needs {', '.join(extra)}, which the plain update step "
                                                        "W ← W − η ∂J/∂W does not have (Adam's time step?)")
    if rate is None:
        return CallPlan("gradIn", written)
    between = [_literal(d) for _, d in params[1:rate]]
    if any(v is _NOT_LITERAL for v in between):
        return CallPlan("gradIn", written)  # the rate cannot be reached by position: graded at its default
    return CallPlan("gradIn, eta", written, before_rate=tuple(between))


_NOT_LITERAL = object()


def _literal(node):
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL
    return value if isinstance(value, (int, float, str, bool, type(None))) else _NOT_LITERAL


def find_method(root: Path, file: str, class_name: str, line: int, method_names: tuple[str, ...]) -> ast.FunctionDef | None:
    """The method's definition in the class (or a base class defined in the submission), read with `ast`."""
    trees: dict[Path, ast.Module] = {}

    def tree_of(path: Path):
        if path not in trees:
            try:
                trees[path] = ast.parse(path.read_bytes(), filename=str(path)) if path.stat().st_size < 2 * 1024**2 else None
            except (OSError, SyntaxError, ValueError):
                trees[path] = None
        return trees[path]

    def classes_named(name: str):
        for path in sorted(root.rglob("*.py"))[:500]:
            if path.is_symlink() or not path.is_file():
                continue
            tree = tree_of(path)
            for node in ast.walk(tree) if tree is not None else ():
                if isinstance(node, ast.ClassDef) and node.name == name:
                    yield node

    start = [n for n in ast.walk(tree_of(root / file) or ast.Module(body=[], type_ignores=[]))
             if isinstance(n, ast.ClassDef) and n.name == class_name and (n.lineno == line or not line)]
    seen, queue = set(), start[:1]
    while queue and len(seen) < 20:
        node = queue.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name in method_names:
                return statement
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
            if name:
                queue += list(classes_named(name))[:1]
    return None


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def call_plan(ctx: ItemContext) -> CallPlan:
    """The call plan of the student's updateWeights (read once per submission)."""
    return call_plan_for(ctx.student, ctx.cls)


def call_plan_for(student, cls) -> CallPlan:
    """The call plan of `cls`'s updateWeights in the student's code (read once per submission)."""
    plans = _PLANS.setdefault(student, {})
    if cls.name not in plans:
        where = student.discovery.found.get(cls.name)
        function = None
        if where is not None:
            actual = student.methods.get(cls.name, {}).get("updateWeights") or "updateWeights"
            function = find_method(Path(student.discovery.root), where.file, where.name, where.line, (actual,))
        plans[cls.name] = plan_from_signature(function)
    return plans[cls.name]


def graded_as(item, student) -> dict:
    """What `graded_as` records of an updateWeights item: the signature and how it was called."""
    if item.method != "updateWeights":
        return {}
    plans = _PLANS.get(student, {})
    plan = plans.get(item.cls.name)
    if plan is None:
        return {}
    out = {"signature": plan.written, "called_as": {"gradIn, eta": "updateWeights(gradIn, η)", "gradIn": "updateWeights(gradIn)",
                                                     "eta after backward": "backward(gradIn); updateWeights(η)",
                                                     "after backward": "backward(gradIn); updateWeights()",
                                                     "not gradable": "not called"}[plan.shape]}
    if plan.reason:
        out["not_gradable"] = plan.reason
    return out


# ----------------------------------------------------------------------------- one update, read back


@dataclass
class Update:
    """One call of the student's update: the state before, what was read back, the rate it applied."""

    X: np.ndarray
    G: np.ndarray
    W: np.ndarray
    b: np.ndarray
    W_after: np.ndarray
    b_after: np.ndarray
    eta: float  # given, or estimated from the step
    estimated: bool
    layer: object

    @property
    def applied(self) -> np.ndarray:
        """The gradient the step applied, −Δ/η: ∂J/∂W (D rows) over ∂J/∂b (one row)."""
        with np.errstate(all="ignore"):
            return -np.vstack([self.W_after - self.W, self.b_after - self.b]) / self.eta


def read_back(student, cls, layer, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """W (D×K) and b (1×K) as the student's getters give them."""
    values = []
    for getter, shape in (("getWeights", (d, k)), ("getBiases", (1, k))):
        if not student.has(cls, getter):
            raise StudentFailure(Outcome("missing", message=f"{cls.name} has no {' or '.join(cls.method_names(getter))}, "
                                                            "so the update cannot be read back"), f"{cls.name}.{getter}()")
        value = array_of(student.call(layer, cls, getter), f"{cls.name}.{getter}()")
        if value.size != shape[0] * shape[1]:
            raise StudentFailure(Outcome("other", type="array", detail=f"shape {value.shape} after the update; expected {shape}"),
                                 f"{cls.name}.{getter}() after updateWeights")
        values.append(value.reshape(shape))
    return values[0], values[1]


def store_input(ctx: ItemContext, layer, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> None:
    """Leave the layer holding input X as an update step expects: forward(X), the usual flow, then
    the true stored state through setPrevIn/setPrevOut where it has them (a wrong forward is
    forward's mistake, never the update's)."""
    cls, student = ctx.cls, ctx.student
    try:
        student.call(layer, cls, "forward", X)
    except StudentFailure as failure:
        if failure.during != f"{cls.name}.forward()":
            raise
    if student.has(cls, "setPrevIn"):
        student.tell(layer, cls, "setPrevIn", X)
        if student.has(cls, "setPrevOut"):
            student.tell(layer, cls, "setPrevOut", ctx.truth.fully_connected_forward(X, W, b))


def updated(ctx: ItemContext, X: np.ndarray, G: np.ndarray, eta: float, *, W=None, b=None) -> Update:
    """A student layer holding W and b, its input X stored, updated with gradIn G at rate η, read back."""
    cls, student = ctx.cls, ctx.student
    plan = call_plan(ctx)
    if plan.shape == "not gradable":
        raise NotGradable(plan.reason)
    d, k = X.shape[1], G.shape[1]
    if W is None:
        W, b = points.weights(ctx.rng, d, k)
    layer, W, b = student.fully_connected(cls, W, b)
    store_input(ctx, layer, X, W, b)
    # The state the update starts from, as the layer holds it: a setter that writes another
    # attribute (self.biases where getBiases reads self.__biases) is forward's mistake, not the update's.
    W, b = read_back(student, cls, layer, d, k)
    if plan.shape in ("eta after backward", "after backward"):
        outcome = student.call(layer, cls, "backward", G)
        if not outcome.ok:
            raise StudentFailure(outcome, f"{cls.name}.backward() (it stores the gradient updateWeights applies)")
        outcome = student.call(layer, cls, "updateWeights", *((eta,) if plan.rate_given else ()))
    elif plan.shape == "gradIn":
        outcome = student.call(layer, cls, "updateWeights", G)
    else:
        outcome = student.call(layer, cls, "updateWeights", G, *plan.before_rate, eta)
    if outcome.kind not in ("array", "none", "other"):
        raise StudentFailure(outcome, f"{cls.name}.updateWeights()")
    W_after, b_after = read_back(student, cls, layer, d, k)
    estimated = not plan.rate_given
    if estimated:
        eta = estimated_rate(W_after - W, b_after - b, *update_gradients(X, G, cls.options.update_reduction))
    return Update(X, G, W, b, W_after, b_after, eta, estimated, layer)


def estimated_rate(dW, db, gW, gb) -> float:
    """η̂ of a step against the true gradient, by least squares over W and b together (its magnitude:
    a step uphill is judged, and named, as the right rate's ascent)."""
    step, truth = np.concatenate([dW.ravel(), db.ravel()]), np.concatenate([gW.ravel(), gb.ravel()])
    with np.errstate(all="ignore"):
        eta = -float(step @ truth) / float(truth @ truth)
    return abs(eta) if np.isfinite(eta) and eta != 0 else 1.0


def _tolerances(ctx: ItemContext, u: Update) -> tuple[float, float]:
    """The value tolerances, plus the rounding of W and b themselves divided by η (the step is read as W_after − W)."""
    rtol, atol = ctx.precision.values(ctx.tol)
    scale = max(float(np.abs(np.vstack([u.W, u.b])).max()), 1.0)
    return rtol, atol + 4 * ctx.precision.rounding(scale) / u.eta


# ----------------------------------------------------------------------------- named mistakes


def update_mistakes(u: Update, reduction: str, rows: slice = slice(None)):
    """(name, the gradient −Δ/η such an update applies) of the update step's known mistakes."""
    X, G, n = u.X, u.G, u.X.shape[0]
    gW, gb = update_gradients(X, G, reduction)
    other = n if reduction == "mean" else 1.0 / n
    stack = lambda w, b_: np.vstack([w, b_])[rows]  # noqa: E731
    if n > 1:
        yield ("update.summed", f"summed instead of averaged: Xᵀδ, N (= {n}) times too large") if reduction == "mean" else (
            "update.averaged", f"averaged instead of summed: Xᵀδ/N, N (= {n}) times too small"), stack(gW * other, gb * other)
    yield ("update.ascent", "gradient ascent: W + η ∂J/∂W (the sign of the step)"), stack(-gW, -gb)
    yield ("update.bias_not_updated", "bias not updated"), stack(gW, 0 * gb)
    if n > 1:
        yield ("update.bias_summed", "bias summed over the observations instead of averaged") if reduction == "mean" else (
            "update.bias_averaged", "bias averaged over the observations instead of summed"), stack(gW, gb * other)
    H = X @ u.W + u.b
    if H.shape[1] == X.shape[1]:
        oW, ob = update_gradients(H, G, reduction)
        yield ("update.output_for_input", "the layer's output used instead of its input: Hᵀδ instead of Xᵀδ"), stack(oW, ob)
    if n > 1:
        first_W, first_b = update_gradients(X[:1], G[:1], reduction)
        yield ("update.first_observation", "only the first observation used"), stack(first_W, first_b)
        yield ("update.first_observation", "only the first observation used"), stack(first_W / n, first_b / n)


def name_mistake(ctx: ItemContext, result: CheckResult, u: Update, got: np.ndarray, rows: slice = slice(None)) -> CheckResult:
    """A failed update check with the known mistake its numbers show, when one does."""
    if result.passed or not np.isfinite(got).all():
        return result
    rtol, atol = _tolerances(ctx, u)
    result.diagnosis = mistake_of(u, ctx.cls.options.update_reduction, rtol, atol, rows) or result.diagnosis
    return result


def mistake_of(u: Update, reduction: str, rtol: float, atol: float, rows: slice = slice(None)) -> Diagnosis | None:
    """The named mistake an update's step shows (on the rows of [W; b] given), or None."""
    got = u.applied[rows]
    if not np.isfinite(got).all():
        return None
    if not np.abs(u.applied).max() > 0:
        return Diagnosis("W and b did not change (no update, or an update of a copy)", "update.no_change")
    mistakes = list(update_mistakes(u, reduction, rows))
    if rows.start is not None and rows.start > 0:  # b alone: its own mistakes' names first
        mistakes.sort(key=lambda m: not m[0][1].startswith("bias"))
    for (code, name), numbers in mistakes:
        if numbers.shape == got.shape and close(got, numbers, rtol, atol):
            return Diagnosis(name, code)
    gW, gb = update_gradients(u.X, u.G, reduction)
    truth = np.vstack([gW, gb])[rows]
    if not u.estimated and got.shape == truth.shape and np.abs(got).max() > 0:
        c = float(got.ravel() @ truth.ravel()) / float(truth.ravel() @ truth.ravel())
        if c > 0 and not np.isclose(c, 1.0, rtol=1e-3) and close(got, c * truth, rtol, atol):
            return Diagnosis(f"η ignored: the step is {c:.4g} × η·∂J/∂W (a rate of its own, η ≈ {c * u.eta:.4g}, "
                             f"where η = {u.eta:g} was asked)", "update.eta_ignored")
    return None


# ----------------------------------------------------------------------------- the checks


def _judge_update(ctx: ItemContext, name: str, weight: float, u: Update, rows: slice = slice(None), *, what: str,
                  expected: Band | None = None, note: str = "") -> CheckResult:
    gW, gb = update_gradients(u.X, u.G, ctx.cls.options.update_reduction)
    truth = exact(np.vstack([gW, gb])[rows]) if expected is None else expected
    got = u.applied[rows]
    rtol, atol = _tolerances(ctx, u)
    plan_note = call_plan(ctx).note()
    if u.estimated:
        plan_note = f"{plan_note} (η ≈ {u.eta:.4g} here)"
    note = "; ".join(n for n in (note, plan_note) if n)
    result = judge(ctx, name, weight, got, truth, situation(ctx, "updateWeights", X=u.X, W=u.W, b=u.b, G=u.G),
                   rtol=rtol, atol=atol, what=what, note=note)
    return name_mistake(ctx, result, u, got, rows)


def _what(u: Update, part: str = "∂J/∂W (rows 1..D) over ∂J/∂b (last row)") -> str:
    rate = f"η ≈ {u.eta:.4g} (estimated)" if u.estimated else f"η = {u.eta:g}"
    return f"the gradient your update applied, −(after − before)/η, {part}, with {rate}"


def update_values(single: bool, check_name: str):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        n = 1 if single else N
        X = points.layer_input(ctx.rng, ctx.cls, n, D)
        u = updated(ctx, X, points.upstream(ctx.rng, n, K), ETA)
        return _judge_update(ctx, name, weight, u, what=_what(u))
    return named(check, check_name)


def update_bias(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    X = points.layer_input(ctx.rng, ctx.cls, N, D)
    G = points.upstream(ctx.rng, N, K) + ctx.rng.uniform(0.5, 1.5, size=(1, K))  # column means well away from 0
    u = updated(ctx, X, G, ETA)
    return _judge_update(ctx, name, weight, u, slice(D, D + 1), what=_what(u, "∂J/∂b, from b read back"))


def update_learning_rate(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Two rates on the same state: each step right for its own η (with no rate to give, two gradIns:
    the same rate for both)."""
    X = points.layer_input(ctx.rng, ctx.cls, N, D)
    G = points.upstream(ctx.rng, N, K)
    W, b = points.weights(ctx.rng, D, K)
    plan = call_plan(ctx)
    if plan.rate_given:
        first, second = (updated(ctx, X, G, eta, W=W, b=b) for eta in ETAS)
    else:
        first = updated(ctx, X, G, ETA, W=W, b=b)
        second = updated(ctx, X, points.upstream(ctx.rng, N, K), ETA, W=W, b=b)
        second.eta = first.eta  # one rate for every call
    result = None
    for u in (first, second):
        result = _judge_update(ctx, name, weight, u, what=_what(u))
        if not result.passed:
            break
    if not result.passed and plan.rate_given and np.allclose(first.W_after, second.W_after) and not np.allclose(first.W_after, W):
        result.diagnosis = Diagnosis(f"η ignored: the same step for η = {ETAS[0]:g} and η = {ETAS[1]:g}", "update.eta_ignored")
    return result


def update_finite_differences(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """The step against central differences of the student's own forward: ∂/∂W and ∂/∂b of
    reduce_n ⟨δₙ, forward(X)ₙ⟩ (their forward when it is right at X, else the true one). D = K here,
    where the output used for the input shows by its numbers."""
    cls, student = ctx.cls, ctx.student
    n, d, k = 4, 3, 3
    X = points.layer_input(ctx.rng, cls, n, d)
    G = points.upstream(ctx.rng, n, k)
    W, b = points.weights(ctx.rng, d, k)
    reduce = (lambda total: total / n) if cls.options.update_reduction == "mean" else (lambda total: total)  # noqa: E731
    objective = lambda H: reduce(float(np.sum(G * H)))  # noqa: E731
    # J is linear in W and b, so central differences have no truncation error at any step: a large one
    # keeps them clear of the rounding of weights a student's setWeights keeps in float32 (the answer's
    # own dtype cannot show that: float32 weights times float64 inputs give float64).
    h = max(ctx.precision.finite_differences(ctx.tol)[0], 0.1)
    entries = [(0, idx) for idx in np.ndindex(d, k)] + [(1, idx) for idx in np.ndindex(1, k)]

    def shifted(part, idx, sign):
        Ws, bs = W.copy(), b.copy()
        (Ws if part == 0 else bs)[idx] += sign * h
        return Ws, bs

    true_fd = np.zeros((d + 1, k))
    for part, idx in entries:
        plus, minus = (objective(ctx.truth.fully_connected_forward(X, Ws, bs)) for Ws, bs in (shifted(part, idx, s) for s in (1, -1)))
        true_fd[idx if part == 0 else (d, idx[1])] = (plus - minus) / (2 * h)
    fd, noise, source = true_fd, 0.0, "central differences of the true forward (your forward() is not right, or W and b cannot be set)"
    if student.has(cls, "setWeights") and student.has(cls, "setBiases"):
        probe, _, _ = student.fully_connected(cls, W, b)
        if own_values(ctx, probe, "forward", [(X,)], ctx.truth.fully_connected_forward(X, W, b), (n, k)) is not None:
            own, largest = np.zeros((d + 1, k)), 0.0
            moves = [shifted(part, idx, sign) for part, idx in entries for sign in (1, -1)]
            asked = Chained(student, [step for Ws, bs in moves for step in ((probe, cls, "setWeights", (Ws,), True),
                                      (probe, cls, "setBiases", (bs,), True), (probe, cls, "forward", (X,), False))])
            for part, idx in entries:
                values = []
                for sign in (1, -1):
                    Ws, bs = shifted(part, idx, sign)
                    asked.tell(probe, cls, "setWeights", Ws)  # the calls of one round trip, in their order
                    asked.tell(probe, cls, "setBiases", bs)
                    outcome = asked.call(probe, cls, "forward", X)
                    if not outcome.ok or outcome.value.shape != (n, k):
                        break
                    values.append(objective(outcome.value))
                    largest = max(largest, float(np.abs(outcome.value).max()))
                if len(values) != 2:
                    own = None
                    break
                own[idx if part == 0 else (d, idx[1])] = (values[0] - values[1]) / (2 * h)
            if own is not None:
                fd, source = own, "central differences of your own forward()"
                noise = ctx.precision.rounding(largest * np.abs(G).sum()) / h
    gW, gb = update_gradients(X, G, cls.options.update_reduction)
    band = finite_difference_band(fd, true_fd, np.vstack([gW, gb]), noise)
    u = updated(ctx, X, G, ETA, W=W, b=b)
    return _judge_update(ctx, name, weight, u, expected=band, what=f"{_what(u)}, vs {source}")


def update_next_forward(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """After the update, forward() computes with the new W and b (what the getters read back): the
    output of a fresh layer given those values (the true one, without setters) is what it must give."""
    cls, student = ctx.cls, ctx.student
    X = points.layer_input(ctx.rng, cls, N, D)
    u = updated(ctx, X, points.upstream(ctx.rng, N, K), ETA)
    X2 = points.layer_input(ctx.rng, cls, 4, D)
    outcome = student.call(u.layer, cls, "forward", X2)
    if outcome.kind != "array" or outcome.value.shape != (4, K):  # forward's own fault, judged in its item
        return CheckResult(name, True, weight, note="forward() gave no usable answer, so whether it uses the updated W and b "
                                                    f"was not judged here (see {cls.name}.forward)")
    got = outcome.value
    expected = ctx.truth.fully_connected_forward(X2, u.W_after, u.b_after)
    rtol, atol = ctx.precision.values(ctx.tol)
    if not compare(got, expected, rtol=rtol, atol=atol).passed:
        # Wrong: the update's fault only if forward() itself is right (else it is judged in its own item).
        probe, Wp, bp = student.fully_connected(cls, u.W, u.b)
        if own_values(ctx, probe, "forward", [(X2,)], ctx.truth.fully_connected_forward(X2, Wp, bp), (4, K)) is None:
            return CheckResult(name, True, weight, note="your forward() is not right, so whether it uses the updated W and b "
                                                        f"was not judged here (see {cls.name}.forward)")
    result = judge(ctx, name, weight, got, exact(expected), situation(ctx, "updateWeights", X=X2, W=u.W_after, b=u.b_after),
                   what="forward(X) after updateWeights vs the true h = XW + b with W and b read back after the update")
    if not result.passed:
        result.diagnosis = Diagnosis("forward() after the update does not use the W and b the getters return: does updateWeights "
                                     "change other attributes (or copies) than those forward() reads?", "update.forward_uses_old_weights")
    return result


CHECKS = {
    "values": update_values(False, "fully_connected.updateWeights.values"),
    "single_observation": update_values(True, "fully_connected.updateWeights.single_observation"),
    "learning_rate": update_learning_rate,
    "bias": update_bias,
    "finite_differences": update_finite_differences,
    "next_forward": update_next_forward,
}


# ----------------------------------------------------------------------------- backward that updates first


def updated_inside_backward(X, W, G, got, reduction: str, rtol: float, atol: float) -> str | None:
    """The mistake that costs backward(), not the update: W updated inside backward() before its own
    result, which then is δ·(W − η′∂J/∂W)ᵀ for the student's own rate η′ > 0 (found by least squares)."""
    if X is None or W is None or G is None or got.shape != (G.shape[0], W.shape[0]) or not np.isfinite(got).all():
        return None
    try:
        gW, _ = update_gradients(X, G, reduction)
    except Exception:  # shapes the derivation was not asked for
        return None
    base, direction = G @ W.T, -(G @ gW.T)
    scale = float(direction.ravel() @ direction.ravel())
    if scale == 0:
        return None
    eta = float((got - base).ravel() @ direction.ravel()) / scale
    if eta > 0 and not close(got, base, rtol, atol) and close(got, base + eta * direction, rtol, atol):
        return Diagnosis(f"W updated inside backward() before its result was computed (with a rate of η ≈ {eta:.3g}): "
                         "backward must return δ·Wᵀ with the W the forward pass used; update the weights after it, in updateWeights",
                         "fully_connected.updated_inside_backward")
    return None
