"""Symbolic ground truth: SymPy expressions of each forward or loss, and gradients SymPy derives.

Only the definitions are written here (g(z) from the spec, softmax, xW + b, the z-score, the
loss of one entry); every Jacobian and derivative comes from `sympy.diff` or
`Matrix.jacobian`. Expressions are lambdified once with `cse=True`, kept in memory and, as
generated source, on disk under a key of the expression itself, so a second run or a second
submission pays nothing; the rules printed for the reports (LaTeX, MathML) are kept the same
way, keyed also by this module's own source, since they depend on how it prints. Entries
numpy cannot evaluate finitely (e^1000 / e^1000) are recomputed with mpmath at 50 digits, so
the truth stays exact at the edges.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import html
import inspect
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from grader import __version__
from grader.spec import EPS, G, YHAT, Y, Z, ClassSpec

#: The smallest ε that counts at ŷ = 0 or 1, where ε = 0 gives ln 0: np.finfo(float).eps and
#: 1e-15 are what students write there.
TINY_EPSILON = 1e-16


@dataclass(frozen=True)
class Band:
    """The truth at the spec's ε, and the interval every accepted ε (and way of writing ε) spans."""

    nominal: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

_MEMORY: dict[str, object] = {}


def cache_dir() -> Path | None:
    """Return the folder for lambdified code ($GRADER_CACHE_DIR, else the user cache), or None if disabled."""
    configured = os.environ.get("GRADER_CACHE_DIR")
    if configured == "":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nn-grader"


@functools.lru_cache(maxsize=1)
def _numpy_namespace() -> dict:
    """The globals lambdify gives numpy code, so cached source runs exactly as freshly generated code."""
    return dict(sp.lambdify([], 0, modules="numpy").__globals__)


def _cache_key(*parts: str) -> str:
    """A disk-cache key: the content, the grader and SymPy versions."""
    return hashlib.sha256("|".join((__version__, sp.__version__) + parts).encode()).hexdigest()[:32]


def _read_cached(key: str, suffix: str, load):
    """`load(text)` of the cached file, or None when it is absent, disabled or damaged (never trusted)."""
    folder = cache_dir()
    path = folder / f"{key}{suffix}" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return load(path.read_text(), str(path))
    except Exception:  # a damaged cache entry is rebuilt
        return None


def _write_cached(key: str, suffix: str, text: str) -> None:
    folder = cache_dir()
    if folder is None:
        return
    path = folder / f"{key}{suffix}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: parallel graders never read half a file
    except OSError:
        pass  # a read-only cache only costs time


def _load_lambdified(text: str, filename: str):
    """The function in a cached file, after checking that it is arithmetic and nothing else.

    The cache lives where the grader's user can write, and in the process sandbox as an ordinary
    user so can student code: a file that is not exactly the shape lambdify writes (one function of
    plain names, arithmetic, comparisons and numpy ufuncs; no attribute, no import, no other call)
    is refused and derived afresh, so nothing planted there ever runs.
    """
    tree = ast.parse(text, filename)
    problem = _not_arithmetic(tree)
    if problem:
        raise ValueError(f"cached code refused: {problem}")
    namespace = {name: value for name, value in _numpy_namespace().items() if name in _ARITHMETIC_NAMES}
    exec(compile(tree, filename, "exec"), namespace)
    return namespace["_lambdifygenerated"]


@functools.lru_cache(maxsize=1)
def _arithmetic_names() -> frozenset:
    """The numpy names generated code may call or read: ufuncs, select/where, and constants."""
    return frozenset(name for name, value in _numpy_namespace().items()
                     if isinstance(value, np.ufunc) or name in ("select", "where", "nan", "inf", "pi", "e", "NaN"))


class _LazyNames:
    def __contains__(self, name):
        return name in _arithmetic_names()


_ARITHMETIC_NAMES = _LazyNames()
_ALLOWED_NODES = (ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.Name, ast.Load, ast.Store,
                  ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.List, ast.Tuple, ast.Call, ast.keyword,
                  ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.IfExp)


