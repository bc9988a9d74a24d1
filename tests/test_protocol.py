"""The wire format (grader/sandbox/protocol.py): the parent bounds whatever the child sends."""
import struct

import numpy as np
import pytest

from grader.sandbox.parent import decode_outcome
from grader.sandbox.protocol import (MAX_CONTAINERS, MAX_MESSAGE_BYTES, BadReply, array_to_wire, busy_wait, frame, parse_reply,
                                     read_message, wire_to_bytes, write_message)


def test_a_frame_is_its_length_then_json():
    data = frame({"kind": "ok"})
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4 and parse_reply(data[4:]) == {"kind": "ok"}


@pytest.mark.parametrize("body, why", [
    (b"[" * (MAX_CONTAINERS + 1) + b"]" * (MAX_CONTAINERS + 1), "lists and objects"),
    (b"[" * 40000 + b"]" * 40000, "RecursionError"),  # under the container bound, over the parser's depth
    (b"[1, 2, 3]", "not an object"),
    (b'"text"', "not an object"),
    (b"{not json", "not JSON"),
    (b"x" * (MAX_MESSAGE_BYTES + 1), "bytes"),
])
def test_anything_but_a_bounded_object_is_refused(body, why):
    with pytest.raises(BadReply, match=why):
        parse_reply(body)


def test_arrays_must_fit_their_shape_and_the_size_bound():
    raw = np.arange(6.0).tobytes()
    assert wire_to_bytes(array_to_wire(raw, (2, 3))) == (raw, [2, 3])
    for bad in ({"f8": "!!", "shape": [1]}, {"f8": array_to_wire(raw, (2, 3))["f8"], "shape": [7]},
                {"f8": "", "shape": [10**7]}, {"shape": [1]}, {"f8": "", "shape": "no"}):
        with pytest.raises(BadReply):
            wire_to_bytes(bad)


@pytest.mark.parametrize("entry", [None, 3, "x", [1], {"kind": "array", "f8": "AAAA", "shape": [10**9]},
                                   {"kind": "error", "type": ["not", "a", "string"], "message": {"x": 1}},
                                   {"kind": "array", "shape": [1], "f8": 5, "args_after": "no"}])
def test_a_reply_entry_of_any_shape_becomes_an_outcome(entry):
    outcome = decode_outcome(entry)
    assert outcome.kind in ("other", "error") and isinstance(outcome.describe(), str)


def test_polling_finds_a_message_waiting_gives_up_on_none_and_is_capped():
    import os
    import time

    read, write = os.pipe()
    try:
        assert busy_wait(read, 0.001) is False  # nothing comes: it gives up (and then one sleeps on the pipe)
        started = time.monotonic()
        assert busy_wait(read, 60.0) is False  # asked to poll a minute: capped at MAX_BUSY_WAIT
        assert time.monotonic() - started < 1.0
        write_message(write, {"op": "call", "n": 1})
        assert busy_wait(read, 0.001) is True
        assert read_message(read, polling=0.001) == {"op": "call", "n": 1}
    finally:
        os.close(read)
        os.close(write)
