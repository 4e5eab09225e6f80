"""Agents that batch: every round of every problem goes to the engine together.

:data:`AGENTS` maps each agent name to its class; :func:`make_agent` builds one
from settings and suggests the closest name on a typo.
"""

from __future__ import annotations

import dataclasses
import difflib

from engines.errors import ConfigError
from evaluation.agents.base import Agent, AgentState, Call
from evaluation.agents.majority_vote import MajorityVote
from evaluation.agents.mode import AgentMode
from evaluation.agents.plan_and_reflect import PlanAndReflect
from evaluation.agents.python_tools import PythonTools, SolverCheckerWithTools
from evaluation.agents.solver_checker import SolverChecker, SolverCheckerChat
from evaluation.agents.summarizer import SolverCheckerSummarizer

AGENTS: dict[str, type[Agent]] = {
    cls.name: cls
    for cls in (
        MajorityVote,
        SolverChecker,
        SolverCheckerChat,
        SolverCheckerSummarizer,
        PlanAndReflect,
        PythonTools,
        SolverCheckerWithTools,
    )
}


def agent_class(name: str) -> type[Agent]:
    """The agent class called ``name``."""
    if name not in AGENTS:
        close = difflib.get_close_matches(name, AGENTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown --agent {name!r}{hint}; choose one of: {', '.join(AGENTS)}")
    return AGENTS[name]


def make_agent(name: str, **settings: object) -> Agent:
    """Build agent ``name``; settings it has no field for are ignored (they are another's)."""
    cls = agent_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in settings.items() if k in known and v is not None})


__all__ = ["AGENTS", "Agent", "AgentMode", "AgentState", "Call", "agent_class", "make_agent"]
