"""Kind `fully_connected_adam`: a fully connected layer whose `updateWeights` is Adam (the `adam` spec).

forward, gradient and backward are the fully connected layer's (its checks, hooks and mistakes).
The update is judged from W and b read back after each of T calls (t = 1, 2, 3 by default) on
the SAME layer object, a new stored input X and gradIn each call: the student keeps its own
moments. The direction each call applied, −(θₜ − θₜ₋₁)/η, is compared with SymPy's unrolled
recurrence m̂ₜ/(√v̂ₜ + δ) (`grader/truth/adam_truth.py`) of g = ∂J/∂W = Xᵀδ/N and ∂J/∂b (the plain
step's truth, `update_truth`). Adam's first step is ≈ −η·sign(g): no check looks at it alone, so
sign(g)·η, plain SGD, a no-op, zeros or random numbers earn nothing.

How students write it is read from the signature with `ast` (`adam_plan`) and recorded in
`graded_as`: updateWeights(gradIn, t, p1, p2, eta, delta) under the usual names of each; a flag
switching Adam on (Adam=False, optimizer="sgd", useAdam) is passed on; a method of its own
(updateWeights2, updateWeightsAdam, adam_weight_update, learn, …: the helper `updateWeightsAdam`)
when updateWeights is not Adam; t counted inside (no t parameter). Constants the signature does
not take are the student's own: their defaults, else a class constant (Layer.ETA, RHO1 …), else
the course's p1, p2, δ and an η estimated from the first step (|Δ| ≈ η), each said in a note. A
signature that needs what the grader does not have is "not gradable as written", never wrong.
"""
from __future__ import annotations

import ast
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.checking import points
from grader.checking.checks import ItemContext, NotGradable, exact, judge, situation
from grader.checking.compare import close, compare
from grader.checking.results import CheckResult, Diagnosis
from grader.checking.student import StudentFailure
from grader.kinds import fully_connected as _fc
from grader.kinds.fully_connected_update import OPTIMIZER_NAMES, RATE_NAMES, _literal, _normal, _NOT_LITERAL, find_method, read_back, store_input
from grader.truth.adam_truth import VARIANTS, adam_directions
from grader.truth.update_truth import update_gradients

N, D, K = points.N, points.D, points.K

#: The parameters a signature may name, by role (names lower-cased, underscores dropped).
ROLE_NAMES = {
    "t": {"t", "epoch", "epochnum", "epochs", "iteration", "iter", "step", "time", "timestep", "numepoch", "count"},
    "p1": {"p1", "rho1", "beta1", "b1", "decay1", "pone"},
    "p2": {"p2", "rho2", "beta2", "b2", "decay2", "ptwo"},
    "eta": RATE_NAMES | {"learningrate", "lrate"},
    "delta": {"delta", "epsilon", "eps", "sig", "sigma"},
}
CONSTANTS = ("p1", "p2", "eta", "delta")
#: Other constants for the `constants` check (wherever the signature takes them).
OTHER = {"p1": 0.75, "p2": 0.95, "eta": 0.0037, "delta": 1e-8}


# ----------------------------------------------------------------------------- how the student calls it


@dataclass(frozen=True)
class AdamPlan:
    """How the grader calls a student's Adam step, from its signature."""

    method: str  # the role called: "updateWeights" or the helper "updateWeightsAdam"
    written: str
    roles: tuple = ()  # per positional parameter: "gradIn", "t", a constant, ("flag", value) or ("literal", value)
    own: tuple = ()  # ((constant, the student's own value or None), …) for constants not passed
    reason: str = ""  # not gradable as written, and why
    notes: tuple = ()
    built: tuple = ()  # the constructor's arguments after (sizeIn, sizeOut) that switch Adam on (its flag), else ()

    @property
    def gradable(self) -> bool:
        return not self.reason

    @property
    def t_inside(self) -> bool:
        return "t" not in self.roles

    def takes(self, constant: str) -> bool:
        return constant in self.roles

    def args(self, G, t: int, consts: dict) -> tuple:
        out = []
        last = max((i for i, r in enumerate(self.roles) if not isinstance(r, tuple) or r[0] == "flag"), default=-1)
        for role in self.roles[:last + 1]:
            out.append(G if role == "gradIn" else t if role == "t" else consts[role] if role in CONSTANTS else role[1])
        return tuple(out)

    def called_as(self) -> str:
        names = {"gradIn": "gradIn", "t": "t", "p1": "p1", "p2": "p2", "eta": "η", "delta": "δ"}
        shown = [names[r] if not isinstance(r, tuple) else repr(r[1]) for r in self.roles[:len(self.args(None, 0, dict.fromkeys(CONSTANTS)))]]
        call = f"{self.written.split('(')[0]}({', '.join(shown)})"
        return f"{call} for t = 1, 2, 3 on one layer" + (" (t counted inside: called once per step)" if self.t_inside else "")


