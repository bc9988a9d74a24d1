"""Real submissions' shapes (tests/fixtures/submissions/real_*): each correct one scores 100, each
planted bug costs exactly its item, in both sandboxes; and the pieces that make it so."""
import json

import pytest

from grader.grade import grade_submission
from grader.sandbox import Limits, bwrap_available
from grader.assignment.spec import load_spec, parse_spec
from grader.intake.submission import discover, normalised

from test_grade import SUBMISSIONS

REFERENCE = SUBMISSIONS.parent.parent.parent / "reference"

LIMITS = Limits(call_timeout=2.0, total_timeout=120.0)
SANDBOXES = ["process"] + (["bwrap"] if bwrap_available() else [])
ELEMENTWISE_BACKWARDS = {f"{c}.backward" for c in ("LinearLayer", "ReLuLayer", "LogisticSigmoidLayer", "TanhLayer")}
SOFTMAX = {f"SoftmaxLayer.{m}" for m in ("forward", "gradient", "backward")}
# fixture -> {item: status} of the items that lose points; every other item keeps full marks
EXPECTED = {
    "real_package": {},
    "real_one_module": {},
    "real_notebook": {},
    "real_type_guards": {},  # isinstance(X, pd.DataFrame), scipy.sparse.issparse(Y), torch.is_tensor(X): all answer no
    "real_package_bug": {"LogisticSigmoidLayer.forward": "error"},        # uses scipy's expit in forward
    "real_names_bug": {"SoftmaxLayer.gradient": "failed"},
    "real_constructor_bug": {"FullyConnectedLayer.forward": "failed"},
    "real_lists_bug": {"SquaredError.gradient": "failed"},
    "real_base_class_bug": {n: "failed" for n in ELEMENTWISE_BACKWARDS},  # the shared default backward
    "real_notebook_bug": {"LogisticSigmoidLayer.gradient": "failed"},
    "real_names_ambiguous": {n: "missing" for n in SOFTMAX},
    "real_names_near_miss": {n: "missing" for n in SOFTMAX},
}


@pytest.fixture(scope="module")
def graded():
    cache = {}

    def get(name, sandbox="process"):
        if (name, sandbox) not in cache:
            cache[(name, sandbox)] = grade_submission(SUBMISSIONS / name, sandbox=sandbox, limits=LIMITS)
        return cache[(name, sandbox)]
    return get


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_real_shapes_cost_exactly_their_bug(fixture, sandbox, graded):
    result = graded(fixture, sandbox)
    for item in result.items:
        if item.max_score == 0:
            continue
        if item.name in EXPECTED[fixture]:
            assert item.status == EXPECTED[fixture][item.name] and item.score == 0, f"{item.name}: {item.feedback}"
        else:
            assert item.score == item.max_score, f"{item.name} lost points: {item.feedback}"
    assert not [e for e in result.errors if "internal error" in e]


def test_unused_imports_become_placeholders_and_are_listed(graded):
    result = graded("real_package")
    assert [p["package"] for p in result.placeholders] == ["matplotlib", "pandas", "scipy", "tqdm", "seaborn", "numba"]
    assert result.placeholders[0] == {"package": "matplotlib", "module": "matplotlib", "file": "Layer.py", "line": "2"}
    assert "train" not in " ".join(p["file"] for p in result.placeholders)  # the training script is never run


def test_a_graded_method_that_needs_a_missing_package_says_which_and_where(graded):
    item = graded("real_package_bug").item("LogisticSigmoidLayer.forward")
    assert ("`scipy` is not available while grading (your `activations.py`, line 1, used in `forward`); "
            "the instructor can allow it in the spec's [environment]") in item.feedback


def test_classes_are_graded_as_their_item_and_the_result_says_how(graded):
    result = graded("real_package")
    assert result.item("SoftmaxLayer.forward").graded_as == {
        "class": "SoftmaxActivationLayer", "file": "softmaxActivationLayer.py", "line": 5, "match": "normalised name"}
    assert "`SoftmaxActivationLayer` in `softmaxActivationLayer.py` graded as `SoftmaxLayer`" in result.item("SoftmaxLayer.forward").feedback
    data = result.to_dict()["items"]
    assert next(i for i in data if i["name"] == "CrossEntropy.eval")["graded_as"]["class"] == "CrossEntropyLayer"


