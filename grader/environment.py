"""The third-party packages student code may use while grading, and where they are on disk.

A spec's `[environment] packages` names import names (`numpy`, `scipy`, `sklearn`). Each is
resolved to the distribution that provides it, and that distribution's requirements are
followed, so an allowed package can import what it needs. Student code may import exactly
these; any other third-party import becomes a placeholder in the worker, so verdicts do not
depend on what else is installed where the grader runs. Under bubblewrap, exactly the files of
these distributions are mounted, read-only; never the grader's own package or anything beside it.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

#: Never offered to student code, whatever a spec says: the grader itself.
NEVER = frozenset({"grader", "nn_grader", "nn-grader"})


@dataclass(frozen=True)
class Environment:
    """What student code may import: top-level module names, and the files that provide them."""

    packages: tuple[str, ...]  # as the spec names them
    modules: frozenset[str]  # every top-level module importable, requirements included
    paths: tuple[tuple[str, str], ...]  # (site folder, entry) pairs to mount: numpy/, numpy.libs/, numpy-2.x.dist-info/


def missing_packages(names) -> list[str]:
    """The names that are not importable in the grader's own environment."""
    return [n for n in names if n in NEVER or importlib.util.find_spec(n) is None]


@functools.lru_cache(maxsize=None)
def resolve(packages: tuple[str, ...]) -> Environment:
    """The closure of `packages` over their distributions' requirements, with the files to mount."""
    by_module = _distributions_by_module()
    seen, todo, modules, entries = set(), [], set(packages), set()
    for name in packages:
        todo += by_module.get(name, [])
    while todo:
        dist_name = todo.pop()
        key = _normal(dist_name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        if _normal(dist.metadata["Name"] or "") in {_normal(n) for n in NEVER}:
            continue
        modules |= _top_level(dist)
        entries |= _entries(dist)
        for requirement in dist.requires or []:
            if ";" in requirement and "extra" in requirement.split(";", 1)[1]:
                continue  # optional extras are not followed
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if match:
                todo.append(match.group(1))
    modules -= NEVER
    return Environment(packages=tuple(packages), modules=frozenset(modules), paths=tuple(sorted(entries)))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    return {module: list(dists) for module, dists in metadata.packages_distributions().items()}


def _top_level(dist) -> set[str]:
    names = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info", ".libs", ".data")):
            continue
        name = parts[0]
        if len(parts) == 1:
            if not name.endswith((".py", ".so", ".pyd")):
                continue
            name = name.split(".")[0]
        if name.isidentifier():
            names.add(name)
    return names


def _entries(dist) -> set[tuple[str, str]]:
    """(site folder, first path part) of every file the distribution installed under its site folder."""
    out = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] == ".." or parts[0] == "__pycache__":
            continue
        located = Path(str(dist.locate_file(file)))
        site = located
        for _ in parts:
            site = site.parent
        if (site / parts[0]).exists():
            out.add((str(site), parts[0]))
    return out
