"""The bubblewrap sandbox (trusted side): the command that starts a worker in its own namespaces.

Inside, student code sees only what it needs: the system's programs and libraries (`/usr` and
the `/lib*` links, read-only) with every package folder and the grader's own files covered by
empty filesystems; the interpreter, its shared libpython and its standard library; the packages
the spec allows, mounted one by one at /opt/site; the two files of the untrusted side at
/opt/worker; and its own copy of the submission, read-only, at /sandbox/<name>. /tmp (also HOME) is a size-capped tmpfs.
No network, no other process, a new session, no capabilities.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from grader.sandbox.process import WORKER_FILES, WORKER_SCRIPT, shared_libpython, worker_arguments, worker_bytecode
from grader.sandbox.visibility import grader_paths, hidden_paths, inside

SANDBOX_BASE = "/sandbox"
WORKER_DIR = "/opt/worker"
SITE_DIR = "/opt/site"
TMP_BYTES = 64 * 1024 * 1024


#: A probe begun by `probe_soon`, not yet waited for.
_begun: subprocess.Popen | None = None


def probe() -> tuple[bool, str]:
    """(usable, why not): bubblewrap is installed and can create a sandbox here (probed once per
    process; a probe begun by `probe_soon` is the one waited for)."""
    return _probe()


def probe_soon() -> None:
    """Begin the probe without waiting for it: its child takes some 5 ms, which the caller can
    spend reading its spec; `probe()` then collects the answer."""
    global _begun
    path = shutil.which("bwrap")
    if _begun is None and path and _probe.cache_info().currsize == 0:
        try:
            _begun = _start_probe(path)
        except OSError:
            pass  # probe() tries again and says why


def _start_probe(path: str) -> subprocess.Popen:
    return subprocess.Popen([path, "--ro-bind", "/", "/", "--unshare-all", "true"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[bool, str]:
    global _begun
    begun, _begun = _begun, None
    path = shutil.which("bwrap")
    if not path:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    child = begun
    try:
        child = child or _start_probe(path)
        _, err = child.communicate(timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if child is not None:
            child.kill()
        return False, f"bubblewrap is installed but could not be run ({exc})"
    if child.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        return False, ("bubblewrap is installed but cannot create namespaces here"
                       + (f" ({said[-1]})" if said else "") + ", as is usual inside Docker")
    return True, ""


def available() -> bool:
    return probe()[0]


def command(*, read_fd: int, write_fd: int, copy: Path, mounts, tmp_bytes: int = TMP_BYTES) -> list[str]:
    """The bwrap command line of a worker for the submission copy `copy` (its parent holds only it)."""
    python = str(Path(sys.executable).resolve())
    prefix = str(Path(sys.base_prefix).resolve())
    stdlib = str(Path(os.__file__).resolve().parent)
    roots = ["/usr", prefix]
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
           "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
            roots.append(link)
    if not inside(prefix, ["/usr"]):
        cmd += ["--ro-bind", prefix, prefix]
    if not inside(python, roots):  # a virtual environment's python links to the base interpreter: run that
        cmd += ["--ro-bind", str(Path(python).parent), str(Path(python).parent)]
        roots.append(str(Path(python).parent))
    # A shared libpython (pyenv's, most distributions' builds) is found as in the grader: the same
    # file, at the same path (bound where it lies outside the rest), and no loader cache inside.
    library = shared_libpython()
    if library:
        if not inside(library, roots):
            cmd += ["--ro-bind", library, library]
        cmd += ["--setenv", "LD_LIBRARY_PATH", str(Path(library).parent)]
    # Every package folder and the grader's own files, where they lie inside what is bound, are
    # covered: a system-wide `pip install` puts the grader in /usr/local/lib/python3.X/dist-packages.
    for path in hidden_paths():
        if inside(path, roots) and not inside(stdlib, [path]):
            cmd += ["--tmpfs", path]
    for folder, name in mounts:
        cmd += ["--ro-bind", os.path.join(folder, name), f"{SITE_DIR}/{name}"]
    for name in WORKER_FILES:
        cmd += ["--ro-bind", str(WORKER_SCRIPT.parent / name), f"{WORKER_DIR}/{name}"]
    for name, cached in worker_bytecode():
        cmd += ["--ro-bind", cached, f"{WORKER_DIR}/__pycache__/{Path(cached).name}"]
    inside_copy = f"{SANDBOX_BASE}/{copy.name}"
    cmd += ["--ro-bind", str(copy.parent), SANDBOX_BASE, "--chdir", inside_copy,
            "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp"]
    cmd += [python, *worker_arguments(WORKER_DIR, str(read_fd), str(write_fd), SITE_DIR)]
    return cmd


def inside_path(path: Path, copy: Path) -> str:
    """A path of the copy as the worker sees it."""
    rel = Path(path).relative_to(copy.parent)
    return str(Path(SANDBOX_BASE, *rel.parts))


__all__ = ["SANDBOX_BASE", "available", "command", "grader_paths", "inside_path", "probe"]