def test_constructor_variants_are_recorded(graded):
    result = graded("real_package")
    assert result.item("ReLuLayer.forward").graded_as["constructed"] == "ReluLayer(X)"
    assert result.item("FullyConnectedLayer.forward").graded_as["constructed"] == (
        "without its own constructor: FullyConnected(5, 3, None) raised AttributeError")
    assert "built without its own constructor" in result.item("FullyConnectedLayer.gradient").feedback
    assert "constructed" not in result.item("SoftmaxLayer.forward").graded_as  # SoftmaxActivationLayer() just works


def test_a_notebooks_classes_name_their_cell(graded):
    result = graded("real_notebook")
    assert result.item("TanhLayer.forward").graded_as["notebook"] == "hw2.ipynb"
    assert result.item("TanhLayer.forward").graded_as["cell"] == 9
    assert result.placeholders == [{"package": "matplotlib", "module": "matplotlib", "file": "hw2.ipynb, code cell 1", "line": ""}]


def test_two_candidates_are_reported_not_guessed(graded):
    reason = graded("real_names_ambiguous").item("SoftmaxLayer.forward").reason
    assert reason.startswith("more than one class could be SoftmaxLayer: `Softmax` in softmax_old.py:5, "
                             "`SoftmaxActivationLayer` in softmaxActivationLayer.py:5")


def test_a_missing_class_names_its_near_misses(graded):
    reason = graded("real_names_near_miss").item("SoftmaxLayer.gradient").reason
    assert "near misses: `Sofmax` in softmaxActivationLayer.py:5" in reason


@pytest.mark.parametrize("name, key", [
    ("SoftmaxActivationLayer", "softmax"), ("Softmax", "softmax"), ("CrossEntropyLayer", "crossentropy"),
    ("SquaredErrorLayer", "squarederror"), ("FullyConnected", "fullyconnected"), ("fully_connected_layer", "fullyconnected"),
    ("tanhLayer", "tanh"), ("LogLoss", "log"), ("LogLossFunction", "log"), ("Layer", ""), ("ActivationLayer", ""), ("Loss", ""),
])
def test_normalised_names(name, key):
    assert normalised(name) == key


def test_an_instructor_can_pin_a_class(tmp_path):
    (tmp_path / "a.py").write_text("class Softmax:\n    pass\n\nclass SoftmaxActivation:\n    pass\n")
    data = {"assignment": {}, "classes": {"SoftmaxLayer": {"kind": "softmax", "points": {"forward": 1}, "pin": "a.py:SoftmaxActivation"}}}
    found = discover(tmp_path, parse_spec(data, source="t.toml"))
    assert found.found["SoftmaxLayer"].name == "SoftmaxActivation" and found.found["SoftmaxLayer"].match == "pinned in the spec"
    data["classes"]["SoftmaxLayer"]["pin"] = "b.py:Softmax"
    found = discover(tmp_path, parse_spec(data, source="t.toml"))
    assert "SoftmaxLayer" not in found.found and found.problems["SoftmaxLayer"].startswith("no class named SoftmaxLayer")


def test_a_package_the_spec_allows_must_be_installed():
    from grader.exceptions import SpecError

    data = {"assignment": {}, "environment": {"packages": ["numpy", "surely_not_installed_pkg"]},
            "classes": {"S": {"kind": "softmax", "points": {"forward": 1}}}}
    with pytest.raises(SpecError, match=r"key 'environment.packages': surely_not_installed_pkg cannot be imported where the grader runs"):
        parse_spec(data, source="t.toml")
    assert load_spec().packages == ("numpy",)