def _role(name: str) -> str | None:
    n = _normal(name)
    return next((role for role, names in ROLE_NAMES.items() if n in names), None)


def _adam_value(function: ast.FunctionDef, default):
    """What to pass to an optimiser flag to switch Adam on: True, or the string the body compares with."""
    value = _literal(default) if default is not None else _NOT_LITERAL
    if isinstance(value, bool) or value is None:
        return True
    strings = [n.value for n in ast.walk(function) if isinstance(n, ast.Constant) and isinstance(n.value, str) and "adam" in n.value.lower()]
    return strings[0] if strings else "Adam"


def _written(function: ast.FunctionDef, params) -> str:
    return f"{function.name}({', '.join(ast.unparse(a) if d is None else f'{ast.unparse(a)}={ast.unparse(d)}' for a, d in params)})"


def _params(function: ast.FunctionDef):
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
    return list(zip(positional, defaults))[0 if is_static else 1:]


def is_adam(function: ast.FunctionDef | None) -> bool:
    """Whether a method is an Adam step: a t, a moment constant or an optimiser flag in its signature,
    or a square root in its body (t counted inside)."""
    if function is None:
        return False
    if any(n in ROLE_NAMES["t"] | ROLE_NAMES["p1"] | ROLE_NAMES["p2"] | OPTIMIZER_NAMES for n in _param_names(function)):
        return True
    return _has_square_root(function)


def _param_names(function: ast.FunctionDef) -> list[str]:
    """A method's parameter names (self left out), normalised as roles are matched."""
    return [_normal(a.arg) for a, _ in _params(function)] + [_normal(a.arg) for a in function.args.kwonlyargs]


def _has_square_root(function: ast.FunctionDef) -> bool:
    source = ast.unparse(function)
    return "sqrt" in source or "** 0.5" in source or "**0.5" in source


def _only_a_counter(function: ast.FunctionDef | None) -> bool:
    """Whether a method's only sign of Adam is a t-like parameter (an epoch a plain step decays its
    rate by): no moment constant, no optimiser flag, no square root. Beside an Adam method of the
    class's own (cwma86: updateWeights(gradIn, epoch=1) and adam_weight_update), that one is Adam."""
    if function is None:
        return False
    if any(n in ROLE_NAMES["p1"] | ROLE_NAMES["p2"] | OPTIMIZER_NAMES for n in _param_names(function)):
        return False
    return not _has_square_root(function)


