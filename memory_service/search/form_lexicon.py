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

Lexicons are compiled in form_compile.py, cached per catalog and data ids;
fuzzy look-ups are cached per lexicon.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from rapidfuzz.distance import OSA

from memory_service.search.english import COMMON_WORDS, FUNCTION_WORDS
from memory_service.search.forms import QuestionKind

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


def content_keys(text: str) -> frozenset[str]:
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
    number_words: dict[str, set[str]] = field(default_factory=dict)
    phrases: dict[str, list[Phrase]] = field(default_factory=dict)  # By first key.
    known: set[str] = field(default_factory=set)  # Every key: never taken for a typo.
    # Words of names and values that may be misspelt, by first letter: (word, stem).
    fuzzy_words: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
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
        for known, key in self.fuzzy_words.get(word[0], ()):
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
            having = self.number_words.get(key, set())
            found = having if found is None else found & having
            if not found:
                return []
        return [self.questions[qid] for qid in self.numbers if qid in (found or ())]
