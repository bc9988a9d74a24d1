"""What the image layers' kinds share: driving a student's class by its signature, and judging.

Real submissions vary more than the course's scaffold (issue 22): a convolution built as
`(kH, kW)`, `(k)` or `(k, n)` (n kernels; the grader asks for one), its kernel set through a
setter the spec names (`setKernel`, `setKernels`, `setWeights`) or, without one, the attribute
that holds it; images passed as one H×W image (the course's) or as a batch of one 1×H×W. The
driver finds the shape a class answers to once, on its first call, keeps it for every check,
and records it (`StudentCode.driven`, shown in the item's `graded_as`). A shape it cannot drive
is reported as "not gradable as written" with the reason, never as a wrong answer.
"""
from __future__ import annotations

import re

import numpy as np

from grader.checking.checks import ItemContext, json_numbers
from grader.checking.compare import compare
from grader.checking.results import CheckResult, Diagnosis
from grader.checking.student import StudentFailure, array_of
from grader.sandbox import Outcome

#: Attributes a kernel is held in, tried (only where the object already has one) when no setter is named.
KERNEL_ATTRIBUTES = ("kernel", "kernels", "_kernel", "K", "weights", "W", "filter", "filters")
#: How many images a batch of a "batch" spec holds.
BATCH = 3
NOT_GRADABLE = "not gradable as written"


def geometry(ctx: ItemContext) -> dict:
    """The class's image options (grader.kinds.ConvolutionOptions, …) as a dict."""
    return vars(ctx.cls.options)


def batch(ctx: ItemContext) -> bool:
    return geometry(ctx)["images"] == "batch"


def image(ctx: ItemContext, shape, *, low=-2.0, high=2.0) -> np.ndarray:
    """Test images: distinct values (no ties), N×H×W in a batch spec, else H×W."""
    size = (BATCH, *shape) if batch(ctx) else tuple(shape)
    values = ctx.rng.uniform(low, high, size=size)
    return np.round(values, 6) + np.arange(values.size).reshape(size) * 1e-7  # never two equal entries


# ----------------------------------------------------------------------------- driving by signature


def driven(ctx: ItemContext) -> dict:
    """What the driver found for this class ({"constructor", "kernel", "images"}), kept for every check."""
    return ctx.student.driven.setdefault(ctx.cls.name, {})


def _describe(ctx: ItemContext):
    d = driven(ctx)
    parts = [f"built as {d['constructor']}" if d.get("constructor") else "",
             f"kernel set by {d['kernel']}" if d.get("kernel") else "",
             "images passed as 1×H×W batches of one" if d.get("images") == "batch_of_one" else ""]
    ctx.student.driven_text[ctx.cls.name] = "; ".join(p for p in parts if p)


def new_layer(ctx: ItemContext, variants: list[tuple], check=None):
    """A student object built with the first constructor call of `variants` that works and that
    `check(layer)` accepts (None: accepted); the call found is remembered for the next checks."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if "constructor_args" in d:
        layer = student.new(cls, *d["constructor_args"])
        return layer if check is None else check(layer)
    failures = []
    for args in variants:
        layer = student.new(cls, *args)
        try:
            result = check(layer) if check is not None else _built(ctx, layer)
        except StudentFailure as failure:
            if failure.outcome.kind not in ("error", "missing", "other") or failure.status == "not_implemented":
                raise
            failures.append((args, failure))
            continue
        if result is None:
            failures.append((args, None))
            continue
        d["constructor_args"] = args
        if args != variants[0]:
            d["constructor"] = f"{cls.name}({', '.join(map(repr, args))})"
        _describe(ctx)
        return result
    first = next((f for _, f in failures if f is not None), None)
    if first is not None and not all(f is None or f.outcome.error_type == "TypeError" for _, f in failures):
        raise first  # the constructor fails for another reason than its parameters: the student's error
    shown = "; ".join(f"{cls.name}({', '.join(map(repr, a))}): " + (f.outcome.describe() if f else "holds another number of kernel entries")
                      for a, f in failures)
    raise NotGradable(f"no constructor call of the course's shapes gives one layer to grade ({shown})")


def _built(ctx, layer):
    ctx.student.call(layer, ctx.cls, "__getattribute__", "__class__")  # a posted constructor's failure surfaces here
    return layer


class NotGradable(Exception):
    """The class's shape cannot be driven: say so, never as a wrong answer."""


def not_gradable(name: str, weight: float, reason: str) -> CheckResult:
    return CheckResult(name, False, weight, outcome="error", diagnosis=Diagnosis(NOT_GRADABLE, "image.not_gradable"),
                       message=f"{NOT_GRADABLE}: {reason}. The grader calls the course's shapes only; your instructor can "
                               "grade this by hand")


def guarded(check):
    """A check that reports NotGradable as such (the runner reports every other StudentFailure)."""
    def run(ctx: ItemContext, name: str, weight: float) -> CheckResult:
        try:
            return check(ctx, name, weight)
        except NotGradable as exc:
            return not_gradable(name, weight, str(exc))
        except StudentFailure as failure:
            reason = signature_mismatch(failure)
            if reason:
                return not_gradable(name, weight, reason)
            raise
    run.__name__ = run.__qualname__ = getattr(check, "__name__", "check")
    return run


def signature_mismatch(failure: StudentFailure) -> str:
    """Why a call failed because the method takes other arguments than the course's, or ''."""
    o = failure.outcome
    if o.kind == "error" and o.error_type == "TypeError" and re.search(
            r"positional argument|required (keyword|positional)|takes (no|\d+) (positional )?argument", o.message):
        return f"{failure.during} takes other arguments than the course's ({o.message})"
    return ""


