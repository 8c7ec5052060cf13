"""Classify a pattern as PUBLIC, INTERNAL or SENSITIVE.

An explicit classification on the pattern (anything but UNSPECIFIED) always
wins. Otherwise the pattern is classified from what it says, by the first row
of this table that applies:

=========  ===========================================  ==============================
Result     When                                         Looked at
=========  ===========================================  ==============================
SENSITIVE  a sensitive term (below) appears as a word   content, tags, string form
                                                        answers (multi-select too)
PUBLIC     a tag is ``public``, ``open-source``,        tags
           ``open source``, ``open_source`` or
           ``opensource`` (any case)
PUBLIC     the content carries a public marker:         content
           ``[public]``, ``[open source]``,
           ``classification: public`` or
           ``visibility = open-source``
INTERNAL   nothing above applies (the default)          -
=========  ===========================================  ==============================

Sensitive terms (case-insensitive; a space in a phrase also matches ``-``,
``_`` or several spaces):

================  =================================================
Term              Matches
================  =================================================
confidential      confidential, confidentiality
secret            secret, secrets
password          password, passwords
credential        credential, credentials
private key       private key(s), private_key, private-key
personal data     personal data, personal_data
pii               PII
customer data     customer data, customer-data
medical           medical
salary            salary, salaries
ssn               SSN, SSNs
gdpr              GDPR
================  =================================================

Word boundaries. A term matches only as a whole word: the characters on
either side must not be letters or digits. So "secretary", "secretly",
"passwordless" and "ssnumber" do not match. Unlike regex ``\\b``, an underscore
counts as a separator, so snake_case tags and answers such as
``handles_pii`` or ``customer_data`` do match. Plurals are part of the term:
"passwords policy" is SENSITIVE, on purpose. A pattern about password
policy is likely to quote one, and classifying too high only costs
encryption and owner-only reads, while too low leaks.

Why PUBLIC needs an explicit mark. PUBLIC widens who may read a pattern, so
prose that merely mentions "public" or "open source" ("the public API", "we
audited our open source dependencies") stays INTERNAL; a tag or a marker is
a deliberate statement. A sensitive term always beats a public mark.

Form answer keys (question ids) and metadata are not scanned: a key such as
``contains_pii`` says nothing until its answer does, and a boolean ``false``
answer would otherwise make the pattern SENSITIVE.

Cost: a pattern whose texts hold none of the terms' words (see "prefilter"
below) is never searched with the regexes, which changes no result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, TypeAlias

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2

ClassificationValue: TypeAlias = common_pb2.Classification.ValueType

PUBLIC: Final = common_pb2.CLASSIFICATION_PUBLIC
INTERNAL: Final = common_pb2.CLASSIFICATION_INTERNAL
SENSITIVE: Final = common_pb2.CLASSIFICATION_SENSITIVE
UNSPECIFIED: Final = common_pb2.CLASSIFICATION_UNSPECIFIED

# Not preceded / followed by a letter or digit. [^\W_] is "a word character
# other than underscore", so underscores separate words here, unlike \b.
_START: Final = r"(?<![^\W_])"
_END: Final = r"(?![^\W_])"
# A space inside a phrase: any run of spaces, hyphens or underscores.
_GAP: Final = r"[\s_-]+"


def _word(body: str) -> re.Pattern[str]:
    return re.compile(f"{_START}(?:{body}){_END}", re.IGNORECASE)


# (term, regex) in table order; the term is what reasons name.
SENSITIVE_TERMS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("confidential", _word(r"confidential(?:ity)?")),
    ("secret", _word(r"secrets?")),
    ("password", _word(r"passwords?")),
    ("credential", _word(r"credentials?")),
    ("private key", _word(f"private{_GAP}keys?")),
    ("personal data", _word(f"personal{_GAP}data")),
    ("pii", _word(r"pii")),
    ("customer data", _word(f"customer{_GAP}data")),
    ("medical", _word(r"medical")),
    ("salary", _word(r"salary|salaries")),
    ("ssn", _word(r"ssns?")),
    ("gdpr", _word(r"gdpr")),
)

_PUBLIC_WORD: Final = f"public|open(?:{_GAP})?source"
PUBLIC_TAGS: Final = frozenset(
    {"public", "open-source", "open source", "open_source", "opensource"}
)
PUBLIC_MARKER: Final = re.compile(
    rf"\[\s*(?:{_PUBLIC_WORD})\s*\]"
    rf"|{_START}(?:classification|visibility)\s*[:=]\s*(?:{_PUBLIC_WORD}){_END}",
    re.IGNORECASE,
)


def _texts(pattern: memory_pb2.Pattern) -> Iterator[tuple[str, str]]:
    """Yield (where, text) for every scanned string, in a stable order."""
    yield "content", pattern.content
    for tag in pattern.tags:
        yield "tags", tag
    # Map order is not stable across messages; sort so reasons are.
    for key in sorted(pattern.form_responses):
        value = pattern.form_responses[key]
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            yield f"form_responses.{key}", value.string_value
        elif kind == "string_list_value":
            for item in value.string_list_value.values:
                yield f"form_responses.{key}", item


# --- prefilter ----------------------------------------------------------------
#
# Searching every term's regex in every text was what classifying cost, and
# most patterns mention none. Each term's regex matches (ignoring case) a
# word that holds one of these, so texts whose case-folded join holds none
# of them mention no term and skip the regexes; likewise the public marker
# needs `[`, "classification" or "visibility". The prefilter never decides
# that a term is there: `_classify_reference` classifies without it.
# One word per row of SENSITIVE_TERMS (tests/unit/memory/test_scanner_gates.py
# checks that each regex's matches hold it).
_TERM_WORDS: Final = {
    "confidential": "confidential",
    "secret": "secret",
    "password": "password",
    "credential": "credential",
    "private key": "private",
    "personal data": "personal",
    "pii": "pii",
    "customer data": "customer",
    "medical": "medical",
    "salary": "salar",  # salary, salaries
    "ssn": "ssn",
    "gdpr": "gdpr",
}
# The public marker: `[public]` or `classification: public`.
_MARKER_WORDS: Final = ("[", "classification", "visibility")
# Ignoring case, `re` also matches these to ASCII letters; str.lower() does not.
_FOLDS_TO_ASCII: Final = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _fold(text: str) -> str:
    """Lower case, with `_FOLDS_TO_ASCII` replaced: an ASCII word that a regex
    ignoring case matches in the text is in this, as is."""
    return (text if text.isascii() else text.translate(_FOLDS_TO_ASCII)).lower()


def _terms(texts: list[tuple[str, str]], prefilter: bool) -> list[tuple[str, str]]:
    """(term, where) as `sensitive_terms` answers them."""
    folded = _fold("\n".join(text for _, text in texts)) if prefilter else ""
    found: list[tuple[str, str]] = []
    for term, regex in SENSITIVE_TERMS:
        word = _TERM_WORDS[term]
        if prefilter and word not in folded:
            continue  # in no text
        where = next(
            (
                at
                for at, text in texts
                if (not prefilter or word in _fold(text)) and regex.search(text)
            ),
            None,
        )
        if where is not None:
            found.append((term, where))
    return found


def sensitive_terms(pattern: memory_pb2.Pattern) -> list[tuple[str, str]]:
    """Return (term, where it first appears) for each sensitive term found."""
    return _terms(list(_texts(pattern)), prefilter=True)


def _classify(pattern: memory_pb2.Pattern, prefilter: bool) -> tuple[ClassificationValue, str]:
    explicit = pattern.classification
    if explicit != UNSPECIFIED:
        if explicit not in common_pb2.Classification.values():
            # Validation should have refused it; never guess a lower level.
            raise ValueError(f"unknown classification value {int(explicit)}")
        return explicit, f"explicit: {common_pb2.Classification.Name(explicit)}"

    found = _terms(list(_texts(pattern)), prefilter)
    if found:
        terms = ", ".join(f'"{term}" in {where}' for term, where in found)
        return SENSITIVE, f"automatic: mentions {terms}"

    tag = next((t for t in pattern.tags if t.strip().lower() in PUBLIC_TAGS), None)
    if tag is not None:
        return PUBLIC, f'automatic: tagged "{tag.strip().lower()}"'
    content = pattern.content
    folded = _fold(content) if prefilter else ""
    may_mark = not prefilter or any(word in folded for word in _MARKER_WORDS)
    if may_mark and PUBLIC_MARKER.search(content):
        return PUBLIC, "automatic: content carries a public marker"

    return INTERNAL, "automatic: no sensitive term or public mark (default INTERNAL)"


def classify(pattern: memory_pb2.Pattern) -> tuple[ClassificationValue, str]:
    """Return the pattern's classification and a short reason for it.

    The reason names rules and field paths, never the matched text, so it is
    safe to log and to put in the audit log.
    """
    return _classify(pattern, prefilter=True)


def _classify_reference(pattern: memory_pb2.Pattern) -> tuple[ClassificationValue, str]:
    """`classify` without the prefilter: every regex on every text."""
    return _classify(pattern, prefilter=False)
