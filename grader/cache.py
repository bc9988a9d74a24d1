"""The grader's disk cache: derived ground truth, so that a warm run needs no SymPy at all.

What SymPy derives (a spec's validation, each class's functions as numpy source, the rules the
reports show) is stored under `$GRADER_CACHE_DIR` (default `~/.cache/nn-grader`; empty disables
it), keyed by what it was derived from *and* by the grader's own source, its version and the
SymPy and numpy versions: a changed spec, grader or library derives afresh. Nothing in the cache
is trusted: code is checked to be arithmetic before it runs (`symbolic.numpy_function`),
data is parsed as JSON and a damaged entry is simply derived again.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

from grader import __version__


def cache_dir() -> Path | None:
    """The cache folder ($GRADER_CACHE_DIR, else the user cache), or None when disabled."""
    configured = os.environ.get("GRADER_CACHE_DIR")
    if configured == "":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nn-grader"


#: The folders of `grader/` whose modules derivations may depend on: the truth and every stage
#: it may import (tests/test_layout.py holds the package to that order), and the kinds, whose
#: modules adapt the truth. Every module in them counts, new ones included, wherever they move.
TRUTH_SOURCES = ("sandbox", "assignment", "kinds", "truth")
#: The top-level tools every stage may import.
TOOLS = ("__init__.py", "cache.py", "exceptions.py", "paths.py")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """What derivations depend on besides their inputs: the grader's source and the library versions."""
    return source_digest(Path(__file__).resolve().parent)


def source_digest(package: Path) -> str:
    """The digest of the grader's version, every module the truth may depend on under `package`
    (TOOLS and the TRUTH_SOURCES folders) and the library versions."""
    digest = hashlib.sha256(__version__.encode())
    files = [package / name for name in TOOLS] + sorted(p for folder in TRUTH_SOURCES for p in (package / folder).rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for library in ("sympy", "numpy", "mpmath"):
        digest.update(f"{library}={installed_version(library)}".encode())
    return digest.hexdigest()


def installed_version(package: str) -> str:
    """The installed version of a top-level package, without importing it, or "none".

    Read off the name of its `<name>-<version>.dist-info` folder beside it (what pip writes),
    which costs a folder listing; importlib.metadata, which would cost 9 ms of imports on every
    run, only where no such folder is found.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "none"
    if spec.origin and spec.submodule_search_locations is not None:
        site = Path(spec.origin).parent.parent
        prefix = package.lower().replace("-", "_") + "-"
        try:
            names = [e.name for e in os.scandir(site) if e.name.endswith(".dist-info") and e.name.lower().startswith(prefix)]
        except OSError:
            names = []
        if len(names) == 1:
            return names[0][len(prefix):-len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def key(*parts: str) -> str:
    """A cache key for these parts (and the code that derives from them)."""
    return hashlib.sha256("|".join((code_digest(), *parts)).encode()).hexdigest()[:32]


def read(key_: str, suffix: str, load, *, binary: bool = False):
    """`load(text, path)` of the cached entry (its bytes with `binary`), or None when it is absent,
    disabled or damaged."""
    folder = cache_dir()
    path = folder / f"{key_}{suffix}" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return load(path.read_bytes() if binary else path.read_text(), str(path))
    except Exception:  # a damaged or refused entry is derived again
        return None


def write(key_: str, suffix: str, text: str | bytes) -> None:
    """Store an entry atomically (parallel graders never read half a file); a read-only cache only costs time."""
    folder = cache_dir()
    if folder is None:
        return
    path = folder / f"{key_}{suffix}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(text) if isinstance(text, bytes) else tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass
