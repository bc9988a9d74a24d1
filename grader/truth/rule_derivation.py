"""The rules the reports show, derived and printed by SymPy (LaTeX, MathML, one line of Unicode).

Only `rules.rules_for` calls this module, and only when the rules of a class are not in the
disk cache yet: a warm run never imports it (nor SymPy). It returns plain fields (`rules.Rule`'s),
so that nothing here is imported to read a rule back from the cache. Every rule is derived from the class's
definition (`sympy.diff`), or is the spec's `rule_formulas` entry as the slides write it, which
`spec.py` has already checked against the derived one.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

import sympy as sp

from grader.assignment.spec import FORMULA_NAMES, formula_expr, symbols
from grader.truth.symbolic import derivative


@dataclass(frozen=True)
class _RuleInput:
    kind: str
    expr: sp.Expr | None
    rules: dict
    reduction: str
    written: dict  # method -> the rule as the slides write it (the spec's rule_formulas), unevaluated


_DELTA_IN = sp.Symbol("delta_in", commutative=False)
_DELTA_OUT = sp.Symbol("delta_out", commutative=False)


def _rule(text: str, lhs: sp.Expr, rhs: sp.Expr, *alternatives: sp.Expr) -> dict:
    eq = sp.Eq(lhs, rhs, evaluate=False)
    for alt in alternatives:
        eq = sp.Eq(eq, alt, evaluate=False)
    eq = eq.xreplace({symbols()["eps"]: sp.Symbol("epsilon")})
    return dict(text=text, latex=sp.latex(eq, order="none"), mathml=_escaped_mathml(sp.mathml(eq, printer="presentation", order="none")),
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
    Z = symbols()["z"]
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


def written_form(kind: str, text: str) -> sp.Expr:
    """A spec's rule formula as written (unevaluated), in the symbols the reports show: g(z), ŷ, ε."""
    from grader.assignment.formulas import parse_formula

    s = symbols()
    epsilon = sp.Symbol("epsilon")  # as shown: replacing eps later would re-sort the terms
    if kind == "elementwise":
        return parse_formula(text, {"z": s["z"], "g": sp.Function("g")(s["z"]), "eps": epsilon}, evaluate=False)
    return parse_formula(text, {"y": s["y"], "yhat": sp.Symbol("ŷ"), "eps": epsilon}, evaluate=False)


def _adam_rule(text: str) -> dict:
    """W′ = W − η m̂/(√v̂ + δ) with m̂ = m/(1 − p1ᵗ), v̂ = v/(1 − p2ᵗ) (the recurrence itself: grader/truth/adam_truth.py)."""
    W, m, v = sp.IndexedBase("W"), sp.IndexedBase("m"), sp.IndexedBase("v")
    i, j, t = sp.symbols("i j t", integer=True)
    eta, delta, p1, p2 = sp.symbols("eta delta p_1 p_2", positive=True)
    mhat = m[i, j] / (1 - p1 ** t)
    vhat = v[i, j] / (1 - p2 ** t)
    return _rule(text, sp.Symbol("W′_ij"), sp.Add(W[i, j], -eta * mhat / (sp.sqrt(vhat) + delta), evaluate=False))


