"""The parent's side of the sandbox: starts the worker child, talks to it, and kills it.

Student code never runs in the grader's process. A `Sandbox` starts `grader/worker.py` as a
child process, either under bubblewrap (no network, a private filesystem holding only the
submission copy and the Python runtime) or as a plain process with rlimits, a scrubbed
environment and its own session, so that the whole process group can be killed at the end.
Only JSON and raw float64 bytes cross the boundary; nothing is unpickled.
"""
from __future__ import annotations

import base64
import functools
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
OUTPUT_LIMIT = 64 * 1024
SANDBOXES = ("auto", "bwrap", "process")
SANDBOX_BASE = "/sandbox"


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


class WorkerDied(Exception):
    """Raised when the worker process exits or breaks the protocol (os._exit, a crash, a kill)."""


class PostFailed(Exception):
    """Raised when a posted request (constructor, setter) turns out to have failed."""

    def __init__(self, during: str, data: dict):
        self.during = during
        self.outcome = decode_outcome(data.get("results", [data])[0] if data.get("kind") == "ok" else data)
        super().__init__(f"{during}: {self.outcome.describe()}")


def _succeeded(data: dict) -> bool:
    if data.get("kind") != "ok":
        return False
    return all(r.get("kind") != "error" for r in data.get("results", []))


class WorkerTimeout(Exception):
    """Raised when one request takes longer than the per-call limit, or the submission's time is used up."""


def unprivileged_ids() -> tuple[int | None, int | None]:
    """(uid, gid) the student's code runs as when the grader runs as root (nobody), else (None, None)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, None
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except (KeyError, ImportError):
        return 65534, 65534


def _others_can_run(program: str) -> bool:
    import stat

    path = Path(program).resolve()
    for folder in path.parents:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


def hand_over(folder: Path):
    """Make a submission's copy the unprivileged user's own, and its parent passable (root only)."""
    uid, gid = unprivileged_ids()
    if uid is None:
        return
    folder = Path(folder)
    os.chmod(folder.parent, 0o755)  # holds only this copy; imports list it (from <folder>.Layer import …)
    for path in [folder, *folder.rglob("*")]:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError:
            pass


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """Return True when bubblewrap is installed and can create a sandbox here (probed once per process)."""
    path = shutil.which("bwrap")
    if not path:
        return False
    try:
        probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def resolve_sandbox(choice: str) -> str:
    """Return the sandbox to use for `choice` (auto picks bwrap where it works)."""
    if choice == "auto":
        return "bwrap" if bwrap_available() else "process"
    if choice == "bwrap" and not bwrap_available():
        from grader.exceptions import UsageError

        raise UsageError("--sandbox bwrap: bubblewrap is not installed or cannot run here (Debian: apt-get install bubblewrap); use --sandbox process")
    return choice


def _numpy_site() -> list[str]:
    """The folders the child needs on sys.path to import numpy (and nothing of the grader)."""
    site = Path(np.__file__).resolve().parent.parent
    return [str(site)]


def _scrubbed_env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


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
    if isinstance(value, ObjectHandle):
        return {"obj": value.id}
    if isinstance(value, np.ndarray):
        return {"f8": base64.b64encode(np.ascontiguousarray(value, dtype="<f8").tobytes()).decode(), "shape": list(value.shape)}
    if isinstance(value, list):
        return {"list": value}
    return value


def decode_outcome(data: dict) -> Outcome:
    kind = data.get("kind")
    if kind == "array":
        try:
            shape = [int(n) for n in data["shape"]]
            raw = base64.b64decode(data["f8"], validate=True)
            if len(raw) != 8 * math.prod(shape):
                raise ValueError("size does not match shape")
            value = np.frombuffer(raw, dtype="<f8").reshape(shape).astype(np.float64)
        except Exception:
            return Outcome("other", type=str(data.get("type", "?")), detail="unreadable array data")
        return Outcome("array", value=value, type=str(data.get("type", "")), args_after=_after(data),
                       dtype=str(data.get("dtype", ""))[:32])
    if kind == "none":
        return Outcome("none", args_after=_after(data))
    if kind == "error":
        return Outcome("error", error_type=str(data.get("type", "Exception")), message=str(data.get("message", "")),
                       traceback=str(data.get("traceback", "")), args_after=_after(data))
    return Outcome("other", type=str(data.get("type", "?")), detail=str(data.get("detail", "")), args_after=_after(data))


def _after(data) -> list:
    return [decode_outcome(a) for a in data.get("args_after", []) if isinstance(a, dict)] if "args_after" in data else []


@dataclass(frozen=True)
class ObjectHandle:
    """A student object living in the worker, known to the parent by number only."""

    id: int
    cls: str


class ForkServer:
    """A numpy-warm process that forks one worker per submission (plain process sandbox only).

    It is started from `worker.py` with `python -I -S`, so it holds nothing of the grader; forking
    from it saves the interpreter and numpy start-up of every submission. Under bubblewrap each
    submission gets its own sandbox, so there the start-up is paid each time.
    """

    _shared: "ForkServer | None" = None

    def __init__(self):
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), "--fork-server", str(theirs.fileno()), *_numpy_site()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), env=_scrubbed_env("/"), cwd="/", start_new_session=True)
        theirs.close()
        self.lock = threading.Lock()
        self.pid_owner = os.getpid()  # a forked copy of this object must start its own server

    @classmethod
    def shared(cls) -> "ForkServer":
        """The fork server of this process, started on first use and stopped at exit."""
        if cls._shared is None or cls._shared.proc.poll() is not None or cls._shared.pid_owner != os.getpid():
            cls._shared = cls()
            import atexit

            atexit.register(cls._shared.stop)
        return cls._shared

    def spawn(self, fds: list[int], cwd: str, env: dict, limits: dict) -> int:
        import socket

        uid, gid = unprivileged_ids()
        message = {"op": "spawn", "cwd": cwd, "env": env, "limits": limits, "uid": uid, "gid": gid}
        with self.lock:
            socket.send_fds(self.control, [json.dumps(message).encode()], fds)
            return int(json.loads(self.control.recv(4096))["pid"])

    def wait(self, pid: int) -> int | None:
        with self.lock:
            self.control.sendall(json.dumps({"op": "wait", "pid": pid}).encode())
            return json.loads(self.control.recv(4096))["code"]

    def stop(self):
        try:
            self.control.close()
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class _Forked:
    """A worker forked by the fork server: enough of Popen's interface for the Sandbox."""

    def __init__(self, server: ForkServer, pid: int, stdout, stderr):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.returncode = None

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self.server.wait(self.pid)
        return self.returncode


