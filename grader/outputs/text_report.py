"""The terminal view of a result: what to fix first, one row per item (most points lost first), the total.

Everything here is plain text for a terminal: rules in Unicode, never LaTeX; long reasons wrap
under their column instead of being cut.
"""
from __future__ import annotations

import shutil
import textwrap

from grader.checking.results import SubmissionResult


def status_text(item) -> str:
    """The status as the table shows it, saying when the instructor's override credited the item."""
    from grader.outputs.html_report import status_text as shown

    return shown(item)


def table(result: SubmissionResult, *, verbose: bool = False, width: int | None = None) -> str:
    width = width or shutil.get_terminal_size((110, 20)).columns
    name_w = max(len(i.name) for i in result.items) if result.items else 10
    lines = [f"{result.submission}: grading with {result.spec} (sandbox: {result.sandbox}, {_seed(result)})"]
    if result.sandbox_note:
        lines.append(f"warning: sandbox: {result.sandbox_note}")
    lines += textwrap.wrap(result.fix_first, width, subsequent_indent="  ", break_on_hyphens=False) + [""]
    header = f"{'item':<{name_w}}  {'points':>11}  {'status':<15}  reason"
    rule = "-" * min(width, max(len(header), 80))
    lines += [header, rule]
    indent = name_w + 2 + 11 + 2 + 15 + 2
    beside = width - indent >= 30  # on a narrow terminal the reason goes under its row, indented
    room = width - indent if beside else width - 4
    for item in result.by_importance():
        points = f"{item.score:5.2f}/{item.max_score:<5.2f}" if item.max_score else "   diag    "
        reason = textwrap.wrap(item.one_line.replace("\n", " "), room, break_on_hyphens=False) or [""]
        row = f"{item.name:<{name_w}}  {points:>11}  {status_text(item) if item.adjustments else item.status:<15}"
        if beside:
            lines.append(f"{row}  {reason[0]}")
            lines += [" " * indent + more for more in reason[1:]]
        else:
            lines.append(row.rstrip())
            if item.status != "passed" or reason != ["all checks passed"]:
                lines += ["    " + more for more in reason]
    lines.append(rule)
    pct = 100.0 * result.score / result.max_score if result.max_score else 0.0
    lines.append(f"{'total':<{name_w}}  {result.score:6.2f}/{result.max_score:<6.2f} ({pct:.1f}%)   in {result.elapsed_s:.2f} s")
    notes = list(result.score_notes)
    if result.hidden_pending:
        items = f" (in {result.hidden_items_pending} hidden items and others)" if result.hidden_items_pending else ""
        notes.append(f"note: this is a self-check: {result.hidden_pending} hidden checks{items} will run at grading time")
    if result.placeholders:
        notes.append("note: not available while grading, imported as placeholders (no points lost unless a graded method uses them): "
                     + ", ".join(f"{p['package']} ({p['file']}{', line ' + str(p['line']) if p['line'] else ''})" for p in result.placeholders))
    notes += [f"note: {text}" for text in dict.fromkeys(i.graded_as_text for i in result.items if i.graded_as_text)]  # once per class
    notes += [f"warning: {warning}" for warning in result.warnings]
    notes += [f"problem: {error.splitlines()[0]}" for error in result.errors]
    for note in notes:
        lines += textwrap.wrap(note, width, subsequent_indent="  ", break_on_hyphens=False)
    if verbose:
        for item in result.by_importance():
            if item.status not in ("passed", "not_implemented"):
                lines += ["", f"== {item.name} ({status_text(item)}, {item.score:.2f}/{item.max_score:.2f})", item.feedback]
        # one line per item not implemented yet, in the assignment's order: its checks would only repeat it
        not_yet = [f"== {i.name}: not implemented yet ({i.score:.2f}/{i.max_score:.2f})" for i in result.items if i.status == "not_implemented"]
        if not_yet:
            lines += ["", "Not implemented yet, in the assignment's order:"] + not_yet
    return "\n".join(lines)


def _seed(result: SubmissionResult) -> str:
    if result.seed_kind == "secret":
        return "test points from the instructor's secret"
    return f"seed {result.seed}"
