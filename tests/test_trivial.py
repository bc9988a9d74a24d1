"""Only work earns points: answers that did no work score nothing, whatever checks they meet by accident.

The table below makes trivial submissions out of reference/: every graded method (or one
kind of method at a time) still runs, then returns a trivial answer of the right shape. The
registry test walks every check of `grader/check_table.py`, so a check added later is covered
without anyone adding it here.
"""
import ast
import shutil
from pathlib import Path

import pytest

from grader.kinds import CHECK_TABLE
from grader.grade import grade_submission
from grader.paths import reference_dir
from grader.sandbox import Limits

# kind -> what the method returns instead of its answer (`out` is its real answer, `args` its arguments)
TRIVIAL = {
    "zeros": "np.zeros_like(np.asarray(out, dtype=float))",
    "ones": "np.ones_like(np.asarray(out, dtype=float))",
    "constant": "np.full_like(np.asarray(out, dtype=float), 0.75)",
    "random": "np.random.default_rng().random(np.shape(out))",
    "own_input": "(args[-1] if args else self.getPrevIn())",
    "none": "None",
}
# The update step answers by the state it leaves: W and b set after the real update ran (W0, b0: before it).
UPDATE_TRIVIAL = {
    "zeros": "np.zeros_like(W0), np.zeros_like(b0)",
    "ones": "np.ones_like(W0), np.ones_like(b0)",
    "constant": "W0 - 0.75, b0 - 0.75",  # a constant step
    "random": "np.random.default_rng().random(np.shape(W0)), np.random.default_rng().random(np.shape(b0))",
    "own_input": "W0, b0",  # the state echoed: no update
    "none": "W0, b0",
}
METHODS = ("forward", "gradient", "backward", "eval", "updateWeights")
# Where a trivial answer is the right one, it earns its points: the linear layer's.
RIGHT_BY_NATURE = {
    "ones": {"LinearLayer.gradient"},
    "own_input": {"LinearLayer.forward", "LinearLayer.backward"},
}
LIMITS = Limits(call_timeout=2.0, total_timeout=120.0)


def trivial_copy(dest: Path, kind: str, methods) -> Path:
    """reference/ with each method in `methods` returning the `kind` answer (after doing its work)."""
    shutil.copytree(reference_dir(), dest, ignore=shutil.ignore_patterns("__pycache__"))
    for path in dest.glob("*.py"):
        tree = ast.parse(path.read_text())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            body = []
            for fn in cls.body:
                body.append(fn)
                if isinstance(fn, ast.FunctionDef) and fn.name == "updateWeights" and fn.name in methods:
                    fn.name = "_real_updateWeights"
                    body.append(ast.parse("def updateWeights(self, gradIn, eta):\n"
                                          "    W0, b0 = np.array(self.getWeights()), np.array(self.getBiases())\n"
                                          "    self._real_updateWeights(gradIn, eta)\n"
                                          f"    W, b = {UPDATE_TRIVIAL[kind]}\n"
                                          "    self.setWeights(W)\n    self.setBiases(b)\n").body[0])
                elif isinstance(fn, ast.FunctionDef) and fn.name in methods:
                    name, fn.name = fn.name, f"_real_{fn.name}"
                    body.append(ast.parse(f"def {name}(self, *args):\n    out = self._real_{name}(*args)\n"
                                          f"    return {TRIVIAL[kind]}\n").body[0])
            cls.body = body
        tree.body.insert(0, ast.parse("import numpy as np").body[0])
        path.write_text(ast.unparse(tree))
    return dest


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    cache = {}

    def get(kind, methods):
        key = (kind, methods)
        if key not in cache:
            folder = trivial_copy(tmp_path_factory.mktemp("trivial") / f"{kind}_{'_'.join(methods)}", kind, methods)
            cache[key] = grade_submission(folder, sandbox="process", limits=LIMITS)
        return cache[key]
    return get


@pytest.mark.parametrize("kind", sorted(TRIVIAL))
def test_every_check_of_the_registry_earns_nothing_for_a_trivial_answer(kind, graded, spec):
    result = graded(kind, METHODS)
    exempt = RIGHT_BY_NATURE.get(kind, set())
    seen = set()
    for item in result.items:
        if item.max_score == 0 or item.name in exempt:
            continue
        class_name, method = item.name.split(".")
        kind_of = spec.classes[class_name].kind
        expected_checks = [c.name for c in CHECK_TABLE[(kind_of, method)]]
        assert [c.name for c in item.checks] == expected_checks, item.name
        for check in item.checks:
            assert item.earned(check) == 0, f"{item.name}/{check.name} paid for a {kind} answer: {check.note or check.message}"
            seen.add((kind_of, method, check.name))
        assert item.score == 0, item.name
    graded_kinds = {c.kind for c in spec.classes.values()}  # the image kinds: tests/test_cnn.py's trivial table
    every = {(k, m, c.name) for (k, m), checks in CHECK_TABLE.items() for c in checks if k in graded_kinds}
    assert seen == every  # every check of the registry was run against this trivial answer


@pytest.mark.parametrize("kind", sorted(TRIVIAL))
def test_trivial_submission_scores_only_where_the_trivial_answer_is_right(kind, graded):
    result = graded(kind, METHODS)
    paid = {i.name for i in result.items if i.score > 0}
    assert paid == RIGHT_BY_NATURE.get(kind, set())
    for name in paid:
        assert result.item(name).status == "passed"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", sorted(TRIVIAL))
def test_one_trivial_method_at_a_time_costs_that_method_everything(kind, method, graded):
    result = graded(kind, (method,))
    exempt = RIGHT_BY_NATURE.get(kind, set())
    for item in result.items:
        if item.max_score == 0:
            continue
        if item.name.endswith(f".{method}") and item.name not in exempt:
            assert item.score == 0, f"{item.name}: {item.feedback}"
        elif not item.name.endswith(f".{method}"):
            # Other methods keep their points, unless they are built on the trivial one (a backward
            # that multiplies by a trivial gradient() gives a trivial answer itself).
            built_on = method == "gradient" and item.name.endswith(".backward")
            if not built_on:
                assert item.score == item.max_score, f"{item.name} lost points: {item.feedback}"


def test_backward_built_on_a_trivial_gradient_earns_nothing(graded):
    # The issue that started this: gradient() alone returns zeros, and backward() = δ · gradient()
    # used to be "the chain rule applied to your own gradient()" for full marks.
    result = graded("zeros", ("gradient",))
    for name in ("LinearLayer", "ReLuLayer", "LogisticSigmoidLayer", "TanhLayer", "SoftmaxLayer", "FullyConnectedLayer"):
        assert result.item(f"{name}.backward").score == 0, name
    ones = graded("ones", ("gradient",))
    assert ones.item("LinearLayer.backward").score == 1  # δ · 1 is the linear layer's right answer
    assert ones.item("TanhLayer.backward").score == 0

