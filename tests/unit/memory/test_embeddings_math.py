"""Vector storage, similarity ranking and reciprocal rank fusion."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.search.embeddings import (
    bytes_to_vector,
    cosine,
    reciprocal_rank_fusion,
    top_k,
    vector_to_bytes,
)

FLOAT32_MAX = 3.4028234663852886e38
# Half the gap between float32 neighbours: relative in the normal range, absolute below it.
HALF_ULP_RELATIVE = 2.0**-24
HALF_ULP_SUBNORMAL = 2.0**-150


def unit(*values: float) -> list[float]:
    norm = math.hypot(*values)
    return [value / norm for value in values]


@given(
    st.lists(st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX, allow_nan=False), max_size=64)
)
def test_bytes_round_trip_to_float32_precision(vector: list[float]) -> None:
    data = vector_to_bytes(vector)

    back = bytes_to_vector(data)

    assert len(data) == 4 * len(vector)
    assert len(back) == len(vector)
    for before, after in zip(vector, back, strict=True):
        assert abs(before - after) <= max(abs(before) * HALF_ULP_RELATIVE, HALF_ULP_SUBNORMAL)


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
def test_float32_values_round_trip_exactly(vector: list[float]) -> None:
    assert bytes_to_vector(vector_to_bytes(vector)) == vector


def test_bytes_are_float32_little_endian() -> None:
    assert vector_to_bytes([1.0, -2.0]) == b"\x00\x00\x80\x3f\x00\x00\x00\xc0"
    assert vector_to_bytes([]) == b""


def test_out_of_float32_range_and_bad_lengths_are_value_errors() -> None:
    with pytest.raises(ValueError, match="float32 range"):
        vector_to_bytes([1e39])
    with pytest.raises(ValueError, match="whole number"):
        bytes_to_vector(b"\x00\x00\x80")


def test_cosine_of_unit_vectors() -> None:
    a = unit(3.0, 4.0)

    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, [-x for x in a]) == pytest.approx(-1.0)
    assert cosine(unit(1.0, 0.0), unit(0.0, 1.0)) == 0.0
    assert cosine(unit(1.0, 0.0), unit(1.0, 1.0)) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="dimensions"):
        cosine([1.0], [1.0, 0.0])


def test_top_k_orders_best_first_and_breaks_ties_by_id() -> None:
    query = unit(1.0, 0.0)
    candidates = [
        ("far", vector_to_bytes(unit(-1.0, 0.1))),
        ("b-tie", vector_to_bytes(unit(1.0, 1.0))),
        ("near", vector_to_bytes(unit(1.0, 0.1))),
        ("a-tie", vector_to_bytes(unit(1.0, 1.0))),
        ("exact", vector_to_bytes(query)),
    ]

    ranked = top_k(query, candidates, 10)

    assert [doc_id for doc_id, _ in ranked] == ["exact", "near", "a-tie", "b-tie", "far"]
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)
    assert ranked[0][1] == pytest.approx(1.0)
    assert [doc_id for doc_id, _ in top_k(query, candidates, 3)] == ["exact", "near", "a-tie"]
    assert top_k(query, candidates, 0) == []
    assert top_k(query, [], 5) == []


def test_top_k_skips_vectors_of_another_length_and_reads_generators_once() -> None:
    query = unit(1.0, 0.0)
    candidates = (
        pair
        for pair in [
            ("other-model", vector_to_bytes(unit(1.0, 0.0, 0.0))),
            ("corrupt", b"\x00\x01"),
            ("nan", vector_to_bytes([math.nan, 0.0])),
            ("kept", vector_to_bytes(unit(0.0, 1.0))),
        ]
    )

    assert top_k(query, candidates, 5) == [("kept", 0.0)]


ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
rankings = st.lists(st.lists(ids, unique=True, max_size=12), max_size=6)


@settings(max_examples=200)
@given(rankings, st.integers(min_value=0, max_value=100))
def test_rrf_returns_the_union_with_positive_descending_scores(
    lists: list[list[str]], k: int
) -> None:
    fused = reciprocal_rank_fusion(lists, k)

    fused_ids = [doc_id for doc_id, _ in fused]
    assert len(fused_ids) == len(set(fused_ids))
    assert set(fused_ids) == {doc_id for ranking in lists for doc_id in ranking}
    scores = [score for _, score in fused]
    assert all(score > 0 for score in scores)
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=200)
@given(ids, st.lists(st.lists(ids, unique=True, max_size=12), min_size=1, max_size=6))
def test_rrf_an_id_first_everywhere_scores_highest(winner: str, rests: list[list[str]]) -> None:
    lists = [[winner, *(doc_id for doc_id in rest if doc_id != winner)] for rest in rests]

    fused = reciprocal_rank_fusion(lists)

    assert fused[0][0] == winner
    assert fused[0][1] == pytest.approx(len(lists) / 61)
    assert all(score < fused[0][1] for _, score in fused[1:])


def test_rrf_scores_by_the_standard_formula() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))

    assert fused == {
        "a": pytest.approx(1 / 61 + 1 / 62),
        "b": pytest.approx(1 / 62),
        "c": pytest.approx(1 / 63 + 1 / 61),
    }


def test_rrf_ties_keep_first_appearance_order() -> None:
    # x and y hold ranks {1, 2, 3} in some order: equal scores, exactly.
    fused = reciprocal_rank_fusion([["y", "x"], ["x", "y"], ["q", "x", "y"], ["q", "y", "x"]])

    assert [doc_id for doc_id, _ in fused] == ["y", "x", "q"]
    assert fused[0][1] == fused[1][1]


def test_rrf_counts_a_repeated_id_at_its_best_rank_and_handles_empty_input() -> None:
    assert reciprocal_rank_fusion([["a", "b", "a"]], k=0) == [("a", 1.0), ("b", 0.5)]
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([["a"]], k=-1)
