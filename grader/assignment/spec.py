"""The assignment spec: the one registry of gradable items, read from TOML and validated.

A spec is data: each class names its kind, its aliases, its methods, its points and, for
element-wise layers and objectives, the one formula the gradient rule is derived from.
Every check and every report iterates over `Spec.items`; nothing else lists the items.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from grader import cache
from grader.exceptions import FormulaError, SpecError
from grader.kinds import KINDS, check_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: What each kind of class is graded on, in report order (declared in the registry, `grader.kinds`).
GRADED_METHODS = {name: kind.graded_methods for name, kind in KINDS.items()}
#: Methods the grader calls to set up a check; they score nothing by themselves.
HELPER_METHODS = {name: kind.helper_methods for name, kind in KINDS.items()}
#: The shapes a `gradient()` may take for each kind, and the form the spec gives by default.
GRADIENT_FORMS = {name: kind.gradient_forms for name, kind in KINDS.items() if kind.gradient_forms}
DEFAULT_GRADIENT_FORMS = {name: kind.default_gradient_forms for name, kind in KINDS.items() if kind.gradient_forms}
REDUCTIONS = ("mean", "mean_rows", "sum")
UPDATE_REDUCTIONS = ("mean", "sum")  # of ∂J/∂W over the batch's observations (Xᵀδ/N or Xᵀδ)
TARGETS = ("real", "binary", "onehot")
ESTIMATES = ("real", "probability", "distribution")

#: The names a formula may use: z (a layer's input entry), y and yhat (target and estimate), eps,
#: and g (a layer's output, in mistake and rule formulas). The SymPy symbols themselves
#: (spec.Z, spec.Y, …) are made on first use: a warm run never imports SymPy.
FORWARD_NAMES = KINDS["elementwise"].formula.names
LOSS_NAMES = KINDS["objective"].formula.names
#: What each kind's definition (`forward`, `loss`) may name, and its mistakes (declared in `grader.kinds`).
FORMULA_NAMES = {name: kind.formula.names for name, kind in KINDS.items() if kind.formula}
MISTAKE_NAMES = {name: kind.formula.mistake_names for name, kind in KINDS.items() if kind.formula}
#: A rule as the slides write it may also use ε where they put it (g′ = g(1 − g) + ε).
RULE_NAMES = {name: kind.formula.rule_names for name, kind in KINDS.items() if kind.formula}


@functools.lru_cache(maxsize=1)
def symbols() -> dict:
    """{name: SymPy symbol} of every formula name (imports SymPy)."""
    import sympy as sp

    z, y, yhat, eps, g = sp.symbols("z y yhat eps g", real=True)
    return {"z": z, "y": y, "yhat": yhat, "eps": eps, "g": g}


def __getattr__(name):  # spec.Z, spec.YHAT, …: the symbols, made on first use
    table = {"Z": "z", "Y": "y", "YHAT": "yhat", "EPS": "eps", "G": "g"}
    if name in table:
        return symbols()[table[name]]
    raise AttributeError(f"module 'grader.assignment.spec' has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def formula_expr(text: str, names: tuple[str, ...], evaluate: bool = True):
    """The SymPy expression of a formula of the spec (imports SymPy; cached)."""
    from grader.assignment.formulas import parse_formula

    table = symbols()
    return parse_formula(text, {n: table[n] for n in names}, evaluate=evaluate)
#: The environment variable that holds the instructor's secret, unless [hidden] names another.
DEFAULT_SECRET_ENV = "GRADER_HIDDEN_SECRET"
#: The ε range CONTRACT.md accepts: from none at all to 1e-6.
EPSILON_RANGE = (0.0, 1e-6)

_TOP_KEYS = {"assignment", "tolerance", "conventions", "classes", "networks", "hidden", "environment", "late"}
_ENVIRONMENT_KEYS = {"packages"}
_HIDDEN_KEYS = {"items", "checks", "secret_env", "secret_file"}
_ASSIGNMENT_KEYS = {"name", "title", "description", "epsilon", "epsilon_range"}
_TOLERANCE_KEYS = {"rtol", "atol", "fd_step", "fd_rtol", "fd_atol"}
_CONVENTION_KEYS = {"input_ddof"}
_CLASS_KEYS = {
    "kind", "aliases", "methods", "points", "rules", "tolerance", "forward", "loss", "reduction",
    "targets", "estimates", "domain", "kinks", "gradient_forms", "ddof", "mistakes", "rule_formulas", "pin",
    "update_reduction", "adam",
    "kernel", "image", "images", "pool", "stride",
}
#: The image layers' parameters (their kinds' options: grader.kinds.ConvolutionOptions, …): kernel
#: [kH, kW], image [H, W], images "single" (one H×W image, the course's), "batch" (N×H×W) or "nchw"/"nhwc"
#: (N×1×H×W / N×H×W×1: the layout pinned, not probed), pool, stride.
IMAGE_KEYS = ("kernel", "image", "images", "pool", "stride")
_MISTAKE_KEYS = {"method", "name", "formula"}
_NETWORK_KEYS = {"name", "layers", "objective"}


@dataclass(frozen=True)
class Tolerance:
    """How close is right: |got − expected| ≤ atol + rtol·|expected|, and the same for finite differences."""

    rtol: float = 1e-5
    atol: float = 1e-6
    fd_step: float = 1e-6
    fd_rtol: float = 1e-4
    fd_atol: float = 1e-5


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer for one method, as a formula in z and g (layers) or y, ŷ, ε (objectives)."""

    method: str
    name: str
    formula: str
    kind: str = "elementwise"

    @property
    def expr(self):
        return formula_expr(self.formula, MISTAKE_NAMES[self.kind])


