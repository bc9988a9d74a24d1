"""The `grade` command: parses options and forwards to the library; exit codes live here only."""
from __future__ import annotations

import atexit
import os
import shlex
import sys
import threading
from pathlib import Path

import click

from grader import __version__
from grader.exceptions import GraderError, UsageError
from grader.sandbox import SANDBOXES, Limits
from grader.sandbox.process import ONE_BLAS_THREAD
from grader.outputs.terminal import printable


def _progress_bar(total: int):
    """A progress callback for a batch: a bar with counts and time left on a terminal, a line per result otherwise."""
    interactive = sys.stderr.isatty()
    bar = click.progressbar(length=total, label="grading", show_pos=True, show_eta=True, file=sys.stderr) if interactive else None

    def progress(event, counts, result):
        if event == "start" and interactive:
            bar.update(counts["skipped"])
            bar.render_progress()
        elif event == "done":
            if interactive:
                bar.update(1)
            else:
                click.echo(printable(f"[{counts['graded'] + counts['skipped']}/{counts['total']}] {result.submission}: "
                                     f"{result.score:.2f}/{result.max_score:.2f}{_how_settled(result)}"), err=True)
        elif event == "end" and interactive:
            bar.render_finish()
    return progress


def _how_settled(result) -> str:
    """" (late penalty −5.00, instructor's overrides)": what makes a total differ from its items' points."""
    parts = [f"late penalty −{result.late_penalty:.2f}"] if result.late_penalty else []
    if result.adjusted:
        parts.append("instructor's overrides")
    return f" ({', '.join(parts)})" if parts else ""


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True,
              help="Folder for each <submission>.json and .html; a batch adds index.html, grades.csv and summary.json.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Also write the result of a single submission to FILE "
              "(PATH is then one submission, never a batch).")
@click.option("--spec", "spec_file", type=click.Path(path_type=Path), help="Assignment spec: a TOML file or a built-in spec's name (grade-admin spec --list). Default: the built-in CS 615 assignment.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Submissions graded at once (batch grading).")
@click.option("--seed", type=int, default=None, help="Seed of the test points. Default: 0 for a self-check; official grading "
              "(a batch, --gradescope) draws them from the instructor's secret, or a fresh seed it records.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds one call to your code may take.")
@click.option("--sandbox", type=click.Choice(SANDBOXES), default="auto", show_default=True,
              help="bwrap: bubblewrap (no network, private filesystem); process: plain child process with limits; auto: bwrap where installed.")
@click.option("--gradescope", "gradescope_file", type=click.Path(path_type=Path), help="Write Gradescope's results.json for a single "
              "submission to FILE (PATH is then one submission, never a batch).")
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False),
              help="The instructor's secret (grade-admin secret FILE): official test points and hidden checks are drawn from it.")
@click.option("--batch", is_flag=True, help="Treat each PATH as a folder of submissions (detected when not given, "
              "except with --json or --gradescope).")
@click.option("--resume", is_flag=True, help="Batch: skip submissions whose files, spec and grader version are unchanged since their result.")
@click.option("--dask", "dask_address", metavar="ADDRESS", help="Batch: grade on a dask cluster (pip install 'nn-grader[cluster]').")
@click.option("--overrides", "overrides_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Batch: the instructor's overrides (CSV: student,item,points,comment; or TOML), applied to the outputs, "
                   "never to the results; later runs of the batch keep applying it.")
@click.option("--similarity", is_flag=True, help="Batch: compare every pair of submissions' code with copydetect "
              "(pip install 'nn-grader[similarity]'); the class summary shows the most similar pairs.")
@click.option("--canvas-gradebook", "canvas_gradebook", type=click.Path(path_type=Path, dir_okay=False),
              help="Batch of a Canvas download: the gradebook CSV you exported from Canvas (Grades → Export); "
                   "canvas_grades.csv is that file with --canvas-assignment's column filled, for Grades → Import.")
