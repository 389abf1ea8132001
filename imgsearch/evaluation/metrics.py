"""Retrieval metrics of one ranked list, with ties handled fairly.

Build a `Ranking` from the candidates' similarity scores (any order, higher is more similar)
and a relevant/not-relevant flag per candidate, then ask it for a metric. Candidates with equal
scores form a tie group; every metric is the expected value over all orders of the tied items
(McSherry & Najork, ECIR 2008), so an arbitrary tie-break can neither flatter nor hurt a model.

Definitions, for a query with R relevant items in the collection (the query itself excluded):

- precision@k = (relevant items in the top k) / k; it stays divided by k when R < k;
- recall@k = (relevant items in the top k) / R;
- AP@k = sum over ranks i <= k holding a relevant item of precision@i, divided by min(k, R);
  full AP is AP@n over the whole list, divided by R;
- reciprocal rank = 1 / (rank of the first relevant item), 0 when none is ranked.

A query with R = 0 (a class of one image) has no defined recall, AP or reciprocal rank: those
return None, and `imgsearch evaluate` leaves such queries out of its averages and counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np


@dataclass(frozen=True)
class Ranking:
    """Candidates in rank order, cut into groups of equal score."""

    starts: np.ndarray  # 0-based rank of each group's first item
    sizes: np.ndarray  # items per group
    hits: np.ndarray  # relevant items per group
    n_relevant: int  # relevant items in the whole collection (may exceed those ranked)

    @property
    def length(self) -> int:
        return int(self.sizes.sum())


def rank(
    scores: np.ndarray | list[float],
    relevant: np.ndarray | list[bool],
    n_relevant: int | None = None,
    tolerance: float = 0.0,
) -> Ranking:
    """Sort candidates by score (descending) and group ties.

    A score within `tolerance` of the next higher one joins its group. `n_relevant` defaults
    to the number of relevant candidates given.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 1:
        raise ValueError("scores and relevant must be 1-d and of the same length")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_relevant = scores[order], relevant[order]
    new_group = np.empty(len(scores), dtype=bool)
    new_group[:1] = True
    new_group[1:] = (sorted_scores[:-1] - sorted_scores[1:]) > tolerance
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, len(scores)))
    hits = np.add.reduceat(sorted_relevant.astype(np.int64), starts) if len(starts) else starts
    total = int(sorted_relevant.sum()) if n_relevant is None else int(n_relevant)
    return Ranking(starts.astype(np.int64), sizes.astype(np.int64), hits.astype(np.int64), total)


def defined(value: float | None) -> float:
    """A metric of a query that has a relevant image (callers skip those that have none)."""
    if value is None:
        raise ValueError("a metric of a query without any relevant image")
    return value


def expected_hits(r: Ranking, k: int) -> float:
    """Expected number of relevant items among the first k."""
    if k < 1:
        raise ValueError("k must be at least 1")
    inside = np.clip(k - r.starts, 0, r.sizes)  # items of each group that fall within the cut
    return float(np.sum(r.hits * inside / r.sizes))


def precision_at_k(r: Ranking, k: int) -> float:
    return expected_hits(r, k) / k


def recall_at_k(r: Ranking, k: int) -> float | None:
    return expected_hits(r, k) / r.n_relevant if r.n_relevant else None


def average_precision(r: Ranking, k: int | None = None) -> float | None:
    """AP@k, or full AP (divided by R) when k is None."""
    if not r.n_relevant:
        return None
    cut = r.length if k is None else k
    if cut < 1:
        raise ValueError("k must be at least 1")
    before = np.cumsum(r.hits) - r.hits  # relevant items ranked above each group
    total = 0.0
    single = (r.sizes == 1) & (r.hits > 0) & (r.starts < cut)
    total += float(np.sum((before[single] + 1) / (r.starts[single] + 1)))
    for g in np.flatnonzero((r.sizes > 1) & (r.hits > 0) & (r.starts < cut)):
        total += _tied_precision_sum(int(r.starts[g]), int(r.sizes[g]), int(r.hits[g]), int(before[g]), cut)
    return total / (r.n_relevant if k is None else min(k, r.n_relevant))


def _tied_precision_sum(start: int, size: int, hits: int, before: int, cut: int) -> float:
    """Expected sum of precision@rank over a tie group's relevant items ranked within `cut`.

    A relevant item lands at position p (1..size) of the group with probability 1/size; given
    that, (p - 1)(hits - 1)/(size - 1) other relevant items of the group precede it on average.
    """
    total = 0.0
    for p in range(1, min(size, cut - start) + 1):
        ahead = (p - 1) * (hits - 1) / (size - 1)
        total += (before + 1 + ahead) / (start + p)
    return hits * total / size


def reciprocal_rank(r: Ranking) -> float | None:
    """Expected 1 / rank of the first relevant item; 0 when no relevant item is ranked."""
    if not r.n_relevant:
        return None
    for start, size, hits in zip(r.starts, r.sizes, r.hits, strict=True):
        if hits:
            start, size, hits = int(start), int(size), int(hits)
            orders = comb(size, hits)
            return sum(
                comb(size - j - 1, hits - 1) / orders / (start + j + 1) for j in range(size - hits + 1)
            )
    return 0.0