@dataclass(frozen=True, eq=False)
class ClassSpec:
    """One gradable class: its kind, names, points and the definition its ground truth comes from."""

    name: str
    kind: str
    aliases: tuple[str, ...]
    methods: dict[str, tuple[str, ...]]
    points: dict[str, float]
    rules: dict[str, str]
    tolerance: Tolerance
    epsilon: float
    epsilon_range: tuple[float, float] = EPSILON_RANGE
    formula: str | None = None
    #: What the spec says of this class that only its kind has (`grader.kinds`: LayerOptions,
    #: InputOptions, ObjectiveOptions): gradient forms and test-point domain, ddof, reduction…
    options: object = None
    mistakes: tuple[Mistake, ...] = ()
    pin: str = ""  # "ClassName" or "path/file.py:ClassName": the one class graded as this item
    #: {method: text}: the rule as the slides write it, equal to the derived one at ε = 0.
    rule_formulas: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def expr(self):
        """The forward (elementwise) or the loss of one entry (objective) as SymPy (imports SymPy)."""
        if self.formula is None:
            return None
        return formula_expr(self.formula, FORMULA_NAMES[self.kind])

    def rule_expr(self, method: str, *, evaluate: bool = True):
        """The rule formula of `method` as SymPy, evaluated (for numbers) or as written (for display)."""
        return formula_expr(self.rule_formulas[method], RULE_NAMES[self.kind], evaluate)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Everything about the class, as text: two classes with the same fingerprint are graded alike."""
        return json.dumps([self.definition, repr(self)])

    def remember_key(self):
        """What remembered truth about the class is keyed by (`grader.truth.remembered`)."""
        return ("class", self.fingerprint)

    @functools.cached_property
    def definition(self) -> str:
        """Everything its derived functions depend on, as text: the key of their cache entries."""
        return json.dumps([self.kind, self.formula, sorted(self.rule_formulas.items()),
                           [(m.method, m.formula) for m in self.mistakes]])

    @property
    def names(self) -> tuple[str, ...]:
        """The class names a submission may use, canonical first."""
        return (self.name, *self.aliases)

    @property
    def graded_methods(self) -> tuple[str, ...]:
        return tuple(m for m in GRADED_METHODS[self.kind] if m in self.points)

    def method_names(self, method: str) -> tuple[str, ...]:
        """The names a submission may give `method`, canonical first."""
        return self.methods.get(method, (method,))


@dataclass(frozen=True)
class Item:
    """One gradable item, `<Class>.<method>`, worth `points`."""

    cls: ClassSpec
    method: str
    points: float

    @property
    def name(self) -> str:
        return f"{self.cls.name}.{self.method}"


@dataclass(frozen=True)
class Hidden:
    """What self-checks do not run: whole items and checks, seeded from an instructor secret never shipped."""

    items: frozenset[str]
    checks: frozenset[str]
    secret_env: str = DEFAULT_SECRET_ENV
    secret_file: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """A small network of the student's own layers, back-propagated as a 0-point diagnostic."""

    name: str
    layers: tuple[str, ...]
    objective: str

    @property
    def item_name(self) -> str:
        return f"Network.{self.name}"


