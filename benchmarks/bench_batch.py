"""Benchmark: grade 200 generated submissions with a realistic mix of mistakes, per sandbox.

    python benchmarks/bench_batch.py [--count 200] [--jobs 2] [--sandbox process bwrap]

Prints, per sandbox: submissions per second, the per-submission time as a multiple of a bare
`python -c "import numpy"` measured in the same run, and peak memory (the grader's own, and the
largest child's). The target on a 2-core machine: under one numpy start-up per submission with
-j 2. Figures go into the README by hand, with the date and the machine.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BARE_ENV = dict(os.environ)  # the numpy start-up is measured as a user's shell would run it

from grader.cli import ask_one_blas_thread  # noqa: E402

ask_one_blas_thread()  # as the grade program does before numpy loads

from grader.course.batch import Entry, grade_batch  # noqa: E402
from grader.sandbox import Limits, bwrap_available  # noqa: E402
from grader.assignment.spec import load_spec  # noqa: E402

SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"
# A class as it comes: most submissions right or nearly so, a tail of typical mistakes, one
# endless loop in a hundred.
CORRECT = ["aliases_correct", "eps_variants_correct", "jacobian_forms_correct", "layout_one_class_per_file", "layout_relative_package"]
HANGS = ["softmax_gradient_loops_forever"]
CALL_LIMIT = 2.0  # seconds; a hanging submission waits it out twice (gradient, then backward calling it)


def make_class(dest: Path, count: int, seed: int = 615, hangs: bool = True) -> tuple[list[Entry], int]:
    """`count` submissions copied from the fixtures; returns them and how many hang."""
    rng = random.Random(seed)
    mistakes = sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir() and p.name not in CORRECT + HANGS
                      and not p.name.startswith("layout_self"))
    entries, hanging = [], 0
    for i in range(count):
        roll = rng.random()
        source = rng.choice(HANGS) if roll < 0.01 and hangs else rng.choice(CORRECT) if roll < 0.4 else rng.choice(mistakes)
        hanging += source in HANGS
        target = dest / f"student{i:03d}"
        shutil.copytree(SUBMISSIONS / source, target)
        entries.append(Entry(target.name, target))
    return entries, hanging


def numpy_startup(repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True, env=BARE_ENV)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sandbox", nargs="+", default=["process", "bwrap"])
    parser.add_argument("--no-hangs", action="store_true", help="leave out the endless-loop submissions")
    args = parser.parse_args()
    spec = load_spec()
    bare = numpy_startup()
    print(f"bare `python -c 'import numpy'`: {bare * 1000:.0f} ms (median of 7)")
    print(f"{args.count} submissions, -j {args.jobs}, call limit {CALL_LIMIT:g} s")
    for sandbox in args.sandbox:
        if sandbox == "bwrap" and not bwrap_available():
            print(f"{sandbox:8s} skipped: bubblewrap is not installed")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            entries, hanging = make_class(Path(tmp) / "class", args.count, hangs=not args.no_hangs)
            started = time.perf_counter()
            counts = grade_batch(entries, spec=spec, out_dir=Path(tmp) / "out", jobs=args.jobs, sandbox=sandbox,
                                 limits=Limits(call_timeout=CALL_LIMIT))
            wall = time.perf_counter() - started
        per = wall / counts["graded"]
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{sandbox:8s} {counts['graded'] / wall:6.2f} submissions/s   {per * 1000:6.0f} ms per submission = "
              f"{per / bare:4.2f} × numpy start-up   peak RSS: grader {own:.0f} MiB, largest child {children:.0f} MiB   "
              f"({hanging} endless-loop submissions, each waiting out its limit)")


if __name__ == "__main__":
    main()
