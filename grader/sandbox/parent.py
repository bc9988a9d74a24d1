"""The trusted side of the sandbox: starts a worker child, talks to it, and kills it.

Student code never runs in the grader's process. A `Sandbox` starts `untrusted_worker.py` as a
child process, under bubblewrap (`bubblewrap.py`) or as a plain process (`process.py`), and
speaks the wire format of `protocol.py` with it: only JSON and raw float64 bytes cross the
boundary, nothing is unpickled, and every reply is bounded (size, nesting, type) before it is
used. A reply that breaks the protocol is that student's error, never the grader's.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grader.exceptions import GraderError
from grader.sandbox import bubblewrap, process
from grader.sandbox.protocol import BadReply, HEADER, array_to_wire, busy_wait, frame, parse_reply, wire_to_bytes

if TYPE_CHECKING:
    import numpy as np

OUTPUT_LIMIT = 64 * 1024
SANDBOXES = ("auto", "bwrap", "process")


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per call and in all, memory, CPU, processes, file size."""

    call_timeout: float = 10.0
    load_timeout: float = 20.0  # starting the worker and importing the submission's modules
    total_timeout: float = 300.0
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 300
    processes: int = 64
    file_bytes: int = 16 * 1024**2
    tmp_bytes: int = 64 * 1024**2  # the sandbox's temporary space (bubblewrap's /tmp)


class WorkerDied(Exception):
    """Raised when the worker process exits or breaks the protocol (os._exit, a crash, a kill, a bad reply)."""


class WorkerStartFailed(GraderError):
    """Raised when a worker cannot be started, or dies or hangs before it says it is ready: before
    any of the submission's code has run, so it is the grader's (or its machine's) fault, never the
    student's: a single run stops with exit status 1, a batch records a grader failure."""


class WorkerTimeout(Exception):
    """Raised when one request takes longer than the per-call limit, or the submission's time is used up."""


class PostFailed(Exception):
    """Raised when a posted request (constructor, setter) turns out to have failed."""

    def __init__(self, during: str, data: dict):
        self.during = during
        results = data.get("results") if data.get("kind") == "ok" else None
        first = results[0] if isinstance(results, list) and results and isinstance(results[0], dict) else data
        self.outcome = decode_outcome(first)
        super().__init__(f"{during}: {self.outcome.describe()}")


def _succeeded(data: dict) -> bool:
    if data.get("kind") != "ok":
        return False
    results = data.get("results", [])
    return isinstance(results, list) and all(isinstance(r, dict) and r.get("kind") != "error" for r in results)


@dataclass(frozen=True)
class SandboxChoice:
    """The sandbox that will run student code, and what the person responsible should know about it."""

    kind: str
    note: str = ""


def bwrap_available() -> bool:
    """True when bubblewrap is installed and can create a sandbox here (probed once per process)."""
    return bubblewrap.available()


def resolve_sandbox(choice: str) -> SandboxChoice:
    """The sandbox for `choice`: `auto` takes bubblewrap where it works and says so when it does not;
    `bwrap` fails with the reason instead of downgrading."""
    usable, why = bubblewrap.probe()
    if choice == "auto":
        if usable:
            return SandboxChoice("bwrap")
        return SandboxChoice("process", f"{why}: graded in the plain process sandbox, which does not hide the file "
                                        "system" + ("" if process.as_root() else " and, as an ordinary user, is not a boundary"))
    if choice == "bwrap" and not usable:
        from grader.exceptions import UsageError

        raise UsageError(f"--sandbox bwrap: {why}. Fix that, or choose --sandbox process knowingly (README: threat model)")
    if choice == "process":
        return SandboxChoice("process", "" if process.as_root() else
                             "the plain process sandbox as an ordinary user is not a boundary: student code runs as you")
    return SandboxChoice(choice)