@dataclass(frozen=True, eq=False)
class Spec:
    """A whole assignment: its classes (the registry of items), tolerances and diagnostics."""

    name: str
    title: str
    source: str
    epsilon: float
    classes: dict[str, ClassSpec]
    networks: tuple[NetworkSpec, ...]
    fingerprint: str
    hidden: "Hidden" = None
    packages: tuple[str, ...] = ("numpy",)  # third-party packages student code may import ([environment])
    late: object = None  # grader.assignment.late.LatePolicy: what late work loses ([late]); None: nothing
    description: str = ""  # one line: what the assignment grades ([assignment] description)

    def is_hidden(self, item: str, check: str | None = None) -> bool:
        """True for a hidden item, or a check hidden everywhere ("edges") or in one item ("Item.method:edges")."""
        if self.hidden is None:
            return False
        if check is None:
            return item in self.hidden.items
        return item in self.hidden.items or check in self.hidden.checks or f"{item}:{check}" in self.hidden.checks

    def secret(self) -> str | None:
        """The instructor's secret (its environment variable, else its file), or None: a self-check.

        It seeds official grading and the hidden checks; the variable is GRADER_HIDDEN_SECRET unless
        the spec's [hidden] names another."""
        env = self.hidden.secret_env if self.hidden is not None else DEFAULT_SECRET_ENV
        value = os.environ.get(env, "")
        if value:
            return value
        if self.hidden is not None and self.hidden.secret_file:
            try:
                return Path(self.hidden.secret_file).read_text().strip() or None
            except OSError:
                return None
        return None

    hidden_secret = secret

    @property
    def items(self) -> list[Item]:
        return [Item(c, m, c.points[m]) for c in self.classes.values() for m in c.graded_methods]

    @property
    def graded_classes(self) -> list[ClassSpec]:
        """The classes with at least one graded method, in the spec's order."""
        return [c for c in self.classes.values() if c.graded_methods]

    @property
    def max_score(self) -> float:
        return sum(item.points for item in self.items)

    def find_class(self, name: str) -> ClassSpec | None:
        """Return the class whose canonical name or alias is `name`, case-insensitively."""
        key = name.lower()
        for cls in self.classes.values():
            if key in (n.lower() for n in cls.names):
                return cls
        return None


def default_spec_path() -> Path:
    """Return the path of the built-in spec (the assignment of CONTRACT.md)."""
    return Path(str(resources.files("grader.assignment.specs").joinpath("default.toml")))


def spec_path(path_or_name: str | Path | None) -> Path:
    """The spec file meant by `path_or_name`: a file, else a built-in spec's name (`cnn`), None the default.

    A file of that name wins over the built-in spec; neither raises SpecError naming the built-in ones."""
    from grader.assignment.specs import BUILT_IN, built_in_path

    if path_or_name is None:
        return default_spec_path()
    path = Path(path_or_name)
    if path.exists() or str(path_or_name) not in BUILT_IN:
        if not path.exists() and not path.suffix and path.parent == Path("."):
            raise SpecError(str(path), f"no such file, nor a built-in spec (built-in: {', '.join(BUILT_IN)}; "
                                       "grade-admin spec --list describes them)")
        return path
    return built_in_path(str(path_or_name))


