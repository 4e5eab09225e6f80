"""The prompt flags (--chat-template, --system-prompt, --stop) mean the same on every command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from commands.flags import prompt_options
from commands.main import build_parser, main

PROMPTED = ("eval", "tune", "probe", "speedup")


def _parse(command: str, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args([command, "--model", "m", "--dataset", "gsm8k", *flags])


@pytest.mark.parametrize("command", PROMPTED)
def test_every_command_takes_the_prompt_flags(command: str) -> None:
    args = _parse(command, "--chat-template", "on", "--system-prompt", "Be brief.",
                  "--stop", "\n\n", "--stop=Question:")  # fmt: skip
    assert prompt_options(args) == {
        "chat_template": True,
        "system_prompt": "Be brief.",
        "stop": ("\n\n", "Question:"),
    }
    assert prompt_options(_parse(command)) == {
        "chat_template": None,  # auto: on when the model's tokenizer has a template
        "system_prompt": None,
        "stop": None,
    }


@pytest.mark.parametrize("command", PROMPTED)
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--chat-template", "off"), False),
        (("--chat_template", "auto"), None),
        (("--apply-chat-template",), True),  # the old flag, kept hidden
        (("--apply_chat_template",), True),
        (("--no-chat-template",), False),
    ],
)
def test_spellings_of_the_chat_template_choice(command: str, flags, expected) -> None:
    assert prompt_options(_parse(command, *flags))["chat_template"] is expected


def test_an_unknown_choice_is_a_usage_error(capsys) -> None:
    assert main(["speedup", "--model", "m", "--dataset", "gsm8k", "--chat-template", "yes"]) == 2
    assert "invalid choice: 'yes'" in capsys.readouterr().err


@pytest.mark.parametrize("command", PROMPTED)
def test_a_system_prompt_with_the_template_off_is_one_line_exit_2(
    command: str, tmp_path: Path, capsys
) -> None:
    out = {"eval": "--results-dir", "tune": "--profiles-dir", "speedup": "--out"}.get(command)
    place = [out, str(tmp_path / "out")] if out else []
    code = main([command, "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "2",
                 "--chat-template", "off", "--system-prompt", "Be brief.", *place])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--system-prompt needs the chat template" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written
