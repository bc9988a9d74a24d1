"""The command: options forwarded, results written, exit codes as CONTRACT.md says."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONTRACT_KEYS = {"submission", "score", "max_score", "items", "errors", "elapsed_s"}
ITEM_KEYS = {"name", "score", "max_score", "status", "feedback", "checks"}
CHECK_KEYS = {"name", "passed", "score", "max_score", "message"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_grades_a_folder_prints_the_table_and_writes_the_contract_json(tmp_path):
    out = tmp_path / "out"
    res = run(FIXTURES / "submissions" / "se_gradient_missing_2", "--out", out, "--sandbox", "process", "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "SquaredError.gradient" in res.output and "failed" in res.output and "a factor of 2 missing" in res.output
    assert "total" in res.output and "96.00/100.00" in res.output
    data = json.loads((out / "se_gradient_missing_2.json").read_text())
    assert data == json.loads((tmp_path / "r.json").read_text())
    assert CONTRACT_KEYS <= set(data) and data["score"] == 96.0 and data["max_score"] == 100
    item = next(i for i in data["items"] if i["name"] == "SquaredError.gradient")
    assert ITEM_KEYS <= set(item) and item["status"] == "failed"
    assert all(CHECK_KEYS <= set(c) for c in item["checks"])
    assert data["sandbox"] == "process" and data["seed"] == 0
    assert "run again with -v" in res.output  # something failed: where to read why


def test_verbose_prints_the_feedback_and_a_clean_run_needs_no_hint(tmp_path):
    res = run(FIXTURES / "submissions" / "se_gradient_missing_2", "--out", tmp_path, "--sandbox", "process", "-v")
    assert "== SquaredError.gradient (failed" in res.output and "Expected rule:" in res.output
    assert "run again with -v" not in res.output
    clean = run(FIXTURES / "submissions" / "aliases_correct", "--out", tmp_path, "--sandbox", "process")
    assert clean.exit_code == 0 and "100.00/100.00" in clean.output and "run again with -v" not in clean.output


def test_seed_changes_the_points_but_not_the_verdict(tmp_path):
    a = run(FIXTURES / "submissions" / "tanh_one_minus_g", "--out", tmp_path, "--sandbox", "process", "--seed", "1", "-q")
    assert a.exit_code == 0 and a.output.strip() == "tanh_one_minus_g: 96.00/100.00"


def test_gradescope_file_has_gradescopes_shape(tmp_path):
    res = run(FIXTURES / "submissions" / "fc_bias_ignored", "--out", tmp_path, "--sandbox", "process", "--gradescope", tmp_path / "results.json", "-q")
    assert res.exit_code == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data) == {"score", "execution_time", "output", "output_format", "tests"} and data["score"] == 95.0
    assert all(set(t) == {"name", "number", "score", "max_score", "status", "output", "output_format", "visibility"} for t in data["tests"])
    assert [t["number"] for t in data["tests"]] == [str(n) for n in range(1, len(data["tests"]) + 1)]  # the spec's order
    forward = next(t for t in data["tests"] if t["name"] == "FullyConnectedLayer.forward")
    assert forward["output_format"] == "md" and forward["output"].startswith("**Likely mistake:** bias ignored")
    assert forward["output"].index("**Expected rule:**") < forward["output"].index("**values**")
    assert data["output_format"] == "md"
    assert data["output"].startswith("Total: 95\\.00 / 100\\.00\n\nFix first: FullyConnectedLayer\\.forward \\(5\\.00 points lost, failed\\)")


def test_missing_path_is_a_usage_error():
    res = run("no/such/folder")
    assert res.exit_code == 2
    assert "no/such/folder: no such file or folder" in res.output


def test_bad_spec_exits_2_naming_file_item_and_key(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[assignment]\nname="x"\n[classes.Soft]\nkind="elementwise"\nforward="log(1 + exp(z)"\npoints={forward=1}\n')
    res = run(FIXTURES / "base_submission.py", "--spec", spec, "--out", tmp_path)
    assert res.exit_code == 2
    assert f"{spec}: [classes.Soft] key 'forward': 'log(1 + exp(z)' is not a valid formula" in res.output


def test_json_takes_one_submission(tmp_path):
    res = run(FIXTURES / "base_submission.py", FIXTURES / "submissions" / "tanh_missing", "--json", tmp_path / "x.json")
    assert res.exit_code == 2 and "--json and --gradescope take a single submission" in res.output


def test_a_spec_with_a_formula_declared_activation_is_graded(tmp_path):
    spec = tmp_path / "softplus.toml"
    spec.write_text('[assignment]\nname="softplus"\n[classes.SoftplusLayer]\nkind="elementwise"\nforward="log(1 + exp(z))"\n'
                    'points={forward=2, gradient=2, backward=2}\n')
    sub = tmp_path / "sp"
    sub.mkdir()
    base = (FIXTURES / "base_submission.py").read_text()
    (sub / "s.py").write_text(base + "\n\nclass SoftplusLayer(Layer):\n    def forward(self, X):\n        X = np.asarray(X, dtype=float)\n"
                              "        self.setPrevIn(X)\n        out = np.logaddexp(0, X)\n        self.setPrevOut(out)\n        return out\n\n"
                              "    def gradient(self):\n        return 1 / (1 + np.exp(-self.getPrevIn()))\n")
    res = run(sub, "--spec", spec, "--out", tmp_path, "--sandbox", "process", "-q")
    assert res.exit_code == 0 and res.output.strip() == "sp: 6.00/6.00"


def test_python_dash_m_and_help():
    res = subprocess.run([sys.executable, "-m", "grader", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for option in ("--out", "--json", "--spec", "--jobs", "--seed", "--timeout", "--sandbox", "--gradescope", "--quiet"):
        assert option in res.stdout


QUICK_EXIT_PROGRAM = """
import atexit, sys, threading, time
import click
from grader.cli import quick_exit
atexit.register(lambda: open(sys.argv[1], "w").write("exit handlers ran"))
@click.command()
@click.argument("how")
def command(how):
    print("printed before leaving", end="")  # no newline: still buffered when the command returns
    if how == "thread":
        threading.Thread(target=lambda: (time.sleep(0.3), open(sys.argv[1] + ".thread", "w").write("finished"))).start()
    if how == "text":
        sys.exit("a message for the user")
    sys.exit({"ok": 0, "three": 3, "none": None, "thread": 4}[how])
