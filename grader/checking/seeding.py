"""Where the test points come from: a fixed seed for self-checks, a secret one for official grading.

The student kit ships the symbolic truth and the self-check's fixed seed, so a student can
precompute every answer on those points. Official grading (the Gradescope autograder, an
instructor's batch) must draw its points from something the kit does not hold: the instructor's
secret where there is one; otherwise a batch picks a fresh seed once, records it beside its
results (so `--resume` and regrades reuse it), and says so. A result records which kind of seed
ran, never the secret (nor the seed derived from it).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from grader.assignment.spec import Spec

SEED_FILE = ".grader-seed"


@dataclass(frozen=True)
class Seeding:
    """The seed the test points are drawn from, what kind it is, and the secret for hidden checks."""

    seed: int
    kind: str  # fixed (self-check) | given (--seed) | secret (the instructor's) | batch (fresh, recorded) | random
    secret: str | None = None

    @property
    def shown(self) -> int | None:
        """The seed as results may show it: never one derived from the secret."""
        return None if self.kind == "secret" else self.seed


def secret_seed(secret: str) -> int:
    return int.from_bytes(hashlib.sha256(secret.encode()).digest()[:4], "big")


def choose(spec: Spec, *, official: bool, seed: int | None = None, out_dir: Path | None = None,
           secret: str | None = None) -> Seeding:
    """The seeding of a run: `seed` when given; official runs from the secret (given, or the spec's),
    else a recorded fresh seed."""
    secret = secret or spec.secret()
    if seed is not None:
        return Seeding(seed, "given", secret)
    if not official:
        return Seeding(0, "fixed", secret)
    if secret:
        return Seeding(secret_seed(secret), "secret", secret)
    if out_dir is None:
        return Seeding(secrets.randbelow(2**31), "random", None)
    path = Path(out_dir) / SEED_FILE
    try:
        return Seeding(int(path.read_text().strip()), "batch", None)
    except (OSError, ValueError):
        value = secrets.randbelow(2**31)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
        return Seeding(value, "batch", None)


def describe(kind: str) -> str:
    """One line for people: where this run's test points came from."""
    return {
        "fixed": "the self-check's fixed points",
        "given": "from the seed given on the command line",
        "secret": "drawn from the instructor's secret (not in the student kit)",
        "batch": f"from a seed this batch picked and recorded in {SEED_FILE} beside its results",
        "random": "from a fresh random seed (no instructor secret was given)",
    }.get(kind, kind)
