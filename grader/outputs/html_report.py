"""HTML reports: one self-contained page per submission, and the class summary of a batch.

Jinja2 templates ship in grader/templates and render with StrictUndefined, so a missing value
is an error, never a blank. Pages carry their CSS and SVG inline, refer to nothing outside
themselves, and show formulas as MathML straight from SymPy (no JavaScript needed for them).
"""
from __future__ import annotations

import datetime as _dt
import functools
import html
import math
from collections import Counter, defaultdict
from importlib import resources
from urllib.parse import quote

import numpy as np

from grader.checking.results import SubmissionResult
from grader.outputs.loss_curves import loss_curves_svg

MARKS = {"passed": "✓", "partial": "◐", "failed": "✗", "error": "!", "timeout": "T", "missing": "∅", "not_implemented": "…"}
STATUS_TEXT = {"not_implemented": "not implemented"}
PRINTED_LIMIT = 8000


#: The report's templates, compiled to Python once per template text and Jinja2 version
#: (`_compiled_folder`).
TEMPLATES = ("report.html.j2", "summary.html.j2")
AUTOESCAPED = ("html", "j2")


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2  # here, not at the top: a self-check imports it while its worker starts (ready_report)

    options = dict(undefined=jinja2.StrictUndefined, autoescape=jinja2.select_autoescape(AUTOESCAPED),
                   trim_blocks=True, lstrip_blocks=True)
    source = jinja2.PackageLoader("grader.outputs", "templates")
    # what the compiled code depends on, read off the options (the autoescape function by what it was made of)
    described = repr([options["undefined"].__name__, AUTOESCAPED,
                      sorted((k, v) for k, v in options.items() if k not in ("undefined", "autoescape"))])
    folder = _compiled_folder(jinja2, options, described)
    loader = jinja2.ChoiceLoader([jinja2.ModuleLoader(str(folder)), source]) if folder else source
    return jinja2.Environment(loader=loader, **options)


def _compiled_folder(jinja2, options: dict, described: str, here=None):
    """The folder of the templates compiled to Python modules, made on the first run where the
    grader's own folder may be written (Python then keeps their bytecode beside them, as for the
    grader's modules): compiling the report's template took ~20 ms of every self-check. It lies
    in the grader's package, as trusted as its modules (never in the user's cache, which student
    code may reach in some sandboxes); its name holds a digest of the templates' text, the
    Jinja2 version and the options (`described`), so an edited template or another Jinja2
    compiles afresh.
    None where it cannot be made: the templates are then compiled in memory, as before."""
    import hashlib
    import os
    import shutil
    import tempfile
    from pathlib import Path

    here = Path(here or Path(__file__).resolve().parent / "templates")
    digest = hashlib.sha256(f"{jinja2.__version__}|{described}".encode())
    try:
        for name in TEMPLATES:
            digest.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    except OSError:
        return None
    folder = here / "__compiled__" / digest.hexdigest()[:24]
    if all((folder / jinja2.ModuleLoader.get_module_filename(name)).is_file() for name in TEMPLATES):
        return folder
    try:
        folder.parent.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    except OSError:  # a read-only installation
        return None
    try:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(here)), **options)
        env.compile_templates(str(staging), zip=None, filter_func=lambda name: name in TEMPLATES, ignore_errors=False)
        os.replace(staging, folder)  # whole or not at all; another grader that made it first wins
    except Exception:  # a template that does not compile says so when it is rendered, from its source
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder if folder.is_dir() else None


@functools.lru_cache(maxsize=1)
def _css() -> str:
    return resources.files("grader.outputs.templates").joinpath("style.css").read_text(encoding="utf-8")


def ready_report(mathml: tuple[str, ...] = ()) -> None:
    """Compile the report template now (it takes longer than rendering it), and rebuild the rules'
    `mathml` the report will show, e.g. while a worker starts."""
    _environment().get_template("report.html.j2")
    for markup in mathml:
        safe_mathml(markup)


def render_report(result: SubmissionResult) -> str:
    """Return the HTML page of one submission's result.

    A fault while drawing one part of the page (an item's heatmaps, an item) costs that part, with
    a note saying so where it would have been, never the page: the result is on it whatever arrived."""
    items = [_guarded_item_view(i) for i in result.by_importance()]  # what matters first: most points lost
    counts = Counter(i["status"] for i in items)
    summary = ", ".join(f"{n} {STATUS_TEXT.get(s, s)}" for s, n in sorted(counts.items(), key=lambda kv: kv[0] != "passed"))
    percent = 100.0 * result.score / result.max_score if result.max_score else 0.0
    output = result.output if len(result.output) <= PRINTED_LIMIT else result.output[:PRINTED_LIMIT] + "\n… [truncated]"
    return _environment().get_template("report.html.j2").render(
        r=result, items=items, percent=percent, counts=summary, css=_css(), output=output)


