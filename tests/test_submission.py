"""Static discovery: classes found by ast, import names from import styles, problems named."""
import zipfile
from pathlib import Path

import pytest

from grader.exceptions import SubmissionError
from grader.intake.submission import copy_submission, discover, submission_name

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
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "stuff.py").write_text("class SoftmaxLayer:\n    pass\n")
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "SoftmaxLayer.py").write_text("class SoftmaxLayer:\n    pass\n")
    found = discover(tmp_path, spec)
    assert found.found["SoftmaxLayer"].file == "layers/SoftmaxLayer.py"
    assert found.warnings == ["SoftmaxLayer is defined 2 times (layers/SoftmaxLayer.py:1, old/stuff.py:1); graded the one in layers/SoftmaxLayer.py:1"]


def test_copy_refuses_what_is_not_a_submission(tmp_path):
    with pytest.raises(SubmissionError, match="no such file or folder"):
        copy_submission(tmp_path / "nope", tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SubmissionError, match="a submission is a folder, a .py file or a .zip"):
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