@click.option("--canvas-assignment", metavar="HEADER", help="With --canvas-gradebook: the assignment's column header as "
              "Canvas exported it, e.g. \"HW2 Gradients (222)\".")
@click.option("--submission-metadata", "metadata_file", type=click.Path(path_type=Path, dir_okay=False),
              help="One submission: Gradescope's submission_metadata.json, for the spec's [late] policy (the autograder passes it).")
@click.option("--fail-under", type=float, metavar="SCORE", help="Exit with status 3 when a submission scores below SCORE points (for your own CI).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the total.")
@click.option("-v", "--verbose", is_flag=True, help="Print the full feedback of every item that did not pass.")
@click.version_option(__version__, prog_name="grade")
def main(paths, out_dir, json_file, spec_file, jobs, seed, timeout, sandbox, gradescope_file, secret_file, batch, resume, dask_address,
         overrides_file, similarity, canvas_gradebook, canvas_assignment, metadata_file, fail_under, quiet, verbose):
    """Grade numpy neural-network layers and objectives.

    PATH is a submission (a folder, a single .py file, a notebook .ipynb, or a .zip) or a folder of
    submissions: one folder, .zip, .py or .ipynb per student, a Canvas bulk download, or a
    Gradescope export (detected; force with --batch). With --json or --gradescope a PATH is always
    one submission. Each item of the assignment (e.g. SoftmaxLayer.gradient) is checked
    against SymPy-derived ground truth; results go to OUT/<submission>.json and .html, and a
    batch adds OUT/index.html, grades.csv and summary.json.

    \b
    Examples:
      grade my_work/                        # self-check your folder
      grade hw2.zip --seed 7 -v             # other test points, full feedback
      grade submissions/ -j 4 --resume      # a whole class, skipping unchanged ones
    """
    from grader.api import run

    command = "grade " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        code = run(paths=list(paths), out_dir=out_dir, json_file=json_file, spec_file=spec_file, jobs=jobs, seed=seed, secret_file=secret_file,
                   limits=Limits(call_timeout=timeout), sandbox=sandbox, gradescope_file=gradescope_file,
                   quiet=quiet, verbose=verbose, command=command, batch=batch, resume=resume, dask_address=dask_address, fail_under=fail_under,
                   overrides_file=overrides_file, similarity=similarity, metadata_file=metadata_file,
                   canvas_gradebook=canvas_gradebook, canvas_assignment=canvas_assignment,
                   echo=lambda text: click.echo(printable(text)), note=lambda text: click.echo(printable(text), err=True),
                   progress_factory=_progress_bar)
    except UsageError as exc:
        click.echo(printable(f"grade: error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except GraderError as exc:
        click.echo(printable(f"grade: internal error: {exc}"), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("grade: interrupted; results written so far are kept", err=True)
        sys.exit(130)
    sys.exit(code)


def program():
    """The `grade` program (console script, `python -m grader`): `main`, then a quick exit."""
    ask_one_blas_thread()
    quick_exit(main)


def ask_one_blas_thread() -> None:
    """Before numpy is imported: one BLAS thread for this process (unless the user set otherwise),
    as the student's worker has. The grader's numpy works on matrices of a few dozen entries, where
    a BLAS thread pool only costs: its threads spin on the core the worker is starting on
    (importing numpy took 110 ms instead of 40 beside a starting worker)."""
    for name, value in ONE_BLAS_THREAD.items():
        os.environ.setdefault(name, value)


def quick_exit(command) -> None:
    """Run a click command as the program, then leave without tearing the interpreter down.

    When the command is done and its output flushed, freeing every module one by one (numpy,
    jinja2, mpmath) takes some 35 ms of a 0.35 s self-check for nothing: the system reclaims the
    process at once. Exit handlers still run. A thread still running (none should be), or output
    that cannot be flushed, gets Python's ordinary exit instead. Tests call `main` itself.
    """
    try:
        command()
        status = 0
    except SystemExit as exc:
        status = exc.code
    if status is None:
        status = 0
    elif not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    if threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()
    os._exit(status)
