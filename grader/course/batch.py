"""Batch grading: a folder of submissions in any of the layouts LMS exports produce.

`detect` says which layout a folder is and lists one `Entry` per student (and what it skipped
and why); `grade_batch` grades them in parallel, each still in its own sandbox, writes each
result atomically as soon as it is done, skips unchanged ones with `resume`, and rebuilds the
class outputs (index.html, grades.csv, summary.json) from the results on disk.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader import __version__
from grader.exceptions import ClusterError, GradingStopped, SubmissionError, UsageError
from grader.assignment.spec import Spec
from grader.outputs.terminal import csv_text

LAYOUTS = ("folders", "zips", "canvas", "gradescope")
# Canvas: <name parts>_[LATE_]<user id>_<submission id>_<original file name>[-<n>].<ext>
CANVAS = re.compile(r"^(?P<student>[A-Za-z][\w-]*?)_(?P<late>LATE_)?(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+?)(?:-(?P<rev>\d+))?(?P<ext>\.\w+)$")
IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass
class Entry:
    """One student's submission inside a batch."""

    id: str  # the identifier results, reports and the gradebook use
    path: Path  # a folder, a .zip or a .py file to grade
    name: str = ""
    email: str = ""
    canvas_id: str = ""  # the Canvas user id of a Canvas download, for its gradebook import
    late: bool = False  # marked late by the export (Canvas's LATE)
    problem: str = ""  # why it cannot be graded, found while unpacking the export
    submitted_at: str = ""  # when, as the export records it (Gradescope's created_at)

    @property
    def keys(self) -> list[str]:
        """What may name this student in the spec's [late.extensions] or an overrides file."""
        from grader.assignment.late import student_keys

        return student_keys(self.id, self.name, self.email, self.canvas_id)


@dataclass
class Detection:
    """What a batch folder holds: its layout, one entry per student, and what was passed over."""

    layout: str
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)

    def describe(self) -> str:
        line = f"batch layout: {self.layout}, {len(self.entries)} submission{'s' * (len(self.entries) != 1)}"
        if self.skipped:
            line += f"; skipped {len(self.skipped)}: " + "; ".join(f"{n} ({why})" for n, why in self.skipped[:10])
            if len(self.skipped) > 10:
                line += f"; … {len(self.skipped) - 10} more"
        return line


# ----------------------------------------------------------------------------- detection


