"""The instructor's overrides: points set or moved by hand, kept in a file of their own.

An overrides file is TOML or CSV. CSV has the columns `student,item,points,comment`; TOML has
`[[override]]` tables with the same keys. `student` is a submission's identifier, name or email;
`item` an item of the spec (`SoftmaxLayer.gradient`) or `total` (also when empty); `points` is
a number that sets the points (`4`) or a signed change (`"+2"`, `"-1.5"`). Overrides are applied
when outputs are built (reports, grades.csv, the class summary), never written into the results
on disk, so `--resume` and regrades keep them and removing a line undoes it. Every line must
name a student of the batch and an item of the spec: anything else is an error naming it.
"""
from __future__ import annotations

import copy
import csv
import difflib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.exceptions import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOTAL = "total"
COLUMNS = ("student", "item", "points", "comment")


@dataclass(frozen=True)
class Override:
    """One line of the file: whose points, which item (or the total), set or moved by how much, and why."""

    student: str
    item: str  # an item name, or "total"
    kind: str  # "set" | "delta"
    points: float
    comment: str
    where: str  # "overrides.csv line 4": for messages

    @property
    def shown(self) -> str:
        """"+2.00", "−1.50" or "set to 4.00"."""
        if self.kind == "set":
            return f"set to {self.points:.2f}"
        return f"{'+' if self.points >= 0 else '−'}{abs(self.points):.2f}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "points": self.points, "comment": self.comment, "shown": self.shown}


def load(path: Path) -> list[Override]:
    """The overrides in `path` (TOML or CSV, by its suffix); UsageError naming the line that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--overrides {path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--overrides {path}: is not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        rows = _toml_rows(text, path)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(text, path)
    else:
        raise UsageError(f"--overrides {path}: give a .csv (columns {', '.join(COLUMNS)}) or a .toml ([[override]] tables)")
    return [_override(row, where) for row, where in rows]


def _toml_rows(text: str, path: Path):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--overrides {path}: is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"override"})
    if unknown:
        raise UsageError(f"--overrides {path}: unknown table {unknown[0]!r}; write each override as an [[override]] table")
    entries = data.get("override", [])
    if not isinstance(entries, list):
        raise UsageError(f"--overrides {path}: write each override as an [[override]] table")
    for n, entry in enumerate(entries, start=1):
        where = f"{path.name} override {n}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: must be a table with {', '.join(COLUMNS)}")
        extra = sorted(set(entry) - set(COLUMNS))
        if extra:
            raise UsageError(f"{where}: unknown key {extra[0]!r}; the keys are {', '.join(COLUMNS)}")
        yield entry, where


def _csv_rows(text: str, path: Path):
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("student", "points") if c not in header]
    if missing:
        raise UsageError(f"--overrides {path}: the first line must name the columns {', '.join(COLUMNS)} "
                         f"({', '.join(missing)} missing)")
    for n, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(row.values()):
            continue
        yield row, f"{path.name} line {n}"


def _override(row: dict, where: str) -> Override:
    student = str(row.get("student", "")).strip()
    if not student:
        raise UsageError(f"{where}: names no student")
    item = str(row.get("item", "") or TOTAL).strip() or TOTAL
    value = row.get("points")
    kind, points = _points(value, where)
    return Override(student=student, item=TOTAL if item.lower() == TOTAL else item, kind=kind, points=points,
                    comment=str(row.get("comment", "") or "").strip(), where=where)


def _points(value, where: str) -> tuple[str, float]:
    if isinstance(value, bool):
        raise UsageError(f"{where}: points must be a number (set) or a signed change such as \"+2\"")
    if isinstance(value, (int, float)):
        return "set", float(value)
    text = str(value or "").strip().replace("−", "-")
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{where}: points {value!r} is not a number (set) or a signed change such as \"+2\" or \"-1.5\"") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageError(f"{where}: points must be a finite number")
    return ("delta" if text[:1] in "+-" else "set"), number


# ----------------------------------------------------------------------------- checking and applying


def resolve(overrides: list[Override], students: dict[str, list[str]], items: list[str]) -> dict[str, list[Override]]:
    """{submission id: its overrides}; UsageError for a student or item that is not there.

    `students` maps each submission of the batch to what may name it (`Entry.keys`: identifier,
    names, emails, Canvas id; case does not matter); a name two submissions share is ambiguous."""
    index: dict[str, set[str]] = {}
    for identifier, keys in students.items():
        for key in keys:
            index.setdefault(key.lower(), set()).add(identifier)
    out: dict[str, list[Override]] = {}
    for o in overrides:
        found = index.get(o.student.lower(), set())
        if not found:
            close = difflib.get_close_matches(o.student.lower(), list(index), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else " (give its identifier, name or email)"
            raise UsageError(f"{o.where}: no student {o.student!r} in this batch{hint}")
        if len(found) > 1:
            raise UsageError(f"{o.where}: {o.student!r} names {len(found)} submissions ({', '.join(sorted(found))}); "
                             "give the identifier instead")
        if o.item != TOTAL and o.item not in items:
            close = difflib.get_close_matches(o.item, items, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f" (items: {', '.join(items[:6])}, …, or total)"
            raise UsageError(f"{o.where}: no item {o.item!r} in the spec{hint}")
        out.setdefault(next(iter(found)), []).append(o)
    return out


def apply(results: list, by_student: dict[str, list[Override]]) -> list:
    """Copies of `results` with their overrides applied (the results themselves are left as they are)."""
    out = []
    for result in results:
        mine = by_student.get(result.submission)
        if not mine:
            out.append(result)
            continue
        result = copy.deepcopy(result)
        for o in mine:
            if o.item == TOTAL:
                result.adjustments.append(o.as_dict())
                continue
            item = next((i for i in result.items if i.name == o.item), None)
            if item is not None:  # several overrides of one item apply in the file's order
                item.adjustments.append(o.as_dict())
        out.append(result)
    return out
