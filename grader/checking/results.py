"""Results as plain dataclasses: a check, an item (`<Class>.<method>`), a submission.

`to_dict()` gives the result JSON of CONTRACT.md; scores are derived, never stored twice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

STATUSES = ("passed", "partial", "failed", "error", "timeout", "missing", "not_implemented")


class Diagnosis(str):
    """A named mistake: its text, which reports show (and tests match), with a stable code beside
    it (`softmax.diagonal_only`, `factor.sign_flipped`, `spec:<the spec's name>`)."""

    def __new__(cls, text: str, code: str = ""):
        self = super().__new__(cls, text)
        self.code = code
        return self

    def __reduce__(self):  # travels to pool and dask workers with its code
        return Diagnosis, (str(self), self.code)


@dataclass
class CheckResult:
    """One check of one item: passed or not, its share of the item's points, and why."""

    name: str
    passed: bool
    max_score: float
    message: str = ""
    diagnosis: str | None = None
    outcome: str = "ok"  # ok | error | timeout | not_implemented | missing: what the student's code did
    note: str = ""  # said even when the check passes (e.g. judged on your own gradient())
    details: dict = field(default_factory=dict)  # small arrays for the reports: got / expected
    hidden: bool = False  # drawn from the instructor's secret; not run in a self-check
    auxiliary: bool = False  # judges behaviour, not values: pays only as far as the item's values are right
    not_gradable: str = ""  # why the student's code could not be called the course's way (checks.not_gradable)

    def to_dict(self, earned: float) -> dict:
        out = {"name": self.name, "passed": self.passed, "score": round(earned, 6),
               "max_score": round(self.max_score, 6), "message": self.message}
        if self.diagnosis:
            out["diagnosis"] = self.diagnosis
            if getattr(self.diagnosis, "code", ""):
                out["diagnosis_code"] = self.diagnosis.code
        if self.note:
            out["note"] = self.note
        if self.outcome != "ok":
            out["outcome"] = self.outcome
        if self.details:
            out["details"] = self.details
        if self.hidden:
            out["hidden"] = True
        if self.auxiliary:
            out["auxiliary"] = True
        return out


#: How a graded gradient method computed numerically, as the worker reports it (README: threat model).
NUMERIC_NOTES = {"complex": "with complex numbers: complex-step differentiation",
                 "own-forward": "by calling its own forward/eval on perturbed inputs: finite differences"}