def load_spec(path: str | Path | None = None) -> Spec:
    """Read, validate and return the spec at `path`, a file or a built-in spec's name (the default when None)."""
    path = spec_path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(source, "no such file") from None
    except OSError as exc:
        raise SpecError(source, f"cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(source, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, f"is not valid TOML: {exc}") from None
    fingerprint = hashlib.sha256(raw).hexdigest()
    # What validating the formulas derived (with SymPy) is cached: a warm load reads the TOML only.
    key = cache.key("spec", fingerprint)
    derived = cache.read(key, ".spec.json", lambda text, _: _derived_from_json(text))
    spec = parse_spec(data, source=source, fingerprint=fingerprint, derived=derived)
    if derived is None:
        cache.write(key, ".spec.json", json.dumps({name: {"kinks": list(getattr(c.options, "kinks", ())),
                                                          "squared_error": getattr(c.options, "squared_error", False)}
                                                   for name, c in spec.classes.items()}))
    return spec


def _derived_from_json(text: str) -> dict:
    data = json.loads(text)
    return {str(name): {"kinks": tuple(float(k) for k in d["kinks"]), "squared_error": bool(d["squared_error"])}
            for name, d in data.items()}


def parse_spec(data: dict, *, source: str = "<spec>", fingerprint: str = "", derived: dict | None = None) -> Spec:
    """Validate the TOML data of a spec and return it as a `Spec`; raise `SpecError` naming what is wrong.

    `derived` holds what checking the formulas found for this very spec before (its kinks, …):
    with it the formulas are not parsed again, and SymPy is not needed.
    """
    _no_unknown(data, _TOP_KEYS, source)
    assignment = _table(data, "assignment", source)
    _no_unknown(assignment, _ASSIGNMENT_KEYS, source, section="assignment")
    epsilon = _number(assignment.get("epsilon", 1e-7), source, None, "epsilon", positive=True)
    epsilon_range = _epsilon_range(assignment.get("epsilon_range", list(EPSILON_RANGE)), epsilon, source)
    tolerance = _tolerance(_table(data, "tolerance", source), Tolerance(), source, None)
    conventions = _table(data, "conventions", source)
    _no_unknown(conventions, _CONVENTION_KEYS, source, section="conventions")
    ddof = conventions.get("input_ddof", 1)
    if ddof not in (0, 1):
        raise SpecError(source, "must be 0 or 1", key="conventions.input_ddof")

    classes_data = data.get("classes")
    if not isinstance(classes_data, dict) or not classes_data:
        raise SpecError(source, "declares no [classes.<Name>] table: a spec needs at least one gradable class")
    classes = {}
    for name, body in classes_data.items():
        classes[name] = _class(name, body, source, tolerance, epsilon, epsilon_range, ddof,
                               derived.get(name) if derived is not None else None)
    _no_name_clashes(classes, source)

    networks = tuple(_network(i, n, classes, source) for i, n in enumerate(data.get("networks", [])))
    hidden = _hidden(data.get("hidden"), classes, source)
    packages = _environment(_table(data, "environment", source), source)
    from grader.assignment.late import parse_policy

    late = parse_policy(data.get("late"), source)
    spec = Spec(
        name=str(assignment.get("name", Path(source).stem)),
        title=str(assignment.get("title", assignment.get("name", Path(source).stem))),
        source=source,
        epsilon=epsilon,
        classes=classes,
        networks=networks,
        fingerprint=fingerprint or hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest(),
        hidden=hidden,
        packages=packages,
        late=late,
        description=str(assignment.get("description", "")),
    )
    if spec.max_score <= 0:
        raise SpecError(source, "gives no points at all: set `points` on at least one class")
    return spec


def _class(name, body, source, tolerance, epsilon, epsilon_range, ddof, derived=None) -> ClassSpec:
    if not isinstance(body, dict):
        raise SpecError(source, "must be a table", item=name)
    if not name.isidentifier():
        raise SpecError(source, "a class name must be a Python identifier", item=name)
    _no_unknown(body, _CLASS_KEYS, source, item=name)
    kind = body.get("kind")
    if kind not in GRADED_METHODS:
        raise SpecError(source, f"unknown kind {kind!r}; use one of {', '.join(GRADED_METHODS)}", item=name, key="kind")

    aliases = _names(body.get("aliases", []), source, name, "aliases")
    methods = {}
    method_data = body.get("methods", {})
    if not isinstance(method_data, dict):
        raise SpecError(source, "must be a table of method = [aliases]", item=name, key="methods")
    known_methods = GRADED_METHODS[kind] + HELPER_METHODS[kind]
    for method, alias_list in method_data.items():
        if method not in known_methods:
            raise SpecError(source, f"unknown method '{method}' for kind {kind}; known: {', '.join(known_methods)}", item=name, key=f"methods.{method}")
        methods[method] = (method, *_names(alias_list, source, name, f"methods.{method}"))

    points_data = body.get("points", {})
    if not isinstance(points_data, dict):
        raise SpecError(source, "must be a table of method = points", item=name, key="points")
    points = {}
    for method, value in points_data.items():
        if method not in GRADED_METHODS[kind]:
            raise SpecError(source, f"'{method}' is not graded for kind {kind}; graded: {', '.join(GRADED_METHODS[kind])}", item=name, key=f"points.{method}")
        points[method] = _number(value, source, name, f"points.{method}", nonnegative=True)

    rules = body.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(v, str) for v in rules.values()):
        raise SpecError(source, "must be a table of method = \"text\"", item=name, key="rules")
    for method in rules:
        if method not in GRADED_METHODS[kind]:
            raise SpecError(source, f"'{method}' is not graded for kind {kind}", item=name, key=f"rules.{method}")

    fields = dict(
        name=name, kind=kind, aliases=aliases, methods=methods, points=points, rules=dict(rules),
        tolerance=_tolerance(body.get("tolerance", {}), tolerance, source, name), epsilon=epsilon,
        epsilon_range=epsilon_range, ddof=ddof,
    )
    if kind == "elementwise":
        fields.update(_elementwise(name, body, source, derived))
    elif "forward" in body:
        raise SpecError(source, f"a {kind} class has its forward built in; only elementwise classes take a formula", item=name, key="forward")
    if kind == "objective":
        fields.update(_objective(name, body, source, derived))
    else:
        for key in ("loss", "reduction", "targets", "estimates"):
            if key in body:
                raise SpecError(source, f"only objectives take '{key}'", item=name, key=key)
    if kind in GRADIENT_FORMS:
        forms = tuple(body.get("gradient_forms", DEFAULT_GRADIENT_FORMS[kind]))
        bad = [f for f in forms if f not in GRADIENT_FORMS[kind]]
        if bad or not forms:
            raise SpecError(source, f"accepted forms for {kind} are {', '.join(GRADIENT_FORMS[kind])}; got {bad or 'none'}", item=name, key="gradient_forms")
        fields["gradient_forms"] = forms
    elif "gradient_forms" in body:
        raise SpecError(source, f"a {kind} class has no gradient() forms to choose", item=name, key="gradient_forms")
    if "update_reduction" in body:
        if kind not in ("fully_connected", "fully_connected_adam") or body["update_reduction"] not in UPDATE_REDUCTIONS:
            raise SpecError(source, f"a fully connected class's update_reduction is one of {', '.join(UPDATE_REDUCTIONS)}",
                            item=name, key="update_reduction")
        fields["update_reduction"] = body["update_reduction"]
    fields.update(_geometry(name, kind, body, source))
    fields.update(_adam(name, kind, body, source))
    if kind == "input" and "ddof" in body:
        if body["ddof"] not in (0, 1):
            raise SpecError(source, "must be 0 or 1", item=name, key="ddof")
        fields["ddof"] = body["ddof"]
    fields["mistakes"] = _mistakes(name, kind, body.get("mistakes", []), source, check=derived is None)
    fields["rule_formulas"] = _rule_formulas(name, kind, body.get("rule_formulas", {}), fields.get("formula"), source,
                                             check=derived is None)
    pin = body.get("pin", "")
    if not isinstance(pin, str) or (pin and not pin.rpartition(":")[2].isidentifier()):
        raise SpecError(source, 'must be "ClassName" or "path/file.py:ClassName"', item=name, key="pin")
    fields["pin"] = pin
    options = KINDS[kind].options
    given = {key: fields.pop(key) for key in _OPTION_KEYS if key in fields}
    fields["options"] = options(**{key: value for key, value in given.items() if key in options.__dataclass_fields__})
    return ClassSpec(**fields)


