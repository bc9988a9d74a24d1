"""What the image layers' kinds share: driving a student's class by its signature, and judging.

Real submissions vary more than the course's scaffold (issue 22): a convolution built as
`(kH, kW)`, `(k)` or `(k, n)` (n kernels; the grader asks for one), or with channels and filters,
`(n_kernels, kH, kW)` or `(channels, filters, k)` (asked for one of each: with one input channel and
one filter such a layer is the course's cross-correlation); its kernel set through a setter the
spec names (`setKernel`, `setKernels`, `setWeights`) or, without one, the attribute that holds it;
images passed as one H×W image (the course's), as a batch of one 1×H×W, or with one channel as
NCHW (1×1×H×W) or NHWC (1×H×W×1), the layout told by the shape of what forward returns. The
driver finds the shape a class answers to once, on its first call, keeps it for every check,
and records it (`StudentCode.driven`, shown in the item's `graded_as`). A shape it cannot drive
is reported as "not gradable as written" with the reason, never as a wrong answer.
"""
from __future__ import annotations

import re

import numpy as np

from grader.checking.checks import NOT_GRADABLE, ItemContext, NotGradable, json_numbers, not_gradable
from grader.checking.compare import compare
from grader.checking.results import CheckResult, Diagnosis
from grader.checking.student import StudentFailure, array_of
from grader.sandbox import Outcome

#: Attributes a kernel is held in, tried (only where the object already has one) when no setter is named.
KERNEL_ATTRIBUTES = ("kernel", "kernels", "_kernel", "K", "weights", "W", "filter", "filters")
#: How many images a batch of a "batch" spec holds.
BATCH = 3


def geometry(ctx: ItemContext) -> dict:
    """The class's image options (grader.kinds.ConvolutionOptions, …) as a dict."""
    return vars(ctx.cls.options)


def batch(ctx: ItemContext) -> bool:
    """Whether the test images are a batch N×H×W (the spec's "batch", or a layout it pins: "nchw", "nhwc")."""
    return geometry(ctx)["images"] in ("batch", *LAYOUTS)


#: The 4-D layouts of one-channel images, and the axis of their channel.
LAYOUTS = {"nchw": 1, "nhwc": 3}


def in_form(a: np.ndarray, form: str, is_batch: bool) -> np.ndarray:
    """An H×W image (N×H×W batch) as the class takes it: as given, a batch of one, or one channel of a 4-D layout."""
    if form == "batch_of_one":
        return a[None]
    if form in LAYOUTS:
        a = a if is_batch else a[None]
        return np.expand_dims(a, LAYOUTS[form])
    return a


def from_form(v: np.ndarray, form: str, is_batch: bool) -> np.ndarray:
    """An answer in the class's form back in the grader's (H×W, or N×H×W); any other shape as it came."""
    if form == "batch_of_one" and v.shape[:1] == (1,):
        return v[0]
    if form in LAYOUTS and v.ndim == 4 and v.shape[LAYOUTS[form]] == 1 and (is_batch or v.shape[0] == 1):
        v = np.take(v, 0, axis=LAYOUTS[form])
        return v if is_batch else v[0]
    return v


def form_text(form: str, is_batch: bool) -> str:
    n = "N" if is_batch else "1"
    return {"batch_of_one": "images passed as 1×H×W batches of one",
            "nchw": f"images passed as NCHW with one channel ({n}×1×H×W), answers read in that layout",
            "nhwc": f"images passed as NHWC with one channel ({n}×H×W×1), answers read in that layout"}.get(form, "")


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
             form_text(d.get("images", ""), batch(ctx)) if d.get("forms_tried") else ""]
    ctx.student.driven_text[ctx.cls.name] = "; ".join(p for p in parts if p)


