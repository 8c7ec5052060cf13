"""Query understanding's rules for a run's outcome, negation included.

A success word ("successful", "passed", ...) means `success = true`, a
failure word ("failed", "failures", ...) `success = false`. A negation in
front flips it: "not", "never", "non-", "didn't", "did not", "wasn't",
"weren't", "hasn't", "without", "with no", "no", "zero" ("didn't succeed",
"wasn't successful" -> `success = false`; "never failed", "without
failures", "did not fail" -> `success = true`). The bare verbs "succeed",
"pass" and "fail" count only after a negation ("did not fail"): alone they
are too common as parts of other names ("fail_on_cvss"). Common
mistypings of the outcome words ("succesful", "succeded", "faild") count
as the words.
"""

from __future__ import annotations

import re

from memory_service.search.phrases import (
    NEGATIVE,
    POSITIVE,
    Candidate,
    Context,
    Rule,
    restriction,
    rule_regex,
    whole_match,
)

# Auxiliaries that negate with "not" or "n't": "did not", "didn't", "wasn't".
_AUXILIARY = r"(?:did|does|do|was|were|is|are|has|have|had)"
NEGATION = rf"(?:{_AUXILIARY}(?:\s+not|n['\u2019]?t)|not|never|without|with\s+no|no|zero)"
_BARE = r"succeed|pass|fail"
# Outcome words as they are often mistyped (a letter doubled or dropped):
# "succesful", "sucessful", "successfull", "succeded", "faild", "failled".
_MISTYPED_POSITIVE = r"su(?:c|cc)e(?:s|ss)?f(?:u|uu)l{1,2}(?:y)?|su(?:c|cc)e{1,2}de?d"
_MISTYPED_NEGATIVE = r"fai?l{1,2}e?d|fial(?:l)?ed"


def _success(match: re.Match[str], _: Context) -> Candidate:
    positive = re.fullmatch(
        rf"{POSITIVE}|succeed|pass|{_MISTYPED_POSITIVE}", match["word"], re.IGNORECASE
    )
    negated = match.groupdict().get("neg") or match.groupdict().get("non")
    return whole_match(match, restriction("success", "=", (positive is None) == bool(negated)))


SUCCESS_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"\b(?:(?P<neg>{NEGATION})\s+(?:(?:have|be|been)\s+)?|(?P<non>non-?\s*))?"
            rf"(?P<word>{POSITIVE}|{NEGATIVE})\b"
        ),
        _success,
    ),
    (rule_regex(rf"\b(?P<neg>{NEGATION})\s+(?P<word>{_BARE})\b"), _success),
    (
        rule_regex(
            rf"\b(?:(?P<neg>{NEGATION})\s+|(?P<non>non-?\s*))?"
            rf"(?P<word>{_MISTYPED_POSITIVE}|{_MISTYPED_NEGATIVE})\b"
        ),
        _success,
    ),
)
