"""The sandboxed child's side of :mod:`evaluation.sandbox`: its bootstrap and audit hook.

Nothing here runs in the evaluation process.  :data:`CHILD_SOURCE` -- the source
of the functions below and of :mod:`evaluation.sandbox_jail`'s, plus a call to
``_child_main()`` -- is what the parent runs with ``python -c``.  The child reads
the code from a memfd and its settings from a JSON argument, enters the jail
(``_enter_jail``), installs the audit hook (``_install_guard``), closes every
descriptor but its output and the notes pipe, and runs the code.
"""

from __future__ import annotations

import inspect

from evaluation.sandbox_jail import JAIL_FUNCTIONS


def _names(text: str) -> list[str]:
    return text.split()


# Audit events the in-sandbox guard refuses (see _install_guard); sent to the child
# in its config.
GUARDED_EVENTS = {
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


# The functions below run inside the sandboxed interpreter: their source is sent with
# ``python -c``, so they import only the standard library, inside their bodies, and
# call one another by name only.


def _child_main() -> None:
    import json
    import os
    import sys
    import traceback  # noqa: F401  (loaded before the root and the uid change)
    import types  # noqa: F401

    config = json.loads(sys.argv[1])
    with os.fdopen(config["code_fd"], encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    status = config["status_fd"]
    try:
        _enter_jail(config)  # noqa: F821  (sandbox_jail's, defined next to it in CHILD_SOURCE)
    except OSError as error:
        os.write(status, f"failed: {error.strerror}\n".encode("utf-8", "replace"))
        os._exit(config["jail_failed_exit"])
    if config["guard"]:
        _install_guard(config)
    notes, memory_exit = config["notes_fd"], config["memory_exit"]
    del config
    # The code holds no descriptor of the supervisor's but its output and the notes pipe.
    os.closerange(3, notes)
    os.closerange(notes + 1, 1 << 16)
    _run_user_code(source, memory_exit)


def _run_user_code(source: str, memory_exit: int) -> None:
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
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__.tb_next)
        # Frames of the sandbox itself (source "<string>") only distract the model.
        frames = [f for f in report.stack if f.filename != "<string>"]
        report.stack = traceback.StackSummary.from_list(frames)
        print("".join(report.format()), end="", file=sys.stderr)
        # An exit status, which the kernel reports, says "memory": RLIMIT_AS shows
        # itself only as a failed allocation.
        raise SystemExit(memory_exit if isinstance(exc, MemoryError) else 1) from None


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
    own_pid, notes_fd, work = posix.getpid(), config["notes_fd"], config["work_dir"]
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
    write, lstat = posix.write, posix.lstat

    def refuse(category: str, event: str, detail: object) -> None:
        line = f"refused: {category}: {event} {detail!r}"[:400]
        write(notes_fd, (line + "\n").encode("utf-8", "replace"))
        raise PermissionError(f"sandbox refused {category} access: {event} {detail!r}")

    def within(path: str, roots: tuple) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def check_write(event: str, path: str) -> None:
        if not within(path, (work,)) and path != "/dev/null":
            refuse("filesystem", event, path)

    def check_open(path: object, mode: object, flags: object) -> None:
        if path is None or isinstance(path, int):
            return  # wraps a descriptor that was itself checked when opened
        resolved = resolve(path)
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & write_flags:
            check_write("open", resolved)
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
    *JAIL_FUNCTIONS,
    _run_user_code,
    _install_guard,
    _path_resolver,
)
CHILD_SOURCE = "\n\n".join(inspect.getsource(f) for f in _CHILD_FUNCTIONS) + "\n\n_child_main()\n"
