"""Retrieval metrics against hand-computed values and a brute-force average over tie orders."""

from __future__ import annotations

import itertools
import random

import pytest

from imgsearch.evaluation.metrics import (
    average_precision,
    precision_at_k,
    rank,
    recall_at_k,
    reciprocal_rank,
)


def untied(relevant: list[bool], k: int | None, n_relevant: int) -> dict[str, float]:
    """Textbook metrics of one fixed order, written independently of imgsearch.metrics."""
    cut = len(relevant) if k is None else k
    hits, precisions = 0, []
    for i, rel in enumerate(relevant[:cut], start=1):
        if rel:
            hits += 1
            precisions.append(hits / i)
    first = next((i for i, rel in enumerate(relevant, start=1) if rel), None)
    ap_div = n_relevant if k is None else min(k, n_relevant)
    return {
        "p": hits / cut,
        "r": hits / n_relevant,
        "ap": sum(precisions) / ap_div,
        "rr": 1 / first if first else 0.0,
    }


def test_no_ties_by_hand() -> None:
    r = rank([5, 4, 3, 2, 1], [1, 0, 1, 0, 0])
    assert precision_at_k(r, 1) == 1.0
    assert precision_at_k(r, 3) == pytest.approx(2 / 3)
    assert precision_at_k(r, 5) == pytest.approx(0.4)
    assert recall_at_k(r, 1) == 0.5
    assert recall_at_k(r, 3) == 1.0
    assert average_precision(r) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(r, 1) == 1.0  # divided by min(k, R) = 1
    assert average_precision(r, 2) == 0.5  # one hit at rank 1, divided by min(2, 2)
    assert reciprocal_rank(r) == 1.0
    assert reciprocal_rank(rank([3, 2, 1], [0, 0, 1])) == pytest.approx(1 / 3)


def test_input_order_does_not_matter() -> None:
    a = rank([1, 5, 3, 2, 4], [0, 1, 1, 0, 0])
    b = rank([5, 4, 3, 2, 1], [1, 0, 1, 0, 0])
    assert average_precision(a) == average_precision(b)
    assert precision_at_k(a, 2) == precision_at_k(b, 2)


def test_ties_are_expected_values_by_hand() -> None:
    # orders [1,0,1,0] (AP 5/6) and [1,1,0,0] (AP 1) are equally likely
    r = rank([0.9, 0.8, 0.8, 0.7], [1, 0, 1, 0])
    assert average_precision(r) == pytest.approx((5 / 6 + 1) / 2)
    assert precision_at_k(r, 2) == pytest.approx((1 + 0.5) / 2)
    assert precision_at_k(r, 3) == pytest.approx(2 / 3)
    assert reciprocal_rank(r) == 1.0
    # a tie at the top: the relevant item is first or second with equal chance
    top = rank([0.8, 0.8], [0, 1])
    assert reciprocal_rank(top) == pytest.approx((1 + 1 / 2) / 2)
    assert precision_at_k(top, 1) == 0.5
    assert average_precision(top, 1) == 0.5


def test_near_equal_scores_join_a_group_within_tolerance() -> None:
    strict = rank([0.9, 0.9 - 1e-9], [0, 1])
    loose = rank([0.9, 0.9 - 1e-9], [0, 1], tolerance=1e-6)
    assert reciprocal_rank(strict) == 0.5
    assert reciprocal_rank(loose) == pytest.approx(0.75)


def test_class_of_one_has_no_recall_ap_or_rr() -> None:
    r = rank([0.9, 0.5, 0.1], [0, 0, 0])
    assert r.n_relevant == 0
    assert precision_at_k(r, 2) == 0.0
    assert recall_at_k(r, 2) is None
    assert average_precision(r) is None
    assert average_precision(r, 2) is None
    assert reciprocal_rank(r) is None


def test_k_larger_than_the_class() -> None:
    r = rank(list(range(12, 0, -1)), [1, 1] + [0] * 10)
    assert precision_at_k(r, 10) == pytest.approx(0.2)
    assert recall_at_k(r, 10) == 1.0
    assert average_precision(r, 10) == 1.0  # divided by min(10, R=2)
    # k beyond the list: the missing ranks count as misses
    assert precision_at_k(r, 20) == pytest.approx(2 / 20)


def test_relevant_items_that_were_not_ranked_count_as_misses() -> None:
    r = rank([0.9, 0.8], [1, 0], n_relevant=4)
    assert recall_at_k(r, 2) == 0.25
    assert average_precision(r) == 0.25
    assert reciprocal_rank(r) == 1.0
    assert reciprocal_rank(rank([0.9], [0], n_relevant=3)) == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rank([1.0, 2.0], [True])
    with pytest.raises(ValueError):
        precision_at_k(rank([1.0], [True]), 0)


@pytest.mark.parametrize("seed", range(40))
def test_tie_aware_values_equal_the_average_over_all_tie_orders(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 7)
    scores = [rng.choice([0.1, 0.2, 0.3]) for _ in range(n)]
    relevant = [rng.random() < 0.5 for _ in range(n)]
    n_relevant = sum(relevant) + rng.randint(0, 1)
    if n_relevant == 0:
        n_relevant = 1
    k = rng.randint(1, n + 1)
    groups: dict[float, list[bool]] = {}
    for s, rel in zip(scores, relevant, strict=True):
        groups.setdefault(s, []).append(rel)
    ordered = [groups[s] for s in sorted(groups, reverse=True)]
    orders = [
        [rel for group in combo for rel in group]
        for combo in itertools.product(*[list(itertools.permutations(g)) for g in ordered])
    ]
    mean = {
        key: sum(untied(o, kk, n_relevant)[key] for o in orders) / len(orders)
        for key, kk in (("p", k), ("r", k), ("ap", k), ("rr", None))
    }
    full_ap = sum(untied(o, None, n_relevant)["ap"] for o in orders) / len(orders)
    r = rank(scores, relevant, n_relevant)
    assert precision_at_k(r, k) == pytest.approx(mean["p"])
    assert recall_at_k(r, k) == pytest.approx(mean["r"])
    assert average_precision(r, k) == pytest.approx(mean["ap"])
    assert average_precision(r) == pytest.approx(full_ap)
    assert reciprocal_rank(r) == pytest.approx(mean["rr"])
