"""The sandbox for model-written code: every escape is stopped, and the next run works.

Each test runs real code in a real sandboxed interpreter and checks the effect
outside it (a file that must not exist, a listener that must see no connection, a
process that must be gone), so removing the protection makes the test fail.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import textwrap

import psutil
import pytest

from engines.errors import ConfigError
from evaluation.sandbox import (
    SandboxLimits,
    SandboxResult,
    extract_code_blocks,
    run_python,
)

FAST = SandboxLimits(wall_seconds=2.0, cpu_seconds=1, memory_bytes=256 << 20)
# Generous slack over the limit: the check is "stopped within the limit", not speed.
SLACK_SECONDS = 3.0


def run(code: str, limits: SandboxLimits = FAST) -> SandboxResult:
    return run_python(textwrap.dedent(code), limits)


def assert_no_children_left() -> None:
    survivors = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    survivors = [p for p in survivors if p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"sandbox left processes behind: {survivors}"


def test_normal_computation_prints_the_answer() -> None:
    result = run("from fractions import Fraction\nprint(sum(Fraction(1, k) for k in range(1, 6)))")
    assert result.ok, result.stderr
    assert result.stdout == "137/60\n"
    assert result.killed_reason is None and not result.truncated and not result.timed_out


def test_math_libraries_are_importable() -> None:
    code = "import numpy, sympy\nx = sympy.Symbol('x')\nprint(sympy.solve(x**2 - 4, x))"
    result = run(code, SandboxLimits(wall_seconds=20, cpu_seconds=10))
    assert result.ok, result.stderr
    assert result.stdout.strip() == "[-2, 2]"


def test_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    result = run("while True:\n    pass", SandboxLimits(wall_seconds=10, cpu_seconds=1))
    assert result.killed_reason == "cpu_time" and result.timed_out
    assert result.exit_code != 0
    assert result.duration_seconds < 1 + SLACK_SECONDS


def test_sleeping_code_is_stopped_by_the_wall_limit() -> None:
    result = run("import time\nprint('started')\ntime.sleep(60)", SandboxLimits(wall_seconds=1))
    assert result.killed_reason == "wall_time" and result.timed_out
    assert result.stdout == "started\n"  # unbuffered: what ran before the kill is kept
    assert result.duration_seconds < 1 + SLACK_SECONDS
    assert_no_children_left()


def test_fork_bomb_is_refused_and_leaves_no_process() -> None:
    result = run("import os\nwhile True:\n    os.fork()")
    assert result.killed_reason == "refused: process"
    assert "PermissionError" in result.stderr
    assert_no_children_left()


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['sleep', '30'])",
        "import os\nos.system('sleep 30')",
        "import multiprocessing as mp\nmp.Process(target=print).start()",
    ],
)
def test_subprocess_routes_are_refused(code: str) -> None:
    result = run(code)
    assert result.killed_reason == "refused: process", result.stderr
    assert_no_children_left()


def test_thread_bomb_hits_the_kernel_task_limit() -> None:
    probe = run("print('ok')")
    if "process limit" not in probe.protections:
        pytest.skip("RLIMIT_NPROC binds only when the sandbox runs under its own uid (root)")
    code = """
        import threading, time
        started = 0
        try:
            for _ in range(200):
                threading.Thread(target=time.sleep, args=(0.5,), daemon=True).start()
                started += 1
        except RuntimeError:
            pass
        print(started)
    """
    result = run(code, SandboxLimits(wall_seconds=5, max_processes=8))
    assert result.ok, result.stderr
    assert int(result.stdout) < 8


def test_one_gigabyte_allocation_is_refused_by_the_memory_limit() -> None:
    result = run("block = bytearray(1 << 30)\nprint('allocated')")
    assert result.killed_reason == "memory"
    assert "MemoryError" in result.stderr and "allocated" not in result.stdout


def test_write_outside_the_work_dir_is_refused(tmp_path) -> None:
    target = tmp_path / "escaped.txt"
    result = run(f"open({str(target)!r}, 'w').write('pwned')")
    assert result.killed_reason == "refused: filesystem"
    assert not target.exists()


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.remove({victim!r})",
        "import os\nos.rename({victim!r}, 'stolen.txt')",
        "import shutil\nshutil.rmtree({folder!r})",
        "import os\nos.symlink({victim!r}, 'link')\nopen('link', 'w').write('pwned')",
    ],
)
def test_changes_to_files_outside_the_work_dir_are_refused(tmp_path, code: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    result = run(code.format(victim=str(victim), folder=str(tmp_path)))
    assert result.killed_reason == "refused: filesystem", result.stderr
    assert victim.read_text() == "original"


def test_files_inside_the_work_dir_are_usable_and_the_dir_is_thrown_away() -> None:
    code = """
        import os
        os.mkdir("data")
        with open("data/a.txt", "w") as f:
            f.write("kept")
        os.rename("data/a.txt", "data/b.txt")
        print(open("data/b.txt").read())
        print(os.getcwd())
    """
    result = run(code)
    assert result.ok, result.stderr
    answer, work_dir = result.stdout.splitlines()
    assert answer == "kept"
    assert not os.path.exists(work_dir)


def test_network_connection_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\nprint('in')"
        result = run(code)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert result.killed_reason == "refused: network"
    assert "in" not in result.stdout


def test_large_print_is_truncated_quickly() -> None:
    limits = SandboxLimits(wall_seconds=10, max_output_bytes=64 << 10)
    result = run("print('x' * 100_000_000)", limits)
    assert result.truncated and result.killed_reason == "output_limit"
    assert len(result.stdout.encode()) <= limits.max_output_bytes
    assert result.stdout.startswith("xxxx")
    assert result.duration_seconds < limits.wall_seconds


def test_environment_secrets_do_not_reach_the_code(monkeypatch) -> None:
    monkeypatch.setenv("INFERTUNE_TEST_SECRET", "hunter2")
    result = run("import os\nprint(dict(os.environ))")
    assert result.ok, result.stderr
    assert "hunter2" not in result.stdout and "INFERTUNE_TEST_SECRET" not in result.stdout


def test_bad_code_is_data_not_an_exception() -> None:
    syntax = run("def broken(:\n")
    assert syntax.exit_code == 1 and "SyntaxError" in syntax.stderr
    error = run("1 / 0")
    assert error.exit_code == 1 and "ZeroDivisionError" in error.stderr
    assert "<string>" not in error.stderr  # the sandbox's own frames are hidden
    assert run("import sys\nsys.exit(3)").exit_code == 3
    surrogate = run("s = '\ud800'")  # not valid UTF-8: the child's error, not ours
    assert surrogate.exit_code == 1 and "UnicodeEncodeError" in surrogate.stderr


def test_evaluation_goes_on_with_the_next_problem(tmp_path) -> None:
    snippets = [
        "while True:\n    pass",
        "import os\nwhile True:\n    os.fork()",
        "block = bytearray(1 << 30)",
        f"open({str(tmp_path / 'x.txt')!r}, 'w').write('x')",
        "import socket\nsocket.create_connection(('127.0.0.1', 9))",
        "print('y' * 100_000_000)",
        "print(6 * 7)",
    ]
    results = [run(code) for code in snippets]
    assert all(isinstance(r, SandboxResult) for r in results)
    assert [r.ok for r in results] == [False] * 6 + [True]
    assert results[-1].stdout == "42\n"
    assert_no_children_left()


def test_concurrent_runs_from_threads_stay_separate() -> None:
    codes = [
        f"import os\nopen('n.txt', 'w').write('{k}')\nprint(open('n.txt').read())" for k in range(4)
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, codes))
    assert [r.stdout for r in results] == [f"{k}\n" for k in range(4)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wall_seconds", 0),
        ("cpu_seconds", 0),
        ("cpu_seconds", 1.5),
        ("memory_bytes", 1 << 20),
        ("max_output_bytes", 0),
        ("max_file_bytes", -1),
        ("max_disk_bytes", 1024),
        ("max_processes", 0),
    ],
)
def test_limits_are_validated_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SandboxLimits(**{field: value})


def test_extract_code_blocks_takes_closed_python_fences_in_order() -> None:
    text = (
        "Let me compute.\n```python\nx = 2\nprint(x)\n```\nand\n```py\nprint(3)\n```\n"
        "not this:\n```text\nprint(4)\n```\nnor this:\n```bash\nls\n```\n"
        "```python\nprint('unclosed')\n"
    )
    assert extract_code_blocks(text) == ["x = 2\nprint(x)", "print(3)"]
    assert extract_code_blocks("no code here") == []
