"""Canvas's own gradebook: the CSV the instructor exported (Grades → Export), one assignment's column filled.

Canvas's import (Grades → Import) matches a column to an existing assignment by its header as
Canvas wrote it, `HW2 Gradients (222)`: the name with the assignment's id. A file with a column of
another name makes Canvas offer to create a new assignment. So the grades go into the instructor's
own export: the same columns in the same order, the same rows (the `Points Possible` row and a
`Manual Posting` row, which have no ID; the test student; the students who handed nothing in),
and only the assignment's cell of each student this batch graded changed, found by the Canvas user
id (the `ID` column), which a Canvas download puts in each file name. Read-only columns (totals,
current and final scores) are left as exported: Canvas ignores them on import.
"""
from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.exceptions import UsageError

#: The columns Canvas writes before the assignments: who each row is (ID is the Canvas user id).
STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")


@dataclass
class Gradebook:
    """A Canvas gradebook export as read: its rows, where the ID and the assignment's column are."""

    path: Path
    rows: list[list[str]]
    id_column: int
    column: int  # the assignment's
    newline: str = "\r\n"
    bom: bool = False
    students: dict[str, int] = field(default_factory=dict)  # Canvas user id → row index

    @property
    def assignment(self) -> str:
        return self.rows[0][self.column]

    @property
    def points_possible(self) -> str:
        """The assignment's points in Canvas, as the `Points Possible` row says them ("" when it has none)."""
        row = next((r for r in self.rows[1:] if r and r[0].strip() == "Points Possible"), None)
        return row[self.column].strip() if row and len(row) > self.column else ""

    def filled(self, totals: dict[str, float]) -> str:
        """The export again, with `totals` ({Canvas user id: points}) in the assignment's column."""
        rows = [list(r) for r in self.rows]
        for uid, points in totals.items():
            at = self.students.get(uid)
            if at is not None:
                row = rows[at]
                row += [""] * (self.column + 1 - len(row))
                row[self.column] = f"{points:.2f}"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=self.newline).writerows(rows)
        return ("\ufeff" if self.bom else "") + buffer.getvalue()


def load(path: Path, assignment: str) -> Gradebook:
    """Read the Canvas gradebook export at `path` and find `assignment`'s column; UsageError saying what is wrong."""
    path = Path(path)
    option = f"--canvas-gradebook {path}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{option}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{option}: is not UTF-8 text (Canvas exports UTF-8; export it again from Grades → Export)") from None
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    newline = "\r\n" if "\r\n" in text else "\n"
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise UsageError(f"{option}: is not a CSV file ({exc})") from None
    if not rows:
        raise UsageError(f"{option}: is empty; export the gradebook from Canvas (Grades → Export)")
    header = [h.strip() for h in rows[0]]
    if "ID" not in header:
        raise UsageError(f"{option}: has no ID column, so its students cannot be matched to the download's "
                         "Canvas user ids; give the file Canvas's Grades → Export writes (columns Student, ID, …)")
    column = _assignment_column(header, assignment, option)
    id_column = header.index("ID")
    students: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=1):
        uid = row[id_column].strip() if len(row) > id_column else ""
        if uid:  # the Points Possible and Manual Posting rows have none
            students.setdefault(uid, n)
    return Gradebook(path=path, rows=rows, id_column=id_column, column=column, newline=newline, bom=bom, students=students)


def _assignment_column(header: list[str], assignment: str, option: str) -> int:
    wanted = assignment.strip()
    if wanted in header:
        if wanted in STUDENT_COLUMNS:
            raise UsageError(f"--canvas-assignment {assignment!r}: names a column of who the student is, not an assignment")
        return header.index(wanted)
    # the name without Canvas's id, when exactly one column is that name with an id
    same = [n for n, h in enumerate(header) if re.fullmatch(re.escape(wanted) + r" \(\d+\)", h)]
    if len(same) == 1:
        return same[0]
    names = [h for h in header if h and h not in STUDENT_COLUMNS]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.4)
    hint = (f"; the closest: {', '.join(repr(c) for c in close)}" if close
            else f"; its columns: {', '.join(repr(h) for h in names[:8])}{', …' if len(names) > 8 else ''}")
    raise UsageError(f"--canvas-assignment {assignment!r}: no such column in {option.split(' ', 1)[1]} "
                     f"(give the header as Canvas exported it, with the id in parentheses){hint}")