def _not_arithmetic(tree: ast.Module) -> str:
    """Why `tree` is not a lambdified function of arithmetic only, or ''."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != "_lambdifygenerated":
        return "not a single _lambdifygenerated function"
    function = tree.body[0]
    if function.decorator_list or function.returns:
        return "decorated"
    local = {a.arg for a in function.args.args}
    for node in ast.walk(function):
        if not isinstance(node, _ALLOWED_NODES):
            return f"{type(node).__name__} is not arithmetic"
        if isinstance(node, ast.Assign):
            if not all(isinstance(t, ast.Name) for t in node.targets):
                return "an assignment to something other than a name"
            local |= {t.id for t in node.targets}
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _ARITHMETIC_NAMES):
            return f"a call of {ast.unparse(node.func)}"
        if isinstance(node, ast.keyword) and node.arg != "default":
            return f"the keyword {node.arg}"
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool, type(None))):
            return "a constant that is not a number"
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local and node.id not in _ARITHMETIC_NAMES:
            return f"the name {node.id}"
    return ""


def compile_exprs(args: list[sp.Symbol], exprs: list[sp.Expr]):
    """Return a numpy function of `args` that returns the list `exprs`, from memory, disk or lambdify."""
    fast_key = (tuple(args), tuple(exprs))  # hashing SymPy objects is cached; srepr below is not
    if fast_key in _MEMORY:
        return _MEMORY[fast_key]
    key = _cache_key(sp.srepr(tuple(args)), sp.srepr(tuple(exprs)))
    if key in _MEMORY:
        _MEMORY[fast_key] = _MEMORY[key]
        return _MEMORY[key]
    fn = _read_cached(key, ".py", _load_lambdified)
    if fn is None:
        fn = sp.lambdify(args, list(exprs), modules="numpy", cse=True)
        _write_cached(key, ".py", inspect.getsource(fn))
    _MEMORY[key] = _MEMORY[fast_key] = fn
    return fn


def _evaluate(fn, columns: list, shape: tuple[int, ...]) -> np.ndarray:
    """Call `fn` on broadcastable arrays and stack its outputs along a new last axis."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs = fn(*columns)
    return np.stack([np.broadcast_to(np.asarray(o, dtype=float), shape) for o in outs], axis=-1)


def _elementwise(expr: sp.Expr, symbols: list[sp.Symbol], values: list[np.ndarray]) -> np.ndarray:
    """Evaluate a scalar expression entry by entry; non-finite entries are redone with mpmath."""
    values = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values])
    shape = values[0].shape
    out = _evaluate(compile_exprs(symbols, [expr]), values, shape)[..., 0].copy()
    bad = ~np.isfinite(out)
    if bad.any():
        precise = _mpmath_function(tuple(symbols), expr)
        import mpmath

        with mpmath.workdps(50):
            for idx in zip(*np.nonzero(bad)):
                try:
                    out[idx] = float(sp.re(precise(*(mpmath.mpf(float(v[idx])) for v in values))))
                except ZeroDivisionError:
                    pass  # a true pole (e.g. ln 0 with ε = 0): numpy's ±inf or NaN stands
                except (ValueError, OverflowError, TypeError):
                    out[idx] = np.nan
    return out


@functools.lru_cache(maxsize=None)
def _mpmath_function(symbols: tuple, expr: sp.Expr):
    return sp.lambdify(symbols, expr, modules="mpmath")


def _jacobian_per_row(fn, X: np.ndarray, k_out: int, d_in: int, extra=()) -> np.ndarray:
    columns = [X[:, d] for d in range(X.shape[1])] + list(extra)
    return _evaluate(fn, columns, (X.shape[0],)).reshape(X.shape[0], k_out, d_in)


# ----------------------------------------------------------------------------- definitions


@functools.lru_cache(maxsize=None)
def softmax_exprs(k: int):
    """Return (symbols z_0..z_{K-1}, the K softmax outputs, their K×K Jacobian derived by SymPy)."""
    z = sp.symbols(f"z0:{k}", real=True)
    denominator = sum(sp.exp(zi) for zi in z)
    g = sp.Matrix([sp.exp(zi) / denominator for zi in z])
    return z, list(g), list(g.jacobian(z))


@functools.lru_cache(maxsize=None)
def fully_connected_exprs(d: int, k: int):
    """Return (x, W, b symbols, the K outputs of xW + b, their K×D Jacobian ∂h/∂x derived by SymPy)."""
    x = sp.Matrix(1, d, sp.symbols(f"x0:{d}", real=True))
    W = sp.Matrix(d, k, sp.symbols(f"W0:{d * k}", real=True))
    b = sp.Matrix(1, k, sp.symbols(f"b0:{k}", real=True))
    h = x * W + b
    return list(x), list(W), list(b), list(h), list(h.jacobian(x))


