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
from grader.assignment.spec import load_spec, spec_path
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
"""


def _copy_grader(dest: Path, *, with_reference: bool):
    shutil.copytree(PACKAGE_DIR, dest / "grader", ignore=IGNORE)
    packages = ["grader", "grader.assignment", "grader.assignment.specs", "grader.truth", "grader.intake", "grader.sandbox", "grader.kinds", "grader.checking", "grader.outputs", "grader.outputs.templates", "grader.course"]
    if with_reference:
        from grader.paths import reference_dir

        shutil.copytree(reference_dir(), dest / "grader" / "reference", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        packages.append("grader.reference")
    return packages


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
    hidden = ""
    if spec.hidden is not None:
        hidden = (", except the hidden checks: the self-check says how many will run at grading time, "
                  "on test points you do not see")
    (out / "README.md").write_text(KIT_README.format(title=spec.title, folder=f"./{out.name}", hidden=hidden))
    return out


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, in /autograder/source, to build the grading image.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${GRADER_SKIP_APT:-}" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip bubblewrap
fi
"${PYTHON:-python3}" -m pip install ${PIP_FLAGS:-} "$HERE/grader_src"
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
"${GRADE:-grade}" "$ROOT/submission" --spec "$SOURCE/spec.toml" --out "$ROOT/results/reports" \\
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