def adam_plan(function: ast.FunctionDef | None, method: str = "updateWeights", class_constants: dict | None = None) -> AdamPlan:
    """The call a signature takes (None, not found statically: the course's updateWeights(gradIn, t, p1, p2, eta, delta))."""
    if function is None:
        return AdamPlan(method, "updateWeights(gradIn, t, p1, p2, eta, delta)", ("gradIn", "t", "p1", "p2", "eta", "delta"))
    params = _params(function)
    written = _written(function, params)
    required_kw = [a.arg for a, d in zip(function.args.kwonlyargs, function.args.kw_defaults) if d is None]
    if required_kw:
        return AdamPlan(method, written, reason=f"{written} needs {', '.join(required_kw)} by keyword")
    roles, defaults = [], {}
    for i, (arg, default) in enumerate(params):
        n, role = _normal(arg.arg), _role(arg.arg)
        if role is not None and role not in roles:
            roles.append(role)
            if role in CONSTANTS and default is not None and isinstance(_literal(default), (int, float)) and not isinstance(_literal(default), bool):
                defaults[role] = float(_literal(default))
        elif n in OPTIMIZER_NAMES:
            roles.append(("flag", _adam_value(function, default)))
        elif "gradIn" not in roles and not roles:
            roles.append("gradIn")
        elif default is not None and _literal(default) is not _NOT_LITERAL:
            roles.append(("literal", _literal(default)))
        elif default is not None:
            roles.append(("unreachable", arg.arg))
        else:
            return AdamPlan(method, written, reason=f"{written} needs {arg.arg}, which an Adam step W ← W − η m̂/(√v̂ + δ) does not have")
    if "gradIn" not in roles:
        return AdamPlan(method, written, reason=f"{written} takes no gradIn (a gradient stored elsewhere cannot be driven here)")
    needed = [i for i, r in enumerate(roles) if not isinstance(r, tuple) or r[0] == "flag"]
    blocked = [r[1] for i, r in enumerate(roles) if isinstance(r, tuple) and r[0] == "unreachable" and i < max(needed)]
    if blocked:
        return AdamPlan(method, written, reason=f"{written}: {', '.join(blocked)} has a default the grader cannot write, before parameters it must pass")
    own, notes = [], []
    for constant in CONSTANTS:
        if constant in roles:
            continue
        value = defaults.get(constant, (class_constants or {}).get(constant))
        own.append((constant, value))
    said = [f"{c} = {v:g}" for c, v in own if v is not None]
    if said:
        notes.append(f"{written} does not take {', '.join(c for c, v in own if v is not None)}: graded with its own {', '.join(said)}")
    unknown = [c for c, v in own if v is None]
    if unknown:
        notes.append(f"{written} does not take {', '.join(unknown)} and the grader could not read its own: "
                     + ", ".join("η estimated from the first step (|Δ| ≈ η)" if c == "eta" else f"{c} taken as the course's" for c in unknown))
    if "t" not in roles:
        notes.append(f"{written} takes no t: it counts the steps itself, so each layer is called once per step from its first")
    return AdamPlan(method, written, tuple(roles), tuple(own), notes=tuple(notes))


def _compared_with_adam(function: ast.FunctionDef) -> dict[str, str]:
    """Parameters the constructor compares (==) with a string naming Adam, and that string
    (cwma86: weight_up_func == "adam_weight_update" creates the moments)."""
    found = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
            sides = (node.left, node.comparators[0])
            names = [n.id for n in sides if isinstance(n, ast.Name)]
            strings = [n.value for n in sides if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if names and strings and "adam" in strings[0].lower():
                found.setdefault(names[0], strings[0])
    return found


def constructor_flag(function: ast.FunctionDef | None, class_name: str = "") -> tuple[tuple, str]:
    """The constructor's arguments after (sizeIn, sizeOut) that switch Adam on, and how that reads:
    a flag-like parameter (Adam=False, optimizer="sgd", useAdam), the parameters before it at their
    own literal defaults; ((), "") when there is none or one before it has no literal default."""
    if function is None:
        return (), ""
    params = _params(function)[2:]
    switches = _compared_with_adam(function)
    at = next((i for i, (a, d) in enumerate(params) if d is not None and (_normal(a.arg) in OPTIMIZER_NAMES or a.arg in switches)), None)
    if at is None or any(d is None or _literal(d) is _NOT_LITERAL for _, d in params[:at]):
        return (), ""
    name = params[at][0].arg
    value = switches[name] if name in switches and _normal(name) not in OPTIMIZER_NAMES else _adam_value(function, params[at][1])
    args = tuple(_literal(d) for _, d in params[:at]) + (value,)
    shown = ", ".join(f"{a.arg}={v!r}" for (a, _), v in zip(params[:at + 1], args))
    return args, f"its constructor switches Adam on by a flag: each layer built as {class_name or function.name}(sizeIn, sizeOut, {shown})"


def constructor_constants(function: ast.FunctionDef | None) -> dict:
    """Constants of Adam the constructor sets on the layer, `self.p1 = 0.9` or `self.eta = eta` with
    eta a parameter of literal default; a name set twice (in two branches) is not taken."""
    if function is None:
        return {}
    defaults = {a.arg: _literal(d) for a, d in _params(function) if d is not None}
    seen: dict = {}
    for node in ast.walk(function):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute)
                and isinstance(node.targets[0].value, ast.Name) and node.targets[0].value.id == "self"):
            continue
        role = next((r for r in CONSTANTS if _normal(node.targets[0].attr) in ROLE_NAMES[r]), None)
        if role is None:
            continue
        value = defaults.get(node.value.id, _NOT_LITERAL) if isinstance(node.value, ast.Name) else _literal(node.value)
        seen.setdefault(role, []).append(value)
    return {role: float(values[0]) for role, values in seen.items()
            if len(values) == 1 and isinstance(values[0], (int, float)) and not isinstance(values[0], bool)}


