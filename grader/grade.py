"""Grading one submission: spec → ground truth → student outputs → comparisons → scores.

`grade_submission` is the library entry point the CLI forwards to. It copies the submission
into a throwaway folder, reads it statically, starts the sandbox, runs every check of every
item of the spec, and returns a `SubmissionResult`. It never raises for anything the student
did; a fault of the grader itself is recorded in `errors` and the other items still run.

The worker's interpreter is launched before this module imports numpy and what computes with
it (student.py, symbolic.py, points.py, checks.py: some 50 ms), so that both start together on
the machine's two cores; those imports are therefore inside the functions that use them (a
test checks that numpy is not imported before the launch).
"""
from __future__ import annotations

import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from grader import __version__
from grader.kinds import CHECK_TABLE, checks_for, implementation
from grader.sandbox.environment import resolve as resolve_environment
from grader.exceptions import SubmissionError
from grader.checking.results import CheckResult, ItemResult, SubmissionResult
from grader.sandbox import ForkServer, Limits, Sandbox, SandboxChoice, WorkerDied, WorkerStartFailed, WorkerTimeout, resolve_sandbox
from grader.sandbox.parent import polling_for_one
from grader.checking.seeding import Seeding, secret_seed
from grader.assignment.spec import Item, Spec, load_spec
from grader.intake.submission import copy_submission, discover, submission_name, workspace

if TYPE_CHECKING:
    from grader.checking.checks import ItemContext
    from grader.checking.student import StudentCode


