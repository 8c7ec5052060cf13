"""The scanners' prefilters are lossless: fast and full paths agree exactly.

`find_secrets`, `scrub_pattern` and `classify` skip the expensive detectors
on texts that cannot match them. Each module keeps its full path callable
(`_find_secrets_reference`, `_scrub_pattern_reference`,
`_classify_reference`, and the per-text ones), and here random texts built
from fragments of every kind (tests/support/scanner_texts.py: secrets,
personal data, sensitive terms, their near misses, identifiers, filler,
characters that fold to ASCII letters when case is ignored, digits of other
scripts) must get the same answer from both. That each gate follows from the
regex it guards, and the assumptions the prefilters rest on about
detect-secrets, phonenumbers and `re`, are in test_scanner_gates.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security import classify, pii, secrets
from tests.corpus.generate import corpus
from tests.support.scanner_texts import (
    CLASSIFY_TEXTS,
    KEYS,
    PII_KEYS,
    PII_TEXTS,
    SECRET_TEXTS,
    TERMS,
)


@settings(max_examples=800, deadline=None)
@given(SECRET_TEXTS, KEYS, st.booleans())
def test_scan_text_finds_what_the_full_scan_finds(text: str, key: str, entropy: bool) -> None:
    assert secrets.scan_text(text, key, entropy=entropy) == secrets._scan_text_reference(
        text, key, entropy=entropy
    )


def _pattern(texts: list[str], keys: list[str]) -> memory_pb2.Pattern:
    """Texts in every kind of field, map keys included."""
    pattern = memory_pb2.Pattern(
        id=texts[0], template_id=texts[-1], run_id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e"
    )
    pattern.content = "\n".join(texts)
    pattern.tags.extend(texts[:3])
    pattern.agents.add(role=texts[-1], cost_usd=0.0123)
    for index, (key, text) in enumerate(zip(keys, texts, strict=False)):
        pattern.form_responses[key or "q"].string_value = text
        pattern.form_responses[f"{key}_list"].string_list_value.values.extend([text, "x"])
        pattern.metadata.update({key or f"k{index}": {"value": text, "list": [text, 1.5]}})
    pattern.total_cost_usd = 0.0594
    return pattern


@settings(max_examples=300, deadline=None)
@given(
    st.lists(SECRET_TEXTS, min_size=1, max_size=4),
    st.lists(st.one_of(KEYS, SECRET_TEXTS), max_size=3),
)
def test_find_secrets_finds_what_the_full_scan_finds(texts: list[str], keys: list[str]) -> None:
    pattern = _pattern(texts, keys)
    assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)


# --- personal data ------------------------------------------------------------


@settings(max_examples=800, deadline=None)
@given(PII_TEXTS, PII_KEYS)
def test_scrub_text_scrubs_what_the_full_scrub_scrubs(text: str, key: str) -> None:
    assert pii.scrub_text(text, key) == pii._scrub_text_reference(text, key)


@settings(max_examples=200, deadline=None)
@given(st.lists(PII_TEXTS, min_size=1, max_size=4), st.lists(PII_KEYS, max_size=3))
def test_scrub_pattern_scrubs_what_the_full_scrub_scrubs(texts: list[str], keys: list[str]) -> None:
    pattern = _pattern(texts, keys)
    before = pattern.SerializeToString(deterministic=True)
    fast, fast_counts = pii.scrub_pattern(pattern)
    full, full_counts = pii._scrub_pattern_reference(pattern)
    assert fast == full
    assert fast_counts == full_counts
    assert fast is not pattern
    assert pattern.SerializeToString(deterministic=True) == before


# --- classification -----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    CLASSIFY_TEXTS,
    st.lists(st.one_of(TERMS, CLASSIFY_TEXTS), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "notes"]), CLASSIFY_TEXTS, max_size=2),
    st.lists(CLASSIFY_TEXTS, max_size=2),
)
def test_classify_answers_what_the_full_classify_answers(
    content: str, tags: list[str], answers: dict[str, str], options: list[str]
) -> None:
    pattern = memory_pb2.Pattern(id="p1", content=content, tags=tags)
    for key, text in answers.items():
        pattern.form_responses[key].string_value = text
    pattern.form_responses["options"].string_list_value.values.extend(options)
    # The reason lists every term found and where: equal reasons, equal terms.
    assert classify.classify(pattern) == classify._classify_reference(pattern)


# What regexes ignoring case match through the four folding characters, and
# digits of other scripts: each is found by the full path, and by the fast.
_SECRET_CASES = [
    "PA\u017f\u017fWORD=hunter2x",
    "pwd=hunter2x \u212a",
    "Authorization: BEARER\u00a0Zt8qV3mLr7Kx9Np2Wd5Hs1Yb",
    "https://hoo\u212as.\u017flack.com/services/TABC12345/BABCDE12345/"
    + "Zt8qV3mLr7Kx9Np2Wd5Hs1Yb",
    "AW\u017f secret key: Zt8qV3mLr7Kx9Np2Wd5Hs1Yb+Qc4Gf6Jk0Tu2Ea3/Rv",
]
_PII_CASES = [
    "call \u0666\u0665\u0660\u0662\u0665\u0663\u0660\u0660\u0660\u0660",
    "SSN \u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669",
    "\u0661\u0666\u0660\u0660 Pennsylvania Avenue",
    "\uff08\uff16\uff15\uff10\uff09\uff12\uff15\uff13\uff0d\uff10\uff10\uff10\uff10",
    "dead:beef::cafe",
]
_CLASSIFY_CASES = ["\u017fecret", "PR\u0130VATE KEY", "pr\u0131vate_key", "[PUBL\u0130C]"]


@pytest.mark.parametrize("text", _SECRET_CASES)
def test_folding_secret_cases(text: str) -> None:
    assert secrets._scan_text_reference(text) != []
    assert secrets.scan_text(text) == secrets._scan_text_reference(text)


@pytest.mark.parametrize("text", _PII_CASES)
def test_other_script_pii_cases(text: str) -> None:
    assert pii._scrub_text_reference(text)[1] != {}
    assert pii.scrub_text(text) == pii._scrub_text_reference(text)


@pytest.mark.parametrize("text", _CLASSIFY_CASES)
def test_folding_classify_cases(text: str) -> None:
    pattern = memory_pb2.Pattern(content=text)
    assert classify._classify_reference(pattern)[0] != classify.INTERNAL
    assert classify.classify(pattern) == classify._classify_reference(pattern)


# --- the seeded corpus, clean and with fragments in it ------------------------


@pytest.fixture(scope="module")
def patterns() -> list[memory_pb2.Pattern]:
    return corpus(60)


def test_the_corpus_gets_the_same_answers(patterns: list[memory_pb2.Pattern]) -> None:
    for pattern in patterns:
        assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)
        assert pii.scrub_pattern(pattern) == pii._scrub_pattern_reference(pattern)
        assert classify.classify(pattern) == classify._classify_reference(pattern)


@settings(max_examples=100, deadline=None)
@given(st.data(), SECRET_TEXTS, PII_TEXTS, CLASSIFY_TEXTS)
def test_corpus_patterns_with_fragments_get_the_same_answers(
    patterns: list[memory_pb2.Pattern], data: st.DataObject, secret: str, personal: str, term: str
) -> None:
    pattern = memory_pb2.Pattern()
    pattern.CopyFrom(data.draw(st.sampled_from(patterns)))
    pattern.content += f"\n{secret}\n{personal} {term}"
    pattern.metadata.update({"aws": {"secret_access_key": secret}, "note": personal})
    pattern.form_responses["notes"].string_value = term
    assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)
    assert pii.scrub_pattern(pattern) == pii._scrub_pattern_reference(pattern)
    assert classify.classify(pattern) == classify._classify_reference(pattern)


def test_explicit_classification_takes_the_same_path() -> None:
    pattern = memory_pb2.Pattern(content="secret", classification=common_pb2.CLASSIFICATION_PUBLIC)
    assert classify.classify(pattern) == classify._classify_reference(pattern)
