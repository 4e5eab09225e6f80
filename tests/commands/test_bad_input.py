"""Bad input through the real command line: exit 2, one line, and no file created or changed.

Each row is something a careless or hostile user typed or pointed a command at
(issue 14, items 8, 9, 11).  Every refusal here happens before a model loads,
so the whole table runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.main import main
from common.hardware import fingerprint, hardware_id
from tuner.profiles import Profile, ProfileConfig, ProfileMetrics, save_profile

EVAL = ("eval", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "2",
        "--max-new-tokens", "4", "--results-dir", "{T}/results")  # fmt: skip
SWEEP = "name: s\nmodels: [synthetic:tiny]\ndatasets: [synthetic]\nmodes: [standard]\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True)
)
RUN_JSON = {"schema_version": 1, "model": "synthetic:tiny", "dataset": "synthetic",
            "mode": "standard", "start": 0, "problem_ids": ["s-0"], "prompt": {}}  # fmt: skip


def _gate(benchmark: object) -> str:
    return json.dumps({"benchmarks": [benchmark]})


GOOD_GATE = _gate({"name": "a", "stats": {"ops": 5}})

# file name under {T} -> content, written before every case
FILES: dict[str, str] = {
    "a_file": "x",
    "big.json": " " * ((16 << 20) + 1),
    "not_profile.json": '{"schema_version": "x", "created": 5}',
    "list.json": "[]",
    "good_gate.json": GOOD_GATE,
    "gate_name.json": _gate({"name": 5, "stats": {"ops": 1}}),
    "gate_fullname.json": _gate({"name": "a", "fullname": [1], "stats": {"ops": 1}}),
    "gate_stats.json": _gate({"name": "a", "stats": []}),
    "gate_ops.json": _gate({"name": "a", "stats": {"ops": "fast"}}),
    "gate_extra.json": _gate({"name": "a", "stats": {"ops": 1}, "extra_info": []}),
    "gate_nan.json": '{"benchmarks": [{"name": "a", "stats": {"ops": NaN}}]}',
    "gate_entry.json": '{"benchmarks": [7]}',
    "sweep_list.yaml": "[]",
    "sweep_laughs.yaml": LAUGHS,
    "sweep_tag.yaml": "name: !!python/name:os.system s\n",
    "sweep_proc.yaml": SWEEP + "results: /proc/nope\n",
    "sweep_bad.txt": SWEEP,
    "sweep_ok.yaml": SWEEP + "tune: {enabled: false}\n",
    "sweep_mnt.yaml": SWEEP + "eval: {max_new_tokens: -1}\n",
    "sweep_bs.yaml": SWEEP + "eval: {batch_size: 0}\n",
    "sweep_runs.yaml": SWEEP.replace("[standard]", "[{name: majority_vote, num_runs: -3}]"),
    "sweep_nan.yaml": SWEEP + "eval: {temperature: .nan}\n",
    "sweep_timeout.yaml": SWEEP + "tune: {trial_timeout: 0}\n",
    "manifest_root/sweep-manifest.json": "[]",
    "run_list/run.json": "[]",
    "run_schema/run.json": json.dumps(RUN_JSON | {"schema_version": "x"}),
    "run_model/run.json": json.dumps(RUN_JSON | {"model": 5}),
    "run_ids/run.json": json.dumps(RUN_JSON | {"problem_ids": [1]}),
    "run_missing/run.json": json.dumps({"schema_version": 1}),
    "run_torn/run.json": "{torn",
    "run_newer/run.json": json.dumps(RUN_JSON | {"schema_version": 99}),
}

CASES: list[tuple[tuple[str, ...], str]] = [
    # --engine-arg: values are plain, typed data
    ((*EVAL, "--engine-arg", "batch_size=abc"), "batch_size of backend 'transformers' must be an"),
    ((*EVAL, "--engine-arg", "batch_size=1e9"), "must be an integer, got '1e9'"),
    ((*EVAL, "--engine-arg", "batch_size=true"), "must be an integer, got True"),
    ((*EVAL, "--engine-arg", "x=!!python/name:os.system"), "is not a YAML value"),
    ((*EVAL, "--engine-arg", "x=!!binary aGVsbG8="), "is not plain data"),
    ((*EVAL, "--engine-arg", "x=2024-01-01"), "is not plain data"),
    ((*EVAL, "--engine-arg", "=5"), "--engine-arg wants KEY=VALUE"),
    ((*EVAL, "--engine-arg", "nokey"), "--engine-arg wants KEY=VALUE"),
    ((*EVAL, "--engine-arg", "sort_by_length=[1, 2]"), "must be true or false"),
    ((*EVAL, "--engine-arg", "max_num_seqs=4"), "unknown setting(s) max_num_seqs"),
    # numbers and names, before the model loads
    ((*EVAL, "--max-new-tokens", "-1"), "--max-new-tokens must be >= 1"),
    ((*EVAL, "--count", "-1"), "--count must be >= 0"),
    ((*EVAL, "--batch-size", "0"), "--batch-size must be >= 1"),
    ((*EVAL, "--batch-size", "abc"), "want a whole number or auto, got 'abc'"),
    ((*EVAL, "--temperature", "nan"), "--temperature must be >= 0"),
    ((*EVAL, "--seed", str(2**64)), "--seed must be in"),
    ((*EVAL, "--dtype", "float99"), "dtype must be one of"),
    ((*EVAL, "--backend", "nope"), "invalid choice: 'nope'"),
    ((*EVAL, "--round", "../escape"), "not a safe folder name"),
    ((*EVAL, "--agent", "nope"), "unknown mode 'nope'"),
    ((*EVAL, "--agent", "majority_vote", "--num-runs", "0"), "--num-runs must be >= 1"),
    ((*EVAL, "--agent", "python_tools", "--sandbox-timeout", "nan"), "--sandbox-timeout must"),
    ((*EVAL, "--dataset", "nope"), "nope"),
    ((*EVAL, "--max-new-tokens", str(10**9)), "does not fit synthetic:tiny's context of"),
    (
        (*EVAL, "--agent", "solver_checker", "--checker-model", "{T}/no_model"),
        "no_model does not exist or has no config.json",
    ),  # fmt: skip
    ((*EVAL, "--agent", "solver_checker", "--checker-model", "synthetic:nope"), "synthetic"),
    # files the eval command is pointed at
    ((*EVAL, "--profile", "/dev/zero"), "profile /dev/zero is not a regular file"),
    ((*EVAL, "--profile", "{T}/big.json"), "is over 16 MiB"),
    ((*EVAL, "--profile", "{T}/not_profile.json"), "not an infertune profile"),
    ((*EVAL, "--profile", "{T}/list.json"), "not an infertune profile"),
    ((*EVAL, "--profile", "{T}/nothing.json"), "does not exist"),
    ((*EVAL[:-1], "/proc/nope"), "cannot write results to /proc/nope"),
    (("eval", "--resume", "{T}/run_list"), "run.json: not a JSON object"),
    (("eval", "--resume", "{T}/run_schema"), "'schema_version' must be an integer"),
    (("eval", "--resume", "{T}/run_model"), "'model' must be a string, got 5"),
    (("eval", "--resume", "{T}/run_ids"), "'problem_ids' must be a list of strings"),
    (("eval", "--resume", "{T}/run_missing"), "no 'model' field"),
    (("eval", "--resume", "{T}/run_torn"), "cannot read"),
    (("eval", "--resume", "{T}/run_newer"), "written by a newer infertune"),
    (("eval", "--resume", "{T}/a_file"), "is not a run folder"),
    # bench-gate inputs
    (("bench-gate", "--baseline", "/dev/zero", "--current", "{T}/good_gate.json"), "regular"),
    (
        ("bench-gate", "--baseline", "{T}/list.json", "--current", "{T}/good_gate.json"),
        "not a pytest-benchmark JSON file",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_name.json", "--current", "{T}/good_gate.json"),
        "has no string 'name'",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_fullname.json", "--current", "{T}/good_gate.json"),
        "'fullname' that is not a string",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_stats.json", "--current", "{T}/good_gate.json"),
        "has no 'stats' object",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_ops.json", "--current", "{T}/good_gate.json"),
        "no usable ops value ('fast')",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_extra.json", "--current", "{T}/good_gate.json"),
        "'extra_info' that is not an object",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_nan.json", "--current", "{T}/good_gate.json"),
        "no usable ops value (nan)",
    ),  # fmt: skip
    (
        ("bench-gate", "--baseline", "{T}/gate_entry.json", "--current", "{T}/good_gate.json"),
        "benchmarks[0] is not an object",
    ),  # fmt: skip
    (
        (
            "bench-gate",
            "--baseline",
            "{T}/good_gate.json",
            "--current",
            "{T}/good_gate.json",
            "--max-drop",
            "150%",
        ),
        "--max-drop must be",
    ),  # fmt: skip
    # tune and profiles
    (
        (
            "tune",
            "--model",
            "synthetic:tiny",
            "--dataset",
            "synthetic",
            "--profiles-dir",
            "{T}/a_file",
        ),
        "a_file is not a folder",
    ),  # fmt: skip
    (
        (
            "tune",
            "--model",
            "synthetic:tiny",
            "--dataset",
            "synthetic",
            "--n-trials",
            "0",
            "--profiles-dir",
            "{T}/profiles",
        ),
        "n_trials must be >= 1",
    ),  # fmt: skip
    (
        (
            "tune",
            "--model",
            "synthetic:tiny",
            "--dataset",
            "synthetic",
            "--storage",
            "sqlite:///{T}/a_file",
            "--profiles-dir",
            "{T}/profiles",
        ),
        "not a SQLite database",
    ),  # fmt: skip
    # sweep files and roots
    (("sweep", "{T}/sweep_list.yaml"), "must be a mapping of keys"),
    (("sweep", "{T}/sweep_laughs.yaml"), "through YAML aliases"),
    (("sweep", "{T}/sweep_tag.yaml"), "invalid YAML"),
    (("sweep", "/dev/zero"), "sweep file /dev/zero is not a regular file"),
    (("sweep", "{T}/sweep_mnt.yaml", "--check"), "'max_new_tokens' must be >= 1, got -1"),
    (("sweep", "{T}/sweep_bs.yaml", "--check"), "'batch_size' must be >= 1, got 0"),
    (("sweep", "{T}/sweep_runs.yaml", "--check"), "'num_runs' must be >= 1, got -3"),
    (("sweep", "{T}/sweep_nan.yaml", "--check"), "'temperature' must be >= 0, got nan"),
    (("sweep", "{T}/sweep_timeout.yaml", "--check"), "'trial_timeout' must be a finite"),
    (("sweep", "{T}/sweep_proc.yaml"), "cannot write sweep results to /proc/nope"),
    (("sweep", "{T}/sweep_bad.txt"), "must end in .yaml, .yml or .toml"),
    (("sweep", "{T}/nothing.yaml"), "cannot read sweep file"),
    (("sweep", "{T}/sweep_ok.yaml", "--results", "{T}/manifest_root"), "not a sweep manifest"),
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    # A sweep takes its root's empty lock file before it reads the manifest there.
    files = (p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_bad_input_is_one_line_and_exit_2(
    inputs: Path, capsys: pytest.CaptureFixture, argv: tuple[str, ...], message: str
) -> None:
    before = _snapshot(inputs)
    code = main([arg.replace("{T}", str(inputs)) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and message in err, err
    assert _snapshot(inputs) == before  # nothing written, nothing changed


def test_a_profile_with_a_wrong_field_type_is_refused_and_listing_survives(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    hardware = fingerprint()
    profile = Profile(model="synthetic:tiny", hardware=hardware, hardware_id=hardware_id(hardware),
                      config=ProfileConfig(backend="transformers", batch_size=2, settings={}),
                      metrics=ProfileMetrics(problems_per_s=2.0, output_tokens_per_s=1.0,
                                             speedup=2.0, baseline_problems_per_s=1.0,
                                             parity_agreement=1.0))  # fmt: skip
    path = save_profile(profile, tmp_path / "profiles")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"created": 5}))
    code = main([*(a.replace("{T}", str(tmp_path)) for a in EVAL), "--profile", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "created" in err, err
    assert main(["profiles", "list", "--profiles-dir", str(tmp_path / "profiles")]) == 0