@functools.lru_cache(maxsize=None)
def zscore_exprs(n: int, ddof: int):
    """Return (x, data symbols d_1..d_N, the z-score of x by the mean and std of the data; σ = 0 counts as 1)."""
    x = sp.Symbol("x", real=True)
    data = sp.symbols(f"d0:{n}", real=True)
    mean = sum(data) / n
    var = sum((di - mean) ** 2 for di in data) / (n - ddof) if n - ddof > 0 else sp.Integer(0)
    std = sp.sqrt(var)
    # "σ = 0" in floating point: a variance at rounding level of the column's own scale.
    scale = sum(di**2 for di in data) / n
    return x, data, sp.Piecewise(((x - mean), sp.Le(var, sp.Float(1e-24) * scale)), ((x - mean) / std, True))


# ----------------------------------------------------------------------------- ground truth


class SymbolicTruth:
    """Values and gradients of every kind of item, computed from SymPy expressions only."""

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    # any layer, by kind
    def layer_forward(self, cls: ClassSpec, X: np.ndarray, *, W=None, b=None, data=None) -> np.ndarray:
        """The true output of a layer of any kind (the input layer z-scores by `data`)."""
        if cls.kind == "input":
            return self.input_forward(data, X, cls.ddof)
        if cls.kind == "fully_connected":
            return self.fully_connected_forward(X, W, b)
        if cls.kind == "softmax":
            return self.softmax_forward(X)
        return self.elementwise_forward(cls, X)

    def layer_jacobian(self, cls: ClassSpec, X: np.ndarray, *, W=None, b=None) -> np.ndarray:
        """The true per-observation Jacobian N×K×D of a layer of any kind but the input layer."""
        if cls.kind == "fully_connected":
            return self.fully_connected_jacobian(X, W, b)
        if cls.kind == "softmax":
            return self.softmax_jacobian(X)
        return self.elementwise_jacobian(cls, X)

    # element-wise activations: g(z) from the spec, g'(z) derived
    def elementwise_forward(self, cls: ClassSpec, Z_: np.ndarray) -> np.ndarray:
        return _elementwise(cls.expr, [Z], [Z_])

    def elementwise_derivative(self, cls: ClassSpec, Z_: np.ndarray) -> np.ndarray:
        return _elementwise(derivative(cls.expr, Z), [Z], [Z_])

    def elementwise_jacobian(self, cls: ClassSpec, Z_: np.ndarray) -> np.ndarray:
        d = self.elementwise_derivative(cls, Z_)
        return np.einsum("nk,kj->nkj", d, np.eye(d.shape[1]))

    def elementwise_derivative_band(self, cls: ClassSpec, Z_: np.ndarray) -> Band:
        """g′(z), and the interval the slides' rule spans for ε in the accepted range (g′ = g(1 − g) + ε)."""
        nominal = self.elementwise_derivative(cls, Z_)
        written = cls.rule_formulas.get("gradient")
        if written is None:
            return Band(nominal, nominal, nominal)
        g = self.elementwise_forward(cls, Z_)
        candidates = [_elementwise(written[1], [Z, G, EPS], [Z_, g, np.full(np.shape(Z_), eps)]) for eps in cls.epsilon_range]
        return _band(nominal, candidates)

    # softmax: evaluated at z − max(z) per row
    def softmax_forward(self, Z_: np.ndarray) -> np.ndarray:
        Z_ = _shifted(Z_)
        z, g, _ = softmax_exprs(Z_.shape[1])
        return _evaluate(compile_exprs(list(z), g), [Z_[:, i] for i in range(Z_.shape[1])], (Z_.shape[0],))

    def softmax_jacobian(self, Z_: np.ndarray) -> np.ndarray:
        Z_ = _shifted(Z_)
        k = Z_.shape[1]
        z, _, jac = softmax_exprs(k)
        return _jacobian_per_row(compile_exprs(list(z), jac), Z_, k, k)

    # fully connected
    def fully_connected_forward(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        d, k = W.shape
        x, w, bb, h, _ = fully_connected_exprs(d, k)
        fn = compile_exprs(x + w + bb, h)
        return _evaluate(fn, [X[:, i] for i in range(d)] + list(W.ravel()) + list(np.ravel(b)), (X.shape[0],))

    def fully_connected_jacobian(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        d, k = W.shape
        x, w, bb, _, jac = fully_connected_exprs(d, k)
        fn = compile_exprs(x + w + bb, jac)
        return _jacobian_per_row(fn, X, k, d, extra=list(W.ravel()) + list(np.ravel(b)))

    # input layer
    def input_forward(self, data: np.ndarray, X: np.ndarray, ddof: int) -> np.ndarray:
        n = data.shape[0]
        x, ds, expr = zscore_exprs(n, ddof)
        fn = compile_exprs([x, *ds], [expr])
        return _evaluate(fn, [X] + [data[i] for i in range(n)], X.shape)[..., 0]

    # objectives: ℓ(y, ŷ) per entry from the spec, ∂ℓ/∂ŷ derived
    def loss_entries(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray, epsilon: float | None = None) -> np.ndarray:
        eps = self.epsilon if epsilon is None else epsilon
        return _elementwise(cls.expr, [Y, YHAT, EPS], [Y_, Yhat, np.full(np.shape(Yhat), eps)])

    def objective_value(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray) -> float:
        return reduce_loss(self.loss_entries(cls, Y_, Yhat), cls.reduction)

    def objective_gradient(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray, epsilon: float | None = None) -> np.ndarray:
        eps = self.epsilon if epsilon is None else epsilon
        return _elementwise(derivative(cls.expr, YHAT), [Y, YHAT, EPS], [Y_, Yhat, np.full(np.shape(Yhat), eps)])

    def objective_value_band(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray) -> Band:
        """J at the spec's ε, and the interval J spans for every accepted ε, added inside the logs
        or applied by clipping ŷ to [ε, 1 − ε]; where ε = 0 gives ln 0 the smallest ε is TINY_EPSILON."""
        return _band(np.float64(self.objective_value(cls, Y_, Yhat)), self.objective_value_candidates(cls, Y_, Yhat))

    def objective_value_candidates(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray) -> list[np.float64]:
        """J for each accepted way of writing ε (the ends of the range, added or by clipping), in a fixed order."""
        low, high = cls.epsilon_range
        candidates = []
        for eps in sorted({low, max(low, TINY_EPSILON), high}):
            candidates.append(reduce_loss(self.loss_entries(cls, Y_, Yhat, eps), cls.reduction))
            if cls.estimates != "real" and eps > 0:
                clipped = np.clip(Yhat, eps, 1 - eps)
                candidates.append(reduce_loss(self.loss_entries(cls, Y_, clipped, 0.0), cls.reduction))
        return [np.float64(c) for c in candidates]

    def objective_value_difference_band(self, cls: ClassSpec, pairs) -> Band:
        """J(Y₁, Ŷ₁) − J(Y₂, Ŷ₂) with the same ε in both: what an ε-dependent term common to both cancels from."""
        (Y1, Yhat1), (Y2, Yhat2) = pairs
        nominal = np.float64(self.objective_value(cls, Y1, Yhat1) - self.objective_value(cls, Y2, Yhat2))
        first, second = self.objective_value_candidates(cls, Y1, Yhat1), self.objective_value_candidates(cls, Y2, Yhat2)
        with np.errstate(invalid="ignore"):
            return _band(nominal, [a - b for a, b in zip(first, second)])

    def objective_gradient_band(self, cls: ClassSpec, Y_: np.ndarray, Yhat: np.ndarray) -> Band:
        """∂J/∂ŷ at the spec's ε, and the interval of every accepted ε in the derived rule and in the
        slides' own form. Where the rule has no value at ε = 0 (ŷ = 0 or 1: x/0, 0/0) the slides ask
        only for a finite result, so there any finite value is accepted."""
        nominal = self.objective_gradient(cls, Y_, Yhat)
        candidates = [self.objective_gradient(cls, Y_, Yhat, eps) for eps in cls.epsilon_range]
        written = cls.rule_formulas.get("gradient")
        if written is not None:
            candidates += [_elementwise(written[1], [Y, YHAT, EPS], [Y_, Yhat, np.full(np.shape(Yhat), eps)])
                           for eps in cls.epsilon_range]
        band = _band(nominal, candidates)
        undefined = ~np.isfinite(self.objective_gradient(cls, Y_, Yhat, 0.0))
        return Band(nominal, np.where(undefined, -np.inf, band.lower), np.where(undefined, np.inf, band.upper))


def _band(nominal: np.ndarray, candidates: list[np.ndarray]) -> Band:
    """The interval of the finite candidates (and the nominal value), entry by entry."""
    stack = np.stack([np.asarray(c, dtype=float) for c in [nominal, *candidates]])
    finite = np.isfinite(stack)
    with np.errstate(invalid="ignore"):
        lower = np.where(finite, stack, np.inf).min(axis=0)
        upper = np.where(finite, stack, -np.inf).max(axis=0)
    none = ~finite.any(axis=0)
    return Band(nominal, np.where(none, nominal, lower), np.where(none, nominal, upper))


def reduce_loss(entries: np.ndarray, reduction: str) -> float:
    """Return J from the N×K per-entry losses: mean of all, mean over rows of row sums, or the sum."""
    if reduction == "mean":
        return float(np.mean(entries))
    if reduction == "mean_rows":
        return float(np.mean(np.sum(entries, axis=1)))
    return float(np.sum(entries))


def _shifted(Z_: np.ndarray) -> np.ndarray:
    Z_ = np.asarray(Z_, dtype=float)
    return Z_ - Z_.max(axis=1, keepdims=True)


@functools.lru_cache(maxsize=None)
def derivative(expr: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    """Return d expr / d symbol, as SymPy derives it (kinks get either one-sided value)."""
    d = sp.diff(expr, symbol)
    # SymPy leaves the derivative of a Piecewise at its switch point undefined (nan); either
    # one-sided value is an accepted convention, and no test point lies within reach of a kink.
    return d.replace(lambda e: isinstance(e, sp.Piecewise), _drop_nan_branches)


def _drop_nan_branches(pw: sp.Piecewise) -> sp.Expr:
    kept = [(e, c) for e, c in pw.args if e is not sp.nan]
    if kept and kept[-1][1] is not sp.true:
        kept[-1] = (kept[-1][0], sp.true)
    return sp.Piecewise(*kept) if kept else pw


# ----------------------------------------------------------------------------- rules for reports


@dataclass(frozen=True)
class _RuleInput:
    kind: str
    expr: sp.Expr | None
    rules: dict
    reduction: str
    written: dict  # method -> the rule as the slides write it (the spec's rule_formulas), unevaluated


_DELTA_IN = sp.Symbol("delta_in", commutative=False)
_DELTA_OUT = sp.Symbol("delta_out", commutative=False)


@dataclass(frozen=True)
class Rule:
    """One rule as the reports show it: words from the spec, the formula in LaTeX, MathML and one line of Unicode."""

    text: str
    latex: str
    mathml: str
    plain: str = ""


def _rule(text: str, lhs: sp.Expr, rhs: sp.Expr, *alternatives: sp.Expr) -> Rule:
    eq = sp.Eq(lhs, rhs, evaluate=False)
    for alt in alternatives:
        eq = sp.Eq(eq, alt, evaluate=False)
    eq = eq.xreplace({EPS: sp.Symbol("epsilon")})
    return Rule(text=text, latex=sp.latex(eq, order="none"), mathml=_escaped_mathml(sp.mathml(eq, printer="presentation", order="none")),
                plain=plain(eq))


_PLAIN = [(r"Derivative\(g\(z\), z\)", "g′(z)"), (r"Derivative\((\w+), ŷ\)", r"∂\1/∂ŷ"), (r"Derivative\(g\[i\], z\[j\]\)", "∂g_i/∂z_j"),
          (r"Derivative\(h\[j\], x\[i\]\)", "∂h_j/∂x_i"), (r"\bepsilon\b", "ε"), (r"\byhat\b", "ŷ"), (r"delta_out", "δ_out"),
          (r"delta_in", "δ_in"), (r"delta_ij", "δ_ij"), (r"\*\*2\b", "²"), (r"\*\*", "^"), (r"\*", "·"), (r" - ", " − "),
          (r"^-|(?<=[(=,] )-|(?<=\()-", "−"), (r"\bexp\(", "exp(")]


class _PlainPrinter(sp.printing.str.StrPrinter):
    def _print_Piecewise(self, expr):
        cases = [f"{self._print(e)} if {self._print(c)}" for e, c in expr.args if c is not sp.true]
        rest = [self._print(e) for e, c in expr.args if c is sp.true]
        return "(" + "; ".join(cases + [f"{r} otherwise" for r in rest]) + ")"


def plain(eq) -> str:
    """One line of Unicode for a terminal: −2·(y − ŷ), g′(z) = g(z)·(1 − g(z)) + ε; never LaTeX."""
    parts, node = [], eq
    while isinstance(node, sp.Eq):  # Eq(Eq(a, b), c) is a = b = c
        parts.insert(0, node.rhs)
        node = node.lhs
    parts.insert(0, node)
    text = " = ".join(_PlainPrinter({"order": "none"}).doprint(p) for p in parts)
    for pattern, replacement in _PLAIN:
        text = re.sub(pattern, replacement, text)
    return text


def _escaped_mathml(markup: str) -> str:
    """SymPy prints `<mo><</mo>` for a Piecewise condition; escape token contents so the markup is valid."""
    return re.sub(r"<(mi|mo|mn|mtext)>(.*?)</\1>",
                  lambda m: f"<{m[1]}>{html.escape(html.unescape(m[2]), quote=False)}</{m[1]}>", markup)


def in_terms_of_output(expr: sp.Expr, derivative_expr: sp.Expr) -> sp.Expr | None:
    """Return g′ written in the output g = expr (e.g. g(1 − g) for the sigmoid), or None when SymPy finds no single form."""
    if expr.has(sp.Piecewise) or derivative_expr.is_number:
        return None
    g = sp.Function("g")(Z)
    try:
        inverses = sp.solve(sp.Eq(sp.Symbol("_g"), expr), Z)
        forms = {sp.factor(sp.simplify(derivative_expr.subs(Z, inv))) for inv in inverses}
    except Exception:  # SymPy cannot invert every formula; the rule in z still stands
        return None
    if len(forms) != 1:
        return None
    form = forms.pop()
    if form.has(Z) or form.has(sp.exp):
        return None
    return readable(form, _leading_sign_inside(form), sp.expand(form)).subs(sp.Symbol("_g"), g)


def readable(*forms: sp.Expr) -> sp.Expr:
    """The simplest to read of equal forms (fewest operations, then shortest); the first on a tie."""
    return min(forms, key=lambda f: (sp.count_ops(f), len(str(f))))


def _leading_sign_inside(form: sp.Expr) -> sp.Expr:
    """−(g − 1)·g as (1 − g)·g: a negative coefficient taken into a factor that then starts positive."""
    factored = sp.factor(form)
    coeff, rest = factored.as_coeff_Mul()
    if coeff >= 0:
        return factored
    factors = list(sp.Mul.make_args(rest))
    for n, f in enumerate(factors):
        flipped = sp.expand(-f)
        if isinstance(f, sp.Add) and flipped.as_coeff_Add()[0] > 0:
            factors[n] = flipped
            return sp.Mul(-coeff, *factors)
    return factored


def rules_for(cls: ClassSpec) -> dict[str, Rule]:
    """Return {method: Rule}: the general indexed rule, derived from the class's definition.

    Cached by content, not by object: a spec sent to another process (a pool, a dask worker)
    arrives as new objects, and deriving the rules again costs more than grading.
    """
    written = tuple(sorted((method, text) for method, (text, _) in cls.rule_formulas.items()))
    return _cached_rules(cls.kind, cls.expr, tuple(sorted(cls.rules.items())), cls.reduction, written)


@functools.lru_cache(maxsize=1)
def _own_source_digest() -> str:
    """How rules are derived, parsed and printed (this module and formulas.py): a change to either
    must not be hidden by old cached rules."""
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in ("symbolic.py", "formulas.py"))).hexdigest()


@functools.lru_cache(maxsize=None)
def _cached_rules(kind: str, expr, rules: tuple, reduction: str, written: tuple = ()) -> dict[str, Rule]:
    """The rules from memory, from disk (keyed by the definition) or derived and then stored."""
    key = _cache_key("rules", _own_source_digest(), kind, sp.srepr(expr) if expr is not None else "", repr(rules), reduction,
                     repr(written))
    found = _read_cached(key, ".rules.json", lambda text, _: {m: Rule(**r) for m, r in json.loads(text).items()})
    if found is None:
        found = _rules(kind, expr, rules, reduction, written)
        _write_cached(key, ".rules.json", json.dumps({m: dataclasses.asdict(r) for m, r in found.items()}))
    return found


def written_form(kind: str, text: str) -> sp.Expr:
    """A spec's rule formula as written (unevaluated), in the symbols the reports show: g(z), ŷ, ε."""
    from grader.formulas import parse_formula

    epsilon = sp.Symbol("epsilon")  # as shown: replacing EPS later would re-sort the terms
    if kind == "elementwise":
        return parse_formula(text, {"z": Z, "g": sp.Function("g")(Z), "eps": epsilon}, evaluate=False)
    return parse_formula(text, {"y": Y, "yhat": sp.Symbol("ŷ"), "eps": epsilon}, evaluate=False)


def _rules(kind: str, expr, rules: tuple, reduction: str, written: tuple = ()) -> dict[str, Rule]:
    cls = _RuleInput(kind, expr, dict(rules), reduction, {m: written_form(kind, t) for m, t in written})
    g_z, dg_dz = sp.Function("g")(Z), sp.Derivative(sp.Function("g")(Z), Z)
    text = cls.rules
    if cls.kind == "elementwise":
        d = derivative(cls.expr, Z)
        alternatives = [f for f in (in_terms_of_output(cls.expr, d),) if f is not None]
        shown = d if d.has(sp.Piecewise) else readable(d, sp.factor(sp.together(d)))  # the same function, easier to read
        if "gradient" in cls.written:  # as the slides write it
            shown, alternatives = cls.written["gradient"], []
        return {
            "forward": _rule(text.get("forward", "g(z), element by element"), g_z, cls.expr),
            "gradient": _rule(text.get("gradient", "∂g/∂z, element by element (diagonal Jacobian)"), dg_dz, shown, *alternatives),
            "backward": _rule(text.get("backward", "δ ⊙ g′(z), element-wise"), _DELTA_OUT, _DELTA_IN * dg_dz),
        }
    if cls.kind == "objective":
        yhat = sp.Symbol("ŷ")
        loss = cls.expr.subs(YHAT, yhat)
        grad = cls.written.get("gradient", derivative(cls.expr, YHAT).subs(YHAT, yhat))
        reduction = {"mean": "mean over all entries of", "mean_rows": "mean over observations of Σ over k of", "sum": "sum of"}[cls.reduction]
        return {
            "eval": _rule(text.get("eval", f"J = {reduction} the per-entry loss"), sp.Symbol("J"), loss),
            "gradient": _rule(text.get("gradient", "∂J/∂ŷ per entry, not divided by N"), sp.Derivative(sp.Symbol("J"), yhat), grad),
        }
    i, j, k = sp.symbols("i j k", integer=True)
    if cls.kind == "softmax":
        z, s = sp.IndexedBase("z"), sp.IndexedBase("g")
        K = sp.Symbol("K", integer=True, positive=True)
        total = sp.Sum(sp.exp(z[k]), (k, 1, K))
        forward = sp.exp(z[j]) / total
        d = sp.diff(sp.exp(z[i]) / total, z[j]).doit()
        d = d.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0][0])
        d = d.subs(sp.exp(z[i]), s[i] * total).subs(sp.exp(z[j]), s[j] * total)
        d = sp.factor(sp.simplify(d)).subs(sp.KroneckerDelta(i, j), sp.Symbol("delta_ij"))
        return {
            "forward": _rule(text.get("forward", "g_j(z) = e^(z_j) / Σ_k e^(z_k), row by row"), s[j], forward),
            "gradient": _rule(text.get("gradient", "∂g_j/∂z_i: a K×K matrix per observation"), sp.Derivative(s[i], z[j]), d),
            "backward": _rule(text.get("backward", "δ · J for each observation"), _DELTA_OUT, _DELTA_IN * sp.Symbol("J", commutative=False)),
        }
    if cls.kind == "fully_connected":
        x, W, b, h = sp.IndexedBase("x"), sp.IndexedBase("W"), sp.IndexedBase("b"), sp.IndexedBase("h")
        D = sp.Symbol("D", integer=True, positive=True)
        forward = sp.Sum(x[k] * W[k, j], (k, 1, D)) + b[j]
        d = sp.diff(forward, x[i]).doit()
        d = d.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0][0])
        return {
            "forward": _rule(text.get("forward", "h = xW + b"), h[j], forward),
            "gradient": _rule(text.get("gradient", "∂h_j/∂x_i: the K×D matrix Wᵀ"), sp.Derivative(h[j], x[i]), d),
            "backward": _rule(text.get("backward", "δ · Wᵀ"), _DELTA_OUT, _DELTA_IN * sp.Symbol("W^T", commutative=False)),
        }
    x, mu, sigma = sp.symbols("x mu sigma")
    return {"forward": _rule(text.get("forward", "z-score by the constructor's data"), sp.Symbol("z"), (x - mu) / sigma)}
