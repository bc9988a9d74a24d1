"""Late work: the spec's `[late]` policy, the dates an export records, and what a late submission loses.

The policy is data in the spec (see README, "Late work"):

    [late]
    due = 2026-11-20T23:59:00-05:00       # where the export gives no due date (a Gradescope export, folders)
    hard_deadline = 2026-11-27T23:59:00-05:00
    grace = "15m"                          # within this of the due date counts as on time
    per = "day"                            # the penalty is per started day (or "hour") late
    percent = 10                           # … this share of the assignment's points
    cap_percent = 50                       # at most this much in all
    past_hard_deadline = "zero"            # "zero", or "cap" (the capped penalty)
    flagged_percent = 10                   # an export that only flags late work (Canvas's LATE) loses this
    [late.extensions]
    alice = "2d"                           # more time (shifts due date and hard deadline) …
    "bob@example.edu" = 2026-11-24T12:00:00-05:00   # … or a due date of one's own

The facts come from the export: Gradescope's `created_at` with the assignment's `due_date` and
`late_due_date` (and a user's own dates, its extensions), or Canvas's `LATE` flag (no time). A
date the export gives wins over the spec's; the spec's extensions apply on top. `assess` is a
pure function of policy and facts, so regrading after the due date moved recomputes the penalty.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from grader.exceptions import SpecError

UNITS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
PAST_HARD = ("zero", "cap")
_KEYS = {"due", "hard_deadline", "grace", "per", "percent", "cap_percent", "past_hard_deadline", "flagged_percent", "extensions"}


@dataclass(frozen=True)
class LatePolicy:
    """What late work loses: per started unit past the due date, capped; past the hard deadline; when only flagged."""

    due: datetime | None = None
    hard_deadline: datetime | None = None
    grace: timedelta = timedelta(0)
    per: str = "day"
    percent: float = 0.0
    cap_percent: float = 100.0
    past_hard_deadline: str = "zero"
    flagged_percent: float | None = None
    extensions: tuple[tuple[str, object], ...] = ()  # (student key, timedelta or datetime), keys lower-cased


@dataclass
class Dates:
    """What an export says about one submission's timing (times as ISO 8601 with their offset)."""

    submitted_at: str = ""
    due_at: str = ""
    hard_due_at: str = ""
    flagged: bool = False  # marked late without a time (Canvas's LATE)


@dataclass
class Assessment:
    """The outcome for one submission: the penalty as a share of its points, and why."""

    percent: float = 0.0  # of the assignment's points
    zero: bool = False  # past the hard deadline with past_hard_deadline = "zero": nothing counts
    due_at: str = ""  # the due date that applied (with any extension)
    explanation: str = ""


# ----------------------------------------------------------------------------- parsing


