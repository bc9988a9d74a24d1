"""Formulas of an assignment spec, turned into SymPy expressions without `eval`.

SymPy's own `parse_expr` runs Python's `eval` on the text it is given, so a spec formula is
instead parsed by Python's `ast` and translated node by node: only numbers, the symbols of an
explicit table, arithmetic, comparisons (for `Piecewise` conditions) and a fixed list of
functions are accepted. Anything else is a `FormulaError` that says what was not allowed.
"""
from __future__ import annotations

import ast
import operator

import sympy as sp

from grader.exceptions import FormulaError

MAX_FORMULA_LENGTH = 2000

FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "atan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "erf": sp.erf,
    "sign": sp.sign,
    "Max": sp.Max,
    "max": sp.Max,
    "Min": sp.Min,
    "min": sp.Min,
    "Piecewise": sp.Piecewise,
    "Heaviside": sp.Heaviside,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E, "True": sp.true, "False": sp.false}

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}


def parse_formula(text: str, symbols: dict[str, sp.Symbol], *, evaluate: bool = True) -> sp.Expr:
    """Return the SymPy expression of `text`, whose free names must all be keys of `symbols`.

    With `evaluate` False the expression keeps the form it is written in (−2(y − ŷ), not
    −2y + 2ŷ): that is how a rule is shown, as the slides write it.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula is empty")
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"the formula is longer than {MAX_FORMULA_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"'{text}' is not a valid formula ({exc.msg} at column {exc.offset})") from None
    expr = _Translator(symbols, text, evaluate).visit(tree.body)
    if not isinstance(expr, sp.Expr):
        raise FormulaError(f"'{text}' is a condition, not a value")
    return expr


def _terms(a):
    """A left operand's own terms (or factors), so that 1 − g² + ε is one sum, not (1 − g²) + ε."""
    return a.args if isinstance(a, (sp.Add, sp.Mul)) and not a.is_Number else (a,)


_AS_WRITTEN = {
    ast.Add: lambda a, b: sp.Add(*(_terms(a) if isinstance(a, sp.Add) else (a,)), b, evaluate=False),
    ast.Sub: lambda a, b: sp.Add(*(_terms(a) if isinstance(a, sp.Add) else (a,)), sp.Mul(-1, b, evaluate=False), evaluate=False),
    ast.Mult: lambda a, b: sp.Mul(*(_terms(a) if isinstance(a, sp.Mul) else (a,)), b, evaluate=False),
    ast.Div: lambda a, b: sp.Mul(*(_terms(a) if isinstance(a, sp.Mul) else (a,)), sp.Pow(b, -1, evaluate=False), evaluate=False),
    ast.Pow: lambda a, b: sp.Pow(a, b, evaluate=False),
}


class _Translator(ast.NodeVisitor):
    def __init__(self, symbols: dict[str, sp.Symbol], text: str, evaluate: bool = True):
        self.symbols = symbols
        self.text = text
        self.binary = _BINARY if evaluate else _AS_WRITTEN
        self.evaluate = evaluate

    def _refuse(self, what: str):
        allowed = ", ".join(sorted(self.symbols)) or "none"
        raise FormulaError(f"'{self.text}': {what} is not allowed (symbols: {allowed}; functions: {', '.join(sorted(FUNCTIONS))})")

    def generic_visit(self, node):
        self._refuse(f"{type(node).__name__} syntax")

    def visit_Constant(self, node):
        if isinstance(node.value, bool):
            return sp.true if node.value else sp.false
        if isinstance(node.value, int):
            return sp.Integer(node.value)
        if isinstance(node.value, float):
            return sp.nsimplify(node.value, rational=True) if node.value == round(node.value, 12) else sp.Float(node.value)
        self._refuse(f"the constant {node.value!r}")

    def visit_Name(self, node):
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            self._refuse(f"the function name '{node.id}' without a call")
        self._refuse(f"the name '{node.id}'")

    def visit_BinOp(self, node):
        op = self.binary.get(type(node.op))
        if op is None:
            self._refuse(f"the operator {type(node.op).__name__}")
        return op(self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node):
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand if self.evaluate or operand.is_Number else sp.Mul(-1, operand, evaluate=False)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return sp.Not(operand)
        self._refuse(f"the operator {type(node.op).__name__}")

    def visit_Compare(self, node):
        parts = []
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            rel = _COMPARE.get(type(op))
            if rel is None:
                self._refuse(f"the comparison {type(op).__name__}")
            right = self.visit(right_node)
            parts.append(rel(left, right))
            left = right
        return sp.And(*parts) if len(parts) > 1 else parts[0]

    def visit_BoolOp(self, node):
        values = [self.visit(v) for v in node.values]
        return sp.And(*values) if isinstance(node.op, ast.And) else sp.Or(*values)

    def visit_Tuple(self, node):
        return tuple(self.visit(e) for e in node.elts)

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            self._refuse(f"the function '{name}'")
        if node.keywords:
            self._refuse("a keyword argument")
        args = [self.visit(a) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as exc:
            raise FormulaError(f"'{self.text}': {node.func.id}(...) cannot be built: {exc}") from None
