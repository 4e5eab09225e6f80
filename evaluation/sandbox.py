"""Run model-written Python in a separate, locked-down process.

Agents that let the model write code (``python_tools``, ``solver_checker_with_tools``)
call :func:`run_python` and feed the result back to the model.  The code never runs in
the evaluation process: a fresh interpreter starts in a throwaway directory with a
scrubbed environment, and whatever it does -- loop forever, fork, allocate, print,
write, connect -- ends as data in a :class:`SandboxResult`, never as an exception.

Protections are layered.  The kernel layers hold against any code; the in-process
audit hook (PEP 578) refuses operations early with a clear message, but a determined
adversary can get around an audit hook, so it is a guard rail for the kernel layers.

* always (kernel): wall clock (SIGKILL of the process group), RLIMIT_CPU, RLIMIT_AS,
  RLIMIT_FSIZE, RLIMIT_NOFILE, no core dumps, no_new_privs, parent-death signal;
* as root (kernel): a private uid per run, so RLIMIT_NPROC really binds, files of the
  evaluation are not writable and every leftover process of that uid is killed; a
  network namespace with no interfaces; a mount namespace that hides the repository
  (and ``protected_paths``) under an empty read-only tmpfs -- directories the private
  uid could not traverse (``/root`` above a pyenv Python) are masked the same way,
  with the interpreter's own directories bound back inside;
* as another user (kernel, where user namespaces are allowed): a network namespace;
* always (audit hook): refuses fork/exec/subprocess/kill, sockets and name lookups,
  writes and deletes outside the work directory, reads of protected paths and of other
  processes' /proc entries, imports of the project's packages, ctypes and gc walks.

``SandboxResult.protections`` lists the kernel layers a run actually got.  This module
is the parent's side (limits, starting, supervising and classifying the child); what
runs inside the child (bootstrap, kernel layers, audit hook) is
:mod:`evaluation.sandbox_child`.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from engines.errors import ConfigError
from evaluation.sandbox_child import CHILD_SOURCE, GUARDED_EVENTS

REPO_ROOT = Path(__file__).resolve().parents[1]

# Private uids for sandboxed runs (as root): high enough to collide with no real
# account; one per concurrent run (of this process: the pid picks the block) so that
# RLIMIT_NPROC and the final kill see only that run's tasks.
_UID_BASE = 1_900_000_000
_UID_SLOTS = 100
_READ_CHUNK = 1 << 16


_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    ``max_processes`` counts kernel tasks (processes and threads, the sandbox itself
    included); the kernel enforces it only where the sandbox gets its own uid (root).
    """

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 << 20
    max_output_bytes: int = 64 << 10
    max_file_bytes: int = 16 << 20
    max_processes: int = 8

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ConfigError(f"wall_seconds must be > 0, got {self.wall_seconds}")
        if isinstance(self.cpu_seconds, bool) or not isinstance(self.cpu_seconds, int):
            raise ConfigError(f"cpu_seconds must be a whole number, got {self.cpu_seconds!r}")
        if self.cpu_seconds < 1:
            raise ConfigError(f"cpu_seconds must be >= 1, got {self.cpu_seconds}")
        if self.memory_bytes < 64 << 20:
            raise ConfigError(
                f"memory_bytes must be >= 64 MiB (an interpreter needs that),"
                f" got {self.memory_bytes}"
            )
        if self.max_output_bytes < 1:
            raise ConfigError(f"max_output_bytes must be >= 1, got {self.max_output_bytes}")
        if self.max_file_bytes < 0:
            raise ConfigError(f"max_file_bytes must be >= 0, got {self.max_file_bytes}")
        if self.max_processes < 1:
            raise ConfigError(f"max_processes must be >= 1, got {self.max_processes}")


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxResult:
    """What one run produced; failures of the code are data here, never exceptions.

    ``killed_reason`` is ``None`` for a run that ended by itself, else one of
    ``"wall_time"``, ``"cpu_time"``, ``"memory"``, ``"output_limit"``, ``"refused: <what>"``
    (the code died after the sandbox refused it something), ``"signal: <NAME>"`` or
    ``"start_failed: <why>"``.  ``refusals`` lists every refused operation, even ones
    the code caught and survived.
    """

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    killed_reason: str | None
    truncated: bool
    duration_seconds: float
    cpu_seconds: float = 0.0
    refusals: tuple[str, ...] = ()
    protections: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the code ran to completion and exited with status 0."""
        return self.exit_code == 0 and self.killed_reason is None


_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py)[ \t]*\r?\n(.*?)^[ \t]*```",
    re.MULTILINE | re.DOTALL | re.IGNORECASE,
)


def extract_code_blocks(text: str) -> list[str]:
    """Return the contents of the closed ```python (or ```py) fences in ``text``, in order.

    An unclosed fence (the model ran out of tokens mid-block) is left out: running
    half a program only produces a misleading error.
    """
    return [textwrap.dedent(m.group(1)).rstrip() for m in _FENCE.finditer(text)]


def run_python(
    code: str,
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    protected_paths: Sequence[str | os.PathLike[str]] = (),
) -> SandboxResult:
    """Run ``code`` as a Python program in a fresh sandboxed interpreter.

    Safe to call from several threads at once.  Never raises for anything the code
    does; ``protected_paths`` (e.g. the results directory) join the repository in
    being unreadable and unwritable from the sandbox.
    """
    start = time.monotonic()
    with (
        tempfile.TemporaryDirectory(
            prefix="infertune-sandbox-", ignore_cleanup_errors=True
        ) as work,
        _UID_POOL.lease() as uid,
    ):
        status_read, status_write = os.pipe()
        try:
            argv = _child_argv(code, work, uid, limits, protected_paths, status_write)
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=_child_env(work),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_write,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(status_read)
            return _failed_start(exc, time.monotonic() - start)
        finally:
            os.close(status_write)
        try:
            return _supervise(proc, status_read, uid, limits, start)
        finally:
            os.close(status_read)


def _failed_start(exc: OSError, duration: float) -> SandboxResult:
    return SandboxResult(
        stdout="",
        stderr="",
        exit_code=None,
        timed_out=False,
        killed_reason=f"start_failed: {exc}",
        truncated=False,
        duration_seconds=duration,
    )


class _UidPool:
    """Hands out private uids to concurrent runs (only as root; else ``None``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: set[int] = set()

    @contextmanager
    def lease(self) -> Iterator[int | None]:
        if os.geteuid() != 0:
            yield None
            return
        with self._lock:
            slot = next((s for s in range(_UID_SLOTS) if s not in self._in_use), None)
            if slot is not None:
                self._in_use.add(slot)
        try:
            # All slots busy: run without a private uid rather than share one, since
            # the final kill-by-uid would hit another run's processes.
            base = _UID_BASE + (os.getpid() % 2_000_000) * _UID_SLOTS
            yield None if slot is None else base + slot
        finally:
            if slot is not None:
                with self._lock:
                    self._in_use.discard(slot)


_UID_POOL = _UidPool()


def _child_env(work: str) -> dict[str, str]:
    # Built from nothing, so no secret of the evaluation's environment leaks in.
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": work,
        "TMPDIR": work,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",  # so a killed run still shows what it printed
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": work,
    }