def fault_note(part: str, exc: BaseException) -> str:
    """What a reader sees where a part of a report could not be drawn."""
    return f"{part} could not be drawn ({type(exc).__name__}: {str(exc)[:200]}); the rest of the report stands."


def status_text(item) -> str:
    """The status as a report shows it, saying when the instructor's override credited the item."""
    text = STATUS_TEXT.get(item.status, item.status)
    if item.adjustments and item.score > item.graded_score:
        return "credited by the instructor" if item.score >= item.max_score else f"{text}, credited in part"
    return text + (", adjusted by the instructor" if item.adjustments else "")


def _guarded_item_view(item) -> dict:
    try:
        return _item_view(item)
    except Exception as exc:  # noqa: BLE001 - this item's section only
        return {"name": item.name, "anchor": item.name.replace(".", "-"), "score": item.score, "max_score": item.max_score,
                "status": item.status, "status_text": status_text(item), "mark": MARKS.get(item.status, "?"),
                "one_line": fault_note("This item's details", exc), "reason": "", "rule": "", "rule_mathml": "",
                "checks": [], "adjusted": []}


def _item_view(item) -> dict:
    checks = []
    drawn = False  # one set of heatmaps per item: the first failing check's
    for c, diagnosis in zip(item.checks, item.named_diagnoses()):
        view = {"name": c.name, "passed": c.passed, "score": item.earned(c), "max_score": c.max_score, "message": c.message,
                "diagnosis": diagnosis, "note": c.note, "heatmaps": [], "stages": [], "fault": ""}
        try:
            if not c.passed and not drawn and "got" in c.details and "expected" in c.details:
                view["heatmaps"] = heatmaps(c.details["got"], c.details["expected"])
                drawn = bool(view["heatmaps"])
            if "stages" in c.details:
                view["stages"] = _stages(c.details["stages"])
            if "curves" in c.details:  # Network.training: the loss per epoch, the truth's and the student's
                svg = loss_curves_svg(c.details["curves"].get("truth", []), c.details["curves"].get("yours", []), title=f"{c.name}: loss per epoch")
                view["heatmaps"] = [{"svg": svg, "caption": f"{c.name}: loss per epoch, the truth's (solid) and yours (dashed)"}] if svg else []
        except Exception as exc:  # noqa: BLE001 - a picture lost, not the report
            view["heatmaps"], view["stages"], view["fault"] = [], [], fault_note("The pictures of this check", exc)
        checks.append(view)
    return {
        "name": item.name, "anchor": item.name.replace(".", "-"), "score": item.score, "max_score": item.max_score,
        "status": item.status, "status_text": status_text(item), "mark": MARKS[item.status],
        "one_line": item.one_line, "reason": item.reason, "numeric": _numeric(item),
        "rule": item.rule, "rule_mathml": safe_mathml(item.rule_mathml), "checks": checks,
        "adjusted": item.adjustment_lines,
    }


MATHML_TAGS = frozenset({"mi", "mo", "mn", "mtext", "mrow", "msub", "msup", "msubsup", "mfrac", "msqrt", "mroot", "mfenced",
                         "mtable", "mtr", "mtd", "munderover", "munder", "mover", "mspace", "mstyle", "mpadded", "mphantom",
                         "menclose", "semantics", "annotation"})
MATHML_ATTRIBUTES = frozenset({"mathvariant", "stretchy", "fence", "separator", "separators", "form", "open", "close",
                               "columnalign", "linethickness", "accent", "accentunder", "lspace", "rspace", "width"})


