"""End-to-end diagnostic (0 points): the student's own layers chained into a small network.

The student's forward outputs are passed from layer to layer, the objective's gradient starts
δ, and each layer's backward passes δ down, exactly as a training loop would. The same network
is run through the SymPy truth with the same weights; the first place the student's numbers
depart from the truth is named: a forward output (in forward order) or a δ (going backward).
"""
from __future__ import annotations

import numpy as np

from grader.checking import points
from grader.checking.compare import compare
from grader.truth.symbolic import SymbolicTruth
from grader.checking.results import CheckResult, ItemResult
from grader.assignment.spec import GRADED_METHODS, NetworkSpec, Spec
from grader.kinds import implementation
from grader.checking.student import StudentCode, StudentFailure, array_of

FEATURES, HIDDEN = 5, 4
# Loose on purpose: right forms differ by ε-sized terms that back-propagation magnifies; this
# diagnostic only locates a layer whose numbers are plainly off.
RTOL, ATOL = 1e-3, 1e-4


def run_network(net: NetworkSpec, spec: Spec, student: StudentCode, seed: int) -> ItemResult:
    item = ItemResult(name=net.item_name, max_score=0.0,
                      rule=" → ".join([*net.layers, net.objective]) + ", back-propagated with the student's own layers")
    missing = [n for n in (*net.layers, net.objective) if n not in student.methods]
    if missing:
        item.status_override = "missing"
        item.reason = f"needs {', '.join(missing)}, which could not be loaded"
        return item
    rng = points.rng_for(seed, net.item_name)
    trace = {"stages": [], "first_bad": None}
    try:
        message, ok, stages = _compare_chains(net, spec, student, rng, trace)
    except StudentFailure as failure:
        if trace["first_bad"]:  # it had already departed; what broke next follows from that
            item.checks.append(CheckResult("chain", False, 0.0, message=f"{trace['first_bad']}; after that, {failure}",
                                           details={"stages": trace["stages"]}))
        else:
            item.checks.append(CheckResult("chain", False, 0.0, outcome=failure.status if failure.status != "ok" else "error",
                                           message=f"the network could not run: {failure}", details={"stages": trace["stages"]}))
        return item
    item.checks.append(CheckResult("chain", ok, 0.0, message="" if ok else message, note=message if ok else "",
                                   details={"stages": stages}))
    return item


def _compare_chains(net, spec, student, rng, trace):
    truth = SymbolicTruth(spec.epsilon)
    n, d = 6, FEATURES
    kinds = {name: implementation(spec.classes[name].kind).LAYER for name in net.layers}
    fc_total = sum(1 for name in net.layers if kinds[name].network_weights)
    # Well-scaled on purpose: saturated outputs (ŷ ≈ 0 or 1) would magnify ε-sized differences
    # between right answers into false departures. Raw data only when an input layer scales it.
    X = points.input_data(rng, n, d) if kinds[net.layers[0]].network_scales_data else rng.normal(size=(n, d))
    layers = []  # (class, student handle, true step)
    width, fc_count = d, 0
    for name in net.layers:
        cls = spec.classes[name]
        if kinds[name].network_weights:  # the last layer with weights maps to the objective's width
            fc_count += 1
            out = _final_width(net, spec) if fc_count == fc_total else HIDDEN
        else:
            out = width
        handle, W, b, data = kinds[name].in_network(student, cls, X, np.zeros((n, width)), width, out, rng)
        layers.append((cls, handle, _Step(truth, cls, W=W, b=b, data=data)))
        width = out
    objective = spec.classes[net.objective]
    k = width
    Y = np.eye(k)[rng.integers(0, k, size=n)] if objective.options.targets == "onehot" else rng.integers(0, 2, size=(n, k)).astype(float)

    stages = trace["stages"]

    def record(layer: str, stage: str, got, want, departs: str) -> None:
        """One stage of the chain: agrees with the truth or not; the first that does not is named."""
        ok = compare(got, want, rtol=RTOL, atol=ATOL).passed
        stages.append({"layer": layer, "pass": stage, "ok": ok})
        if not ok and trace["first_bad"] is None:
            trace["first_bad"] = departs

    got, want = X, X
    for cls, handle, step in layers:
        got = array_of(student.call(handle, cls, "forward", got), f"{cls.name}.forward()")
        want = step.forward(want)
        record(cls.name, "forward", got, want,
               f"the forward output departs first at {cls.name} (layer {len(stages) + 1} of {len(layers)})")
    obj = student.new(objective)
    delta = array_of(student.call(obj, objective, "gradient", Y, got), f"{objective.name}.gradient()")
    true_delta = truth.objective_gradient(objective, Y, want)
    record(objective.name, "gradient", delta, true_delta,
           f"δ departs first at {objective.name}.gradient, where back-propagation starts")
    for i in range(len(layers) - 1, -1, -1):
        cls, handle, step = layers[i]
        if "backward" not in GRADED_METHODS[cls.kind]:  # the input layer
            continue
        delta = array_of(student.call(handle, cls, "backward", delta), f"{cls.name}.backward()")
        true_delta = step.backward(true_delta)
        record(cls.name, "backward", delta, true_delta,
               f"δ departs first at {cls.name}.backward (layer {i + 1} of {len(layers)}, going backward)")
    first_bad = trace["first_bad"]
    if first_bad is None:
        return "the whole network forward and back agrees with the truth", True, stages
    return first_bad, False, stages


class _Step:
    """One layer of the true network, from the SymPy truth: forward, and δ back through its Jacobian."""

    def __init__(self, truth: SymbolicTruth, cls, *, W=None, b=None, data=None):
        self.truth, self.cls, self.W, self.b, self.data = truth, cls, W, b, data
        self.kind = implementation(cls.kind).LAYER  # the kind's truth adapters
        self.input = None

    def forward(self, x):
        self.input = x
        return self.kind.true_forward(self.truth, self.cls, x, W=self.W, b=self.b, data=self.data)

    def backward(self, delta):
        return np.einsum("nk,nkd->nd", delta, self.kind.true_jacobian(self.truth, self.cls, self.input, W=self.W, b=self.b))


def _final_width(net, spec) -> int:
    return 3 if spec.classes[net.objective].options.targets == "onehot" else 1
