"""The plain process sandbox (trusted side): a child process with limits, and as root a uid of its own.

Without bubblewrap, a submission's worker is a child process forked from a numpy-warm fork
server (`ForkServer`, started from `untrusted_worker.py`, so it holds nothing of the grader).
What protects what depends on who runs the grader:

- as root, every job gets an unprivileged uid of its own (`JobIdentity`): its copy and private
  temporary folder are 0700 and its own, so a classmate graded at the same time can neither read,
  rewrite nor signal it; in a private mount namespace the grader's files, the results folder and
  the secret are covered by empty filesystems; what the job left in /tmp is removed afterwards;
- as an ordinary user, the child runs as that user: it is *not* a boundary (README: threat
  model). The grader then marks itself not dumpable, so the child cannot read its environment or
  memory through /proc, and batch grading asks for `--sandbox process` explicitly.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

WORKER_SCRIPT = Path(__file__).resolve().parent / "untrusted_worker.py"
#: The untrusted side's two files: `untrusted_worker.py` and the wire format it imports.
WORKER_FILES = ("untrusted_worker.py", "protocol.py")
#: How a worker starts: its folder is put on sys.path and the worker imported as a module, not run
#: as a script, so that Python uses its bytecode (compiling the two files cost 10 ms per worker).
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); import untrusted_worker; untrusted_worker.main()"


def worker_arguments(folder: str, *args: str) -> list[str]:
    """The interpreter's arguments that start a worker whose two files lie in `folder` (as the worker
    sees it); their bytecode is written first where it is missing (`worker_bytecode`)."""
    worker_bytecode()
    return ["-I", "-S", "-c", _BOOT, folder, *args]


@functools.lru_cache(maxsize=1)
def staged_worker() -> str:
    """A copy of the worker's files (and their bytecode) outside the grader's folders, for a worker
    started afresh under a job's uid: its mount namespace covers the grader's folders before the
    interpreter starts (a fork-server worker is forked with its files already loaded). Root-owned,
    readable by all, writable by none; removed at exit. The files are the untrusted side's own,
    which student code may see anyway (bubblewrap mounts them at /opt/worker)."""
    import atexit
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="grade-worker-"))
    atexit.register(shutil.rmtree, folder, True)
    if "multiprocessing" in sys.modules:  # a pool's process leaves without exit handlers, but with these
        from multiprocessing import util

        util.Finalize(None, shutil.rmtree, args=(str(folder), True), exitpriority=0)
    for name in WORKER_FILES:
        shutil.copy2(WORKER_SCRIPT.parent / name, folder / name)  # the times too: the bytecode names them
    cached = worker_bytecode()
    if cached:
        (folder / "__pycache__").mkdir()
        for _, path in cached:
            shutil.copy2(path, folder / "__pycache__" / Path(path).name)
    library = unreachable_libpython()
    if library:
        # The job's user cannot reach the interpreter's libpython (a pyenv under /root, say): an
        # empty file stands in its place, which the job's mount namespace binds it onto (`preexec`).
        (folder / "lib").mkdir()
        (folder / "lib" / Path(library).name).touch()
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return str(folder)


@functools.lru_cache(maxsize=1)
def shared_libpython() -> str | None:
    """The shared libpython this interpreter runs on, None where it is linked statically.

    A worker's interpreter is this one, so it needs that file too, wherever its sandbox lets it
    look (Python built with --enable-shared: pyenv's, most distributions' own builds). Read from
    this process's memory map, which holds the loader's own answer whatever found the file
    (RUNPATH, the loader's cache, LD_LIBRARY_PATH); from sysconfig where /proc cannot be read.
    """
    import sysconfig

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                path = path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path  # replaced since: the new file
                if path.startswith("/") and Path(path).name.startswith("libpython") and ".so" in Path(path).name:
                    return path
        return None
    except OSError:
        pass
    name, folder = sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LIBDIR")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not name or not folder:
        return None
    path = os.path.join(folder, name)
    return path if os.path.exists(path) else None


def unreachable_libpython() -> str | None:
    """The interpreter's shared libpython when a job's user cannot read it where it lies."""
    library = shared_libpython()
    return library if library and not others_can_read(library) else None


def library_env(staged: str | None = None) -> dict[str, str]:
    """What a worker's (scrubbed) environment needs to find libpython where this process found it,
    whatever found it here; under a job's uid that cannot reach it, the folder of the `staged`
    worker where the real file is bound. Nothing for a statically linked interpreter."""
    library = shared_libpython()
    if not library:
        return {}
    if staged is not None and unreachable_libpython():
        return {"LD_LIBRARY_PATH": str(Path(staged) / "lib")}
    return {"LD_LIBRARY_PATH": str(Path(library).parent)}


@functools.lru_cache(maxsize=1)
def worker_bytecode() -> list[tuple[str, str]]:
    """(file, its bytecode) of the worker's files, written as Python would on import where it may
    (the worker cannot: its folder is read-only there); those whose bytecode is missing are left out."""
    import importlib.util
    import py_compile

    found = []
    for name in WORKER_FILES:
        source = WORKER_SCRIPT.parent / name
        cached = importlib.util.cache_from_source(str(source))
        try:
            fresh = os.path.exists(cached) and os.stat(cached).st_mtime >= os.stat(source).st_mtime
            if not fresh and not sys.dont_write_bytecode:
                py_compile.compile(str(source), cfile=cached, doraise=True)
                fresh = True
        except (OSError, py_compile.PyCompileError):
            fresh = False
        if fresh:
            found.append((name, cached))
    return found


#: Job uids start here: far above any account a system creates, below 2³¹.
JOB_UID_BASE = 0x40000000
_sequence = itertools.count()


def as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class JobIdentity:
    """Who a job's student code runs as (None: as the grader's own user) and its private temporary folder."""

    uid: int | None
    gid: int | None
    tmp: str


def new_identity(workdir: Path) -> JobIdentity:
    """A fresh identity for one job: as root, a uid no other running job has (pid and a counter)."""
    tmp = Path(workdir).parent / "tmp"
    tmp.mkdir(mode=0o700, exist_ok=True)
    if not as_root():
        return JobIdentity(None, None, str(tmp))
    uid = JOB_UID_BASE + os.getpid() * 16 + next(_sequence) % 16
    return JobIdentity(uid, uid, str(tmp))


def hand_over(workdir: Path, identity: JobIdentity) -> None:
    """Make the copy and the private temporary folder the job's own (0700); its parent passable.

    The parent holds only this copy (imports list it: `from <folder>.Layer import …`).
    """
    if identity.uid is None:
        return
    folder = Path(workdir)
    os.chmod(folder.parent, 0o755)
    for path in [folder, Path(identity.tmp), *_tree(folder)]:
        try:
            os.chown(path, identity.uid, identity.gid, follow_symlinks=False)
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o700)
        except OSError:
            pass


def _tree(folder: Path):
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            yield Path(root) / name


def sweep(identity: JobIdentity) -> None:
    """After a job (root only): kill what still runs as its uid and remove what it left in /tmp."""
    if identity.uid is None:
        return
    for entry in _proc_entries():
        try:
            if os.stat(f"/proc/{entry}").st_uid == identity.uid:
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != identity.uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _proc_entries() -> list[str]:
    try:
        return [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []


def not_dumpable() -> None:
    """Make this process's /proc files root's: a child running as the same user cannot read its
    environment (the instructor's secret) or memory. Harmless where it is not needed."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


def numpy_site() -> list[str]:
    """The folders the child needs on sys.path to import numpy (the allowed packages live there too);
    found without importing numpy, which the grader does only once its worker is on its way."""
    import importlib.util

    return [str(Path(importlib.util.find_spec("numpy").origin).resolve().parent.parent)]


#: One thread for BLAS and OpenMP: student code (and the grader) work on small matrices.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def scrubbed_env(home: str, tmp: str = "/tmp") -> dict[str, str]:
    """The whole environment student code gets: nothing of the grader's (tokens, secrets)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        **ONE_BLAS_THREAD,
        "MPLCONFIGDIR": tmp,
    }


def rlimits(limits) -> dict[str, int]:
    return {"RLIMIT_AS": limits.memory_bytes, "RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_FSIZE": limits.file_bytes,
            "RLIMIT_CORE": 0, "RLIMIT_NPROC": limits.processes}


def others_can_run(program: str) -> bool:
    path = Path(program).resolve()
    for folder in path.parents:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


def fresh_worker_isolated() -> bool:
    """Whether a fresh interpreter's worker runs as the job's own uid: always when not root; as root,
    only where other users may run this interpreter (a pyenv under /root they may not enter)."""
    return not as_root() or others_can_run(sys.executable)


def others_can_read(file: str) -> bool:
    """True when any user can reach `file` and read it (a shared library is read, then mapped)."""
    path = Path(file).resolve()
    try:
        return all(os.stat(folder).st_mode & stat.S_IXOTH for folder in path.parents) and bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def preexec(limits, identity: JobIdentity, hidden: list[str]):
    """What runs in a fresh interpreter's child before exec (no fork server): limits, mounts, uid.

    Fails closed: where the job's uid could not run the interpreter, student code is not run as
    root instead (it could then signal every process of the machine): the caller gets an OSError.
    """
    values = rlimits(limits)
    uid = identity.uid
    if uid is not None and not others_can_run(sys.executable):
        raise OSError(f"the process sandbox cannot run {sys.executable} as a job's own uid (a folder above it is "
                      "closed to other users) and does not run student code as root: use --sandbox bwrap, or an "
                      "interpreter other users may run")
    library = unreachable_libpython() if uid is not None else None
    # libpython where the job's user cannot reach it: bound onto the staged worker's stand-in
    # (LD_LIBRARY_PATH names that folder: `library_env`), in the job's own mount namespace.
    bind = (library, str(Path(staged_worker(), "lib", Path(library).name))) if library else None

    def apply():
        import resource

        for name, value in values.items():
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError, AttributeError):
                pass
        if uid is not None:
            private = hide(hidden)
            if bind is not None and not (private and bind_file(*bind)):
                # Said on the worker's stderr (an exception here would reach the grader without its
                # message); the worker then dies before it is ready: the grader's failure, not the student's.
                os.write(2, f"the job's user cannot read {bind[0]}, and it could not be bound where it can "
                            "(no mount namespace here)\n".encode())
                os._exit(126)
            os.setgroups([])
            os.setgid(identity.gid)
            os.setuid(uid)
    return apply


def hide(paths: list[str]) -> bool:
    """In a private mount namespace of this process, cover each path with an empty, unreadable
    tmpfs (root only). False when mount namespaces are not available here (Docker without
    CAP_SYS_ADMIN): the uid's file permissions are then all there is."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
            return False
        libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE: nothing leaks out
        for path in paths:
            if os.path.exists(path):
                libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0x2 | 0x4 | 0x8, b"size=4k,mode=000")  # nosuid,nodev,noexec
        return True
    except (OSError, AttributeError):
        return False


