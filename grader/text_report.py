"""The terminal view of a result: one row per item and the total."""
from __future__ import annotations

import shutil

from grader.results import SubmissionResult


def table(result: SubmissionResult, *, verbose: bool = False) -> str:
    width = shutil.get_terminal_size((110, 20)).columns
    name_w = max(len(i.name) for i in result.items) if result.items else 10
    lines = [f"{result.submission}: grading with {result.spec} (sandbox: {result.sandbox}, seed {result.seed})"]
    if result.sandbox_note:
        lines.append(f"warning: sandbox: {result.sandbox_note}")
    lines.append("")
    header = f"{'item':<{name_w}}  {'points':>11}  {'status':<15}  reason"
    lines += [header, "-" * min(width, max(len(header), 80))]
    for item in result.items:
        points = f"{item.score:5.2f}/{item.max_score:<5.2f}" if item.max_score else "   diag    "
        reason = item.one_line.replace("\n", " ")
        room = max(width - name_w - 34, 20)
        reason = reason if len(reason) <= room else reason[: room - 1] + "…"
        lines.append(f"{item.name:<{name_w}}  {points:>11}  {item.status:<15}  {reason}")
    lines.append("-" * min(width, max(len(header), 80)))
    pct = 100.0 * result.score / result.max_score if result.max_score else 0.0
    lines.append(f"{'total':<{name_w}}  {result.score:6.2f}/{result.max_score:<6.2f} ({pct:.1f}%)   in {result.elapsed_s:.2f} s")
    if result.hidden_pending:
        items = f" (in {result.hidden_items_pending} hidden items and others)" if result.hidden_items_pending else ""
        lines.append(f"note: this is a self-check: {result.hidden_pending} hidden checks{items} will run at grading time")
    if result.placeholders:
        lines.append("note: not available while grading, imported as placeholders (no points lost unless a graded method uses them): "
                     + ", ".join(f"{p['package']} ({p['file']}{', line ' + str(p['line']) if p['line'] else ''})" for p in result.placeholders))
    for text in dict.fromkeys(i.graded_as_text for i in result.items if i.graded_as_text):  # once per class
        lines.append(f"note: {text}")
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    for error in result.errors:
        lines.append(f"problem: {error.splitlines()[0]}")
    if verbose:
        for item in result.items:
            if item.status != "passed":
                lines += ["", f"== {item.name} ({item.status}, {item.score:.2f}/{item.max_score:.2f})", item.feedback]
    return "\n".join(lines)
