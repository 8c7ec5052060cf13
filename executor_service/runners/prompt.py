"""The prompt that asks a model to act as an agent and report a structured result."""

from __future__ import annotations

import json
from dataclasses import dataclass

from executor_service.runs.composition import PlannedAgent
from executor_service.templates.models import Tier

_SYSTEM = """\
You are one agent of an automated workflow. Carry out the task your role names, \
using the configuration you are given, then judge your own work against each \
success criterion honestly.

Answer with ONLY one JSON object, with no other text, of exactly this shape:
{"status": "success" | "failure", \
"criteria": {"<criterion>": true | false, ...}, \
"summary": "<what you did and found, in a few sentences>"}

Rules:
- "criteria" has one key per success criterion, spelled exactly as given.
- A criterion is true only if your work meets it.
- "status" is "success" only if every criterion is true."""


@dataclass(frozen=True)
class Prompt:
    """A system instruction and the user message that carries the task."""

    system: str
    user: str


def build_prompt(agent: PlannedAgent, tier: Tier) -> Prompt:
    """The prompt for one attempt of the agent at the tier.

    Configuration and criteria go in as JSON so that user-supplied answers
    stay data and criterion names are unambiguous.
    """
    user = "\n".join(
        [
            f"Role: {agent.role}",
            f"Model tier: {tier.value}",
            f"Configuration (JSON): {json.dumps(agent.config, sort_keys=True)}",
            f"Success criteria (JSON): {json.dumps(list(agent.success_criteria))}",
            "",
            "Do the work of this role now, then answer with the JSON object only.",
        ]
    )
    return Prompt(system=_SYSTEM, user=user)
