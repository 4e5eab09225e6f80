"""Attacks on the sandbox's kernel layers, each run with the audit hook on and off.

With the hook off (``sandbox._GUARD``), only the kernel stands between the code and
the machine, as it does against code that gets past the hook.  Each attack checks its
effect from outside: the secret must not appear in the output, the file must not
exist on the host, the next run must start.
"""

from __future__ import annotations

import os
import secrets
import textwrap
from pathlib import Path

import pytest

from evaluation import sandbox, sandbox_view
from evaluation.datasets import resolve_data_dir
from evaluation.sandbox import REPO_ROOT, SandboxLimits, SandboxResult, run_python

LIMITS = SandboxLimits(wall_seconds=5.0, cpu_seconds=2, memory_bytes=256 << 20)


@pytest.fixture(params=["hook on", "kernel only"])
def guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sandbox, "_GUARD", request.param == "hook on")
    return request.param


def run(code: str, limits: SandboxLimits = LIMITS) -> SandboxResult:
    result = run_python(textwrap.dedent(code), limits)
    assert not (result.killed_reason or "").startswith("start_failed"), result.killed_reason
    return result


def _secret_files(tmp_path: Path) -> dict[str, Path]:
    """Folders the code must not see, each holding a file with a secret."""
    results = tmp_path / "results" / "run1"
    results.mkdir(parents=True)
    (results / "records.jsonl").write_text('{"gold": "SECRET-RESULTS"}\n')
    folders = {"results": results, "project": REPO_ROOT, "tmp_path": tmp_path}
    data = resolve_data_dir()
    if data is not None:
        folders["data"] = data.resolve()
    return folders


PROBE = """
    import os, sys
    for folder in {folders!r}:
        for attempt in (lambda: os.listdir(folder), lambda: open(folder + "/{name}").read()):
            try:
                print("LEAK", folder, attempt())
            except OSError as error:
                print("hidden", folder, type(error).__name__)
"""


def test_data_results_and_project_are_not_in_the_view(tmp_path: Path, guard: str) -> None:
    folders = _secret_files(tmp_path)
    for name in ("records.jsonl", "pyproject.toml", "gsm8k/test.jsonl"):
        result = run(PROBE.format(folders=[str(f) for f in folders.values()], name=name))
        assert result.ok, result.stderr
        assert "LEAK" not in result.stdout and "SECRET" not in result.stdout
        assert result.stdout.count("hidden") == 2 * len(folders)


def test_home_shows_only_the_way_to_the_interpreter(guard: str) -> None:
    home = Path.home()
    on_the_way = {Path(p).relative_to(home).parts[0] for p in sandbox_view.read_only_view()[0]
                  if Path(p).is_relative_to(home)}  # fmt: skip
    hidden = sorted(set(os.listdir(home)) - on_the_way)
    code = f"""
        import os
        print(sorted(os.listdir({str(home)!r})) if os.path.isdir({str(home)!r}) else [])
        for name in {hidden!r}:
            print(os.path.exists(os.path.join({str(home)!r}, name)))
    """
    result = run(code)
    assert result.ok, result.stderr
    listed, *exists = result.stdout.splitlines()
    assert set(eval(listed)) <= on_the_way  # noqa: S307  (our own repr of a list of names)
    assert exists == ["False"] * len(hidden)


def test_other_processes_and_the_project_package_are_out_of_reach(guard: str) -> None:
    code = f"""
        import os
        print(sorted(p for p in os.listdir("/proc") if p.isdigit()))
        print(os.path.exists("/proc/{os.getpid()}/environ"))
        try:
            import engines
            print("imported")
        except (ImportError, PermissionError) as error:
            print(type(error).__name__)
    """
    result = run(code)
    pids, evaluation_visible, imported = result.stdout.splitlines()
    assert pids == "['1']" and evaluation_visible == "False"
    assert imported in ("ModuleNotFoundError", "PermissionError")


EXEC_ATTACKS = {
    "fork_exec": """
        import _posixsubprocess, os
        r, w = os.pipe()
        _posixsubprocess.fork_exec(
            [b"/bin/sh", b"-c", b"echo x > /dev/shm/{token}"], [b"/bin/sh"], True, (w,), None,
            None, -1, -1, -1, -1, -1, -1, r, w, True, True, -1, None, None, None, -1, None, False)
    """,
    "execv": """
        import os, sys
        os.execv(sys.executable, [sys.executable, "-c", "open('/dev/shm/{token}', 'w')"])
    """,
    "fork": """
        import os
        if os.fork() == 0:
            open("/dev/shm/{token}", "w").write("child")
    """,
}


@pytest.mark.parametrize("attack", sorted(EXEC_ATTACKS))
def test_no_exec_and_no_fork(guard: str, attack: str) -> None:
    token = secrets.token_hex(8)
    result = run(textwrap.dedent(EXEC_ATTACKS[attack].format(token=token)) + "print('survived')")
    assert not result.ok and "survived" not in result.stdout
    assert "PermissionError" in result.stderr or "OSError" in result.stderr, result.stderr
    assert not Path(f"/dev/shm/{token}").exists()