def _child_argv(
    code: str,
    work: str,
    uid: int | None,
    limits: SandboxLimits,
    protected_paths: Sequence[str | os.PathLike[str]],
    status_fd: int,
) -> list[str]:
    code_file = Path(work, "main.py")
    code_file.write_text(code, encoding="utf-8", errors="surrogateescape")
    if uid is not None:
        os.chown(work, uid, uid)
        os.chown(code_file, uid, uid)
    protected = [os.path.realpath(REPO_ROOT), *(os.path.realpath(p) for p in protected_paths)]
    # The interpreter, its libraries and the work dir must stay reachable even if
    # they live under a protected path (a venv inside the repository, say).
    needed = {os.path.realpath(p) for p in (work, *_interpreter_dirs())}
    config = {
        "code_file": str(code_file),
        "work_dir": os.path.realpath(work),
        "uid": uid,
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_bytes,
        "max_file_bytes": limits.max_file_bytes,
        "max_processes": limits.max_processes,
        "masks": _mask_dirs(protected, needed),
        "guard_reads": protected,
        "allow_reads": sorted(needed),
        "project_modules": sorted(
            p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists()
        ),
        "status_fd": status_fd,
        "events": GUARDED_EVENTS,
    }
    return [sys.executable, "-s", "-P", "-c", CHILD_SOURCE, json.dumps(config)]


def _covers(root: str, paths: set[str]) -> bool:
    return any(p == root or p.startswith(root.rstrip("/") + "/") for p in paths)