def _update_rule(text: str, reduction: str) -> dict:
    """W′_ij = W_ij − η ∂J/∂W_ij, ∂J/∂W derived from J = (1/N) Σ_n Σ_m δ_nm h_nm (the objective seen from
    the layer, δ = gradIn) by `sympy.diff` with indexed sums; `reduction` "sum" drops the 1/N."""
    x, W, b, delta = sp.IndexedBase("x"), sp.IndexedBase("W"), sp.IndexedBase("b"), sp.IndexedBase("delta")
    i, j, k, n, m = sp.symbols("i j k n m", integer=True)
    N, D, K = sp.symbols("N D K", integer=True, positive=True)
    h = sp.Sum(x[n, k] * W[k, m], (k, 1, D)) + b[m]
    total = sp.Sum(sp.Sum(delta[n, m] * h, (m, 1, K)), (n, 1, N))
    J = total / N  # the mean; a sum is N times it (SymPy leaves the sum's Kronecker delta unsimplified)

    def first_branch(e):  # the index ranges' conditions hold inside the sums
        return e.replace(lambda t: isinstance(t, sp.Piecewise), lambda t: t.args[0][0])

    dW = first_branch(sp.simplify(first_branch(sp.diff(J, W[i, j]).doit())))
    db = first_branch(sp.simplify(first_branch(sp.diff(J, b[j]).doit())))
    if reduction == "sum":
        dW, db = sp.simplify(N * dW), sp.simplify(N * db)
    eta = sp.Symbol("eta")
    rule = _rule(text, sp.Symbol("W′_ij"), sp.Add(W[i, j], -eta * dW, evaluate=False))
    bias = _rule(text, sp.Symbol("b′_j"), sp.Add(b[j], -eta * db, evaluate=False))
    rule["latex"] += r",\quad " + bias["latex"]
    rule["mathml"] = f"<mrow>{rule['mathml']}<mo>,</mo><mspace width='1em'/>{bias['mathml']}</mrow>"
    rule["plain"] = f"{rule['plain']};  {bias['plain']}"
    for ugly, shown in (("eta", "η"), ("delta", "δ"), ("W[i, j]", "W_ij"), ("b[j]", "b_j")):
        rule["plain"] = rule["plain"].replace(ugly, shown)
    rule["plain"] = re.sub(r"Sum\((.*?), \(n, 1, N\)\)", r"Σₙ \1", rule["plain"])  # Σₙ δ_nj·x_ni
    rule["plain"] = re.sub(r"(δ|x)\[(\w), (\w)\]", r"\1_\2\3", rule["plain"])
    return rule


def derive_rules(kind: str, formula: str | None, rules: tuple, reduction: str, written: tuple = ()) -> dict[str, dict]:
    """{method: Rule's fields} of a class: its definition (`formula`, or the kind's own), the spec's words
    (`rules`) and its rules as the slides write them (`written`)."""
    expr = None
    if formula is not None:
        expr = formula_expr(formula, FORMULA_NAMES[kind])
    cls = _RuleInput(kind, expr, dict(rules), reduction, {m: written_form(kind, t) for m, t in written})
    s = symbols()
    Z, YHAT = s["z"], s["yhat"]
    g_z, dg_dz = sp.Function("g")(Z), sp.Derivative(sp.Function("g")(Z), Z)
    text = cls.rules
    if cls.kind == "elementwise":
        if "gradient" in cls.written:  # as the slides write it
            shown, alternatives = cls.written["gradient"], []
        else:  # as derived, in the form easiest to read, and in terms of the output where there is one
            d = derivative(cls.expr, Z)
            alternatives = [f for f in (in_terms_of_output(cls.expr, d),) if f is not None]
            shown = d if d.has(sp.Piecewise) else readable(d, sp.factor(sp.together(d)))
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
        z, g = sp.IndexedBase("z"), sp.IndexedBase("g")
        K = sp.Symbol("K", integer=True, positive=True)
        total = sp.Sum(sp.exp(z[k]), (k, 1, K))
        forward = sp.exp(z[j]) / total
        d = sp.diff(sp.exp(z[i]) / total, z[j]).doit()
        d = d.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0][0])
        d = d.subs(sp.exp(z[i]), g[i] * total).subs(sp.exp(z[j]), g[j] * total)
        d = sp.factor(sp.simplify(d)).subs(sp.KroneckerDelta(i, j), sp.Symbol("delta_ij"))
        return {
            "forward": _rule(text.get("forward", "g_j(z) = e^(z_j) / Σ_k e^(z_k), row by row"), g[j], forward),
            "gradient": _rule(text.get("gradient", "∂g_j/∂z_i: a K×K matrix per observation"), sp.Derivative(g[i], z[j]), d),
            "backward": _rule(text.get("backward", "δ · J for each observation"), _DELTA_OUT, _DELTA_IN * sp.Symbol("J", commutative=False)),
        }
    if cls.kind in ("fully_connected", "fully_connected_adam"):
        x, W, b, h = sp.IndexedBase("x"), sp.IndexedBase("W"), sp.IndexedBase("b"), sp.IndexedBase("h")
        D = sp.Symbol("D", integer=True, positive=True)
        forward = sp.Sum(x[k] * W[k, j], (k, 1, D)) + b[j]
        d = sp.diff(forward, x[i]).doit()
        d = d.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0][0])
        return {
            "forward": _rule(text.get("forward", "h = xW + b"), h[j], forward),
            "gradient": _rule(text.get("gradient", "∂h_j/∂x_i: the K×D matrix Wᵀ"), sp.Derivative(h[j], x[i]), d),
            "backward": _rule(text.get("backward", "δ · Wᵀ"), _DELTA_OUT, _DELTA_IN * sp.Symbol("W^T", commutative=False)),
            "updateWeights": (_adam_rule(text.get("updateWeights", "Adam")) if cls.kind == "fully_connected_adam" else
                              _update_rule(text.get("updateWeights", "W ← W − η ∂J/∂W, b ← b − η ∂J/∂b"), cls.reduction)),
        }
    if cls.kind in ("convolution", "max_pool", "flatten"):
        return _image_rules(cls.kind, text)
    x, mu, sigma = sp.symbols("x mu sigma")
    return {"forward": _rule(text.get("forward", "z-score by the constructor's data"), sp.Symbol("z"), (x - mu) / sigma)}