@functools.lru_cache(maxsize=1024)  # a class's rules are the same in every report of a batch
def safe_mathml(markup: str) -> str:
    """MathML rebuilt from an allow-list of elements and attributes, everything else escaped away.

    Rules come from a cache on disk that other code may have written: what reaches a page marked
    safe must be MathML and nothing else (no script, no event handler, no link).
    """
    from html.parser import HTMLParser

    out: list[str] = []

    class Rebuild(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in MATHML_TAGS:
                kept = "".join(f' {k}="{html.escape(v or "", quote=True)}"' for k, v in attrs if k in MATHML_ATTRIBUTES)
                out.append(f"<{tag}{kept}>")

        def handle_endtag(self, tag):
            if tag in MATHML_TAGS:
                out.append(f"</{tag}>")

        def handle_data(self, data):
            out.append(html.escape(data, quote=False))

    parser = Rebuild(convert_charrefs=True)
    parser.feed(markup or "")
    parser.close()
    return "".join(out)


def _stages(stages: list[dict]) -> list[dict]:
    first = next((i for i, s in enumerate(stages) if not s["ok"]), None)
    return [{**s, "first": i == first} for i, s in enumerate(stages)]


# ----------------------------------------------------------------------------- heatmaps


def heatmaps(got, expected) -> list[dict]:
    """Expected, the student's and their difference as small SVG heatmaps (first observation of a 3-D array).

    An answer of any shape, dtype and size arrives here: each side is drawn only where a heatmap
    means something (1-D to 3-D real numbers, at most 400 entries); the other gets a caption giving
    its shape and type instead of a picture."""
    e, e_label = _drawable(expected)
    g, g_label = _drawable(got, like=_shape_of(expected))
    if e is None and g is None:
        return []
    out = [{"svg": heatmap_svg(e, "expected") if e is not None else "", "caption": f"expected{e_label}"},
           {"svg": heatmap_svg(g, "yours") if g is not None else "", "caption": f"yours{g_label}"}]
    if e is not None and g is not None and g.shape == e.shape:
        with np.errstate(all="ignore"):
            out.append({"svg": heatmap_svg(g - e, "difference", mark_nonzero=True), "caption": "yours − expected (× marks a difference)"})
    return out


HEATMAP_LIMIT = 400


def _drawable(values, like: tuple | None = None) -> tuple[np.ndarray | None, str]:
    """(a 2-D float matrix to draw, or None; the caption's tail). A 3-D array is drawn by its first
    observation; a diagonal given where a full Jacobian (of shape `like`) was due is drawn as that Jacobian."""
    summary = f": {describe(values)}, not drawn"
    try:
        a = np.asarray(values if values is not None else np.nan)
    except Exception:  # a ragged list, an object that will not become an array
        return None, summary
    if a.dtype.kind not in "biuf" or a.ndim == 0 or a.ndim > 3 or a.size == 0 or a.size > HEATMAP_LIMIT:
        return None, summary
    a = a.astype(float)
    label = ""
    if like is not None and len(like) == 3 and a.ndim == 2 and a.shape == like[:2]:
        a = np.einsum("nk,kj->nkj", a, np.eye(a.shape[1]))  # a diagonal given where a full Jacobian was due
    if a.ndim == 3:
        a, label = a[0], " (first observation)"
    if a.ndim == 1:
        a = a[None, :]
    return a, label


def _shape_of(values) -> tuple | None:
    try:
        return np.shape(values)
    except Exception:  # ragged
        return None


def describe(values) -> str:
    """An answer in a few words: "shape (7, 3, 7, 3, 3), float64", "a str", "shape (), complex128"."""
    try:
        a = np.asarray(values)
    except Exception:
        return f"a {type(values).__name__}"
    if a.dtype.kind in "OUS":
        return f"a {type(values).__name__}" if a.ndim == 0 else f"shape {a.shape}, {type(values).__name__} of objects"
    return f"shape {a.shape}, {a.dtype}"


def heatmap_svg(matrix: np.ndarray, title: str, *, mark_nonzero: bool = False, cell: int = 22) -> str:
    """A diverging blue–white–red heatmap; NaN/inf cells are grey and crossed, so it reads without colour too."""
    rows, cols = matrix.shape
    finite = matrix[np.isfinite(matrix)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    scale = scale or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * cell}" height="{rows * cell}" '
             f'viewBox="0 0 {cols * cell} {rows * cell}" role="img" aria-label="{html.escape(title)} heatmap">']
    for i in range(rows):
        for j in range(cols):
            v = matrix[i, j]
            x, y = j * cell, i * cell
            if not math.isfinite(v):
                parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#9aa0a6"><title>[{i},{j}] {v}</title></rect>'
                             f'<path d="M{x} {y}l{cell} {cell}M{x + cell} {y}l{-cell} {cell}" stroke="#333" stroke-width="1"/>')
                continue
            t = max(-1.0, min(1.0, v / scale))
            r, g_, b = (255, int(255 * (1 - t)), int(255 * (1 - t))) if t >= 0 else (int(255 * (1 + t)), int(255 * (1 + t)), 255)
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({r},{g_},{b})" stroke="#ffffff" stroke-width="1">'
                         f'<title>[{i},{j}] {v:.6g}</title></rect>')
            if mark_nonzero and abs(v) > 1e-6 * max(scale, 1e-12):
                parts.append(f'<text x="{x + cell / 2}" y="{y + cell * 0.7}" font-size="{cell * 0.6:.0f}" text-anchor="middle" fill="#000">×</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------- class summary


def render_summary(results: list[SubmissionResult], *, title: str = "Class summary", shared: list[dict] | None = None,
                   similarity: dict | None = None) -> str:
    """Return the class summary page: students × items, histogram, pass rates, frequent diagnoses,
    and what suggests copying: `shared` wrong answers (grader/shared_answers.py) and `similarity`
    of code (grader/similarity.py)."""
    results = sorted(results, key=lambda r: r.submission)
    item_names = list(dict.fromkeys(i.name for r in results for i in r.items if i.max_score > 0))
    rows = []
    for r in results:
        by_name = {i.name: i for i in r.items}
        rows.append({"name": r.submission, "href": quote(f"{r.submission}.html"), "score": r.score, "max_score": r.max_score,
                     "raw": r.raw_score, "penalty": r.late_penalty, "notes": "; ".join(r.score_notes),
                     "adjusted": r.adjusted,
                     "percent": 100 * r.score / r.max_score if r.max_score else 0.0,
                     "cells": [_cell(by_name.get(n)) for n in item_names], "errors": len(r.errors),
                     "problem": r.problem, "problem_short": r.problem if len(r.problem) < 60 else r.problem[:57] + "…"})
    # per-item figures leave out who handed nothing gradable in: their zeros say nothing of the item
    absent = [r.submission for r in results if r.problem]
    rates = []
    for n in item_names:
        graded = [i for r in results if not r.problem for i in r.items if i.name == n]
        top = graded[0].max_score if graded else 0.0
        mean = float(np.mean([i.score for i in graded])) if graded else 0.0
        full = sum(i.score >= i.max_score for i in graded)
        rates.append({"name": n, "mean": mean, "max_score": top, "mean_percent": 100 * mean / top if top else 0.0,
                      "full": full, "total": len(graded), "full_percent": 100 * full / len(graded) if graded else 0.0})
    rates.sort(key=lambda r: (r["mean_percent"], r["full_percent"]))  # what the class struggles with first
    failing_checks = Counter((i.name, c.name) for r in results for i in r.items if i.max_score for c in i.checks if not c.passed)
    failing = [{"item": item, "check": check, "count": n} for (item, check), n in
               sorted(failing_checks.items(), key=lambda kv: (-kv[1], kv[0]))][:20]
    who = defaultdict(list)
    for r in results:
        for i in r.items:
            for d in i.diagnoses:
                who[(i.name, d)].append(r.submission)
    diagnoses = [{"item": k[0], "diagnosis": k[1], "count": len(v), "who": [(w, quote(f"{w}.html")) for w in sorted(set(v))]}
                 for k, v in sorted(who.items(), key=lambda kv: (-len(kv[1]), kv[0]))][:30]
    scores = [row["percent"] for row in rows]
    sandbox_notes = sorted(Counter(r.sandbox_note for r in results if r.sandbox_note).items())
    pairs = []
    for p in (similarity or {}).get("pairs", []):
        pairs.append({**p, "href_a": quote(f"{p['a']}.html"), "href_b": quote(f"{p['b']}.html"),
                      "percent_a": 100 * p["similarity_a"], "percent_b": 100 * p["similarity_b"]})
    groups = [{"students": [(s, quote(f"{s}.html")) for s in g["students"]], "answers": g["answers"]} for g in shared or []]
    overview = {"hardest": [r for r in rates if r["mean_percent"] < 100][:3], "diagnosis": diagnoses[0] if diagnoses else None,
                "groups": len(groups), "pairs": len(pairs)}
    return _environment().get_template("summary.html.j2").render(
        overview=overview, sandbox_notes=sandbox_notes, failing=failing, show_late=any(r.late_penalty for r in results),
        groups=groups, similarity=similarity, pairs=pairs,
        similarity_histogram=_guarded_svg(lambda: histogram_svg([100 * s for s in similarity["scores"]], label="pairs by similarity",
                                                                axis="pairs of submissions by similarity (%)"), "The histogram of similarities")
        if similarity and similarity.get("scores") else "",
        title=title, rows=rows, items=item_names, short=[_short(n) for n in item_names], rates=rates, diagnoses=diagnoses,
        histogram=_guarded_svg(lambda: histogram_svg(scores, fit=True), "The histogram of scores"), count=len(rows), absent=absent, graded_count=len(rows) - len(absent), mean=float(np.mean(scores)) if scores else 0.0,
        median=float(np.median(scores)) if scores else 0.0, css=_css(),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _guarded_svg(draw, part: str) -> str:
    """A picture, or where it would be, a note that it could not be drawn: the page goes on."""
    try:
        return draw()
    except Exception as exc:  # noqa: BLE001 - this picture only
        return f'<p class="warn">{html.escape(fault_note(part, exc))}</p>'


def _cell(item) -> dict:
    if item is None:
        return {"status": "missing", "text": "–", "value": -1}
    if item.adjustments:  # never a bare ✗ on an item the instructor credited
        return {"status": item.status, "text": f"{item.score:.1f}", "value": round(item.score, 3), "mark": "✎",
                "title": status_text(item), "numeric": _numeric(item)}
    return {"status": item.status, "text": f"{item.score:.1f}", "value": round(item.score, 3), "mark": MARKS[item.status],
            "numeric": _numeric(item)}


def _numeric(item) -> str:
    """The note on a gradient the student's code computed numerically (README), or ''."""
    from grader.checking.results import NUMERIC_NOTES

    how = [NUMERIC_NOTES[c] for c in item.graded_as.get("numeric", []) if c in NUMERIC_NOTES]
    return f"computed its answer numerically ({' and '.join(how)}), not from a derived rule" if how else ""


def _short(name: str) -> str:
    cls, method = name.split(".", 1)
    for suffix in ("Layer",):
        cls = cls[: -len(suffix)] if cls.endswith(suffix) and len(cls) > len(suffix) else cls
    return f"{cls}.{method}"


def histogram_svg(percents: list[float], *, bins: int = 10, width: int = 420, height: int = 160, label: str = "scores",
                  axis: str = "score (%)", fit: bool = False) -> str:
    """A distribution of percentages as an inline SVG bar chart with counts written on the bars: in
    10-point bins from 0 to 100, or with `fit`, in bins of 1, 2, 5 or 10 points over the range where
    the class actually is (from its 5th percentile up; fewer, lower scores share one bar "below"):
    150 students between 91 and 100 % get nine bars, not one."""
    start, step, under = 0.0, 100 / bins, 0
    if fit and percents:
        ordered = sorted(percents)
        low = ordered[int(0.05 * len(ordered))] if len(ordered) >= 20 else ordered[0]
        high = ordered[-1]
        step = next((s for s in (1, 2, 5, 10) if (high - low) / s <= bins), 10)
        start = min(math.floor(low / step) * step, 100 - step)
        bins = max(1, math.ceil((min(max(high, start + step), 100.0) - start) / step))
        if high >= start + bins * step and start + bins * step < 100:
            bins += 1
        under = sum(p < start for p in percents)
    counts = [0] * bins
    for p in percents:
        if p >= start:
            counts[max(0, min(int((p - start) // step), bins - 1))] += 1
    edges = [(start + k * step, min(100.0, start + (k + 1) * step)) for k in range(bins)]
    if under:  # the few far below the class: one bar, labelled as such
        counts, edges = [under] + counts, [(0.0, start)] + edges
        bins += 1
    top = max(counts) or 1
    bar_w = (width - 40) / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" viewBox="0 0 {width} {height + 30}" '
             f'role="img" aria-label="histogram of {html.escape(label)}">']
    every = max(1, math.ceil(bins / 12))  # labels that do not overlap
    for k, (c, (lo, hi)) in enumerate(zip(counts, edges)):
        h = (height - 20) * c / top
        x = 30 + k * bar_w
        below = under and k == 0
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(bar_w - 4, 1):.1f}" height="{h:.1f}" fill="{"#9aa0a6" if below else "#4b6cb7"}">'
                     f'<title>{"below " + format(hi, "g") if below else format(lo, "g") + "–" + format(hi, "g")}%: {c}</title></rect>')
        if c:
            parts.append(f'<text x="{x + bar_w / 2 - 2:.1f}" y="{height - h - 4:.1f}" font-size="11" text-anchor="middle">{c}</text>')
        if below:
            parts.append(f'<text x="{x + bar_w / 2 - 2:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">&lt;{hi:g}</text>')
        elif k % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">{lo:g}</text>')
    parts.append(f'<text x="{30 + bins * bar_w:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">{edges[-1][1]:g}</text>')
    parts.append(f'<line x1="28" y1="{height}" x2="{width - 8}" y2="{height}" stroke="#333"/>')
    parts.append(f'<text x="{width / 2}" y="{height + 28}" font-size="10" text-anchor="middle">{html.escape(axis)}</text></svg>')
    return "".join(parts)
