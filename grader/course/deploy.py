"""What an instructor hands out: a student kit without the solution, and a Gradescope autograder.

Both are built from the grader package as installed (or as in this checkout): its files are
copied next to a generated pyproject.toml. The kit leaves out the reference implementation and
the instructor's secret, so hidden checks cannot run (nor be reconstructed) on a student's machine;
the autograder zip carries everything, including the secret, for Gradescope's private servers.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import grader
from grader import __version__
from grader.exceptions import UsageError
from grader.paths import template_dir
from grader.assignment.spec import ClassSpec, load_spec, spec_path
from grader.assignment.specs import template_files_left_out

PACKAGE_DIR = Path(grader.__file__).resolve().parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "reference", "student_template")

PYPROJECT = """[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "{description}"
requires-python = ">=3.10"
dependencies = ["numpy>=1.24", "sympy>=1.12", "jinja2>=3.1", "click>=8.1", "tomli>=2.0; python_version < '3.11'"]

[project.scripts]
grade = "grader.cli:program"

[tool.setuptools]
packages = {packages}

[tool.setuptools.package-data]
"grader" = ["CONTRACT.md"]
"grader.assignment.specs" = ["*.toml"]
"grader.outputs.templates" = ["*.j2", "*.css"]
"""

KIT_README = """# {title}: your starting files and a self-check

Install the self-check once (a virtual environment is a good idea):

    pip install {folder}

Then work in `my_work/` (or copy it anywhere) and check yourself as often as you like:

    cd my_work
    grade .

`grade . -v` prints the full feedback of every item that does not pass yet, and
`reports/<name>.html` shows it with the expected rules and heatmaps. The self-check uses the
same ground truth as the final grading{hidden}. `grade . --fail-under 100` exits non-zero below
full marks, for your own CI.

What to implement, the conventions (rows are observations, the shapes `gradient()` may return,
ε, float32) and what earns points: [CONTRACT.md](CONTRACT.md).{added}
"""


def _copy_grader(dest: Path, *, with_reference: bool):
    shutil.copytree(PACKAGE_DIR, dest / "grader", ignore=IGNORE)
    packages = ["grader", "grader.assignment", "grader.assignment.specs", "grader.truth", "grader.intake", "grader.sandbox", "grader.kinds", "grader.checking", "grader.outputs", "grader.outputs.templates", "grader.course"]
    if with_reference:
        from grader.paths import reference_dir

        shutil.copytree(reference_dir(), dest / "grader" / "reference", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        packages.append("grader.reference")
    return packages


#: What a stub's method returns, by kind and method: the first line of its docstring.
_RETURNS = {
    ("objective", "eval"): "Return J, one number",
    ("objective", "gradient"): "Return ∂J/∂Ŷ, N×K, not divided by N",
    ("input", "forward"): "Return z-scored dataIn, N×D, and store input and output (setPrevIn, setPrevOut)",
    ("fully_connected", "forward"): "Return h = xW + b, N×K, and store input and output (setPrevIn, setPrevOut)",
    ("elementwise", "forward"): "Return g(z) element by element, N×K, and store input and output (setPrevIn, setPrevOut)",
    ("softmax", "forward"): "Return g(z) row by row, N×K, and store input and output (setPrevIn, setPrevOut)",
    ("fully_connected", "backward"): "Return gradIn · Wᵀ, N×D",
    ("softmax", "backward"): "Return, for each row n, gradIn[n] @ J[n], N×K",
    ("elementwise", "backward"): "Return gradIn times the gradient, N×K (element-wise for the diagonal)",
}
#: How a gradient() may be shaped, by the spec's gradient_forms.
_FORMS = {"diagonal": "N×K (the diagonal of each observation's Jacobian)", "jacobian": "N×K×K (one Jacobian per observation)",
          "matrix": "K×D (Wᵀ)", "per_observation": "N×K×D (Wᵀ for each observation)"}
_LAYER_HELPERS = {"fully_connected": ("getWeights", "setWeights", "getBiases", "setBiases")}
_HELPER_ARGS = {"setWeights": "weights", "setBiases": "biases"}


def stub_source(cls: ClassSpec) -> str:
    """Python source of a starting class for the spec's `cls`: the constructor the grader calls,
    every method (graded or required by the base Layer), each with the rule as the slides write it
    in its docstring (rendered by `grader.truth.rules`, as the reports show it) and `raise NotImplementedError`."""
    from grader.truth.rules import rules_for

    rules = rules_for(cls)
    graded = cls.graded_methods
    objective = cls.kind == "objective"
    lines = [f"class {cls.name}:" if objective else f"class {cls.name}(Layer):"]

    def method(name: str, params: str, doc: list[str], body: list[str] = ()):
        if len(lines) > 1:
            lines.append("")
        lines.append(f"    def {name}(self{params}):")
        if doc:
            lines.append(f'        """{doc[0]}' + ('"""' if len(doc) == 1 else ""))
            lines.extend(f"        {line}".rstrip() for line in doc[1:])
            if len(doc) > 1:
                lines.append('        """')
        lines.extend(f"        {line}" for line in body)
        todo = f"TODO: {cls.name}.{name}" + ("" if name in graded or name in _LAYER_HELPERS.get(cls.kind, ()) or name == "__init__"
                                             else " (not graded)")
        lines.append(f'        raise NotImplementedError("{todo}")')

    if cls.kind == "input":
        method("__init__", ", dataIn", ["Remember the mean and the standard deviation of each column of dataIn."], ["super().__init__()"])
    elif cls.kind in ("fully_connected", "fully_connected_adam"):
        method("__init__", ", sizeIn, sizeOut", ["Weights W (sizeIn × sizeOut) and biases b (1 × sizeOut), small random values."],
               ["super().__init__()"])
        for helper in _LAYER_HELPERS["fully_connected"]:
            method(helper, f", {_HELPER_ARGS[helper]}" if helper in _HELPER_ARGS else "", [])
    methods = ("eval", "gradient") if objective else ("forward", "gradient", "backward")
    params = {"eval": ", Y, Yhat", "forward": ", dataIn", "backward": ", gradIn", "gradient": ", Y, Yhat" if objective else ""}
    for name in methods:
        if name not in graded:
            method(name, params[name], ["Not graded in this assignment."])
            continue
        if name == "gradient" and not objective:
            doc = ["Return the gradient at the input forward stored."]
            if getattr(cls.options, "gradient_forms", None):
                doc += ["", "Its shape: " + ", or ".join(_FORMS[f] for f in cls.options.gradient_forms) + "."]
        else:
            doc = [_RETURNS.get((cls.kind, name), _RETURNS.get(("elementwise", name), "Return the result")) + "."]
        rule = rules.get(name)
        if rule is not None:
            doc += ["", f"{rule.text}:", f"    {rule.plain}"]
        method(name, params[name], doc)
    for (kind, name), (signature, doc) in _METHOD_STUBS.items():
        if cls.kind == kind and name in graded:
            lines += [""] + _method_stub(cls, name, signature, doc)
    return "\n".join(lines) + "\n"


#: Methods a kind needs written otherwise than the template writes them: (kind, method) → (parameters, docstring).
_METHOD_STUBS = {
    ("fully_connected_adam", "updateWeights"): (
        ", gradIn, t, p1=0.9, p2=0.999, eta=0.001, delta=1e-8",
        ["Adam, step t (t = 1, 2, 3, … on this layer; keep m and v on the layer, one pair for W and one for b).",
         "",
         "g = ∂J/∂W = Xᵀδ/N (X the stored input, δ = gradIn); for b, g = the column means of δ:",
         "    m ← p1 m + (1 − p1) g,   v ← p2 v + (1 − p2) g²,",
         "    W ← W − η (m/(1 − p1ᵗ)) / (√(v/(1 − p2ᵗ)) + δ), and the same for b."]),
}


def _method_stub(cls: ClassSpec, method: str, params: str, doc: list[str]) -> list[str]:
    lines = [f"    def {method}(self{params}):", f'        """{doc[0]}']
    lines += [f"        {line}".rstrip() for line in doc[1:]] + ['        """', f'        raise NotImplementedError("TODO: {cls.name}.{method}")']
    return lines


def _replace_method_stubs(spec, work: Path) -> list[str]:
    """Where a spec's kind needs a method the template writes otherwise (the `adam` spec's updateWeights),
    replace that method of the starting class (its lines, found with `ast`) with the generated stub."""
    import ast

    from grader.intake.submission import discover

    found, replaced = discover(work, spec).found, []
    for cls in spec.classes.values():
        for (kind, method), (params, doc) in _METHOD_STUBS.items():
            where = found.get(cls.name)
            if cls.kind != kind or method not in cls.points or where is None:
                continue
            path = work / where.file
            lines = path.read_text(encoding="utf-8").splitlines()
            tree = ast.parse("\n".join(lines))
            node = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == where.name), None)
            function = next((f for f in (node.body if node else []) if isinstance(f, ast.FunctionDef) and f.name == method), None)
            if function is None:
                continue
            start = min([function.lineno] + [d.lineno for d in function.decorator_list]) - 1
            lines[start:function.end_lineno] = _method_stub(cls, method, params, doc)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            replaced.append(f"{cls.name}.{method}")
    return replaced


