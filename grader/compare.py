"""The one comparison engine and its one message builder.

Messages follow numpy.testing.assert_allclose's order: shape first, then NaN/inf positions,
then "Mismatched elements: n / N (p%)", the first few indices with got and expected, and the
largest absolute and relative differences against the tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHOW_INDICES = 5


@dataclass(frozen=True)
class Comparison:
    """The verdict of comparing an array with the expected one, and the message that explains it."""

    passed: bool
    message: str
    mismatched: int = 0
    total: int = 0


def close(got, expected, rtol: float, atol: float) -> bool:
    """True when shapes agree and every entry is within atol + rtol·|expected| (NaN/inf must match)."""
    return compare(got, expected, rtol=rtol, atol=atol).passed


def compare(got, expected, *, rtol: float, atol: float, what: str = "your result") -> Comparison:
    """Compare `got` with `expected` entry by entry and explain any difference."""
    got = np.asarray(got, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        return Comparison(False, f"Shape mismatch: {what} has shape {got.shape}, expected {expected.shape}.",
                          int(max(got.size, expected.size)), int(expected.size))
    total = int(expected.size)
    lines = []
    bad_special = np.zeros(expected.shape, dtype=bool)
    for label, test in (("NaN", np.isnan), ("+inf", lambda a: np.isposinf(a)), ("-inf", lambda a: np.isneginf(a))):
        g, e = test(got), test(expected)
        if (g != e).any():
            where = _indices(np.argwhere(g & ~e)) or _indices(np.argwhere(e & ~g))
            if (g & ~e).any():
                lines.append(f"{label} where a finite value was expected, at {where}.")
            else:
                lines.append(f"a finite value where {label} was expected, at {where}.")
            bad_special |= g != e
    finite = np.isfinite(got) & np.isfinite(expected)
    with np.errstate(all="ignore"):
        diff = np.where(finite, np.abs(got - expected), 0.0)
        bad = (diff > atol + rtol * np.abs(expected)) & finite
    bad |= bad_special
    mismatched = int(bad.sum())
    if mismatched == 0:
        return Comparison(True, "", 0, total)
    lines.append(f"Mismatched elements: {mismatched} / {total} ({100.0 * mismatched / max(total, 1):.3g}%)")
    shown = np.argwhere(bad)[:SHOW_INDICES]
    for idx in shown:
        idx = tuple(int(i) for i in idx)
        lines.append(f"  at {idx if idx else '()'}: got {_num(got[idx])}, expected {_num(expected[idx])}")
    if mismatched > len(shown):
        lines.append(f"  … and {mismatched - len(shown)} more")
    if finite.any():
        with np.errstate(all="ignore"):
            rel = np.where(finite & (expected != 0), diff / np.abs(np.where(expected == 0, 1, expected)), np.where(diff > 0, np.inf, 0))
        lines.append(f"Max absolute difference: {_num(diff.max())}  (tolerance atol={atol:g})")
        lines.append(f"Max relative difference: {_num(rel[finite].max())}  (tolerance rtol={rtol:g})")
    return Comparison(False, "\n".join(lines), mismatched, total)


def _indices(rows) -> str:
    items = [str(tuple(int(i) for i in r)) for r in rows[:SHOW_INDICES]]
    return ", ".join(items) + (" …" if len(rows) > SHOW_INDICES else "")


def _num(x) -> str:
    return np.format_float_positional(float(x), precision=6, unique=True, trim="-") if np.isfinite(x) and abs(x) < 1e6 and (x == 0 or abs(x) >= 1e-4) else f"{float(x):.6g}"
