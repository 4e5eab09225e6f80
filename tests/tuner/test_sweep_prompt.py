"""Prompt keys of a sweep file: checked at file check, passed to eval and to the tune step."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tuner.sweep.jobs import eval_command, eval_jobs, tune_command
from tuner.sweep.spec import SweepFileError, load_spec

HEAD = """\
name: t
models: [synthetic:tiny]
datasets: [{name: synthetic, count: 2}]
modes: [standard]
"""


def _load(tmp_path: Path, body: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return load_spec(path, results_root=tmp_path / "out")


def _rejected(tmp_path: Path, body: str) -> str:
    with pytest.raises(SweepFileError) as caught:
        _load(tmp_path, body)
    message = str(caught.value)
    assert "\n" not in message and "sweep.yaml:" in message
    return message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("eval: {chat_template: maybe}\n", "'maybe' is not one of auto, on, off, or true/false"),
        ("eval: {chat_template: 3}\n", "'chat_template' must be bool or str, got 3"),
        ("eval: {stop: 7}\n", "'stop' must be list or str, got 7"),
        ("eval: {stop: ['', x]}\n", "a stop string must be non-empty text, got ''"),
        ("tune: {system_prompt: [a]}\n", "'system_prompt' must be str"),
        (
            "eval: {chat_template: off, system_prompt: Be brief.}\n",
            "system_prompt needs the chat template",
        ),
    ],
)
def test_bad_prompt_values_are_refused_at_file_check(tmp_path: Path, body, expected) -> None:
    assert expected in _rejected(tmp_path, body)


def test_eval_prompt_keys_become_flags_and_reach_the_tune_step(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """\
        eval:
          chat_template: on
          system_prompt: Be brief.
          stop: "-- end"
          max_new_tokens: 16
        tune: {n_trials: 2, stop: ["\\n\\n"]}
        """,
    )
    command = eval_command(spec, eval_jobs(spec)[0], tmp_path / "job", None)
    # FLAG=VALUE keeps a value that starts with "-" from being read as a flag
    assert "--chat-template=on" in command and "--system-prompt=Be brief." in command
    assert "--stop=-- end" in command
    tune = tune_command(spec, "synthetic:tiny")
    assert "--chat-template=on" in tune and "--system-prompt=Be brief." in tune
    assert "--stop=\n\n" in tune and "--stop=-- end" not in tune  # tune's own stop wins
    assert tune[tune.index("--max-new-tokens") + 1] == "16"


def test_the_old_apply_chat_template_false_still_means_off(tmp_path: Path) -> None:
    # Before "auto" existed, false was the default; it must not silently become auto now.
    spec = _load(tmp_path, "eval: {apply_chat_template: false}\n")
    assert spec.eval == {"chat_template": False}
    assert "--chat-template=off" in eval_command(spec, eval_jobs(spec)[0], tmp_path / "j", None)


def test_auto_is_passed_as_auto(tmp_path: Path) -> None:
    spec = _load(tmp_path, "eval: {chat_template: auto}\n")
    assert "--chat-template=auto" in tune_command(spec, "synthetic:tiny")