@dataclass
class ItemResult:
    """One gradable item: its checks, its status and the feedback a student reads."""

    name: str
    max_score: float
    checks: list[CheckResult] = field(default_factory=list)
    status_override: str | None = None  # missing / error / not_implemented / timeout decided before any check
    reason: str = ""
    rule: str = ""
    rule_latex: str = ""
    rule_plain: str = ""  # the formula in one line of Unicode, for terminals and plain text
    rule_mathml: str = ""
    #: which class of the submission was graded as this item, and how it was found and built:
    #: {"class", "file", "line", "match", "notebook", "cell", "constructed"} (empty when not found)
    graded_as: dict = field(default_factory=dict)
    hidden: bool = False  # a hidden item: its points and feedback are for the instructor until published
    #: the instructor's overrides, applied to outputs only (never stored in a result on disk):
    #: [{"kind": "set" | "delta", "points": float, "comment": str, "shown": str}]
    adjustments: list[dict] = field(default_factory=list)

    @property
    def rule_line(self) -> str:
        """The rule in words as the slides give it, with the formula in Unicode where the words lack it."""
        if self.rule_plain and "=" not in self.rule:
            return f"{self.rule}: {self.rule_plain}" if self.rule else self.rule_plain
        return self.rule

    @property
    def graded_as_text(self) -> str:
        """"`SoftmaxActivationLayer` in `softmax.py` graded as `SoftmaxLayer`", when it was not found by its own name."""
        g = self.graded_as
        if not g:
            return ""
        where = f"{g['notebook']}, code cell {g['cell']}" if g.get("notebook") else g.get("file", "")
        parts = []
        if g.get("match", "name") != "name" or g.get("notebook"):
            parts.append(f"`{g['class']}` in `{where}` graded as `{self.name.split('.')[0]}`"
                         + (f" ({g['match']})" if g.get("match") not in ("name", "alias") else ""))
        built = g.get("constructed", "")
        if built.startswith("without its own constructor: "):
            parts.append(f"built {built.split(': ', 1)[0]}, as the extra parameter only picks an initialisation "
                         f"(`{built.split(': ', 1)[1].replace(' raised', '` raised')}); the grader sets W and b")
        elif built:
            parts.append(f"built as `{built}` (the spec's call lacks a parameter your constructor requires)")
        how = [NUMERIC_NOTES[c] for c in g.get("numeric", []) if c in NUMERIC_NOTES]
        if how:
            parts.append(f"`{self.name}` computed its answer numerically ({' and '.join(how)}), not from a derived rule")
        if g.get("driven"):
            parts.append(f"`{g['class']}` driven by its signature: {g['driven']}")
        return "; ".join(parts)

    @property
    def values_earned(self) -> bool:
        """True when some value check of the item passed: the method returned right numbers somewhere."""
        return any(c.passed for c in self.checks if not c.auxiliary)

    def earned(self, check: CheckResult) -> float:
        """What a check earns, in check weight: its weight when it passed. An auxiliary check
        (input not mutated, input and output stored) earns only when some value check passed:
        it can cost a method that returns right numbers points, never pay one that returns none."""
        if not check.passed or (check.auxiliary and not self.values_earned):
            return 0.0
        return check.max_score

    @property
    def graded_score(self) -> float:
        """The points the checks earned, before any override."""
        if self.status_override in ("missing", "error", "not_implemented", "timeout") and not self.checks:
            return 0.0
        total = sum(c.max_score for c in self.checks)
        if total <= 0:
            return 0.0
        return self.max_score * sum(self.earned(c) for c in self.checks) / total

    @property
    def score(self) -> float:
        """The item's points: as graded, or as the instructor's override set or moved them (never below 0)."""
        return max(0.0, apply_adjustments(self.graded_score, self.adjustments))

    @property
    def diagnoses(self) -> list[str]:
        return list(dict.fromkeys(c.diagnosis for c in self.checks if c.diagnosis and not c.passed))

    @property
    def status(self) -> str:
        if self.status_override:
            return self.status_override
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return "passed"
        outcomes = {c.outcome for c in failed}
        if len(failed) == len(self.checks):
            if "ok" not in outcomes:
                # the code never gave an answer to judge: say what happened first
                # (a MemoryError then a hang is an error, not wrong numbers)
                return failed[0].outcome
            return "failed"
        return "partial" if self.score > 0 or self.max_score == 0 else "failed"

    def named_diagnoses(self) -> list[str | None]:
        """Per check, the diagnosis to show: a mistake is named once, at the first failed check it fits."""
        named, out = set(), []
        for check in self.checks:
            fresh = check.diagnosis if check.diagnosis and not check.passed and check.diagnosis not in named else None
            if fresh:
                named.add(fresh)
            out.append(fresh)
        return out

    @property
    def adjustment_lines(self) -> list[str]:
        """"Adjusted by the instructor: +2.00 — reason (graded 3.00)", one per override."""
        return [f"Adjusted by the instructor: {adjustment_text(a)} (graded {self.graded_score:.2f})" for a in self.adjustments]

    @property
    def feedback(self) -> str:
        """What is wrong, where, and the expected rule; or what passed and any note."""
        lines, said = list(self.adjustment_lines), set()
        if self.graded_as_text:
            lines.append(self.graded_as_text)
        if self.reason:
            lines.append(self.reason)
        for check, diagnosis in zip(self.checks, self.named_diagnoses()):
            note = check.note if check.note and check.note not in said else ""
            said.add(check.note)
            if not check.passed:
                lines.append(f"[{check.name}] {check.message}")
                if diagnosis:
                    lines.append(f"  Likely mistake: {diagnosis}.")
                if note:
                    lines.append(f"  Note: {note}.")
            elif note:
                lines.append(f"[{check.name}] {note}")
        if (self.status != "passed" or not lines) and self.rule:
            lines.append(f"Expected rule: {self.rule_line}")
        if not lines:
            lines.append("All checks passed.")
        return "\n".join(lines)

    @property
    def one_line(self) -> str:
        """The short reason shown in the table."""
        if self.status == "passed":
            return next((c.note for c in self.checks if c.note), "all checks passed").splitlines()[0]
        if self.reason and not self.checks:
            return self.reason.splitlines()[0]
        failed = [c for c in self.checks if not c.passed]
        diag = self.diagnoses
        first = failed[0].message.splitlines()[0] if failed else self.reason
        return (f"{diag[0]}: " if diag else "") + f"{failed[0].name if failed else ''}: {first}"

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "score": round(self.score, 6),
            "max_score": round(self.max_score, 6),
            "status": self.status,
            "feedback": self.feedback,
            "diagnoses": self.diagnoses,
            "reason": self.reason,
            "rule": {"text": self.rule, "latex": self.rule_latex, "mathml": self.rule_mathml, "plain": self.rule_plain},
            "graded_as": dict(self.graded_as),
            "hidden": self.hidden,
            "checks": [c.to_dict(self.earned(c)) for c in self.checks],
        }
        if self.adjustments:
            out["graded_score"] = round(self.graded_score, 6)
            out["adjustments"] = [dict(a) for a in self.adjustments]
        return out