#: What `_class` reads that belongs in a kind's options object.
_OPTION_KEYS = ("reduction", "targets", "estimates", "squared_error", "domain", "kinks", "gradient_forms", "ddof", "update_reduction",
                "kernel", "image", "images", "pool", "stride", "p1", "p2", "eta", "delta", "steps")
#: Adam's constants (`adam = { p1 = 0.9, p2 = 0.999, eta = 0.001, delta = 1e-8, steps = 3 }`), a fully_connected_adam class's.
ADAM_KEYS = ("p1", "p2", "eta", "delta", "steps")


def _adam(name, kind, body, source) -> dict:
    """A fully_connected_adam class's `adam` table, validated: 0 < p1, p2 < 1, η > 0, δ ≥ 0, 2 ≤ steps ≤ 10."""
    if "adam" not in body:
        return {}
    table = body["adam"]
    if kind != "fully_connected_adam":
        raise SpecError(source, f"a {kind} class takes no 'adam' table (kind = \"fully_connected_adam\" does)", item=name, key="adam")
    if not isinstance(table, dict):
        raise SpecError(source, "must be a table: adam = { p1 = 0.9, p2 = 0.999, eta = 0.001, delta = 1e-8, steps = 3 }", item=name, key="adam")
    _no_unknown(table, set(ADAM_KEYS), source, item=name)
    out = {}
    for key, value in table.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "steps":
            ok = ok and isinstance(value, int) and 2 <= value <= 10
        elif key in ("p1", "p2"):
            ok = ok and 0 < value < 1
        elif key == "eta":
            ok = ok and value > 0
        else:
            ok = ok and value >= 0
        if not ok:
            raise SpecError(source, {"steps": "must be a whole number from 2 to 10", "p1": "must lie between 0 and 1",
                                     "p2": "must lie between 0 and 1", "eta": "must be positive", "delta": "must be 0 or more"}[key],
                            item=name, key=f"adam.{key}")
        out[key] = value if key == "steps" else float(value)
    return out


