"""Network.training (0 points): the student's own classes trained, beside the truth trained alike.

Each of the spec's networks with a fully connected layer (the built-in `binary`, FC → sigmoid →
log loss, and `classifier`, input → FC → ReLU → FC → softmax → cross-entropy) is built from the
student's classes, started from the same fixed weights as the truth, and trained for EPOCHS
epochs of forward, the objective's gradient, backward and updateWeights on a small fixed data set
(called as the student's signature takes it: `fully_connected_update.call_plan`). It passes when
the loss per epoch (the true J of the student's outputs: a wrong eval() is judged elsewhere) stays
with the truth's; otherwise it names the first epoch and the first layer whose numbers depart,
and, where that is an update, the named mistake its step shows. Both loss curves go to the
report (`details["curves"]`, drawn as an inline SVG).
"""
from __future__ import annotations

import numpy as np

from grader.checking import points
from grader.checking.compare import compare
from grader.checking.network import FEATURES, HIDDEN, _final_width, _Step
from grader.checking.results import CheckResult, ItemResult
from grader.checking.student import Chained, StudentFailure, array_of
from grader.sandbox import Ref
from grader.truth.symbolic import SymbolicTruth
from grader.truth.update_truth import update_gradients

EPOCHS = 12  # with η = 1 the truth's loss falls 1.39 → 0.55 (classifier) and 1.09 → 0.14 (binary): it learns, at half the calls of 24 epochs at η = 0.5
READ_BACK_EPOCHS = 2  # the first epochs read W and b back after each update, to name a wrong step
ETA = 1.0
SAMPLES = 12
# As loose as the network diagnostic: right forms differ by ε-sized terms that training magnifies.
RTOL, ATOL = 1e-3, 1e-4
ITEM = "Network.training"


def applies(spec) -> bool:
    """True when the spec grades an update step and has a network with a fully connected layer."""
    return any("updateWeights" in spec.classes[name].points for net in spec.networks for name in net.layers
               if spec.classes[name].kind == "fully_connected")


def run_training(spec, student, seed) -> ItemResult:
    nets = [net for net in spec.networks if any(spec.classes[n].kind == "fully_connected" for n in net.layers)]
    item = ItemResult(name=ITEM, max_score=0.0,
                      rule=f"{EPOCHS} epochs of forward, backward and updateWeights(gradIn, η = {ETA:g}) on the networks "
                           f"{', '.join(n.name for n in nets)}, from the truth's initial weights")
    for net in nets:
        missing = [n for n in (*net.layers, net.objective) if n not in student.methods]
        if missing:
            item.checks.append(CheckResult(net.name, False, 0.0, outcome="missing", message=f"needs {', '.join(missing)}, which could not be loaded"))
            continue
        item.checks.append(_train(net, spec, student, seed))
    return item


class _Trace:
    def __init__(self):
        self.first_bad: str | None = None
        self.diagnosis = None
        self.truth_loss: list[float] = []
        self.your_loss: list[float] = []


