"""The package's shape (issue 20): one folder per stage, imports flowing one way, none in a circle.

Every import of every module of `grader/` counts, those inside functions (lazy) included: they
are read with `ast`, not by importing.
"""
from __future__ import annotations

import ast
from pathlib import Path

import grader

ROOT = Path(grader.__file__).resolve().parent

#: The stages in the order imports may flow: a module may import its own stage's modules and
#: those of earlier stages, never a later one. The sandbox comes early because it knows nothing
#: of the assignment (it runs code and carries numbers); `grader.kinds` (the registry, numpy-free
#: declarations) is read with the spec, its kind modules run with the checks.
STAGES = [
    ("tools", ("grader", "grader.exceptions", "grader.paths", "grader.cache")),
    ("sandbox", ("grader.sandbox",)),
    ("assignment", ("grader.assignment", "grader.kinds")),
    ("truth", ("grader.truth",)),
    ("intake", ("grader.intake",)),
    ("checking", ("grader.checking", "grader.kinds.")),
    ("outputs", ("grader.outputs",)),
    ("grade", ("grader.grade",)),
    ("course", ("grader.course",)),
    ("front", ("grader.api", "grader.cli", "grader.admin_cli", "grader.__main__")),
]
#: `import grader` loads nothing else; its two public entry points are imported on first use.
PUBLIC_ENTRY_POINTS = {("grader", "grader.grade"), ("grader", "grader.assignment.spec")}
TOP_LEVEL = {"__init__", "__main__", "cli", "admin_cli", "api", "grade", "exceptions", "paths", "cache"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in ROOT.rglob("*.py")}
    # the shipped reference and template are student-side code, not the grader's
    return {m: p for m, p in found.items() if not m.startswith(("grader.reference", "grader.student_template"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The grader modules `path` imports anywhere in it (top level or inside a function)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "grader"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "grader" and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def stage(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(STAGES):
        for p in prefixes:
            if (module == p.rstrip(".") and not p.endswith(".")) or (module.startswith(p if p.endswith(".") else p + ".")):
                if len(p) > best:
                    best, rank = len(p), i
    assert rank is not None, f"{module} belongs to no stage: add it to STAGES"
    return rank


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, set(known)) - {m} for m, p in known.items()}


def test_every_import_flows_from_an_earlier_stage_or_the_same():
    wrong = [f"{m} ({STAGES[stage(m)][0]}) imports {d} ({STAGES[stage(d)][0]})"
             for m, deps in graph().items() for d in deps if stage(d) > stage(m) and (m, d) not in PUBLIC_ENTRY_POINTS]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_lazy_imports_included():
    g = graph()
    # A package's __init__ importing its own submodules is how a package speaks, not a circle.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    done, stack, circles = set(), [], []

    def visit(m):
        if m in stack:
            circles.append(" → ".join(stack[stack.index(m):] + [m]))
            return
        if m in done:
            return
        stack.append(m)
        for d in sorted(edges[m]):
            visit(d)
        stack.pop()
        done.add(m)

    for m in sorted(edges):
        visit(m)
    assert not circles, "\n".join(circles)


def test_the_public_entry_points_are_importable_from_the_package():
    from grader.assignment.spec import load_spec
    from grader.grade import grade_submission

    assert grader.grade_submission is grade_submission and grader.load_spec is load_spec


def test_at_most_a_dozen_modules_at_the_top_and_every_stage_says_what_it_owns():
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top <= TOP_LEVEL and len(top) <= 12, top - TOP_LEVEL
    for folder in ROOT.iterdir():
        if folder.is_dir() and (folder / "__init__.py").is_file() and folder.name not in ("reference", "student_template"):
            doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8"))) or ""
            if folder.name in ("specs", "templates"):
                continue
            assert "May import" in doc, f"{folder.name}/__init__.py must say what the stage owns and may import"


def test_the_cache_key_covers_every_stage_the_truth_may_import():
    """The disk cache keys derived truth on the source it may depend on: by folder, not by a list
    of files, so a module added to or moved into those stages counts (issue 20)."""
    from grader import cache

    truth = next(i for i, (name, _) in enumerate(STAGES) if name == "truth")
    allowed = {p for _, prefixes in STAGES[:truth + 1] for p in prefixes}
    folders = {p.split(".")[1] for p in allowed if p.count(".") == 1 or p.endswith(".")} - {"exceptions", "paths", "cache"}
    assert folders == set(cache.TRUTH_SOURCES)
    assert {f"{p.split('.')[-1]}.py" for p in STAGES[0][1] if p != "grader"} | {"__init__.py"} == set(cache.TOOLS)


def test_a_module_added_to_the_truth_changes_the_cache_key_and_one_elsewhere_does_not(tmp_path):
    import shutil

    from grader import cache

    copy = tmp_path / "grader"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache.source_digest(copy)
    (copy / "outputs" / "helper.py").write_text("X = 1\n")
    assert cache.source_digest(copy) == before  # not something the truth may import
    (copy / "truth" / "helper.py").write_text("X = 1\n")
    after = cache.source_digest(copy)
    assert after != before
    (copy / "truth" / "helper.py").rename(copy / "assignment" / "helper.py")  # moved: still counted, as moved
    assert cache.source_digest(copy) not in (before, after)


def test_the_wheel_installs_every_stage_and_grades_the_reference_from_the_installed_copy(tmp_path):
    """pyproject.toml lists packages one by one: a stage left out would be missing only once installed."""
    import os
    import subprocess
    import sys
    import zipfile

    checkout = ROOT.parent
    if not (checkout / "pyproject.toml").is_file():
        import pytest
        pytest.skip("grader is installed, not a checkout: nothing to build")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HW_SECRET")}
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(checkout)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((tmp_path / "dist").glob("nn_grader-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(checkout).as_posix() for p in ROOT.rglob("*") if p.suffix in (".py", ".toml", ".j2", ".css")
              and "__pycache__" not in p.parts and "__compiled__" not in p.parts and p.parts[len(ROOT.parts)] not in ("reference", "student_template")}
    assert wanted <= inside, sorted(wanted - inside)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                               env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # After the install (pip would otherwise find the grader installed there and skip the wheel), the
    # dependencies are the test interpreter's (offline): a venv made from a venv sees only the
    # base interpreter's packages, so its site-packages points at ours (a .pth line adds the folder,
    # not the .pth files in it, so an editable install of the grader there stays out).
    import site
    import sysconfig

    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import grader; print(grader.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    run = subprocess.run([str(venv / "bin" / "grade"), str(checkout / "reference"), "--sandbox", "process", "--seed", "0", "-q",
                          "--out", str(tmp_path / "reports")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    score, out_of = run.stdout.strip().rsplit(" ", 1)[-1].split("/")
    assert float(score) == float(out_of) > 0, run.stdout


def test_a_grader_fault_in_a_check_says_which_check_failed():
    """Every check closure was named `check`: a traceback could not say which one failed (issue 20)."""
    import traceback

    from grader.kinds import checks_for

    seen = set()
    for kind, method in (("softmax", "gradient"), ("objective", "eval"), ("input", "forward")):
        for definition, function in checks_for(kind, method):
            try:
                function(None, definition.name, definition.weight)  # no context: a fault of the grader's own
            except AttributeError as fault:
                frame = traceback.extract_tb(fault.__traceback__)[-1]
                seen.add(frame.name)
                assert frame.name != "check", (kind, method, definition.name)
    assert {"softmax.gradient.single_observation", "objective.eval.edges", "input.forward.new_data"} <= seen


def test_the_runner_knows_kinds_only_through_the_registry_and_the_spec_loads_no_implementation():
    import subprocess
    import sys

    import grader.kinds as kinds

    assert set(kinds.KINDS) == {"objective", "elementwise", "softmax", "fully_connected", "fully_connected_adam", "input",
                                "convolution", "max_pool", "flatten"}  # public names
    for name, kind in kinds.KINDS.items():
        module = kinds.implementation(name)
        assert set(module.CHECKS) == set(kind.graded_methods) == set(kind.checks)
        for method in kind.graded_methods:
            assert [c.name for c, _ in kinds.checks_for(name, method)] == [c.name for c in kind.checks[method]]
    for path in (ROOT / "grade.py", ROOT / "checking" / "checks.py", ROOT / "checking" / "layer_checks.py", ROOT / "checking" / "network.py",
                 ROOT / "checking" / "diagnose.py"):
        text = path.read_text(encoding="utf-8")
        for name in kinds.KINDS:
            assert f'"{name}"' not in text, f"{path.name} names the kind {name}: ask the registry"
    code = ("import sys; from grader.assignment.spec import load_spec; load_spec(); "
            "print(sorted(m for m in sys.modules if m.startswith(('grader.kinds.', 'grader.checking'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_each_kind_has_its_own_options_object_and_a_spec_still_travels_by_pickle():
    """ClassSpec carried every kind's fields in one flat bag (issue 20): each kind now has its own
    options class, module-level so that specs pickle to pool and dask workers."""
    import dataclasses
    import pickle

    from grader.assignment.spec import ClassSpec, load_spec
    from grader.kinds import KINDS, FullyConnectedOptions, InputOptions, LayerOptions, ObjectiveOptions

    flat = {f.name for f in dataclasses.fields(ClassSpec)}
    assert not flat & {"reduction", "targets", "estimates", "squared_error", "domain", "kinks", "gradient_forms", "ddof"}
    spec = load_spec()
    kinds = {c.kind: type(c.options) for c in spec.classes.values()}
    assert kinds == {"objective": ObjectiveOptions, "elementwise": LayerOptions, "softmax": LayerOptions,
                     "fully_connected": FullyConnectedOptions, "input": InputOptions}
    assert all(KINDS[c.kind].options is type(c.options) for c in spec.classes.values())
    again = pickle.loads(pickle.dumps(spec))
    assert {n: c.options for n, c in again.classes.items()} == {n: c.options for n, c in spec.classes.items()}
    assert spec.classes["CrossEntropy"].options.reduction == "mean_rows" and spec.classes["ReLuLayer"].options.kinks == (0.0,)
