"""The parent's handle on the student's classes: calls go to the sandbox, only data comes back.

`StudentCode` turns the sandbox's outcomes into arrays or `StudentFailure`s, restarts the worker
after a timeout or a death, and knows which of the spec's method names and aliases each student
class answers to.
"""
from __future__ import annotations

import time

import numpy as np

from grader.checking.precision import Precision, lowest, precision_of
from grader.sandbox import ObjectHandle, Outcome, PostFailed, Sandbox, WorkerDied, WorkerTimeout
from grader.assignment.spec import GRADED_METHODS, HELPER_METHODS, ClassSpec, Spec
from grader.intake.submission import Discovery


class StudentFailure(Exception):
    """Raised inside a check when the student's code did not give a usable value; the check records it."""

    def __init__(self, outcome: Outcome, during: str):
        self.outcome = outcome
        self.during = during
        super().__init__(f"{during}: {outcome.describe()}")

    @property
    def status(self) -> str:
        o = self.outcome
        if o.kind == "error" and o.error_type == "NotImplementedError":
            return "not_implemented"
        if o.kind in ("timeout",):
            return "timeout"
        if o.kind == "missing":
            return "missing"
        return "error" if o.kind in ("error", "died") else "ok"


class StudentCode:
    """Proxy to the student's classes running in the sandbox."""

    def __init__(self, sandbox: Sandbox, discovery: Discovery, spec: Spec):
        self.sandbox = sandbox
        self.discovery = discovery
        self.spec = spec
        self.methods: dict[str, dict[str, str | None]] = {}
        self.import_errors: dict[str, dict] = {}  # module -> the error importing it raised
        self.hung: set[tuple[str, str]] = set()  # (class, method) that already ran out of time once
        self.precisions: list[Precision] = []  # of the arrays returned since begin_check()
        self.numeric: dict[tuple[str, str], set[str]] = {}  # (class, gradient method) -> how it computed numerically
        self.driven: dict[str, dict] = {}  # class -> the shape an image layer is driven in (grader/kinds/image_layers.py)
        self.driven_text: dict[str, str] = {}  # class -> that shape in words, for graded_as

    def begin_check(self):
        """Start a check: the submission's classes as importing left them (`fresh_classes`), and the
        precisions seen so far forgotten (a check is judged at the precision of its own answers)."""
        self.precisions = []
        self.fresh_classes()

    def fresh_classes(self):
        """Put the submission's classes back as importing left them (the worker's "fresh"): what an
        earlier check stored on a class (moments created once on it, a step counter kept there) is
        not the next one's starting point, as in a fresh process. Posted (no round trip); a worker
        that is gone is restarted by the next call, as ever."""
        if self.sandbox.proc is not None and self.methods:
            try:
                self.sandbox.post({"op": "fresh"}, "")
            except (WorkerDied, WorkerTimeout):
                pass

    @property
    def precision(self) -> Precision:
        """The coarsest precision the student's code answered in since begin_check()."""
        return lowest(self.precisions)

    def start(self, while_waiting=None) -> dict[str, dict]:
        """Start the worker and import the class modules; return {module: error} for those that failed.

        `while_waiting()` is the grader's own work to do while the worker starts (see Sandbox.start).

        A module that kills the worker or never finishes importing (os._exit, an endless loop at
        module level) is found by importing each module alone; the others are then loaded
        without it, so one hostile file costs only its own classes.
        """
        request = self.sandbox.load_request = {**self.sandbox.load_request, "describe": {
            name: self._wanted(self.spec.classes[name]) for name in self.sandbox.load_request.get("classes", {})}}
        try:
            return self._load(while_waiting)
        except (WorkerDied, WorkerTimeout):
            pass
        fatal = {}
        for module in request["modules"]:
            self.sandbox.load_request = {**request, "modules": [module],
                                         "classes": {k: v for k, v in request["classes"].items() if v[0] == module}}
            try:
                self._load()
            except WorkerTimeout:
                fatal[module] = {"type": "Timeout", "message": f"importing it did not finish in {self.sandbox.limits.load_timeout:g} s "
                                                               "(a loop or a training run at module level?)"}
            except WorkerDied as exc:
                fatal[module] = {"type": "WorkerDied", "message": f"the process died while importing it: {exc}"}
        good = [m for m in request["modules"] if m not in fatal]
        self.sandbox.load_request = {**request, "modules": good,
                                     "classes": {k: v for k, v in request["classes"].items() if v[0] in good}}
        self.methods = {}
        errors = self._load() if good else {}
        self.import_errors = {**errors, **fatal}
        return self.import_errors

    def _load(self, while_waiting=None) -> dict[str, dict]:
        result = self.sandbox.start(while_waiting)
        if result.get("kind") != "ok":
            raise WorkerDied(f"the worker could not load the submission: {result.get('message', result)}")
        failed, loaded, methods = result.get("failed", {}), result.get("loaded", []), result.get("methods", {})
        self.import_errors = {k: v for k, v in failed.items() if isinstance(k, str) and isinstance(v, dict)} if isinstance(failed, dict) else {}
        methods = methods if isinstance(methods, dict) else {}
        for name in loaded if isinstance(loaded, list) else []:
            if name not in self.discovery.found:  # the child may say anything: only what was asked counts
                continue
            cls = self.spec.classes[name]
            said = methods.get(name)
            present = set(self._wanted(cls)) & set(m for m in said if isinstance(m, str)) if isinstance(said, list) else set()
            self.methods[name] = {
                m: next((n for n in cls.method_names(m) if n in present), None)
                for m in GRADED_METHODS[cls.kind] + HELPER_METHODS[cls.kind]
            }
        return self.import_errors

    @staticmethod
    def _wanted(cls: ClassSpec) -> list[str]:
        """Every name, spec's and aliases, of the methods graded or used on this class."""
        return [n for m in GRADED_METHODS[cls.kind] + HELPER_METHODS[cls.kind] for n in cls.method_names(m)]

    def has(self, cls: ClassSpec, method: str) -> bool:
        return bool(self.methods.get(cls.name, {}).get(method))

    # ------------------------------------------------------------------ requests

    def _guard(self, during: str, action):
        try:
            return action()
        except PostFailed as failed:  # a constructor or setter sent earlier did not work
            raise StudentFailure(failed.outcome, failed.during) from None
        except WorkerTimeout:
            self._recover()
            raise StudentFailure(Outcome("timeout"), during) from None
        except WorkerDied as exc:
            self._recover()
            raise StudentFailure(Outcome("died", message=str(exc)), during) from None

    def _recover(self):
        """Start a fresh worker so the other items are still graded (unless the time is used up)."""
        self.sandbox.close()
        remaining = self.sandbox.limits.total_timeout - (time.monotonic() - self.sandbox.started_at)
        if remaining > 1:
            try:
                self.sandbox.restart()
            except (WorkerDied, WorkerTimeout):
                self.sandbox.close()

    def new(self, cls: ClassSpec, *args, data=None) -> ObjectHandle:
        """A student object; if its constructor fails, the next call says so.

        When the spec's call lacks a required parameter, the course's other years are tried: an
        activation layer built on its input data (`data`), a fully connected layer with None for
        each extra parameter (the grader sets W and b anyway). Nothing else is guessed.
        """
        during = f"{cls.name}({', '.join(_short(a) for a in args)})"
        fallback = None
        if cls.kind in ("elementwise", "softmax") and data is not None:
            fallback = {"kind": "data", "data": np.asarray(data, dtype=float)}
        elif cls.kind in ("fully_connected", "fully_connected_adam"):
            fallback = {"kind": "none"}
        return self._guard(during, lambda: self.sandbox.new(cls.name, *args, during=during, fallback=fallback))

    def tell(self, obj: ObjectHandle, cls: ClassSpec, method: str, *args):
        """Call a setter without waiting for it; an exception in it surfaces at the next call."""
        name = self.methods.get(cls.name, {}).get(method)
        during = f"{cls.name}.{method}()"
        if not name:
            raise StudentFailure(Outcome("missing", message=f"{cls.name} has no method {' or '.join(cls.method_names(method))}"), during)
        self._guard(during, lambda: self.sandbox.tell(obj, name, args, during))

    def calls(self, obj: ObjectHandle, cls: ClassSpec, method: str, arg_lists: list[tuple], *, return_args=False) -> list[Outcome]:
        name = self.methods.get(cls.name, {}).get(method)
        during = f"{cls.name}.{method}()"
        if not name:
            names = " or ".join(cls.method_names(method))
            raise StudentFailure(Outcome("missing", message=f"{cls.name} has no method {names}"), during)
        if (cls.name, method) in self.hung:  # an endless loop costs its time limit once, not once per check
            raise StudentFailure(Outcome("timeout", message="it ran out of time earlier"), during)
        watch = ()
        if method in ("gradient", "backward"):  # a gradient computed from the student's own forward/eval is noted
            watch = tuple(n for m in ("forward", "eval") if (n := self.methods.get(cls.name, {}).get(m)))
        try:
            outcomes = self._guard(during, lambda: self.sandbox.call_many(obj, name, arg_lists, return_args=return_args,
                                                                          watch=watch))
            self.precisions += [precision_of(o.dtype) for o in outcomes if o.kind == "array"]
            for o in outcomes:
                if o.numeric:
                    self.numeric.setdefault((cls.name, method), set()).update(o.numeric)
            return outcomes
        except StudentFailure as failure:
            if failure.outcome.kind == "timeout" and failure.during == during:
                self.hung.add((cls.name, method))
            raise

    def chain(self, steps: list[tuple[ObjectHandle, ClassSpec, str, tuple, bool]]) -> list[Outcome] | None:
        """Calls (obj, class, method, args, posted) made in turn without a round trip each, as `call` (posted:
        as `tell`) would make them; an argument `Ref(i)` is step i's answer. The outcomes of the steps
        made: the worker stops after one whose answer the next cannot use. None when a method is
        missing or ran out of time earlier: calling one by one then says so as `call` does.

        Each call has its own time limit, as one asked alone: one that runs out of time (or kills
        the worker) answers a timeout (or death) outcome, and the worker is restarted as after `call`."""
        wire = []
        for obj, cls, method, args, posted in steps:
            name = self.methods.get(cls.name, {}).get(method)
            if not name or (cls.name, method) in self.hung:
                return None
            watch = ()
            if method in ("gradient", "backward"):  # as in calls(): a gradient computed from the student's own forward is noted
                watch = tuple(n for m in ("forward", "eval") if (n := self.methods.get(cls.name, {}).get(m)))
            wire.append((obj, name, args, watch, posted))
        outcomes: list[Outcome] = []
        try:
            self._guard("", lambda: self.sandbox.chain(wire, outcomes))
        except StudentFailure as failure:  # the step that did not answer (its time ran out, the worker died)
            if failure.during or len(outcomes) >= len(steps):  # a call posted before the chain failed: as call() raises it
                raise
            _, cls, method, _, posted = steps[len(outcomes)]
            if failure.outcome.kind == "timeout" and not posted:
                self.hung.add((cls.name, method))  # as calls() does: an endless loop costs its time limit once
            outcomes.append(failure.outcome)
        for (_, cls, method, _, _), o in zip(steps, outcomes):
            if o.kind == "array":
                self.precisions.append(precision_of(o.dtype))
            if o.numeric:
                self.numeric.setdefault((cls.name, method), set()).update(o.numeric)
        return outcomes

    def call(self, obj: ObjectHandle, cls: ClassSpec, method: str, *args, return_args=False) -> Outcome:
        return self.calls(obj, cls, method, [args], return_args=return_args)[0]

    def fully_connected(self, cls: ClassSpec, W: np.ndarray, b: np.ndarray, *, need_bias: bool = True,
                        built: tuple = ()) -> tuple[ObjectHandle, np.ndarray, np.ndarray]:
        """A student FC layer holding W and b; without setters, the student's own weights are read and used instead.

        With `need_bias` False (the biases do not enter what is judged), biases that can be neither
        set nor read are left to the student and the grader's b stands for them. `built`: the
        constructor's arguments after (d, k) (an Adam flag switched on).
        """
        d, k = W.shape
        layer = self.new(cls, d, k, *built)
        values = []
        for setter, getter, value in (("setWeights", "getWeights", W), ("setBiases", "getBiases", b)):
            if self.has(cls, setter):
                self.tell(layer, cls, setter, value)
                values.append(value)
            elif self.has(cls, getter):
                outcome = self.call(layer, cls, getter)
                if not outcome.ok and setter == "setBiases" and not need_bias:
                    values.append(value)
                    continue
                values.append(array_of(outcome, f"{cls.name}.{getter}()"))
            elif setter == "setBiases" and not need_bias:
                values.append(value)
            else:
                raise StudentFailure(Outcome("missing", message=f"{cls.name} has neither {setter} nor {getter}"), f"{cls.name}.{setter}()")
        W, b = np.asarray(values[0], dtype=float), np.asarray(values[1], dtype=float).reshape(1, -1)
        if W.shape != (d, k) or b.shape != (1, k):
            raise StudentFailure(Outcome("other", type="weights", detail=f"W of shape {W.shape} and b of shape {b.shape}; expected {(d, k)} and {(1, k)}"),
                                 f"{cls.name}({d}, {k})")
        return layer, W, b

    def value(self, obj: ObjectHandle, cls: ClassSpec, method: str, *args) -> np.ndarray:
        """Call and return the array, or raise StudentFailure saying what came back instead."""
        return array_of(self.call(obj, cls, method, *args), f"{cls.name}.{method}()")


