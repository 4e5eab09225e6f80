"""What a sandboxed run sees: its filesystem view, environment and settings.

The parent's side of :mod:`evaluation.sandbox_jail`: the paths bound read-only into
the run's empty root are the interpreter's own directories and the system libraries
it loads, and nothing else.  Everything here is computed in the evaluation process
and sent to the child as one JSON argument.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import site
import sys
import sysconfig
import tempfile
from typing import TYPE_CHECKING

from evaluation.sandbox_child import CHILD_SOURCE, GUARDED_EVENTS
from evaluation.sandbox_jail import PIVOT_ROOT, SECCOMP_TABLES

if TYPE_CHECKING:
    from evaluation.sandbox import SandboxLimits

# Exit statuses the child's bootstrap reserves: the jail could not be built (with
# "failed: ..." on the status pipe), and an uncaught MemoryError.
JAIL_FAILED_EXIT = 121
MEMORY_EXIT = 122
# The C library's search paths and cache: extension modules load system libraries.
_SYSTEM_PATHS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64",
                 "/lib32", "/libx32", "/etc/ld.so.cache")  # fmt: skip
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _covers(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.cache
def read_only_view() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The real paths bound read-only into a run, and the symlinks recreated there.

    A path that is a symlink (``/lib -> usr/lib``) is recreated as one, its target
    bound; a path inside another bound one is left to its parent.
    """
    paths = sysconfig.get_paths()
    wanted = [sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)]
    wanted += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    wanted += [*site.getsitepackages(), *_SYSTEM_PATHS]
    real, links = set(), []
    for path in wanted:
        if not os.path.exists(path):
            continue
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
        real.add(os.path.realpath(path))
    top = sorted(p for p in real if not any(q != p and _covers(q, p) for q in real))
    links = [(link, target) for link, target in links if link not in top]
    return tuple(top), tuple(sorted(set(links)))


def child_argv(
    limits: SandboxLimits,
    uid: int | None,
    code_fd: int,
    status_fd: int,
    notes_fd: int,
    *,
    guard: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one sandboxed run."""
    work = f"/tmp/infertune-sandbox-{secrets.token_hex(6)}"  # a path inside the run's view
    user_namespace = use_user_namespace()
    read_only, links = read_only_view()
    machine = os.uname().machine
    config = {
        "code_fd": code_fd,
        "status_fd": status_fd,
        "notes_fd": notes_fd,
        "work_dir": work,
        "uid": None if user_namespace else uid,  # only one uid exists in a user namespace
        "user_namespace": user_namespace,
        # Any existing directory serves as the mount point of the run's new root.
        "view_mount": tempfile.gettempdir(),
        "read_only": read_only,
        "links": links,
        "devices": [d for d in _DEVICES if os.path.exists(d)],
        "scratch_options": f"size={limits.max_disk_bytes},mode=1777,nr_inodes=4096",
        "pivot_root": PIVOT_ROOT.get(machine, -1),
        "seccomp": SECCOMP_TABLES.get(machine),
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_bytes,
        "max_file_bytes": limits.max_file_bytes,
        "max_processes": limits.max_processes,
        "jail_failed_exit": JAIL_FAILED_EXIT,
        "memory_exit": MEMORY_EXIT,
        "guard": guard,
        "project_modules": _project_modules(),
        "events": GUARDED_EVENTS,
    }
    argv = [sys.executable, "-s", "-P", "-c", CHILD_SOURCE, json.dumps(config)]
    return argv, _child_env(work)


def use_user_namespace() -> bool:
    """Whether runs build their namespaces inside a user namespace (when not root)."""
    return os.geteuid() != 0


@functools.cache
def _project_modules() -> list[str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return sorted(p for p in os.listdir(root) if os.path.exists(f"{root}/{p}/__init__.py"))


def _child_env(work: str) -> dict[str, str]:
    # Built from nothing, so no secret of the evaluation's environment leaks in.
    return {
        "PATH": os.path.dirname(sys.executable),
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