def bind_file(source: str, target: str) -> bool:
    """Bind `source` read-only onto the existing file `target`, in this process's mount namespace."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(source.encode(), target.encode(), None, 0x1000, None) != 0:  # MS_BIND
            return False
        libc.mount(b"none", target.encode(), None, 0x1000 | 0x20 | 0x1, None)  # MS_BIND | MS_REMOUNT | MS_RDONLY
        return True
    except (OSError, AttributeError):
        return False


class ForkServer:
    """A numpy-warm process that forks one worker per submission (plain process sandbox only).

    It is started from `untrusted_worker.py` with `python -I -S` and a scrubbed environment, so it
    holds nothing of the grader; forking from it saves the interpreter and numpy start-up of
    every submission. Under bubblewrap each submission gets its own sandbox instead.
    """

    _shared: "ForkServer | None" = None

    def __init__(self):
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        self.proc = subprocess.Popen(
            [sys.executable, *worker_arguments(str(WORKER_SCRIPT.parent), "--fork-server", str(theirs.fileno()), *numpy_site())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), env={**scrubbed_env("/"), **library_env()}, cwd="/", start_new_session=True)
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

    def spawn(self, fds: list[int], cwd: str, env: dict, limits: dict, identity: JobIdentity, hidden: list[str]) -> int:
        import socket

        message = {"op": "spawn", "cwd": cwd, "env": env, "limits": limits, "uid": identity.uid, "gid": identity.gid,
                   "hide": hidden if identity.uid is not None else []}
        with self.lock:
            try:
                socket.send_fds(self.control, [json.dumps(message).encode()], fds)
                return int(json.loads(self.control.recv(4096))["pid"])
            except (OSError, ValueError, KeyError, TypeError) as exc:  # no answer: say why, if the server has gone
                try:
                    code = self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    raise OSError(f"the fork server did not answer ({type(exc).__name__})") from None
                raise OSError(f"the fork server exited with status {code}") from None

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


class Forked:
    """A worker forked by the fork server: enough of Popen's interface for the Sandbox."""

    def __init__(self, server: ForkServer, pid: int, stdout, stderr):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.returncode = None

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self.server.wait(self.pid)
        return self.returncode