class _OutputTail:
    """Drains one of the child's output pipes, keeping the first OUTPUT_LIMIT bytes."""

    def __init__(self, stream):
        self.data = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream):
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            room = OUTPUT_LIMIT - len(self.data)
            self.data += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)
        stream.close()

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        return text + (f"\n… [{self.dropped} more bytes not kept]" if self.dropped else "")


@dataclass
class Outcome:
    """What one student call gave back: an array, None, another type, an exception, or nothing in time."""

    kind: str  # array | none | other | error | timeout | died
    value: np.ndarray | None = None
    type: str = ""
    detail: str = ""
    error_type: str = ""
    message: str = ""
    traceback: str = ""
    args_after: list = field(default_factory=list)
    dtype: str = ""  # the numpy dtype the student's code returned, before it became float64
    numeric: tuple = ()  # how a gradient method computed numerically: "complex", "own-forward" (NUMERIC_CODES)

    @property
    def ok(self) -> bool:
        return self.kind == "array"

    def describe(self) -> str:
        """One line saying what came back, for a message."""
        if self.kind == "array":
            return f"an array of shape {self.value.shape}"
        if self.kind == "none":
            return "None (is a `return` missing?)"
        if self.kind == "other":
            return f"{self.type}: {self.detail}" if self.detail else self.type
        if self.kind == "error":
            return f"{self.error_type}: {self.message}"
        if self.kind == "timeout":
            return "no answer within the time limit (an endless loop?)"
        return f"the process running your code died ({self.message})"


def encode_arg(value):
    """Encode one argument for the worker: arrays as float64 bytes + shape, lists as lists, objects by handle."""
    import numpy as np  # not at the top: a worker is launched before the grader imports numpy

    if isinstance(value, ObjectHandle):
        return {"obj": value.id}
    if isinstance(value, Ref):
        return {"ref": value.index}
    if isinstance(value, np.ndarray):
        return array_to_wire(np.ascontiguousarray(value, dtype="<f8").tobytes(), value.shape)
    if isinstance(value, list):
        return {"list": value}
    return value