def class_constants(root: Path, file: str, class_name: str, line: int) -> dict:
    """Constants of Adam set in the class body or a base class defined in the submission (Layer.ETA, RHO1 …)."""
    found: dict = {}
    try:
        tree = ast.parse((root / file).read_bytes()) if (root / file).stat().st_size < 2 * 1024**2 else None
    except (OSError, SyntaxError, ValueError):
        tree = None
    trees = [tree] if tree is not None else []
    for path in sorted(root.rglob("*.py"))[:200]:
        if path.is_file() and not path.is_symlink() and path != root / file:
            try:
                trees.append(ast.parse(path.read_bytes()) if path.stat().st_size < 2 * 1024**2 else ast.Module(body=[], type_ignores=[]))
            except (OSError, SyntaxError, ValueError):
                continue
    classes = {}
    for t in trees:
        for node in ast.walk(t):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, node)
    queue, seen = [classes.get(class_name)], set()
    while queue and len(seen) < 10:
        node = queue.pop(0)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for statement in node.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
                role, value = _role(statement.targets[0].id), _literal(statement.value)
                if role in CONSTANTS and isinstance(value, (int, float)) and not isinstance(value, bool):
                    found.setdefault(role, float(value))
        queue += [classes.get(b.id) for b in node.bases if isinstance(b, ast.Name)]
    return found


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_ZERO_BASED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # student -> {class names whose t counts from 0}


def plan_for(student, cls) -> AdamPlan:
    """The Adam plan of `cls` in the student's code (read once per submission): updateWeights when it
    is Adam, else the method of its own (the helper updateWeightsAdam and its aliases), else
    updateWeights all the same (a plain step then earns nothing: it is not Adam)."""
    plans = _PLANS.setdefault(student, {})
    if cls.name not in plans:
        where = student.discovery.found.get(cls.name)
        if where is None:
            plans[cls.name] = adam_plan(None)
            return plans[cls.name]
        root = Path(student.discovery.root)
        methods = student.methods.get(cls.name, {})
        update = find_method(root, where.file, where.name, where.line, (methods.get("updateWeights") or "updateWeights",))
        own = find_method(root, where.file, where.name, where.line, (methods["updateWeightsAdam"],)) if methods.get("updateWeightsAdam") else None
        constants = class_constants(root, where.file, where.name, where.line)
        init = find_method(root, where.file, where.name, where.line, ("__init__",))
        built, said = constructor_flag(init, where.name)
        constants = {**constants, **constructor_constants(init)}
        if own is None or is_adam(update) and not _only_a_counter(update):
            plan = adam_plan(update, "updateWeights", constants)
            if update is not None and not is_adam(update):
                plan = AdamPlan(plan.method, plan.written, plan.roles, plan.own, plan.reason,
                                plan.notes + (f"{plan.written} shows no Adam (no t, no moments' constants, no square root), "
                                              "and the class has no Adam method of its own: it is graded as Adam all the same",))
        else:
            plan = adam_plan(own, "updateWeightsAdam", constants)
        if built:
            plan = AdamPlan(plan.method, plan.written, plan.roles, plan.own, plan.reason, (said, *plan.notes), built)
        plans[cls.name] = plan
    return plans[cls.name]


