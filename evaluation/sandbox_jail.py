"""The sandboxed child's kernel layers: namespaces, an allow-list filesystem view, seccomp.

Nothing here runs in the evaluation process: these functions are part of
:data:`evaluation.sandbox_child.CHILD_SOURCE`.  :func:`_enter_jail` returns only in
the process that will run the code, after every layer is in place:

* new mount, pid, ipc, uts and network namespaces (plus a user namespace when not
  root).  The process that unshared them stays outside as a trusted relay: it forks
  the run's init (pid 1 of the new pid namespace), waits for it and ends the same
  way, so the supervisor reads the run's end from the kernel through ``wait4``.
  When init ends, the kernel kills and reaps every process left in its namespace;
* a filesystem built from nothing, as bubblewrap's ``--ro-bind`` model does: an
  empty tmpfs root, the interpreter's directories and the system libraries bound
  read-only, a fresh ``/proc`` of the run's own pid namespace, five harmless
  devices, and one size-limited tmpfs (the disk quota) holding the work folder,
  ``/tmp`` and ``/dev/shm``.  The host's root is unmounted after ``pivot_root``, so
  the data, the results, the project and ``$HOME`` are not there to be read, and
  everything written vanishes with the namespace;
* rlimits, a private uid (as root), no new privileges, no capabilities, and a
  seccomp filter: no ``execve``/``execveat``, no ``fork`` (threads only), no mount,
  namespace or ``ptrace`` calls, and no other syscall ABI.

A layer that cannot be applied stops the run before the code starts ("failed: ..."
on the status pipe), rather than running it with less protection.
"""

from __future__ import annotations

# The functions below run inside the sandboxed interpreter: their source is sent with
# ``python -c``, so they import only the standard library, inside their bodies, and
# call one another by name only.

# Per architecture: pivot_root's number, then the seccomp table: AUDIT_ARCH, the x32
# bit to refuse, clone, clone3, and the syscalls refused with EPERM (execve execveat
# fork vfork mount umount2 pivot_root chroot unshare setns ptrace open_by_handle_at
# open_tree move_mount fsopen fsconfig fsmount mount_setattr).  Sent in the config.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SECCOMP_TABLES = {
    "x86_64": [0xC000003E, 0x40000000, 56, 435,
               [59, 322, 57, 58, 165, 166, 155, 161, 272, 308, 101, 304,
                428, 429, 430, 431, 432, 442]],
    "aarch64": [0xC00000B7, 0, 220, 435,
                [221, 281, 40, 39, 41, 51, 97, 268, 117, 265, 428, 429, 430, 431, 432, 442]],
}  # fmt: skip


def _enter_jail(config: dict) -> None:
    """Apply every layer; returns in the run's init only (the relay never returns)."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    status = config["status_fd"]
    uid, gid = os.geteuid(), os.getegid()
    # mount | pid | ipc | uts | network namespaces, and a user namespace when not root.
    flags = 0x00020000 | 0x20000000 | 0x08000000 | 0x04000000 | 0x40000000
    if config["user_namespace"]:
        flags |= 0x10000000
    _check(libc, libc.unshare(flags), "unshare")
    if config["user_namespace"]:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    init = os.fork()
    if init:
        _relay(init, status)
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: init, and so the namespace, dies with the relay
    _build_view(libc, config)
    _set_limits(config)
    _lock_down(libc, config)
    os.write(status, b"protection: pid namespace\nprotection: network namespace\n")


def _check(libc: object, result: int, what: str) -> None:
    import ctypes
    import os

    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _relay(init: int, status: int) -> None:
    """Outside the namespaces: wait for the run's init and end as it ended."""
    import os
    import resource
    import signal

    os.write(status, f"init {init}\n".encode())
    os.closerange(0, 1 << 16)  # the supervisor sees end-of-output when the run's copies close
    _, wait_status = os.waitpid(init, 0)
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)  # Python ignores SIGXFSZ and SIGPIPE
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os._exit(os.waitstatus_to_exitcode(wait_status))


def _bind(libc: object, fd: int, target: str, read_only: bool) -> None:
    import os

    _check(libc, libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, 4096, None),
           f"bind {target}")  # fmt: skip
    if read_only:
        # A remount must keep the flags the host locked on the source (nosuid, ...).
        host = os.fstatvfs(fd).f_flag
        kept = host & (2 | 4 | 8 | 1024 | 2048) | (1 << 21 if host & 4096 else 0)
        flags = 32 | 4096 | 1 | 2 | 4 | kept  # MS_REMOUNT|MS_BIND|MS_RDONLY|MS_NOSUID|MS_NODEV
        _check(libc, libc.mount(None, target.encode(), None, flags, None), f"read-only {target}")


