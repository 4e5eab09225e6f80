"""Agents end to end on synthetic:tiny, the engine-call bound, and the readers they rely on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from commands.eval import main
from engines import BatchOutput, Completion, Decoding, Engine, load_engine
from evaluation.agents import AGENTS, AgentMode, make_agent
from evaluation.agents.majority_vote import vote
from evaluation.agents.solver_checker import CHECK_TEMPLATE
from evaluation.agents.verdicts import parse_plan, parse_verdict
from evaluation.datasets import load_problems
from evaluation.prompts import PromptSettings
from tests.evaluation.conftest import only_run_dir, problem_records

AGENT_ARGS = ("--model", "synthetic:tiny", "--dataset", "synthetic", "--round", "a",
              "--max_new_tokens", "8", "--dtype", "float32", "--max_iterations", "2")  # fmt: skip
PER_AGENT = {"majority_vote": ("--num_runs", "3"), "python_tools": ("--sandbox_timeout", "2")}
CASE_COLUMNS = ("case_first_try_success", "case_improved", "case_degraded", "case_failed")


@pytest.mark.parametrize("name", list(AGENTS))
def test_agent_run_writes_traces_and_metrics(name: str, tmp_path: Path) -> None:
    flags = [*AGENT_ARGS, "--agent", name, "--count", "3", "--results_dir", str(tmp_path)]
    assert main([*flags, *PER_AGENT.get(name, ())]) == 0
    run_dir = only_run_dir(tmp_path)
    records = problem_records(run_dir)
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    for record in records:
        assert record["agent"] == name and record["case"] in ("first_try_success", "failed")
        assert record["trace"] and all(e["responses"] and e["prompt"] for e in record["trace"])
        if name == "majority_vote":
            assert record["first_answer"] == record["votes"][0]
        else:  # the first and the last proposed solution
            proposals = [e["answer"] for e in record["trace"] if "answer" in e]
            assert (record["first_answer"], record["final_answer"]) == (proposals[0], proposals[-1])
        spent = sum(sum(entry["completion_tokens"]) for entry in record["trace"])
        assert record["completion_tokens"] == spent > 0
        roles = {entry["role"] for entry in record["trace"]}
        assert roles <= set(AGENTS[name].roles)
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["mode"] == name and settings["agent"]["name"] == name
    [row] = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert row["agent"] == name and row["mode"] == name and row["num_failed"] == "0"
    assert sum(int(row[c]) for c in CASE_COLUMNS) == 3
    answers = run_dir / "answers" / f"synthetic-tiny_synthetic_{name}_answers.json"
    assert len(json.loads(answers.read_text())["problems"]) == 3
    if name == "majority_vote":
        assert {"maj@3", "pass@3"} <= row.keys()
        assert all(len(r["votes"]) == 3 for r in records)


@pytest.fixture(scope="module")
def engine():
    with load_engine("transformers", "synthetic:tiny", batch_size=32, dtype="float32") as loaded:
        yield loaded


@pytest.mark.parametrize("name", list(AGENTS))
def test_engine_calls_do_not_grow_with_problems(name: str, engine) -> None:
    prompt = PromptSettings(max_new_tokens=4, decoding=Decoding(temperature=0.7, seed=3))
    agent = make_agent(name, prompt=prompt, max_iterations=2, num_runs=3)
    calls = []
    for count in (4, 32):
        problems = load_problems("synthetic", count=count)
        before = engine.stats.num_generate_calls
        results = [r for b in AgentMode(agent=agent).run_batches(engine, problems)
                   for r in b.results]  # fmt: skip
        calls.append(engine.stats.num_generate_calls - before)
        assert len(results) == count
    assert calls[0] == calls[1] <= agent.max_steps()  # one engine, one call per step


def test_vote_clusters_by_value_and_breaks_ties_deterministically() -> None:
    result = vote(["3", "0.5", "1/2", "\\frac{1}{2}", "3", None])
    assert result.winner == "0.5" and result.clusters == ((0, 4), (1, 2, 3)) and not result.tied
    tie = vote(["7", "x+1", "1+x", "7.0"])
    assert tie.tied and tie.winner == "7"  # both clusters have 2; "7" appeared first
    assert vote([None, None]).winner is None


@pytest.mark.parametrize(
    ("text", "correct", "reason"),
    [
        ("Steps fine.\nVERDICT: CORRECT", True, "verdict line"),
        ("VERDICT: CORRECT ... on reflection VERDICT: INCORRECT\nFEEDBACK: 3*4 is 12", False,
         "verdict line"),
        ("The second step is wrong.", False, "negative word"),
        (" 945 3249 283of \ufffd", False, "unparseable"),
        ("", False, "unparseable"),
    ],
)  # fmt: skip
def test_verdicts_never_crash(text: str, correct: bool, reason: str) -> None:
    verdict = parse_verdict(text)
    assert verdict.is_correct is correct and reason in verdict.reason
    if "FEEDBACK" in text:
        assert verdict.feedback == "3*4 is 12"


def test_plans_fall_back_to_one_step() -> None:
    assert parse_plan("1. add\n2) subtract\n- divide", "Q", 2)[0] == ["add", "subtract"]
    plan, reason = parse_plan(" 945 3249 283of", "Q", 3)
    assert plan == ["Q"] and "unparseable" in reason


def test_chat_transcript_grows_and_checker_model_is_separate(tmp_path: Path) -> None:
    flags = [*AGENT_ARGS, "--agent", "solver_checker_chat", "--count", "2",
             "--checker_model", "synthetic:small", "--results_dir", str(tmp_path)]  # fmt: skip
    assert main(flags) == 0
    [record, _] = problem_records(only_run_dir(tmp_path))
    solver = [e for e in record["trace"] if e["role"] == "solver"]
    assert [len(e["prompt"]) for e in solver] == [1, 3]  # user; user, assistant, user
    assert solver[1]["prompt"][1]["content"] == solver[0]["responses"][0]
    checker = [e for e in record["trace"] if e["role"] == "checker"]
    for entry, solution in zip(checker, solver, strict=True):  # question and solution only
        text = CHECK_TEMPLATE.format(question=record["question"], solution=solution["responses"][0])
        assert entry["prompt"] == [{"role": "user", "content": text}]
    settings = json.loads((only_run_dir(tmp_path) / "run.json").read_text())
    assert settings["agent"]["checker_model"] == "synthetic:small"


def test_unknown_agent_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    code = main([*AGENT_ARGS, "--agent", "majority_vot", "--results_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'majority_vote'" in err and err.count("\n") == 1
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_infertune_eval_runs_agents_and_resume_must_match(tmp_path: Path, capsys) -> None:
    from commands.main import main as infertune

    flags = [*AGENT_ARGS, "--agent", "majority_vote", "--num_runs", "2", "--count", "2"]
    assert infertune(["eval", *flags, "--results_dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["prompt"]["decoding"]["temperature"] == 0.7  # sampling by default
    before = (run_dir / "records.jsonl").read_bytes()
    capsys.readouterr()
    assert infertune(["eval", "--resume", str(run_dir), "--num_runs", "3"]) == 2
    assert "num_runs" in capsys.readouterr().err
    assert infertune(["eval", "--resume", str(run_dir)]) == 0  # complete: reports only
    assert (run_dir / "records.jsonl").read_bytes() == before
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3


class PlanningModel(Engine):
    """A model whose plans are numbered lists: the fan-out random weights never produce."""

    name = "planning"

    def iter_batches(self, requests):
        self.stats.num_generate_calls += 1
        replies = []
        for request in requests:
            text = request.prompt
            if text.startswith("Break the following"):
                reply = "1. find the total\n2. subtract the gifts\n3. state it"
            elif text.startswith("Review this"):
                reply = "VERDICT: CORRECT"
            else:
                reply = f"So it is \\boxed{{{len(text) % 7}}}."
            replies.append((Completion(reply, 10, 4, "eos"),))
        yield BatchOutput(tuple(range(len(requests))), tuple(replies))

    def settings(self) -> dict[str, object]:
        return {"planning": True}


def test_plan_and_reflect_runs_every_subproblem_of_every_problem_in_one_call() -> None:
    problems = load_problems("synthetic", count=5)
    model = PlanningModel()
    agent = make_agent("plan_and_reflect", max_iterations=2, max_subproblems=3)
    results = [r for b in AgentMode(agent=agent).run_batches(model, problems) for r in b.results]
    assert (
        model.stats.num_generate_calls == 4
    )  # plan, execute (15 sub-problems), integrate, reflect
    for result in results:
        roles = [entry["role"] for entry in result.extra["trace"]]
        assert roles == ["planner", *["executor"] * 3, "integrator", "reflector"]
        assert result.extra["plan"] == ["find the total", "subtract the gifts", "state it"]
        assert result.extra["stopped"] == "accepted"
