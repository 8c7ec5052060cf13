"""Compiling a Lexicon (form_lexicon.py) from a form catalog and the ids a
namespace's data holds that the catalog does not know: template names,
option values (guarded when everyday words or words the catalog uses for
something else), yes/no questions, "none" options and number questions.

Compiled once per catalog and data ids (catalogs compare by identity, so the
cache key is cheap); the memory service compiles its catalog at start.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from memory_service.search.english import COMMON_WORDS, FUNCTION_WORDS
from memory_service.search.form_lexicon import (
    ARTICLES,
    FIELD_NAME,
    WORD,
    Guard,
    Kind,
    Lexicon,
    Meaning,
    Phrase,
    Question,
    content_keys,
    fold,
    keys_of,
    stem,
)
from memory_service.search.forms import FormCatalog, QuestionKind


class _Builder:
    """Collects phrases, merging what several templates or questions share."""

    def __init__(self) -> None:
        self.lexicon = Lexicon()
        self._meanings: dict[tuple[Kind, str, tuple[str, ...]], dict[str, set[str]]] = {}
        self._flags: dict[tuple[Kind, str, tuple[str, ...]], tuple[Guard, bool]] = {}
        self._fuzzy: set[str] = set()

    def add(
        self,
        kind: Kind,
        value: str,
        spelt: Sequence[str],
        target: str,
        templates: Iterable[str],
        guard: Guard = Guard.NONE,
        fuzzy: bool = False,
    ) -> None:
        """A phrase of the folded words `spelt` naming the target."""
        spelt = [word for word in spelt if word not in ARTICLES]
        words = tuple(stem(word) for word in spelt)
        if not words:
            return
        slot = (kind, value, words)
        self._meanings.setdefault(slot, {}).setdefault(target, set()).update(templates)
        known_guard, known_fuzzy = self._flags.get(slot, (guard, fuzzy))
        self._flags[slot] = (max(known_guard, guard), known_fuzzy and fuzzy)
        if fuzzy:
            self._fuzzy.update(word for word in spelt if len(word) >= 5 and word.isalpha())

    def question(self, question: Question) -> None:
        known = self.lexicon.questions.get(question.id)
        if known is not None and known.kind is question.kind:
            question = Question(
                question.id,
                question.kind,
                known.templates | question.templates,
                known.id_keys,
                known.label_keys | question.label_keys,
                _widest(min, known.minimum, question.minimum),
                _widest(max, known.maximum, question.maximum),
                known.unit if known.unit == question.unit else "",
            )
        elif known is not None:
            return  # One id, two kinds: the first template's reading stands.
        if known is None and question.kind is QuestionKind.NUMBER:
            self.lexicon.numbers.append(question.id)
        self.lexicon.questions[question.id] = question
        self.lexicon.known.update(question.words)

    def build(self) -> Lexicon:
        lexicon = self.lexicon
        for (kind, value, words), targets in self._meanings.items():
            guard, fuzzy = self._flags[(kind, value, words)]
            meaning = Meaning(
                kind,
                value,
                tuple((target, frozenset(t)) for target, t in sorted(targets.items())),
                guard,
                fuzzy,
            )
            lexicon.phrases.setdefault(words[0], []).append(Phrase(words, meaning))
            lexicon.known.update(words)
        for word in sorted(self._fuzzy):
            lexicon.fuzzy_words.setdefault(word[0], []).append((word, stem(word)))
        for qid in lexicon.numbers:
            for key in lexicon.questions[qid].words:
                lexicon.number_words.setdefault(key, set()).add(qid)
        return lexicon


def _widest(pick: object, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return float(pick(a, b))  # type: ignore[operator]


def _catalog_words(catalog: FormCatalog) -> Mapping[str, set[str]]:
    """Per word, which questions (or "" for names and tags) use it."""
    used: dict[str, set[str]] = {}
    for template in catalog.templates:
        for text in (template.id, template.name, *template.tags):
            for key in keys_of(text):
                used.setdefault(key, set()).add("")
        for question in template.questions:
            for key in keys_of(question.id) + tuple(content_keys(question.label)):
                used.setdefault(key, set()).add(question.id)
    return used


def _option_guard(
    words: tuple[str, ...], raw: Sequence[str], question_id: str, used: Mapping[str, set[str]]
) -> Guard:
    """A one-word value needs context when it is an everyday word, or a word
    the catalog uses elsewhere for something else."""
    if len(words) != 1:
        return Guard.NONE
    if raw[0] in FUNCTION_WORDS:
        return Guard.FUNCTION
    if raw[0] in COMMON_WORDS or used.get(words[0], set()) - {question_id}:
        return Guard.COMMON
    return Guard.NONE


def _add_options(builder: _Builder, catalog: FormCatalog) -> None:
    used = _catalog_words(catalog)
    value_words: dict[str, set[str]] = {}  # Per word, the multi-word values using it.
    offers: list[tuple[str, str, str]] = []  # (value, question id, template id).
    for template in catalog.templates:
        for question in template.questions:
            for value in question.options:
                offers.append((value, question.id, template.id))
                raw = WORD.findall(fold(value))
                if len(raw) > 1:
                    for word in raw:
                        value_words.setdefault(stem(word), set()).add(value)
    for value, question_id, template_id in offers:
        raw = WORD.findall(fold(value))
        words = tuple(stem(word) for word in raw)
        guard = _option_guard(words, raw, question_id, used)
        builder.add(Kind.OPTION, value, raw, question_id, [template_id], guard, fuzzy=True)
        if len(raw) < 2:
            continue
        # "readthedocs" for read_the_docs; "owasp" for owasp_asvs: a word no
        # other value, name or question uses, as weak as an everyday word.
        joined = ("".join(raw),)
        builder.add(Kind.OPTION, value, joined, question_id, [template_id], fuzzy=True)
        for word, key in zip(raw, words, strict=True):
            distinct = value_words.get(key) == {value} and key not in used
            if distinct and word not in COMMON_WORDS and len(key) >= 3:
                builder.add(Kind.OPTION, value, (word,), question_id, [template_id], Guard.COMMON)


def _add_booleans(builder: _Builder, catalog: FormCatalog) -> None:
    """A yes/no question by its id's words, or its last two when it has more
    ("touches_public_api": "touches public api", "public api")."""
    for template in catalog.templates:
        for question in template.questions:
            if question.kind is not QuestionKind.BOOLEAN:
                continue
            raw = WORD.findall(fold(question.id))
            if len(raw) >= 2:
                builder.add(Kind.BOOLEAN, "", raw, question.id, [template.id])
            if len(raw) >= 3 and any(word not in COMMON_WORDS for word in raw[-2:]):
                builder.add(Kind.BOOLEAN, "", raw[-2:], question.id, [template.id])
            if len(raw) == 2 and raw[0] in FUNCTION_WORDS:  # "has_tests": "without tests".
                builder.add(Kind.BOOLEAN, "", raw[1:], question.id, [template.id], Guard.COMMON)


def _add_none_options(builder: _Builder, catalog: FormCatalog) -> None:
    """A select question offering "none", by its id's words: "no publish
    target" and "without a version bump" choose "none"."""
    for template in catalog.templates:
        for question in template.questions:
            for value in question.options:
                if WORD.findall(fold(value)) == ["none"]:
                    spelt = WORD.findall(fold(question.id))
                    builder.add(Kind.NO_OPTION, value, spelt, question.id, [template.id])


