"""The `cnn` spec and its image kinds (convolution, max_pool, flatten): built-in specs by name,
named mistakes that lose exactly their item, answers that did no work, real shapes driven by signature.

Each mistake is reference/cnn.py with one realistic edit (`MISTAKES`: the text replaced must be
there, so a change of the reference that voids a fixture fails loudly); they are graded with a
spec of the three image classes only (tests/fixtures/cnn_only.toml: the cnn spec's own tables).
"""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from grader.admin_cli import main as admin
from grader.assignment.spec import load_spec, spec_path
from grader.assignment.specs import BUILT_IN, built_in_path
from grader.exceptions import SpecError
from grader.grade import grade_submission
from grader.paths import reference_dir, template_dir
from grader.sandbox import Limits

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(call_timeout=5.0, total_timeout=120.0)
IMAGE_ITEMS = ["ConvolutionalLayer.forward", "ConvolutionalLayer.backward", "ConvolutionalLayer.updateWeights",
               "MaxPoolLayer.forward", "MaxPoolLayer.backward", "FlatteningLayer.forward", "FlatteningLayer.backward"]


@pytest.fixture(scope="module")
def cnn_only(tmp_path_factory):
    """The cnn spec's image classes alone (their tables copied from the built-in spec)."""
    text = built_in_path("cnn").read_text()
    tables = text[text.index("[classes.ConvolutionalLayer]"):text.index("# ----", text.index("[classes.ConvolutionalLayer]"))]
    path = tmp_path_factory.mktemp("spec") / "cnn_only.toml"
    path.write_text('[assignment]\nname = "cnn-only"\n\n' + tables)
    return load_spec(path)


def submission(dest: Path, edits=(), extra="") -> Path:
    """reference/cnn.py as a student's cnn_layers.py (with the course's Layer.py), `edits` applied."""
    dest.mkdir(parents=True)
    shutil.copy(template_dir() / "Layer.py", dest / "Layer.py")
    text = (reference_dir() / "cnn.py").read_text().replace("from .layer import Layer", "from Layer import Layer")
    for old, new in edits:
        assert old in text, f"the fixture's edit no longer applies: {old!r}"
        text = text.replace(old, new)
    (dest / "cnn_layers.py").write_text(text + extra)
    return dest


def grade(path, spec):
    return grade_submission(path, spec=spec, sandbox="process", limits=LIMITS)


def items(result):
    return {i.name: i for i in result.items}


# ----------------------------------------------------------------------------- built-in specs by name


def test_built_in_specs_load_by_name_and_a_file_wins(tmp_path, monkeypatch):
    assert load_spec("cnn").name == "cs615-cnn" and load_spec("default").name == load_spec().name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnn").write_text('[assignment]\nname = "mine"\n[classes.X]\nkind = "flatten"\npoints = { forward = 1 }\n')
    assert load_spec("cnn").name == "mine"  # a file of that name is the instructor's own
    with pytest.raises(SpecError, match="nor a built-in spec .built-in: default, cnn"):
        load_spec("cnnn")


