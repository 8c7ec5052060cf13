"""The human-readable report.md of a run."""

from __future__ import annotations

from collections import defaultdict

from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import RUNNER_NAMES, tier_name
from executor_service.runs.forms import answer_text, from_form_value


def _status(value: int, enum: str) -> str:
    return (
        executor_pb2.DESCRIPTOR.enum_types_by_name[enum]
        .values_by_number[value]
        .name.split("_STATUS_")[-1]
        .lower()
    )


def _inline(text: str) -> str:
    """User or model text made inert in Markdown: one line, markup escaped,
    so an answer can never forge a line of the report. (Underscores inside
    words are not emphasis in Markdown, so ids stay readable.)"""
    flat = " ".join(text.split())
    return "".join(f"\\{char}" if char in "\\`*[]<>|" else char for char in flat)


def render_report(run: executor_pb2.Run) -> str:
    """A Markdown summary: answers, team, attempts and cost by tier."""
    runner = RUNNER_NAMES.get(run.runner, "unknown")
    lines = [
        f"# Run {run.run_id}",
        "",
        f"- Template: `{run.template_id}` (version {run.template_version})",
        f"- Status: **{_status(run.status, 'RunStatus')}**",
        f"- Runner: `{runner}`"
        + (
            " (simulated results, not model output; seed " + str(run.seed) + ")"
            if runner == "simulated"
            else ""
        ),
        f"- Total cost: ${run.total_cost_usd:.6f}",
        f"- Duration: {run.total_duration.ToNanoseconds() / 1e9:.3f} s",
        f"- Started: {run.create_time.ToJsonString()}",
        "",
        "## Answers",
        "",
    ]
    for key in sorted(run.answers):
        answer = from_form_value(run.answers[key])
        shown = "" if answer is None else answer_text(answer)
        lines.append(f"- `{key}`: {_inline(shown)}")
    lines += [
        "",
        "## Team",
        "",
        "| role | status | final tier | attempts | cost (USD) |",
        "|---|---|---|---|---|",
    ]
    by_tier: dict[str, float] = defaultdict(float)
    for agent in run.agents:
        for attempt in agent.attempts:
            by_tier[tier_name(attempt.tier)] += attempt.cost_usd
        final = tier_name(agent.final_tier) if agent.attempts else "-"
        status = _status(agent.status, "AgentStatus")
        if agent.skip_reason:
            status += f" ({_inline(agent.skip_reason)})"
        lines.append(
            f"| {agent.role} | {status} | {final} | {len(agent.attempts)} | {agent.cost_usd:.6f} |"
        )
    lines += ["", "## Attempts", ""]
    for agent in run.agents:
        for attempt in agent.attempts:
            outcome = "ok" if attempt.success else f"failed: {_inline(attempt.error)}"
            lines.append(
                f"- {agent.role} #{attempt.number} at {tier_name(attempt.tier)} ({attempt.model}): "
                f"{attempt.input_tokens} in / {attempt.output_tokens} out tokens, "
                f"${attempt.cost_usd:.6f}, {outcome}"
            )
    lines += ["", "## Cost by tier", ""]
    for tier in ("cheap", "capable", "premium"):
        lines.append(f"- {tier}: ${by_tier.get(tier, 0.0):.6f}")
    return "\n".join(lines) + "\n"