class Sandbox:
    """One submission's worker process: start, request, restart after a timeout or death, close."""

    def __init__(self, workdir: Path, *, kind: str, limits: Limits, load_request: dict,
                 fork_server: "ForkServer | None | bool" = None, mounts: tuple[tuple[str, str], ...] = ()):
        self.workdir = Path(workdir)
        self.mounts = mounts  # (site folder, entry): the allowed packages' files, bound under bubblewrap
        self.kind = kind
        self.limits = limits
        self.load_request = load_request
        self.proc: subprocess.Popen | None = None
        self.started_at = time.monotonic()
        self.restarts = 0
        self.stdout: _OutputTail | None = None
        self.stderr: _OutputTail | None = None
        self.output_log: list[str] = []
        self._next_obj = 0
        self._pending: list[str] = []
        self.load_result: dict | None = None
        self.placeholders: list[dict] = []  # packages the student imported that grading does not provide
        self.constructed: dict[str, str] = {}  # class -> the constructor call that worked, when not the spec's
        # fork_server: None means the shared one; False means a fresh interpreter for each worker.
        self.fork_server = fork_server if kind == "process" and fork_server is not False else None
        if kind == "process":
            if fork_server is None:
                try:
                    self.fork_server = ForkServer.shared()
                except OSError:  # no fork server here: a fresh interpreter per worker, same limits
                    self.fork_server = None
            hand_over(self.workdir)

    # ------------------------------------------------------------------ process

    def _command(self, read_fd: int, write_fd: int) -> list[str]:
        python = sys.executable
        site = _numpy_site()
        if self.kind == "process":
            return [python, "-I", "-S", str(WORKER_SCRIPT), str(read_fd), str(write_fd), *site]
        prefix = Path(sys.base_prefix).resolve()
        stdlib = Path(os.__file__).resolve().parent
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
               "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for link in ("/bin", "/lib", "/lib64", "/sbin"):
            if os.path.islink(link):
                cmd += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                cmd += ["--ro-bind", link, link]
        cmd += ["--ro-bind", str(prefix), str(prefix)]
        # The interpreter's own site-packages may hold the grader and its reference: hide it.
        own_site = stdlib / "site-packages"
        if own_site.is_dir():
            cmd += ["--tmpfs", str(own_site)]
        # A virtual environment's python is a link to the base interpreter under the prefix;
        # run that one directly: the venv itself is not in the sandbox, numpy is bound below.
        python = str(Path(python).resolve())
        if not python.startswith(str(prefix)):
            cmd += ["--ro-bind", str(Path(python).parent), str(Path(python).parent)]
        for folder, name in self.mounts or [(f, n) for f in site for n in os.listdir(f)
                                            if n == "numpy" or n.startswith(("numpy.libs", "numpy-"))]:
            cmd += ["--ro-bind", os.path.join(folder, name), f"/opt/site/{name}"]
        cmd += ["--ro-bind", str(WORKER_SCRIPT), "/opt/grader-worker.py",
                "--bind", str(self.workdir.parent), SANDBOX_BASE, "--chdir", self.inside(self.workdir),
                "--setenv", "HOME", self.inside(self.workdir)]
        cmd += [python, "-I", "-S", "/opt/grader-worker.py", str(read_fd), str(write_fd), "/opt/site"]
        return cmd

    def _rlimits(self) -> dict[str, int]:
        limits = self.limits
        return {"RLIMIT_AS": limits.memory_bytes, "RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_FSIZE": limits.file_bytes,
                "RLIMIT_CORE": 0, "RLIMIT_NPROC": limits.processes}

    def _limits(self):
        import resource

        rlimits = self._rlimits()
        # A fresh interpreter can drop privileges only if the unprivileged user may run it;
        # the fork server has no such need (it forks, it does not exec).
        uid, gid = unprivileged_ids() if self.kind == "process" and _others_can_run(sys.executable) else (None, None)

        def apply():
            for name, value in rlimits.items():
                try:
                    resource.setrlimit(getattr(resource, name), (value, value))
                except (ValueError, OSError, AttributeError):
                    pass
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        return apply

    def start(self) -> dict:
        """Start a fresh worker, import the submission's modules in it, and return the load result."""
        self.close()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        home = self.inside(self.workdir)
        try:
            if self.fork_server is not None:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                try:
                    pid = self.fork_server.spawn([to_child_r, from_child_w, out_w, err_w], str(self.workdir),
                                                 _scrubbed_env(home), self._rlimits())
                finally:
                    os.close(out_w)
                    os.close(err_w)
                self.proc = _Forked(self.fork_server, pid, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
            else:
                self.proc = subprocess.Popen(
                    self._command(to_child_r, from_child_w),
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(to_child_r, from_child_w), cwd=str(self.workdir), env=_scrubbed_env(home),
                    start_new_session=True, preexec_fn=self._limits(),
                )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._to_child, self._from_child = to_child_w, from_child_r
        self.stdout, self.stderr = _OutputTail(self.proc.stdout), _OutputTail(self.proc.stderr)
        try:
            ready = self._receive(timeout=self.limits.load_timeout)
        except WorkerDied as exc:
            self.close()
            said = self.output_log.pop() if self.output_log else ""
            raise WorkerDied(f"the sandbox ({self.kind}) could not start Python: {exc}; it said: {said[-500:]}") from None
        if ready.get("kind") != "ready":
            raise WorkerDied(f"the worker did not start: {ready}")
        request = dict(self.load_request)
        for key in ("path", "path_last"):
            request[key] = [self.inside(p) for p in request.get(key, [])]
        self.load_result = self.request({"op": "load", **request}, timeout=self.limits.load_timeout)
        return self.load_result

    def inside(self, path) -> str:
        """The path as the student's process sees it (under bubblewrap the copy's folder is mounted at /sandbox)."""
        if self.kind != "bwrap":
            return str(path)
        rel = Path(path).relative_to(self.workdir.parent)
        return str(PurePosixPath(SANDBOX_BASE, *rel.parts))

    def close(self):
        """Kill the worker and everything it started, and keep what it printed."""
        self._pending.clear()
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
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
        body = json.dumps(message).encode()
        try:
            os.write(self._to_child, struct.pack(">I", len(body)) + body)
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death()) from None

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        header = self._read(4, deadline)
        (size,) = struct.unpack(">I", header)
        if size > 256 * 1024**2:
            raise WorkerDied("the worker sent an oversized message")
        try:
            return json.loads(self._read(size, deadline))
        except ValueError:
            raise WorkerDied("the worker sent something that is not JSON") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, remaining = [], size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout("no answer in time")
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
        return f"exited with status {code} (sys.exit or os._exit in your code?)"

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

    def call_many(self, handle: ObjectHandle, method: str, calls: list[tuple], *, return_args=False) -> list[Outcome]:
        data = self.request({"op": "call", "obj": handle.id, "method": method, "return_args": return_args,
                             "calls": [[encode_arg(a) for a in args] for args in calls]})
        if data.get("kind") != "ok":
            return [decode_outcome(data)] * len(calls)
        return [decode_outcome(r) for r in data["results"]]

    def describe(self, cls_key: str, names: list[str]) -> list[str]:
        return list(self.request({"op": "describe", "class": cls_key, "names": names}).get("methods", []))