def _geometry(name, kind, body, source) -> dict:
    """An image layer's parameters given in the spec (IMAGE_KEYS its kind's options have), validated."""
    import dataclasses

    allowed = {f.name: f.default for f in dataclasses.fields(KINDS[kind].options) if f.name in IMAGE_KEYS}
    for key in IMAGE_KEYS:
        if key in body and key not in allowed:
            raise SpecError(source, f"a {kind} class takes no '{key}'" + (f"; it takes {', '.join(allowed)}" if allowed else ""),
                            item=name, key=key)
    out = dict(allowed)
    for key in allowed:
        if key not in body:
            continue
        value = body[key]
        if key in ("kernel", "image"):
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 30 for v in value)):
                raise SpecError(source, "must be [height, width], whole numbers from 1 to 30", item=name, key=key)
            value = tuple(value)
        elif key == "images":
            if value not in ("single", "batch", "nchw", "nhwc"):
                raise SpecError(source, 'must be "single" (one H×W image), "batch" (N×H×W), or a layout of one channel: '
                                        '"nchw" (N×1×H×W) or "nhwc" (N×H×W×1)', item=name, key=key)
        elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
            raise SpecError(source, "must be a whole number from 1 to 10", item=name, key=key)
        out[key] = value
    image = out.get("image")
    if "kernel" in out and any(k > i for k, i in zip(out["kernel"], image)):
        raise SpecError(source, "the kernel must fit in the image", item=name, key="kernel")
    if "pool" in out and out["pool"] > min(image):
        raise SpecError(source, "the pool must fit in the image", item=name, key="pool")
    return {key: value for key, value in out.items() if key in body}


def _elementwise(name, body, source, derived=None) -> dict:
    formula = body.get("forward")
    if not isinstance(formula, str):
        raise SpecError(source, "an elementwise class needs `forward = \"<formula in z>\"`", item=name, key="forward")
    domain = body.get("domain", [-3.0, 3.0])
    if (not isinstance(domain, list) or len(domain) != 2 or not all(isinstance(v, (int, float)) for v in domain)
            or not domain[0] < domain[1]):
        raise SpecError(source, "must be [low, high] with low < high", item=name, key="domain")
    kinks = body.get("kinks", [])
    if not isinstance(kinks, list) or not all(isinstance(v, (int, float)) for v in kinks):
        raise SpecError(source, "must be a list of numbers", item=name, key="kinks")
    if derived is not None:
        found = derived["kinks"]
    else:
        found = _derived_kinks(_formula(formula, FORWARD_NAMES, source, name, "forward"))
    return dict(formula=formula, domain=(float(domain[0]), float(domain[1])),
                kinks=tuple(sorted(set(float(k) for k in kinks) | set(found))))


def _objective(name, body, source, derived=None) -> dict:
    formula = body.get("loss")
    if not isinstance(formula, str):
        raise SpecError(source, "an objective needs `loss = \"<formula in y, yhat, eps>\"`", item=name, key="loss")
    if derived is not None:
        fields = dict(formula=formula, squared_error=derived["squared_error"])
    else:
        expr = _formula(formula, LOSS_NAMES, source, name, "loss")
        if symbols()["yhat"] not in expr.free_symbols:
            raise SpecError(source, "the loss does not depend on yhat, so it has no gradient", item=name, key="loss")
        import sympy as sp

        fields = dict(formula=formula, squared_error=sp.expand(expr - (symbols()["y"] - symbols()["yhat"]) ** 2) == 0)
    for key, allowed, default in (("reduction", REDUCTIONS, "mean"), ("targets", TARGETS, "real"), ("estimates", ESTIMATES, "real")):
        value = body.get(key, default)
        if value not in allowed:
            raise SpecError(source, f"must be one of {', '.join(allowed)}; got {value!r}", item=name, key=key)
        fields[key] = value
    return fields


def _mistakes(name, kind, entries, source, check=True) -> tuple[Mistake, ...]:
    if not isinstance(entries, list):
        raise SpecError(source, "must be a list of {method, name, formula}", item=name, key="mistakes")
    names = MISTAKE_NAMES.get(kind)
    out = []
    for i, entry in enumerate(entries):
        key = f"mistakes[{i}]"
        if names is None:
            raise SpecError(source, f"formula mistakes are for elementwise and objective classes, not {kind}", item=name, key=key)
        if not isinstance(entry, dict):
            raise SpecError(source, "must be a table {method, name, formula}", item=name, key=key)
        _no_unknown(entry, _MISTAKE_KEYS, source, item=name, prefix=f"{key}.")
        method = entry.get("method")
        if method not in GRADED_METHODS[kind]:
            raise SpecError(source, f"method must be one of {', '.join(GRADED_METHODS[kind])}", item=name, key=f"{key}.method")
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise SpecError(source, "needs a name", item=name, key=f"{key}.name")
        if check or not isinstance(entry.get("formula"), str):
            _formula(entry.get("formula"), names, source, name, f"{key}.formula")
        out.append(Mistake(method=method, name=entry["name"], formula=entry["formula"], kind=kind))
    return tuple(out)


