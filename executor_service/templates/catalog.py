"""The template catalog: the built-in templates shipped with the package."""

from __future__ import annotations

from importlib import resources

from executor_service.templates.models import Template


class Catalog:
    """Templates by id, ordered by id."""

    def __init__(self, templates: list[Template]) -> None:
        self._by_id = {template.id: template for template in sorted(templates, key=lambda t: t.id)}

    def get(self, template_id: str) -> Template | None:
        """The template, or None."""
        return self._by_id.get(template_id)

    def all(self) -> list[Template]:
        """Every template, ordered by id."""
        return list(self._by_id.values())


def load_builtin() -> Catalog:
    """The catalog of templates shipped as data files in this package."""
    folder = resources.files("executor_service.templates").joinpath("builtin")
    templates = [
        Template.model_validate_json(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    ]
    return Catalog(templates)