def graded_as(item, student) -> dict:
    """What `graded_as` records of the Adam item: the signature, how it was called, the constants used."""
    if item.method != "updateWeights":
        return {}
    plan = _PLANS.get(student, {}).get(item.cls.name)
    if plan is None:
        return {}
    out = {"signature": plan.written, "called_as": plan.called_as() if plan.gradable else "not called"}
    if plan.reason:
        out["not_gradable"] = plan.reason
    notes = list(plan.notes)
    if item.cls.name in _ZERO_BASED.get(student, ()):
        notes.append(ZERO_BASED_NOTE.format(call=plan.written.split("(")[0]))
    if notes:
        out["notes"] = notes
    return out


# ----------------------------------------------------------------------------- T calls on one layer, read back


@dataclass
class Trajectory:
    """T calls of the student's Adam step on one layer: the stored inputs, gradIns and θ = [W; b] after each."""

    X: list
    G: list
    thetas: list  # θ₀ … θ_T, each (D+1)×K
    eta: float
    estimated: bool
    consts: dict
    layer: object = None
    W_after: np.ndarray | None = None
    b_after: np.ndarray | None = None
    grads: list = field(default_factory=list)

    @property
    def applied(self) -> np.ndarray:
        """−(θₜ − θₜ₋₁)/η for t = 1…T: T × (D+1) × K."""
        with np.errstate(all="ignore"):
            return -np.diff(np.array(self.thetas), axis=0) / self.eta

    def truth(self, variant: str = "course") -> np.ndarray:
        return adam_directions(self.grads, self.consts["p1"], self.consts["p2"], self.consts["delta"], variant)


def _constants(ctx: ItemContext, plan: AdamPlan, asked: dict) -> dict:
    """The constants the truth uses: those passed, else the student's own, else the course's (η: estimated later)."""
    o = ctx.cls.options
    course = {"p1": o.p1, "p2": o.p2, "eta": o.eta, "delta": o.delta}
    own = dict(plan.own)
    return {c: (asked.get(c, course[c]) if plan.takes(c) else own.get(c) if own.get(c) is not None else course[c]) for c in CONSTANTS}


def _new_layer(ctx, d, k, W=None, b=None):
    if W is None:
        W, b = points.weights(ctx.rng, d, k)
    return ctx.student.fully_connected(ctx.cls, W, b, built=plan_for(ctx.student, ctx.cls).built)




