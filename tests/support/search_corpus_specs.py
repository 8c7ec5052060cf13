"""The runs of the labelled search corpus: which template, which answers, whose.

Deterministic (one seeded random stream), so every build makes the same
runs with the same simulated outcomes. Answers are drawn from each built-in
template's own form (options, ranges, booleans), some left to their
defaults; free-text answers come from name pools chosen not to collide
with the templates' vocabulary, except where a question needs a collision.
A share of runs override the tier strategy (every strategy appears), and a
few carry a sensitive word in a free-text answer, so that they are SENSITIVE
and only their owner may find them. (Every security audit is SENSITIVE too:
its answers name secrets and personal data.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from attune.common.v1 import common_pb2
from tests.support.helpers import Answer

ASKER, OTHER = "alice", "bob"
OWNERS = (ASKER, OTHER)
RUNS_PER_TEMPLATE = 50
# The share of optional questions answered rather than left to their default.
ANSWERED = 0.7
STRATEGIES = (
    common_pb2.TIER_STRATEGY_CHEAP_ONLY,
    common_pb2.TIER_STRATEGY_PROGRESSIVE,
    common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
    common_pb2.TIER_STRATEGY_PREMIUM_ONLY,
    common_pb2.TIER_STRATEGY_LEARNED,
)
# Free-text answers, per question: names a team would use.
NAMES = (
    "fastcsv",
    "tinyhttp",
    "ledgerkit",
    "quartz-cache",
    "pyweather",
    "orbit-cli",
    "mapsy",
    "nimbus-sdk",
    "kestrel",
    "pollen",
    "taskrail",
    "sqlbox",
    "glimmer",
    "harbor-sync",
    "inkwell",
    "juniper",
)
# Numbers people pick for percent targets, rather than any integer.
PERCENTS = (50, 60, 70, 75, 80, 85, 90, 95, 100)
NUMBER_POOLS: Mapping[str, tuple[float, ...]] = {
    "test_coverage_required": PERCENTS,
    "test_coverage_target": PERCENTS,
    "docstring_coverage_target": PERCENTS,
    "fail_on_cvss": (4.0, 5.5, 7.0, 8.0, 9.0, 9.8),
}
# Shared (INTERNAL) runs with a word the SENSITIVE ones share, so that a
# SENSITIVE best match has shared runs that match part of the question.
EXPORTERS = ("metrics exporter", "trace exporter", "log exporter", "csv exporter", "span exporter")


@dataclass(frozen=True)
class RunSpec:
    """One run to make: the template, the answers given, the caller, the strategy."""

    template_id: str
    answers: Mapping[str, Answer]
    owner: str
    seed: int
    strategy: common_pb2.TierStrategy.ValueType = common_pb2.TIER_STRATEGY_UNSPECIFIED


def builtin_templates() -> dict[str, dict[str, Any]]:
    """The built-in templates as their JSON says, by id."""
    folder = resources.files("executor_service.templates") / "builtin"
    loaded = [
        json.loads(entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".json")
    ]
    return {template["id"]: template for template in sorted(loaded, key=lambda t: t["id"])}


def _free_text(question_id: str, rng: random.Random) -> str:
    name = rng.choice(NAMES)
    if question_id == "pull_request_url":
        return f"acme/{name}#{rng.randint(2, 400)}"
    if question_id == "repository":
        return f"github.com/acme/{name}"
    if question_id == "target_path":
        return f"src/{name.replace('-', '_')}"
    if question_id == "release_version":
        return f"{rng.randint(0, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"
    if question_id == "release_branch":
        return rng.choice(("main", "release", "stable"))
    return name


def _answer(question: Mapping[str, Any], rng: random.Random) -> Answer:
    kind = question["type"]
    if kind == "single_select":
        return str(rng.choice(question["options"]))
    if kind == "multi_select":
        count = rng.randint(1, min(3, len(question["options"])))
        chosen = set(rng.sample(question["options"], count))
        return [option for option in question["options"] if option in chosen]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "number":
        pool = NUMBER_POOLS.get(question["id"])
        if pool is not None:
            return float(rng.choice(pool))
        return float(rng.randint(int(question["min"]), int(question["max"])))
    return _free_text(question["id"], rng)


def _answers(template: Mapping[str, Any], rng: random.Random) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for question in template["questions"]:
        must = question.get("required") and "default" not in question
        if must or question["type"] == "text" or rng.random() < ANSWERED:
            answers[question["id"]] = _answer(question, rng)
    return answers


def _strategy(rng: random.Random) -> common_pb2.TierStrategy.ValueType:
    # Two in three runs keep the template's own per-role strategies.
    return rng.choice(STRATEGIES) if rng.random() < 1 / 3 else common_pb2.TIER_STRATEGY_UNSPECIFIED


def _designed(seed: int) -> list[RunSpec]:
    """Runs some questions need, beyond what chance gives."""
    publish = "python_package_publish"
    specs = [
        # SENSITIVE best matches: a word only these runs have, beside shared
        # runs that match the rest of the question.
        RunSpec(
            publish,
            {"package_name": "payroll salary exporter"},
            ASKER,
            seed,
        ),
        RunSpec(publish, {"package_name": "salary band calculator"}, OTHER, seed + 1),
        RunSpec(
            "documentation",
            {"project_name": "confidential pricing wiki", "doc_tool": "sphinx"},
            OTHER,
            seed + 2,
        ),
        RunSpec(
            "documentation",
            {"project_name": "confidential onboarding handbook", "doc_tool": "sphinx"},
            ASKER,
            seed + 3,
        ),
    ]
    for offset, name in enumerate(EXPORTERS):
        owner = OWNERS[offset % 2]
        specs.append(RunSpec(publish, {"package_name": name}, owner, seed + 10 + offset))
    # Option values people name, for both owners' audits (every audit is SENSITIVE).
    for offset, owner in enumerate(OWNERS * 2):
        answers: dict[str, Answer] = {
            "repository": f"github.com/acme/{NAMES[offset]}",
            "audit_scope": ["source_code", "dependencies"],
            "compliance_framework": "hipaa",
        }
        specs.append(RunSpec("security_audit", answers, owner, seed + 20 + offset))
    return specs


def corpus_specs(seed: int = 15) -> list[RunSpec]:
    """Every run of the corpus, in the order they are made."""
    rng = random.Random(seed)
    specs: list[RunSpec] = []
    for template_id, template in builtin_templates().items():
        for number in range(RUNS_PER_TEMPLATE):
            specs.append(
                RunSpec(
                    template_id,
                    _answers(template, rng),
                    OWNERS[number % 2],
                    rng.randrange(1 << 32),
                    _strategy(rng),
                )
            )
    specs.extend(_designed(rng.randrange(1 << 32)))
    rng.shuffle(specs)
    return specs
