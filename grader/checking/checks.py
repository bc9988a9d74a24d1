"""What every check shares: the context of one item, judging, and the helpers of every kind's checks.

Each kind's checks live in its module (`grader/kinds/<kind>.py`, the layers' shared ones in
`layer_checks.py`), registered in `grader.kinds`. A check function gets an `ItemContext`, asks the student's code for numbers through
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

from grader.checking.compare import compare
from grader.checking.diagnose import Situation, diagnose
from grader.checking.precision import Precision, precision_of
from grader.checking.results import CheckResult, Diagnosis
from grader.assignment.spec import ClassSpec, Item, Tolerance
from grader.kinds import implementation
from grader.checking.student import StudentCode, StudentFailure
from grader.truth.symbolic import Band, SymbolicTruth


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
    def layer(self):
        """The hooks of a layer kind (`layer_checks.LayerKind`), from the kind's module."""
        return implementation(self.cls.kind).LAYER

    @property
    def precision(self) -> Precision:
        """The coarsest precision of the student's answers in this check so far."""
        return self.student.precision


# ----------------------------------------------------------------------------- judging


def judge(ctx: ItemContext, name: str, weight: float, got: np.ndarray, expected, situation: Situation, *,
          rtol: float | None = None, atol: float | None = None, what: str = "your result", note: str = "",
          sensitivity=None) -> CheckResult:
    """Compare at the answer's precision; on a mismatch, name the mistake the numbers support.

    `expected` is an array, or a `Band` whose interval holds every right answer. `sensitivity`
    (input_sensitivity, or a function returning it) widens it by what holding the inputs at the
    answer's precision moves the rule. A function is called only when the answer is not right
    without the widening: a wider interval never fails what a narrower one passes (`widened`),
    so the verdict is the same, and a right answer does not pay for the 2 × entries evaluations.
    """
    band = expected if isinstance(expected, Band) else Band(expected, expected, expected)
    precision = ctx.precision
    value_rtol, value_atol = precision.values(ctx.tol)
    rtol = value_rtol if rtol is None else rtol
    atol = value_atol if atol is None else atol
    note = _with_precision_note(note, precision, situation.method)
    if callable(sensitivity):
        narrow = widened(band, 0.0)
        if compare(got, narrow.nominal, rtol=rtol, atol=atol, what=what, lower=narrow.lower, upper=narrow.upper).passed:
            return CheckResult(name, True, weight, note=note)
        sensitivity = sensitivity()
    if sensitivity is not None:
        band = widened(band, np.broadcast_to(precision.propagated(sensitivity), np.shape(band.nominal)))
    result = compare(got, band.nominal, rtol=rtol, atol=atol, what=what, lower=band.lower, upper=band.upper)
    if result.passed:
        return CheckResult(name, True, weight, note=note)
    diagnosis = diagnose(got, band.nominal, situation, rtol=rtol, atol=atol, lower=band.lower, upper=band.upper)
    return CheckResult(name, False, weight, message=result.message, diagnosis=diagnosis, note=note,
                       details=_details(got, band.nominal))


def widened(band: Band, spread) -> Band:
    """`band` with its interval (which always holds the nominal value) widened by `spread` ≥ 0 on each side.

    Each bound moves outward or stays NaN (which the comparison ignores), so what passes at a
    spread passes at every larger one: `judge` relies on it to skip computing the spread."""
    return Band(band.nominal, np.minimum(band.lower, band.nominal) - spread, np.maximum(band.upper, band.nominal) + spread)


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
    return CheckResult(name, False, weight, diagnosis=Diagnosis("input mutated", "input_mutated"),
                       message=f"your method changed its input {', '.join(changed)} in place; work on a copy "
                               f"(e.g. `X = np.array(X, dtype=float)`) or use operations that return new arrays.")


def finite_difference_band(fd: np.ndarray, fd_true: np.ndarray, true_derivative: np.ndarray, noise: float) -> Band:
    """Central differences as a measurement: right within their truncation error (how far the
    same differences of the truth are from the true derivative) and their rounding noise."""
    with np.errstate(invalid="ignore"):
        error = np.nan_to_num(np.abs(fd_true - true_derivative), nan=0.0, posinf=0.0) + noise
    return Band(fd, fd - error, fd + error)


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


def own_values(ctx: ItemContext, obj, method: str, calls: list[tuple], truth, shape) -> list[np.ndarray] | None:
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


def situation(ctx: ItemContext, method: str, **kw) -> Situation:
    return Situation(ctx.cls, method, ctx.truth, **kw)


def named(check, name: str):
    """`check` named after the check it runs (`softmax.gradient.edges`), so that a traceback of a
    grader fault says which check failed (each factory makes a new function: nothing is shared)."""
    check.__name__ = check.__qualname__ = name
    code = check.__code__.replace(co_name=name)
    check.__code__ = code.replace(co_qualname=name) if hasattr(code, "co_qualname") else code  # what tracebacks print
    return check


# ----------------------------------------------------------------------------- not gradable as written

NOT_GRADABLE = "not gradable as written"


class NotGradable(Exception):
    """Raised inside a check when the student's code cannot be called the course's way (a signature
    or a shape the grader cannot drive): reported as such by `not_gradable`, never as a wrong answer."""


def not_gradable(name: str, weight: float, reason: str) -> CheckResult:
    """The one way every kind reports a shape it cannot drive: the check fails (the item's status
    "failed", as the update step's always was: nothing of the student's code crashed), with the message
    "not gradable as written: <reason>. …", no diagnosis (it is no mistake), and the reason kept for
    the item's `graded_as` and `reason`, where the report says it once."""
    return CheckResult(name, False, weight, not_gradable=reason,
                       message=f"{NOT_GRADABLE}: {reason}. The grader calls the course's shapes only; "
                               "your instructor can grade this by hand")