def trajectories(ctx: ItemContext, n: int, *, layers: int = 1, asked: dict | None = None, bias_offset: bool = False) -> list[Trajectory]:
    """`layers` student layers, each stepped t = 1…T in turn (interleaved), new X and gradIn every call."""
    cls, student = ctx.cls, ctx.student
    plan = plan_for(student, cls)
    if not plan.gradable:
        raise NotGradable(plan.reason)
    consts = _constants(ctx, plan, asked or {})
    steps = cls.options.steps
    out = []
    for _ in range(layers):
        layer, W, b = _new_layer(ctx, D, K)
        out.append(Trajectory([], [], [np.vstack([W, b])], consts["eta"], False, dict(consts), layer))
    for t in range(1, steps + 1):
        for tr in out:
            X = points.layer_input(ctx.rng, cls, n, D)
            G = points.upstream(ctx.rng, n, K) + (ctx.rng.uniform(0.5, 1.5, size=(1, K)) if bias_offset else 0)
            W, b = tr.thetas[-1][:D], tr.thetas[-1][D:]
            store_input(ctx, tr.layer, X, W, b)
            W, b = read_back(student, cls, tr.layer, D, K)  # the state as the layer holds it
            tr.thetas[-1] = np.vstack([W, b])
            outcome = student.call(tr.layer, cls, plan.method, *plan.args(G, t, consts))
            if outcome.kind not in ("array", "none", "other"):
                bypassed = getattr(student.sandbox, "constructed", {}).get(cls.name, "")
                if outcome.kind == "error" and outcome.error_type == "AttributeError" and bypassed.startswith("without its own constructor"):
                    raise NotGradable(f"{cls.name}'s constructor could not run as written ({bypassed.split(': ', 1)[-1]}), and "
                                      f"{plan.written.split('(')[0]} needs state only it sets ({outcome.message})")
                raise StudentFailure(outcome, f"{cls.name}.{student.methods.get(cls.name, {}).get(plan.method) or plan.method}()")
            W_after, b_after = read_back(student, cls, tr.layer, D, K)
            tr.X.append(X)
            tr.G.append(G)
            tr.grads.append(np.vstack(update_gradients(X, G, cls.options.update_reduction)))
            tr.thetas.append(np.vstack([W_after, b_after]))
            tr.W_after, tr.b_after = W_after, b_after
    for tr in out:
        if not plan.takes("eta") and dict(plan.own).get("eta") is None:  # η its own, unknown: |Δ₁| ≈ η
            s, step = tr.truth()[0].ravel(), (tr.thetas[1] - tr.thetas[0]).ravel()
            with np.errstate(all="ignore"):
                eta = -float(step @ s) / float(s @ s)
            tr.eta, tr.estimated = (abs(eta) if np.isfinite(eta) and eta != 0 else 1.0), True
    return out


# ----------------------------------------------------------------------------- named mistakes


def _candidates(tr: Trajectory, rows: slice):
    c = tr.consts
    for variant in ("no_correction", "power_of_complement", "power_of_complement_v", "reset"):
        yield f"fully_connected_adam.{variant}", VARIANTS[variant], tr.truth(variant)[:, rows]
    gW_mean = [np.broadcast_to(G.mean(axis=0, keepdims=True), (D, K)) for G in tr.G]
    q_mean = [np.broadcast_to((G * G).mean(axis=0, keepdims=True), (D, K)) for G in tr.G]
    moments_of_gradin = adam_directions(gW_mean, c["p1"], c["p2"], c["delta"], seconds=q_mean)
    yield ("fully_connected_adam.gradin_moments", "moments of gradIn (its column means) instead of ∂J/∂W = Xᵀδ/N",
           np.concatenate([moments_of_gradin, tr.truth()[:, D:]], axis=1)[:, rows])
    grads = np.array(tr.grads)
    yield "fully_connected_adam.plain_sgd", "plain SGD: θ ← θ − η ∂J/∂θ (no moments)", grads[:, rows]
    yield "fully_connected_adam.sign", "only the sign of the gradient: θ ← θ − η·sign(∂J/∂θ) (Adam's first step, at every step)", np.sign(grads)[:, rows]
    yield "fully_connected_adam.ascent", "the step uphill: θ + η m̂/(√v̂ + δ)", -tr.truth()[:, rows]
    if rows.start == D:
        yield "fully_connected_adam.bias_plain_sgd", "the bias by plain SGD (b ← b − η ∂J/∂b) where the course's Adam moves W and b alike", grads[:, rows]


def mistake_of(tr: Trajectory, rows: slice, rtol: float, atol: float) -> Diagnosis | None:
    got = tr.applied[:, rows]
    if not np.isfinite(got).all():
        return None
    if not np.abs(got).max() > 0:
        return Diagnosis("W and b did not change (no update, or an update of a copy)", "update.no_change")
    candidates = list(_candidates(tr, rows))
    if rows.start == D:
        candidates.sort(key=lambda m: m[0] != "fully_connected_adam.bias_plain_sgd")
    for code, name, numbers in candidates:
        if numbers.shape == got.shape and close(got, numbers, rtol, atol):
            return Diagnosis(name, code)
    return None


# ----------------------------------------------------------------------------- the checks

W_ROWS, B_ROWS = slice(0, D), slice(D, D + 1)