def call_image(ctx: ItemContext, layer, method: str, arg: np.ndarray, size, *rest, return_args=False):
    """Call `method(arg, *rest)` in the image form the class answers to: as given, else (a single-image
    spec) as a batch of one, 1×…, the answer's leading 1 dropped. The first forward call of a class whose
    answer has `size` entries (or that `size(answer)` accepts) decides its form; a call with `size` None (backward, updateWeights) uses the
    form decided, else the spec's. Returns the Outcome (an array reshaped to the given form)."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if "images" in d or size is None:
        forms = [d.get("images", "as_given")]
    else:
        forms = ["as_given"] if batch(ctx) else ["as_given", "batch_of_one"]
    outcome = None
    for form in forms:
        given = arg[None] if form == "batch_of_one" else arg
        outcome = student.call(layer, cls, method, given, *rest, return_args=return_args)
        if outcome.ok and form == "batch_of_one" and outcome.value.shape[:1] == (1,):
            outcome.value = outcome.value[0]
        if size is None or "images" in d:
            return outcome
        if outcome.ok and (size(outcome.value) if callable(size) else outcome.value.size == size):
            d["images"] = form
            _describe(ctx)
            return outcome
    return outcome


def value(outcome: Outcome, during: str) -> np.ndarray:
    return array_of(outcome, during)


# ----------------------------------------------------------------------------- kernels


def set_kernel(ctx: ItemContext, layer, K: np.ndarray):
    """Give `layer` the kernel K: through the setter, else the attribute holding a kernel of K's size.
    Returns the layer, or None when it holds another number of kernel entries (another constructor call)."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if student.has(cls, "setKernel"):
        student.tell(layer, cls, "setKernel", K)
        _built(ctx, layer)
        setter = student.methods[cls.name]["setKernel"]
        if setter != "setKernel":  # the course's own name goes without saying
            d.setdefault("kernel", f"{setter}()")
        return layer
    names = [d["kernel_attribute"]] if "kernel_attribute" in d else KERNEL_ATTRIBUTES
    for attr in names:
        held = student.call(layer, cls, "__getattribute__", attr)
        if not held.ok:
            continue
        if held.value.size != K.size:
            return None
        student.tell(layer, cls, "__setattr__", attr, K.reshape(held.value.shape))
        d["kernel_attribute"] = attr
        d.setdefault("kernel", f"its attribute {attr} (no setter)")
        return layer
    raise NotGradable(f"{cls.name} has no {' or '.join(cls.method_names('setKernel'))} and no kernel attribute "
                      f"({', '.join(KERNEL_ATTRIBUTES)}) to set")


def read_kernel(ctx: ItemContext, layer, shape) -> np.ndarray | None:
    """The kernel the layer holds (getter, else its attribute), or None when it cannot be read."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if student.has(cls, "getKernel"):
        outcome = student.call(layer, cls, "getKernel")
    elif "kernel_attribute" in d:
        outcome = student.call(layer, cls, "__getattribute__", d["kernel_attribute"])
    else:
        return None
    got = array_of(outcome, f"{cls.name}.{cls.method_names('getKernel')[0]}()")
    return shaped(got, shape)


# ----------------------------------------------------------------------------- judging


def shaped(got: np.ndarray, shape) -> np.ndarray:
    """`got` in `shape` when the two differ only by axes of length 1 (a batch of one's leading 1, a
    kernel held as 1×kH×kW); any other shape is left as it is, for the comparison to report."""
    squeeze = lambda s: tuple(n for n in s if n != 1)  # noqa: E731
    return got.reshape(shape) if got.shape != tuple(shape) and squeeze(got.shape) == squeeze(shape) else got


def verdict(ctx: ItemContext, name: str, weight: float, got, expected, *, what: str,
            mistakes=(), note: str = "", accepted: list[tuple[str, np.ndarray]] = ()) -> CheckResult:
    """Compare at the answer's precision; on a mismatch, name the first of `mistakes` ((code, text,
    numbers()) as a kind's MISTAKES yield them) whose numbers the answer has.
    `accepted`: other right answers (and the note that says which one was given)."""
    rtol, atol = ctx.precision.values(ctx.tol)
    result = compare(got, expected, rtol=rtol, atol=atol, what=what)
    if result.passed:
        return CheckResult(name, True, weight, note=note)
    for said, other in accepted:
        if np.shape(other) == np.shape(got) and compare(got, other, rtol=rtol, atol=atol).passed:
            return CheckResult(name, True, weight, note="; ".join(n for n in (note, said) if n))
    diagnosis = None
    for code, text, numbers in mistakes:  # the kind's MISTAKES: (code, text, a function of the numbers)
        wrong = numbers()
        if np.shape(wrong) == np.shape(got) and compare(got, wrong, rtol=rtol, atol=atol).passed:
            diagnosis = Diagnosis(text, code)
            break
    details = {}
    if np.size(got) <= 400 and np.size(expected) <= 400:
        details = {"got": json_numbers(np.asarray(got, dtype=float)), "expected": json_numbers(np.asarray(expected, dtype=float))}
    return CheckResult(name, False, weight, message=result.message, diagnosis=diagnosis, note=note, details=details)


def unchanged_arg(name: str, weight: float, outcome: Outcome, original: np.ndarray, label: str) -> CheckResult:
    after = outcome.args_after[0] if outcome.args_after else None
    if after is not None and after.kind == "array" and after.value.size == original.size and np.array_equal(
            after.value.reshape(original.shape), original, equal_nan=True):
        return CheckResult(name, True, weight)
    return CheckResult(name, False, weight, diagnosis=Diagnosis("input mutated", "input_mutated"),
                       message=f"your method changed its input {label} in place; work on a copy "
                               "(e.g. `X = np.array(X, dtype=float)`) or use operations that return new arrays.")
