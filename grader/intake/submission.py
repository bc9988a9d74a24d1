"""Finding a student's classes: unpack the submission into a throwaway copy and read it with `ast`.

Nothing of the student's is run here. Each `.py` file is parsed; a class whose name is a spec
class or alias (case-insensitively) is located by file and line, and the module name it must be
imported under is worked out from how the file imports its siblings (`from Layer import Layer`,
`from .Layer import Layer`, `from framework.Layer import Layer`). Only those modules are ever
imported, so a training script or a plotting module of the submission never runs.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import re
import stat
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.exceptions import SubmissionError
from grader.assignment.spec import Spec

MAX_FILES = 2000
MAX_BYTES = 50 * 1024**2
MAX_DEPTH = 24  # folders deep inside a submission
MAX_SOURCE_BYTES = 2 * 1024**2  # a .py or .ipynb file larger than this is not read
#: Deepest expression read (an estimate from the tokens, never below the real depth): deeper ones make
#: `ast.parse` raise MemoryError or RecursionError in the grader's process, so such a file is not parsed.
MAX_NESTING = 500
MAX_JSON_NESTING = 100  # a notebook's JSON nested deeper than this is not decoded (nbformat needs 5 levels)
SUBMISSION_SUFFIXES = (".zip", ".py", ".ipynb")
SKIPPED_DIRS = {"__pycache__", ".git", ".venv", "venv", "env", "node_modules", "__MACOSX", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class FoundClass:
    """Where a spec class is defined in the submission, and how to import it."""

    canonical: str
    name: str  # as the student spelled it
    file: str  # relative to the submission root
    line: int
    module: str  # dotted import name
    match: str = "name"  # how it was found: name, alias, normalised name, pinned in the spec
    cell: tuple[str, int] | None = None  # (notebook, code cell number from 1) for a class of a notebook

    def describe(self) -> str:
        """`SoftmaxActivationLayer` in `softmaxActivationLayer.py`, or in a notebook's cell."""
        where = f"{self.cell[0]}, code cell {self.cell[1]}" if self.cell else self.file
        return f"`{self.name}` in `{where}`"


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
    python_files: int = 0  # .py files read (notebooks' modules included)
    #: module made from a notebook -> (the notebook, [(first line, code cell number)])
    notebook_cells: dict[str, tuple[str, list[tuple[int, int]]]] = field(default_factory=dict)

    def cell_of(self, file: str, line: int) -> tuple[str, int] | None:
        """(notebook, code cell) a line of a module made from a notebook came from."""
        if file not in self.notebook_cells:
            return None
        notebook, cells = self.notebook_cells[file]
        return notebook, max((c for first, c in cells if first <= line), default=cells[0][1] if cells else 0)

    @property
    def modules(self) -> list[str]:
        return sorted({f.module for f in self.found.values()})


def submission_name(path: Path) -> str:
    """The name results and reports use for a submission: its folder or file name without suffix."""
    name = path.resolve().name
    for suffix in SUBMISSION_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "submission"


def regular_files(root: Path, suffixes: tuple[str, ...] = ()):
    """Every regular file under `root` (sorted), never through a symlink and never a device, a FIFO or a
    link out of the submission; clutter folders (.git, __pycache__, …) and very deep paths left out."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        if len(rel.parts) >= MAX_DEPTH:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in files:
            if suffixes and not name.lower().endswith(suffixes):
                continue
            path = Path(folder) / name
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                continue
    return sorted(found)


def read_source(path: Path) -> bytes | None:
    """The bytes of a regular file of reasonable size, or None (unreadable, too big, not a file)."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
            return None
        with open(path, "rb") as handle:
            return handle.read(MAX_SOURCE_BYTES + 1)
    except OSError:
        return None


