"""Truth already computed, looked up instead of computed again.

`remembered` wraps a truth function or method: its result is kept under what was asked (the
function's module and qualified name, and its arguments: arrays by dtype, shape and bytes, a class
by its fingerprint, a method's `self` by its `remember_key()`), and the same question is answered
with a copy of it.

- **In memory** (bounded, least recently used dropped): a batch draws every student's test points
  from one seed, so from the second submission on most of the truth is looked up.
- **On disk, for a self-check**: `load(name)` before grading reads the numbers the last run of the
  same spec and seed computed; `store(name)` after it writes the numbers this run used (only when
  they changed). A student's second self-check then evaluates no derived function at the points it
  has seen (nor reads one from the cache: they are read when a new point needs one). The file
  holds numbers only, never code: a JSON index of each answer's type and shape and the raw float64
  bytes, each entry checked against the file's bounds before it is used; anything that does not fit
  is computed afresh. It lives in the grader's cache (`grader.cache`), beside the derived functions
  it was computed with, under the same key of the grader's source and library versions, and is as
  trusted as they are (README: threat model).

Answers are float64 arrays, floats, and bands, lists and tuples of them; one of another type (an
integer array) is kept in memory but not on disk.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import json
import pickle

import numpy as np

from grader import cache
from grader.truth.band import Band

#: Entries kept in memory; the oldest is dropped beyond.
LIMIT = 4096
#: What the file starts with (and the format's version).
MAGIC = b"nn-grader truth values 1\n"

_MEMORY: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()
_ABSENT = object()


class _Disk:
    """What `load` read (digest → encoded answer, and the numbers) and what this run used since."""

    def __init__(self, index: dict | None = None, numbers: np.ndarray | None = None):
        self.index = index or {}
        self.numbers = numbers if numbers is not None else np.zeros(0)
        self.used: dict[tuple, tuple[str, object]] = {}  # key → (digest, answer), in the order first used


#: Between load() and store(): the answers on disk and those used; None otherwise (nothing tracked).
_disk: _Disk | None = None


def remembered(function):
    """Remember what `function` returned for these very arguments (results copied out, never shared)."""
    identity = (function.__module__, function.__qualname__)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            key = (identity, _key_of(args), _key_of(tuple(sorted(kwargs.items()))))
        except TypeError:  # an argument without a key: computed each time
            return function(*args, **kwargs)
        value = _MEMORY.get(key, _ABSENT)
        if value is not _ABSENT:
            _MEMORY.move_to_end(key)
            if _disk is not None and key not in _disk.used:
                _disk.used[key] = (_digest(key), value)
            return _fresh(value)
        digest = _digest(key) if _disk is not None else ""
        if _disk is not None and digest in _disk.index:
            value = _decode(_disk.index[digest], _disk.numbers)
        if value is _ABSENT:
            value = _fresh(function(*args, **kwargs))
        _MEMORY[key] = value
        if len(_MEMORY) > LIMIT:
            _MEMORY.popitem(last=False)
        if _disk is not None:
            _disk.used[key] = (digest, value)
        return _fresh(value)
    return wrapper


# ----------------------------------------------------------------------------- on disk


def load(name: str) -> bool:
    """Start remembering on disk under `name`: read what the last run stored there (True when
    there was a readable file), and track the answers this run uses until `store`."""
    global _disk
    read = cache.read(name, ".truth", _parse, binary=True)
    _disk = read if isinstance(read, _Disk) else _Disk()
    return isinstance(read, _Disk)


def store(name: str) -> None:
    """Write the answers used since `load(name)` (those on disk with a known type), unless they
    are exactly what was read; then stop tracking."""
    global _disk
    disk, _disk = _disk, None
    if disk is None:
        return
    index, chunks, offset = {}, [], 0
    for digest, value in disk.used.values():
        encoded, parts = _encode(value, offset)
        if encoded is None:
            continue
        index[digest] = encoded
        chunks += parts
        offset += sum(p.size for p in parts)
    if set(index) == set(disk.index):
        return
    header = json.dumps(index, separators=(",", ":")).encode()
    numbers = np.concatenate(chunks).astype("<f8").tobytes() if chunks else b""
    cache.write(name, ".truth", MAGIC + header + b"\n" + numbers)


def stop() -> None:
    """Stop tracking without writing (a run that did not finish)."""
    global _disk
    _disk = None


def _parse(data: bytes, _path: str) -> _Disk:
    if not data.startswith(MAGIC):
        raise ValueError("not a truth-values file")
    header, newline, numbers = data[len(MAGIC):].partition(b"\n")
    index = json.loads(header)
    if not newline or not isinstance(index, dict) or len(numbers) % 8:
        raise ValueError("damaged")
    return _Disk(index, np.frombuffer(numbers, dtype="<f8"))


def _encode(value, offset: int) -> tuple[list | None, list[np.ndarray]]:
    """(the index entry, the float64 arrays it refers to, which start at `offset`), or (None, [])."""
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return ["a", offset, list(value.shape)], [value.ravel()]
    if isinstance(value, (np.float64, float)) and not isinstance(value, bool):
        return ["s" if isinstance(value, np.float64) else "f", offset], [np.array([value], dtype=float)]
    if isinstance(value, (Band, list, tuple)):
        out, parts = [], []
        for part in (value.nominal, value.lower, value.upper) if isinstance(value, Band) else value:
            encoded, more = _encode(part, offset)
            if encoded is None:
                return None, []
            out.append(encoded)
            parts += more
            offset += sum(p.size for p in more)
        return ["B" if isinstance(value, Band) else "t" if isinstance(value, tuple) else "l", out], parts
    return None, []


def _decode(entry, numbers: np.ndarray):
    """The answer an index entry stands for, or _ABSENT when it does not fit the file."""
    try:
        tag = entry[0]
        if tag in ("a", "s", "f"):
            offset = entry[1]
            shape = entry[2] if tag == "a" else []
            if not (type(offset) is int and isinstance(shape, list) and len(shape) <= 8
                    and all(type(n) is int and n >= 0 for n in shape)):
                return _ABSENT
            size = int(np.prod(shape)) if shape else 1
            if not 0 <= offset <= numbers.size - size:
                return _ABSENT
            values = numbers[offset:offset + size]
            if tag == "a":
                return values.reshape(shape).copy()
            return np.float64(values[0]) if tag == "s" else float(values[0])
        if tag in ("B", "l", "t") and isinstance(entry[1], list) and len(entry[1]) <= 64:
            parts = [_decode(e, numbers) for e in entry[1]]
            if any(p is _ABSENT for p in parts) or (tag == "B" and len(parts) != 3):
                return _ABSENT
            return Band(*parts) if tag == "B" else tuple(parts) if tag == "t" else parts
    except (TypeError, IndexError, ValueError, KeyError):
        pass
    return _ABSENT


# ----------------------------------------------------------------------------- keys


def _key_of(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if value is None or isinstance(value, (int, float, str, np.floating, np.integer)):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_key_of(v) for v in value)
    key = getattr(value, "remember_key", None)  # a class spec (its fingerprint), a truth (its ε)
    if key is not None:
        return key()
    raise TypeError(type(value).__name__)


def _digest(key) -> str:
    """A name of `key` that is the same in every process running this grader and these libraries
    (the file's own name holds their versions; hash() of a str is not the same): its pickle,
    which encodes each value completely, digested. (The bytes are never unpickled.)"""
    return hashlib.sha256(pickle.dumps(key, protocol=4)).hexdigest()[:32]


def _fresh(value):
    """A copy of a remembered result, so that no caller can change what the next one is given."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Band):
        return Band(*(v.copy() if isinstance(v, np.ndarray) else v for v in (value.nominal, value.lower, value.upper)))
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return value