def parse_policy(data, source: str) -> LatePolicy | None:
    """The spec's [late] table as a LatePolicy (None when absent); SpecError names what is wrong."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise SpecError(source, "[late] must be a table", key="late")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SpecError(source, f"unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}",
                        key=f"late.{unknown[0]}")
    fields_: dict = {}
    for key in ("due", "hard_deadline"):
        if key in data:
            fields_[key] = _moment(data[key], source, f"late.{key}")
    if "grace" in data:
        fields_["grace"] = _duration(data["grace"], source, "late.grace")
    per = data.get("per", "day")
    if per not in UNITS:
        raise SpecError(source, 'must be "day" or "hour"', key="late.per")
    fields_["per"] = per
    for key, low, high in (("percent", 0, 100), ("cap_percent", 0, 100), ("flagged_percent", 0, 100)):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise SpecError(source, f"must be a number from {low} to {high} (a percentage of the assignment's points)",
                                key=f"late.{key}")
            fields_[key] = float(value)
    if data.get("past_hard_deadline", "zero") not in PAST_HARD:
        raise SpecError(source, 'must be "zero" (nothing counts) or "cap" (the capped penalty)', key="late.past_hard_deadline")
    fields_["past_hard_deadline"] = data.get("past_hard_deadline", "zero")
    extensions = data.get("extensions", {})
    if not isinstance(extensions, dict):
        raise SpecError(source, 'must be a table: student = "2d" (more time) or student = <a date with its time zone>',
                        key="late.extensions")
    fields_["extensions"] = tuple(
        (str(student).strip().lower(),
         _moment(value, source, f"late.extensions.{student}") if isinstance(value, (datetime, date)) or _looks_like_date(value)
         else _duration(value, source, f"late.extensions.{student}"))
        for student, value in extensions.items())
    policy = LatePolicy(**fields_)
    if policy.due and policy.hard_deadline and policy.hard_deadline < policy.due:
        raise SpecError(source, "the hard deadline is before the due date", key="late.hard_deadline")
    return policy


def _looks_like_date(value) -> bool:
    return isinstance(value, str) and bool(re.match(r"^\d{4}-\d{2}-\d{2}", value.strip()))


_NO_ZONE = ("give the time zone, e.g. 2026-11-20T23:59:00-05:00 (or …Z for UTC): "
            "a time without one means different moments on different machines")


def _moment(value, source: str, key: str) -> datetime:
    if isinstance(value, str):
        parsed = parse_time(value)
        if parsed is None and parse_time(value.strip() + "Z") is not None:
            raise SpecError(source, f"{value!r}: {_NO_ZONE}", key=key)
        if parsed is None:
            raise SpecError(source, f"{value!r} is not a date and time such as 2026-11-20T23:59:00-05:00", key=key)
        value = parsed
    if isinstance(value, date) and not isinstance(value, datetime):
        raise SpecError(source, "give a time and its time zone too, e.g. 2026-11-20T23:59:00-05:00", key=key)
    if not isinstance(value, datetime):
        raise SpecError(source, "must be a date and time such as 2026-11-20T23:59:00-05:00", key=key)
    if value.tzinfo is None:
        raise SpecError(source, _NO_ZONE, key=key)
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|days?|hours?|minutes?|min)\s*", re.I)


def _duration(value, source: str, key: str) -> timedelta:
    if isinstance(value, str):
        text = value.strip()
        parts = _DURATION.findall(text)
        if parts and _DURATION.sub("", text) == "":
            total = timedelta(0)
            for number, unit in parts:
                unit = unit.lower()[0]
                total += {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}[unit] * float(number)
            return total
    raise SpecError(source, f"{value!r} is not a duration such as \"15m\", \"2h\" or \"3d\"", key=key)


def parse_time(text) -> datetime | None:
    """A date and time as LMS exports write them, with its offset; None when it is not one.

    Gradescope's export writes `2026-10-01 10:00:00.000000000 -04:00`, its autograder
    `2026-10-01T10:00:00.365935-04:00`; both, and `…Z`, are read."""
    if isinstance(text, datetime):
        return text if text.tzinfo else None
    if not isinstance(text, str):
        return None
    match = re.match(r"^\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$", text)
    if not match:
        return None
    day, clock, fraction, offset = match.groups()
    if offset is None:
        return None
    offset = "+00:00" if offset == "Z" else (offset if ":" in offset else f"{offset[:3]}:{offset[3:]}")
    micro = f".{(fraction or '0')[:6].ljust(6, '0')}"
    try:
        return datetime.fromisoformat(f"{day}T{clock if clock.count(':') == 2 else clock + ':00'}{micro}{offset}")
    except ValueError:
        return None


def _duration_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 min"


# ----------------------------------------------------------------------------- assessing


def assess(policy: LatePolicy | None, dates: Dates, student_keys=()) -> Assessment:
    """What `dates` cost under `policy`; `student_keys` (id, name, email) find an extension."""
    if policy is None:
        return Assessment()  # no policy: a flag the export set is still said (grades.csv's notes), nothing is taken
    submitted = parse_time(dates.submitted_at)
    due = parse_time(dates.due_at) or policy.due
    hard = parse_time(dates.hard_due_at) or policy.hard_deadline
    extension = _extension(policy, student_keys)
    note = ""
    if isinstance(extension, timedelta) and due is not None:
        due, hard = due + extension, (hard + extension if hard else None)
        note = f" (with an extension of {_duration_text(extension)})"
    elif isinstance(extension, datetime):
        due, hard = extension, (max(hard, extension) if hard else None)
        note = " (an extension to this date)"
    if submitted is not None and due is not None:
        late = submitted - due
        base = Assessment(due_at=due.isoformat())
        if late <= policy.grace:
            base.explanation = "on time" + note if late <= timedelta(0) else f"within the {_duration_text(policy.grace)} grace period{note}"
            return base
        when = f"submitted {_duration_text(late)} after the due date {due.isoformat()}{note}"
        if hard is not None and submitted > hard:
            if policy.past_hard_deadline == "zero":
                base.zero, base.percent = True, 100.0
                base.explanation = f"{when}, after the hard deadline {hard.isoformat()}: nothing counts"
            else:
                base.percent = policy.cap_percent
                base.explanation = f"{when}, after the hard deadline {hard.isoformat()}: the capped penalty, {policy.cap_percent:g} %"
            return base
        units = math.ceil(late / UNITS[policy.per])
        base.percent = min(policy.cap_percent, units * policy.percent)
        capped = " (capped)" if units * policy.percent > policy.cap_percent else ""
        base.explanation = (f"{when}: {units} started {policy.per}{'s' * (units != 1)} × {policy.percent:g} % = "
                            f"{base.percent:g} %{capped}")
        return base
    if dates.flagged:
        if policy.flagged_percent is None:
            return Assessment(explanation="marked late by the export, which gives no time; the spec's [late] sets no flagged_percent")
        return Assessment(percent=policy.flagged_percent,
                          explanation=f"marked late by the export (no time given): {policy.flagged_percent:g} %")
    if submitted is not None and due is None:
        return Assessment(explanation="no due date known (set due in the spec's [late] table)")
    return Assessment()


def _extension(policy: LatePolicy, keys) -> object:
    wanted = {str(k).strip().lower() for k in keys if k}
    for student, value in policy.extensions:
        if student in wanted:
            return value
    return None


def extension_students(policy: LatePolicy | None) -> list[str]:
    """The students the extensions name (lower-cased), to check them against a batch."""
    return [s for s, _ in policy.extensions] if policy else []


# ----------------------------------------------------------------------------- where exports record it


def gradescope_dates(metadata: dict) -> Dates:
    """Dates from Gradescope's autograder `submission_metadata.json`: the submission's time, the
    assignment's due and late due dates, and a user's own (an extension) where it has them."""
    assignment = metadata.get("assignment") if isinstance(metadata.get("assignment"), dict) else {}
    due, hard = assignment.get("due_date") or "", assignment.get("late_due_date") or ""
    for user in metadata.get("users") or []:
        own = user.get("assignment") if isinstance(user, dict) and isinstance(user.get("assignment"), dict) else {}
        due, hard = own.get("due_date") or due, own.get("late_due_date") or hard
    return Dates(submitted_at=str(metadata.get("created_at") or ""), due_at=str(due or ""), hard_due_at=str(hard or ""))


def settle(result, policy: LatePolicy | None, dates: Dates, keys=()) -> None:
    """Record on `result` (a SubmissionResult) its dates and what they cost under `policy`."""
    outcome = assess(policy, dates, keys)
    result.submitted_at = dates.submitted_at
    result.late = result.late or dates.flagged
    result.due_at = outcome.due_at
    result.late_percent, result.late_zero, result.late_explanation = outcome.percent, outcome.zero, outcome.explanation


def student_keys(identifier: str = "", names: str = "", emails: str = "", canvas_id: str = "") -> list[str]:
    """What may name a student in [late.extensions] or an overrides file: identifier, each name and email, Canvas id."""
    keys = [identifier, canvas_id] + [n.strip() for n in names.split(" & ")] + [e.strip() for e in emails.split(",")]
    return [k for k in keys if k]