ZERO_BASED_NOTE = ("{call} counts t from 0: each step called with t matches the course's Adam at t + 1 "
                   "(corrections 1 − pᵗ⁺¹), as a training loop passing its epoch index 0, 1, 2 … needs: credited as right")


DELTA_NOTE = ("δ as written differs from δ = {delta:g} only where the gradient is tiny (none, up to {most:g} as 10e-8 "
              "is, or inside the square root, m̂/√(v̂ + δ)): credited as right")


def _judge(ctx: ItemContext, name: str, weight: float, tr: Trajectory, rows: slice, what: str, note: str = "") -> CheckResult:
    plan = plan_for(ctx.student, ctx.cls)
    rtol, atol = ctx.precision.values(ctx.tol)
    scale = max(float(np.abs(np.array(tr.thetas)).max()), 1.0)
    atol += 4 * ctx.precision.rounding(scale) / tr.eta
    rate = f"η ≈ {tr.eta:.4g} (estimated)" if tr.estimated else f"η = {tr.eta:g}"
    c = tr.consts
    what = (f"the direction each call applied, −(θₜ − θₜ₋₁)/η for t = 1…{len(tr.G)} (one block per call), {what}, "
            f"vs m̂ₜ/(√v̂ₜ + δ) with {rate}, p1 = {c['p1']:g}, p2 = {c['p2']:g}, δ = {c['delta']:g}")
    note = "; ".join(n for n in (note, *plan.notes) if n)
    got, truth = tr.applied[:, rows], tr.truth()[:, rows]
    result = judge(ctx, name, weight, got, exact(truth), situation(ctx, "updateWeights", X=tr.X[0], G=tr.G[0]),
                   rtol=rtol, atol=atol, what=what, note=note)
    if not result.passed and plan.takes("t"):  # the caller's t counted from 0: the rule itself, one step ahead in t
        zero_based = tr.truth("zero_based")[:, rows]
        if np.isfinite(got).all() and close(got, zero_based, rtol, atol):
            _ZERO_BASED.setdefault(ctx.student, set()).add(ctx.cls.name)
            note = "; ".join(n for n in (note, ZERO_BASED_NOTE.format(call=plan.written.split("(")[0])) if n)
            result = judge(ctx, name, weight, got, exact(zero_based), situation(ctx, "updateWeights", X=tr.X[0], G=tr.G[0]),
                           rtol=rtol, atol=atol, what=what + " (t counted from 0: corrections 1 − pᵗ⁺¹)", note=note)
    if not result.passed and np.isfinite(got).all():  # δ as the student wrote it: none, 10e-8 (= 1e-7), inside the square root
        for base in ("course", "zero_based") if plan.takes("t") else ("course",):
            inside = "delta_inside" if base == "course" else f"{base}_delta_inside"
            ends = [adam_directions(tr.grads, c["p1"], c["p2"], d, v)[:, rows]
                    for v, d in ((base, 0.0), (base, 10 * c["delta"]), (inside, 10 * c["delta"]))]
            nearest = np.clip(got, np.minimum.reduce(ends), np.maximum.reduce(ends))  # each entry's nearest answer of δ′ ∈ [0, 10δ]
            if close(got, nearest, rtol, atol):
                notes = [note, DELTA_NOTE.format(delta=c["delta"], most=10 * c["delta"])]
                if base == "zero_based":
                    _ZERO_BASED.setdefault(ctx.student, set()).add(ctx.cls.name)
                    notes.append(ZERO_BASED_NOTE.format(call=plan.written.split("(")[0]))
                result = judge(ctx, name, weight, got, exact(nearest), situation(ctx, "updateWeights", X=tr.X[0], G=tr.G[0]),
                               rtol=rtol, atol=atol, what=what + f" (δ′ anywhere in [0, {10 * c['delta']:g}], outside or inside √)",
                               note="; ".join(n for n in notes if n))
                break
    if not result.passed:
        result.diagnosis = mistake_of(tr, rows, rtol, atol) or result.diagnosis
    return result