def test_scratch_space_is_private_and_left_nowhere(guard: str) -> None:
    token = secrets.token_hex(8)
    code = f"""
        import os
        for folder in ("/tmp", "/dev/shm", os.getcwd()):
            try:
                os.mkdir(f"{{folder}}/{token}", 0o777)
                open(f"{{folder}}/{token}/f", "w").write("x")
                print("wrote", folder)
            except OSError as error:
                print("refused", folder, error.errno)
        for folder in ("/", "/usr/lib", "/proc"):
            try:
                open(f"{{folder}}/{token}", "w")
                print("LEAK", folder)
            except OSError as error:
                print("read-only", folder)
        print(os.getcwd())
    """
    before = {folder: set(os.listdir(folder)) for folder in ("/tmp", "/dev/shm")}
    result = run(code)
    assert result.ok, result.stderr
    *lines, work = result.stdout.splitlines()
    assert "LEAK" not in result.stdout and result.stdout.count("read-only") == 3
    if guard == "kernel only":  # the hook refuses writes outside the work folder first
        assert lines[:3] == ["wrote /tmp", "wrote /dev/shm", f"wrote {work}"]
    for folder, names in before.items():
        assert set(os.listdir(folder)) - names == set(), f"left behind in {folder}"
    assert not os.path.exists(work)


def test_the_disk_quota_stops_a_flood(guard: str) -> None:
    limits = SandboxLimits(wall_seconds=10, cpu_seconds=5, max_disk_bytes=8 << 20,
                           max_file_bytes=4 << 20)  # fmt: skip
    code = """
        import errno
        written, chunk = 0, b"x" * (1 << 20)
        try:
            for k in range(2000):  # 2 GB if nothing stopped it
                with open(f"f{k}", "wb") as f:
                    for _ in range(3):
                        written += f.write(chunk)
        except OSError as error:
            print(errno.errorcode[error.errno], written)
    """
    result = run(code, limits)
    assert result.ok, result.stderr
    code_name, written = result.stdout.split()
    assert code_name == "ENOSPC" and int(written) <= limits.max_disk_bytes
    assert "disk quota 8 MiB" in result.protections


def test_a_forged_status_line_changes_nothing(guard: str) -> None:
    code = """
        import os
        for fd in range(3, 1024):
            for line in (b"memory\\n", b"refused: process: x\\n", b"failed: x\\n", b"init 1\\n"):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        print("done")
    """
    result = run(code)
    # The notes pipe stays the code's to write (the hook runs in its process), but a
    # note can only label a run that failed by itself: this one exited 0.
    assert result.ok and result.killed_reason is None
    assert result.stdout.endswith("done\n") and result.cpu_seconds < LIMITS.cpu_seconds


def test_a_killed_run_leaves_nothing_that_blocks_the_next(guard: str) -> None:
    limits = SandboxLimits(wall_seconds=1.5, cpu_seconds=2, max_processes=8)
    threads = """
        import threading, time
        for _ in range(5):
            threading.Thread(target=time.sleep, args=({seconds},), daemon=True).start()
        print("started")
        time.sleep({seconds})
    """
    killed = run(threads.format(seconds=60), limits)
    assert killed.killed_reason == "wall_time" and killed.stdout == "started\n"
    for _ in range(4):  # immediately, under the same process limit
        again = run(threads.format(seconds=0), limits)
        assert again.ok and again.stdout == "started\n", again.stderr


def test_mounts_namespaces_and_capabilities_are_gone(guard: str) -> None:
    if guard == "hook on":
        pytest.skip("the hook refuses ctypes before the kernel is asked")
    code = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.mount(b"tmpfs", b"/usr/lib", b"tmpfs", 0, None), ctypes.get_errno())
        print(libc.umount2(b"/usr/lib", 2), ctypes.get_errno())
        print(libc.unshare(0x10000000), ctypes.get_errno())
        print(open("/proc/self/status").read().split("CapEff:")[1].split()[0])
    """
    result = run(code)
    assert result.ok, result.stderr
    *calls, capabilities = result.stdout.splitlines()
    assert calls == ["-1 1"] * 3 and int(capabilities, 16) == 0


def test_the_user_namespace_path_holds_too(tmp_path: Path, monkeypatch) -> None:
    # The path taken when not root: forced here, so a root test machine covers it.
    monkeypatch.setattr(sandbox_view, "use_user_namespace", lambda: True)
    monkeypatch.setattr(sandbox, "_GUARD", False)
    folders = _secret_files(tmp_path)
    result = run(PROBE.format(folders=[str(f) for f in folders.values()], name="records.jsonl"))
    assert result.ok, result.stderr
    assert "LEAK" not in result.stdout and result.stdout.count("hidden") == 2 * len(folders)
    assert "private uid" not in result.protections
    token = secrets.token_hex(8)
    for attack in EXEC_ATTACKS.values():
        assert not run(attack.format(token=token)).ok
    assert not Path(f"/dev/shm/{token}").exists()
    code = "import os\nopen('/usr/lib/x', 'w')"
    assert "Read-only file system" in run(code).stderr