def _add_template(builder: _Builder, template_id: str, names: Iterable[str], fuzzy: bool) -> None:
    for name in (template_id, *names):
        spelt = WORD.findall(fold(name))
        builder.add(Kind.TEMPLATE, "", spelt, template_id, [template_id], fuzzy=fuzzy)


@functools.lru_cache(maxsize=64)
def compile_lexicon(
    catalog: FormCatalog, templates: tuple[tuple[str, str], ...], numbers: tuple[str, ...]
) -> Lexicon:
    """The lexicon of a catalog plus data ids it does not know: templates
    (id, name) and number question ids, in preference order."""
    builder = _Builder()
    builder.lexicon.templates.update(template.id for template in catalog.templates)
    for template in catalog.templates:
        _add_template(builder, template.id, [template.name], fuzzy=True)
        for question in template.questions:
            builder.question(
                Question(
                    question.id,
                    question.kind,
                    frozenset({template.id}),
                    frozenset(keys_of(question.id)),
                    content_keys(question.label),
                    question.minimum,
                    question.maximum,
                    question.unit,
                )
            )
    _add_options(builder, catalog)
    _add_booleans(builder, catalog)
    _add_none_options(builder, catalog)
    known_templates = {template.id for template in catalog.templates}
    for template_id, name in templates:
        if template_id not in known_templates:
            _add_template(builder, template_id, [name], fuzzy=False)
    for question_id in numbers:
        if FIELD_NAME.fullmatch(question_id) and question_id not in builder.lexicon.questions:
            keys = frozenset(keys_of(question_id))
            builder.question(
                Question(question_id, QuestionKind.NUMBER, frozenset(), keys, frozenset())
            )
    return builder.build()
