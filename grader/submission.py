"""Finding a student's classes: unpack the submission into a throwaway copy and read it with `ast`.

Nothing of the student's is run here. Each `.py` file is parsed; a class whose name is a spec
class or alias (case-insensitively) is located by file and line, and the module name it must be
imported under is worked out from how the file imports its siblings (`from Layer import Layer`,
`from .Layer import Layer`, `from framework.Layer import Layer`). Only those modules are ever
imported, so a training script or a plotting module of the submission never runs.
"""
from __future__ import annotations

import ast
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.exceptions import SubmissionError
from grader.spec import Spec

MAX_FILES = 2000
MAX_BYTES = 50 * 1024**2
SKIPPED_DIRS = {"__pycache__", ".git", ".venv", "venv", "env", "node_modules", "__MACOSX", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class FoundClass:
    """Where a spec class is defined in the submission, and how to import it."""

    canonical: str
    name: str  # as the student spelled it
    file: str  # relative to the submission root
    line: int
    module: str  # dotted import name


@dataclass
class Discovery:
    """What the static read of a submission found: classes, import plan, and problems per class."""

    root: Path
    found: dict[str, FoundClass] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # canonical class -> why it cannot be graded
    warnings: list[str] = field(default_factory=list)
    syntax_errors: dict[str, str] = field(default_factory=dict)  # file -> message
    sys_path: list[str] = field(default_factory=list)
    sys_path_last: list[str] = field(default_factory=list)

    @property
    def modules(self) -> list[str]:
        return sorted({f.module for f in self.found.values()})


def submission_name(path: Path) -> str:
    """The name results and reports use for a submission: its folder or file name without suffix."""
    name = path.resolve().name
    for suffix in (".zip", ".py"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "submission"


def copy_submission(path: Path, into: Path) -> Path:
    """Copy (or unzip) the submission at `path` into a folder below `into` and return that folder.

    The folder keeps the submission's own name, so `from <folder>.Layer import Layer` resolves.
    """
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such file or folder")
    name = submission_name(path)
    name = name if name.isidentifier() else re.sub(r"\W", "_", name) or "submission"
    dest = Path(into) / name
    if path.is_dir():
        _copy_tree(path, dest)
    elif path.suffix.lower() == ".zip":
        unzip_into(path, dest)
    elif path.suffix.lower() == ".py":
        dest.mkdir(parents=True)
        shutil.copy2(path, dest / path.name)
    else:
        raise SubmissionError(f"{path}: a submission is a folder, a .py file or a .zip")
    return dest


def _copy_tree(src: Path, dest: Path):
    count = size = 0
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        if any(part in SKIPPED_DIRS for part in rel.parts) or item.is_symlink():
            continue
        if item.is_dir():
            continue
        count += 1
        size += item.stat().st_size
        if count > MAX_FILES or size > MAX_BYTES:
            raise SubmissionError(f"{src}: more than {MAX_FILES} files or {MAX_BYTES // 1024**2} MiB; is this one submission?")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)
    dest.mkdir(parents=True, exist_ok=True)


def unzip_into(path: Path, dest: Path):
    """Extract a zip below `dest`, leaving out absolute paths, `..`, and clutter folders."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_FILES or sum(m.file_size for m in members) > MAX_BYTES:
                raise SubmissionError(f"{path}: the zip holds more than {MAX_FILES} files or {MAX_BYTES // 1024**2} MiB")
            dest.mkdir(parents=True, exist_ok=True)
            for member in members:
                rel = PurePosixPath(member.filename.replace("\\", "/"))
                if member.is_dir() or rel.is_absolute() or ".." in rel.parts:
                    continue
                if any(part in SKIPPED_DIRS for part in rel.parts):
                    continue
                target = dest.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile:
        raise SubmissionError(f"{path}: not a readable zip file") from None


def discover(root: Path, spec: Spec) -> Discovery:
    """Read every .py file under `root` statically and locate the spec's classes."""
    root = Path(root)
    result = Discovery(root=root)
    candidates: dict[str, list[tuple[FoundClass, ast.Module]]] = {}
    files = sorted(p for p in root.rglob("*.py") if not any(part in SKIPPED_DIRS for part in p.relative_to(root).parts))
    trees = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        source = path.read_bytes()
        try:
            tree = ast.parse(source, filename=rel)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            result.syntax_errors[rel] = f"{rel}, line {line}: {getattr(exc, 'msg', exc)}" if line else f"{rel}: {exc}"
            for name in re.findall(rb"^\s*class\s+(\w+)", source, flags=re.M):
                cls = spec.find_class(name.decode())
                if cls:
                    result.problems.setdefault(cls.name, f"syntax error in {result.syntax_errors[rel]}")
            continue
        trees[rel] = tree
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                cls = spec.find_class(node.name)
                if cls is not None:
                    found = FoundClass(cls.name, node.name, rel, node.lineno, "")
                    candidates.setdefault(cls.name, []).append((found, tree))

    module_names = _module_names(root, trees)
    for canonical, options in candidates.items():
        chosen = _choose(options)
        found = FoundClass(canonical, chosen.name, chosen.file, chosen.line, module_names[chosen.file])
        result.found[canonical] = found
        result.problems.pop(canonical, None)
        if len(options) > 1:
            where = ", ".join(f"{f.file}:{f.line}" for f, _ in options)
            result.warnings.append(f"{canonical} is defined {len(options)} times ({where}); graded the one in {chosen.file}:{chosen.line}")
    for cls in spec.classes.values():
        if cls.name not in result.found and cls.name not in result.problems:
            names = " or ".join(cls.names)
            result.problems[cls.name] = f"no class named {names} was found in any .py file of the submission"

    # Folders of class modules go on sys.path so `from Layer import Layer` finds siblings;
    # the submission root's parent goes last so `from <folder>.Layer import Layer` also works.
    folders = sorted({str((root / found.file).parent) for found in result.found.values()} - {str(root)})
    result.sys_path = [str(root), *folders]
    result.sys_path_last = [str(root.parent)]
    return result


def _choose(options):
    """Among several definitions of one class, prefer a file named after it, then the shallowest path."""
    def rank(entry):
        found, _ = entry
        path = PurePosixPath(found.file)
        return (path.stem.lower() != found.name.lower(), len(path.parts), found.file)
    return sorted(options, key=rank)[0][0]


def _module_names(root: Path, trees: dict[str, ast.Module]) -> dict[str, str]:
    """The import name of each file: dotted from the root when it (or its package) uses relative imports."""
    names = {}
    for rel, tree in trees.items():
        path = PurePosixPath(rel)
        parts = list(path.with_suffix("").parts)
        relative = any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in ast.walk(tree))
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if relative:
            # A relative import needs a package: the folders from the root down, or the root folder itself.
            names[rel] = ".".join(parts if len(parts) > 1 else [root.name, *parts])
        else:
            names[rel] = parts[-1] if parts else root.name
    return names


def workspace() -> tempfile.TemporaryDirectory:
    """A throwaway folder for one submission's copy."""
    return tempfile.TemporaryDirectory(prefix="grade-")