def _train(net, spec, student, seed) -> CheckResult:
    from grader.kinds.fully_connected_update import Update, call_plan_for, mistake_of, read_back

    truth = SymbolicTruth(spec.epsilon)
    rng = points.rng_for(seed, f"{ITEM}/{net.name}")
    objective = spec.classes[net.objective]
    n, d = SAMPLES, FEATURES
    X = points.input_data(rng, n, d) if spec.classes[net.layers[0]].kind == "input" else rng.normal(size=(n, d))
    k_out = _final_width(net, spec)
    scores = (X - X.mean(axis=0)) / X.std(axis=0) @ rng.normal(size=(d, k_out))
    Y = (np.eye(k_out)[np.argmax(scores, axis=1)] if objective.options.targets == "onehot"
         else (scores > _column_medians(scores)).astype(float))
    trace = _Trace()
    layers = []  # (class, student handle, true step, call plan or None)
    fc_total = sum(1 for name in net.layers if spec.classes[name].kind == "fully_connected")
    width, fc_count = d, 0
    try:
        for name in net.layers:
            cls = spec.classes[name]
            if cls.kind == "input":
                layers.append((cls, student.new(cls, X), _Step(truth, cls, data=X), None))
            elif cls.kind == "fully_connected":
                fc_count += 1
                out = k_out if fc_count == fc_total else HIDDEN
                handle, W, b = student.fully_connected(cls, rng.normal(scale=0.5, size=(width, out)), rng.normal(scale=0.1, size=(1, out)))
                plan = call_plan_for(student, cls)
                if plan.shape == "not gradable":
                    return CheckResult(net.name, False, 0.0, message=f"not trained: {plan.reason}")
                layers.append((cls, handle, _Step(truth, cls, W=W.copy(), b=b.copy()), plan))
                width = out
            else:
                layers.append((cls, student.new(cls, data=np.zeros((n, width))), _Step(truth, cls), None))
        obj = student.new(objective)
        last_update = {}  # layer index -> the named mistake of its last update, where one departed
        rates = {}  # layer index -> the rate the truth applies (the student's own, when it takes none)
        for epoch in range(EPOCHS):
            # After the first epochs (which read the weights back) the student's calls need no answer
            # of the grader's: one round trip per epoch, replayed below in the same order.
            ask = Chained(student, _epoch_steps(layers, obj, objective, X, Y) if epoch >= READ_BACK_EPOCHS else [])
            got, want = X, X
            for i, (cls, handle, step, _) in enumerate(layers):
                got = array_of(ask.call(handle, cls, "forward", got), f"{cls.name}.forward()")
                want = step.forward(want)
                if not _agrees(got, want) and trace.first_bad is None:
                    trace.first_bad = f"epoch {epoch + 1}: the forward output departs first at {cls.name} (layer {i + 1} of {len(layers)})"
                    if epoch > 0 and cls.kind == "fully_connected":
                        trace.first_bad += " — its weights after the previous epoch's update differ from the truth's"
                        trace.diagnosis = last_update.get(i)
            # an output of another shape has no loss to draw (the departure is named above)
            trace.your_loss.append(float(truth.objective_value(objective, Y, got)) if np.shape(got) == np.shape(want) else float("nan"))
            trace.truth_loss.append(float(truth.objective_value(objective, Y, want)))
            delta = array_of(ask.call(obj, objective, "gradient", Y, got), f"{objective.name}.gradient()")
            true_delta = truth.objective_gradient(objective, Y, want)
            last_update = {}
            for i in range(len(layers) - 1, -1, -1):
                cls, handle, step, plan = layers[i]
                if cls.kind == "input":
                    continue
                upstream, true_upstream = delta, true_delta
                delta = array_of(ask.call(handle, cls, "backward", upstream), f"{cls.name}.backward()")
                true_delta = step.backward(true_upstream)
                if not _agrees(delta, true_delta) and trace.first_bad is None:
                    trace.first_bad = f"epoch {epoch + 1}: δ departs first at {cls.name}.backward (layer {i + 1} of {len(layers)}, going backward)"
                if plan is None:
                    continue
                stored, W0, b0 = step.input, step.W.copy(), step.b.copy()
                ask.tell(handle, cls, "updateWeights", *_update_args(plan, upstream))  # posted: a failure surfaces at the next call
                gW, gb = update_gradients(stored, true_upstream, cls.options.update_reduction)
                if i not in rates:
                    rates[i] = ETA if plan.rate_given else _student_rate(student, cls, handle, W0, b0, gW, gb, read_back)
                step.W, step.b = W0 - rates[i] * gW, b0 - rates[i] * gb
                if trace.first_bad is None and student.has(cls, "getWeights") and student.has(cls, "getBiases") and epoch < READ_BACK_EPOCHS:
                    W1, b1 = read_back_quietly(student, cls, handle, read_back, W0.shape)
                    if W1 is not None and not (_agrees(W1, step.W) and _agrees(b1, step.b)):
                        u = Update(stored, true_upstream, W0, b0, W1, b1, rates[i], not plan.rate_given, handle)
                        last_update[i] = mistake_of(u, cls.options.update_reduction, RTOL, ATOL)
                        trace.first_bad = (f"epoch {epoch + 1}: W and b after {cls.name}.updateWeights (layer {i + 1} of "
                                           f"{len(layers)}) differ from the truth's")
                        trace.diagnosis = last_update[i]
    except StudentFailure as failure:
        curves = _curves(trace)
        if trace.first_bad:
            return CheckResult(net.name, False, 0.0, message=f"{trace.first_bad}; after that, {failure}", diagnosis=trace.diagnosis,
                               details={"curves": curves})
        return CheckResult(net.name, False, 0.0, outcome=failure.status if failure.status != "ok" else "error",
                           message=f"the network could not be trained: {failure}", details={"curves": curves})
    curves = _curves(trace)
    ok = compare(np.array(trace.your_loss), np.array(trace.truth_loss), rtol=RTOL, atol=ATOL).passed
    said = (f"loss {trace.truth_loss[0]:.4g} → {trace.truth_loss[-1]:.4g} over {EPOCHS} epochs (the truth's); "
            f"yours {trace.your_loss[0]:.4g} → {trace.your_loss[-1]:.4g}")
    if ok:
        return CheckResult(net.name, True, 0.0, note=f"your network learns as the truth does: {said}", details={"curves": curves})
    where = trace.first_bad or "the loss departs from the truth's"
    return CheckResult(net.name, False, 0.0, message=f"{where}; {said}", diagnosis=trace.diagnosis, details={"curves": curves})


def _update_args(plan, upstream) -> tuple:
    """updateWeights' arguments as its signature takes them (`fully_connected_update.call_plan`)."""
    return () if plan.shape == "after backward" else (ETA,) if plan.shape == "eta after backward" else (
        (upstream,) if plan.shape == "gradIn" else (upstream, *plan.before_rate, ETA))


def _epoch_steps(layers, obj, objective, X, Y) -> list[tuple]:
    """One epoch's calls of the student's network, in the order `_train` makes them, each later
    argument the answer of an earlier call (`Ref`): forward through the layers, the objective's
    gradient, then backward and updateWeights from the last layer to the first."""
    steps = [(handle, cls, "forward", (X if i == 0 else Ref(i - 1),), False) for i, (cls, handle, _, _) in enumerate(layers)]
    steps.append((obj, objective, "gradient", (Y, Ref(len(steps) - 1)), False))
    delta = Ref(len(steps) - 1)
    for cls, handle, _, plan in reversed(layers):
        if cls.kind == "input":
            continue
        upstream = delta
        steps.append((handle, cls, "backward", (upstream,), False))
        delta = Ref(len(steps) - 1)
        if plan is not None:
            steps.append((handle, cls, "updateWeights", _update_args(plan, upstream), True))
    return steps


def _column_medians(a: np.ndarray) -> np.ndarray:
    """np.median(a, axis=0), without the numpy.ma that np.median imports on its first call (10 ms)."""
    s = np.sort(a, axis=0)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def _agrees(got, want) -> bool:
    return compare(got, want, rtol=RTOL, atol=ATOL).passed


def _student_rate(student, cls, handle, W0, b0, gW, gb, read_back) -> float:
    """The rate a student's update applies when it takes none, from its first step (the truth follows it)."""
    from grader.kinds.fully_connected_update import estimated_rate

    W1, b1 = read_back_quietly(student, cls, handle, read_back, W0.shape)
    return ETA if W1 is None else estimated_rate(W1 - W0, b1 - b0, gW, gb)


def read_back_quietly(student, cls, handle, read_back, shape):
    """W and b as the getters give them, or (None, None) when they cannot be read."""
    try:
        return read_back(student, cls, handle, *shape)
    except StudentFailure:
        return None, None


def _curves(trace: _Trace) -> dict:
    clean = lambda values: [v if np.isfinite(v) else None for v in values]  # noqa: E731
    return {"truth": clean(trace.truth_loss), "yours": clean(trace.your_loss)}