quick_exit(lambda: command([HOW], standalone_mode=True))
"""


@pytest.mark.parametrize("how, status", [("ok", 0), ("three", 3), ("none", 0), ("text", 1), ("thread", 4)])
def test_the_program_exits_quickly_with_its_status_its_output_and_its_exit_handlers(tmp_path, how, status):
    marker = tmp_path / "marker"
    script = QUICK_EXIT_PROGRAM.replace("[HOW]", repr([how]))
    res = subprocess.run([sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=60)
    assert res.returncode == status, res.stderr
    assert res.stdout == "printed before leaving"
    assert marker.read_text() == "exit handlers ran"
    if how == "text":
        assert "a message for the user" in res.stderr
    if how == "thread":  # a thread still running gets Python's ordinary exit, which waits for it
        assert Path(str(marker) + ".thread").read_text() == "finished"


def test_python_dash_m_passes_the_exit_status_through(tmp_path):
    res = subprocess.run([sys.executable, "-m", "grader", str(tmp_path / "nothing-here")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "no such file or folder" in res.stderr


@pytest.mark.skipif(shutil.which("grade") is None, reason="the package is not installed")
def test_installed_console_script_grades_the_reference(tmp_path):
    from grader.paths import reference_dir

    res = subprocess.run(["grade", str(reference_dir()), "--out", str(tmp_path), "-q"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("100.00/100.00")


def test_non_finite_numbers_are_written_as_strict_json_and_the_html_beside_it(tmp_path):
    res = run(FIXTURES / "submissions" / "softmax_no_max_shift", "--out", tmp_path, "--sandbox", "process", "-q")
    assert res.exit_code == 0
    text = (tmp_path / "softmax_no_max_shift.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    edges = next(c for i in data["items"] if i["name"] == "SoftmaxLayer.forward" for c in i["checks"] if c["name"] == "edges")
    assert edges["details"]["got"][0] == [None, None, None]
    assert (tmp_path / "softmax_no_max_shift.html").read_text().startswith("<!DOCTYPE html>")


def test_several_submissions_get_a_class_summary(tmp_path):
    res = run(FIXTURES / "submissions" / "tanh_missing", FIXTURES / "submissions" / "fc_gradient_w", "--out", tmp_path, "--sandbox", "process", "-q")
    assert res.exit_code == 0
    page = (tmp_path / "index.html").read_text()
    assert '<a href="tanh_missing.html">tanh_missing</a>' in page and '<a href="fc_gradient_w.html">fc_gradient_w</a>' in page


def test_a_class_folder_is_detected_and_graded_as_a_batch(tmp_path):
    res = CliRunner().invoke(main, [str(FIXTURES / "batches" / "canvas"), "--out", str(tmp_path), "--sandbox", "process", "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "batch layout: canvas, 3 submissions; skipped 2" in res.output
    assert "graded 3, unchanged and skipped 0, grader failures 0 of 3" in res.output
    assert (tmp_path / "grades.csv").read_text().count("\n") == 4
    res = CliRunner().invoke(main, [str(FIXTURES / "batches" / "canvas"), "--out", str(tmp_path), "--sandbox", "process", "--resume"])
    assert "graded 0, unchanged and skipped 3" in res.output


def test_gradescope_output_refuses_a_batch_asked_for(tmp_path):
    res = run(FIXTURES / "batches" / "gradescope", "--batch", "--gradescope", tmp_path / "r.json")
    assert res.exit_code == 2 and "take a single submission" in res.output


def test_a_folder_without_python_files_is_a_usage_error(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my homework is elsewhere")
    res = run(tmp_path / "notes", "--out", tmp_path / "out", "--sandbox", "process")
    assert res.exit_code == 2 and "no Python file in the submission" in res.output and "0/100" not in res.output


def test_the_terminal_gets_unicode_rules_and_wrapped_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = run(FIXTURES / "submissions" / "se_gradient_missing_2", "--out", tmp_path, "--sandbox", "process", "-v")
    assert res.exit_code == 0
    assert "\\frac" not in res.output and "\\left" not in res.output and "[\\" not in res.output  # no raw LaTeX
    assert "Expected rule: ∂J/∂ŷ = −2(y − ŷ), N×K, not divided by N" in res.output
    table = res.output.split("-" * 80)[1]
    assert max(len(line) for line in table.splitlines()) <= 80  # reasons wrap under their column
    assert "…" not in table
    assert res.output.splitlines()[1].startswith("Fix first: SquaredError.gradient (4.00 points lost, failed)")


def test_grade_admin_prints_the_default_spec_to_start_from(tmp_path):
    from grader.admin_cli import main as admin
    from grader.assignment.spec import default_spec_path, load_spec

    printed = CliRunner().invoke(admin, ["spec"])
    assert printed.exit_code == 0 and printed.output == default_spec_path().read_text()
    written = CliRunner().invoke(admin, ["spec", str(tmp_path / "hw3.toml")])
    assert written.exit_code == 0 and load_spec(tmp_path / "hw3.toml").max_score == 100
    assert CliRunner().invoke(admin, ["spec", str(tmp_path / "hw3.toml")]).exit_code == 2


def _notebook_of(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# HW2"]},
                                 {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1, "source": text.splitlines(True)}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_a_notebook_is_a_submission_alone_and_in_a_batch(tmp_path):
    notebook = _notebook_of((FIXTURES / "base_submission.py").read_text())
    (tmp_path / "hw2.ipynb").write_text(notebook)
    res = run(tmp_path / "hw2.ipynb", "--out", tmp_path / "out", "--sandbox", "process", "-q", "--gradescope", tmp_path / "results.json")
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("hw2: 100.00/100.00") and json.loads((tmp_path / "results.json").read_text())["score"] == 100.0
    assert "notebook" in run("--help").output
    # a class whose students each handed in a notebook: by itself, in folders (detected), LMS-named (Canvas, detected)
    for layout, names in (("alone", ["alice.ipynb", "bob.ipynb"]), ("folders", ["alice/hw2.ipynb", "bob/hw2.ipynb"]),
                          ("canvas", ["alice_111_2001_hw2.ipynb", "bob_222_2002_hw2.ipynb"])):
        for name in names:
            (tmp_path / layout / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / layout / name).write_text(notebook)
        res = run(tmp_path / layout, *(["--batch"] if layout == "alone" else []), "--out", tmp_path / f"out-{layout}", "--sandbox", "process", "-q")
        assert res.exit_code == 0, res.output
        assert f"batch layout: {layout if layout != 'alone' else 'folders'}, 2 submissions" in res.output
        assert "graded 2, unchanged and skipped 0, grader failures 0 of 2" in res.output
        rows = (tmp_path / f"out-{layout}" / "grades.csv").read_text().splitlines()[1:]
        assert len(rows) == 2 and all(",100.00," in row or row.endswith(",100.00") for row in rows), rows


def test_gradescope_grades_what_looks_like_a_batch_as_one_submission(tmp_path):
    sub = tmp_path / "submission"
    for version in ("v1", "v2"):
        (sub / version).mkdir(parents=True)
        shutil.copy(FIXTURES / "base_submission.py", sub / version / "layers.py")
    res = run(sub, "--out", tmp_path / "out", "--sandbox", "process", "--gradescope", tmp_path / "results.json")
    assert res.exit_code == 0, res.output
    assert "batch layout" not in res.output and json.loads((tmp_path / "results.json").read_text())["score"] == 100.0
    warnings = json.loads((tmp_path / "out" / "submission.json").read_text())["warnings"]
    assert warnings[-1].startswith("files graded: v1/layers.py (CrossEntropy, ") and warnings[-1].endswith("; other copies not graded: v2/layers.py")
    assert "warning: files graded: v1/layers.py" in res.output
    self_check = run(sub, "--out", tmp_path / "self", "--sandbox", "process")
    assert "batch layout: folders, 2 submissions (detected: --json FILE grades it as one submission)" in self_check.output
    # a stray submission_metadata.yml in the student's own folder
    (sub / "submission_metadata.yml").write_text(":submission_id: 1\n")
    res = run(sub, "--out", tmp_path / "out", "--sandbox", "process", "--json", tmp_path / "r.json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["score"] == 100.0
    assert run(sub, "--batch", "--json", tmp_path / "r.json").exit_code == 2  # asked for a batch and one result: refused


@pytest.mark.parametrize("name, note", [
    ("deep_expression_helper", "helpers.py: not read: an expression nested more than 500 levels deep"),
    ("deep_expression_notebook", "tanh.ipynb: code cell 2 not read: an expression nested more than 500 levels deep"),
    ("deep_json_notebook", "scratch.ipynb: not read: its JSON is nested more than 100 levels deep")])
def test_text_the_parser_cannot_hold_is_a_note_and_the_rest_is_graded(tmp_path, name, note):
    res = run(FIXTURES / "hostile" / name, "--out", tmp_path, "--sandbox", "process", "--gradescope", tmp_path / "results.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 100.0
    assert any(w.startswith(note) for w in json.loads((tmp_path / f"{name}.json").read_text())["warnings"])


def test_a_batch_gives_text_the_parser_cannot_hold_a_result_not_a_grader_failure(tmp_path):
    names = ("deep_expression_helper", "deep_expression_notebook", "deep_json_notebook")
    for name in names:
        shutil.copytree(FIXTURES / "hostile" / name, tmp_path / "class" / name)
    res = run(tmp_path / "class", "--batch", "--out", tmp_path / "out", "--sandbox", "process", "-j", "2")
    assert res.exit_code == 0, res.output
    assert "graded 3, unchanged and skipped 0, grader failures 0 of 3" in res.output
    results = {n: json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in names}
    assert [results[n]["score"] for n in names] == [100.0] * 3
    assert all("not read" in " ".join(r["warnings"]) for r in results.values())


MARKUP = re.compile(r"(?<!\\)[\[\]!`<>]")  # a link, an image, code, HTML: what renders (bare parentheses do not)


def outside_fences(markdown: str) -> str:
    """The text of `markdown` outside its fenced code blocks (a fence closes only with a run of
    backticks at least as long as the one that opened it), where Markdown and HTML render."""
    out, fence = [], None
    for line in markdown.split("\n"):
        run_ = re.match(r"^(`{3,})\s*$", line)
        if fence is None and run_:
            fence = run_.group(1)
        elif fence is not None and run_ and len(run_.group(1)) >= len(fence):
            fence = None
        elif fence is None:
            out.append(line)
    assert fence is None, "a fence left open"
    return "\n".join(out)


def test_student_text_never_renders_in_gradescope_markdown(tmp_path):
    """A link, a tracking pixel and raw HTML in every place a student controls (exception messages
    and class names, at import and in a constructor, file names, a class's __name__) reach
    Gradescope only escaped or fenced; the HTML report escapes them, the terminal shows them inert."""
    MARKDOWN_BAIT = "[regrade approved](https://evil.example/regrade) ![](https://evil.example/pixel.png) <img src=x onerror=alert(1)> ```` ~~~ <b>"
    assert MARKDOWN_BAIT in (FIXTURES / "build_fixtures.py").read_text()  # as the fixture plants it
    folder = FIXTURES / "submissions" / "markdown_in_messages"
    res = run(folder, "--out", tmp_path, "--sandbox", "process", "--gradescope", tmp_path / "results.json", "-q")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    outputs = [data["output"]] + [t["output"] for t in data["tests"]]
    assert all(t["output_format"] == "md" for t in data["tests"]) and data["output_format"] == "md"
    everywhere = "\n".join(outputs)
    # the bait arrived by each path: a method's exception, the constructor in the fallback, a file name
    assert "TanhLayer.gradient() gave " + MARKDOWN_BAIT in everywhere  # fenced
    assert "raised \\[regrade approved\\]\\(https://evil\\.example/regrade\\)" in everywhere  # escaped prose
    assert "\\!\\[\\]\\(https:evil\\.example\\) &lt;b&gt;bold\\.py" in everywhere  # a file name, escaped
    for text in outputs:
        rendered = outside_fences(text)
        assert not MARKUP.findall(rendered.replace("**", "")), rendered
        assert "<img" not in rendered and "<b>" not in rendered
    # every fence is longer than any run of backticks inside it
    for text in outputs:
        for fence, body in re.findall(r"^(`{3,})\n(.*?)\n\1$", text, re.S | re.M):
            assert max((len(r) for r in re.findall("`+", body)), default=0) < len(fence)
    page = (tmp_path / "markdown_in_messages.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    from grader.outputs.html_report import render_summary
    from grader.checking.results import SubmissionResult

    result = SubmissionResult.from_dict(json.loads((tmp_path / "markdown_in_messages.json").read_text()))
    summary = render_summary([result])  # its diagnoses, names and problems: escaped as the report's
    assert "<img" not in summary and "<b>" not in summary.split("<main>")[1].replace("<b>Hardest items:</b>", "").replace("<b>Possible shared work:</b>", "").replace("<b>Most frequent diagnosis:</b>", "")


def test_verbose_on_a_template_prints_one_line_per_item_not_implemented_and_where_to_start(tmp_path):
    from grader.paths import template_dir

    res = run(template_dir(), "--out", tmp_path, "--sandbox", "process", "-v")
    lines = res.output.splitlines()
    assert lines[1].startswith("Start with SquaredError.eval: it comes first in the assignment and is not implemented yet")
    verbose = res.output.split("Not implemented yet, in the assignment's order:\n")[1].splitlines()
    assert verbose[:3] == ["== SquaredError.eval: not implemented yet (0.00/3.00)",
                           "== SquaredError.gradient: not implemented yet (0.00/4.00)",
                           "== LogLoss.eval: not implemented yet (0.00/3.00)"]
    items = json.loads((tmp_path / "student_template.json").read_text())["items"]
    missing = [i["name"] for i in items if i["status"] == "not_implemented"]
    assert [v.split(":")[0][3:] for v in verbose if v.startswith("== ")] == missing  # one line per item, in order
    assert res.output.count("NotImplementedError") <= 2 * len(items)  # the table's reasons, not five per check
    assert len(lines) < 4 * len(items)  # it was 310 for 27 items: five lines per check