def _add_missing_stubs(spec, work: Path) -> list[str]:
    """Append a stub to the starting files for every class of the spec they do not define (found as
    the grader would find it): layers to layers.py, objectives to objectives.py. Returns their names."""
    from grader.intake.submission import discover

    found = discover(work, spec).found
    added = []
    for cls in spec.classes.values():
        if cls.name in found:
            continue
        target = work / ("objectives.py" if cls.kind == "objective" else "layers.py")
        if not target.exists():
            target.write_text("import numpy as np\n" if cls.kind == "objective" else "import numpy as np\n\nfrom Layer import Layer\n",
                              encoding="utf-8")
        with open(target, "a", encoding="utf-8") as handle:
            handle.write("\n\n" + stub_source(cls))
        added.append(cls.name)
    return added


def build_kit(out: Path, *, spec_file: Path | None = None) -> Path:
    """Write the student kit to the folder `out` (which must not exist) and return it."""
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out}: already exists; give a new folder for the kit")
    spec = load_spec(spec_file)
    out.mkdir(parents=True)
    packages = _copy_grader(out, with_reference=False)
    if spec_file:
        shutil.copyfile(spec_path(spec_file), out / "grader" / "assignment" / "specs" / "default.toml")
    (out / "pyproject.toml").write_text(PYPROJECT.format(
        name="nn-grader-selfcheck", version=__version__, description=f"Self-check for {spec.title}", packages=packages))
    shutil.copytree(template_dir(), out / "my_work", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "__init__.py", *template_files_left_out(spec.classes)))
    added = _add_missing_stubs(spec, out / "my_work")  # a class the instructor's spec adds reaches the students too
    _replace_method_stubs(spec, out / "my_work")  # a method the spec's kind writes otherwise (Adam's updateWeights)
    hidden = ""
    if spec.hidden is not None:
        hidden = (", except the hidden checks: the self-check says how many will run at grading time, "
                  "on test points you do not see")
    if added:
        added = (f" This assignment also has {', '.join(f'`{name}`' for name in added)}: "
                 "its starting code is at the end of `my_work/layers.py` or `my_work/objectives.py`.")
    shutil.copyfile(PACKAGE_DIR / "CONTRACT.md", out / "CONTRACT.md")
    (out / "README.md").write_text(KIT_README.format(title=spec.title, folder=f"./{out.name}", hidden=hidden, added=added or ""))
    return out


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, in /autograder/source, to build the grading image.
# The grader goes into a virtual environment of its own, which run_autograder uses: a system-wide
# pip install is refused on images whose python3 is externally managed (PEP 668, Ubuntu 24.04).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${AUTOGRADER_ROOT:-/autograder}"
if [ -z "${GRADER_SKIP_APT:-}" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv bubblewrap
fi
rm -rf "$ROOT/venv"
"${PYTHON:-python3}" -m venv ${VENV_FLAGS:-} "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install ${PIP_FLAGS:-} "$HERE/grader_src"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission into results.json.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
mkdir -p "$ROOT/results"
if [ -f "$SOURCE/hidden_secret" ]; then
    chmod 600 "$SOURCE/hidden_secret" 2>/dev/null  # readable by the grader (root) only, never by student code
    export @SECRET_ENV@="$(cat "$SOURCE/hidden_secret")"
fi
chmod 700 "$ROOT/results" 2>/dev/null
METADATA=()
if [ -f "$ROOT/submission_metadata.json" ]; then
    METADATA=(--submission-metadata "$ROOT/submission_metadata.json")  # dates, for the spec's [late] policy
fi
"${GRADE:-$ROOT/venv/bin/grade}" "$ROOT/submission" --spec "$SOURCE/spec.toml" --out "$ROOT/results/reports" \\
    --gradescope "$ROOT/results/results.json" --quiet ${METADATA[@]+"${METADATA[@]}"}
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    # Never leave Gradescope without a result: say what happened instead.
    printf '{"score": 0, "output": "The autograder could not grade this submission (exit status %s). Please tell your instructor.", "tests": []}\\n' "$status" \\
        > "$ROOT/results/results.json"
fi
exit 0
"""


def new_secret(path: Path) -> Path:
    """Write a fresh instructor secret to `path` (which must not exist), readable by its owner only."""
    import secrets

    path = Path(path)
    if path.exists():
        raise UsageError(f"{path}: already exists; a secret is never overwritten (its grades depend on it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return path


def build_autograder(zip_path: Path, *, spec_file: Path | None = None, secret_file: Path | None = None) -> tuple[Path, Path | None]:
    """Write Gradescope's autograder.zip: setup.sh, run_autograder, the grader (without the
    reference: grading needs only the symbolic truth), the spec and the secret. Official grading
    draws its test points from the secret; without one a new secret is made beside the zip
    (`<zip>.secret`, keep it to regrade). Returns (zip, the secret file made, or None)."""
    zip_path = Path(zip_path)
    spec = load_spec(spec_file)
    made = None
    if secret_file is None and not spec.secret():
        made = secret_file = new_secret(zip_path.with_name(zip_path.name + ".secret"))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "grader_src"
        src.mkdir()
        packages = _copy_grader(src, with_reference=False)
        (src / "pyproject.toml").write_text(PYPROJECT.format(
            name="nn-grader", version=__version__, description=f"Autograder for {spec.title}", packages=packages))
        shutil.copyfile(spec_path(spec_file), root / "spec.toml")
        secret = Path(secret_file).read_text().strip() if secret_file else (spec.secret() or "")
        if secret:
            (root / "hidden_secret").write_text(secret + "\n")
        (root / "setup.sh").write_text(SETUP_SH)
        secret_env = spec.hidden.secret_env if spec.hidden is not None else "GRADER_HIDDEN_SECRET"
        (root / "run_autograder").write_text(RUN_AUTOGRADER.replace("@SECRET_ENV@", secret_env))
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(root).as_posix())
                    if path.name in ("setup.sh", "run_autograder"):
                        info.external_attr = 0o755 << 16
                    archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return zip_path, made
