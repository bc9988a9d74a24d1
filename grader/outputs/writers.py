"""Writing results: the result JSON of CONTRACT.md and Gradescope's results.json, atomically."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from grader.checking.results import SubmissionResult


def write_atomic(path: Path, text: str):
    """Write `text` to `path` so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def markdown_feedback(item, checks) -> str:
    """An item's feedback for Gradescope, in Markdown: the named mistake and the expected rule first,
    then the evidence of each check.

    Everything but the grader's own markup is student-controlled or may be (messages, notes, class
    and file names, an exception's text): prose goes through `md_text`, messages and notes into a
    `fenced` block, so no link, image or HTML of a student's renders for whoever opens the result."""
    lines = [md_text(line) for line in item.adjustment_lines]
    named = [d for c, d in zip(item.checks, item.named_diagnoses()) if d and c in checks]
    if named:
        lines.append("**Likely mistake:** " + md_text("; ".join(dict.fromkeys(named)) + "."))
    if item.graded_as_text:
        lines.append(md_text(item.graded_as_text + "."))
    if item.reason:
        lines.append(md_text(item.reason))
    if item.rule and (item.status != "passed" or not checks):
        lines.append(f"**Expected rule:** {md_text(item.rule_line)}")
    for check in checks:
        earned = item.earned(check)
        lines.append(f"**{md_text(check.name)}**: {'passed' if check.passed else 'failed'} "
                     f"({earned:.2f} of {check.max_score:.2f} of the item's weight)")
        body = check.message if not check.passed else check.note
        if body:
            lines.append(fenced(body.strip()))
    return "\n\n".join(lines) or "All checks passed."


#: Characters with a meaning in Markdown (CommonMark's and GitHub's): each gets a backslash.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=])")


def md_text(text) -> str:
    """`text` as Markdown that shows it and nothing else: HTML's <, > and & as entities, every
    character Markdown gives a meaning (links, images, emphasis, code, headings, lists) escaped,
    and each line break kept as one."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "  \n".join(_MARKDOWN_PUNCTUATION.sub(r"\\\1", line) for line in text.split("\n"))


def fenced(text) -> str:
    """`text` in a Markdown code block whose fence is longer than any run of backticks inside it,
    so that nothing in it can close the block early; inside, nothing renders."""
    longest = max((len(run) for run in re.findall("`+", str(text))), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def result_json(result: SubmissionResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)


def gradescope_json(result: SubmissionResult) -> str:
    """Gradescope's results.json: score, execution_time, output and one test per item.

    An item's hidden checks become a test of their own with visibility "hidden", so students
    see neither their points nor their feedback before the instructor publishes them.
    """
    tests = []
    for number, item in enumerate(result.items, start=1):
        total = sum(c.max_score for c in item.checks) or 1.0
        parts = [("visible", [c for c in item.checks if not c.hidden]), ("hidden", [c for c in item.checks if c.hidden])]
        if item.hidden:  # a hidden item is hidden whole, whatever became of its checks
            parts = [("hidden", list(item.checks))]
        elif not item.checks:
            parts = [("visible", [])]
        for visibility, checks in parts:
            if item.checks and not checks and not item.hidden:
                continue
            share = sum(c.max_score for c in checks) / total if item.checks else 1.0
            earned = sum(item.earned(c) for c in checks) / total if item.checks else 0.0
            passed = all(c.passed for c in checks) and (bool(checks) or item.status == "passed")
            if item.adjustments:  # the instructor's override moves the item's points, whatever its checks earned
                earned = share * item.score / item.max_score if item.max_score else 0.0
                passed = item.score >= item.max_score
            split = bool(visibility == "hidden" and len(parts) > 1 and parts[0][1])
            tests.append({
                "name": item.name + (" (hidden checks)" if split else ""),
                "number": f"{number}.1" if split else str(number),  # Gradescope orders tests by it: the spec's order
                "score": round(item.max_score * earned, 4),
                "max_score": round(item.max_score * share, 4),
                "status": "passed" if passed else "failed",
                "output": markdown_feedback(item, checks),
                "output_format": "md",
                "visibility": visibility,
            })
    if result.sandbox_note:  # for the instructor: Gradescope shows hidden tests to instructors only
        tests.append({"name": "Sandbox (instructors only)", "number": str(len(result.items) + 1), "score": 0.0, "max_score": 0.0,
                      "status": "passed", "output": md_text(f"Student code ran in the {result.sandbox} sandbox: {result.sandbox_note}."),
                      "output_format": "md", "visibility": "hidden"})
    numeric = [item.name for item in result.items if item.graded_as.get("numeric")]
    if numeric:  # for the instructor: right numbers, but no rule derived (README: numerical gradients)
        tests.append({"name": "Gradients computed numerically (instructors only)", "number": str(len(result.items) + 2),
                      "score": 0.0, "max_score": 0.0, "status": "passed",
                      "output": md_text("These items computed their answers numerically (complex step, or differences of the "
                                        "student's own forward/eval), not from a derived rule: " + ", ".join(numeric) + "."),
                      "output_format": "md", "visibility": "hidden"})
    summary = [f"Total: {result.score:.2f} / {result.max_score:.2f}", *result.score_notes, result.fix_first]
    if result.hidden_pending:
        summary.append(f"{result.hidden_pending} hidden checks were not run (no instructor secret).")
    summary += [f"Warning: {w}" for w in result.warnings] + list(result.errors)
    return json.dumps({"score": round(result.score, 4), "execution_time": round(result.elapsed_s, 3),
                       "output": "\n\n".join(md_text(line) for line in summary), "output_format": "md",
                       "tests": tests}, indent=2, ensure_ascii=False)