def grade_submission(path: str | Path, *, spec: Spec | None = None, seed: int | Seeding = 0, sandbox: str | SandboxChoice = "auto",
                     limits: Limits | None = None, command: str = "", progress=None,
                     fork_server: ForkServer | None | bool = None, hidden: tuple[str, ...] = (),
                     prepare=None, remember_truth: bool = False, alone: bool = False) -> SubmissionResult:
    """Grade the submission at `path` (folder, .py or .zip) and return its result.

    In the plain process sandbox the worker is forked from a numpy-warm process (`fork_server`;
    None: this process's shared one) instead of started afresh: the same isolation, without the
    interpreter start-up of every submission. False starts a fresh interpreter, which is quicker
    for a single submission (the fork server preloads the standard library for many).
    `prepare()` is the caller's own work (e.g. readying the report template), done while the
    worker starts, like reading the spec's derived functions from the cache.
    `remember_truth`: read the truth the last run of this spec and seed computed, and store what
    this one used (`grader.truth.remembered`): a self-check run again looks its truth up. Never
    with hidden checks' secret points, which stay off the disk. `alone`: nothing else is graded
    on this machine meanwhile, so the grader and its worker poll for each other's messages
    instead of sleeping between them (`Sandbox.polling`): latency bought with CPU.
    """
    started = time.monotonic()
    spec = spec or load_spec()
    limits = limits or Limits()
    choice = sandbox if isinstance(sandbox, SandboxChoice) else resolve_sandbox(sandbox)
    kind = choice.kind
    seeding = seed if isinstance(seed, Seeding) else Seeding(seed, "fixed" if seed == 0 else "given", spec.secret())
    seed = seeding.seed
    result = SubmissionResult(submission=submission_name(Path(path)), sandbox=kind, sandbox_note=choice.note,
                              seed=seeding.shown, seed_kind=seeding.kind, spec=spec.name,
                              grader_version=__version__, command=command,
                              graded_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    if kind == "process" and fork_server is None:
        _start_fork_server()  # it imports numpy while the submission is copied and read
    with workspace() as tmp:
        root = copy_submission(Path(path), Path(tmp))
        found = discover(root, spec)
        if not found.python_files:
            raise SubmissionError(f"{path}: no Python file in the submission (no .py or .ipynb file in it, "
                                  "or in its folders): is this the right folder?")
        result.warnings += found.warnings
        result.errors += [f"syntax error: {m}" for m in found.syntax_errors.values()]
        environment = resolve_environment(spec.packages)
        box = Sandbox(root, kind=kind, limits=limits, load_request={
            "path": found.sys_path, "path_last": found.sys_path_last, "modules": found.modules,
            "classes": {name: [f.module, f.name] for name, f in found.found.items()},
            "allowed": sorted(environment.modules),
        }, fork_server=fork_server, mounts=environment.paths, hidden=hidden, polling=polling_for_one() if alone else 0.0)
        secret = seeding.secret
        remember = _remembered_name(spec, seed) if remember_truth and secret is None else None
        graded = False
        try:
            if found.found:
                box.launch()  # its interpreter and numpy start now, on the other core, while the grader imports its own
            from grader.checking.student import StudentCode
            from grader.truth.symbolic import SymbolicTruth, note_used

            truth = SymbolicTruth(spec.epsilon)
            student = StudentCode(box, found, spec)
            problems = _start(student, found, lambda: _warm_up(spec, prepare, remember))
            result.errors += list(dict.fromkeys(problems.values()))
            for item in spec.items:
                if progress:
                    progress(item.name)
                if spec.is_hidden(item.name) and secret is None:
                    result.hidden_pending += len(CHECK_TABLE[(item.cls.kind, item.method)])
                    result.hidden_items_pending += 1
                    continue
                result.items.append(_grade_item(item, student, found, truth, seed, problems.get(item.cls.name), result,
                                                spec=spec, secret=secret))
            for net in spec.networks:
                result.items.append(_guarded_network(net, spec, student, seed, result))
            for graded in result.items:  # how an image layer was driven (its constructor, kernel, image form)
                cls_name = graded.name.split(".")[0]
                if student.driven_text.get(cls_name) and graded.graded_as:
                    graded.graded_as["driven"] = student.driven_text[cls_name]
            if _trains(spec):
                result.items.append(_guarded_training(spec, student, seed, result))
            note_used(spec)
            graded = True
            for item in result.items:  # a gradient computed numerically: full marks, and a note for the instructor
                how = student.numeric.get(tuple(item.name.split(".", 1)))
                if how and item.graded_as:
                    item.graded_as["numeric"] = sorted(how)
        finally:
            box.close()
            if remember:
                from grader.truth import remembered

                remembered.store(remember) if graded else remembered.stop()
            result.output = box.printed_output
            result.placeholders = _unique(box.placeholders, found)
            for item in result.items:
                cls_name = item.name.split(".")[0]
                if cls_name in box.constructed and item.graded_as:
                    item.graded_as["constructed"] = box.constructed[cls_name]
    result.elapsed_s = time.monotonic() - started
    return result


def _start_fork_server() -> None:
    try:
        ForkServer.shared()
    except OSError:  # the sandbox then starts a fresh interpreter per worker
        pass


def _remembered_name(spec: Spec, seed: int) -> str:
    from grader import cache

    return cache.key("truth-values", spec.fingerprint, str(seed))


def _warm_up(spec: Spec, prepare, remember: str | None = None) -> None:
    """What the grader needs soon, made ready while the worker starts on the other core: the
    checks of the kinds the spec uses and what they use (imported here, not before the worker
    starts), the test points' generators (numpy.random: 6 ms), the derived functions (or, for
    a self-check run before with this seed, the truth it computed: `remember`)."""
    import numpy.random  # noqa: F401

    import grader.checking.checks  # noqa: F401
    import grader.checking.network  # noqa: F401
    from grader.kinds import implementation

    for kind in dict.fromkeys(cls.kind for cls in spec.graded_classes):
        implementation(kind)
    from grader.truth.rules import rules_for
    from grader.truth import remembered
    from grader.truth.symbolic import preload

    preload(spec, functions=not (remember and remembered.load(remember)))
    for cls in spec.graded_classes:
        rules_for(cls)
    if prepare is not None:
        prepare()


def _start(student: StudentCode, found, while_waiting=None) -> dict[str, str]:
    """Start the worker; return {class: message} for the classes whose module could not be imported."""
    if not found.found:
        return {}
    try:
        errors = student.start(while_waiting)
    except WorkerTimeout:
        message = "importing your modules did not finish in time (is there a loop or a training run at module level?)"
        return {name: message for name in found.found}
    except WorkerDied as exc:
        message = f"the process importing your modules died: {exc}"
        return {name: message for name in found.found}
    problems = {}
    for name, where in found.found.items():
        error = errors.get(where.module)
        if error is None:
            continue
        line = f" ({error.get('file')}, line {error.get('line')})" if error.get("line") else ""
        hint = (" Packages the assignment does not provide stand in as placeholders while grading, so this is a module "
                "the submission itself lacks: is the file part of your submission?") if error.get("type") == "ModuleNotFoundError" else ""
        problems[name] = f"importing {where.file} failed{line}: {error.get('type')}: {error.get('message')}.{hint}"
    return problems


def _grade_item(item: Item, student: StudentCode, found, truth, seed, load_problem, result, *,
                spec: Spec, secret: str | None) -> ItemResult:
    """Run the item's checks. Each check draws its own points (seed, item, check); a hidden check
    draws them from the instructor's secret instead, and without the secret it is not run at all."""
    from grader.checking.checks import ItemContext
    from grader.checking.points import rng_for
    from grader.truth.rules import rules_for

    cls = item.cls
    rule = rules_for(cls).get(item.method)
    out = ItemResult(name=item.name, max_score=item.points,
                     rule=rule.text if rule else "", rule_latex=rule.latex if rule else "", rule_mathml=rule.mathml if rule else "",
                     rule_plain=rule.plain if rule else "")
    out.hidden = spec.is_hidden(item.name)
    where = found.found.get(cls.name)
    if where is not None:
        out.graded_as = {"class": where.name, "file": where.file, "line": where.line, "match": where.match}
        if where.cell:
            out.graded_as.update(notebook=where.cell[0], cell=where.cell[1])
    if cls.name not in found.found:
        problem = found.problems.get(cls.name, "not found")
        out.status_override = "error" if problem.startswith("syntax error") else "missing"
        out.reason = problem
        return out
    if load_problem:
        out.status_override = "error"
        out.reason = load_problem.splitlines()[0]
        return out
    if cls.name not in student.methods:
        out.status_override = "error"
        out.reason = f"{found.found[cls.name].name} could not be loaded in the sandbox"
        return out
    if not student.has(cls, item.method):
        out.status_override = "missing"
        out.reason = f"{found.found[cls.name].name} has no method {' or '.join(cls.method_names(item.method))}"
        return out
    for definition, check in checks_for(cls.kind, item.method):
        name, weight = definition.name, definition.weight
        hidden = spec.is_hidden(item.name, name)
        if hidden and secret is None:
            result.hidden_pending += 1
            continue
        rng = rng_for(secret_seed(secret), f"{item.name}/{name}") if hidden else rng_for(seed, f"{item.name}/{name}")
        ctx = ItemContext(item=item, student=student, truth=truth, rng=rng, problems=result.errors)
        if any(c.outcome == "timeout" for c in out.checks):
            # One endless loop per item is enough to know; the time is better spent on other items.
            out.checks.append(CheckResult(name, False, weight, outcome="timeout", message="skipped: an earlier check of this item timed out"))
        else:
            student.begin_check()
            out.checks.append(_run_check(check, ctx, name, weight, result))
        out.checks[-1].hidden = hidden
        out.checks[-1].auxiliary = definition.auxiliary
    recorded = getattr(implementation(cls.kind), "graded_as", None)  # what a kind adds (the update step: the signature called)
    if recorded is not None and out.graded_as:
        out.graded_as.update(recorded(item, student))
        out.reason = out.reason or out.graded_as.get("not_gradable", "")  # e.g. Adam's signature: said once, as the reason
    unresolved = next((c.not_gradable for c in out.checks if c.not_gradable), "")
    if unresolved:  # every kind's "not gradable as written" in the same places: graded_as and the item's reason
        if out.graded_as:
            out.graded_as.setdefault("not_gradable", unresolved)
        out.reason = out.reason or unresolved
    if all(c.outcome == "timeout" for c in out.checks if not c.passed) and any(not c.passed for c in out.checks):
        out.reason = "your code did not answer in time in some checks (an endless loop?)"
    return out


def _unique(placeholders: list[dict], found) -> list[dict]:
    """One entry per package and file that imports it (its first line; a notebook's by its cell)."""
    seen, out = set(), []
    for p in placeholders:
        file, line = p.get("file", ""), p.get("line", "")
        cell = found.cell_of(file, int(line)) if str(line).isdigit() else None
        if cell:
            file, line = f"{cell[0]}, code cell {cell[1]}", ""
        key = (p.get("module", "").split(".")[0], file)
        if key not in seen:
            seen.add(key)
            out.append({"package": key[0], "module": p.get("module", ""), "file": file, "line": line})
    return out


def _run_check(check, ctx: ItemContext, name: str, weight: float, result: SubmissionResult) -> CheckResult:
    """Run one check; whatever happens, return a CheckResult."""
    from grader.checking.checks import NotGradable, not_gradable
    from grader.checking.student import StudentFailure

    try:
        return check(ctx, name, weight)
    except NotGradable as exc:  # a shape the grader cannot drive: said so, never a wrong answer
        return not_gradable(name, weight, str(exc))
    except StudentFailure as failure:
        outcome = failure.outcome
        status = failure.status
        message = f"{failure.during} gave {outcome.describe()}"
        if status == "not_implemented":
            message = f"{failure.during} raises NotImplementedError: not implemented yet"
        elif outcome.kind == "error" and outcome.traceback:
            message += "\n" + outcome.traceback.strip()
        # "ok" means the code ran but gave no usable numbers (None, a string): a wrong answer, not a crash.
        return CheckResult(name, False, weight, message=message, outcome=status)
    except WorkerStartFailed:  # no worker can run this submission: the whole run is the grader's failure
        raise
    except Exception as exc:  # a fault of the grader: recorded loudly, the run goes on
        result.errors.append(f"internal error in check {ctx.item.name}/{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        return CheckResult(name, False, weight, outcome="error", message=f"the grader failed on this check ({type(exc).__name__}); this is not your fault, please report it")


def _trains(spec: Spec) -> bool:
    from grader.checking.training import applies

    return applies(spec)


def _guarded_training(spec, student, seed, result) -> ItemResult:
    from grader.checking.training import ITEM, run_training

    student.begin_check()  # the classes as importing left them, as for every check
    try:
        return run_training(spec, student, seed)
    except Exception as exc:
        result.errors.append(f"internal error in {ITEM}: {type(exc).__name__}: {exc}")
        return ItemResult(name=ITEM, max_score=0.0, status_override="error", reason="the grader failed on this diagnostic")


def _guarded_network(net, spec, student, seed, result) -> ItemResult:
    from grader.checking.network import run_network

    student.begin_check()  # the classes as importing left them, as for every check
    try:
        return run_network(net, spec, student, seed)
    except WorkerStartFailed:
        raise
    except Exception as exc:
        result.errors.append(f"internal error in {net.item_name}: {type(exc).__name__}: {exc}")
        return ItemResult(name=net.item_name, max_score=0.0, status_override="error", reason="the grader failed on this diagnostic")
