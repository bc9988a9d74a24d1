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
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from grader import cache

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
    """The closure of `packages` over their distributions' requirements, with the files to mount.

    Kept in the disk cache under the packages and sys.path, with the time of every folder it was
    resolved from: an install, upgrade or removal there adds or removes entries, which changes the
    folder's time, and the entry is resolved again. What is read back is checked (`_from_cache`)
    before it decides any mount.
    """
    key = cache.key("environment", json.dumps(list(packages)), *sys.path)
    found = cache.read(key, ".env.json", lambda text, _path: _from_cache(packages, text))
    if found is None:
        found = _resolve(packages)
        folders = {folder: _mtime(folder) for folder, _ in found.paths}
        cache.write(key, ".env.json", json.dumps({"modules": sorted(found.modules), "paths": [list(p) for p in found.paths],
                                                  "folders": folders}))
    return found


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _from_cache(packages: tuple[str, ...], text: str) -> Environment:
    """A cached resolution, only if it still holds and could be one: the folders it was resolved from
    unchanged; every mount an existing entry of a folder on sys.path, never the grader's own files;
    every module a plain name. Anything else raises, and the environment is resolved again (so a
    planted entry cannot mount the reference into a sandbox)."""
    from grader.sandbox.visibility import grader_paths, inside

    data = json.loads(text)
    modules, paths, folders = data["modules"], [tuple(p) for p in data["paths"]], data["folders"]
    if not all(isinstance(m, str) and m.isidentifier() and m not in NEVER for m in modules):
        raise ValueError("modules")
    if any(_mtime(folder) != when for folder, when in folders.items()) or {f for f, _ in paths} - set(folders):
        raise ValueError("changed since")
    own = grader_paths()
    for folder, name in paths:
        full = os.path.realpath(os.path.join(folder, name))
        if (folder not in sys.path or not isinstance(name, str) or name in ("", ".", "..") or "/" in name
                or not os.path.exists(full) or inside(full, own) or any(inside(p, [full]) for p in own)):
            raise ValueError(f"mount {full}")
    if not set(packages) <= set(modules):
        raise ValueError("packages")
    return Environment(packages=tuple(packages), modules=frozenset(modules), paths=tuple(sorted(paths)))


def _resolve(packages: tuple[str, ...]) -> Environment:
    from importlib import metadata

    seen, todo, modules, entries = set(), [], set(packages), set()
    for name in packages:
        todo += _providers(name)
    while todo:
        dist_name = todo.pop()
        key = _normal(dist_name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist, parts = _installed(dist_name)
        except metadata.PackageNotFoundError:
            continue
        if _normal(dist.metadata["Name"] or "") in {_normal(n) for n in NEVER}:
            continue
        modules |= _top_level(parts)
        entries |= _entries(dist, parts)
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


def _providers(module: str) -> list[str]:
    """The distributions that install the top-level `module`: the one of the same name when it
    does (numpy), else from the index of every installed distribution (sklearn → scikit-learn)."""
    from importlib import metadata

    try:
        if module in _top_level(_installed(module)[1]):
            return [module]
    except metadata.PackageNotFoundError:
        pass
    return _distributions_by_module().get(module, [])


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    from importlib import metadata

    return {module: list(dists) for module, dists in metadata.packages_distributions().items()}


@functools.lru_cache(maxsize=None)
def _installed(name: str):
    """(the distribution, the first path part of every file it installed beside itself, not in `..`)."""
    from importlib import metadata

    dist = metadata.distribution(name)
    parts = {str(file).replace("\\", "/").split("/", 1)[0] for file in dist.files or []} - {"", "..", "__pycache__"}
    return dist, frozenset(parts)


def _top_level(parts) -> set[str]:
    names = set()
    for name in parts:
        if name.endswith((".dist-info", ".egg-info", ".libs", ".data")):
            continue
        if "." in name:  # a module file at the top: six.py, _cffi_backend.cpython-311-x86_64-linux-gnu.so
            if not name.endswith((".py", ".so", ".pyd")):
                continue
            name = name.split(".")[0]
        if name.isidentifier():
            names.add(name)
    return names


def _entries(dist, parts) -> set[tuple[str, str]]:
    """(site folder, first path part) of every file the distribution installed under its site folder."""
    site = Path(str(dist.locate_file("")))
    return {(str(site), part) for part in parts if (site / part).exists()}
