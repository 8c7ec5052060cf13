"""The executor's templates as query understanding reads them, so that the
local fallback understands a query exactly as the memory service does (which
reads the same template files itself: memory_service/search/forms.py)."""

from __future__ import annotations

from executor_service.templates.catalog import Catalog
from executor_service.templates.models import QuestionType, Template
from memory_service.search.forms import (
    FormCatalog,
    FormQuestion,
    FormTemplate,
    QuestionKind,
    unit_of,
)


def form_template(template: Template) -> FormTemplate:
    """One template's names and form."""
    return FormTemplate(
        template.id,
        template.name,
        template.description,
        tuple(template.tags),
        tuple(
            FormQuestion(
                question.id,
                question.text,
                QuestionKind(question.type.value),
                tuple(question.options),
                question.min,
                question.max,
                unit_of(question.text) if question.type is QuestionType.NUMBER else "",
            )
            for question in template.questions
        ),
    )


def form_catalog(catalog: Catalog) -> FormCatalog:
    """Every served template's form, ordered by id."""
    return FormCatalog.of(form_template(template) for template in catalog.all())
