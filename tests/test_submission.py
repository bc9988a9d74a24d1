"""Static discovery: classes found by ast, import names from import styles, problems named."""
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from grader.exceptions import SubmissionError
from grader.intake.submission import NotParsed, copy_submission, discover, nesting, parse_source, submission_name

SUBMISSIONS = Path(__file__).resolve().parent / "fixtures" / "submissions"


def test_aliases_are_found_case_insensitively(tmp_path, spec):
    (tmp_path / "mine.py").write_text("class leastsquares:\n    pass\nclass RELULAYER:\n    pass\n")
    found = discover(tmp_path, spec)
    assert found.found["SquaredError"].name == "leastsquares"
    assert found.found["ReLuLayer"].name == "RELULAYER" and found.found["ReLuLayer"].module == "mine"
    assert found.problems["TanhLayer"] == "no class named TanhLayer was found in any .py file of the submission"
    assert found.problems["LogisticSigmoidLayer"].startswith(
        "no class named LogisticSigmoidLayer or LogisticLayer or SigmoidLayer")


def test_import_names_follow_each_import_style(spec):
    rel = discover(SUBMISSIONS / "layout_relative_package", spec)
    assert rel.found["SoftmaxLayer"].module == "framework.layers"
    absolute = discover(SUBMISSIONS / "layout_absolute_import", spec)
    assert absolute.found["SoftmaxLayer"].module == "activations"
    assert absolute.found["SoftmaxLayer"].file == "Activation_Layers/activations.py"
    assert str(SUBMISSIONS / "layout_absolute_import" / "Activation_Layers") in absolute.sys_path
    per_file = discover(SUBMISSIONS / "layout_one_class_per_file", spec)
    assert per_file.found["SoftmaxLayer"].module == "SoftmaxLayer"
    assert "train" not in per_file.modules  # the training script is never imported


def test_root_level_relative_imports_make_the_folder_a_package(tmp_path, spec):
    root = tmp_path / "hw"
    root.mkdir()
    (root / "Layer.py").write_text("class Layer:\n    pass\n")
    (root / "softmax.py").write_text("from .Layer import Layer\nclass SoftmaxLayer(Layer):\n    pass\n")
    found = discover(root, spec)
    assert found.found["SoftmaxLayer"].module == "hw.softmax"
    assert found.sys_path_last == [str(tmp_path)]


def test_syntax_error_is_located_and_costs_only_its_classes(spec):
    found = discover(SUBMISSIONS / "broken_syntax_error", spec)
    assert found.syntax_errors == {"SoftmaxLayer.py": "SoftmaxLayer.py, line 16: expected ':'"}
    assert found.problems["SoftmaxLayer"] == "syntax error in SoftmaxLayer.py, line 16: expected ':'"
    assert "TanhLayer" in found.found


def test_duplicate_prefers_the_file_named_after_the_class(tmp_path, spec):
    (tmp_path / "other").mkdir()  # not a folder set aside (old/, not_used/): that is the next test's
    (tmp_path / "other" / "stuff.py").write_text("class SoftmaxLayer:\n    pass\n")
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "SoftmaxLayer.py").write_text("class SoftmaxLayer:\n    pass\n")
    found = discover(tmp_path, spec)
    assert found.found["SoftmaxLayer"].file == "layers/SoftmaxLayer.py"
    assert found.warnings == ["SoftmaxLayer is defined 2 times (layers/SoftmaxLayer.py:1, other/stuff.py:1); graded the one in layers/SoftmaxLayer.py:1"]


def test_copy_refuses_what_is_not_a_submission(tmp_path):
    with pytest.raises(SubmissionError, match="no such file or folder"):
        copy_submission(tmp_path / "nope", tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SubmissionError, match=r"a submission is a folder, a .py file, a notebook \(.ipynb\) or a .zip"):
        copy_submission(tmp_path / "notes.txt", tmp_path / "w")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(SubmissionError, match="not a readable zip file"):
        copy_submission(tmp_path / "bad.zip", tmp_path / "w")