def _rule_formulas(name, kind, data, definition, source, check=True) -> dict[str, str]:
    """The rules as the slides write them; each must be the derived rule where ε = 0."""
    if not isinstance(data, dict):
        raise SpecError(source, "must be a table of method = \"formula\"", item=name, key="rule_formulas")
    names = RULE_NAMES.get(kind)
    out = {}
    for method, text in data.items():
        key = f"rule_formulas.{method}"
        if names is None:
            raise SpecError(source, f"rule formulas are for elementwise and objective classes, not {kind}", item=name, key=key)
        if method != "gradient":
            raise SpecError(source, "only the gradient's rule can be given as a formula (the rest is the definition)", item=name, key=key)
        if check or not isinstance(text, str):
            formula = _formula(text, names, source, name, key)
            expr = formula_expr(definition, FORMULA_NAMES[kind])
            problem = _differs_from_derived(kind, expr, formula)
            if problem:
                raise SpecError(source, problem, item=name, key=key)
        out[method] = text
    return out


def _differs_from_derived(kind, expr, formula) -> str:
    """Why `formula` is not the derivative of `expr` at ε = 0 (checked at sample points), or ''."""
    import numpy as np
    import sympy as sp

    s = symbols()
    if kind == "objective":
        wrt, names = s["yhat"], (s["y"], s["yhat"])
        samples = [(y, yhat) for y in (0.0, 1.0, 0.3) for yhat in (0.07, 0.35, 0.62, 0.91)]
    else:
        wrt, names = s["z"], (s["z"],)
        samples = [(z,) for z in (-2.3, -0.7, 0.4, 1.9)]
    derived = sp.diff(expr, wrt).subs(s["eps"], 0)
    written = formula.subs(s["eps"], 0)
    if kind == "elementwise":
        written = written.subs(s["g"], expr)
    for point in samples:
        values = dict(zip(names, point))
        try:
            want, have = complex(derived.subs(values).evalf()), complex(written.subs(values).evalf())
        except (TypeError, ValueError):
            continue
        if not np.isclose(want, have, rtol=1e-9, atol=1e-12):
            where = ", ".join(f"{s} = {v:g}" for s, v in values.items())
            return (f"is not the derived rule at ε = 0: at {where} it gives {have.real:.6g}, the derivative of the "
                    f"definition {want.real:.6g}")
    return ""


def _environment(data, source) -> tuple[str, ...]:
    """The third-party packages student code may import; each must be installed where the grader runs."""
    from grader.sandbox.environment import missing_packages

    _no_unknown(data, _ENVIRONMENT_KEYS, source, section="environment")
    packages = data.get("packages", ["numpy"])
    if not isinstance(packages, list) or not all(isinstance(p, str) and p.isidentifier() for p in packages):
        raise SpecError(source, "must be a list of import names, e.g. [\"numpy\", \"scipy\"]", key="environment.packages")
    missing = missing_packages(packages)
    if missing:
        raise SpecError(source, f"{', '.join(missing)} cannot be imported where the grader runs; install "
                                f"{'it' if len(missing) == 1 else 'them'} (pip install …) or leave {'it' if len(missing) == 1 else 'them'} out",
                        key="environment.packages")
    return tuple(dict.fromkeys(["numpy", *packages]))  # the worker itself needs numpy


def _epsilon_range(value, epsilon, source) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] < value[1]):
        raise SpecError(source, "must be [low, high] with 0 ≤ low < high", key="assignment.epsilon_range")
    if not value[0] <= epsilon <= value[1]:
        raise SpecError(source, f"must contain the assignment's epsilon {epsilon:g}", key="assignment.epsilon_range")
    return float(value[0]), float(value[1])


def _network(index, data, classes, source) -> NetworkSpec:
    key = f"networks[{index}]"
    if not isinstance(data, dict):
        raise SpecError(source, "must be a table {name, layers, objective}", key=key)
    _no_unknown(data, _NETWORK_KEYS, source, prefix=f"{key}.")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(source, "needs a name that is an identifier", key=f"{key}.name")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError(source, "needs a list of layer classes", key=f"{key}.layers")
    for layer in layers:
        if layer not in classes or classes[layer].kind in ("objective",):
            raise SpecError(source, f"'{layer}' is not a layer class of this spec", key=f"{key}.layers")
    if layers.count("InputLayer") and layers[0] != "InputLayer":
        raise SpecError(source, "an input layer can only come first", key=f"{key}.layers")
    objective = data.get("objective")
    if objective not in classes or classes[objective].kind != "objective":
        raise SpecError(source, f"'{objective}' is not an objective class of this spec", key=f"{key}.objective")
    return NetworkSpec(name=name, layers=tuple(layers), objective=objective)


