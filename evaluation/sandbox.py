"""Run model-written Python in a separate, locked-down process.

Agents that let the model write code (``python_tools``, ``solver_checker_with_tools``)
call :func:`run_python` and feed the result back to the model.  The code never runs in
the evaluation process: a fresh interpreter starts with a scrubbed environment, and
whatever it does -- loop forever, fork, allocate, print, write, connect -- ends as
data in a :class:`SandboxResult`, never as an exception.

The kernel decides what the code can do (:mod:`evaluation.sandbox_jail`): its
filesystem is an allow-list -- the interpreter's directories and the system libraries,
read-only, plus one size-limited tmpfs for the work folder, ``/tmp`` and ``/dev/shm``
-- in its own mount, pid, ipc, uts and network namespaces, under rlimits, a private
uid (as root), no capabilities and a seccomp filter without exec or fork.  Nothing it
writes outlives the run, and the data, the results, the project and ``$HOME`` are not
in its view.  Where namespaces are unavailable the run does not start
(``killed_reason`` ``"start_failed: ..."``): the code never runs with less.

The in-process audit hook (PEP 578) refuses fork/exec, sockets, writes outside the
work folder and imports of the project early, with a message the model can read; a
determined adversary can get around it, so it is only a guard rail.

Why the code ended is learned from the kernel: the exit status and CPU time of
``wait4``.  The status pipe is closed before the code starts; the notes pipe the hook
writes to can only label a run that already failed.  :mod:`evaluation.sandbox_child`
is what runs inside the child.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from engines.errors import ConfigError, InfertuneError
from evaluation.sandbox_view import JAIL_FAILED_EXIT, MEMORY_EXIT, child_argv

REPO_ROOT = Path(__file__).resolve().parents[1]

# Private uids for sandboxed runs (as root): high enough to collide with no real
# account, a block per evaluation process (its pid picks it).  Each run takes the
# next uid of the block in turn, so a task of a killed run that is not yet reaped
# never counts against the next run's RLIMIT_NPROC.
_UID_BASE = 1_900_000_000
_UID_SLOTS = 1000
_READ_CHUNK = 1 << 16
_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxLimits:
    """Resource limits of one sandboxed run.

    ``max_disk_bytes`` is the size of the one tmpfs the code may write (work folder,
    ``/tmp`` and ``/dev/shm`` together); ``max_file_bytes`` caps each file.
    ``max_processes`` counts kernel tasks (processes and threads, the sandbox itself
    included); the kernel enforces it only where the sandbox gets its own uid (root).
    """

    wall_seconds: float = 5.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 << 20
    max_output_bytes: int = 64 << 10
    max_file_bytes: int = 16 << 20
    max_disk_bytes: int = 64 << 20
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
        if self.max_disk_bytes < 1 << 20:
            raise ConfigError(f"max_disk_bytes must be >= 1 MiB, got {self.max_disk_bytes}")
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


def run_python(code: str, limits: SandboxLimits = DEFAULT_LIMITS) -> SandboxResult:
    """Run ``code`` as a Python program in a fresh sandboxed interpreter.

    Safe to call from several threads at once.  Never raises for anything the code does.
    """
    start = time.monotonic()
    with _UID_POOL.lease() as uid:
        code_fd = os.memfd_create("sandbox-code")  # no file of the code on any disk
        os.write(code_fd, code.encode("utf-8", "surrogatepass"))  # lone surrogates are data too
        os.lseek(code_fd, 0, os.SEEK_SET)
        (status_read, status_write), (notes_read, notes_write) = os.pipe(), os.pipe()
        writers = (code_fd, status_write, notes_write)
        try:
            argv, env = child_argv(limits, uid, *writers, guard=_GUARD)
            proc = subprocess.Popen(
                argv,
                cwd="/",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=writers,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(status_read)
            os.close(notes_read)
            return _failed_start(str(exc), time.monotonic() - start)
        finally:
            for fd in writers:
                os.close(fd)
        try:
            return _supervise(proc, status_read, notes_read, limits, start)
        finally:
            os.close(status_read)
            os.close(notes_read)


class SandboxUnavailableError(InfertuneError):
    """This machine cannot build the sandbox (no user namespaces, say)."""


def require_isolation() -> None:
    """Check once per process that a sandboxed run starts here, before any model loads.

    Raises:
        SandboxUnavailableError: the kernel refused a layer; the message names it.
    """
    global _isolation_checked
    if _isolation_checked:
        return
    probe = run_python("pass")
    if (probe.killed_reason or "").startswith("start_failed"):
        raise SandboxUnavailableError(
            f"the Python tool's sandbox cannot start here: {probe.killed_reason.split(': ', 1)[1]};"
            f" run as root or allow unprivileged user namespaces (sysctl"
            f" kernel.unprivileged_userns_clone=1; on Ubuntu"
            f" kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    _isolation_checked = True


_isolation_checked = False


# The audit hook is on in every real run; tests turn it off to show that the kernel
# layers alone contain an attack, as they must against code that gets past the hook.
_GUARD = True


def _failed_start(why: str, duration: float) -> SandboxResult:
    return SandboxResult(
        stdout="",
        stderr="",
        exit_code=None,
        timed_out=False,
        killed_reason=f"start_failed: {why}",
        truncated=False,
        duration_seconds=duration,
    )


class _UidPool:
    """Hands out private uids to concurrent runs (only as root; else ``None``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: set[int] = set()
        self._next = 0

    @contextmanager
    def lease(self) -> Iterator[int | None]:
        if os.geteuid() != 0:
            yield None
            return
        with self._lock:
            slots = ((self._next + k) % _UID_SLOTS for k in range(_UID_SLOTS))
            slot = next((s for s in slots if s not in self._in_use), None)
            if slot is not None:
                self._in_use.add(slot)
                self._next = slot + 1
        try:
            # All slots busy: run as root, still without capabilities, rather than
            # share a uid whose process limit another run is using.
            yield (
                None if slot is None else _UID_BASE + (os.getpid() % 2_000_000) * _UID_SLOTS + slot
            )
        finally:
            if slot is not None:
                with self._lock:
                    self._in_use.discard(slot)


_UID_POOL = _UidPool()


def _supervise(
    proc: subprocess.Popen[bytes], status_fd: int, notes_fd: int, limits: SandboxLimits,
    start: float,
) -> SandboxResult:  # fmt: skip
    out, err = proc.stdout.fileno(), proc.stderr.fileno()  # type: ignore[union-attr]
    caps = {out: limits.max_output_bytes, err: limits.max_output_bytes,
            status_fd: 1 << 16, notes_fd: 1 << 16}  # fmt: skip
    deadline = start + limits.wall_seconds
    buffers: dict[int, bytearray] = {fd: bytearray() for fd in caps}
    try:
        our_reason = _collect(caps, buffers, deadline, (out, err))
        if our_reason is None and not _wait_exit(proc.pid, deadline):
            our_reason = "wall_time"  # the code closed its pipes but kept running
    finally:
        _kill_all(proc, _init_pid(buffers[status_fd]))
        exit_code, cpu = _reap(proc)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    status = bytes(buffers[status_fd]).decode("utf-8", "replace").splitlines()
    notes = bytes(buffers[notes_fd]).decode("utf-8", "replace").splitlines()
    refusals = tuple(n.removeprefix("refused: ") for n in notes if n.startswith("refused: "))
    failure = next((s.removeprefix("failed: ") for s in status if s.startswith("failed: ")), "")
    reason = our_reason or _classify(exit_code, cpu, limits, refusals, failure)
    return SandboxResult(
        stdout=bytes(buffers[out]).decode("utf-8", "replace"),
        stderr=bytes(buffers[err]).decode("utf-8", "replace"),
        exit_code=exit_code,
        timed_out=reason in ("wall_time", "cpu_time"),
        killed_reason=reason,
        truncated=our_reason == "output_limit",
        duration_seconds=time.monotonic() - start,
        cpu_seconds=cpu,
        refusals=refusals,
        protections=tuple(
            s.removeprefix("protection: ") for s in status if s.startswith("protection: ")
        ),
    )


def _collect(
    caps: dict[int, int], buffers: dict[int, bytearray], deadline: float, outputs: tuple[int, ...]
) -> str | None:
    """Read the child's pipes until they close, the deadline passes or output overflows.

    Reading at most ``cap`` bytes per stream and killing on overflow keeps a 100 MB
    print from blocking the child or flooding the evaluation's memory.  The pipes
    close when the run's pid namespace is gone: nothing outside it holds them.
    """
    with selectors.DefaultSelector() as selector:
        for fd in caps:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "wall_time"
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = caps[key.fd] - len(buffers[key.fd])
                buffers[key.fd] += chunk[:room]
                if len(chunk) > room and key.fd in outputs:
                    return "output_limit"
    return None


def _init_pid(status: bytearray) -> int | None:
    lines = bytes(status).decode("utf-8", "replace").splitlines()
    return next((int(line.split()[1]) for line in lines if line.startswith("init ")), None)


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


def _kill_all(proc: subprocess.Popen[bytes], init: int | None) -> None:
    """Kill the run's init (the kernel then kills its whole pid namespace), then the relay.

    The relay reaps init before it exits, so once the relay is reaped no task of the
    run is left to count against the next run's limits.
    """
    # While the relay lives, it has not reaped init, so init's pid is still init's.
    if init is not None and not _has_exited(proc.pid):
        with suppress(OSError):
            os.kill(init, signal.SIGKILL)
        _wait_exit(proc.pid, time.monotonic() + 2.0)
    for kill in (os.killpg, os.kill):
        with suppress(OSError):
            kill(proc.pid, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    # wait4 rather than Popen.wait: the CPU time tells a hard RLIMIT_CPU SIGKILL apart.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _classify(
    exit_code: int, cpu: float, limits: SandboxLimits, refusals: tuple[str, ...], failure: str
) -> str | None:
    """Why the run ended, from the kernel's exit status and CPU time.

    A refusal note (written by the hook, which the code could imitate) only names the
    cause of a run that exited with an error by itself.
    """
    if failure and exit_code == JAIL_FAILED_EXIT:
        return f"start_failed: cannot isolate the code ({failure})"
    # RLIMIT_CPU ends the code with SIGKILL (SIGXCPU where it is not a namespace's
    # init); the CPU time tells that apart from the same signals sent otherwise.
    if exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= limits.cpu_seconds - 0.1:
        return "cpu_time"
    if exit_code == MEMORY_EXIT:
        return "memory"
    if exit_code > 0 and refusals:
        return "refused: " + refusals[0].split(":", 1)[0]
    if exit_code < 0:
        try:
            return f"signal: {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"signal: {-exit_code}"
    return None
