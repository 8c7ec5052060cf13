"""Mappings between the domain enums and their proto counterparts."""

from __future__ import annotations

from attune.common.v1 import common_pb2
from executor_service.templates.models import Tier, TierStrategy

TIER_TO_PROTO: dict[Tier, common_pb2.Tier.ValueType] = {
    Tier.CHEAP: common_pb2.TIER_CHEAP,
    Tier.CAPABLE: common_pb2.TIER_CAPABLE,
    Tier.PREMIUM: common_pb2.TIER_PREMIUM,
}

STRATEGY_TO_PROTO: dict[TierStrategy, common_pb2.TierStrategy.ValueType] = {
    TierStrategy.CHEAP_ONLY: common_pb2.TIER_STRATEGY_CHEAP_ONLY,
    TierStrategy.PROGRESSIVE: common_pb2.TIER_STRATEGY_PROGRESSIVE,
    TierStrategy.CAPABLE_FIRST: common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
    TierStrategy.PREMIUM_ONLY: common_pb2.TIER_STRATEGY_PREMIUM_ONLY,
}
STRATEGY_FROM_PROTO = {value: key for key, value in STRATEGY_TO_PROTO.items()}

RUNNER_NAMES: dict[common_pb2.Runner.ValueType, str] = {
    common_pb2.RUNNER_SIMULATED: "simulated",
    common_pb2.RUNNER_ANTHROPIC: "anthropic",
    common_pb2.RUNNER_OPENAI: "openai",
}
RUNNER_FROM_NAME = {value: key for key, value in RUNNER_NAMES.items()}


def tier_name(tier: common_pb2.Tier.ValueType) -> str:
    """The lower-case name of a proto tier, e.g. "premium"."""
    return common_pb2.Tier.Name(tier).removeprefix("TIER_").lower()


def strategy_name(strategy: common_pb2.TierStrategy.ValueType) -> str:
    """The settings' and run files' name of a tier strategy, e.g. "premium_only"."""
    return common_pb2.TierStrategy.Name(strategy).removeprefix("TIER_STRATEGY_").lower()
