"""What student code must never see, whichever sandbox runs it: the grader and every package folder.

Both sandbox kinds hide these paths: bubblewrap mounts an empty tmpfs over each one that lies
inside what it binds (/usr, the interpreter's prefix), and the process sandbox, when it runs as
root, does the same in a private mount namespace before it drops to the job's uid. The allowed
packages are mounted (or imported) from their own files, never through these folders.
"""
from __future__ import annotations

import glob
import os
import site
import sys
from pathlib import Path

import grader

#: Folders where pip and the distribution put packages, on Debian, Ubuntu and elsewhere.
PACKAGE_FOLDER_PATTERNS = (
    "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages", "/usr/lib/python3/dist-packages",
    "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3/dist-packages",
    "/usr/lib64/python3*/site-packages", "/usr/local/lib64/python3*/site-packages", "/usr/share/pyshared",
)


def grader_paths() -> list[str]:
    """The grader's own files: its package, the reference and the checkout it came from."""
    package = Path(grader.__file__).resolve().parent
    paths = {str(package), str(package.parent / "reference")}
    try:
        from grader.paths import reference_dir

        paths.add(str(reference_dir().resolve()))
    except Exception:  # pragma: no cover - a broken install still hides its package
        pass
    return sorted(p for p in paths if os.path.exists(p))


def package_folders() -> list[str]:
    """Every folder that holds installed packages, the grader's among them."""
    found = set()
    for pattern in PACKAGE_FOLDER_PATTERNS:
        found.update(glob.glob(pattern))
    try:
        found.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else ""
    if user:
        found.add(user)
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            found.add(entry)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:  # a venv's base interpreter's too
        for name in ("site-packages", "dist-packages"):
            found.update(glob.glob(os.path.join(prefix, "lib*", "python3*", name)))
            found.update(glob.glob(os.path.join(prefix, "local", "lib*", "python3*", name)))
    return sorted(str(Path(p).resolve()) for p in found if os.path.isdir(p))


def hidden_paths(extra=()) -> list[str]:
    """Paths to cover with an empty filesystem: package folders, the grader's files, and `extra`
    (the results folder, the instructor's secret) — outermost first, nothing inside another."""
    paths = sorted({*package_folders(), *grader_paths(), *(str(Path(p).resolve()) for p in extra if p)})
    out: list[str] = []
    for path in paths:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return out


def inside(path: str, roots) -> bool:
    """True when `path` lies in one of `roots`."""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)