def new_layer(ctx: ItemContext, variants: list[tuple], check=None):
    """A student object built with the first constructor call of `variants` that works and that
    `check(layer)` accepts (None: accepted); the call found is remembered for the next checks."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if "constructor_args" in d:
        layer = student.new(cls, *d["constructor_args"])
        return layer if check is None else check(layer, d["constructor_args"])
    failures = []
    for args in variants:
        layer = student.new(cls, *args)
        try:
            result = check(layer, args) if check is not None else _built(ctx, layer)
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
    shown = "; ".join(f"{cls.name}({', '.join(map(repr, a))}): " + (f.outcome.describe() if f else "holds no single kernel of the size asked, or none the grader can read")
                      for a, f in failures)
    raise NotGradable(f"no constructor call of the course's shapes gives one layer to grade ({shown})")


def _built(ctx, layer):
    ctx.student.call(layer, ctx.cls, "__getattribute__", "__class__")  # a posted constructor's failure surfaces here
    return layer


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


def call_image(ctx: ItemContext, layer, method: str, arg: np.ndarray, size, *rest, return_args=False, shape=None):
    """Call `method(arg, *rest)` in the image form the class answers to, the answer taken back to the
    grader's form. The first forward call of a class decides its form: as given; a single image as a
    batch of one, 1×…; then one channel in NCHW or NHWC. A form is the class's when its answer has `size`
    entries (or `size(answer)` accepts it); a 4-D layout only when the answer comes back 4-D in that
    layout with the grader's `shape`, and never when the other layout gives a different answer too (the
    layout cannot be told: not gradable). A call with `size` None (backward, updateWeights) uses the form
    decided, else the spec's. Returns the Outcome (an array taken back to the given form)."""
    cls, student, d, is_batch = ctx.cls, ctx.student, driven(ctx), batch(ctx)
    pinned = geometry(ctx)["images"] if geometry(ctx)["images"] in LAYOUTS else None

    def attempt(form):
        outcome = student.call(layer, cls, method, in_form(arg, form, is_batch), *rest, return_args=return_args)
        raw = outcome.value if outcome.ok else None
        if outcome.ok:
            outcome.value = from_form(outcome.value, form, is_batch)
        return outcome, raw

    def accepted(outcome, raw, form) -> bool:
        if not outcome.ok:
            return False
        if form in LAYOUTS and (raw.ndim != 4 or (shape is not None and outcome.value.shape != tuple(shape))):
            return False
        return bool(size(outcome.value)) if callable(size) else outcome.value.size == size

    if "undecided" in d:  # decided once for the class, like its form: every check says so
        raise NotGradable(d["undecided"])
    if "images" in d or size is None:
        return attempt(d.get("images", pinned or "as_given"))[0]
    forms = [pinned] if pinned else (["as_given"] if is_batch else ["as_given", "batch_of_one"]) + list(LAYOUTS)
    first = None
    for form in forms:
        outcome, raw = attempt(form)
        first = first or (form, outcome)
        if not accepted(outcome, raw, form):
            continue
        if form in LAYOUTS and not pinned:
            other = next(f for f in LAYOUTS if f != form)
            twin, twin_raw = attempt(other)
            if accepted(twin, twin_raw, other) and not np.allclose(twin.value, outcome.value, rtol=1e-12, atol=0, equal_nan=True):
                d["undecided"] = (f"{cls.name}.{method}() answers 4-D images both as NCHW and as NHWC, differently: "
                                  "the layout it takes cannot be told")
                raise NotGradable(d["undecided"])
            outcome = attempt(form)[0]  # the layer keeps this call's state, not the probe's
        elif form == "as_given" and shape is not None and raw.shape == (1, *shape) and "batch_of_one" in forms:
            # one image answered as a batch of one: its gradients are taken in that shape too, when the
            # class answers the same to a batch of one (its backward may index gradIn as the batch)
            twin, twin_raw = attempt("batch_of_one")
            if accepted(twin, twin_raw, "batch_of_one") and np.allclose(twin.value, outcome.value, rtol=1e-12, atol=0, equal_nan=True):
                form, outcome = "batch_of_one", twin
            else:
                outcome = attempt(form)[0]
        d["images"], d["forms_tried"] = form, form != "as_given"
        _describe(ctx)
        return outcome
    if len(forms) > 1 and first[0] != forms[-1]:
        return attempt(first[0])[0]  # no form fits: judged as the class was first asked (its own message), in that state
    return first[1]


def first_answer_again(method: str, numbers) -> tuple:
    """The mistake of a method that answers its first call again (a cached answer): wrong from its second call on."""
    return ("image.first_answer_again", f"{method} answered its first call again (a cached answer): "
            "each call must compute on the input it is given", numbers)


def forward_before(ctx: ItemContext, layer, shape, size, out_shape=None) -> np.ndarray:
    """forward(X′) on `layer` before the call judged, X′ another image of `shape` (a layer is called
    again and again: a forward that keeps its first answer is wrong from the second call on); X′."""
    X_before = image(ctx, shape)
    call_image(ctx, layer, "forward", X_before, size, shape=out_shape)
    return X_before


def called_before(ctx: ItemContext, layer, method: str, G_shape, X, size, *rest, out_shape=None, then=None) -> np.ndarray:
    """After the layer's forward(X): method(G′, *rest) with another gradient G′, `then()` (a step's kernel set
    back), then forward(X) again, before the call judged (a backward or step keeping its first answer is wrong
    from its second call on); G′."""
    G_before = np.round(ctx.rng.uniform(-1, 1, size=G_shape), 6)
    call_image(ctx, layer, method, G_before, None, *rest)
    if then is not None:
        then()
    call_image(ctx, layer, "forward", X, size, shape=out_shape)
    return G_before


def value(outcome: Outcome, during: str) -> np.ndarray:
    return array_of(outcome, during)


# ----------------------------------------------------------------------------- kernels


def held_kernel(ctx: ItemContext, layer) -> np.ndarray | None:
    """The kernel a freshly built layer holds (getter, else a kernel attribute), or None when none can be read."""
    cls, student = ctx.cls, ctx.student
    if student.has(cls, "getKernel"):
        outcome = student.call(layer, cls, "getKernel")
        return outcome.value if outcome.ok else None
    for attr in KERNEL_ATTRIBUTES:
        held = student.call(layer, cls, "__getattribute__", attr)
        if held.ok:
            return held.value
    return None


def set_kernel(ctx: ItemContext, layer, K: np.ndarray, args=()):
    """Give `layer` the kernel K: through the setter, else the attribute holding a kernel of K's size.
    Returns the layer, or None when it holds another number of kernel entries (another constructor call).
    A constructor of three parameters (channels and filters) is the course's layer only when the kernel it
    holds can be read and has K's entries (then K is given in that shape: 1×kH×kW, 1×1×kH×kW, …)."""
    cls, student, d = ctx.cls, ctx.student, driven(ctx)
    if student.has(cls, "setKernel"):
        held = held_kernel(ctx, layer) if len(args) >= 3 or student.has(cls, "getKernel") else None
        if held is not None and held.size != K.size or held is None and len(args) >= 3:
            return None
        student.tell(layer, cls, "setKernel", K if held is None else K.reshape(held.shape))
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