def test_zip_paths_cannot_escape_the_copy(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../escaped.py", "x = 1")
        z.writestr("/abs.py", "x = 1")
        z.writestr("ok/fine.py", "x = 1")
    dest = copy_submission(archive, tmp_path / "work")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.py")) == ["ok/fine.py"]
    assert not (tmp_path / "escaped.py").exists()


def test_submission_names():
    assert submission_name(Path("/x/alice.zip")) == "alice"
    assert submission_name(Path("/x/bob.py")) == "bob"
    assert submission_name(Path("/x/carol/")) == "carol"


DEEP = {"unary minus": "x = " + "-" * 100000 + "1\n", "not": "x = " + "not " * 100000 + "1\n", "sum": "x = " + "1+" * 100000 + "1\n",
        "attributes": "x = " + "a." * 100000 + "b\n", "calls": "x = f" + "()" * 100000 + "\n", "lambdas": "x = " + "lambda: " * 100000 + "1\n",
        "over lines": "x = (" + "-\n" * 100000 + "1)\n", "subscripts": "x = a" + "[0]" * 100000 + "\n"}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_an_expression_too_deep_to_parse_is_not_parsed(kind):
    with pytest.raises(NotParsed, match="an expression nested more than 500 levels deep"):
        parse_source(DEEP[kind].encode())


def test_the_depth_estimate_passes_real_code_and_wide_literals():
    from grader.paths import reference_dir

    for path in [*Path(reference_dir()).rglob("*.py"), *SUBMISSIONS.rglob("*.py")]:
        assert nesting(path.read_bytes()) < 50, path
    wide = "W = [" + ", ".join(f"[{-i}.5, {i}e-3]" for i in range(20000)) + "]\nS = '" + "-" * 100000 + "'  # " + "-" * 1000 + "\n"
    assert parse_source(wide) is not None and nesting(wide.encode()) <= 4


def test_a_file_the_parser_cannot_hold_is_a_note_and_costs_only_its_classes(tmp_path, spec):
    (tmp_path / "mine.py").write_text("class TanhLayer:\n    pass\n")
    (tmp_path / "deep.py").write_text("class SoftmaxLayer:\n    pass\n\n" + DEEP["unary minus"])
    found = discover(tmp_path, spec)
    assert "TanhLayer" in found.found and "SoftmaxLayer" not in found.found
    assert found.problems["SoftmaxLayer"] == "deep.py was not read: an expression nested more than 500 levels deep"
    assert found.warnings == ["deep.py: not read: an expression nested more than 500 levels deep; the classes found in the other files are graded"]
    assert found.syntax_errors == {}


def test_a_notebook_too_deep_is_left_out_with_a_note_and_its_other_cells_read(tmp_path, spec):
    cell = lambda text: {"cell_type": "code", "metadata": {}, "outputs": [], "source": text}  # noqa: E731
    (tmp_path / "hw.ipynb").write_text(json.dumps({"cells": [cell(DEEP["sum"]), cell("class TanhLayer:\n    pass\n")]}))
    (tmp_path / "deep.ipynb").write_text('{"cells": ' + "[" * 50000 + "]" * 50000 + "}")
    found = discover(tmp_path, spec)
    assert found.found["TanhLayer"].cell == ("hw.ipynb", 2)
    assert found.warnings == ["deep.ipynb: not read: its JSON is nested more than 100 levels deep; left out",
                              "hw.ipynb: code cell 1 not read: an expression nested more than 500 levels deep; left out"]


def test_a_notebook_alone_is_a_submission(tmp_path):
    (tmp_path / "hw2.ipynb").write_text('{"cells": []}')
    dest = copy_submission(tmp_path / "hw2.ipynb", tmp_path / "work")
    assert dest.name == "hw2" and (dest / "hw2.ipynb").read_text() == '{"cells": []}'
    assert submission_name(tmp_path / "hw2.ipynb") == "hw2"


@pytest.mark.parametrize("name", ["random", "code", "numpy", "grader"])
def test_a_folder_named_like_a_module_the_grader_has_is_still_the_submissions_package(tmp_path, name, spec):
    """A package-relative submission in `random/` imported `random.layers` from the standard library's
    `random`: every item an import error. Its copy gets a name no module has; the result keeps its own."""
    from grader.grade import grade_submission
    from grader.intake.submission import import_folder_name
    from grader.paths import reference_dir

    assert import_folder_name(name) == f"{name}_submission"
    assert import_folder_name("hw2") == "hw2" and import_folder_name("my work") == "my_work"
    folder = tmp_path / name
    shutil.copytree(reference_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert "from ." in (folder / "__init__.py").read_text()  # package-relative, as the failing case was
    result = grade_submission(folder, spec=spec, sandbox="process")
    assert result.submission == name
    assert result.score == result.max_score, [(i.name, i.reason) for i in result.items if i.score < i.max_score]


def test_copies_in_a_folder_set_aside_are_graded_only_where_nothing_else_has_the_class(tmp_path, spec):
    """whood23: the work's `FullyConnected` (a variant of the name) in hw5_layers.py, and older copies with
    the exact name under not_used/: the exact name won, and the set-aside copies were graded."""
    root = tmp_path / "hw"
    (root / "not_used").mkdir(parents=True)
    (root / "Old").mkdir()
    (root / "hw5_layers.py").write_text("class FullyConnected:\n    pass\n")
    (root / "not_used" / "draft.py").write_text("class FullyConnectedLayer:\n    pass\nclass TanhLayer:\n    pass\n")
    (root / "Old" / "v1.py").write_text("class SoftmaxLayer:\n    pass\n")
    (root / "backup_notes.py").write_text("class ReLuLayer:\n    pass\n")  # a file's own name sets nothing aside
    found = discover(root, spec)
    assert found.found["FullyConnectedLayer"].file == "hw5_layers.py"
    assert found.found["TanhLayer"].file == "not_used/draft.py"  # nothing else has it: the set-aside copy is graded
    assert found.found["SoftmaxLayer"].file == "Old/v1.py"
    assert found.found["ReLuLayer"].file == "backup_notes.py"
    assert [w for w in found.warnings if "set aside" in w] == [
        "copies in folders set aside were not graded: not_used/draft.py (the classes in the other files were)"]
    assert "FullyConnectedLayer" not in found.problems
