"""Typo correction for search: each namespace's vocabulary of correctable
words, kept up to date as documents come and go, and the known words within
an edit or two of a query's unknown words."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import Decode, searchable_text
from memory_service.search.query import Occur, Term

# Words worth correcting: letters only, long enough that an edit is a typo.
FUZZY_WORD = re.compile(r"[^\W\d_]{4,}")
# The corrector's work is bounded whatever the query and the vocabulary: at
# most this many terms of a query are corrected (the first ones), each
# against at most this many known words of a length it can be within reach of.
MAX_CORRECTED_TERMS = 8
MAX_FUZZY_CANDIDATES = 30_000


class FuzzyVocabulary:
    """The correctable words of each namespace, read from the index's docs
    (stored bodies read with `decode`) when first needed, then kept up to
    date by `add` and `remove`."""

    def __init__(self, connection: sqlite3.Connection, decode: Decode) -> None:
        self._db = connection
        self._decode = decode
        self._vocabulary: dict[str, Counter[str]] = {}
        # Per namespace, the vocabulary by word length: the words and their
        # ranks in it. Made when a correction needs it, dropped on change.
        self._by_length: dict[str, dict[int, tuple[list[str], list[int]]]] = {}

    def add(self, namespace: str, text: str) -> None:
        """Counts a new document's words, if the namespace's vocabulary is loaded."""
        if namespace in self._vocabulary:
            vocabulary = self._vocabulary[namespace]
            known = len(vocabulary)
            vocabulary.update(w.lower() for w in FUZZY_WORD.findall(text))
            self._grow_by_length(namespace, vocabulary, known)

    def remove(self, namespace: str, pattern: memory_pb2.Pattern) -> None:
        """Takes a removed document's words off, if the vocabulary is loaded:
        a word only it had is no longer suggested."""
        vocabulary = self._vocabulary.get(namespace)
        if vocabulary is None:
            return
        gone = Counter(word.lower() for word in FUZZY_WORD.findall(searchable_text(pattern)))
        vocabulary.subtract(gone)
        for word in gone:
            if vocabulary[word] <= 0:
                del vocabulary[word]
                self._by_length.pop(namespace, None)  # Made again when next needed.

    def forget(self, namespace: str) -> None:
        """Drops the namespace's words; they are loaded again when next needed."""
        self._vocabulary.pop(namespace, None)
        self._by_length.pop(namespace, None)

    def words(self, namespace: str) -> Counter[str]:
        """The correctable words of one namespace: fuzzy matching never
        suggests, or reveals, a word of another namespace."""
        if namespace not in self._vocabulary:
            words: Counter[str] = Counter()
            for body, doc_id in self._db.execute(
                "SELECT body, doc_id FROM docs WHERE namespace = ?", (namespace,)
            ):
                pattern = self._decode(body, namespace, doc_id)
                if pattern is None:
                    continue
                text = searchable_text(pattern)
                words.update(word.lower() for word in FUZZY_WORD.findall(text))
            self._vocabulary[namespace] = words
        return self._vocabulary[namespace]

    def _grow_by_length(self, namespace: str, vocabulary: Counter[str], known: int) -> None:
        """Adds the words `vocabulary` gained past its first `known` to the lengths."""
        by_length = self._by_length.get(namespace)
        if by_length is None:
            return
        added = len(vocabulary) - known
        # New words come last, in order; a rank need only follow that order.
        fresh = reversed(list(itertools.islice(reversed(vocabulary), added)))
        for rank, word in enumerate(fresh, start=_next_rank(by_length)):
            words, ranks = by_length.setdefault(len(word), ([], []))
            words.append(word)
            ranks.append(rank)

    def _words_by_length(self, namespace: str) -> dict[int, tuple[list[str], list[int]]]:
        """The namespace's vocabulary by word length: the words, and their ranks in it."""
        if namespace not in self._by_length:
            by_length: dict[int, tuple[list[str], list[int]]] = {}
            for rank, word in enumerate(self.words(namespace)):
                words, ranks = by_length.setdefault(len(word), ([], []))
                words.append(word)
                ranks.append(rank)
            self._by_length[namespace] = by_length
        return self._by_length[namespace]

    def corrections(self, namespace: str, word: str) -> list[str]:
        """Up to three known words within reach of `word`, nearest first.

        Only words whose length is within the edit limit can be (an edit
        changes the length by one at most), and ties go to the word the
        vocabulary met first: the same answer as trying every known word.
        """
        limit = 2 if len(word) >= 7 else 1
        by_length = self._words_by_length(namespace)
        share = MAX_FUZZY_CANDIDATES // (2 * limit + 1)
        words: list[str] = []
        ranks: list[int] = []
        for length in range(len(word) - limit, len(word) + limit + 1):
            known, rank = by_length.get(length, ([], []))
            words += known[:share]
            ranks += rank[:share]
        found = process.extract(
            word, words, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
        )
        found.sort(key=lambda hit: (hit[1], ranks[hit[2]]))
        return [known for known, _, _ in found[:3]]

    def expand(self, namespace: str, terms: list[Term]) -> tuple[list[list[Term]], list[str]]:
        """Each term with its fuzzy alternatives, and "typed->matched" notes (see `expand`)."""
        return expand([(self, namespace)], terms)


def expand(
    vocabularies: list[tuple[FuzzyVocabulary, str]], terms: list[Term]
) -> tuple[list[list[Term]], list[str]]:
    """Each term with its fuzzy alternatives, and "typed->matched" notes.

    Over the vocabularies of every (vocabulary, namespace) a search shows
    (a store's shared documents and the caller's own SENSITIVE ones): only a
    single whole word that none of them contains is corrected, to up to
    three known words within one edit (two for words of 7+ letters), nearest
    first, then the earlier vocabulary's. A correction takes the term's part
    (SHOULD or MUST); an excluded (MUST_NOT) term is not corrected: excluding
    guesses would drop documents nobody asked to drop. At most
    MAX_CORRECTED_TERMS terms are corrected, so a long query against a huge
    vocabulary costs no more than a short one.
    """
    known = [vocabulary.words(namespace) for vocabulary, namespace in vocabularies]
    expanded: list[list[Term]] = []
    notes: list[str] = []
    corrected = 0
    for term in terms:
        options = [term]
        word = term.words[0] if len(term.words) == 1 else ""
        if (
            corrected < MAX_CORRECTED_TERMS
            and not term.prefix
            and term.occur is not Occur.MUST_NOT
            and FUZZY_WORD.fullmatch(word)
            and not any(word in words for words in known)
        ):
            corrected += 1
            for candidate in _nearest(vocabularies, word):
                options.append(Term((candidate,), occur=term.occur))
                notes.append(f"{word}->{candidate}")
        expanded.append(options)
    return expanded, notes


def _nearest(vocabularies: list[tuple[FuzzyVocabulary, str]], word: str) -> list[str]:
    """Up to three corrections of a word from any of the vocabularies, nearest first."""
    if len(vocabularies) == 1:
        vocabulary, namespace = vocabularies[0]
        return vocabulary.corrections(namespace, word)
    found: dict[str, tuple[int, int, int]] = {}
    for order, (vocabulary, namespace) in enumerate(vocabularies):
        for rank, candidate in enumerate(vocabulary.corrections(namespace, word)):
            key = (Levenshtein.distance(word, candidate), order, rank)
            found[candidate] = min(found.get(candidate, key), key)
    return sorted(found, key=found.__getitem__)[:3]


def _next_rank(by_length: dict[int, tuple[list[str], list[int]]]) -> int:
    return 1 + max((ranks[-1] for _, ranks in by_length.values() if ranks), default=-1)
