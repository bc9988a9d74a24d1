"""Assignment specs shipped with the grader (TOML data, read by `grader.assignment.spec`), by name.

An instructor picks one by name wherever a spec file is taken (`grade --spec cnn`, `grade-admin
kit --spec cnn`, `grade-admin spec cnn`); `grade-admin spec --list` prints `BUILT_IN` with each
spec's `[assignment] description`. Each built-in spec's student stubs live in `student_template/`
(its `TEMPLATE_FILES`: the files only that spec hands out; the kit of a spec that grades none
of their classes leaves them out) and its reference solution in `reference/` (one package, every class of every built-in spec).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Every built-in spec by name: its file in this folder (the first is the default).
BUILT_IN = {"default": "default.toml", "cnn": "cnn.toml", "adam": "adam.toml"}
#: The template files a built-in spec hands out beside the default's (which every kit has).
TEMPLATE_FILES = {"cnn": ("cnn_layers.py",)}


def built_in_path(name: str) -> Path:
    """The file of the built-in spec `name` (a key of BUILT_IN)."""
    return Path(str(resources.files(__name__).joinpath(BUILT_IN[name])))


def template_files_left_out(class_names) -> set[str]:
    """The spec-only template files (TEMPLATE_FILES) that define none of `class_names`, the classes
    a spec grades: the kit of that spec leaves them out (nothing of them is asked)."""
    import ast

    from grader.paths import template_dir

    wanted, out = set(class_names), set()
    for file in {f for files in TEMPLATE_FILES.values() for f in files}:
        path = template_dir() / file
        tree = ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else ast.Module(body=[], type_ignores=[])
        if not wanted & {node.name for node in tree.body if isinstance(node, ast.ClassDef)}:
            out.add(file)
    return out
