"""One flag vocabulary: every command spells a shared flag alike and takes both spellings."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import warnings
from importlib import metadata

import pytest

from commands.logs import setup_logging
from commands.main import COMMANDS, build_parser
from engines.registry import backend_names

SHARED = {  # flag -> dest, wherever a command has it
    "--count": "count",
    "--backend": "backend",
    "--max-new-tokens": "max_new_tokens",
    "--data-dir": "data_dir",
    "--results-dir": "results_dir",
    "--out": "results_dir",
    "--seed": "seed",
    "--profiles-dir": "profiles_dir",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {s: a.dest for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_both_spellings_and_one_meaning(name: str) -> None:
    parser = _subparsers()[name]
    if name == "profiles":
        parser = _subparsers()[name]._actions[-1].choices["show"]
    options = _options(parser)
    for flag, dest in options.items():
        if flag.startswith("--"):
            for twin in ("--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")):
                assert options.get(twin) == dest, f"{name}: {flag} has no {twin}"
    for flag, dest in SHARED.items():
        if flag in options:
            assert options[flag] == dest, f"{name}: {flag} means {options[flag]}, not {dest}"


def test_old_flags_still_parse() -> None:
    parse = build_parser().parse_args
    args = parse(["eval", "--inference_backend", "vllm", "--max_new_tokens", "5",
                  "--results_dir", "r", "--data_dir", "d", "--batch_size", "2"])  # fmt: skip
    assert (args.backend, args.max_new_tokens, args.results_dir, args.data_dir) == (
        "vllm", 5, "r", "d")  # fmt: skip
    args = parse(["tune", "--model", "m", "--dataset", "d", "--workload-size", "3",
                  "--backends", "transformers", "vllm"])  # fmt: skip
    assert args.count == 3 and args.backend == ["transformers", "vllm"]
    assert parse(["probe", "--model", "m", "--num-problems", "7"]).count == 7
    assert parse(["sweep", "s.yaml", "--results", "r"]).results_dir == "r"
    assert parse(["profiles", "list", "--root", "p"]).profiles_dir == "p"
    assert parse(["speedup", "--model", "m", "--dataset", "d", "--out", "o"]).results_dir == "o"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        # --batch-size is eval's run batch; in probe it once matched --batch-sizes silently
        (["probe", "--model", "m", "--batch-size", "4"], "--batch-size"),
        (["efficiency", "--model", "m", "--dataset", "d", "--batch_size", "4"], "--batch_size"),
        (["eval", "--model", "m", "--max-new", "8"], "--max-new"),
    ],
)
def test_flags_are_spelled_out_not_abbreviated(argv: list[str], named: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and named in err


def test_backend_choices_come_from_the_engine_table(capsys) -> None:
    # eval's --inference_backend once offered only transformers and vllm
    args = build_parser().parse_args(["eval", "--inference_backend", "transformers_cb"])
    assert args.backend == "transformers_cb" and "transformers_cb" in backend_names()
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["eval", "--backend", "tensorrt"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "transformers_cb" in err


def test_version_and_verbosity() -> None:
    command = [sys.executable, "-m", "commands", "--version"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"infertune {metadata.version('infertune')}"
    args = build_parser().parse_args(["-v", "eval", "-q", "-q"])
    assert (args.verbose, args.quiet) == (1, 2)


def test_library_warnings_go_through_logging(capsys) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        assert setup_logging(verbose=0, quiet=0) == logging.WARNING
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("from a library", UserWarning, stacklevel=1)
        assert "WARNING py.warnings" in capsys.readouterr().err
        assert setup_logging(quiet=1) == logging.ERROR
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("hidden by -q", UserWarning, stacklevel=1)
        assert "hidden by -q" not in capsys.readouterr().err
    finally:
        logging.captureWarnings(False)
        root.setLevel(level)


VLLM_SAYS = """
from commands.logs import setup_logging
setup_logging(verbose={verbose})
import vllm.logger
vllm.logger.init_logger("vllm.engine").info("engine config: twenty lines")
"""


@pytest.mark.vllm
@pytest.mark.parametrize(
    ("verbose", "env", "shown"),
    [(0, {}, False), (2, {}, True), (0, {"VLLM_LOGGING_LEVEL": "INFO"}, False)],
)
def test_vllm_info_lines_follow_the_verbosity(verbose, env, shown) -> None:
    """vLLM sets up its own logger on import (after the command's), at INFO unless told;
    -v/-q decide for it as for every library (-vv shows its INFO lines)."""
    import os

    base = {k: v for k, v in os.environ.items() if k != "VLLM_LOGGING_LEVEL"}
    done = subprocess.run([sys.executable, "-c", VLLM_SAYS.format(verbose=verbose)],
                          env=base | env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ("twenty lines" in done.stderr) is shown
