"""The one comparison engine and its one message builder.

Messages follow numpy.testing.assert_allclose's order: shape first, then NaN/inf positions,
then "Mismatched elements: n / N (p%)", the first few indices with got and expected, how many
entries are not finite, and the largest absolute and relative differences among the finite
entries that differ (never "Max absolute difference: 0" for an answer wrong only by NaN or inf).
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


def compare(got, expected, *, rtol: float, atol: float, what: str = "your result", lower=None, upper=None) -> Comparison:
    """Compare `got` with `expected` entry by entry and explain any difference.

    With `lower` and `upper`, every value between them (and `expected`) is right: an entry is
    judged by its distance from that interval, as when any ε in a range is accepted. An infinite
    bound accepts every finite value on its side; NaN and ±inf are judged against `expected`.
    """
    got = np.asarray(got, dtype=float)
    expected = np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        return Comparison(False, f"Shape mismatch: {what} has shape {got.shape}, expected {expected.shape}.",
                          int(max(got.size, expected.size)), int(expected.size))
    total = int(expected.size)
    if lower is None and upper is None:  # the common case, all finite and close: what the general path concludes, sooner
        with np.errstate(all="ignore"):
            if np.isfinite(got).all() and np.isfinite(expected).all() and (np.abs(got - expected) <= atol + rtol * np.abs(expected)).all():
                return Comparison(True, "", 0, total)
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
    low, high = _interval(expected, lower, upper)
    with np.errstate(all="ignore"):
        nearest = np.clip(got, low, high)
        diff = np.where(finite, np.abs(got - nearest), 0.0)
        bad = (diff > atol + rtol * np.abs(np.where(np.isfinite(nearest), nearest, 0.0))) & finite
    bad |= bad_special
    mismatched = int(bad.sum())
    if mismatched == 0:
        return Comparison(True, "", 0, total)
    lines.append(f"Mismatched elements: {mismatched} / {total} ({100.0 * mismatched / max(total, 1):.3g}%)")
    shown = np.argwhere(bad)[:SHOW_INDICES]
    for idx in shown:
        idx = tuple(int(i) for i in idx)
        wide = high[idx] - low[idx] > atol + rtol * max(abs(low[idx]), abs(high[idx]))  # else not worth saying
        accepted = _accepted(low[idx], high[idx]) if wide or np.isinf(high[idx] - low[idx]) else ""
        lines.append(f"  at {idx if idx else '()'}: got {_num(got[idx])}, expected {_num(expected[idx])}{accepted}")
    if mismatched > len(shown):
        lines.append(f"  … and {mismatched - len(shown)} more")
    not_finite = int((~np.isfinite(got) & np.isfinite(expected)).sum())
    if not_finite:  # the differences below are of the finite entries only: say what they leave out
        lines.append(f"{not_finite} of {total} entries of {what} are not finite (NaN or ±inf) where a finite value was expected.")
    if (bad & finite).any():
        with np.errstate(all="ignore"):
            rel = np.where(finite & (nearest != 0), diff / np.abs(np.where(nearest == 0, 1, nearest)), np.where(diff > 0, np.inf, 0))
        lines.append(f"Max absolute difference: {_num(diff.max())}  (tolerance atol={atol:g})")
        lines.append(f"Max relative difference: {_num(rel[finite].max())}  (tolerance rtol={rtol:g})")
    return Comparison(False, "\n".join(lines), mismatched, total)


def _interval(expected: np.ndarray, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """The accepted interval of each entry: [min, max] of expected and the given bounds."""
    if lower is None and upper is None:
        return expected, expected
    bounds = [expected] + [np.broadcast_to(np.asarray(b, dtype=float), expected.shape) for b in (lower, upper) if b is not None]
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduce(bounds)
        high = np.fmax.reduce(bounds)
    return low, high


def _accepted(low: float, high: float) -> str:
    """How an accepted interval reads after "expected …", or nothing for a single value."""
    if not high > low:
        return ""
    if np.isinf(low) and np.isinf(high):
        return " (any finite value is right here)"
    if np.isinf(high):
        return f" (any finite value from {_num(low)} up is right)"
    if np.isinf(low):
        return f" (any finite value up to {_num(high)} is right)"
    return f" (any value from {_num(low)} to {_num(high)} is right)"


def _indices(rows) -> str:
    items = [str(tuple(int(i) for i in r)) for r in rows[:SHOW_INDICES]]
    return ", ".join(items) + (" …" if len(rows) > SHOW_INDICES else "")


def _num(x) -> str:
    return np.format_float_positional(float(x), precision=6, unique=True, trim="-") if np.isfinite(x) and abs(x) < 1e6 and (x == 0 or abs(x) >= 1e-4) else f"{float(x):.6g}"
