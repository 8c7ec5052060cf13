"""Query understanding's vocabulary, compiled from a form catalog (and the
template and number question ids a namespace's data holds that the catalog
does not know): phrases that name templates, option values and yes/no
questions, the words of every question, and fuzzy matching of names.

Words are compared by a light stem (plural, -ing and -ed forms, a final e),
so "security audits", "reviewing code" and "touching the public api" read as
the forms spell them. A word that is no known word may stand for a known
name or value of five letters or more that it misspells (same first letter;
one edit, two from nine letters), unless it is an everyday English word or
ends as another word of the same root would ("operations" is no typo of
"operators").
Ids the data holds beyond the catalog are matched by stem only, never
fuzzily: planning keeps only those a query can name (planning._nameable).

A compiled lexicon is cached per catalog and data ids (catalogs compare by
identity); fuzzy look-ups are cached per lexicon.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from rapidfuzz.distance import OSA

from memory_service.search.english import COMMON_WORDS, FUNCTION_WORDS
from memory_service.search.forms import FormCatalog, QuestionKind

WORD = re.compile(r"[^\W_]+")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # What a filter path may name.
ARTICLES = frozenset({"a", "an", "the"})
# Ignoring case, `re` matches these to ASCII letters; casefold() does not.
_FOLDS_TO_ASCII = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_VOWELS = frozenset("aeiouy")
# Words of a question's label that say nothing about what it asks.
_LABEL_STOP = FUNCTION_WORDS | {"percent", "percentage", "per", "cent", "least"}
_MAX_FUZZY_CACHE = 4096
MAX_MISSPELT = 16  # Words of a query tried as misspellings, at most.
# Endings that make another word of the same root: a word ending so is read
# as a misspelling only of a word with the same ending.
_ENDINGS = ("ing", "ions", "ion", "ed", "ers", "er", "ors", "or", "es", "ity", "ment", "ness")


def fold(text: str) -> str:
    """Lower case as IGNORECASE matching folds it."""
    return text.translate(_FOLDS_TO_ASCII).casefold()


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A folded word without its plural, -ing or -ed ending or a final e
    (a light Porter step 1): "audits" "auditing" "audited" -> "audit",
    "releases" "releasing" -> "releas"; short words and non-letters stay."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        rest = word[: -len(suffix)]
        if word.endswith(suffix) and len(rest) >= 3 and _VOWELS & set(rest):
            word = rest
            if word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "running" -> "run".
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def keys_of(text: str) -> tuple[str, ...]:
    """The stems of a text's words (an id's words split at _ too)."""
    return tuple(stem(word) for word in WORD.findall(fold(text)))


def _content(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in WORD.findall(fold(text)) if w not in _LABEL_STOP)


class Guard(IntEnum):
    """How much context a phrase needs before it is read as a filter."""

    NONE = 0
    COMMON = 1  # An everyday word: its question's words, its template, or "in X".
    FUNCTION = 2  # "none", "other", "all": its question's words only.


class Kind(IntEnum):
    """What a phrase names."""

    TEMPLATE = 0
    OPTION = 1
    BOOLEAN = 2  # COMMON-guarded: only right after "with", "without", "no", "not".
    NO_OPTION = 3  # A question's words after "no"/"without": its option "none".


@dataclass(frozen=True)
class Question:
    """A question id as every template asking it has it (labels and ranges merged)."""

    id: str
    kind: QuestionKind
    templates: frozenset[str]
    id_keys: frozenset[str]
    label_keys: frozenset[str]
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    words: frozenset[str] = field(init=False, default=frozenset())  # Id and label words.

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", self.id_keys | self.label_keys)


@dataclass(frozen=True)
class Meaning:
    """What a phrase names: templates, or an option value or a yes/no
    question with, per question id, the templates offering it."""

    kind: Kind
    value: str  # The option value; "" for templates and yes/no questions.
    targets: tuple[tuple[str, frozenset[str]], ...]  # (template or question id, templates).
    guard: Guard = Guard.NONE
    fuzzy: bool = False  # Whether its words may be matched when misspelt.


@dataclass(frozen=True)
class Phrase:
    keys: tuple[str, ...]  # Stems, articles left out.
    meaning: Meaning


@dataclass(frozen=True)
class Token:
    """A word of the text searched: its span, folded form and stem."""

    start: int
    end: int
    word: str
    key: str
    gap: str  # The text between the previous token and this one.

    @property
    def joined(self) -> bool:
        """Only spaces, _ or - separate it from the previous token."""
        return bool(self.gap) and not self.gap.strip(" \t\n\r_-")


@dataclass(frozen=True)
class Found:
    """A phrase found at tokens[first : last + 1]."""

    phrase: Phrase
    first: int
    last: int
    fuzzy: int  # How many of its words were misspelt.


def tokens_of(text: str) -> list[Token]:
    found: list[Token] = []
    cursor = 0
    for match in WORD.finditer(text):
        word = fold(match.group())
        found.append(
            Token(match.start(), match.end(), word, stem(word), text[cursor : match.start()])
        )
        cursor = match.end()
    return found


@dataclass(eq=False)
class Lexicon:
    """Everything understanding may name, indexed for matching a query."""

    questions: dict[str, Question] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)  # Number question ids, in catalog order.
    templates: set[str] = field(default_factory=set)  # The catalog's template ids.
    # Per word, the number questions whose id or label has it.
    _number_words: dict[str, set[str]] = field(default_factory=dict)
    phrases: dict[str, list[Phrase]] = field(default_factory=dict)  # By first key.
    known: set[str] = field(default_factory=set)  # Every key: never taken for a typo.
    # Words of names and values that may be misspelt, by first letter: (word, stem).
    _fuzzy_words: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _near: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def find(self, tokens: Sequence[Token]) -> list[Found]:
        """Every phrase at every position, misspelt words allowed where the
        phrase allows them (a phrase of several words needs one spelt right)."""
        near = self._misspelt(tokens)
        found: list[Found] = []
        for index, token in enumerate(tokens):
            readings = [(token.key, True), *((key, False) for key in near[index])]
            for key, exact in readings:
                for phrase in self.phrases.get(key, ()):
                    if not exact and not phrase.meaning.fuzzy:
                        continue
                    end = self._rest(phrase, tokens, near, index, 0 if exact else 1)
                    if end is not None:
                        found.append(Found(phrase, index, *end))
        return found

    def _rest(
        self,
        phrase: Phrase,
        tokens: Sequence[Token],
        near: Sequence[tuple[str, ...]],
        index: int,
        fuzzy: int,
    ) -> tuple[int, int] | None:
        at = index
        for key in phrase.keys[1:]:
            at += 1
            if at < len(tokens) and tokens[at].key in ARTICLES and tokens[at].joined:
                at += 1  # "publish a python package": articles are optional.
            if at >= len(tokens) or not tokens[at].joined:
                return None
            if tokens[at].key == key:
                continue
            if not phrase.meaning.fuzzy or key not in near[at]:
                return None
            fuzzy += 1
        if len(phrase.keys) > 1 and fuzzy >= len(phrase.keys):
            return None
        return at, fuzzy

    def _misspelt(self, tokens: Sequence[Token]) -> list[tuple[str, ...]]:
        """Per token, the known words it may misspell: looked up for the first
        MAX_MISSPELT tokens that could be misspellings only, so a long query
        of unknown words costs no more than a short one."""
        near: list[tuple[str, ...]] = []
        budget = MAX_MISSPELT
        for token in tokens:
            if not budget or not self._may_misspell(token):
                near.append(())
            else:
                budget -= 1
                near.append(self.near(token.word))
        return near

    def _may_misspell(self, token: Token) -> bool:
        """Not a known or everyday word, and long enough to be read as a typo."""
        key = token.key
        return (
            key not in self.known
            and token.word not in COMMON_WORDS
            and len(key) >= 4
            and key.isalpha()
        )

    def near(self, word: str) -> tuple[str, ...]:
        """Stems of the known name and value words a folded word may misspell."""
        if word not in self._near:
            if len(self._near) >= _MAX_FUZZY_CACHE:
                self._near.clear()
            self._near[word] = self._closest(word)
        return self._near[word]

    def _closest(self, word: str) -> tuple[str, ...]:
        """Stems of the words within reach of the word as spelt (not stemmed:
        "ready" is two edits from "readme", though "readi" is one from "readm")."""
        best: list[str] = []
        best_distance = 3
        ending = next((end for end in _ENDINGS if word.endswith(end)), "")
        # "reveiws" misspells "review" in the plural.
        plural = word[:-1] if word.endswith("s") and not word.endswith("ss") else ""
        for known, key in self._fuzzy_words.get(word[0], ()):
            spelt = plural if plural and not known.endswith("s") else word
            limit = 2 if min(len(known), len(spelt)) >= 9 else 1
            if abs(len(known) - len(spelt)) > limit or not known.endswith(ending):
                continue  # "operations" is another word than "operators", not a typo.
            distance = OSA.distance(spelt, known, score_cutoff=limit)
            if distance > limit or distance > best_distance:
                continue
            if distance < best_distance:
                best, best_distance = [], distance
            best.append(key)
        return tuple(dict.fromkeys(best))

    def number_questions(self, keys: Iterable[str]) -> list[Question]:
        """The number questions whose id or label has every one of the words."""
        found: set[str] | None = None
        for key in set(keys):
            having = self._number_words.get(key, set())
            found = having if found is None else found & having
            if not found:
                return []
        return [self.questions[qid] for qid in self.numbers if qid in (found or ())]


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
            lexicon._fuzzy_words.setdefault(word[0], []).append((word, stem(word)))
        for qid in lexicon.numbers:
            for key in lexicon.questions[qid].words:
                lexicon._number_words.setdefault(key, set()).add(qid)
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
            for key in keys_of(question.id) + tuple(_content(question.label)):
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
                    _content(question.label),
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
