"""What the command line does, as library functions with keyword-only arguments."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from grader.course.batch import Entry, detect, grade_batch, looks_like_batch, unique_ids
from grader.exceptions import UsageError
from grader.grade import grade_submission
from grader.outputs.writers import write_atomic
from grader.sandbox import Limits, bubblewrap, resolve_sandbox
from grader.sandbox.process import as_root
from grader.checking.seeding import choose as choose_seeding
from grader.checking.seeding import describe as describe_seeding
from grader.assignment.spec import load_spec
from grader.intake.submission import submission_name


def run(*, paths: list[Path], out_dir: Path, json_file: Path | None = None, spec_file: Path | None = None,
        jobs: int | None = None, seed: int | None = None, limits: Limits | None = None, sandbox: str = "auto",
        gradescope_file: Path | None = None, quiet: bool = False, verbose: bool = False, command: str = "",
        batch: bool = False, resume: bool = False, dask_address: str | None = None, fail_under: float | None = None,
        secret_file: Path | None = None, overrides_file: Path | None = None, similarity: bool = False,
        metadata_file: Path | None = None, canvas_gradebook: Path | None = None, canvas_assignment: str | None = None,
        echo=print, note=None, progress_factory=None) -> int:
    """Grade the submissions at `paths`, write their results, and say what happened; return the exit status."""
    note = note or echo
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"{path}: no such file or folder (give a submission folder, a .py file, a notebook or a .zip)")
    if sandbox != "process":
        bubblewrap.probe_soon()  # while the spec is read
    spec = load_spec(spec_file)
    asked, sandbox = sandbox, resolve_sandbox(sandbox)
    with tempfile.TemporaryDirectory(prefix="grade-batch-") as workdir:
        entries, is_batch = [], False
        # For Gradescope's autograder (and --json) a path is one submission, whatever it holds: a
        # student's v1/ and v2/, or a stray submission_metadata.yml, never make it a batch.
        one_each = json_file is not None or gradescope_file is not None
        for path in paths:
            if batch or (not one_each and looks_like_batch(Path(path), spec)):
                detection = detect(Path(path), Path(workdir) / str(len(entries)))
                note(f"{path}: {detection.describe()}" + ("" if batch else " (detected: --json FILE grades it as one submission)"))
                entries += detection.entries
                is_batch = True
            else:
                entries.append(Entry(id=submission_name(Path(path)), path=Path(path)))
        if is_batch and sandbox.kind == "process" and not as_root() and asked != "process":
            raise UsageError(f"{sandbox.note}. Grading a class this way lets one student read and sink the others "
                             "(README: threat model): install bubblewrap, run as root, or pass --sandbox process to accept it")
        if sandbox.note:
            note(f"warning: sandbox: {sandbox.note}")
        seeding = choose_seeding(spec, official=is_batch or gradescope_file is not None, seed=seed,
                                 out_dir=out_dir if is_batch else None, secret=_read_secret(secret_file))
        if seeding.kind not in ("fixed", "given"):
            note(f"test points: {describe_seeding(seeding.kind)}")
        if (json_file or gradescope_file) and (is_batch or len(entries) != 1):
            raise UsageError("--json and --gradescope take a single submission; a batch writes OUT/<id>.json for each")
        if not entries:
            raise UsageError(f"no submission found in {', '.join(map(str, paths))}")
        if not is_batch and (overrides_file or similarity):
            raise UsageError("--overrides and --similarity are for a batch (a folder of submissions)")
        if (canvas_gradebook is None) != (canvas_assignment is None):
            raise UsageError("--canvas-gradebook FILE and --canvas-assignment NAME go together: the gradebook Canvas exported, "
                             "and the header of the assignment's column in it")
        if canvas_gradebook is not None and not is_batch:
            raise UsageError("--canvas-gradebook is for a batch (a Canvas download of the class's submissions)")
        if is_batch and metadata_file:
            raise UsageError("--submission-metadata is for one submission (Gradescope's autograder); a Gradescope "
                             "export's own submission_metadata.yml is read by itself")
        if len(entries) == 1 and not is_batch:
            dates, keys = _submission_dates(metadata_file)
            score = _single(entries[0], spec=spec, out_dir=out_dir, json_file=json_file, seed=seeding, limits=limits,
                            sandbox=sandbox, gradescope_file=gradescope_file, quiet=quiet, verbose=verbose,
                            command=command, echo=echo, dates=dates, keys=keys)
            return _below(fail_under, {entries[0].id: score}, note)
        unique_ids(entries)  # the identifiers results, reports and overrides use
        overrides = _overrides(overrides_file, Path(out_dir), entries, spec, note)
        _check_extensions(spec, entries, note)
        gradebook = _canvas_gradebook(canvas_gradebook, canvas_assignment, entries, spec, Path(out_dir), note)
        if similarity:
            from grader.course.similarity import require

            require()
        progress = progress_factory(len(entries)) if progress_factory else None
        started = time.monotonic()
        try:
            counts = grade_batch(entries, spec=spec, out_dir=out_dir, jobs=jobs, seed=seeding, sandbox=sandbox, limits=limits,
                                 resume=resume, command=command, progress=progress, dask_address=dask_address,
                                 overrides=overrides, similarity=similarity, canvas_gradebook=gradebook)
        finally:
            if progress:
                progress("end", None, None)
    echo(f"graded {counts['graded']}, unchanged and skipped {counts['skipped']}, grader failures {counts['failed']} "
         f"of {counts['total']} in {time.monotonic() - started:.1f} s")
    canvas = Path(out_dir) / "canvas_grades.csv"
    echo(f"class summary: {Path(out_dir) / 'index.html'}  gradebook: {Path(out_dir) / 'grades.csv'}"
         + (f"  Canvas import: {canvas}" if canvas.is_file() else ""))
    if fail_under is None:
        return 0
    from grader.course.batch import load_results

    return _below(fail_under, {r.submission: r.score for r in load_results(out_dir, [e.id for e in entries])}, note)


#: Beside a batch's results: where its overrides file is, so later runs (--resume, regrades) keep applying it.
OVERRIDES_POINTER = ".grader-overrides"


def _overrides(path: Path | None, out_dir: Path, entries, spec, note) -> dict:
    """The overrides to apply ({submission: [Override]}): from `path`, else from the file an earlier
    run of this batch named; a line naming an unknown student or item is a UsageError."""
    from grader.course.overrides import load, resolve

    pointer = out_dir / OVERRIDES_POINTER
    if path is None:
        try:
            remembered = pointer.read_text().strip()
        except OSError:
            return {}
        if not remembered:
            return {}
        if not Path(remembered).is_file():
            note(f"warning: the overrides file of an earlier run, {remembered}, is gone: no overrides applied")
            return {}
        path = Path(remembered)
        note(f"overrides: {path} (named by an earlier run of this batch; --overrides FILE names another)")
    found = load(path)
    by_student = resolve(found, {e.id: e.keys for e in entries}, [i.name for i in spec.items])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(pointer, str(Path(path).resolve()) + "\n")
    note(f"overrides: {len(found)} from {path}, for {len(by_student)} student{'s' * (len(by_student) != 1)}")
    return by_student


#: Beside a batch's results: the Canvas gradebook it fills and the column, so later runs (--resume) keep filling it.
CANVAS_POINTER = ".grader-canvas-gradebook"


def _canvas_gradebook(path: Path | None, assignment: str | None, entries, spec, out_dir: Path, note):
    """The instructor's Canvas gradebook export to fill (None without one), from the options or an
    earlier run of this batch; UsageError when it cannot be, and a warning naming each student of
    the download it has no row for."""
    from grader.course import canvas_gradebook

    pointer = out_dir / CANVAS_POINTER
    if path is None:
        try:
            remembered = json.loads(pointer.read_text())
            path, assignment = Path(remembered["gradebook"]), str(remembered["assignment"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not path.is_file():
            note(f"warning: the Canvas gradebook of an earlier run, {path}, is gone: canvas_grades.csv is Canvas's "
                 "new-assignment format again")
            return None
        note(f"Canvas gradebook: {path} (named by an earlier run of this batch; --canvas-gradebook FILE names another)")

    gradebook = canvas_gradebook.load(path, assignment)
    from_canvas = [e for e in entries if e.canvas_id]
    if not from_canvas:
        raise UsageError(f"--canvas-gradebook {path}: this batch is not a Canvas download (its file names carry no "
                         "Canvas user id to find each student's row by)")
    unknown = [e for e in from_canvas if e.canvas_id not in gradebook.students]
    if unknown:
        note(f"warning: {len(unknown)} student{'s' * (len(unknown) != 1)} of the download "
             f"{'have' if len(unknown) != 1 else 'has'} no row in {path} (not filled in canvas_grades.csv; "
             f"their totals are in grades.csv): " + ", ".join(f"{e.name or e.id} (ID {e.canvas_id})" for e in unknown))
    if len(from_canvas) != len(entries):
        note(f"warning: {len(entries) - len(from_canvas)} submission(s) without a Canvas user id are not in canvas_grades.csv")
    points = gradebook.points_possible
    try:
        differs = abs(float(points) - sum(i.points for i in spec.items)) > 1e-9
    except ValueError:
        differs = False
    if differs:
        note(f"warning: {gradebook.assignment!r} is worth {points} points in Canvas, the spec's items "
             f"{sum(i.points for i in spec.items):g}: the totals are written as graded")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(pointer, json.dumps({"gradebook": str(Path(path).resolve()), "assignment": assignment}) + "\n")
    note(f"Canvas gradebook: {path}, column {gradebook.assignment!r}"
         + (f" (worth {points} points in Canvas)" if points else "") + f", {len(from_canvas) - len(unknown)} rows to fill")
    return gradebook


def _check_extensions(spec, entries, note) -> None:
    """Warn about an extension in the spec that names nobody in the batch (a typo costs a student points)."""
    from grader.assignment.late import extension_students

    known = {k.lower() for e in entries for k in e.keys}
    for student in extension_students(spec.late):
        if student not in known:
            note(f"warning: [late.extensions] names {student!r}, who is not in this batch: no extension applied to anyone by it")


def _submission_dates(path: Path | None):
    """The dates and student keys in Gradescope's submission_metadata.json, for the late policy."""
    from grader.assignment.late import Dates, gradescope_dates, student_keys

    if path is None:
        return Dates(), []
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--submission-metadata {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--submission-metadata {path}: not Gradescope's submission metadata (a JSON object)")
    users = [u for u in data.get("users") or [] if isinstance(u, dict)]
    keys = [k for u in users for k in student_keys(str(u.get("id", "")), str(u.get("name", "")), str(u.get("email", "")))]
    return gradescope_dates(data), keys


def _read_secret(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise UsageError(f"--secret-file {path}: cannot be read ({exc.strerror}); make one with: grade-admin secret FILE") from None
    if not value:
        raise UsageError(f"--secret-file {path}: the file is empty; make one with: grade-admin secret FILE")
    return value


FAIL_UNDER_STATUS = 3


def _below(fail_under: float | None, scores: dict[str, float], note) -> int:
    """Exit status for --fail-under: 3 when any score is below it, else 0."""
    if fail_under is None:
        return 0
    low = {k: v for k, v in scores.items() if v < fail_under}
    for name, score in low.items():
        note(f"{name}: {score:.2f} is below --fail-under {fail_under:g}")
    return FAIL_UNDER_STATUS if low else 0


def _single(entry: Entry, *, spec, out_dir, json_file, seed, limits, sandbox, gradescope_file, quiet, verbose, command, echo,
            dates=None, keys=()) -> float:
    """Grade one submission, write its files, print its table; return its score."""
    from grader.course.batch import private_paths
    from grader.assignment.late import Dates, settle

    from grader.sandbox.process import fresh_worker_isolated

    # A fresh interpreter for the one worker (launched early), not the fork server, which pays off
    # only over many submissions: it preloads numpy and the standard library once for all of them.
    # As root, a fresh interpreter can drop to the job's uid only where that uid may run it (not a
    # pyenv under /root): there the fork server, which changes uid after fork without an exec, serves.
    result = grade_submission(entry.path, spec=spec, seed=seed, sandbox=sandbox, limits=limits, command=command,
                              hidden=private_paths(spec, out_dir), prepare=lambda: _prepare_outputs(spec),
                              fork_server=False if fresh_worker_isolated() else None, remember_truth=True,
                              alone=True)
    from grader.outputs.html_report import render_report  # imported by then (_prepare_outputs)
    from grader.outputs.writers import gradescope_json, result_json
    from grader.outputs.text_report import table

    settle(result, spec.late, dates or Dates(), keys)
    text = result_json(result)
    write_atomic(Path(out_dir) / f"{result.submission}.json", text)
    write_atomic(Path(out_dir) / f"{result.submission}.html", render_report(result))
    if json_file:
        write_atomic(Path(json_file), text)
    if gradescope_file:
        write_atomic(Path(gradescope_file), gradescope_json(result))
    if quiet:
        echo(f"{result.submission}: {result.score:.2f}/{result.max_score:.2f}")
    else:
        echo(table(result, verbose=verbose))
        echo(f"\nreport: {Path(out_dir) / (result.submission + '.html')}  (JSON beside it)")
        if not verbose and any(i.status != "passed" for i in result.items):
            echo("what is wrong in each item, and the expected rule: open the report, or run again with -v")
    return result.score


def _prepare_outputs(spec) -> None:
    """What writing one submission's outputs needs, made ready while its worker starts: the
    modules (imported here, not before the worker starts), the compiled report template and the
    rules it shows."""
    import grader.outputs.text_report  # noqa: F401
    from grader.outputs.html_report import ready_report
    from grader.truth.rules import rules_for

    ready_report(tuple(rule.mathml for cls in spec.graded_classes for rule in rules_for(cls).values()))
