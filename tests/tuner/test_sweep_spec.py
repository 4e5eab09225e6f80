"""Sweep files: a malformed one is rejected before any job starts, with its line and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from commands.main import main
from tuner.sweep.jobs import eval_command, eval_jobs
from tuner.sweep.spec import SweepFileError, load_spec

GOOD = """\
name: t
models:
  - synthetic:tiny
datasets:
  - name: synthetic
    count: 4
modes:
  - standard
  - name: majority_vote
    num_runs: 2
tune:
  n_trials: 2
eval:
  max_new_tokens: 8
  engine_args: {dtype: float32}
"""


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rejected(tmp_path: Path, text: str, name: str = "sweep.yaml") -> str:
    with pytest.raises(SweepFileError) as caught:
        load_spec(write(tmp_path, text, name))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_file_gives_the_grid(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD), results_root=tmp_path / "out")
    assert [m.id for m in spec.models] == ["synthetic:tiny"]
    assert [(m.name, m.settings) for m in spec.modes] == [
        ("standard", {}),
        ("majority_vote", {"num_runs": 2}),
    ]
    jobs = eval_jobs(spec)
    assert [j.id for j in jobs] == [
        "synthetic-tiny__synthetic-4__standard",
        "synthetic-tiny__synthetic-4__majority_vote",
    ]
    command = eval_command(spec, jobs[1], tmp_path / "job", None)
    # an agent is a mode of the one eval command, not a second pipeline
    assert command[command.index("-m") + 1] == "evaluation.eval"
    profiled = eval_command(spec, jobs[0], tmp_path / "job", tmp_path / "p.json")
    # the profile reaches the job once, as --profile (it used to come twice: as --profile
    # and again as --inference_backend/--engine_arg copies of its settings)
    plain = eval_command(spec, jobs[0], tmp_path / "job", None)
    assert profiled == [*plain, "--profile", str(tmp_path / "p.json")]
    assert command[command.index("--agent") :][:2] == ["--agent", "majority_vote"]
    assert "--num-runs" in command and "--resume" not in command
    assert "dtype=float32" in command


def test_unknown_key_names_line_and_suggestion(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace("    num_runs: 2", "    num_run: 2"))
    assert message.startswith(f"{tmp_path / 'sweep.yaml'}:10: unknown key 'num_run'")
    assert "did you mean 'num_runs'?" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD + "result: x\n")
    assert ":16: unknown key 'result'" in message and "'results'" in message


def test_unknown_dataset(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace("name: synthetic", "name: gsm9k"))
    assert ":5: unknown dataset 'gsm9k'" in message and "gsm8k" in message


def test_dataset_too_short(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace("count: 4", "count: 20000"))
    assert ":5:" in message and "lower count" in message


def test_unknown_agent(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace("name: majority_vote", "name: majority_votes"))
    assert ":9: unknown agent 'majority_votes'" in message and "did you mean" in message


def test_setting_of_another_agent_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    num_runs: 2", "    max_subproblems: 2")
    assert ":10: unknown key 'max_subproblems'" in rejected(tmp_path, text)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("synthetic:huge", "unknown synthetic model 'synthetic:huge'"),
        ("./no/such/model", "does not exist or has no config.json"),
        ("nobody/no-such-model-xyz", "nor in the Hugging Face cache"),
    ],
)
def test_model_that_cannot_load(tmp_path: Path, model: str, expected: str) -> None:
    message = rejected(tmp_path, GOOD.replace("synthetic:tiny", model))
    assert ":3:" in message and expected in message


def test_wrong_type(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace("count: 4", "count: four"))
    assert ":6: 'count' must be int, got 'four'" in message


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    assert ":5: invalid YAML" in rejected(tmp_path, GOOD.replace("datasets:", "datasets: [x"))


def test_toml_with_lines(tmp_path: Path) -> None:
    text = """\
    name = "t"
    models = ["synthetic:tiny"]

    [[datasets]]
    name = "synthetic"
    count = 4

    [[modes]]
    name = "standard"

    [[modes]]
    name = "majority_vote"
    num_runs = 2
    """
    spec = load_spec(write(tmp_path, text, "sweep.toml"))
    assert [m.label for m in spec.modes] == ["standard", "majority_vote"]
    bad = text.replace("num_runs = 2", "num_runz = 2")
    assert ":13: unknown key 'num_runz'" in rejected(tmp_path, bad, "sweep.toml")


def test_cli_exits_2_before_any_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, GOOD.replace("name: synthetic", "name: gsm9k"))
    results = tmp_path / "results"
    assert main(["sweep", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.yaml:5: unknown dataset 'gsm9k'" in err
    assert not results.exists()  # nothing started, nothing written


def test_backends_come_from_the_engine_table(tmp_path: Path) -> None:
    # the eval section once refused transformers_cb, which the tuner picks
    spec = load_spec(write(tmp_path, GOOD + "  backend: transformers_cb\n"))
    command = eval_command(spec, eval_jobs(spec)[0], tmp_path / "job", None)
    assert command[command.index("--backend") + 1] == "transformers_cb"
    message = rejected(tmp_path, GOOD + "  backend: tensorrt\n")
    assert "unknown backend 'tensorrt'" in message and "transformers_cb" in message


@pytest.mark.parametrize("name", ["../../../escape", "/abs", "x" * 300])
def test_a_sweep_name_that_would_leave_the_results_folder_is_refused(
    tmp_path: Path, name: str
) -> None:
    message = rejected(tmp_path, GOOD.replace("name: t", f"name: '{name}'"))
    assert ":1:" in message and "not a safe folder name" in message
    assert not (tmp_path / "escape").exists()


def test_the_canary_count_reaches_the_tune_step_and_is_range_checked(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD.replace("n_trials: 2", "n_trials: 2\n  canary_size: 3")))
    assert spec.tune.options["canary_size"] == 3
    message = rejected(tmp_path, GOOD.replace("n_trials: 2", "n_trials: 2\n  canary_size: 0"))
    assert "canary_size" in message


def test_the_readme_main_job_file_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "sweep-offline.yaml"
    spec = load_spec(example, results_root=tmp_path / "out")
    assert [m.id for m in spec.models] == ["smollm2-135m-instruct"]
    assert spec.tune.options["budget"]  # a bounded tune keeps the main job short
