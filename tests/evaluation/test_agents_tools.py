"""Tool agents with the real sandbox: a looping, crashing or flooding snippet is data.

Random-weight models never write a ```python block, so the model's side is
scripted: an engine that answers each problem with a chosen snippet (and the
follow-up with a boxed answer).  Everything after the model -- code extraction,
the sandbox processes, the follow-up round, the checker -- is the real code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from commands.eval import main
from engines import BatchOutput, Completion, Engine, GenerationRequest
from evaluation import sandbox, sandbox_view
from evaluation.agents import AgentMode, make_agent
from evaluation.datasets import load_problems
from evaluation.sandbox import SandboxLimits, SandboxUnavailableError

SNIPPETS = {
    "loop": "```python\nwhile True:\n    pass\n```",
    "crash": "```python\nraise ValueError('boom')\n```",
    "flood": "```python\nprint('x' * 100_000_000)\n```",
    "fine": "```python\nprint(6 * 7)\n```",
    "none": "No code needed. The answer is \\boxed{3}.",
}


class ScriptedModel(Engine):
    """Answers by problem: the solver writes its snippet, the follow-up boxes 42."""

    name = "scripted"

    def __init__(self, snippet_by_question: dict[str, str]) -> None:
        super().__init__()
        self.snippet_by_question = snippet_by_question

    def _reply(self, request: GenerationRequest) -> str:
        text = request.prompt or request.messages[-1]["content"]
        if text.startswith("You are checking"):
            return "Looks right.\nVERDICT: CORRECT"
        if "Your code printed" in text:
            return "So the result is \\boxed{42}."
        return next(s for q, s in self.snippet_by_question.items() if q in text)

    def iter_batches(self, requests: Sequence[GenerationRequest]) -> Iterator[BatchOutput]:
        self.stats.num_generate_calls += 1
        outputs = tuple((Completion(self._reply(r), 10, 5, "eos"),) for r in requests)
        yield BatchOutput(tuple(range(len(requests))), outputs)

    def settings(self) -> dict[str, object]:
        return {"scripted": True}


@pytest.mark.parametrize("name", ["python_tools", "solver_checker_with_tools"])
def test_bad_snippets_end_as_data_and_the_run_goes_on(name: str) -> None:
    problems = load_problems("synthetic", count=len(SNIPPETS))
    kinds = dict(zip((p.id for p in problems), SNIPPETS, strict=True))
    model = ScriptedModel({p.question: SNIPPETS[kinds[p.id]] for p in problems})
    limits = SandboxLimits(wall_seconds=2.0, cpu_seconds=2, max_output_bytes=4096)
    agent = make_agent(name, max_iterations=1, limits=limits)
    results = [r for b in AgentMode(agent=agent).run_batches(model, problems) for r in b.results]
    by_kind = {kinds[r.problem.id]: r for r in results}
    assert set(by_kind) == set(SNIPPETS)
    tools = {k: r.extra["trace"][0].get("tool") for k, r in by_kind.items()}
    assert tools["loop"]["killed_reason"] in ("wall_time", "cpu_time")
    assert tools["crash"]["exit_code"] not in (0, None) and "ValueError" in tools["crash"]["output"]
    flood = tools["flood"]  # cut at the output limit, or stopped while building 100 MB
    assert flood["truncated"] or flood["killed_reason"] in ("output_limit", "wall_time", "memory")
    assert len(tools["flood"]["output"]) <= 2100
    assert tools["fine"]["output"].strip() == "42" and tools["none"] is None
    for kind in ("loop", "crash", "flood", "fine"):  # the model saw the output and answered
        assert by_kind[kind].predicted == "42" and by_kind[kind].extra["num_tool_runs"] == 1
        follow_up = by_kind[kind].extra["trace"][1]
        assert follow_up["role"] == "solver" and "Your code printed" in str(follow_up["prompt"])
    assert by_kind["none"].predicted == "3" and by_kind["none"].extra["num_tool_runs"] == 0
    if name == "solver_checker_with_tools":
        assert all(r.extra["stopped"] == "accepted" for r in results)


def test_a_machine_that_cannot_isolate_is_refused_before_the_model_loads(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The lowest layer fails: pivot_root is asked for with an unknown syscall number.
    monkeypatch.setattr(sandbox_view, "PIVOT_ROOT", {})
    monkeypatch.setattr(sandbox, "_isolation_checked", False)
    result = sandbox.run_python("print('ran')")
    assert result.killed_reason.startswith("start_failed: cannot isolate the code (pivot_root")
    assert result.stdout == ""  # the code never ran with less protection
    with pytest.raises(SandboxUnavailableError, match="sandbox cannot start here: .*pivot_root"):
        make_agent("python_tools")
    flags = ("--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "1",
             "--agent", "solver_checker_with_tools", "--results_dir", str(tmp_path))  # fmt: skip
    assert main(list(flags)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "sandbox cannot start here" in line
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made
