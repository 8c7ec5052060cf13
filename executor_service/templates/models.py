"""The template model: a form of typed questions and composition rules."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

Answer = str | float | bool | list[str]


class QuestionType(StrEnum):
    """The type of a question, and so of its answer."""

    TEXT = "text"
    SINGLE_SELECT = "single_select"
    MULTI_SELECT = "multi_select"
    BOOLEAN = "boolean"
    NUMBER = "number"


class TierStrategy(StrEnum):
    """How an agent picks and escalates tiers."""

    CHEAP_ONLY = "cheap_only"
    PROGRESSIVE = "progressive"
    CAPABLE_FIRST = "capable_first"
    PREMIUM_ONLY = "premium_only"


class Tier(StrEnum):
    """A model tier."""

    CHEAP = "cheap"
    CAPABLE = "capable"
    PREMIUM = "premium"


TIER_LADDERS: dict[TierStrategy, tuple[Tier, ...]] = {
    TierStrategy.CHEAP_ONLY: (Tier.CHEAP,),
    TierStrategy.PROGRESSIVE: (Tier.CHEAP, Tier.CAPABLE, Tier.PREMIUM),
    TierStrategy.CAPABLE_FIRST: (Tier.CAPABLE, Tier.PREMIUM),
    TierStrategy.PREMIUM_ONLY: (Tier.PREMIUM,),
}


class _Strict(BaseModel):
    # No NaN or infinity anywhere: they would disable bounds or overflow
    # the Duration a template is served with.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Question(_Strict):
    """One form question."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str
    help: str = ""
    type: QuestionType
    options: list[str] = []
    default: Answer | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _options_fit_type(self) -> Question:
        selects = (QuestionType.SINGLE_SELECT, QuestionType.MULTI_SELECT)
        if (self.type in selects) != bool(self.options):
            raise ValueError("options are required for select questions and only for them")
        return self


class AgentRule(_Strict):
    """Creates one agent when every answer in `when` holds."""

    role: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    base_template: str = ""
    tools: list[str] = []
    success_criteria: list[str] = Field(min_length=1)
    tier_strategy: TierStrategy = TierStrategy.PROGRESSIVE
    when: dict[str, Answer] = {}
    depends_on: list[str] = []
    config_mapping: dict[str, str] = {}


class CostRange(_Strict):
    """Expected cost in US dollars."""

    min_usd: float = Field(ge=0)
    max_usd: float = Field(ge=0)


class Template(_Strict):
    """A workflow template."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    description: str
    version: str
    tags: list[str] = []
    estimated_cost: CostRange
    estimated_duration_seconds: float = Field(ge=0, le=30 * 24 * 3600)
    questions: list[Question]
    agent_rules: list[AgentRule]

    @model_validator(mode="after")
    def _references_resolve(self) -> Template:
        question_ids = [question.id for question in self.questions]
        roles = [rule.role for rule in self.agent_rules]
        if len(set(question_ids)) != len(question_ids):
            raise ValueError("question ids must be unique")
        if len(set(roles)) != len(roles):
            raise ValueError("agent roles must be unique")
        for rule in self.agent_rules:
            for question_id in [*rule.when, *rule.config_mapping.values()]:
                if question_id not in question_ids:
                    raise ValueError(f"rule {rule.role!r} names unknown question {question_id!r}")
            for dependency in rule.depends_on:
                if dependency not in roles:
                    raise ValueError(f"rule {rule.role!r} depends on unknown role {dependency!r}")
        return self

    def question(self, question_id: str) -> Question | None:
        """The question with that id, if any."""
        return next((q for q in self.questions if q.id == question_id), None)