def _build_view(libc: object, config: dict) -> None:
    """Mount the run's filesystem from nothing, then make it the root."""
    import os

    root, work, scratch = config["view_mount"], config["work_dir"], config["scratch_options"]
    sources = [*config["read_only"], *config["devices"]]
    # Opened first: a source under the mount point would be hidden by the new root.
    fds = {p: os.open(p, os.O_PATH) for p in sources if os.path.exists(p)}
    _check(libc, libc.mount(None, b"/", None, 16384 | (1 << 18), None), "private mounts")
    _check(libc, libc.mount(b"tmpfs", root.encode(), b"tmpfs", 2 | 4, b"size=1m,mode=755"), "root")
    # Before the binds, so a source under /tmp (a virtualenv, say) is bound over it.
    _mount_scratch(libc, config)
    for path, fd in fds.items():
        target = root + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _bind(libc, fd, target, read_only=path not in config["devices"])
        os.close(fd)
    for link, target in config["links"]:
        os.symlink(target, root + link)
    os.makedirs(root + "/proc")
    _check(libc, libc.mount(b"proc", f"{root}/proc".encode(), b"proc", 2 | 4 | 8, None), "proc")
    _check(libc, libc.mount(None, root.encode(), None, 32 | 1 | 2 | 4, None), "read-only root")
    os.chdir(root)
    _check(libc, libc.syscall(config["pivot_root"], b".", b"."), "pivot_root")
    _check(libc, libc.umount2(b".", 2), "detach the host root")  # MNT_DETACH
    os.chdir(work)
    quota = int(scratch.split("size=")[1].split(",")[0]) >> 20
    notes = ("filesystem allow-list", "private /tmp and /dev/shm", f"disk quota {quota} MiB")
    os.write(config["status_fd"], "".join(f"protection: {n}\n" for n in notes).encode())


def _mount_scratch(libc: object, config: dict) -> None:
    """One tmpfs, the disk quota, for everything writable: the work folder, /tmp, /dev/shm."""
    import os

    root, work, uid = config["view_mount"], config["work_dir"], config["uid"]
    for path in ("/tmp", "/dev/shm"):
        os.makedirs(root + path)
    _check(libc, libc.mount(b"tmpfs", f"{root}/tmp".encode(), b"tmpfs", 2 | 4 | 8,
                            config["scratch_options"].encode()), "scratch tmpfs")  # fmt: skip
    for path, mode in ((work, 0o700), ("/tmp/.shm", 0o1777)):
        os.mkdir(root + path)
        os.chmod(root + path, mode)  # mkdir's mode passes through the umask
        if uid is not None:
            os.chown(root + path, uid, uid)
    shm = os.open(root + "/tmp/.shm", os.O_PATH)
    _bind(libc, shm, f"{root}/dev/shm", read_only=False)
    os.close(shm)


def _set_limits(config: dict) -> None:
    import os
    import resource

    cpu, memory, uid = config["cpu_seconds"], config["memory_bytes"], config["uid"]
    limits = {
        # The code is its pid namespace's init, which the kernel shields from signals
        # it has no handler for, SIGXCPU included: the limit is the hard SIGKILL.
        resource.RLIMIT_CPU: (cpu, cpu),
        resource.RLIMIT_AS: (memory, memory),
        resource.RLIMIT_FSIZE: (config["max_file_bytes"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NOFILE: (256, 256),
    }
    if uid is not None:
        limits[resource.RLIMIT_NPROC] = (config["max_processes"],) * 2
    for which, value in limits.items():
        resource.setrlimit(which, value)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        os.write(config["status_fd"], b"protection: private uid\nprotection: process limit\n")


def _lock_down(libc: object, config: dict) -> None:
    """No new privileges, no capabilities, and the seccomp filter."""
    import ctypes
    import os

    _check(libc, libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    _check(libc, libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")
    table, status = config["seccomp"], config["status_fd"]
    notes = b"protection: no new privileges\nprotection: no capabilities\n"
    if table is not None:
        program = _seccomp_program(*table)
        buffer = ctypes.create_string_buffer(program)

        class Program(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        prog = Program(len(program) // 8, ctypes.addressof(buffer))
        _check(libc, libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "seccomp")  # MODE_FILTER
        notes += b"protection: seccomp (no exec, no fork)\n"
    os.write(status, notes)


def _seccomp_program(arch: int, x32: int, clone: int, clone3: int, refused: list) -> bytes:
    """A classic BPF filter: refuse ``refused``, threads-only ``clone``, ENOSYS ``clone3``."""
    import struct

    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    code = [(ld, 4, None, None), (jeq, arch, None, "kill"), (ld, 0, None, None)]
    if x32:
        code.append((jge, x32, "eperm", None))
    code += [(jeq, nr, "eperm", None) for nr in refused]
    # clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes the C
    # library fall back to clone, whose flags the filter can read.
    code += [(jeq, clone3, "enosys", None), (jeq, clone, None, "allow")]
    code += [(ld, 16, None, None), (jset, 0x00010000, "allow", "eperm")]  # CLONE_THREAD
    labels = {"allow": len(code), "eperm": len(code) + 1, "enosys": len(code) + 2,
              "kill": len(code) + 3}  # fmt: skip
    code += [(ret, 0x7FFF0000, None, None), (ret, 0x00050001, None, None),
             (ret, 0x00050026, None, None), (ret, 0x80000000, None, None)]  # fmt: skip

    def offset(label: object, at: int) -> int:
        return 0 if label is None else labels[label] - at - 1

    return b"".join(
        struct.pack("=HBBI", op, offset(jt, i), offset(jf, i), k)
        for i, (op, k, jt, jf) in enumerate(code)
    )


JAIL_FUNCTIONS = (
    _enter_jail,
    _check,
    _relay,
    _bind,
    _build_view,
    _mount_scratch,
    _set_limits,
    _lock_down,
    _seccomp_program,
)
