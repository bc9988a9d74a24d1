"""Where the files the grader ships are, installed or in a source checkout."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _shipped(package: str, checkout_folder: str) -> Path:
    """Return the folder of `package` when installed (pip install .), else the checkout's folder."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return _CHECKOUT / checkout_folder


def reference_dir() -> Path:
    """Return the folder of the reference implementation."""
    return _shipped("grader.reference", "reference")


def template_dir() -> Path:
    """Return the folder of the student template."""
    return _shipped("grader.student_template", "student_template")
