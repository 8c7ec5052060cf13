"""What scanning a write costs is bounded: linear scanners, a budget for phone numbers.

Issue 10, finding 1: the secrets scanner's URL-parameter rule took
quadratic time (15 s for 96K characters of `?keykey...`), and phone-number
scrubbing had no budget of its own: phonenumbers silently gave up on a long
text, leaving the rest unscrubbed. Bounds here are generous for a loaded
2-core machine and far below what the old code took.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.patterns import MAX_CONTENT_BYTES
from memory_service.security import pii, secret_detectors, secrets
from memory_service.security.identity import Principal, Role
from memory_service.servicekit.errors import ServiceError
from memory_service.write_pipeline import Retention, secure

# The rule as one regex, as it was: the reference for what it finds.
_OLD_SECRET_PARAM = re.compile(
    r"(?i)[?&#;][\w.-]*(?:token|key|secret|sig|signature|password|auth)[\w.-]*=([^&#\s]+)"
)
_URL_PIECES = ["?", "&", "#", ";", "=", "key", "TOKEN", "\u212aey", "\u017fig", "a", ".", "-"]
_URL_PIECES += [" ", "\n", "x9Qz", "auth", "sig="]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_URL_PIECES), max_size=16).map("".join))
def test_the_linear_parameter_rule_finds_what_the_regex_found(url: str) -> None:
    expected = [match.span(1) for match in _OLD_SECRET_PARAM.finditer(url)]
    assert list(secret_detectors.secret_params(url)) == expected


# Each at the largest content a pattern may have; the first took about 100 s before.
_WORST_URLS = [
    "http://a.example/?" + "key" * (MAX_CONTENT_BYTES // 3),
    "http://a.example/?" + ".key" * (MAX_CONTENT_BYTES // 4),
    "http://a.example/?a=" + "?a=" * (MAX_CONTENT_BYTES // 3),
    "http://a.example/?key=" + "?key=" * (MAX_CONTENT_BYTES // 5),
]


@pytest.mark.parametrize("text", _WORST_URLS, ids=["name", "dotted", "values", "keyed"])
def test_a_worst_case_url_of_the_largest_content_scans_in_well_under_a_second(text: str) -> None:
    assert len(text.encode()) <= MAX_CONTENT_BYTES + 32
    started = time.perf_counter()
    secrets.scan_text(text)
    assert time.perf_counter() - started < 1.0


def test_the_parameter_rule_scales_linearly() -> None:
    def cost(size: int) -> float:
        text = "http://a.example/?" + "key" * size
        return min(_timed(secrets.scan_text, text) for _ in range(3))

    small, large = cost(20_000), cost(80_000)
    # Quadratic would be 16 times; linear is 4 (noise allowed).
    assert large < 8 * small + 0.05


def _timed(function: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    function(text)
    return time.perf_counter() - started


_JUNK = "12345,0.1234,567\n" * 300  # Numbers that phonenumbers tries and refuses.
_PHONE = "call (650) 253-0000"


def test_phone_numbers_after_many_candidates_are_still_scrubbed() -> None:
    # Under the default budget: every candidate is looked at, the last too.
    scrubbed, counts = pii.scrub_text(_JUNK + _PHONE)
    assert scrubbed.endswith("call [PHONE]")
    assert counts["phone"] == 1


def test_running_out_of_the_phone_budget_refuses_rather_than_skips() -> None:
    # phonenumbers stops looking when out of tries; that must not pass as clean.
    with pytest.raises(pii.ScrubBudgetExceededError):
        pii.scrub_pattern(memory_pb2.Pattern(content=_JUNK + _PHONE), pii.PhoneBudget(50))


def test_one_budget_is_shared_by_every_text_of_a_pattern() -> None:
    pattern = memory_pb2.Pattern(content=_JUNK)
    needed = pii.PhoneBudget()
    pii.scrub_pattern(pattern, needed)
    spent = pii.PHONE_CANDIDATE_BUDGET - needed.left
    assert spent > 0
    pattern.form_responses["notes"].string_value = _JUNK
    with pytest.raises(pii.ScrubBudgetExceededError):
        pii.scrub_pattern(pattern, pii.PhoneBudget(spent + 1))


def test_short_candidates_spend_no_budget() -> None:
    # Fewer than six characters hold fewer than six digits: never a phone number.
    budget = pii.PhoneBudget()
    pii.scrub_pattern(memory_pb2.Pattern(content="id 12345, no 678 " * 2000), budget)
    assert budget.left == pii.PHONE_CANDIDATE_BUDGET


def test_a_write_over_the_budget_is_refused_as_invalid_and_names_the_field() -> None:
    pattern = memory_pb2.Pattern(id="p1", type=memory_pb2.PATTERN_TYPE_INSIGHT, content=_JUNK)
    writer = Principal("alice", Role.WRITER, frozenset({"team-a"}))
    with pytest.raises(ServiceError) as raised:
        secure(pattern, writer, Retention(), 0, "requests[3].", pii.PhoneBudget(50))
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[3].pattern" in raised.value.message
    assert "253" not in raised.value.message