def _hidden(data, classes, source) -> Hidden | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise SpecError(source, "[hidden] must be a table", key="hidden")
    _no_unknown(data, _HIDDEN_KEYS, source, section="hidden")
    items = data.get("items", [])
    checks = data.get("checks", [])
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise SpecError(source, "must be a list of \"Class.method\" names", key="hidden.items")
    graded = {f"{c.name}.{m}" for c in classes.values() for m in c.graded_methods}
    for item in items:
        if item not in graded:
            raise SpecError(source, f"'{item}' is not a graded item of this spec", key="hidden.items")
    known = check_names()
    if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
        raise SpecError(source, "must be a list of check names (\"edges\" or \"Class.method:edges\")", key="hidden.checks")
    for check in checks:
        item, _, name = check.rpartition(":")
        if name not in known or (item and item not in graded):
            raise SpecError(source, f"'{check}' names no check; checks are {', '.join(sorted(known))}", key="hidden.checks")
    secret_env = data.get("secret_env", DEFAULT_SECRET_ENV)
    secret_file = data.get("secret_file", "")
    if not isinstance(secret_env, str) or not secret_env or not isinstance(secret_file, str):
        raise SpecError(source, "secret_env and secret_file are strings", key="hidden")
    if secret_file and not Path(secret_file).is_absolute():
        secret_file = str(Path(source).resolve().parent / secret_file)
    return Hidden(items=frozenset(items), checks=frozenset(checks), secret_env=secret_env, secret_file=secret_file)


def _derived_kinks(expr) -> list[float]:
    """Return the real points where a Piecewise, Abs, Max or Min of `expr` switches branch."""
    import sympy as sp

    points = []
    for node in sp.preorder_traversal(expr):
        conditions = []
        if isinstance(node, sp.Piecewise):
            conditions = [cond for _, cond in node.args if cond not in (sp.true, sp.false)]
        elif isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            conditions = [sp.Eq(node.args[0], 0)]
        elif isinstance(node, (sp.Max, sp.Min)):
            conditions = [sp.Eq(a, b) for a, b in zip(node.args, node.args[1:])]
        for cond in conditions:
            for rel in cond.atoms(sp.core.relational.Relational):
                try:
                    roots = sp.solve(sp.Eq(rel.lhs, rel.rhs), symbols()["z"])
                except (NotImplementedError, TypeError):
                    continue
                points += [float(r) for r in roots if getattr(r, "is_real", False)]
    return points


def _formula(text, names, source, item, key):
    if not isinstance(text, str):
        raise SpecError(source, "must be a formula string", item=item, key=key)
    try:
        return formula_expr(text, tuple(names))
    except FormulaError as exc:
        raise SpecError(source, str(exc), item=item, key=key) from None


def _tolerance(data, base: Tolerance, source, item) -> Tolerance:
    if not isinstance(data, dict):
        raise SpecError(source, "must be a table", item=item, key="tolerance")
    _no_unknown(data, _TOLERANCE_KEYS, source, item=item, prefix="tolerance." if item else "", section=None if item else "tolerance")
    values = {k: _number(v, source, item, f"tolerance.{k}", positive=True) for k, v in data.items()}
    return Tolerance(**{**base.__dict__, **values})


def _number(value, source, item, key, *, positive=False, nonnegative=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(source, f"must be a number, got {value!r}", item=item, key=key)
    if positive and value <= 0:
        raise SpecError(source, f"must be positive, got {value!r}", item=item, key=key)
    if nonnegative and value < 0:
        raise SpecError(source, f"must not be negative, got {value!r}", item=item, key=key)
    return float(value)


def _names(value, source, item, key) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.isidentifier() for v in value):
        raise SpecError(source, "must be a list of Python identifiers", item=item, key=key)
    return tuple(value)


def _table(data, key, source) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(source, f"[{key}] must be a table", key=key)
    return value


def _no_unknown(data, allowed, source, *, item=None, prefix="", section=None):
    import difflib

    for key in data:
        if key not in allowed:
            where = f"{section}.{key}" if section else f"{prefix}{key}"
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SpecError(source, f"unknown key; {hint}allowed here: {', '.join(sorted(allowed))}", item=item, key=where)


def _no_name_clashes(classes: dict[str, ClassSpec], source):
    seen = {}
    for cls in classes.values():
        for n in cls.names:
            other = seen.setdefault(n.lower(), cls.name)
            if other != cls.name:
                raise SpecError(source, f"the name '{n}' is used by both {other} and {cls.name}", item=cls.name, key="aliases")
