"""Templates as the API presents them."""

from __future__ import annotations

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import STRATEGY_TO_PROTO
from executor_service.runs.forms import from_form_value, to_form_value
from executor_service.templates.models import Question, QuestionType, Template

_QUESTION_TYPES = {
    QuestionType.TEXT: executor_pb2.QUESTION_TYPE_TEXT,
    QuestionType.SINGLE_SELECT: executor_pb2.QUESTION_TYPE_SINGLE_SELECT,
    QuestionType.MULTI_SELECT: executor_pb2.QUESTION_TYPE_MULTI_SELECT,
    QuestionType.BOOLEAN: executor_pb2.QUESTION_TYPE_BOOLEAN,
    QuestionType.NUMBER: executor_pb2.QUESTION_TYPE_NUMBER,
}


_QUESTION_TYPES_BACK = {value: key for key, value in _QUESTION_TYPES.items()}


def question_from_proto(message: executor_pb2.Question) -> Question:
    """The model of a question as the API presents it."""
    default = from_form_value(message.default_value) if message.HasField("default_value") else None
    return Question(
        id=message.id,
        text=message.text,
        help=message.help,
        type=_QUESTION_TYPES_BACK[message.type],
        options=list(message.options),
        default=default,
        required=message.required,
        min=message.min if message.HasField("min") else None,
        max=message.max if message.HasField("max") else None,
    )


def template_to_proto(template: Template) -> executor_pb2.Template:
    """The template message for a template."""
    message = executor_pb2.Template(
        id=template.id,
        name=template.name,
        description=template.description,
        version=template.version,
        tags=template.tags,
        estimated_cost=common_pb2.CostRange(
            min_usd=template.estimated_cost.min_usd, max_usd=template.estimated_cost.max_usd
        ),
    )
    message.estimated_duration.FromNanoseconds(int(template.estimated_duration_seconds * 1e9))
    for question in template.questions:
        item = message.questions.add(
            id=question.id,
            text=question.text,
            help=question.help,
            type=_QUESTION_TYPES[question.type],
            options=question.options,
            required=question.required,
        )
        if question.default is not None:
            item.default_value.CopyFrom(to_form_value(question.default))
        if question.min is not None:
            item.min = question.min
        if question.max is not None:
            item.max = question.max
    for rule in template.agent_rules:
        message.agent_rules.add(
            role=rule.role,
            base_template=rule.base_template,
            tools=rule.tools,
            success_criteria=rule.success_criteria,
            tier_strategy=STRATEGY_TO_PROTO[rule.tier_strategy],
            required_answers={key: to_form_value(value) for key, value in rule.when.items()},
            depends_on=rule.depends_on,
            config_mapping=rule.config_mapping,
        )
    return message
