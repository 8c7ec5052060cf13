"""Query understanding's rules for a pattern's classification.

"sensitive" (and "confidential") as a word means `classification =
"SENSITIVE"`; negated ("not sensitive", "non-sensitive") it means
`NOT classification = "SENSITIVE"`. "public" and "internal" name a
classification only next to a classification word ("classified as public",
"classification internal"): alone they are too common ("the public API").
A caller sees only their own SENSITIVE patterns, so "my sensitive runs"
finds theirs.
"""

from __future__ import annotations

import re

from memory_service.search.filter import Node, Not
from memory_service.search.phrases import (
    Candidate,
    Context,
    Rule,
    restriction,
    rule_regex,
    whole_match,
)


def _classification(match: re.Match[str], _: Context) -> Candidate:
    word = match["word"].lower()
    value = "SENSITIVE" if word in ("sensitive", "confidential") else word.upper()
    term: Node = restriction("classification", "=", value)
    return whole_match(match, Not(term) if match.groupdict().get("neg") else term)


CLASSIFICATION_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            r"\b(?:classified\s+(?:as\s+)?|classification\s*(?:[:=]\s*|(?:is\s+)?))"
            r"(?P<word>public|internal|sensitive|confidential)\b"
        ),
        _classification,
    ),
    (
        rule_regex(r"\b(?P<neg>not\s+|non-?\s*)?(?P<word>sensitive|confidential)\b"),
        _classification,
    ),
)