def _image_rules(kind: str, text: dict) -> dict[str, dict]:
    """The image layers' rules in index form: Y = X ⋆ K and the two gradients SymPy differentiates
    J = Σ G∘Y into (grader/truth/convolution.py derives them at each size the checks use)."""
    i, j, a, b = sp.symbols("i j a b", integer=True)
    X, K, G, Y = (sp.IndexedBase(n) for n in ("X", "K", "G", "Y"))
    kh, kw, oh, ow = sp.symbols("k_H k_W H_out W_out", integer=True, positive=True)
    dJ = sp.Symbol("J")
    if kind == "convolution":
        forward = sp.Sum(X[i + a, j + b] * K[a, b], (a, 0, kh - 1), (b, 0, kw - 1))
        d_input = sp.Sum(G[i - a, j - b] * K[a, b], (a, 0, kh - 1), (b, 0, kw - 1))  # G zero outside: pad(G) ⋆ rot180(K)
        d_kernel = sp.Sum(X[i + a, j + b] * G[i, j], (i, 0, oh - 1), (j, 0, ow - 1))
        return {
            "forward": _rule(text.get("forward", "the valid cross-correlation X ⋆ K"), Y[i, j], forward),
            "backward": _rule(text.get("backward", "pad(G) ⋆ rot180(K), G zero outside its range"),
                              sp.Derivative(dJ, X[i, j]), d_input),
            "updateWeights": _rule(text.get("updateWeights", "K ← K − η ∂J/∂K, ∂J/∂K = X ⋆ G"),
                                   sp.Derivative(dJ, K[a, b]), d_kernel),
        }
    if kind == "max_pool":
        p, s_ = sp.symbols("p s", integer=True, positive=True)
        return {
            "forward": _rule(text.get("forward", "each window's maximum"), Y[i, j],
                             sp.Max(X[s_ * i + a, s_ * j + b])),
            "backward": _rule(text.get("backward", "G to the window's maximum, added where windows share it"),
                              sp.Derivative(dJ, X[i, j]), sp.Sum(G[a, b] * sp.Symbol("[X_ij is the max of window ab]"), (a, 0, oh - 1), (b, 0, ow - 1))),
        }
    w = sp.Symbol("W", integer=True, positive=True)
    return {
        "forward": _rule(text.get("forward", "H×W → 1×HW"), Y[0, i * w + j], X[i, j]),
        "backward": _rule(text.get("backward", "1×HW → H×W"), sp.Derivative(dJ, X[i, j]), G[0, i * w + j]),
    }
