"""The student template has every class and method of the reference, and no solution."""
import ast
import importlib
import inspect
import sys

import pytest

from grader.paths import reference_dir, template_dir
from grader.truth.reference_truth import reference_module
from grader.assignment.spec import GRADED_METHODS, load_spec

SPEC = load_spec()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    sys.path.insert(0, str(template_dir()))
    try:
        layers = importlib.import_module("layers")
        objectives = importlib.import_module("objectives")
        yield {**vars(layers), **vars(objectives)}
    finally:
        sys.path.remove(str(template_dir()))
        for name in ("layers", "objectives", "Layer"):
            sys.modules.pop(name, None)


def test_template_has_every_spec_class_and_method(template):
    for cls in SPEC.classes.values():
        assert cls.name in template, cls.name
        for method in GRADED_METHODS[cls.kind]:
            assert callable(getattr(template[cls.name], method, None)), f"{cls.name}.{method}"


def test_every_method_raises_not_implemented(template):
    ref = reference_module()
    for cls in SPEC.classes.values():
        klass = template[cls.name]
        args = {"input": ([[1.0, 2.0], [3.0, 5.0]],), "fully_connected": (2, 3)}.get(cls.kind, ())
        if args:
            with pytest.raises(NotImplementedError, match="TODO"):
                klass(*args)
            obj = object.__new__(klass)
        else:
            obj = klass()
        for method in GRADED_METHODS[cls.kind]:
            call_args = {"eval": 2, "gradient": 2 if cls.kind == "objective" else 0, "forward": 1, "backward": 1, "updateWeights": 2}[method]
            with pytest.raises(NotImplementedError, match="TODO"):
                getattr(obj, method)(*([[[0.5]]] * call_args))
        # same signatures as the reference
        for method in GRADED_METHODS[cls.kind]:
            ours = list(inspect.signature(getattr(klass, method)).parameters)
            theirs = list(inspect.signature(getattr(getattr(ref, cls.name), method)).parameters)
            # the reference's updateWeights serves the adam spec too: its extra parameters (t, p1, …) come after
            assert theirs[:len(ours)] == ours, f"{cls.name}.{method}: {ours} != {theirs}"


def test_template_holds_no_solution():
    """No method body of the template does anything but raise (or call the given base class)."""
    for path in template_dir().glob("*.py"):
        if path.name in ("__init__.py", "Layer.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                kinds = {type(s).__name__ for s in body}
                calls_super = all(isinstance(s, (ast.Raise, ast.Expr)) for s in body)
                assert kinds <= {"Raise", "Expr"} and calls_super, f"{path.name}:{node.lineno} {node.name} has code"
                assert isinstance(body[-1], ast.Raise), f"{path.name}:{node.lineno} {node.name} does not raise"


def test_shipped_folders_are_found():
    assert (reference_dir() / "layers.py").is_file()
    assert (template_dir() / "Layer.py").is_file()
