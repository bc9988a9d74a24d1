"""`grade-admin`: the instructor's commands (the student kit, the Gradescope autograder)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from grader import __version__
from grader.exceptions import GraderError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grade-admin")
def main():
    """Instructor tools: build what students receive and what Gradescope runs."""


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--spec", "spec_file", type=click.Path(path_type=Path, dir_okay=False), help="Assignment spec: a file or a built-in name (grade-admin spec --list). Default: the built-in default.")
def kit(out, spec_file):
    """Write the student kit to the new folder OUT: starting files and a self-check, no solution."""
    _run(lambda: _kit(out, spec_file))


def _kit(out, spec_file):
    from grader.course.deploy import build_kit

    folder = build_kit(out, spec_file=spec_file)
    click.echo(f"student kit written to {folder}/ — students run: pip install ./{folder.name} && cd my_work && grade .")


@main.command()
@click.argument("zip_path", metavar="OUT.zip", type=click.Path(path_type=Path))
@click.option("--spec", "spec_file", type=click.Path(path_type=Path, dir_okay=False), help="Assignment spec: a file or a built-in name (grade-admin spec --list). Default: the built-in default.")
@click.option("--secret-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="The secret of hidden checks (never give it to students).")
def autograder(zip_path, spec_file, secret_file):
    """Write Gradescope's autograder.zip (setup.sh, run_autograder, the grader and the spec)."""
    _run(lambda: _autograder(zip_path, spec_file, secret_file))


def _autograder(zip_path, spec_file, secret_file):
    from grader.course.deploy import build_autograder

    path, made = build_autograder(zip_path, spec_file=spec_file, secret_file=secret_file)
    click.echo(f"Gradescope autograder written to {path}: upload it as the assignment's autograder (Ubuntu image).")
    if made:
        click.echo(f"A new instructor secret was made in {made}: official test points come from it. Keep it (never in "
                   f"the student kit) and grade batches with it: grade submissions/ --secret-file {made}")


@main.command()
@click.argument("args", metavar="[NAME] [FILE]", nargs=-1)
@click.option("--list", "list_them", is_flag=True, help="List the built-in specs, one line each.")
def spec(args, list_them):
    """Print a built-in spec (NAME, default: the CS 615 assignment), or write it to FILE: the start of a new assignment."""
    _run(lambda: _spec(args, list_them))


def _spec(args, list_them):
    from grader.assignment.spec import load_spec
    from grader.assignment.specs import BUILT_IN, built_in_path
    from grader.exceptions import UsageError

    if list_them:
        if args:
            raise UsageError("--list takes no NAME or FILE")
        width = max(map(len, BUILT_IN))
        for name in BUILT_IN:
            loaded = load_spec(built_in_path(name))
            click.echo(f"{name:<{width}}  {loaded.description or loaded.title} ({loaded.max_score:g} points)")
        return
    if len(args) > 2:
        raise UsageError("give at most a built-in spec's NAME and a FILE to write it to")
    name, path = "default", None
    if args and args[0] in BUILT_IN:
        name, path = args[0], (args[1] if len(args) == 2 else None)
    elif len(args) == 2:
        raise UsageError(f"{args[0]}: not a built-in spec; built-in: {', '.join(BUILT_IN)}")
    elif args:
        path = args[0]
    text = built_in_path(name).read_text(encoding="utf-8")
    if path is None:
        click.echo(text, nl=False)
        return
    if Path(path).exists():
        raise UsageError(f"{path}: already exists; give a new file name")
    Path(path).write_text(text, encoding="utf-8")
    click.echo(f"the built-in spec {name} written to {path}: edit it, then grade with --spec {path}")


@main.command()
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
def secret(path):
    """Write a new instructor secret to FILE (readable by you only): official grading draws its test points from it."""
    _run(lambda: _secret(path))


def _secret(path):
    from grader.course.deploy import new_secret

    made = new_secret(path)
    click.echo(f"secret written to {made} (mode 600). Use it: grade-admin autograder autograder.zip --secret-file {made}; "
               f"for a batch: grade submissions/ --secret-file {made}")


def _run(action):
    try:
        action()
    except GraderError as exc:
        click.echo(f"grade-admin: error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