def import_folder_name(name: str) -> str:
    """The name of the folder a submission is copied to: its own name, so that `from <folder>.Layer
    import Layer` resolves, made an identifier; but never the name of a module of the standard library
    or of one the grader's environment has (`random/`, `code/`, `test/`, `numpy/`): a package-relative
    import of `random.layers` would find the standard library's module, and no file of the submission."""
    import importlib.util
    import sys

    name = name if name.isidentifier() else re.sub(r"\W", "_", name) or "submission"
    taken = name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ())
    try:
        taken = taken or name in sys.modules or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    return f"{name}_submission" if taken else name


def copy_submission(path: Path, into: Path) -> Path:
    """Copy (or unzip) the submission at `path` into a folder below `into` and return that folder.

    The folder keeps the submission's own name where it can (`import_folder_name`).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise SubmissionError(f"{path}: no such file or folder")
    if path.is_symlink():
        raise SubmissionError(f"{path}: a symbolic link; give the folder or file itself")
    dest = Path(into) / import_folder_name(submission_name(path))
    if path.is_dir():
        _copy_tree(path, dest)
    elif path.suffix.lower() == ".zip":
        unzip_into(path, dest)
    elif path.suffix.lower() in (".py", ".ipynb"):
        source = read_source(path)
        if source is None:
            raise SubmissionError(f"{path}: not a readable file of at most {MAX_SOURCE_BYTES // 1024**2} MiB")
        dest.mkdir(parents=True)
        (dest / path.name).write_bytes(source)
    else:
        raise SubmissionError(f"{path}: a submission is a folder, a .py file, a notebook (.ipynb) or a .zip")
    return dest


def _copy_tree(src: Path, dest: Path):
    """Copy the regular files of `src` (symlinks and devices are never followed or read)."""
    count = size = 0
    dest.mkdir(parents=True, exist_ok=True)
    for item in regular_files(src):
        rel = item.relative_to(src)
        count += 1
        try:
            size += os.lstat(item).st_size
            if count > MAX_FILES or size > MAX_BYTES:
                raise SubmissionError(f"{src}: more than {MAX_FILES} files or {MAX_BYTES // 1024**2} MiB; is this one submission?")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(item, "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        except PermissionError:
            continue  # a file nobody may read is not part of what can be graded
        except OSError as exc:
            raise SubmissionError(f"{src}: {rel} cannot be copied ({exc.strerror})") from None


def unzip_into(path: Path, dest: Path):
    """Extract a zip below `dest`, leaving out absolute paths, `..`, links, clutter folders and very deep paths.

    A zip that cannot be unpacked (corrupt, entries that conflict, names too long for the file
    system, more than the size it declares) is a SubmissionError naming why: that student's problem.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_FILES or sum(m.file_size for m in members) > MAX_BYTES:
                raise SubmissionError(f"{path}: the zip holds more than {MAX_FILES} files or {MAX_BYTES // 1024**2} MiB")
            dest.mkdir(parents=True, exist_ok=True)
            budget = MAX_BYTES
            for member in members:
                rel = PurePosixPath(member.filename.replace("\\", "/"))
                if member.is_dir() or rel.is_absolute() or ".." in rel.parts or len(rel.parts) > MAX_DEPTH:
                    continue
                if any(part in SKIPPED_DIRS for part in rel.parts) or stat.S_ISLNK(member.external_attr >> 16):
                    continue
                target = dest.joinpath(*rel.parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, open(target, "wb") as out:
                        while chunk := source.read(1 << 20):
                            budget -= len(chunk)
                            if budget < 0:
                                raise SubmissionError(f"{path}: the zip unpacks to more than {MAX_BYTES // 1024**2} MiB")
                            out.write(chunk)
                except OSError as exc:
                    raise SubmissionError(f"{path}: the zip cannot be unpacked: {member.filename[:120]!r}: "
                                          f"{exc.strerror or exc}") from None
    except RuntimeError as exc:  # an encrypted member
        raise SubmissionError(f"{path}: the zip cannot be unpacked ({exc})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError, RecursionError):
        raise SubmissionError(f"{path}: not a readable zip file") from None
    except OSError as exc:
        raise SubmissionError(f"{path}: not a readable zip file ({exc.strerror or exc})") from None


def discover(root: Path, spec: Spec) -> Discovery:
    """Read every .py file (and notebook) under `root` statically and locate the spec's classes.

    Classes are found as a person would find them: the spec's pin, then the exact name or an
    alias, then a normalised name (case, underscores and a trailing Layer, Activation, Function
    or Loss do not count: `SoftmaxActivationLayer` is `SoftmaxLayer`). Two candidates for one
    item, or one class that would serve two items, are reported, never guessed.
    """
    root = Path(root)
    result = Discovery(root=root)
    result.notebook_cells = notebook_modules(root, result.warnings)
    files = regular_files(root, (".py",))
    result.python_files = len(files)
    trees, defined = {}, []  # defined: every top-level class (FoundClass without canonical/module)
    for path in files:
        rel = path.relative_to(root).as_posix()
        source = read_source(path)
        if source is None:
            result.warnings.append(f"{rel}: not read (larger than {MAX_SOURCE_BYTES // 1024**2} MiB, or unreadable)")
            continue
        try:
            tree = parse_source(source, rel)
        except NotParsed as exc:
            result.warnings.append(f"{rel}: not read: {exc}; the classes found in the other files are graded")
            _blame_classes(result, spec, source, f"{rel} was not read: {exc}")
            continue
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            result.syntax_errors[rel] = f"{rel}, line {line}: {getattr(exc, 'msg', exc)}" if line else f"{rel}: {exc}"
            _blame_classes(result, spec, source, f"syntax error in {result.syntax_errors[rel]}")
            continue
        trees[rel] = tree
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                defined.append(FoundClass("", node.name, rel, node.lineno, "", cell=result.cell_of(rel, node.lineno)))

    module_names = _module_names(root, trees)
    claimed: dict[tuple[str, str], str] = {}  # (class name, file) -> the item it is graded as
    left_aside: set[str] = set()  # files in set-aside folders (not_used/, old/) whose copies were not graded
    for cls in spec.classes.values():
        options, how = _candidates(cls, defined, spec)
        names = sorted({f.name for f in options})
        if not options:
            continue
        if len(names) > 1:
            where = ", ".join(f"`{f.name}` in {f.file}:{f.line}" for f in sorted(options, key=lambda f: (f.name, f.file)))
            result.problems[cls.name] = (f"more than one class could be {cls.name}: {where}; rename the others, or the instructor "
                                         f"can pin one in the spec ([classes.{cls.name}] pin)")
            continue
        chosen = _choose(options)
        result.found[cls.name] = FoundClass(cls.name, chosen.name, chosen.file, chosen.line, module_names[chosen.file],
                                            match=how, cell=chosen.cell)
        result.problems.pop(cls.name, None)
        if len(options) > 1:
            where = ", ".join(f"{f.file}:{f.line}" for f in sorted(options, key=lambda f: f.file))
            result.warnings.append(f"{cls.name} is defined {len(options)} times ({where}); graded the one in {chosen.file}:{chosen.line}")
        if not set_aside(chosen.file):
            left_aside.update(f.file for f in _matching(cls, [d for d in defined if set_aside(d.file)], spec)[0])
        for option in options:
            claimed.setdefault((option.name, option.file), cls.name)
    if left_aside:
        shown = sorted(left_aside)
        result.warnings.append(f"copies in folders set aside were not graded: {', '.join(shown[:5])}"
                               + (f" and {len(shown) - 5} more" if len(shown) > 5 else "") + " (the classes in the other files were)")
    _no_class_twice(result, spec)
    _say_which_copies(result, defined, claimed)
    for cls in spec.classes.values():
        if cls.name not in result.found and cls.name not in result.problems:
            result.problems[cls.name] = _not_found(cls, defined, result.found)

    # Folders of class modules go on sys.path so `from Layer import Layer` finds siblings;
    # the submission root's parent goes last so `from <folder>.Layer import Layer` also works.
    folders = sorted({str((root / found.file).parent) for found in result.found.values()} - {str(root)})
    result.sys_path = [str(root), *folders]
    result.sys_path_last = [str(root.parent)]
    return result


class NotParsed(Exception):
    """Student text the grader does not parse (nested too deep, or too much for the parser); the message says why."""


#: The tokens that nest an expression one level deeper (operators, `.`, keywords, an opening bracket),
#: the ones that start a sibling (`,` `;`, a line's end outside brackets), and what is skipped (strings, comments).
_TOKENS = re.compile(rb"""
    (?P<skip>[rRbBuUfF]{0,2}(?:\'\'\'(?:\\.|[^\\])*?\'\'\'|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^\\'\n])*'|"(?:\\.|[^\\"\n])*")
             |\#[^\n]*|\\\r?\n)
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<sibling>[,;])
  | (?P<newline>\n)
  | (?P<chain>[-+~*/%@&|^<>!.]|\b(?:not|and|or|if|else|lambda|await|yield|in|is|for)\b)
""", re.X)


def nesting(source: bytes, limit: int = MAX_NESTING) -> int:
    """How deep the deepest expression of `source` may nest, counted from its tokens (stops past `limit`).

    Each operator, `.`, keyword or bracket after the last `,` of its bracket counts one level, as
    it may wrap everything before it; the count is never below the depth `ast.parse` builds.
    """
    stack, total = [0], 0
    for match in _TOKENS.finditer(source):
        kind = match.lastgroup
        if kind == "chain" or kind == "open":
            stack[-1] += 1
            total += 1
            if total > limit:
                return total
            if kind == "open":
                stack.append(0)
        elif kind == "close":
            if len(stack) > 1:
                total -= stack.pop()  # the bracket's own level stays: `f(x)(y)` chains on
        elif kind == "sibling" or (kind == "newline" and len(stack) == 1):
            total -= stack[-1]
            stack[-1] = 0
    return total


def parse_source(source: bytes | str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse` of student text, bounded: NotParsed when it is nested too deep to parse safely (or the
    parser gives up on it), SyntaxError or ValueError when it is not Python."""
    data = source.encode("utf-8", errors="surrogateescape") if isinstance(source, str) else source
    depth = nesting(data)
    if depth > MAX_NESTING:
        raise NotParsed(f"an expression nested more than {MAX_NESTING} levels deep")
    try:
        return ast.parse(source, filename=filename)
    except (RecursionError, MemoryError) as exc:  # the parser's own stack, on what the estimate let through
        raise NotParsed(f"too complex for Python's parser ({type(exc).__name__})") from None


def _blame_classes(result: Discovery, spec: Spec, source: bytes, why: str) -> None:
    """The spec classes a file that could not be read seems to define: each gets `why` as its problem."""
    for name in re.findall(rb"^[ \t]*class[ \t]+(\w+)", source, flags=re.M)[:200]:
        for cls in _items_named(spec, name.decode(errors="replace")):
            result.problems.setdefault(cls.name, why)


def normalised(name: str) -> str:
    """A class name as a person reads it: case, underscores and trailing Layer/Activation/Function/Loss dropped."""
    key = name.lower().replace("_", "")
    changed = True
    while changed:
        changed = False
        for suffix in NAME_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key, changed = key[: -len(suffix)], True
    return "" if key in NAME_SUFFIXES else key


NAME_SUFFIXES = ("layer", "activation", "function", "loss")


def _items_named(spec: Spec, name: str) -> list:
    exact = spec.find_class(name)
    if exact is not None:
        return [exact]
    key = normalised(name)
    return [c for c in spec.classes.values() if key and key in {normalised(n) for n in c.names}]


#: Folders a student names as set aside (old copies kept beside the work): their classes are graded
#: only where no other file has a class for the item.
SET_ASIDE = re.compile(r"(not|un)[ _-]?used|old|olds|archived?|backups?|bak|deprecated|trash|drafts?|scratch", re.IGNORECASE)


def set_aside(file: str) -> bool:
    """Whether `file` (relative to the submission) lies in a folder its name sets aside (not_used/, old/, backup/)."""
    return any(SET_ASIDE.fullmatch(part) for part in PurePosixPath(file).parts[:-1])


def _candidates(cls, defined: list[FoundClass], spec: Spec) -> tuple[list[FoundClass], str]:
    """The classes that may be graded as `cls`, and how they were found: pinned, exact, normalised;
    those in set-aside folders only where no other file has one."""
    if cls.pin:
        file, _, name = cls.pin.rpartition(":")
        return [f for f in defined if f.name == name and (not file or f.file == file)], "pinned in the spec"
    kept = [f for f in defined if not set_aside(f.file)]
    if len(kept) < len(defined):
        options, how = _matching(cls, kept, spec)
        if options:
            return options, how
    return _matching(cls, defined, spec)


def _matching(cls, defined: list[FoundClass], spec: Spec) -> tuple[list[FoundClass], str]:
    names = {n.lower() for n in cls.names}
    exact = [f for f in defined if f.name.lower() in names]
    if exact:
        return exact, "name" if any(f.name == cls.name for f in exact) else "alias"
    keys = {normalised(n) for n in cls.names} - {""}
    others = {n.lower() for c in spec.classes.values() if c is not cls for n in c.names}
    return [f for f in defined if normalised(f.name) in keys and f.name.lower() not in others], "normalised name"


def _no_class_twice(result: Discovery, spec: Spec):
    """One class graded as two items is not guessed: both are reported."""
    by_class: dict[tuple[str, str], list[str]] = {}
    for canonical, found in result.found.items():
        by_class.setdefault((found.name, found.file), []).append(canonical)
    for (name, file), items in by_class.items():
        if len(items) > 1:
            for canonical in items:
                del result.found[canonical]
                result.problems[canonical] = (f"`{name}` in {file} could be any of {', '.join(sorted(items))}; "
                                              "the instructor can pin one in the spec ([classes.<Name>] pin)")


def _say_which_copies(result: Discovery, defined: list[FoundClass], claimed: dict) -> None:
    """When several classes are defined more than once (a v1/ and a v2/), one line saying which files were graded."""
    copies: dict[str, int] = {}
    for canonical in claimed.values():
        copies[canonical] = copies.get(canonical, 0) + 1
    if sum(count > 1 for count in copies.values()) < 2:
        return  # one class twice: its own warning says which copy
    graded: dict[str, list[str]] = {}
    for found in result.found.values():
        graded.setdefault(found.file, []).append(found.canonical)
    passed_over = sorted({f.file for f in defined if (f.name, f.file) in claimed} - set(graded))
    if passed_over:
        result.warnings.append("files graded: " + "; ".join(f"{file} ({', '.join(sorted(names))})" for file, names in sorted(graded.items()))
                               + "; other copies not graded: " + ", ".join(passed_over))


def _not_found(cls, defined: list[FoundClass], found: dict) -> str:
    """"No class named …", with the near misses a person would check first."""
    used = {(f.name, f.file) for f in found.values()}
    free = [f for f in defined if (f.name, f.file) not in used and normalised(f.name)]
    targets = {normalised(n) for n in cls.names} - {""}
    keys = {normalised(f.name): f for f in free}
    close = set()
    for target in targets:
        close |= set(difflib.get_close_matches(target, list(keys), n=3, cutoff=0.75))
    near = [f for f in free if normalised(f.name) in close]
    near += [f for f in free if normalised(PurePosixPath(f.file).stem) in targets and f not in near]
    names = " or ".join(cls.names)
    message = f"no class named {names} was found in any .py file of the submission"
    if near:
        message += "; near misses: " + ", ".join(f"`{f.name}` in {f.file}:{f.line}" for f in near[:4])
        if not cls.pin:
            message += f" (rename it to {cls.name}, or the instructor can pin it in the spec)"
    return message


def _choose(options):
    """Among several definitions of one class, prefer a .py file to a notebook, a file named after it, then the shallowest path."""
    def rank(found):
        path = PurePosixPath(found.file)
        return (found.cell is not None, path.stem.lower() != found.name.lower(), len(path.parts), found.file)
    return sorted(options, key=rank)[0]


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


# ----------------------------------------------------------------------------- notebooks

#: Calls a notebook's assignment may make and still count as a simple one (constants such as ε).
SIMPLE_CALLS = {"float", "int", "np.finfo", "numpy.finfo", "np.float32", "np.float64", "numpy.float32", "numpy.float64"}
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def notebook_modules(root: Path, warnings: list[str]) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """Turn each .ipynb under `root` into a module beside it; return {module: (notebook, [(first line, cell)])}.

    The notebook is read as JSON. Of its code cells only imports, class and function definitions
    and simple assignments are kept (magics and shell lines dropped): nothing else a notebook
    does — training, plotting, reading data — is ever run.
    """
    out = {}
    for path in regular_files(root, (".ipynb",)):
        rel = path.relative_to(root)
        try:
            cells = read_notebook(path)
        except NotParsed as exc:
            warnings.append(f"{rel.as_posix()}: not read: {exc}; left out")
            continue
        module = path.with_suffix(".py")
        if module.exists():
            module = path.with_name(f"{path.stem}_notebook.py")
        lines, starts, number, skipped = [f"# Made by the grader from {path.name}: imports, definitions and simple assignments.\n"], [], 0, 0
        for cell in cells:
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            number += 1
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if source.lstrip().startswith("%%"):
                continue  # a cell magic: the whole cell is another language
            source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                tree = parse_source(source)
                kept = [ast.unparse(node) + "\n" for node in tree.body if isinstance(node, KEPT_STATEMENTS) or _simple_assignment(node)]
            except NotParsed as exc:
                warnings.append(f"{rel.as_posix()}: code cell {number} not read: {exc}; left out")
                continue
            except (SyntaxError, ValueError, RecursionError):  # RecursionError: ast.unparse of a deep expression
                skipped += 1
                continue
            if not kept:
                continue
            starts.append(("".join(lines).count("\n") + 2, number))
            lines.append(f"\n# --- code cell {number} ---\n")
            lines += kept
        if skipped:
            warnings.append(f"{rel.as_posix()}: {skipped} code cell{'s' * (skipped != 1)} could not be parsed and were left out")
        module.write_text("".join(lines), encoding="utf-8")
        out[module.relative_to(root).as_posix()] = (rel.as_posix(), starts)
    return out


#: What the depth of a notebook's JSON is counted from: strings (skipped whole) and brackets.
_JSON_TOKENS = re.compile(rb'"(?:\\.|[^"\\])*"|[\[{]|[\]}]')


def read_notebook(path: Path) -> list:
    """The cells of a notebook, read as JSON within bounds; NotParsed saying why it cannot be read."""
    data = read_source(path)
    if data is None:
        raise NotParsed(f"larger than {MAX_SOURCE_BYTES // 1024**2} MiB, or unreadable")
    depth = 0
    for match in _JSON_TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_NESTING:
                raise NotParsed(f"its JSON is nested more than {MAX_JSON_NESTING} levels deep")
        elif token in (b"]", b"}"):
            depth -= 1
    try:
        cells = json.loads(data.decode("utf-8", errors="replace")).get("cells", [])
    except (ValueError, AttributeError, RecursionError, MemoryError):
        raise NotParsed("not a readable notebook (not JSON, or not a notebook)") from None
    return cells if isinstance(cells, list) else []


def _simple_assignment(node) -> bool:
    """`EPS = 1e-7`, `eps = np.finfo(float).eps`: an assignment to names with no call but a few harmless ones."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    for sub in ast.walk(value):
        if isinstance(sub, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
        if isinstance(sub, ast.Call) and ast.unparse(sub.func) not in SIMPLE_CALLS:
            return False
    return True


def workspace() -> tempfile.TemporaryDirectory:
    """A throwaway folder for one submission's copy."""
    return tempfile.TemporaryDirectory(prefix="grade-")
