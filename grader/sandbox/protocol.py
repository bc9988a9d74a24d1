"""The wire format both sides of the sandbox speak: framed JSON, arrays as raw float64 bytes.

Both sides import this file: the grader as `grader.sandbox.protocol`, the untrusted worker as a
plain module next to it (it imports nothing of the grader), so it uses the standard library only.

A message is a 4-byte big-endian length, then a JSON object. Arrays travel inside the JSON as
{"f8": "<base64 of little-endian float64 bytes>", "shape": [...]}: numbers only, nothing that
could be unpickled or run. The parent never trusts what the child sends: `parse_reply` bounds
its size, how many containers it holds (so nesting and repetition cannot blow up memory or the
parser's recursion) and its type, and raises `BadReply` for anything else.
"""
import base64
import json
import os
import select
import struct
import time

#: Largest message either side accepts: an array of MAX_ELEMENTS float64 in base64, with room.
MAX_MESSAGE_BYTES = 24 * 1024 * 1024
#: Most lists and objects a reply may hold: a legitimate one has a few per array it carries.
MAX_CONTAINERS = 50_000
#: Largest array the worker sends back (entries).
MAX_ELEMENTS = 1_000_000
HEADER = struct.Struct(">I")


class BadReply(ValueError):
    """Raised when bytes from the child are not a reply the grader accepts (size, nesting, type)."""


def frame(message: dict) -> bytes:
    """The bytes of one message: its length, then its JSON."""
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def parse_reply(body: bytes) -> dict:
    """The JSON object in `body`, or BadReply: never a RecursionError, a huge parse or a non-object."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise BadReply(f"a reply of {len(body)} bytes (at most {MAX_MESSAGE_BYTES})")
    containers = body.count(b"[") + body.count(b"{")
    if containers > MAX_CONTAINERS:
        raise BadReply(f"a reply holding {containers} lists and objects (at most {MAX_CONTAINERS})")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadReply(f"a reply that is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise BadReply(f"a reply that is a JSON {type(data).__name__}, not an object")
    return data


#: The longest either side may poll for the other's message before it sleeps (`busy_wait`).
MAX_BUSY_WAIT = 0.005


def busy_wait(fd: int, seconds: float) -> bool:
    """Poll `fd` for up to `seconds` without sleeping; True as soon as it is readable.

    A process that sleeps on a pipe is woken by the kernel when the other side writes; on a
    virtual machine a core that went idle takes tens of microseconds to wake (measured here: a
    pipe round trip between two processes 66 µs sleeping, 4 µs polling). A self-check makes some
    500 round trips between the grader and its worker, each side waiting a fraction of a
    millisecond for the other: polling that long first saves most of the waking. It costs CPU
    (bounded by `seconds` per wait), so only a single self-check on a machine with a core for
    each side asks for it."""
    if select.select([fd], [], [], 0)[0]:
        return True
    end = time.perf_counter() + min(seconds, MAX_BUSY_WAIT)
    while time.perf_counter() < end:
        if select.select([fd], [], [], 0)[0]:
            return True
    return False


def read_message(fd: int, polling: float = 0.0):
    """Read one message from `fd` (the worker's side: the parent is trusted); None at end of input.
    `polling`: seconds to poll before sleeping (`busy_wait`)."""
    if polling:
        busy_wait(fd, polling)
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        return None
    body = _read_exact(fd, size)
    return None if body is None else json.loads(body)


def _read_exact(fd: int, size: int):
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, message: dict) -> None:
    view = memoryview(frame(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def array_to_wire(raw_float64_le: bytes, shape) -> dict:
    """{"f8": base64, "shape": [...]}: an array as it crosses the boundary."""
    return {"f8": base64.b64encode(raw_float64_le).decode(), "shape": [int(n) for n in shape]}


def wire_to_bytes(value: dict) -> tuple[bytes, list[int]]:
    """(raw little-endian float64 bytes, shape) of a wire array; BadReply when they do not fit."""
    try:
        shape = [int(n) for n in value["shape"]]
        if len(shape) > 8 or any(n < 0 for n in shape):
            raise ValueError("shape")
        count = 1
        for n in shape:
            count *= n
        if count > MAX_ELEMENTS:
            raise ValueError("size")
        raw = base64.b64decode(value["f8"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadReply(f"unreadable array data ({exc})") from None
    if len(raw) != 8 * count:
        raise BadReply("array data whose size does not match its shape")
    return raw, shape