@dataclass
class SubmissionResult:
    """One submission's grade: every item, the problems met on the way, and how it was run."""

    submission: str
    items: list[ItemResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    sandbox: str = ""
    sandbox_note: str = ""  # what the person responsible should know: a downgrade, a mode that is not a boundary
    seed: int | None = 0  # None when drawn from the instructor's secret (never shown)
    seed_kind: str = "fixed"  # fixed | given | secret | batch | random (grader/seeding.py)
    spec: str = ""
    grader_version: str = ""
    output: str = ""  # what the student's code printed, truncated
    command: str = ""
    graded_at: str = ""  # ISO 8601, UTC
    student_name: str = ""  # where an LMS export says it
    student_email: str = ""
    resume_key: str = ""  # content hash + spec + grader version + seed, for --resume
    hidden_pending: int = 0  # hidden checks a self-check did not run (they run at grading time)
    hidden_items_pending: int = 0
    #: packages the student imported that grading does not provide: [{"package", "module", "file", "line"}]
    placeholders: list[dict] = field(default_factory=list)
    problem: str = ""  # why the submission could not be graded at all (no Python file, a broken zip)
    canvas_id: str = ""  # the student's Canvas user id, from a Canvas download
    late: bool = False  # marked late by the export
    submitted_at: str = ""  # when, as the export records it (ISO 8601 with its offset)
    due_at: str = ""  # the due date that applied, with any extension
    late_percent: float = 0.0  # the late penalty as a share of the assignment's points (grader/late.py)
    late_zero: bool = False  # past the hard deadline where nothing counts
    late_explanation: str = ""  # why: "submitted 1 d 10 h after the due date …: 2 started days × 10 % = 20 %"
    #: the instructor's overrides of the total, applied to outputs only: [{"kind", "points", "comment"}]
    adjustments: list[dict] = field(default_factory=list)

    @property
    def raw_score(self) -> float:
        """The points of the items (with the instructor's item overrides), before the late penalty."""
        return sum(i.score for i in self.items)

    @property
    def late_penalty(self) -> float:
        """The points lateness costs: a share of the assignment's points, never more than it earned."""
        raw = self.raw_score
        return raw if self.late_zero else min(raw, self.max_score * self.late_percent / 100.0)

    @property
    def score(self) -> float:
        """The final score: raw, less the late penalty, then the instructor's overrides of the total."""
        return max(0.0, apply_adjustments(self.raw_score - self.late_penalty, self.adjustments))

    @property
    def max_score(self) -> float:
        return sum(i.max_score for i in self.items)

    def item(self, name: str) -> ItemResult:
        return next(i for i in self.items if i.name == name)

    def by_importance(self) -> list[ItemResult]:
        """Items as a student should read them: most points lost first, then the worse status;
        diagnostics (0 points) last; spec order among equals."""
        order = {s: n for n, s in enumerate(("error", "timeout", "missing", "not_implemented", "failed", "partial", "passed"))}
        return sorted(self.items, key=lambda i: (i.max_score == 0, -(i.max_score - i.score), order.get(i.status, 9)))

    @property
    def adjusted(self) -> bool:
        """True when the instructor's overrides touch this result (its total or any item)."""
        return bool(self.adjustments or any(i.adjustments for i in self.items))

    @property
    def score_notes(self) -> list[str]:
        """How the final score comes from the items' points: the late penalty and the instructor's
        overrides of the total, one line each (empty when the score is just the items' sum)."""
        notes = []
        if self.late_penalty:
            notes.append(f"late penalty −{self.late_penalty:.2f} (of {self.raw_score:.2f}): {self.late_explanation}")
        elif self.late_explanation and self.late_explanation != "on time":  # an extension, the grace period, no due date
            notes.append(self.late_explanation)
        for a in self.adjustments:
            notes.append(f"total adjusted by the instructor: {adjustment_text(a)}")
        return notes

    @property
    def fix_first(self) -> str:
        """One line: what to fix first (the item that loses most), or, on a template where every item
        that loses points is not implemented yet, where to start (the first of them in the spec's order)."""
        if self.problem:
            return f"Could not be graded: {self.problem}"
        # an item the instructor's override has settled is not the student's to fix
        losing = [i for i in self.by_importance() if i.max_score and i.score < i.max_score and not i.adjustments]
        worst = losing[0] if losing else None
        if worst is None:
            if all(i.score >= i.max_score for i in self.items):
                return "Nothing to fix: every item has full marks."
            return "Nothing left to fix: the instructor has settled the items that lose points."
        if all(i.status == "not_implemented" for i in losing):  # a template, bare or half done: begin at the beginning
            first = next(i for i in self.items if any(i is lost for lost in losing))
            rest = len(losing) - 1
            return (f"Start with {first.name}: it comes first in the assignment and is not implemented yet"
                    + (f" ({rest} more item{'s' * (rest != 1)} to implement after it, in the assignment's order)." if rest else "."))
        lost = worst.max_score - worst.score
        return f"Fix first: {worst.name} ({lost:.2f} point{'s' * (lost != 1)} lost, {worst.status}): {worst.one_line}"

    def to_dict(self) -> dict:
        return {
            "submission": self.submission,
            "score": round(self.score, 4),
            "max_score": round(self.max_score, 4),
            "items": [i.to_dict() for i in self.items],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "elapsed_s": round(self.elapsed_s, 3),
            "sandbox": self.sandbox,
            "sandbox_note": self.sandbox_note,
            "seed": self.seed,
            "seed_kind": self.seed_kind,
            "spec": self.spec,
            "grader_version": self.grader_version,
            "output": self.output,
            "command": self.command,
            "graded_at": self.graded_at,
            "name": self.student_name,
            "email": self.student_email,
            "resume_key": self.resume_key,
            "hidden_checks_pending": self.hidden_pending,
            "hidden_items_pending": self.hidden_items_pending,
            "placeholders": [dict(p) for p in self.placeholders],
            "problem": self.problem,
            "canvas_id": self.canvas_id,
            "late": self.late,
            "raw_score": round(self.raw_score, 4),
            "late_penalty": round(self.late_penalty, 4),
            "lateness": {"submitted_at": self.submitted_at, "due_at": self.due_at, "percent": self.late_percent,
                         "zero": self.late_zero, "explanation": self.late_explanation},
            **({"adjustments": [dict(a) for a in self.adjustments]} if self.adjustments else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        """Rebuild a result from its JSON (for class outputs rebuilt from the results on disk)."""
        items = []
        for i in data["items"]:
            checks = [CheckResult(name=c["name"], passed=c["passed"], max_score=c["max_score"], message=c.get("message", ""),
                                  diagnosis=Diagnosis(c["diagnosis"], c.get("diagnosis_code", "")) if c.get("diagnosis") else c.get("diagnosis"),
                                  outcome=c.get("outcome", "ok"), note=c.get("note", ""),
                                  details=c.get("details", {}), hidden=c.get("hidden", False),
                                  auxiliary=c.get("auxiliary", False)) for c in i.get("checks", [])]
            rule = i.get("rule", {})
            items.append(ItemResult(name=i["name"], max_score=i["max_score"], checks=checks, status_override=i["status"],
                                    reason=i.get("reason", ""), rule=rule.get("text", ""), rule_latex=rule.get("latex", ""), rule_plain=rule.get("plain", ""),
                                    rule_mathml=rule.get("mathml", ""), graded_as=dict(i.get("graded_as") or {}),
                                    hidden=bool(i.get("hidden", False)), adjustments=list(i.get("adjustments", []))))
        lateness = data.get("lateness") or {}
        return cls(submission=data["submission"], items=items, errors=list(data.get("errors", [])),
                   warnings=list(data.get("warnings", [])), elapsed_s=data.get("elapsed_s", 0.0), sandbox=data.get("sandbox", ""), sandbox_note=data.get("sandbox_note", ""),
                   seed=data.get("seed", 0), seed_kind=data.get("seed_kind", "fixed"), spec=data.get("spec", ""), grader_version=data.get("grader_version", ""),
                   output=data.get("output", ""), command=data.get("command", ""), graded_at=data.get("graded_at", ""),
                   student_name=data.get("name", ""), student_email=data.get("email", ""), resume_key=data.get("resume_key", ""),
                   hidden_pending=data.get("hidden_checks_pending", 0), hidden_items_pending=data.get("hidden_items_pending", 0),
                   placeholders=list(data.get("placeholders", [])), problem=data.get("problem", ""),
                   canvas_id=data.get("canvas_id", ""), late=bool(data.get("late", False)),
                   submitted_at=str(lateness.get("submitted_at", "")), due_at=str(lateness.get("due_at", "")),
                   late_percent=float(lateness.get("percent", 0.0)), late_zero=bool(lateness.get("zero", False)),
                   late_explanation=str(lateness.get("explanation", "")), adjustments=list(data.get("adjustments", [])))


def adjustment_text(adjustment: dict) -> str:
    """"+2.00 — reason": what an override did, and why."""
    comment = adjustment.get("comment")
    return f"{adjustment.get('shown', adjustment['points'])}" + (f" — {comment}" if comment else "")


def apply_adjustments(points: float, adjustments: list[dict]) -> float:
    """Points after the instructor's overrides, in order: "set" replaces them, "delta" adds to them."""
    for a in adjustments:
        points = float(a["points"]) if a.get("kind") == "set" else points + float(a["points"])
    return points


__all__ = ["STATUSES", "CheckResult", "Diagnosis", "ItemResult", "SubmissionResult", "adjustment_text", "apply_adjustments", "asdict"]
