"""An agent as an evaluation mode: built from a request, a resumed run's settings, defaults.

Every agent is an entry of the mode table (``evaluation.plan.MODES``), so ``--agent
NAME`` and ``--mode NAME`` are the same run through the same pipeline.
"""

from __future__ import annotations

import dataclasses
import math

from engines.errors import ConfigError
from evaluation.agents import AgentMode, make_agent
from evaluation.prompts import PromptSettings
from evaluation.request import EvalRequest
from evaluation.sandbox import SandboxLimits

# majority_vote samples; greedy would give k identical answers
SAMPLING_DEFAULTS = {"majority_vote": {"temperature": 0.7, "top_p": 0.95, "seed": 0}}
# request fields named like the agents' fields; a resume takes the folder's values for those
# not given
AGENT_FIELDS = ("num_runs", "max_iterations", "checker_model", "max_subproblems")


def agent_mode(
    name: str,
    request: EvalRequest,
    stored: dict | None,
    prompt_settings: PromptSettings,
) -> AgentMode:
    """Agent ``name`` as a mode: request values, then the resumed run's, then defaults.

    ``prompt_settings`` is built from a request with the agent's sampling
    defaults filled in (:func:`with_sampling_defaults`).
    """
    saved = dict((stored or {}).get("agent") or {})
    values = {f: getattr(request, f) for f in AGENT_FIELDS}
    values = {k: v if v is not None else saved.get(k) for k, v in values.items()}
    wall = request.sandbox_timeout or saved.get("sandbox_wall_seconds")
    if wall is not None:
        if wall <= 0:
            raise ConfigError(f"--sandbox_timeout must be > 0, got {wall}")
        values["limits"] = SandboxLimits(wall_seconds=wall, cpu_seconds=max(1, math.ceil(wall)))
    agent = make_agent(name, prompt=prompt_settings, **values)
    model = request.model or (stored or {}).get("model")
    checker = agent.settings().get("checker_model")  # the main model needs no second copy
    return AgentMode(agent=agent, checker_model=checker if checker != model else None)


def with_sampling_defaults(name: str, request: EvalRequest, stored: dict | None) -> EvalRequest:
    """``request`` with agent ``name``'s sampling defaults where it gives none (new runs only)."""
    if stored is not None:
        return request
    defaults = SAMPLING_DEFAULTS.get(name, {})
    missing = {k: v for k, v in defaults.items() if getattr(request, k) is None}
    return dataclasses.replace(request, **missing)