class Chained:
    """Calls known in advance, asked together (`StudentCode.chain`: one request, no round trip per
    call) and handed out in the same order, each as `call` or `tell` would have given it or raised;
    asked one by one when they cannot be chained. The caller then makes exactly the calls of
    `steps`, in order, until one fails."""

    def __init__(self, student: StudentCode, steps: list[tuple]):
        self.student = student
        self.outcomes = student.chain(steps) if steps else None
        self.next = 0

    def call(self, obj: ObjectHandle, cls: ClassSpec, method: str, *args) -> Outcome:
        if self._live():
            return self.student.call(obj, cls, method, *args)
        outcome = self._answer()
        if outcome.kind in ("timeout", "died"):  # what call() raises
            raise StudentFailure(outcome, f"{cls.name}.{method}()")
        return outcome

    def tell(self, obj: ObjectHandle, cls: ClassSpec, method: str, *args) -> None:
        if self._live():
            return self.student.tell(obj, cls, method, *args)
        outcome = self._answer()
        if outcome.kind in ("error", "timeout", "died"):  # what tell() raises at the next call
            raise StudentFailure(outcome, f"{cls.name}.{method}()")

    def _live(self) -> bool:
        """Ask one by one: no chain, or a chain that stopped early after an answer that was not a
        failure; the calls already answered ran, so the next is asked where the chain stopped."""
        return self.outcomes is None or self.next >= len(self.outcomes)

    def _answer(self) -> Outcome:
        self.next += 1
        return self.outcomes[self.next - 1]


def array_of(outcome: Outcome, during: str) -> np.ndarray:
    if outcome.kind == "array":
        return outcome.value
    raise StudentFailure(outcome, during)


def _short(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.shape}"
    return repr(value)[:40]