def _text(value, limit: int = 4000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def decode_outcome(data) -> Outcome:
    """An Outcome from a reply's entry, whatever the child put there (anything unexpected is "other")."""
    if not isinstance(data, dict):
        return Outcome("other", type="?", detail="an unreadable reply")
    kind = data.get("kind")
    if kind == "array":
        import numpy as np

        try:
            raw, shape = wire_to_bytes(data)
        except BadReply:
            return Outcome("other", type=_text(data.get("type"), 200) or "?", detail="unreadable array data")
        value = np.frombuffer(raw, dtype="<f8").reshape(shape).astype(np.float64)
        numeric = data.get("numeric")
        return Outcome("array", value=value, type=_text(data.get("type"), 200), args_after=_after(data),
                       dtype=_text(data.get("dtype"), 32),
                       numeric=tuple(c for c in NUMERIC_CODES if isinstance(numeric, list) and c in numeric))
    if kind == "none":
        return Outcome("none", args_after=_after(data))
    if kind == "error":
        return Outcome("error", error_type=_text(data.get("type"), 200) or "Exception", message=_text(data.get("message")),
                       traceback=_text(data.get("traceback")), args_after=_after(data))
    return Outcome("other", type=_text(data.get("type"), 200) or "?", detail=_text(data.get("detail")), args_after=_after(data))


#: What the worker may say about how a gradient method computed (plain codes, never student text).
NUMERIC_CODES = ("complex", "own-forward")


def _after(data) -> list:
    after = data.get("args_after")
    return [decode_outcome(a) for a in after[:8]] if isinstance(after, list) else []


@dataclass(frozen=True)
class ObjectHandle:
    """A student object living in the worker, known to the parent by number only."""

    id: int
    cls: str


@dataclass(frozen=True)
class Ref:
    """An argument of a chained call (`Sandbox.chain`): the answer of the chain's call number `index`."""

    index: int


ForkServer = process.ForkServer


class Sandbox:
    """One submission's worker process: start, request, restart after a timeout or death, close."""

    def __init__(self, workdir: Path, *, kind: str, limits: Limits, load_request: dict,
                 fork_server: "ForkServer | None | bool" = None, mounts: tuple[tuple[str, str], ...] = (),
                 hidden: tuple[str, ...] = (), polling: float = 0.0):
        self.workdir = Path(workdir)
        # Seconds each side polls for the other's message before it sleeps (protocol.busy_wait):
        # for a single self-check, where a core for each side would otherwise idle.
        self.polling = polling
        if not mounts:  # numpy alone, the least the worker needs
            from grader.sandbox.environment import resolve

            mounts = resolve(("numpy",)).paths
        self.mounts = mounts  # (site folder, entry): the allowed packages' files, bound under bubblewrap
        self.kind = kind
        self.limits = limits
        self.load_request = load_request
        self.proc = None
        self.started_at = time.monotonic()
        self.restarts = 0
        self.stdout: _OutputTail | None = None
        self.stderr: _OutputTail | None = None
        self.output_log: list[str] = []
        self._next_obj = 0
        self._pending: list[str] = []
        self._launched = False  # a worker launch() began and start() has not yet taken
        self._ready = False  # the worker said it is ready: what kills it from then on may be the student's code
        self.load_result: dict | None = None
        self.placeholders: list[dict] = []  # packages the student imported that grading does not provide
        self.constructed: dict[str, str] = {}  # class -> the constructor call that worked, when not the spec's
        self.identity = None
        self.fork_server = None
        if kind == "process":
            # The grader's own files, the results and the secret, covered for the job (root only).
            self.hidden = [*process_hidden(), *hidden]
            self.identity = process.new_identity(self.workdir)
            process.hand_over(self.workdir, self.identity)
            if not process.as_root():
                process.not_dumpable()
            # fork_server: None means the shared one; False means a fresh interpreter for each worker.
            if fork_server is None:
                try:
                    self.fork_server = ForkServer.shared()
                except OSError:  # no fork server here: a fresh interpreter per worker, same limits
                    self.fork_server = None
            elif fork_server is not False:
                self.fork_server = fork_server

    # ------------------------------------------------------------------ process

    def launch(self) -> None:
        """Start a fresh worker's interpreter now, where that costs the grader no waiting: the
        grader goes on with its own work (importing numpy, reading its caches) while the worker
        starts on the other core, and `start()` then loads the submission into it. A worker from
        the fork server is left to `start()`, which warms up first (the server may still be starting)."""
        if self.kind == "process" and self.fork_server is not None:
            return
        self.close()
        self._spawn()
        self._launched = True

    def start(self, while_waiting=None) -> dict:
        """Start a fresh worker (or take the one `launch()` began), import the submission's modules
        in it, and return the load result.

        `while_waiting()` runs in the grader while the worker starts (its interpreter, numpy): work
        the grader would do anyway, such as reading its caches. It only warms: what it fails to do
        is done again when needed, so nothing it raises stops the start.
        """
        if not (self._launched and self.proc is not None):
            self.close()
            if self.kind == "process" and self.fork_server is not None:
                # The fork server has been starting since this sandbox was made: warm up before
                # asking it for a worker, which waits for it to be ready.
                _warm_up(while_waiting)
                while_waiting = None
            self._spawn()
        self._launched = False
        request = dict(self.load_request, polling=self.polling)
        for key in ("path", "path_last"):
            request[key] = [self.inside(p) for p in request.get(key, [])]
        try:
            self._send({"op": "load", **request})  # waits in the pipe: the worker reads it as soon as it is up
        except WorkerDied:
            pass  # it could not start: the answer below says why
        _warm_up(while_waiting)
        # The worker says it is ready before it reads the load request, so before it imports any
        # of the submission's files: what stops it until then is the grader's, not the student's.
        try:
            ready = self._receive(timeout=self.limits.load_timeout)
        except (WorkerDied, WorkerTimeout) as exc:
            self.close()
            said = self.output_log.pop() if self.output_log else ""
            why = "it was not ready in time" if isinstance(exc, WorkerTimeout) else exc
            raise WorkerStartFailed(f"the sandbox ({self.kind}) could not start its worker, before any of the submission's code "
                                    f"ran: {why}" + (f"; it said: {said[-500:]}" if said else "")) from None
        if ready.get("kind") != "ready":
            self.close()
            raise WorkerStartFailed(f"the sandbox ({self.kind}) could not start its worker: it did not say it was ready")
        self._ready = True
        self.load_result = self._absorb(self._receive(self._limit(self.limits.load_timeout)))
        return self.load_result

    def _spawn(self) -> None:
        """Create the worker process (not yet answering), with its pipes and output drains."""
        self._ready = False
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            if self.kind == "process" and self.fork_server is not None:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                try:
                    pid = self.fork_server.spawn([to_child_r, from_child_w, out_w, err_w], str(self.workdir),
                                                 self._env(), process.rlimits(self.limits), self.identity, self.hidden)
                finally:
                    os.close(out_w)
                    os.close(err_w)
                self.proc = process.Forked(self.fork_server, pid, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
            else:
                env = self._env()
                if self.kind == "process":
                    # As another user, the grader's folders are covered before the interpreter starts: the
                    # worker's files are then read from a copy outside them.
                    folder = process.staged_worker() if self.identity.uid is not None else str(process.WORKER_SCRIPT.parent)
                    command = [sys.executable, *process.worker_arguments(folder, str(to_child_r), str(from_child_w),
                                                                         *process.numpy_site())]
                    preexec = process.preexec(self.limits, self.identity, self.hidden)
                    env = {**env, **process.library_env(folder if self.identity.uid is not None else None)}
                else:
                    command = bubblewrap.command(read_fd=to_child_r, write_fd=from_child_w, copy=self.workdir,
                                                 mounts=self.mounts, tmp_bytes=self.limits.tmp_bytes)
                    preexec = _limits_only(self.limits)
                self.proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(to_child_r, from_child_w), cwd=str(self.workdir), env=env,
                    start_new_session=True, preexec_fn=preexec)
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:  # no worker at all: the grader's fault
            raise WorkerStartFailed(f"the sandbox ({self.kind}) could not start its worker: {type(exc).__name__}: {exc}") from None
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._to_child, self._from_child = to_child_w, from_child_r
        self.stdout, self.stderr = _OutputTail(self.proc.stdout), _OutputTail(self.proc.stderr)

    def _env(self) -> dict[str, str]:
        if self.kind == "bwrap":
            return process.scrubbed_env("/tmp")
        return process.scrubbed_env(str(self.workdir), self.identity.tmp)

    def inside(self, path) -> str:
        """The path as the student's process sees it (under bubblewrap the copy's folder is mounted at /sandbox)."""
        if self.kind != "bwrap":
            return str(path)
        return bubblewrap.inside_path(Path(path), self.workdir)

    def close(self):
        """Kill the worker and everything it started, keep what it printed, and clear what it left."""
        self._pending.clear()
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:  # stopped before it was ready, it may not be in a session of its own yet
            os.kill(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        for tail in (self.stdout, self.stderr):
            tail.thread.join(timeout=2)
        printed = (self.stdout.text() + self.stderr.text()).strip()
        if printed:
            self.output_log.append(printed)
        self.proc = None
        if self.identity is not None:
            process.sweep(self.identity)

    def restart(self):
        self.restarts += 1
        self.start()

    @property
    def printed_output(self) -> str:
        """Everything the student's code printed (stdout and stderr), truncated to OUTPUT_LIMIT."""
        parts = list(self.output_log)
        if self.proc is not None:
            parts.append((self.stdout.text() + self.stderr.text()).strip())
        text = "\n".join(p for p in parts if p)
        if len(text) <= OUTPUT_LIMIT:
            return text
        return text[:OUTPUT_LIMIT] + f"\n… [{len(text) - OUTPUT_LIMIT} more characters not kept]"

    # ------------------------------------------------------------------ protocol

    def post(self, message: dict, during: str):
        """Send a request whose answer is not needed now (a constructor, a setter): it is checked
        when the next `request` drains the pipe, which saves a round trip per call."""
        self._send(message)
        self._pending.append(during)

    def request(self, message: dict, timeout: float | None = None) -> dict:
        """Send a request and return its answer; raise PostFailed if a posted request before it failed."""
        self._send(message)
        failed = None
        while self._pending:
            during = self._pending.pop(0)
            data = self._absorb(self._receive(self._limit(timeout)))
            if failed is None and not _succeeded(data):
                failed = (during, data)
        data = self._absorb(self._receive(self._limit(timeout)))
        if failed:
            raise PostFailed(failed[0], failed[1])
        return data

    def _absorb(self, data: dict) -> dict:
        """Keep what a reply says besides its answer: placeholders created, a constructor variant used."""
        if not isinstance(data, dict):
            return data
        for origin in data.get("placeholders", [])[:50] if isinstance(data.get("placeholders"), list) else []:
            if isinstance(origin, dict) and len(self.placeholders) < 50:
                self.placeholders.append({k: str(origin.get(k, ""))[:200] for k in ("module", "file", "line")})
        if isinstance(data.get("constructed"), str) and isinstance(data.get("class"), str):
            self.constructed.setdefault(data["class"], data["constructed"][:200])
        return data

    def _limit(self, timeout: float | None) -> float:
        remaining_total = self.limits.total_timeout - (time.monotonic() - self.started_at)
        if remaining_total <= 0:
            raise WorkerTimeout("the submission's total time limit is used up")
        return min(timeout or self.limits.call_timeout, remaining_total)

    def _send(self, message: dict):
        if self.proc is None:
            raise WorkerDied("no worker running")
        self._limit(None)
        data = memoryview(frame(message))
        try:
            while data:
                data = data[os.write(self._to_child, data):]
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death()) from None

    def _receive(self, timeout: float) -> dict:
        """The next reply, bounded before it is parsed: anything the protocol does not allow kills the worker."""
        deadline = time.monotonic() + timeout
        (size,) = HEADER.unpack(self._read(HEADER.size, deadline))
        try:
            if size > MAX_REPLY_BYTES:
                raise BadReply(f"a reply of {size} bytes")
            return parse_reply(self._read(size, deadline))
        except BadReply as exc:
            self.close()
            raise WorkerDied(f"your code's process sent {exc}, which the grader does not read") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, remaining = [], size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout("no answer in time")
            ready = self.polling and busy_wait(self._from_child, min(self.polling, left))
            if not ready:
                ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                raise WorkerTimeout("no answer in time")
            chunk = os.read(self._from_child, min(remaining, 1 << 20))
            if not chunk:
                raise WorkerDied(self._death())
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _death(self) -> str:
        if self.proc is None:
            return "no worker"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = {"SIGKILL": " (killed: memory or CPU limit?)", "SIGXCPU": " (CPU time limit)", "SIGSEGV": " (crash)"}.get(name, "")
            return f"killed by {name}{hint}"
        return f"exited with status {code}" + (" (sys.exit or os._exit in your code?)" if self._ready else "")

    # ------------------------------------------------------------------ student objects

    def new(self, cls_key: str, *args, during: str = "", fallback: dict | None = None) -> ObjectHandle:
        """Construct a student object (posted: a failure surfaces at the next request, as PostFailed).

        `fallback` is the one variant to try when the call lacks a required parameter:
        {"kind": "data", "data": X} (an activation layer built on its input) or {"kind": "none"}.
        """
        handle = ObjectHandle(self._next_obj, cls_key)
        self._next_obj += 1
        message = {"op": "new", "class": cls_key, "obj": handle.id, "args": [encode_arg(a) for a in args]}
        if fallback is not None:
            message["fallback"] = {**fallback, "data": encode_arg(fallback["data"])} if "data" in fallback else fallback
        self.post(message, during or cls_key)
        return handle

    def tell(self, handle: ObjectHandle, method: str, args: tuple, during: str):
        """Call a method whose return value does not matter (a setter); posted like `new`."""
        self.post({"op": "call", "obj": handle.id, "method": method, "calls": [[encode_arg(a) for a in args]]}, during)

    def call_many(self, handle: ObjectHandle, method: str, calls: list[tuple], *, return_args=False,
                  watch: tuple[str, ...] = ()) -> list[Outcome]:
        """`watch`: the object's forward/eval names, to note a gradient computed numerically (Outcome.numeric)."""
        message = {"op": "call", "obj": handle.id, "method": method, "return_args": return_args,
                   "calls": [[encode_arg(a) for a in args] for args in calls]}
        if watch:
            message["watch"] = list(watch)
        data = self.request(message)
        results = data.get("results")
        if data.get("kind") != "ok" or not isinstance(results, list) or len(results) != len(calls):
            return [decode_outcome(data)] * len(calls)
        return [decode_outcome(r) for r in results]

    def chain(self, steps: list[tuple], outcomes: list[Outcome]) -> None:
        """Calls made in turn without a round trip each, for a sequence whose calls take earlier answers.

        Each step is (handle, method, args, watch, posted); an argument `Ref(i)` is the answer of
        step i, passed on as the grader would pass it (the float64 it reads). The worker sends each
        answer as it is known, and each is awaited as long as a call of its own (`call_timeout`);
        it stops after a step whose answer the next cannot use (not an array; for a posted step, a
        setter whose answer is not used, an error). The outcomes are appended to `outcomes` as they
        arrive, so that after a WorkerTimeout the caller knows which step did not answer."""
        message = {"op": "chain", "steps": [
            {"obj": handle.id, "method": method, "args": [encode_arg(a) for a in args],
             **({"watch": list(watch)} if watch else {}), **({"posted": True} if posted else {})}
            for handle, method, args, watch, posted in steps]}
        data = self.request(message)
        while data.get("kind") == "step" and len(outcomes) < len(steps):
            outcomes.append(decode_outcome(data.get("result")))
            if data.get("more") is not True or len(outcomes) == len(steps):
                return
            data = self._absorb(self._receive(self._limit(None)))
        if not outcomes:  # the request itself failed (the worker's own error): that is the first step's answer
            outcomes.append(decode_outcome(data))

#: A reply is at most this big (the protocol's own bound, checked before reading the body).
MAX_REPLY_BYTES = 24 * 1024 * 1024


#: The polling a single self-check asks for (Sandbox.polling): half a millisecond, longer than
#: most of either side's work between two messages (the grader's ~0.2 ms, a student call's less).
SELF_CHECK_POLLING = 0.0005


def polling_for_one() -> float:
    """SELF_CHECK_POLLING where this process may run on two cores or more (one for each side), else 0:
    polling on a single core would only take the time the other side needs."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return SELF_CHECK_POLLING if cores >= 2 else 0.0


def process_hidden() -> list[str]:
    """What the process sandbox covers for a job (root): the grader's files. Package folders stay,
    since the job imports numpy and the allowed packages from them."""
    from grader.sandbox.visibility import grader_paths

    return grader_paths()


def _warm_up(while_waiting) -> None:
    """Run the grader's warm-up while a worker starts; it only saves time later, so nothing it raises matters."""
    if while_waiting is None:
        return
    try:
        while_waiting()
    except Exception:
        pass


def _limits_only(limits):
    """Resource limits for the bwrap process itself (the sandbox's memory and processes)."""
    values = process.rlimits(limits)

    def apply():
        import resource

        for name, value in values.items():
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError, AttributeError):
                pass
    return apply