def test_notebook_keeps_definitions_and_drops_everything_else(tmp_path):
    from grader.intake.submission import notebook_modules

    cells = [{"cell_type": "code", "source": "import numpy as np\n%timeit 1\nEPS = np.finfo(float).eps\ndata = np.loadtxt('x')\n"},
             {"cell_type": "code", "source": "for i in range(3):\n    print(i)\n"},
             {"cell_type": "code", "source": "def f(x):\n    return x\n"}]
    (tmp_path / "hw.ipynb").write_text(json.dumps({"cells": cells}))
    made = notebook_modules(tmp_path, [])
    text = (tmp_path / "hw.py").read_text()
    assert made == {"hw.py": ("hw.ipynb", [(3, 1), (7, 3)])}
    assert "EPS = np.finfo(float).eps" in text and "def f(x)" in text
    assert "loadtxt" not in text and "print" not in text and "timeit" not in text


def test_an_installed_package_the_spec_does_not_allow_is_a_placeholder_all_the_same(tmp_path, monkeypatch):
    # The finder decides by the spec, not by what is installed: a package that imports fine here
    # is still a placeholder for the student's code, so the verdict is the same on every machine.
    import sys

    from grader.sandbox.untrusted_worker import Placeholder, PlaceholderFinder, PlaceholderUsed

    site, student = tmp_path / "site", tmp_path / "student"
    (site / "fancy").mkdir(parents=True)
    (site / "fancy" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    student.mkdir()
    (student / "hw.py").write_text("import fancy\nfrom fancy import double\n\n\ndef use(x):\n    return double(x) + 1\n")
    monkeypatch.syspath_prepend(str(student))
    monkeypatch.syspath_prepend(str(site))
    finder = PlaceholderFinder(["numpy"], [str(student)], [str(student)])
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    for name in ("fancy", "hw"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import hw

    assert isinstance(hw.double, Placeholder) and finder.created[0] == {"module": "fancy", "file": "hw.py", "line": 1}
    with pytest.raises(PlaceholderUsed):
        hw.use(3)
    import numpy  # an allowed package imports as usual

    assert not isinstance(numpy.ones, Placeholder)


def test_placeholders_absorb_module_level_uses_and_decorators():
    from grader.sandbox.untrusted_worker import Placeholder, PlaceholderUsed

    plt = Placeholder("matplotlib.pyplot", {"module": "matplotlib", "file": "a.py", "line": 1})
    plt.style.use("ggplot")
    with plt.style.context("x"):
        pass
    plt.rcParams["figure.dpi"] = 100

    def f(x):
        return x
    assert plt(f) is f and plt(cache=True)(f) is f  # @jit, @njit(cache=True)
    for use in (lambda: plt.figure() + 1, lambda: float(plt), lambda: list(plt), lambda: bool(plt)):
        with pytest.raises(PlaceholderUsed):
            use()
    import numpy as np

    with pytest.raises(PlaceholderUsed):
        np.exp(plt.cm)


def test_a_librarys_optional_import_of_a_package_not_allowed_finds_nothing_as_under_bubblewrap(tmp_path, monkeypatch):
    # Under bubblewrap only the allowed packages' files are mounted; in the process sandbox the package
    # folders' finders list only their names: a library's `try: import fancy` finds nothing in both,
    # and neither does importlib.machinery.PathFinder, while the student's import_module gets the placeholder.
    import importlib.machinery
    import sys

    from grader.sandbox.untrusted_worker import PlaceholderFinder

    site, student = tmp_path / "site", tmp_path / "student"
    (site / "fancy").mkdir(parents=True)
    (site / "fancy" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    (site / "libby.py").write_text("try:\n    import fancy\nexcept ImportError:\n    fancy = None\n")
    student.mkdir()
    (student / "hw.py").write_text("import importlib\nfancy = importlib.import_module('fancy')\n")
    monkeypatch.syspath_prepend(str(student))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    finder = PlaceholderFinder(["numpy", "libby"], [str(student)], [str(student)])
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    for name in ("fancy", "hw", "libby"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    finder.hide_unlisted()
    import libby

    assert libby.fancy is None and "fancy" not in sys.modules
    assert importlib.machinery.PathFinder.find_spec("fancy") is None
    assert importlib.machinery.PathFinder.find_spec("libby") is not None
    import hw

    assert isinstance(hw.fancy, finder.module_type) and finder.created == [{"module": "fancy", "file": "hw.py", "line": 2}]


def test_placeholders_used_as_types_and_predicates_answer_no():
    import numpy as np

    from grader.sandbox.untrusted_worker import Placeholder, PlaceholderUsed

    pd = Placeholder("pandas", {"module": "pandas", "file": "a.py", "line": 1})
    sp = Placeholder("scipy", {"module": "scipy", "file": "a.py", "line": 2})
    X = np.ones((2, 3))
    assert not isinstance(X, pd.DataFrame) and not isinstance(X, (pd.DataFrame, pd.Series))
    assert isinstance(X, (np.ndarray, pd.DataFrame)) and isinstance(X, np.ndarray | pd.DataFrame)
    assert isinstance(None, pd.DataFrame | None) and not issubclass(type(X), pd.DataFrame)
    assert type(X) != pd.DataFrame and not type(X) == pd.DataFrame  # noqa: E721
    assert sp.sparse.issparse(X) is False and sp.sparse.isspmatrix_csr(X) is False
    assert pd.api.types.is_numeric_dtype(X) is False and pd.api.types.is_list_like(X) is False
    torch = Placeholder("torch", {"module": "torch", "file": "a.py", "line": 3})
    assert torch.is_tensor(X) is False
    for computes in (lambda: bool(torch.isnan(X)), lambda: float(pd.isna(X)), lambda: sp.special.expit(X) + 1):
        with pytest.raises(PlaceholderUsed):
            computes()


NUMERICAL = {"numeric_complex_step": ["complex"], "numeric_finite_differences": ["own-forward"]}
NUMERICAL_ITEMS = {f"{c}.{m}" for c in ("LogisticSigmoidLayer", "TanhLayer") for m in ("gradient", "backward")}


@pytest.mark.parametrize("sandbox", SANDBOXES)
@pytest.mark.parametrize("fixture", sorted(NUMERICAL))
def test_a_gradient_computed_numerically_gets_full_marks_and_a_note(fixture, sandbox, graded):
    # Complex step (Im f(z + ih)/h) and central differences of the layer's own forward: the numbers are
    # right, so full marks; the instructor sees on each such item that no rule was derived.
    from grader.outputs.writers import gradescope_json

    result = graded(fixture, sandbox)
    tests = {t["name"]: t["output"] for t in json.loads(gradescope_json(result))["tests"]}
    for item in result.items:
        assert item.score == item.max_score, f"{item.name}: {item.feedback}"
        if item.name in NUMERICAL_ITEMS:
            assert item.graded_as.get("numeric") == NUMERICAL[fixture], item.name
            assert "computed its answer numerically" in item.graded_as_text and "computed its answer numerically" in tests[item.name]
        else:
            assert "numeric" not in item.graded_as, item.name
    instructors = [t for t in json.loads(gradescope_json(result))["tests"] if t["name"].startswith("Gradients computed numerically")]
    assert len(instructors) == 1 and instructors[0]["visibility"] == "hidden", instructors
    assert all(name in instructors[0]["output"].replace("\\", "") for name in NUMERICAL_ITEMS), instructors[0]["output"]


def test_the_reference_computes_no_gradient_numerically():
    result = grade_submission(REFERENCE, limits=LIMITS, sandbox="process")
    assert result.score == result.max_score and not [i.name for i in result.items if "numeric" in i.graded_as]
    from grader.outputs.writers import gradescope_json

    assert not [t for t in json.loads(gradescope_json(result))["tests"] if "numerically" in t["name"]]


def test_the_numerical_note_is_in_the_report_and_the_class_summary(graded, tmp_path):
    from grader.outputs.html_report import render_report, render_summary

    result = graded("numeric_finite_differences")
    assert "computed its answer numerically (by calling its own forward/eval" in render_report(result)
    assert render_summary([result]).count('title="computed its answer numerically') == 4