def adam_values(single: bool):
    def check(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        tr = trajectories(ctx, 1 if single else N)[0]
        return _judge(ctx, name, weight, tr, W_ROWS, "∂J/∂W's rows (W read back)")
    return check


def adam_bias(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    tr = trajectories(ctx, N, bias_offset=True)[0]
    return _judge(ctx, name, weight, tr, B_ROWS, "the bias (b read back)")


def adam_constants(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Other p1, p2, η (where the signature takes them): each one must enter the step as the rule says."""
    plan = plan_for(ctx.student, ctx.cls)
    taken = [c for c in CONSTANTS if plan.takes(c) and c != "delta"]
    tr = trajectories(ctx, N, asked=OTHER)[0]
    note = (f"constants asked: {', '.join(f'{c} = {OTHER[c]:g}' for c in taken)}" if taken
            else "the signature takes none of p1, p2, η: judged at its own constants")
    return _judge(ctx, name, weight, tr, W_ROWS, "∂J/∂W's rows", note)


def adam_per_layer(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """Two layers stepped in turn: each keeps its own moments (not the class's, not a module's)."""
    first, second = trajectories(ctx, N, layers=2)
    result, notes = None, []
    for tr in (first, second):
        result = _judge(ctx, name, weight, tr, W_ROWS, "∂J/∂W's rows of one of two layers stepped in turn")
        notes += [n for n in (result.note or "").split("; ") if n and n not in notes]  # what either layer's verdict said
        if result.passed:
            result.note = "; ".join(notes)
        else:
            ctx.student.fresh_classes()  # moments the two layers left on the class are not the lone layer's start
            alone = trajectories(ctx, N)[0]  # shared moments only when one layer stepped alone is right
            if result.diagnosis is None and _judge(ctx, name, weight, alone, W_ROWS, "∂J/∂W's rows").passed:
                result.diagnosis = Diagnosis("moments shared between layers (class attributes or module globals?): each layer "
                                             "must keep its own m and v", "fully_connected_adam.shared_moments")
            break
    return result


def adam_next_forward(ctx: ItemContext, name: str, weight: float) -> CheckResult:
    """After the steps, forward() computes with the W and b the getters read back."""
    cls, student = ctx.cls, ctx.student
    tr = trajectories(ctx, N)[0]
    X2 = points.layer_input(ctx.rng, cls, 4, D)
    outcome = student.call(tr.layer, cls, "forward", X2)
    if outcome.kind != "array" or outcome.value.shape != (4, K):
        return CheckResult(name, True, weight, note=f"forward() gave no usable answer: not judged here (see {cls.name}.forward)")
    expected = ctx.truth.fully_connected_forward(X2, tr.W_after, tr.b_after)
    rtol, atol = ctx.precision.values(ctx.tol)
    if not compare(outcome.value, expected, rtol=rtol, atol=atol).passed:
        probe, Wp, bp = student.fully_connected(cls, *points.weights(ctx.rng, D, K))
        again = student.call(probe, cls, "forward", X2)
        if not (again.kind == "array" and compare(again.value, ctx.truth.fully_connected_forward(X2, Wp, bp), rtol=rtol, atol=atol).passed):
            return CheckResult(name, True, weight, note=f"your forward() is not right: not judged here (see {cls.name}.forward)")
    result = judge(ctx, name, weight, outcome.value, exact(expected), situation(ctx, "updateWeights", X=X2, W=tr.W_after, b=tr.b_after),
                   what="forward(X) after the Adam steps vs XW + b with W and b read back")
    if not result.passed:
        result.diagnosis = Diagnosis("forward() after the update does not use the W and b the getters return",
                                     "update.forward_uses_old_weights")
    return result


ADAM_CHECKS = {
    "values": adam_values(False),
    "single_observation": adam_values(True),
    "bias": adam_bias,
    "constants": adam_constants,
    "per_layer": adam_per_layer,
    "next_forward": adam_next_forward,
}

LAYER = _fc.LAYER
MISTAKES = _fc.MISTAKES
CHECKS = {**{m: c for m, c in _fc.CHECKS.items() if m != "updateWeights"}, "updateWeights": ADAM_CHECKS}
