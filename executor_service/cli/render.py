"""Rich output of the CLI: consoles, tables and summaries."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC

from google.protobuf.descriptor import EnumDescriptor
from rich.console import Console
from rich.table import Table
from rich.text import Text

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.cli.answers import FormValue, format_number, format_value, type_name
from executor_service.convert.enums import RUNNER_NAMES, tier_name

# Wide enough that ids and tokens stay on one line when output is piped.
PIPE_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A console that prints text literally: template text may contain [brackets]."""
    console = Console(stderr=stderr, markup=False, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def enum_name(descriptor: EnumDescriptor, value: int, prefix: str) -> str:
    """The lower-case name of an enum value without its prefix, e.g. "succeeded"."""
    found = descriptor.values_by_number.get(value)
    # A newer server may send values this client does not know yet.
    return found.name.removeprefix(prefix).lower() if found else f"unknown({value})"


def strategy_name(value: common_pb2.TierStrategy.ValueType) -> str:
    return enum_name(common_pb2.TierStrategy.DESCRIPTOR, value, "TIER_STRATEGY_")


def run_status(value: executor_pb2.RunStatus.ValueType) -> str:
    return enum_name(executor_pb2.RunStatus.DESCRIPTOR, value, "RUN_STATUS_")


def agent_status(value: executor_pb2.AgentStatus.ValueType) -> str:
    return enum_name(executor_pb2.AgentStatus.DESCRIPTOR, value, "AGENT_STATUS_")


def runner_name(value: common_pb2.Runner.ValueType) -> str:
    return RUNNER_NAMES.get(value, "unspecified")


def usd(amount: float) -> str:
    return f"${amount:.4f}"


def cost_range(cost: common_pb2.CostRange) -> str:
    return f"{usd(cost.min_usd)} - {usd(cost.max_usd)}"


def violations_table(violations: Sequence[tuple[str, str]], field_label: str) -> Table:
    """One row per field violation."""
    table = Table(field_label, "problem", title_justify="left")
    for field, problem in violations:
        table.add_row(Text(field, style="bold"), problem)
    return table


def templates_table(templates: Sequence[executor_pb2.Template]) -> Table:
    table = Table("id", "name", "version", "tags", "est. cost", title="Templates")
    for template in templates:
        table.add_row(
            Text(template.id, style="bold"),
            template.name,
            template.version,
            ", ".join(template.tags),
            cost_range(template.estimated_cost),
        )
    return table


def _range(question: executor_pb2.Question) -> str:
    if not (question.HasField("min") or question.HasField("max")):
        return ""
    low = format_number(question.min) if question.HasField("min") else ""
    high = format_number(question.max) if question.HasField("max") else ""
    return f"{low}..{high}"


def questions_table(questions: Sequence[executor_pb2.Question]) -> Table:
    table = Table(
        "id", "type", "question", "options", "default", "required", "min..max", title="Questions"
    )
    for question in questions:
        text = Text(question.text)
        if question.help:
            text.append("\n" + question.help, style="dim")
        default = format_value(question.default_value) if question.HasField("default_value") else ""
        table.add_row(
            Text(question.id, style="bold"),
            type_name(question),
            text,
            ", ".join(question.options),
            default,
            "yes" if question.required else "no",
            _range(question),
        )
    return table


def _condition(question_id: str, value: FormValue) -> str:
    # A list requires any one of its values (see AgentRule.required_answers).
    if value.HasField("string_list_value"):
        return f"{question_id} in {{{', '.join(value.string_list_value.values)}}}"
    return f"{question_id}={format_value(value)}"


def _when(required: Mapping[str, FormValue]) -> str:
    return " and ".join(_condition(key, required[key]) for key in sorted(required))


def rules_table(rules: Sequence[executor_pb2.AgentRule]) -> Table:
    table = Table("role", "strategy", "depends on", "when", "tools", title="Agent rules")
    for rule in rules:
        table.add_row(
            Text(rule.role, style="bold"),
            strategy_name(rule.tier_strategy),
            ", ".join(rule.depends_on),
            _when(rule.required_answers) or "always",
            ", ".join(rule.tools),
        )
    return table


def print_template(console: Console, template: executor_pb2.Template) -> None:
    """Everything `templates show` tells about a template."""
    console.print(Text.assemble((template.name, "bold"), f"  ({template.id} v{template.version})"))
    console.print(template.description)
    minutes = template.estimated_duration.ToSeconds() / 60
    console.print(
        f"tags: {', '.join(template.tags) or '-'}; est. cost {cost_range(template.estimated_cost)};"
        f" est. duration {minutes:.0f} min"
    )
    console.print(questions_table(template.questions))
    console.print(rules_table(template.agent_rules))


def print_plan(
    console: Console, plan: executor_pb2.PlanWorkflowResponse, given: Mapping[str, FormValue]
) -> None:
    """The resolved answers, the team in order and the cost estimate."""
    answers = Table("question", "answer", "from", title="Resolved answers")
    for key in sorted(plan.resolved_answers):
        source = "given" if key in given else "default"
        answers.add_row(Text(key, style="bold"), format_value(plan.resolved_answers[key]), source)
    console.print(answers)
    team = Table("stage", "role", "strategy", "first tier", "depends on", title="Team")
    for agent in plan.team:
        team.add_row(
            str(agent.stage),
            Text(agent.role, style="bold"),
            strategy_name(agent.tier_strategy),
            tier_name(agent.first_tier),
            ", ".join(agent.depends_on),
        )
    console.print(team)
    console.print(f"Estimated cost: {cost_range(plan.estimated_cost)}")


def runs_table(runs: Sequence[executor_pb2.Run]) -> Table:
    table = Table("run id", "template", "status", "cost", "created (UTC)", title="Runs")
    for run in runs:
        created = run.create_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            Text(run.run_id, style="bold"),
            run.template_id,
            run_status(run.status),
            usd(run.total_cost_usd),
            created,
        )
    return table


def print_run_summary(console: Console, run: executor_pb2.Run) -> None:
    """What a finished run amounted to; simulated results are labelled as such."""
    runner = runner_name(run.runner)
    console.print(
        Text.assemble(
            "run ",
            (run.run_id, "bold"),
            f"  status={run_status(run.status)}  runner={runner}",
        ),
        soft_wrap=True,
    )
    if run.runner == common_pb2.RUNNER_SIMULATED:
        console.print(
            Text(f"results are simulated (seed {run.seed}), not model output", style="yellow")
        )
    console.print(f"total cost: {usd(run.total_cost_usd)}")
    console.print(f"run dir: {run.run_dir or '-'}", soft_wrap=True)
    delivery = {
        executor_pb2.PATTERN_DELIVERY_STORED: "stored in the memory service",
        executor_pb2.PATTERN_DELIVERY_QUEUED: "queued in the outbox, delivered when memory is back",
        executor_pb2.PATTERN_DELIVERY_REJECTED: "refused by the memory service, kept with the run",
    }.get(run.pattern_delivery, "not delivered")
    console.print(f"pattern: {delivery}")
