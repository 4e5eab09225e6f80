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

``SandboxResult.protections`` lists the kernel layers a run actually got.
"""

from __future__ import annotations

import inspect
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

REPO_ROOT = Path(__file__).resolve().parents[1]

# Private uids for sandboxed runs (as root): high enough to collide with no real
# account; one per concurrent run (of this process: the pid picks the block) so that
# RLIMIT_NPROC and the final kill see only that run's tasks.
_UID_BASE = 1_900_000_000
_UID_SLOTS = 100
_READ_CHUNK = 1 << 16


def _names(text: str) -> list[str]:
    return text.split()


# Audit events the in-sandbox guard refuses (see _install_guard).
_GUARDED_EVENTS = {
    "process": _names(
        "os.fork os.forkpty os.system os.exec os.posix_spawn os.spawn subprocess.Popen"
        " pty.spawn os.startfile"
    ),
    "network": _names(
        "socket.connect socket.bind socket.sendto socket.sendmsg socket.getaddrinfo"
        " socket.gethostbyname socket.gethostbyname_ex socket.gethostbyaddr"
        " socket.getnameinfo urllib.Request http.client.connect ftplib.connect"
        " smtplib.connect imaplib.open poplib.connect nntplib.connect telnetlib.Telnet.open"
        " webbrowser.open"
    ),
    "low": _names(
        "ctypes.dlopen ctypes.dlsym ctypes.dlsym/handle ctypes.call_function ctypes.cdata"
        " gc.get_objects gc.get_referrers gc.get_referents resource.setrlimit"
        " resource.prlimit sys.remote_exec"
    ),
    # event -> [[index of a path it modifies, index of that path's dir_fd or None], ...]
    "writes": {
        **dict.fromkeys(["os.remove", "os.rmdir", "shutil.rmtree"], [[0, 1]]),
        **dict.fromkeys(["os.mkdir", "os.chmod", "os.mkfifo"], [[0, 2]]),
        **dict.fromkeys(["os.chown", "os.utime", "os.mknod"], [[0, 3]]),
        **dict.fromkeys(["os.rename", "os.link"], [[0, 2], [1, 3]]),
        "os.symlink": [[1, 2]],
        "shutil.move": [[0, None], [1, None]],
        **dict.fromkeys(
            _names(
                "os.truncate os.setxattr os.removexattr os.chflags os.lchflags os.lchmod"
                " shutil.chown shutil.make_archive tempfile.mkstemp tempfile.mkdtemp"
            ),
            [[0, None]],
        ),
        **dict.fromkeys(
            _names(
                "shutil.copyfile shutil.copymode shutil.copystat shutil.copytree"
                " shutil.unpack_archive"
            ),
            [[1, None]],
        ),
    },
}
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
        "events": _GUARDED_EVENTS,
    }
    return [sys.executable, "-s", "-P", "-c", _CHILD_SOURCE, json.dumps(config)]


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


# --- Child side ---------------------------------------------------------------------
# The functions below run inside the sandboxed interpreter: their source is sent with
# ``python -c``, so they import only the standard library, inside their bodies.


def _child_main() -> None:
    import json
    import sys
    import traceback  # noqa: F401  (loaded before the guard and the private uid)
    import types  # noqa: F401

    config = json.loads(sys.argv[1])
    with open(config["code_file"], encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    _isolate(config)
    _install_guard(config)
    status_fd = config["status_fd"]
    del config
    _run_user_code(source, status_fd)


def _isolate(config: dict) -> None:
    """Apply the kernel layers: namespaces, hidden paths, rlimits, private uid."""
    import ctypes
    import os
    import resource

    def note(line: str) -> None:
        os.write(config["status_fd"], f"protection: {line}\n".encode())

    libc = ctypes.CDLL(None, use_errno=True)
    is_root = os.geteuid() == 0
    newnet, newns, newuser = 0x40000000, 0x00020000, 0x10000000
    for flags in (newnet | newns, newnet):
        if libc.unshare(flags if is_root else flags | newuser) == 0:
            note("network namespace")
            if flags & newns and is_root:
                _mask_paths(libc, config, note)
            break
    cpu, memory = config["cpu_seconds"], config["memory_bytes"]
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (memory, memory),
        resource.RLIMIT_FSIZE: (config["max_file_bytes"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NOFILE: (256, 256),
    }
    # A private uid that cannot reach the interpreter's files would break every import.
    uid = config["uid"] if is_root and _reachable(config["allow_reads"]) else None
    if uid is not None:
        limits[resource.RLIMIT_NPROC] = (config["max_processes"],) * 2
    for which, value in limits.items():
        resource.setrlimit(which, value)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        note("private uid")
        note("process limit")
    pr_set_no_new_privs, pr_set_pdeathsig = 38, 1
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) == 0:
        note("no new privileges")
    # Set after setuid, which clears it: the sandbox dies with the evaluation.
    libc.prctl(pr_set_pdeathsig, 9, 0, 0, 0)


def _mask_paths(libc: object, config: dict, note: object) -> None:
    """Cover each mask with an empty read-only tmpfs, binding needed dirs back inside."""
    import os

    ms_nosuid, ms_nodev, ms_noexec, ms_remount, ms_rdonly = 2, 4, 8, 32, 1
    ms_bind, ms_rec, ms_private, mnt_detach = 4096, 16384, 1 << 18, 2
    masks, needed = config["masks"], config["allow_reads"]
    inside = [p for p in needed if any(p.startswith(m + "/") for m in masks)]
    inside = [p for p in inside if not any(p.startswith(q + "/") for q in inside)]
    fds = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in inside if os.path.isdir(p)]
    # Private propagation first, or the mounts would appear on the host too.
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        return
    flags = ms_nosuid | ms_nodev | ms_noexec
    done = [m for m in masks if libc.mount(b"tmpfs", m.encode(), b"tmpfs", flags, b"mode=755") == 0]
    for path, fd in fds:
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        if libc.mount(source, path.encode(), None, ms_bind | ms_rec, None) != 0:
            for mask in done:
                libc.umount2(mask.encode(), mnt_detach)
            return
        os.close(fd)
    for mask in done:
        libc.mount(None, mask.encode(), None, ms_remount | ms_rdonly | flags, None)
        note(f"hidden {mask}")


def _reachable(paths: list) -> bool:
    """Whether a user who owns none of them can reach every path in ``paths``."""
    import os
    import stat

    for path in paths:
        parts = path.split("/")
        for depth in range(2, len(parts)):
            if not os.stat("/".join(parts[:depth])).st_mode & stat.S_IXOTH:
                return False
    return True


def _run_user_code(source: str, status_fd: int) -> None:
    import os
    import sys
    import traceback
    import types

    main = types.ModuleType("__main__")
    main.__file__ = "main.py"
    # A fresh __main__: the bootstrap's globals stay out of the code's reach.
    sys.modules["__main__"] = main
    try:
        exec(compile(source, "main.py", "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, MemoryError):
            os.write(status_fd, b"memory\n")
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__.tb_next)
        # Frames of the sandbox itself (source "<string>") only distract the model.
        frames = [f for f in report.stack if f.filename != "<string>"]
        report.stack = traceback.StackSummary.from_list(frames)
        print("".join(report.format()), end="", file=sys.stderr)
        raise SystemExit(1) from None


def _install_guard(config: dict) -> None:
    """Install the audit hook that refuses what the code must not do.

    Everything the hook uses is bound here, from C functions the code cannot
    monkeypatch (``posix.*``, ``str`` methods), and lives only in closures.
    """
    import posix
    import sys
    from stat import S_ISDIR

    events, resolve = config["events"], _path_resolver()
    process, network, low_level = (frozenset(events[k]) for k in ("process", "network", "low"))
    writes = {name: tuple(map(tuple, at)) for name, at in events["writes"].items()}
    project = frozenset(config["project_modules"])
    own_pid, status_fd, work = posix.getpid(), config["status_fd"], config["work_dir"]
    guarded, allowed = tuple(config["guard_reads"]), tuple(config["allow_reads"])
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
    write, lstat = posix.write, posix.lstat

    def refuse(category: str, event: str, detail: object) -> None:
        line = f"refused: {category}: {event} {detail!r}"[:400]
        write(status_fd, (line + "\n").encode("utf-8", "replace"))
        raise PermissionError(f"sandbox refused {category} access: {event} {detail!r}")

    def within(path: str, roots: tuple) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def check_read(event: str, path: str) -> None:
        if within(path, guarded) and not within(path, allowed):
            refuse("protected files", event, path)
        head = path.split("/")[2] if path.startswith("/proc/") else ""
        if head.isdigit() and int(head) != own_pid:
            refuse("other processes", event, path)

    def check_write(event: str, path: str) -> None:
        if not within(path, (work,)) and path != "/dev/null":
            refuse("filesystem", event, path)

    def check_open(path: object, mode: object, flags: object) -> None:
        if path is None or isinstance(path, int):
            return  # wraps a descriptor that was itself checked when opened
        resolved = resolve(path)
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & write_flags:
            check_write("open", resolved)
        check_read("open", resolved)
        # os.open's event carries no dir_fd: a directory descriptor from outside the
        # work dir could later anchor a write that the hook would resolve wrongly.
        if mode is None and not within(resolved, (work,)):
            try:
                is_dir = S_ISDIR(lstat(resolved).st_mode)
            except OSError:
                is_dir = False
            if is_dir:
                refuse("filesystem", "os.open of a directory", resolved)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            check_open(*args)
        elif event in writes:
            for path_at, fd_at in writes[event]:
                dir_fd = args[fd_at] if fd_at is not None and fd_at < len(args) else None
                check_write(event, resolve(args[path_at], dir_fd))
        elif event in ("os.listdir", "os.scandir"):
            if args and isinstance(args[0], (str, bytes)):
                check_read(event, resolve(args[0]))
        elif event == "import" and args[0].partition(".")[0] in project:
            refuse("project code", event, args[0])
        elif event in process or (event in ("os.kill", "os.killpg") and args[0] != own_pid):
            refuse("process", event, args[0] if args else "")
        elif event in network or (event == "socket.__new__" and args[1] != posix_af_unix):
            refuse("network", event, args[1] if len(args) > 1 else "")
        elif event in low_level:
            refuse("low-level access", event, args[0] if args else "")

    posix_af_unix = 1  # socketpair() (asyncio's self-pipe) is local and stays allowed
    sys.addaudithook(hook)


def _path_resolver() -> object:
    """Return ``resolve(path, dir_fd=None)``: the absolute path with symlinks followed."""
    import posix
    from stat import S_ISLNK

    getcwd, lstat, readlink, fspath = posix.getcwd, posix.lstat, posix.readlink, posix.fspath

    def resolve(path: object, dir_fd: object = None) -> str:
        if isinstance(path, int):
            return readlink(f"/proc/self/fd/{path}")
        text = fspath(path)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        if not text.startswith("/"):
            base = getcwd() if dir_fd in (None, -1) else readlink(f"/proc/self/fd/{dir_fd}")
            text = base + "/" + text
        parts, pending, hops = [], text.split("/")[::-1], 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                parts = parts[:-1]
                continue
            candidate = "/" + "/".join([*parts, part])
            try:
                is_link = S_ISLNK(lstat(candidate).st_mode)
            except OSError:
                is_link = False
            if is_link and hops < 40:
                hops += 1
                target = readlink(candidate)
                parts = [] if target.startswith("/") else parts
                pending.extend(target.split("/")[::-1])
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    return resolve


_CHILD_FUNCTIONS = (
    _child_main,
    _isolate,
    _mask_paths,
    _reachable,
    _run_user_code,
    _install_guard,
    _path_resolver,
)
_CHILD_SOURCE = "\n\n".join(inspect.getsource(f) for f in _CHILD_FUNCTIONS) + "\n\n_child_main()\n"