def test_grade_admin_lists_prints_and_writes_built_in_specs(tmp_path):
    listed = CliRunner().invoke(admin, ["spec", "--list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILT_IN)
    assert "ConvolutionalLayer" in lines[1] and "127 points" in lines[1] and "100 points" in lines[0]
    printed = CliRunner().invoke(admin, ["spec", "cnn"])
    assert printed.exit_code == 0 and printed.output == built_in_path("cnn").read_text()
    written = CliRunner().invoke(admin, ["spec", "cnn", str(tmp_path / "hw5.toml")])
    assert written.exit_code == 0 and load_spec(tmp_path / "hw5.toml").max_score == 127
    assert CliRunner().invoke(admin, ["spec", "nope", str(tmp_path / "x.toml")]).exit_code == 2


def test_the_kit_of_a_spec_hands_out_its_own_stubs_only(tmp_path):
    assert CliRunner().invoke(admin, ["kit", str(tmp_path / "kit_cnn"), "--spec", "cnn"]).exit_code == 0
    assert CliRunner().invoke(admin, ["kit", str(tmp_path / "kit_default")]).exit_code == 0
    assert (tmp_path / "kit_cnn" / "my_work" / "cnn_layers.py").is_file()
    assert not (tmp_path / "kit_default" / "my_work" / "cnn_layers.py").exists()
    assert load_spec(tmp_path / "kit_cnn" / "grader" / "assignment" / "specs" / "default.toml").name == "cs615-cnn"
    zipped = CliRunner().invoke(admin, ["autograder", str(tmp_path / "ag.zip"), "--spec", "cnn"])
    assert zipped.exit_code == 0
    import zipfile
    assert b'name = "cs615-cnn"' in zipfile.ZipFile(tmp_path / "ag.zip").read("spec.toml")


def test_spec_path_resolves_names_and_files(tmp_path):
    assert spec_path("cnn") == built_in_path("cnn") and spec_path(None).name == "default.toml"
    assert spec_path(tmp_path / "missing.toml") == tmp_path / "missing.toml"  # load_spec says "no such file"


def test_reference_scores_full_marks_and_template_nothing_with_the_cnn_spec():
    spec = load_spec("cnn")
    ref = grade(reference_dir(), spec)
    assert ref.score == ref.max_score == 127, [(i.name, i.score) for i in ref.items if i.score < i.max_score]
    assert not ref.errors
    template = grade(template_dir(), spec)
    assert template.score == 0
    assert all(items(template)[n].status == "not_implemented" for n in IMAGE_ITEMS)


def test_the_default_spec_grades_exactly_as_before():
    spec = load_spec()
    assert "ConvolutionalLayer" not in spec.classes and spec.max_score == 100
    assert {c.kind for c in spec.classes.values()} == {"objective", "input", "fully_connected", "elementwise", "softmax"}


# ----------------------------------------------------------------------------- the truth


def test_sympy_truth_is_the_rule_the_course_writes():
    from grader.truth import convolution as truth

    rng = np.random.default_rng(3)
    X, K, G = rng.normal(size=(6, 5)), rng.normal(size=(3, 2)), rng.normal(size=(4, 4))
    assert np.allclose(truth.forward(X, K), truth.correlate(X, K))
    assert np.allclose(truth.input_gradient(X.shape, K, G), truth.correlate(truth.padded(G, 3, 2), np.rot90(K, 2)))
    assert np.allclose(truth.kernel_gradient(X, K.shape, G), truth.correlate(X, G))
    # and with central differences of J = Σ G∘Y
    h, J = 1e-6, lambda X_, K_: np.sum(G * truth.correlate(X_, K_))
    E = np.zeros_like(K); E[1, 0] = h
    assert np.isclose((J(X, K + E) - J(X, K - E)) / (2 * h), truth.kernel_gradient(X, K.shape, G)[1, 0])


def test_cnn_rules_are_shown_in_index_form():
    from grader.truth.rules import rules_for

    rules = rules_for(load_spec("cnn").classes["ConvolutionalLayer"])
    assert set(rules) == {"forward", "backward", "updateWeights"}
    assert "X[a + i, b + j]*K[a, b]" in rules["forward"].plain.replace(" ", "").replace("·", "*") or "K[a, b]" in rules["forward"].plain
    assert rules["backward"].latex and "rot180" in rules["backward"].text


# ----------------------------------------------------------------------------- named mistakes

# fixture -> (edits to reference/cnn.py, {item lost: diagnosis named}); every other image item keeps full marks.
MISTAKES = {
    "conv_forward_flipped": ([("out = _each(lambda x: _correlate(x, self.kernel), dataIn)",
                               "out = _each(lambda x: _correlate(x, np.rot90(self.kernel, 2)), dataIn)")],
                             {"ConvolutionalLayer.forward": "a convolution (kernel flipped)"}),
    "conv_dK_operands_swapped": ([("dJdK = _each(_correlate, self.getPrevIn(), gradIn)",
                                   "dJdK = _each(lambda x, g: np.rot90(_correlate(x, g), 2), self.getPrevIn(), gradIn)")],
                                 {"ConvolutionalLayer.updateWeights": "operands swapped"}),
    "conv_dK_from_output": ([("dJdK = _each(_correlate, self.getPrevIn(), gradIn)",
                              "dJdK = _each(_correlate, self.getPrevOut(), gradIn)")],
                            {"ConvolutionalLayer.updateWeights": "from the output Y"}),
    "conv_backward_not_turned": ([("turned = np.rot90(self.kernel, 2)", "turned = self.kernel")],
                                 {"ConvolutionalLayer.backward": "without the 180° turn"}),
    "conv_backward_not_padded": ([("_correlate(np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1))), turned)", "_correlate(g, turned)")],
                                 {"ConvolutionalLayer.backward": "without zero padding"}),
    "conv_backward_returns_dK": ([("        return _each(lambda g: _correlate(np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1))), turned), gradIn)",
                                   "        return _each(_correlate, self.getPrevIn(), gradIn)")],
                                 {"ConvolutionalLayer.backward": "kernel's gradient"}),
    "pool_spread_over_window": ([("out[r + a, c + b] += g[index]", "out[r:r + p, c:c + p] += g[index]")],
                                {"MaxPoolLayer.backward": "spread over the whole window"}),
    "pool_first_position": ([("out[r + a, c + b] += g[index]", "out[r, c] += g[index]")],
                            {"MaxPoolLayer.backward": "first position"}),
    "pool_backward_stride_mismatch": ([("        for index, r, c in self._windows(x.shape):\n            a, b",
                                        "        for index, r, c in [((i, j), i * p, j * p) for i in range((x.shape[0] - p) // p + 1)"
                                        " for j in range((x.shape[1] - p) // p + 1) if i < g.shape[0] and j < g.shape[1]]:\n            a, b")],
                                      {"MaxPoolLayer.backward": "stride mismatch"}),
    "pool_shared_maxima_overwrite": ([("out[r + a, c + b] += g[index]", "out[r + a, c + b] = g[index]")],
                                     {"MaxPoolLayer.backward": "overwrites"}),
    "pool_shared_maxima_first_only": ([("out[r + a, c + b] += g[index]", "out[r + a, c + b] = out[r + a, c + b] or g[index]")],
                                      {"MaxPoolLayer.backward": "only the first window's gradient"}),
    "flatten_backward_other_order": ([("return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))",
                                       "return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()), order='F')")],
                                     {"FlatteningLayer.backward": "does not undo forward"}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, cnn_only):
    cache = {}

    def get(name, edits=None, extra=""):
        if name not in cache:
            folder = submission(tmp_path_factory.mktemp(name) / name, MISTAKES[name][0] if edits is None else edits, extra)
            cache[name] = grade(folder, cnn_only)
        return cache[name]
    return get


@pytest.mark.parametrize("fixture", sorted(MISTAKES))
def test_each_named_mistake_loses_exactly_its_item(fixture, graded):
    result = graded(fixture)
    lost = MISTAKES[fixture][1]
    by_name = items(result)
    for name in IMAGE_ITEMS:
        item = by_name[name]
        if name in lost:
            assert item.score < item.max_score, name
            diagnoses = [c.diagnosis or "" for c in item.checks if not c.passed]
            assert any(lost[name] in d for d in diagnoses), (name, diagnoses, [c.message for c in item.checks])
        else:
            assert item.score == item.max_score, (fixture, name, [(c.name, c.message) for c in item.checks if not c.passed])
    assert not result.errors


def test_column_major_flattening_undone_by_its_own_backward_is_right(graded):
    result = graded("flatten_column_major", edits=[
        ("out = dataIn.reshape(1 if dataIn.ndim == 2 else dataIn.shape[0], -1)",
         "out = np.stack([x.ravel(order='F') for x in (dataIn if dataIn.ndim == 3 else dataIn[None])])"),
        ("return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))",
         "s = np.shape(self.getPrevIn())\n        return np.stack([g.reshape(s[-2:], order='F') for g in np.asarray(gradIn, dtype=float).reshape(-1, s[-2] * s[-1])]).reshape(s)")])
    by_name = items(result)
    assert by_name["FlatteningLayer.forward"].score == by_name["FlatteningLayer.forward"].max_score
    assert by_name["FlatteningLayer.backward"].score == by_name["FlatteningLayer.backward"].max_score
    assert "column-major" in by_name["FlatteningLayer.backward"].checks[0].note


def test_pooling_ties_take_any_maximum_position(graded):
    # the last maximum of a window instead of the first: as right as np.argmax's first
    result = graded("pool_last_maximum", edits=[
        ("a, b = np.unravel_index(np.argmax(x[r:r + p, c:c + p]), (p, p))",
         "w = x[r:r + p, c:c + p]\n            a, b = np.unravel_index(w.size - 1 - np.argmax(w.ravel()[::-1]), (p, p))")])
    item = items(result)["MaxPoolLayer.backward"]
    assert item.score == item.max_score


def test_no_double_penalty_backward_judged_on_the_graders_kernel_and_stored_input(graded):
    # forward returns garbage; backward and updateWeights work from the kernel and the stored input
    result = graded("conv_forward_garbage", edits=[
        ("        self.setPrevOut(out)\n        return out\n\n    def gradient(self):\n        \"\"\"Not used",
         "        self.setPrevOut(out)\n        return out * 0 + 1\n\n    def gradient(self):\n        \"\"\"Not used")])
    by_name = items(result)
    assert by_name["ConvolutionalLayer.forward"].score == 0
    for name in ("ConvolutionalLayer.backward", "ConvolutionalLayer.updateWeights"):
        assert by_name[name].score == by_name[name].max_score


# ----------------------------------------------------------------------------- only work earns points

TRIVIAL = {"zeros": "np.zeros_like(np.asarray(out, dtype=float))", "ones": "np.ones_like(np.asarray(out, dtype=float))",
           "echo": "args[0]", "random": "np.random.default_rng().random(np.shape(out))"}
KERNEL_AFTER = {"zeros": "np.zeros_like(self.kernel)", "ones": "np.ones_like(self.kernel)", "echo": "self.kernel",
                "random": "np.random.default_rng().random(self.kernel.shape)"}


@pytest.mark.parametrize("kind", sorted(TRIVIAL))
def test_answers_that_did_no_work_earn_nothing(kind, tmp_path, cnn_only):
    extra = f"""

for _cls in (ConvolutionalLayer, MaxPoolLayer, FlatteningLayer):
    for _name in ("forward", "backward"):
        def _make(real):
            def trivial(self, *args):
                out = real(self, *args)
                return {TRIVIAL[kind]}
            return trivial
        setattr(_cls, _name, _make(getattr(_cls, _name)))

def _update(self, gradIn, eta):
    self.kernel = {KERNEL_AFTER[kind]}
ConvolutionalLayer.updateWeights = _update
"""
    result = grade(submission(tmp_path / kind, extra=extra), cnn_only)
    earned = {i.name: i.score for i in result.items if i.score > 0}
    assert earned == {}, earned
    from grader.kinds import CHECK_TABLE  # every check of the image kinds ran against the trivial answer

    seen = {(cnn_only.classes[i.name.split(".")[0]].kind, i.name.split(".")[1], c.name) for i in result.items for c in i.checks}
    assert seen == {(k, m, c.name) for (k, m), checks in CHECK_TABLE.items() for c in checks
                    if k in ("convolution", "max_pool", "flatten")}


def test_a_flattening_backward_that_returns_its_stored_input_earns_nothing(graded):
    """backward(gradIn) returning the input forward stored ignores gradIn: backward(forward(X)) is X all the
    same, so `undoes_forward` unflattens another image (flattened in the student's order). Before: 1.0/2.0."""
    result = graded("flatten_backward_stored_input", edits=[
        ("return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))", "return self.getPrevIn()")])
    by_name = items(result)
    item = by_name["FlatteningLayer.backward"]
    assert item.score == 0 and item.status == "failed"
    assert [c.name for c in item.checks if not c.passed] == ["values", "undoes_forward"]
    assert all(by_name[n].score == by_name[n].max_score for n in IMAGE_ITEMS if n != "FlatteningLayer.backward")


MEMOISED_FORWARD = {  # forward computes on its first call only and answers that again after (a stale cache)
    "ConvolutionalLayer.forward": ("        out = _each(lambda x: _correlate(x, self.kernel), dataIn)",
                                   "        if not hasattr(self, '_memo'):\n            self._memo = _each(lambda x: _correlate(x, self.kernel), dataIn)\n"
                                   "        out = self._memo"),
    "MaxPoolLayer.forward": ("        out = _each(self._pool, dataIn)",
                             "        if not hasattr(self, '_memo'):\n            self._memo = _each(self._pool, dataIn)\n        out = self._memo"),
    "FlatteningLayer.forward": ("        out = dataIn.reshape(1 if dataIn.ndim == 2 else dataIn.shape[0], -1)",
                                "        if not hasattr(self, '_memo'):\n            self._memo = dataIn.reshape(1 if dataIn.ndim == 2 else dataIn.shape[0], -1)\n"
                                "        out = self._memo"),
}


MEMOISED_FORWARD.update({  # backward and the kernel step likewise
    "ConvolutionalLayer.backward": ("        return _each(lambda g: _correlate(np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1))), turned), gradIn)",
                                    "        if not hasattr(self, '_memo'):\n            self._memo = _each(lambda g: _correlate(np.pad(g, ((kh - 1, kh - 1), "
                                    "(kw - 1, kw - 1))), turned), gradIn)\n        return self._memo"),
    "ConvolutionalLayer.updateWeights": ("        dJdK = _each(_correlate, self.getPrevIn(), gradIn)\n",
                                         "        if not hasattr(self, '_memo'):\n            self._memo = _each(_correlate, self.getPrevIn(), gradIn)\n"
                                         "        dJdK = self._memo\n"),
    "MaxPoolLayer.backward": ("        return _each(self._route, self.getPrevIn(), np.asarray(gradIn, dtype=float))",
                              "        if not hasattr(self, '_memo'):\n            self._memo = _each(self._route, self.getPrevIn(), np.asarray(gradIn, dtype=float))\n"
                              "        return self._memo"),
    "FlatteningLayer.backward": ("        return np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))",
                                 "        if not hasattr(self, '_memo'):\n            self._memo = np.asarray(gradIn, dtype=float).reshape(np.shape(self.getPrevIn()))\n"
                                 "        return self._memo"),
})


@pytest.mark.parametrize("lost", sorted(MEMOISED_FORWARD))
def test_a_method_that_answers_its_first_call_again_earns_nothing(lost, graded):
    """Every check built a new layer and called each method once: a method keeping its first answer got full
    marks (before: 127/127). The value checks call it once first (forward on another image; backward and the
    step with another gradIn, after which forward(X) again and the kernel set back) and judge the second call."""
    result = graded(f"memoised_{lost}", edits=[MEMOISED_FORWARD[lost]])
    by_name = items(result)
    item = by_name[lost]
    assert item.score == 0 and item.status == "failed"
    value_checks = [c for c in item.checks if not c.name.endswith("_not_mutated") and c.name != "ties"]
    assert value_checks and all(not c.passed and c.diagnosis.code == "image.first_answer_again" for c in value_checks)
    assert all(by_name[n].score == by_name[n].max_score for n in IMAGE_ITEMS if n != lost)


# ----------------------------------------------------------------------------- real shapes, driven by signature

REAL_SHAPE = '''
import numpy as np


class ConvolutionalLayer:
    """(k, n) constructor, kernels in an attribute (n×k×k), batches N×H×W, updateKernels(G, lr)."""

    def __init__(self, k, n, adam=False):
        self.kernel = np.random.rand(n, k, k)

    def forward(self, X):
        self.X = X
        k = self.kernel.shape[1]
        return np.array([[[np.sum(x[i:i + k, j:j + k] * K) for j in range(x.shape[1] - k + 1)]
                          for i in range(x.shape[0] - k + 1)] for x in X for K in self.kernel])

    def backward(self, G):
        k = self.kernel.shape[1]
        out = np.zeros_like(self.X)
        for n, g in enumerate(G):
            for i in range(g.shape[0]):
                for j in range(g.shape[1]):
                    out[n, i:i + k, j:j + k] += g[i, j] * self.kernel[0]
        return out

    def updateKernels(self, G, lr):
        k = self.kernel.shape[1]
        dK = sum(np.array([[np.sum(x[a:a + g.shape[0], b:b + g.shape[1]] * g) for b in range(k)] for a in range(k)])
                 for x, g in zip(self.X, G))
        self.kernel = self.kernel - lr * dK
'''


def test_a_real_shape_is_driven_by_signature_and_recorded(tmp_path, cnn_only):
    folder = tmp_path / "real"
    folder.mkdir()
    (folder / "ConvolutionalLayer.py").write_text(REAL_SHAPE)
    result = grade(folder, cnn_only)
    by_name = items(result)
    for name in ("ConvolutionalLayer.forward", "ConvolutionalLayer.backward", "ConvolutionalLayer.updateWeights"):
        assert by_name[name].score == by_name[name].max_score, [(c.name, c.message) for c in by_name[name].checks if not c.passed]
    driven = by_name["ConvolutionalLayer.forward"].graded_as["driven"]
    assert driven == "built as ConvolutionalLayer(3, 1); kernel set by its attribute kernel (no setter); images passed as 1×H×W batches of one"


def test_a_shape_that_cannot_be_driven_is_not_gradable_never_wrong(tmp_path, cnn_only):
    folder = tmp_path / "adam_after_backward"
    folder.mkdir()
    (folder / "conv.py").write_text(REAL_SHAPE.replace("def updateKernels(self, G, lr):", "def updateKernels(self, lr):\n        G = self.X")
                                    .replace("dK = sum(", "dK = 0 * sum("))
    result = grade(folder, cnn_only)
    item = items(result)["ConvolutionalLayer.updateWeights"]
    assert item.score == 0
    assert all(c.message.startswith("not gradable as written: ") and not c.diagnosis for c in item.checks if not c.auxiliary)
    assert re.search(r"takes other arguments than the course's", item.checks[0].message)
    assert item.status == "failed" and "takes other arguments than the course's" in item.graded_as["not_gradable"]
    assert item.reason == item.graded_as["not_gradable"]


BATCH_ONLY_FLATTENING = '''
import numpy as np


class FlatteningLayer:
    """Written for N×H×W batches only, column-major: an H×W image would be taken for H images of W."""

    def forward(self, X):
        self.shape = X.shape
        return np.reshape(X, (X.shape[0], -1), order="F")

    def backward(self, G):
        return np.reshape(G, self.shape, order="F")
'''


def test_a_batch_only_flattening_is_driven_as_a_batch_of_one_by_its_shape_not_its_size(tmp_path, cnn_only):
    folder = tmp_path / "batch_flatten"
    folder.mkdir()
    (folder / "FlatteningLayer.py").write_text(BATCH_ONLY_FLATTENING)
    by_name = items(grade(folder, cnn_only))
    for name in ("FlatteningLayer.forward", "FlatteningLayer.backward"):
        assert by_name[name].score == by_name[name].max_score, [(c.name, c.message) for c in by_name[name].checks]
    assert by_name["FlatteningLayer.forward"].graded_as["driven"] == "images passed as 1×H×W batches of one"
    assert "column-major" in by_name["FlatteningLayer.backward"].checks[0].note


def test_the_cnn_spec_holds_this_lectures_classes_exactly_as_the_default_spec_does():
    default, cnn = load_spec("default"), load_spec("cnn")
    for name, cls in default.classes.items():
        assert name in cnn.classes, name
        assert cnn.classes[name].fingerprint == cls.fingerprint, f"{name} differs between default.toml and cnn.toml"
    assert [n.name for n in cnn.networks] == [n.name for n in default.networks]
    assert set(cnn.classes) - set(default.classes) == {"ConvolutionalLayer", "MaxPoolLayer", "FlatteningLayer"}


def test_a_batch_spec_grades_n_images_at_once(tmp_path, cnn_only):
    text = Path(cnn_only.source).read_text().replace('images = "single"', 'images = "batch"')
    (tmp_path / "batch.toml").write_text(text)
    spec = load_spec(tmp_path / "batch.toml")
    assert spec.classes["ConvolutionalLayer"].options.images == "batch"
    ref = grade(reference_dir(), spec)
    assert ref.score == ref.max_score, [(i.name, [(c.name, c.message) for c in i.checks if not c.passed]) for i in ref.items if i.score < i.max_score]
    # a convolution written for batches, whose kernel step averages over the batch: accepted, and said
    folder = tmp_path / "real"
    folder.mkdir()
    (folder / "ConvolutionalLayer.py").write_text(REAL_SHAPE.replace("self.kernel = self.kernel - lr * dK", "self.kernel = self.kernel - lr * dK / len(G)"))
    by_name = items(grade(folder, spec))
    update = by_name["ConvolutionalLayer.updateWeights"]
    assert update.score == update.max_score and "averaged over its images" in update.checks[0].note
    assert "images passed" not in by_name["ConvolutionalLayer.forward"].graded_as["driven"]


def test_an_answer_of_the_right_size_in_another_shape_is_not_reshaped_into_the_truth(graded):
    result = graded("conv_forward_flat", edits=[
        ("        self.setPrevOut(out)\n        return out\n\n    def gradient(self):\n        \"\"\"Not used",
         "        self.setPrevOut(out)\n        return out.ravel()\n\n    def gradient(self):\n        \"\"\"Not used")])
    item = items(result)["ConvolutionalLayer.forward"]
    checks = {c.name: c for c in item.checks}
    assert all(not checks[n].passed and "Shape mismatch" in checks[n].message for n in ("values", "other_size"))
    assert checks["smallest_image"].passed  # its 1×1 answer as (1,) differs only by an axis of length 1


# ----------------------------------------------------------------------------- 4-D layouts and multi-kernel constructors

IMAGE_SHAPES = ROOT / "tests" / "fixtures" / "image_shapes"
#: (fixture, the realistic mistake edited in, the item it must lose, the mistake named)
LAYOUT_MISTAKES = [
    ("nchw_channels_filters", ("xcorr(padded, np.rot90(self.kernels[f, c], 2))", "xcorr(padded, self.kernels[f, c])"),
     "ConvolutionalLayer.backward", "convolution.not_turned"),
    ("nhwc_n_kernels", ("out[n, i * s + a, j * s + b, c] += G[n, i, j, c]", "out[n, i * s:i * s + p, j * s:j * s + p, c] += G[n, i, j, c]"),
     "MaxPoolLayer.backward", "max_pool.spread"),
]


def layout_submission(dest: Path, fixture: str, edit=None) -> Path:
    dest.mkdir(parents=True)
    text = (IMAGE_SHAPES / fixture / "layers.py").read_text()
    if edit:
        assert edit[0] in text, f"the fixture's edit no longer applies: {edit[0]!r}"
        text = text.replace(*edit)
    (dest / "layers.py").write_text(text)
    return dest


@pytest.mark.parametrize("fixture,constructor,kernel,layout", [
    ("nchw_channels_filters", "ConvolutionalLayer(1, 1, 3)", "its attribute kernels (no setter)", "NCHW with one channel (1×1×H×W)"),
    ("nhwc_n_kernels", "ConvolutionalLayer(1, 3, 3)", "setWeights()", "NHWC with one channel (1×H×W×1)"),
])
def test_4d_layouts_and_multi_kernel_constructors_are_graded_to_full_marks(tmp_path, cnn_only, fixture, constructor, kernel, layout):
    by_name = items(grade(layout_submission(tmp_path / fixture, fixture), cnn_only))
    for name in IMAGE_ITEMS:
        assert by_name[name].score == by_name[name].max_score, (name, [(c.name, c.message) for c in by_name[name].checks if not c.passed])
    driven = by_name["ConvolutionalLayer.forward"].graded_as["driven"]
    assert driven == f"built as {constructor}; kernel set by {kernel}; images passed as {layout}, answers read in that layout"
    assert by_name["MaxPoolLayer.backward"].graded_as["driven"] == f"images passed as {layout}, answers read in that layout"


@pytest.mark.parametrize("fixture,edit,lost,code", LAYOUT_MISTAKES)
def test_a_mistake_in_a_4d_layout_loses_exactly_its_item(tmp_path, cnn_only, fixture, edit, lost, code):
    by_name = items(grade(layout_submission(tmp_path / fixture, fixture, edit), cnn_only))
    assert [n for n in IMAGE_ITEMS if by_name[n].score < by_name[n].max_score] == [lost]
    assert by_name[lost].status in ("failed", "partial") and code in {c.diagnosis.code for c in by_name[lost].checks if c.diagnosis}


def test_a_layout_that_cannot_be_told_is_not_gradable_never_wrong(tmp_path, cnn_only):
    by_name = items(grade(layout_submission(tmp_path / "undecidable", "layout_undecidable"), cnn_only))
    forward = by_name["ConvolutionalLayer.forward"]
    assert forward.score == 0 and forward.status == "failed"
    assert all(c.message.startswith("not gradable as written: ConvolutionalLayer.forward() answers 4-D images both as NCHW "
                                    "and as NHWC, differently") and not c.diagnosis for c in forward.checks)
    assert "the layout it takes cannot be told" in forward.graded_as["not_gradable"] == forward.reason


def test_the_spec_may_pin_a_layout_and_grade_a_batch_in_it(tmp_path):
    text = built_in_path("cnn").read_text()
    tables = text[text.index("[classes.ConvolutionalLayer]"):text.index("# ----", text.index("[classes.ConvolutionalLayer]"))]
    spec_file = tmp_path / "nchw.toml"
    spec_file.write_text('[assignment]\nname = "nchw"\n\n' + tables.replace('images = "single"', 'images = "nchw"'))
    spec = load_spec(spec_file)
    by_name = items(grade(layout_submission(tmp_path / "nchw", "nchw_channels_filters"), spec))
    for name in IMAGE_ITEMS:
        assert by_name[name].score == by_name[name].max_score, (name, [(c.name, c.message) for c in by_name[name].checks if not c.passed])
    assert "N×1×H×W" in by_name["ConvolutionalLayer.forward"].graded_as["driven"]
    nhwc = items(grade(layout_submission(tmp_path / "nhwc", "nhwc_n_kernels"), spec))  # pinned: never probed in another layout
    assert nhwc["ConvolutionalLayer.forward"].score == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(spec_file.read_text().replace('images = "nchw"', 'images = "nwhc"', 1))
    with pytest.raises(SpecError, match='"nchw" .N×1×H×W. or "nhwc"'):
        load_spec(bad)


def test_a_layer_that_answers_one_image_as_a_batch_of_one_gets_its_gradient_in_that_shape(tmp_path, cnn_only):
    """Real code (issue 22): forward promotes an H×W image to 1×H×W and answers 1×h×w; its backward and
    updateKernels index gradIn as that batch. Given gradIn as h×w they fail, a right answer marked an error."""
    by_name = items(grade(layout_submission(tmp_path / "as_batch", "single_image_as_batch"), cnn_only))
    for name in IMAGE_ITEMS:
        assert by_name[name].score == by_name[name].max_score, (name, [(c.name, c.message) for c in by_name[name].checks if not c.passed])
    assert by_name["ConvolutionalLayer.backward"].graded_as["driven"] == (
        "built as ConvolutionalLayer(3, 1); kernel set by setKernels(); images passed as 1×H×W batches of one")
    assert by_name["MaxPoolLayer.backward"].graded_as["driven"] == "images passed as 1×H×W batches of one"
    edited = ("dX[n, a, b] += G[n, i, j]", "dX[n, a, b] = G[n, i, j]")  # the same shape, a real mistake: still lost
    wrong = items(grade(layout_submission(tmp_path / "overwrites", "single_image_as_batch", edited), cnn_only))
    assert [n for n in IMAGE_ITEMS if wrong[n].score < wrong[n].max_score] == ["MaxPoolLayer.backward"]
    assert "max_pool.overwritten" in {c.diagnosis.code for c in wrong["MaxPoolLayer.backward"].checks if c.diagnosis}


ADAM_KERNEL_STEP = """    def updateWeights(self, gradIn, t, eta=0.01):
        dJdK = _each(_correlate, self.getPrevIn(), np.asarray(gradIn, dtype=float))
        dJdK = dJdK.sum(axis=0) if dJdK.ndim == 3 else dJdK
        self.m = 0.9 * getattr(self, "m", 0) + 0.1 * dJdK
        self.v = 0.999 * getattr(self, "v", 0) + 0.001 * dJdK ** 2
        m, v = self.m / (1 - 0.9 ** t), self.v / (1 - 0.999 ** t)
        self.kernel = self.kernel - eta * m / (np.sqrt(v) + 1e-8)
"""


def test_a_kernel_step_that_needs_adams_time_step_is_not_gradable_never_wrong(tmp_path, cnn_only):
    """Real code (issue 22): updateWeights(gradIn, t, eta=0.01) runs Adam. Called as (gradIn, η), η went into t
    and the Adam step was judged a wrong plain step; the signature says it is not the plain step."""
    text = (reference_dir() / "cnn.py").read_text()
    start = text.index("    def updateWeights(self, gradIn, eta):")
    old = text[start:text.index("\n\n\n", start) + 1]
    by_name = items(grade(submission(tmp_path / "adam", [(old, ADAM_KERNEL_STEP)]), cnn_only))
    update = by_name["ConvolutionalLayer.updateWeights"]
    assert update.score == 0 and update.status == "failed"
    assert all(c.message.startswith("not gradable as written: updateWeights(gradIn, t, eta=0.01) needs t, which the plain "
                                    "update step K ← K − η ∂J/∂K does not have") and not c.diagnosis for c in update.checks)
    assert update.reason == update.graded_as["not_gradable"]
    assert [n for n in IMAGE_ITEMS if by_name[n].score < by_name[n].max_score] == ["ConvolutionalLayer.updateWeights"]
