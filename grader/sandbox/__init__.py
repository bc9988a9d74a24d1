"""The boundary between the grader and student code.

- `untrusted_worker.py` is the only file that runs next to student code (in the child);
- `protocol.py` is the wire format both sides speak;
- `bubblewrap.py` and `process.py` are the two kinds of sandbox (trusted side);
- `visibility.py` says what student code must never see;
- `parent.py` is the grader's handle on one worker, whatever its kind;
- `environment.py` says which installed packages student code may import, and where they are.

It knows nothing of the assignment: it runs code and carries numbers. May import: the top-level
tools (`grader.exceptions`, `grader.paths`, `grader.cache`) only.
"""
from grader.sandbox.parent import (
    OUTPUT_LIMIT,
    SANDBOXES,
    ForkServer,
    Limits,
    ObjectHandle,
    Outcome,
    PostFailed,
    Ref,
    Sandbox,
    SandboxChoice,
    WorkerDied,
    WorkerStartFailed,
    WorkerTimeout,
    bwrap_available,
    decode_outcome,
    encode_arg,
    resolve_sandbox,
)

__all__ = ["OUTPUT_LIMIT", "SANDBOXES", "ForkServer", "Limits", "ObjectHandle", "Outcome", "PostFailed", "Ref", "Sandbox",
           "SandboxChoice", "WorkerDied", "WorkerStartFailed", "WorkerTimeout", "bwrap_available", "decode_outcome", "encode_arg", "resolve_sandbox"]
