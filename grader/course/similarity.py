"""Copying found by code: every pair of submissions compared as MOSS does, with copydetect.

copydetect (MIT; `pip install 'nn-grader[similarity]'`) tokenises code with Pygments, replaces
names by their kind, and fingerprints it by winnowing k-grams; two documents' shared
fingerprints locate the shared regions. Each submission is one document (its .py files and the
code of its notebooks, in path order); the student template's fingerprints are boilerplate, so
starter code every student got does not count. Nothing is run: sources are read as text, here
in the grader. The result is stored beside the results as `similarity.json`, which the class
summary shows: the most similar pairs, both percentages (each side's share of shared code) and
the matching regions side by side.
"""
from __future__ import annotations

import io
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grader.exceptions import UsageError

FILE = "similarity.json"
#: copydetect's own defaults: matches shorter than NOISE characters of tokenised code are noise;
#: any of GUARANTEE or more is found.
NOISE, GUARANTEE = 25, 30
SHOWN_PAIRS = 20
CONTEXT_LINES = 3  # unmatched code kept around each shared region in the side-by-side view


def require() -> None:
    """Raise a UsageError saying how to install copydetect when it is missing."""
    try:
        import copydetect  # noqa: F401
    except ImportError:
        raise UsageError("--similarity needs copydetect: pip install 'nn-grader[similarity]' (or pip install copydetect)") from None


@dataclass
class Document:
    """One submission as one text: its files, each under a header naming it."""

    id: str
    text: str
    files: int


def documents(entries, workdir: Path) -> list[Document]:
    """Each entry's Python source (notebooks' code cells included) as one document; unreadable ones are left out."""
    from grader.exceptions import SubmissionError
    from grader.intake.submission import copy_submission, notebook_modules, read_source, regular_files

    out = []
    for n, entry in enumerate(entries):
        if getattr(entry, "problem", ""):
            continue
        try:
            root = copy_submission(Path(entry.path), Path(workdir) / str(n))
        except (SubmissionError, OSError):
            continue
        notebook_modules(root, [])
        parts = []
        for path in sorted(regular_files(root, (".py",)), key=lambda p: p.relative_to(root).as_posix()):
            source = read_source(path)
            if source is None:
                continue
            parts.append(f"# ---- {path.relative_to(root).as_posix()} ----\n" + source.decode("utf-8", errors="replace"))
        if parts:
            out.append(Document(entry.id, "\n".join(parts), len(parts)))
    return out


def _fingerprint(name: str, text: str, boilerplate=None, win_size: int | None = None):
    from copydetect import CodeFingerprint

    return CodeFingerprint(name + ".py", NOISE, win_size or GUARANTEE - NOISE + 1, boilerplate=boilerplate,
                           language="python", fp=io.StringIO(text))


def compare(entries, template: Path | None) -> dict:
    """Compare every pair of `entries`; return what similarity.json holds (pairs most similar first)."""
    import numpy as np
    from copydetect import compare_files

    require()
    with tempfile.TemporaryDirectory(prefix="grade-similarity-") as tmp:
        docs = documents(entries, Path(tmp) / "submissions")
        template_docs = documents([_TemplateEntry(template)], Path(tmp) / "template") if template else []
    boilerplate = np.unique(np.concatenate([np.array(sorted(_fingerprint("template", d.text, win_size=1).hashes), dtype=np.int64)
                                            for d in template_docs])) if template_docs else None
    prints = [_fingerprint(d.id, d.text, boilerplate) for d in docs]
    pairs = []
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            tokens, (share_a, share_b), (slices_a, slices_b) = compare_files(prints[i], prints[j])
            pairs.append((max(share_a, share_b), i, j, tokens, share_a, share_b, slices_a, slices_b))
    pairs.sort(key=lambda p: (-p[0], docs[p[1]].id, docs[p[2]].id))
    shown = []
    for top, i, j, tokens, share_a, share_b, slices_a, slices_b in pairs[:SHOWN_PAIRS]:
        if tokens <= 0:
            break
        shown.append({"a": docs[i].id, "b": docs[j].id, "similarity_a": round(float(share_a), 4),
                      "similarity_b": round(float(share_b), 4), "tokens": int(tokens),
                      "regions_a": segments(docs[i].text, slices_a), "regions_b": segments(docs[j].text, slices_b)})
    return {"computed_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "submissions": len(docs),
            "pairs_compared": len(pairs), "boilerplate": bool(template_docs), "noise": NOISE, "guarantee": GUARANTEE,
            "scores": [round(float(p[0]), 4) for p in pairs], "pairs": shown}


@dataclass
class _TemplateEntry:
    path: Path
    id: str = "template"
    problem: str = ""


def segments(text: str, slices) -> list[list]:
    """The document as [text, shared] runs, unshared runs cut to CONTEXT_LINES around shared ones.

    Plain text only: the page escapes it when it renders (student code is never markup)."""
    out, at = [], 0
    starts, ends = (list(map(int, slices[0])), list(map(int, slices[1]))) if len(slices) else ([], [])
    for start, end in sorted(zip(starts, ends)):
        if start > at:
            out.append([_context(text[at:start], first=not out, last=False), False])
        out.append([text[start:end], True])
        at = max(at, end)
    if at < len(text):
        out.append([_context(text[at:], first=not out, last=True), False])
    return out


def _context(text: str, *, first: bool, last: bool) -> str:
    lines = text.split("\n")
    keep = CONTEXT_LINES
    if first and len(lines) > keep + 1:
        return "…\n" + "\n".join(lines[-keep - 1:])
    if last and len(lines) > keep + 1:
        return "\n".join(lines[:keep + 1]) + "\n…"
    if len(lines) > 2 * keep + 2:
        return "\n".join(lines[:keep + 1]) + "\n…\n" + "\n".join(lines[-keep - 1:])
    return text


def write(out_dir: Path, data: dict) -> None:
    from grader.outputs.writers import write_atomic

    write_atomic(Path(out_dir) / FILE, json.dumps(data, ensure_ascii=False))


def read(out_dir: Path, ids) -> dict | None:
    """similarity.json as the summary shows it: only pairs of students in this batch; None when absent or damaged."""
    try:
        data = json.loads((Path(out_dir) / FILE).read_text())
        wanted = set(ids)
        data["pairs"] = [p for p in data.get("pairs", []) if p.get("a") in wanted and p.get("b") in wanted]
        return data
    except (OSError, ValueError, AttributeError, TypeError):
        return None
