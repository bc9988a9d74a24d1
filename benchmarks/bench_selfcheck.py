"""Benchmark: a student's self-check, `grade reference/`, warm (ground-truth cache on disk) and cold.

    python benchmarks/bench_selfcheck.py [--runs 7] [--sandbox auto] [--spec default|cnn|FILE]

Each run is a fresh `grade` process, timed from start to exit (what a student waits for). Cold
runs start from an empty cache folder; warm runs reuse one filled by a first run. Prints the
median and range of each, a bare `python -c "import numpy"` measured in the same run, and the
ratios. Targets on a 2-core machine: warm ≤ 0.5 s and cold ≤ 1.5 s; also, since machines differ,
warm ≤ 4 × the numpy start-up. Python writes its bytecode caches as usual (a first run compiles
the grader's modules once; that run is not counted). Figures go into the README by hand.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], env: dict, cwd: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took


def describe(name: str, times: list[float], bare: float) -> str:
    median = statistics.median(times)
    return (f"{name:6s} median {median * 1000:5.0f} ms  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, "
            f"{len(times)} runs) = {median / bare:4.1f} × numpy start-up")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sandbox", default="auto", help="auto, bwrap or process (as grade --sandbox)")
    parser.add_argument("--spec", default="default", help="a built-in spec's name or a file (as grade --spec)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        command = [sys.executable, "-m", "grader", str(ROOT / "reference"), "--sandbox", args.sandbox,
                   "--out", str(Path(tmp) / "out"), "--quiet", "--spec", args.spec]
        warm_cache = Path(tmp) / "warm"
        timed(command, {**env, "GRADER_CACHE_DIR": str(warm_cache)}, tmp)  # fills the cache, compiles bytecode
        bare = statistics.median(timed([sys.executable, "-c", "import numpy"], env, tmp) for _ in range(args.runs))
        warm = [timed(command, {**env, "GRADER_CACHE_DIR": str(warm_cache)}, tmp) for _ in range(args.runs)]
        cold = [timed(command, {**env, "GRADER_CACHE_DIR": str(Path(tmp) / f"cold{i}")}, tmp) for i in range(args.runs)]
    print(f"bare `python -c 'import numpy'`: {bare * 1000:.0f} ms (median of {args.runs})")
    print(describe("warm", warm, bare))
    print(describe("cold", cold, bare))


if __name__ == "__main__":
    main()