def looks_like_batch(path: Path, spec: Spec) -> bool:
    """True when `path` is a folder of submissions rather than one submission."""
    path = Path(path)
    if not path.is_dir():
        return path.suffix.lower() == ".zip" and _zip_is_canvas(path)
    if (path / "submission_metadata.yml").is_file():
        return True
    files = [p for p in path.iterdir() if _regular(p) and p.name not in IGNORED]
    if files and sum(bool(CANVAS.match(p.name)) for p in files) >= max(2, len(files) // 2):
        return True
    children = [p for p in path.iterdir() if (_folder(p) and not p.name.startswith((".", "__")))
                or (p.suffix.lower() == ".zip" and _regular(p))]
    if len(children) < 2 or any(p.suffix.lower() in (".py", ".ipynb") for p in files):
        return False
    # A submission split over folders defines each class once; a class defined in two
    # children means each child is a whole submission.
    seen: dict[str, int] = {}
    for child in children:
        for name in _class_names(child, spec):
            seen[name] = seen.get(name, 0) + 1
    return any(count >= 2 for count in seen.values())


def _class_names(child: Path, spec: Spec) -> set[str]:
    from grader.intake.submission import MAX_SOURCE_BYTES, read_source, regular_files

    sources = []
    if child.is_dir():
        sources = [read_source(p) or b"" for p in regular_files(child, (".py", ".ipynb"))[:200]]
    else:
        try:
            with zipfile.ZipFile(child) as z:
                sources = [z.read(i) for i in z.infolist()[:200]
                           if i.filename.lower().endswith((".py", ".ipynb")) and i.file_size <= MAX_SOURCE_BYTES]
        except Exception:  # noqa: BLE001 - whatever a zip does, it only says "not a batch of these"
            return set()
    names = set()
    for source in sources:
        # a line of a .py file, or of a notebook cell's JSON string ("class X(Layer):\n", …)
        for match in re.finditer(rb'(?:^|"|\\n)class\s+(\w+)', source, flags=re.M):
            cls = spec.find_class(match.group(1).decode(errors="replace"))
            if cls:
                names.add(cls.name)
    return names


def detect(root: Path, workdir: Path) -> Detection:
    """Return the layout of the batch at `root`; Canvas files are regrouped into folders under `workdir`."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".zip":
        unpacked = Path(workdir) / "export"
        _safe_extract(root, unpacked)
        root = unpacked
    if not root.is_dir():
        raise UsageError(f"{root}: a batch is a folder (or the zip of a Canvas export)")
    if (root / "submission_metadata.yml").is_file():
        return _gradescope(root)
    files = sorted(p for p in root.iterdir() if _regular(p) or p.is_symlink() and not p.is_dir())
    if files and sum(bool(CANVAS.match(p.name)) for p in files) >= max(1, len([f for f in files if f.name not in IGNORED]) // 2):
        return _canvas(root, files, Path(workdir) / "canvas")
    detection = Detection(layout="folders")
    zips = 0
    for child in sorted(root.iterdir()):
        if child.name in IGNORED or child.name.startswith("."):
            continue
        if child.is_symlink():
            # never followed: a student's entry that is a link is graded as what it is (nothing)
            detection.entries.append(Entry(id=_identifier(child.name), path=child))
        elif child.is_dir():
            if child.name.startswith("__"):
                detection.skipped.append((child.name, "a Python cache folder"))
                continue
            # a student folder without .py files still gets its row: 0 and the reason
            detection.entries.append(Entry(id=_identifier(child.name), path=child))
        elif child.suffix.lower() == ".zip":
            zips += 1
            detection.entries.append(Entry(id=_identifier(child.stem), path=child))
        elif child.suffix.lower() in (".py", ".ipynb"):
            detection.entries.append(Entry(id=_identifier(child.stem), path=child))
        else:
            detection.skipped.append((child.name, "not a folder, .zip, .py or .ipynb"))
    if zips and zips == len(detection.entries):
        detection.layout = "zips"
    elif zips:
        detection.layout = "folders and zips"
    return detection


def _canvas(root: Path, files: list[Path], into: Path) -> Detection:
    detection = Detection(layout="canvas")
    groups: dict[tuple[str, str], dict[str, tuple[int, Path]]] = {}
    late: set[tuple[str, str]] = set()
    for path in files:
        if path.name in IGNORED:
            continue
        match = CANVAS.match(path.name)
        if not match:
            detection.skipped.append((path.name, "not named like a Canvas submission file"))
            continue
        original = match["file"] + match["ext"]
        revision = int(match["rev"] or 0)
        group = groups.setdefault((match["student"], match["uid"]), {})
        if match["late"]:
            late.add((match["student"], match["uid"]))
        # Canvas appends -1, -2 … to resubmitted files: keep the latest of each.
        if original not in group or revision > group[original][0]:
            if original in group:
                detection.skipped.append((group[original][1].name, f"superseded by {path.name}"))
            group[original] = (revision, path)
        else:
            detection.skipped.append((path.name, f"superseded by {group[original][1].name}"))
    for (student, uid), chosen in sorted(groups.items()):
        folder = into / f"{student}_{uid}"
        folder.mkdir(parents=True, exist_ok=True)
        problem = ""
        for original, (_, path) in chosen.items():
            try:
                if path.is_symlink():
                    raise SubmissionError(f"{path.name}: a symbolic link, never followed")
                if path.suffix.lower() == ".zip":
                    _safe_extract(path, folder)
                else:
                    shutil.copyfile(path, folder / original)
            except (SubmissionError, OSError) as exc:  # this student's file only: the others go on
                problem = str(exc) if isinstance(exc, SubmissionError) else f"{path.name}: cannot be read ({exc.strerror})"
                problem = problem.replace(str(path), path.name)
        detection.entries.append(Entry(id=_identifier(f"{student}_{uid}"), path=folder, name=student.replace("_", " "),
                                       canvas_id=uid, late=(student, uid) in late, problem=problem))
    return detection


def _gradescope(root: Path) -> Detection:
    detection = Detection(layout="gradescope")
    people = _gradescope_metadata((root / "submission_metadata.yml").read_text(encoding="utf-8", errors="replace"))
    for child in sorted(root.iterdir()):
        if child.name == "submission_metadata.yml" or child.name in IGNORED:
            continue
        if not child.is_dir():
            detection.skipped.append((child.name, "not a submission folder"))
            continue
        names, emails, created = people.get(child.name, ([], [], ""))
        if not names:
            detection.skipped.append((child.name, "not listed in submission_metadata.yml")) if child.name not in people else None
        detection.entries.append(Entry(id=_identifier(child.name), path=child, name=" & ".join(names), email=", ".join(emails),
                                       submitted_at=created))
    return detection


def _gradescope_metadata(text: str) -> dict[str, tuple[list[str], list[str], str]]:
    """{submission folder: (names, emails, created_at)} from Gradescope's submission_metadata.yml (the part we need)."""
    out: dict[str, tuple[list[str], list[str], str]] = {}
    current = None
    for line in text.splitlines():
        top = re.match(r"^([^\s:#][^:]*):\s*$", line)
        if top:
            current = top.group(1).strip().strip("'\"")
            out[current] = ([], [], "")
            continue
        if current is None:
            continue
        name = re.match(r"^\s*-?\s*:name:\s*(.+?)\s*$", line)
        email = re.match(r"^\s*-?\s*:email:\s*(.+?)\s*$", line)
        created = re.match(r"^\s{1,4}:created_at:\s*(.+?)\s*$", line)
        if name:
            out[current][0].append(name.group(1).strip("'\""))
        elif email:
            out[current][1].append(email.group(1).strip("'\""))
        elif created:
            out[current] = (out[current][0], out[current][1], created.group(1).strip("'\""))
    return out


def _regular(path: Path) -> bool:
    """A regular file, not a link to one (links are never followed)."""
    return path.is_file() and not path.is_symlink()


def _folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _zip_is_canvas(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
    except Exception:  # noqa: BLE001 - a zip that cannot be listed is not a Canvas export
        return False
    return bool(names) and sum(bool(CANVAS.match(Path(n).name)) for n in names) >= max(2, len(names) // 2)


def _safe_extract(archive: Path, dest: Path):
    from grader.intake.submission import unzip_into

    unzip_into(archive, dest)


def _identifier(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name).strip("._") or "submission"


# ----------------------------------------------------------------------------- resume


def content_hash(path: Path) -> str:
    """sha256 over the submission's file names and bytes (a zip or .py by its bytes).

    Only regular files are read, never through a link; a file that cannot be read counts by its
    name alone (it cannot be graded either)."""
    from grader.intake.submission import regular_files

    digest = hashlib.sha256()
    path = Path(path)
    files = regular_files(path) if _folder(path) else ([path] if _regular(path) else [])
    for item in files:
        digest.update((item.relative_to(path).as_posix() if item != path else item.name).encode() + b"\0")
        try:
            with open(item, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def resume_key(entry: Entry, spec: Spec, seed) -> str:
    """What a result depends on: the files, the spec (its [late] policy too), the grader, the seed,
    and when the export says it was handed in (a moved date regrades, and recomputes the penalty)."""
    value = getattr(seed, "seed", seed)
    when = f"{entry.submitted_at}|{entry.late}"
    return hashlib.sha256(f"{content_hash(entry.path)}|{spec.fingerprint}|{__version__}|{value}|{when}".encode()).hexdigest()


# ----------------------------------------------------------------------------- running


def grade_one(entry: Entry, spec: Spec, seed: int, sandbox: str, limits, command: str, key: str, hidden=()):
    """Grade one entry (in a pool process or on a dask worker) and return its SubmissionResult.

    A submission that cannot be graded at all (no Python file, a zip that does not unpack) gets a
    result of its own saying why: it is that student's problem, never the grader's."""
    from grader.grade import grade_submission
    from grader.assignment.late import Dates, settle

    if entry.problem:
        result = problem_result(entry, spec, entry.problem)
    else:
        try:
            # In the process sandbox the worker comes from this process's shared fork server (the default).
            result = grade_submission(entry.path, spec=spec, seed=seed, sandbox=sandbox, limits=limits, command=command,
                                      hidden=hidden)
        except SubmissionError as exc:
            result = problem_result(entry, spec, str(exc).replace(str(entry.path), entry.path.name))
    result.submission = entry.id
    result.student_name, result.student_email, result.resume_key = entry.name, entry.email, key
    result.canvas_id = entry.canvas_id
    settle(result, spec.late, Dates(submitted_at=entry.submitted_at, flagged=entry.late), entry.keys)
    return result


def problem_result(entry: Entry, spec: Spec, reason: str):
    """A result for a submission that could not be graded: 0 on every item, and the reason."""
    from grader.checking.results import ItemResult, SubmissionResult

    status = "missing" if "no Python file" in reason else "error"
    items = [ItemResult(name=i.name, max_score=i.points, status_override=status, reason=reason) for i in spec.items]
    return SubmissionResult(submission=entry.id, items=items, problem=reason, spec=spec.name, grader_version=__version__,
                            student_name=entry.name, student_email=entry.email)


#: How the errors of a result the grader could not finish begin (a student's own 0 never says so).
GRADER_FAILED = "the grader failed on this submission: "


def grader_failure(result) -> str:
    """The grader's own failure on `result` (its error text), or "" when the grader did its work."""
    return next((e[len(GRADER_FAILED):] for e in result.errors if e.startswith(GRADER_FAILED)), "")


def _failed_result(entry: Entry, spec: Spec, exc: Exception):
    """A result for a submission the grader itself could not finish: every item an error, nothing lost."""
    from grader.checking.results import ItemResult, SubmissionResult

    message = f"{GRADER_FAILED}{type(exc).__name__}: {exc}"
    items = [ItemResult(name=i.name, max_score=i.points, status_override="error", reason=message) for i in spec.items]
    return SubmissionResult(submission=entry.id, items=items, errors=[message], spec=spec.name, grader_version=__version__,
                            student_name=entry.name, student_email=entry.email, resume_key="")


def grade_batch(entries: list[Entry], *, spec: Spec, out_dir: Path, jobs: int | None = None, seed: int = 0,
                sandbox: str = "process", limits=None, resume: bool = False, command: str = "", progress=None,
                dask_address: str | None = None, overrides: dict | None = None, similarity: bool = False,
                canvas_gradebook=None) -> dict:
    """Grade every entry, writing each result as it is done; return counts {graded, skipped, failed}.

    `overrides` ({submission: [Override]}) are applied to the class outputs; with `similarity`,
    every pair of submissions is compared by code (similarity.json, shown in the summary); a
    `canvas_gradebook` (grader.course.canvas_gradebook.Gradebook) is filled as canvas_grades.csv."""
    from grader.outputs.html_report import render_report
    from grader.outputs.writers import result_json, write_atomic
    from grader.course.overrides import apply as apply_overrides

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unique_ids(entries)
    keys = {e.id: resume_key(e, spec, seed) for e in entries}
    todo = [e for e in entries if not (resume and _unchanged(out_dir / f"{e.id}.json", keys[e.id]))]
    counts = {"graded": 0, "skipped": len(entries) - len(todo), "failed": 0, "total": len(entries)}
    if progress:
        progress("start", counts, None)
    first_failures: list[str] = []  # the grader's failures, while every result so far is one
    stop_after = min(STOP_AFTER, len(todo))

    def finished(entry, result):
        write_atomic(out_dir / f"{entry.id}.json", result_json(result))
        write_atomic(out_dir / f"{entry.id}.html", render_report(result))
        counts["graded"] += 1
        failure = grader_failure(result)
        counts["failed"] += bool(failure)
        if progress:  # the total the student will get: with the late penalty (in the result) and the overrides
            progress("done", counts, apply_overrides([result], overrides or {})[0])
        if failure and len(first_failures) == counts["graded"] - 1:
            first_failures.append(_fault_signature(failure, entry))
            if len(first_failures) >= max(2, stop_after) and len(set(first_failures)) == 1:
                raise GradingStopped(
                    f"stopped: the first {len(first_failures)} submissions graded all failed in the grader the same way "
                    f"({_shorten(failure)}). That is the grader's or its environment's fault, not the students': "
                    f"no gradebook was written (grades.csv, summary.json and index.html are as they were); the "
                    f"results written so far are kept in {out_dir}, and a run with --resume grades again only those "
                    "not done.")

    stopped = False
    try:
        if dask_address:
            _run_dask(todo, spec, seed, sandbox, limits, command, keys, dask_address, finished)
        else:
            _run_local(todo, spec, seed, sandbox, limits, command, keys, jobs, finished, hidden=private_paths(spec, out_dir))
        if similarity:
            from grader.course import similarity as by_code
            from grader.paths import template_dir

            by_code.write(out_dir, by_code.compare(entries, template_dir()))
    except (GradingStopped, ClusterError):
        stopped = True
        raise
    finally:
        if not stopped:
            write_class_outputs(out_dir, [e.id for e in entries], spec, overrides=overrides, canvas_gradebook=canvas_gradebook)
    return counts


#: A batch stops when its first results (this many, or all when fewer) are all the grader's own
#: failures with one and the same error: a fault that hits every submission alike (a cluster
#: that cannot import the grader, a broken install) would otherwise give the class a gradebook of
#: zeros. A student's 0 (no file, a syntax error, nothing right) is never a grader failure.
STOP_AFTER = 5


def _fault_signature(failure: str, entry: Entry) -> str:
    """The failure's text with what names this submission taken out, so that one fault reads alike for all."""
    text = failure.replace(str(entry.path), "<submission>")
    return text.replace(entry.id, "<id>") if len(entry.id) > 3 else text


def private_paths(spec: Spec, out_dir: Path) -> tuple[str, ...]:
    """What student code must not read besides the grader's files: the results and the secret."""
    paths = [str(Path(out_dir).resolve())]
    if spec.hidden is not None and spec.hidden.secret_file:
        paths.append(spec.hidden.secret_file)
    return tuple(paths)


def _run_local(todo, spec, seed, sandbox, limits, command, keys, jobs, finished, hidden=()):
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    jobs = jobs or os.cpu_count() or 1
    if not todo:
        return
    _warm(spec)  # ground truth once, before the pool starts: forked, its processes inherit it; spawned, they read its cache
    context = pool_context()
    # A pool whose process dies (killed by student code, or out of memory) breaks for every job in
    # it: those are graded again, each alone in a pool of its own, so one that kills its pool again
    # only costs itself; it is not tried a third time.
    batches, retried = [(list(todo), min(jobs, len(todo)))], set()
    while batches:
        pending, workers = batches.pop(0)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(grade_one, e, spec, seed, sandbox, limits, command, keys[e.id], hidden): e for e in pending}
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        entry = futures.pop(future)
                        try:
                            finished(entry, future.result())
                        except BrokenProcessPool:
                            if entry.id in retried:
                                finished(entry, problem_result(entry, spec, "the process grading this submission was killed "
                                                                            "twice, the second time graded alone (does its code kill processes?)"))
                            else:
                                retried.add(entry.id)
                                batches.append(([entry], 1))
                        except GradingStopped:
                            raise
                        except Exception as exc:  # the grader failed on this one: record it, go on
                            finished(entry, _failed_result(entry, spec, exc))
            except (KeyboardInterrupt, GradingStopped):
                for future in futures:
                    future.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def pool_context():
    """How the pool's processes start: forked where this process runs no other thread (the `grade`
    command: one BLAS thread), which is quick and hands them the ground truth already derived; a
    fresh interpreter each (spawn) otherwise. Forking a threaded process may deadlock the child (a
    lock another thread held at the fork stays held in it; Python 3.12 warns), so a library caller
    with threads of its own (a BLAS thread pool, an event loop) gets spawned processes."""
    import multiprocessing  # here, not at the top: a self-check, which imports this module, never needs a pool

    if "fork" in multiprocessing.get_all_start_methods() and _threads() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _threads() -> int:
    """This process's threads, the system's and the libraries' included (0 where it cannot be read)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _run_dask(todo, spec, seed, sandbox, limits, command, keys, address, finished):
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise UsageError("--dask needs dask.distributed: pip install 'nn-grader[cluster]'") from None
    try:
        client = Client(address, timeout=CLUSTER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"--dask {address}: no dask scheduler answers there ({type(exc).__name__}: {exc})") from None
    with client:
        # The workers read the submissions by path: give them absolute ones (their folder is not ours).
        todo = [replace(e, path=Path(os.path.abspath(e.path))) for e in todo]
        check_cluster(client, address, [e.path for e in todo if not e.problem])
        futures = {client.submit(grade_one, e, spec, seed, sandbox, limits, command, keys[e.id], pure=False): e for e in todo}
        for future in as_completed(list(futures)):
            entry = futures[future]
            try:
                finished(entry, future.result())
            except GradingStopped:
                raise
            except Exception as exc:  # the grader (or the cluster) failed on this one: record it, go on
                finished(entry, _failed_result(entry, spec, exc))


#: Seconds to wait for the scheduler named by --dask to answer.
CLUSTER_TIMEOUT = 30
#: What a worker imports to grade (and the scheduler to read the tasks it is sent).
WORKER_MODULES = ("grader.course.batch", "grader.grade")
SCHEDULER_MODULES = ("grader.course.batch", "grader.assignment.spec")


def check_cluster(client, address: str, paths: list[Path]) -> None:
    """Stop with a ClusterError, before anything is graded, unless the scheduler and every worker of
    the cluster import this grader at this version and every worker sees every submission's path."""
    probe = _by_value(_cluster_probe)
    problems, pythons = [], set()
    try:
        where = {"the scheduler": client.run_on_scheduler(probe, [], SCHEDULER_MODULES)}
        where |= {f"worker {w}": found for w, found in sorted(client.run(probe, [str(p) for p in paths], WORKER_MODULES).items())}
    except Exception as exc:  # the probe itself cannot run there: a dask that does not match ours
        raise ClusterError(f"--dask {address}: the cluster cannot run the grader's check ({type(exc).__name__}: "
                           f"{_shorten(str(exc))}); install nn-grader {__version__} and the same dask as here "
                           "(pip install 'nn-grader[cluster]') into the scheduler's and every worker's Python") from None
    if len(where) == 1:
        raise ClusterError(f"--dask {address}: the cluster has no worker; start some (dask worker {address})")
    for who, found in where.items():
        python = f"{found['python']} on {found['host']}"
        if found["error"] or found["version"] != __version__:
            what = (f"grader {found['version']} is installed, not {__version__}" if found["version"] not in (None, __version__)
                    else f"cannot import the grader ({found['error']})")
            problems.append(f"{who} ({python}) {what}")
            pythons.add(python)
        if found["unseen"]:
            problems.append(f"{who} cannot see {found['unseen_count']} of the {len(paths)} submissions "
                            f"(e.g. {found['unseen'][0]})")
    if not problems:
        return
    todo = []
    if pythons:
        todo.append(f"install nn-grader {__version__} (pip install 'nn-grader[cluster]' from the same source as here) into "
                    + ", ".join(sorted(pythons)))
    if any("cannot see" in p for p in problems):
        todo.append("put the submissions on a file system every worker mounts at the same path as here "
                    "(a Canvas download or zip is unpacked into a temporary folder: unpack it there first)")
    raise ClusterError(f"--dask {address}: the cluster cannot grade this batch: {'; '.join(problems)}. "
                       f"To fix it, {' and '.join(todo)}. Nothing was graded.")


def _cluster_probe(paths, modules):
    """What a scheduler or worker has: the grader at which version, and which of `paths` it cannot see.

    Sent by value, never by reference: it must run where the grader cannot be imported."""
    import importlib
    import os
    import socket
    import sys

    found = {"python": sys.executable, "host": socket.gethostname(), "version": None, "error": ""}
    try:
        found["version"] = getattr(importlib.import_module("grader"), "__version__", "unknown")
        for name in modules:
            importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - whatever stops the import is the answer
        found["error"] = f"{type(exc).__name__}: {exc}"
    unseen = [p for p in paths if not os.path.exists(p)]
    found["unseen"], found["unseen_count"] = unseen[:3], len(unseen)
    return found


def _by_value(function):
    """A copy of `function` that cloudpickle sends by value (as a function of __main__ is)."""
    import builtins
    import types

    copy = types.FunctionType(function.__code__, {"__builtins__": builtins}, function.__name__)
    copy.__module__ = "__main__"
    return copy


def _warm(spec: Spec):
    """Derive and lambdify every item's ground truth in this process."""
    from grader.truth.rules import rules_for
    from grader.truth.symbolic import SymbolicTruth

    truth = SymbolicTruth(spec.epsilon)
    import numpy as np

    from grader.checking.points import K, N

    for cls in spec.classes.values():
        rules_for(cls)
        X = np.linspace(-1, 1, N * K).reshape(N, K)
        if cls.kind == "elementwise":
            truth.elementwise_jacobian(cls, X)
            truth.elementwise_forward(cls, X)
        elif cls.kind == "softmax":
            for k in (K, 1):
                truth.softmax_jacobian(X[:, :k])
        elif cls.kind == "objective":
            truth.objective_gradient(cls, X * 0 + 0.5, X * 0 + 0.3)
            truth.loss_entries(cls, X * 0 + 0.5, X * 0 + 0.3)


def _unchanged(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text()).get("resume_key") == key
    except (OSError, ValueError):
        return False


#: The class outputs' own names: a student called so gets another identifier.
RESERVED_IDS = {"index", "summary", "grades", "canvas_grades", "similarity"}


def unique_ids(entries: list[Entry]):
    seen: dict[str, int] = {}
    for e in entries:
        if e.id.lower() in RESERVED_IDS:
            e.id = f"{e.id}_student"
        if e.id in seen:
            seen[e.id] += 1
            e.id = f"{e.id}_{seen[e.id]}"
        else:
            seen[e.id] = 1


# ----------------------------------------------------------------------------- class outputs


def load_results(out_dir: Path, ids: list[str]):
    """The results of `ids` as they are on disk (a missing or unreadable one is left out)."""
    from grader.checking.results import SubmissionResult

    results = []
    for i in ids:
        try:
            results.append(SubmissionResult.from_dict(json.loads((Path(out_dir) / f"{i}.json").read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return results


#: Beside the results: the submissions whose reports carry the instructor's overrides (so that a
#: report whose override was removed is rendered again without it).
ADJUSTED_FILE = ".grader-adjusted"


def write_class_outputs(out_dir: Path, ids: list[str], spec: Spec, overrides: dict | None = None, canvas_gradebook=None):
    """Rebuild index.html, grades.csv and summary.json from the results on disk, with the
    instructor's `overrides` ({submission: [Override]}) applied to them and to the reports of
    the students they touch; the results on disk are never changed. canvas_grades.csv is the
    instructor's `canvas_gradebook` filled, else a file of its own for a Canvas download."""
    from grader.course import shared_answers, similarity
    from grader.outputs.html_report import render_report, render_summary
    from grader.outputs.writers import write_atomic
    from grader.course.overrides import apply

    out_dir = Path(out_dir)
    results = apply(load_results(out_dir, ids), overrides or {})
    adjusted = sorted(r.submission for r in results if r.adjusted)
    try:
        before = set(json.loads((out_dir / ADJUSTED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        before = set()
    for r in results:
        if r.submission in before or r.submission in adjusted:
            write_atomic(out_dir / f"{r.submission}.html", render_report(r))
    write_atomic(out_dir / ADJUSTED_FILE, json.dumps(adjusted))
    groups = shared_answers.groups(results)
    similar = similarity.read(out_dir, ids)
    write_atomic(out_dir / "index.html", render_summary(results, title=f"{spec.title} — class summary",
                                                        shared=groups, similarity=similar))
    write_atomic(out_dir / "grades.csv", gradebook_csv(results, spec))
    if canvas_gradebook is not None:
        write_atomic(out_dir / CANVAS_CSV, canvas_gradebook.filled({r.canvas_id: r.score for r in results if r.canvas_id}))
    elif any(r.canvas_id for r in results):
        write_atomic(out_dir / CANVAS_CSV, canvas_csv(results, spec))
    data = summary(results, spec)
    data["shared_wrong_answers"] = groups
    if similar is not None:
        data["similar_code"] = {k: v for k, v in similar.items() if k != "pairs"} | {
            "pairs": [{k: v for k, v in p.items() if not k.startswith("regions")} for p in similar["pairs"]]}
    write_atomic(out_dir / "summary.json", json.dumps(data, indent=2, ensure_ascii=False))


def gradebook_csv(results, spec: Spec) -> str:
    """One row per student: identifier, name, email, total, max, each item's points, and notes
    (why it could not be graded, late, problems met)."""
    items = [i.name for i in spec.items]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["identifier", "name", "email", "total", "max_score", "raw_score", "late_penalty", *items, "notes"])
    for r in sorted(results, key=lambda r: r.submission):
        by_name = {i.name: i for i in r.items}
        writer.writerow([csv_text(r.submission), csv_text(r.student_name), csv_text(r.student_email), f"{r.score:.2f}", f"{r.max_score:.2f}",
                         f"{r.raw_score:.2f}", f"{r.late_penalty:.2f}",
                         *(f"{by_name[n].score:.2f}" if n in by_name else "" for n in items), csv_text(_notes(r))])
    return buffer.getvalue()


def _notes(result) -> str:
    notes = []
    if result.problem:
        notes.append(f"not graded: {result.problem}")
    notes += result.score_notes
    notes += [f"{i.name}: {line}" for i in result.items for line in i.adjustment_lines]
    if result.late and not result.late_explanation:
        notes.append("marked late by the export")
    if result.errors:
        more = f" (and {len(result.errors) - 1} more, see the report)" if len(result.errors) > 1 else ""
        notes.append(f"problem while grading: {_shorten(result.errors[0])}{more}")
    elif not result.problem and result.raw_score <= 0:
        notes.append(_why_nothing(result))
    if result.sandbox_note:
        notes.append(f"sandbox: {result.sandbox_note}")
    return "; ".join(notes)


def _why_nothing(result) -> str:
    """Why no item earned a point, in one note: how many items ended how, and the first reason given."""
    graded = [i for i in result.items if i.max_score > 0] or list(result.items)
    if not graded:
        return "0 points: the spec has no graded item"
    counts: dict[str, int] = {}
    for i in graded:
        counts[i.status] = counts.get(i.status, 0) + 1
    if len(counts) == 1:
        shape = f"every item {next(iter(counts))}"
    else:
        shape = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    first = next((i for i in graded if _item_reason(i)), None)
    example = f"; e.g. {first.name}: {_shorten(_item_reason(first))}" if first else ""
    return f"0 points: {shape}{example}"


def _item_reason(item) -> str:
    """What an item's feedback says first: its reason, else its first failed check's diagnosis or message."""
    if item.reason:
        return item.reason
    check = next((c for c in item.checks if not c.passed and (c.diagnosis or c.message)), None)
    return (check.diagnosis or check.message) if check else ""


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


#: Written beside grades.csv for a Canvas download: Canvas's gradebook import format.
CANVAS_CSV = "canvas_grades.csv"
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas_csv(results, spec: Spec) -> str:
    """The totals as Canvas's gradebook import reads them (Grades → Import): the columns Student,
    ID (the Canvas user id, taken from each file name of the download), SIS User ID, SIS Login ID
    and Section, then one column for the assignment; a "Points Possible" row first, as Canvas's
    own export has. Students without a Canvas id (not from a Canvas download) are left out."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    title = spec.title or spec.name
    writer.writerow([*CANVAS_COLUMNS, title])
    max_score = max((r.max_score for r in results), default=0.0)
    writer.writerow(["    Points Possible", "", "", "", "", f"{max_score:.2f}"])
    for r in sorted(results, key=lambda r: (r.student_name.lower(), r.canvas_id)):
        if r.canvas_id:
            writer.writerow([csv_text(r.student_name or r.submission), r.canvas_id, "", "", "", f"{r.score:.2f}"])
    return buffer.getvalue()


def summary(results, spec: Spec) -> dict:
    return {
        "spec": spec.name,
        "grader_version": __version__,
        "count": len(results),
        "submissions": [{
            "submission": r.submission, "name": r.student_name, "email": r.student_email,
            "score": round(r.score, 4), "max_score": round(r.max_score, 4), "errors": len(r.errors),
            "raw_score": round(r.raw_score, 4), "late_penalty": round(r.late_penalty, 4), "late": r.late_explanation,
            "adjustments": [dict(a) for a in r.adjustments],
            "items": {i.name: {"score": round(i.score, 4), "max_score": i.max_score, "status": i.status, "diagnoses": i.diagnoses,
                               **({"graded_score": round(i.graded_score, 4), "adjustments": [dict(a) for a in i.adjustments]}
                                  if i.adjustments else {})}
                      for i in r.items},
        } for r in sorted(results, key=lambda r: r.submission)],
    }