def _mask_dirs(protected: list[str], needed: set[str]) -> list[str]:
    """Directories the child covers with an empty tmpfs (when it may mount).

    Protected directories, and directories a private uid could not traverse on the
    way to the interpreter (``/root`` for a pyenv Python, say); the child binds the
    needed directories back inside the masks.
    """
    masks = {p for p in protected if os.path.isdir(p)}
    for path in needed:
        masks.update(str(d) for d in Path(path).parents if not os.stat(d).st_mode & stat.S_IXOTH)
    return sorted(m for m in masks if not any(o != m and _covers(o, {m}) for o in masks))


def _interpreter_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    dirs = [sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent)]
    dirs += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    return dirs + site.getsitepackages()


def _supervise(
    proc: subprocess.Popen[bytes],
    status_fd: int,
    uid: int | None,
    limits: SandboxLimits,
    start: float,
) -> SandboxResult:
    fds = (proc.stdout.fileno(), proc.stderr.fileno(), status_fd)  # type: ignore[union-attr]
    caps = {fds[0]: limits.max_output_bytes, fds[1]: limits.max_output_bytes, status_fd: 1 << 16}
    deadline = start + limits.wall_seconds
    try:
        buffers, our_reason = _collect(proc, uid, caps, deadline, status_fd)
        if our_reason is None and not _wait_exit(proc.pid, deadline):
            our_reason = "wall_time"  # the code closed its pipes but kept running
    finally:
        _kill_all(proc, uid)
        exit_code, cpu = _reap(proc)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    status = bytes(buffers[fds[2]]).decode("utf-8", "replace").splitlines()
    refusals = tuple(
        line.removeprefix("refused: ") for line in status if line.startswith("refused: ")
    )
    reason = our_reason or _classify(exit_code, cpu, limits, "memory" in status, refusals)
    return SandboxResult(
        stdout=bytes(buffers[fds[0]]).decode("utf-8", "replace"),
        stderr=bytes(buffers[fds[1]]).decode("utf-8", "replace"),
        exit_code=exit_code,
        timed_out=reason in ("wall_time", "cpu_time"),
        killed_reason=reason,
        truncated=our_reason == "output_limit",
        duration_seconds=time.monotonic() - start,
        cpu_seconds=cpu,
        refusals=refusals,
        protections=tuple(
            line.removeprefix("protection: ") for line in status if line.startswith("protection: ")
        ),
    )


def _collect(
    proc: subprocess.Popen[bytes],
    uid: int | None,
    caps: dict[int, int],
    deadline: float,
    status_fd: int,
) -> tuple[dict[int, bytearray], str | None]:
    """Read the child's pipes until they close, the deadline passes or output overflows.

    Reading at most ``cap`` bytes per stream and killing on overflow keeps a 100 MB
    print from blocking the child or flooding the evaluation's memory.
    """
    buffers = {fd: bytearray() for fd in caps}
    with selectors.DefaultSelector() as selector:
        for fd in caps:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return buffers, "wall_time"
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = caps[key.fd] - len(buffers[key.fd])
                buffers[key.fd] += chunk[:room]
                if len(chunk) > room and key.fd != status_fd:
                    return buffers, "output_limit"
            if _has_exited(proc.pid):
                _kill_all(proc, uid)  # leftover tasks would hold the pipes open
    return buffers, None


def _has_exited(pid: int) -> bool:
    # WNOWAIT leaves the zombie in place, so the pid (and its process group id)
    # cannot be reused by an unrelated process before we kill the group.
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _wait_exit(pid: int, deadline: float) -> bool:
    while not _has_exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _kill_all(proc: subprocess.Popen[bytes], uid: int | None) -> None:
    for kill in (os.killpg, os.kill):
        with suppress(OSError):
            kill(proc.pid, signal.SIGKILL)
    if uid is None:
        return
    # Tasks that left the process group (setsid) still carry the run's private uid.
    for _ in range(100):
        pids = _live_tasks_of(uid)
        if not pids:
            return
        for pid in pids:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _live_tasks_of(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            pids.append(int(entry.name))
    return pids


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    # wait4 rather than Popen.wait: the CPU time tells a hard RLIMIT_CPU SIGKILL apart.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _classify(
    exit_code: int,
    cpu: float,
    limits: SandboxLimits,
    out_of_memory: bool,
    refusals: tuple[str, ...],
) -> str | None:
    if exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu >= limits.cpu_seconds):
        return "cpu_time"
    if out_of_memory:
        return "memory"
    if exit_code != 0 and refusals:
        return "refused: " + refusals[0].split(":", 1)[0]
    if exit_code < 0:
        try:
            return f"signal: {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"signal: {-exit_code}"
    return None
