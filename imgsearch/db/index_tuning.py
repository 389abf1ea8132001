"""Recall you choose: measure an encoder's ANN index with queries as hard as new images, keep the
cheapest setting that reaches the target.

A stored vector makes too easy a query: it sits in the graph, linked to its own nearest
neighbours, so the search finds them through it (benchmarks/tuning_queries.py, 100,000 hard
vectors, ef_search 20: recall@10 0.968 for stored vectors, 0.930 held out). So the queries are
made from a seeded sample of stored vectors, each left out of its own answer, moved two ways
(KINDS) where new images of its neighbourhood would lie: one nearest-neighbour distance in a
random direction the offsets to its NEIGHBOURS nearest span (where the collection spreads), and
MOVE nearest-neighbour distances in any direction along the sphere. A setting's recall is that
of the kind that reads lower (a binary-quantised index: the first kind only, BINARY_KIND).
Against true held-out queries on the same graphs, the first kind read within 0.015 of them
(mostly under) on hard clustered vectors but up to 0.18 over on vectors of random direction; the
second read within 0.015 there, and over on hard vectors (benchmarks/tuning_queries.py,
docs/performance/search.md). The truth is an exact top-k computed with numpy in streamed passes
over the encoder's vectors; each setting (HNSW ef_search, IVFFlat probes, or the candidates a
binary-quantised index re-ranks) is measured through the search path itself
(`db.nearest.nearest`), and chosen when the queries reach the target plus MARGIN of what it
leaves (0.96 for 0.95): a few hundred queries are a sample.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch.db import search_settings, store
from imgsearch.db.connection import Database, connect, scalar
from imgsearch.db.indexes import default_lists, existing_index
from imgsearch.db.nearest import QueryOptions, nearest
from imgsearch.errors import ImgsearchError
from imgsearch.progress import Progress, ProgressCallback

EF_SEARCH = (20, 40, 64, 80, 100, 128, 160, 200, 256, 320, 400, 500, 640, 800, 1000)
RERANK = (20, 40, 60, 80, 120, 160, 240, 320, 480, 640, 1000)
PROBES = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 128, 160, 200, 256)
DISTANCE_TOLERANCE = 2e-4  # numpy's float32 distances vs pgvector's: a tie within this counts
CHUNK_ROWS = 20_000
NEIGHBOURS = 20  # whose offsets give the directions a query is moved along
MOVE = 1.5  # the step of a query moved any way, in distances to its nearest neighbour
# A binary-quantised index is tuned with the first kind alone: moved any way, a query's small
# coordinates change sign, and its bits read far under held-out queries (300,000 x 1,280 hard
# vectors, rerank 1000: 0.849 against 0.988 held out), so every index would take the most.
BINARY_KIND = 0
MARGIN = 0.2  # of 1 - target, asked on top of the target (the sample's error)


@dataclass
class TuningStep:
    setting: int
    recall: float
    p50_ms: float


@dataclass
class TuningResult:
    encoder: str
    target: float
    chosen: search_settings.SearchSettings
    steps: list[TuningStep] = field(default_factory=list)

    @property
    def parameter(self) -> str:
        """ef_search, probes or rerank."""
        return self.chosen.setting[0]

    @property
    def index_name(self) -> str:
        return self.chosen.index_name

    @property
    def required(self) -> float:
        """The recall the tuning queries must reach (the target and a margin for the sample)."""
        return required_recall(self.target)

    @property
    def reached(self) -> bool:
        return self.chosen.recall >= self.required


def required_recall(target: float) -> float:
    return target + (1.0 - target) * MARGIN


def tune(
    db: Database,
    encoder: str,
    target: float = 0.95,
    *,
    k: int = 10,
    queries: int = 300,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> TuningResult:
    """Measure recall@k for increasing index settings until `queries` held-out-like queries
    reach `required_recall(target)`; store and return the first that does (or the last tried,
    with its recall, when none does)."""
    if not 0 < target <= 1:
        raise ImgsearchError(f"--recall must be above 0 and at most 1 (got {target}).")
    with connect(db) as conn:
        enc = store.encoder_by_name(conn, encoder)
        if enc is None:
            raise ImgsearchError(f"No encoder named {encoder!r} in the database: ingest with it first.")
        name = existing_index(conn, enc.id)
        if name is None:
            raise ImgsearchError(
                f"{encoder} has no ANN index: searches are exact scans (recall 1.0). "
                f"Build one with `imgsearch index create --model {encoder}`."
            )
        count = "SELECT count(*) FROM imgsearch.embeddings WHERE encoder_id = %s"
        rows = int(scalar(conn.execute(count, (enc.id,))))
        if rows <= k:
            raise ImgsearchError(f"{encoder} has {rows} vectors: too few to measure recall@{k}.")
        parameter, grid = _grid(conn, name, rows)
        kinds = (BINARY_KIND,) if parameter == "rerank" else ALL_KINDS
        tuning = tuning_queries(conn, enc.id, queries, k, seed, kinds=kinds)
        steps: list[TuningStep] = []
        started = time.monotonic()
        for setting in grid:
            steps.append(measure(conn, enc.id, enc.dimension, tuning, parameter, setting))
            if progress is not None:
                report = f"{parameter} {setting}: recall {steps[-1].recall:.3f}"
                progress(Progress("tune", len(steps), len(grid), time.monotonic() - started, report))
            if steps[-1].recall >= required_recall(target):
                break
        last = steps[-1]
        chosen = search_settings.SearchSettings(
            index_name=name,
            ef_search=last.setting if parameter == "ef_search" else None,
            probes=last.setting if parameter == "probes" else None,
            rerank=last.setting if parameter == "rerank" else None,
            k=k,
            target_recall=target,
            recall=last.recall,
            p50_ms=last.p50_ms,
            queries=len(tuning.ids),
            rows_at_tuning=rows,
        )
        search_settings.save(conn, enc.id, chosen)
        conn.commit()
    return TuningResult(encoder, target, chosen, steps)


@dataclass
class TuningQueries:
    """Queries whose answers are known: `ids` (the stored vector each was made from, left out
    of its answer), the query vectors, the cosine distance of each one's exact k-th nearest,
    and each one's kind (`kinds`: an index into KINDS; a setting's recall is its worst kind's)."""

    ids: np.ndarray
    vectors: np.ndarray
    kth: np.ndarray
    k: int
    kinds: np.ndarray | None = None  # None: one kind

    def of_kind(self, kind: int) -> TuningQueries:
        """The queries of one of KINDS."""
        keep = self.kinds == kind if self.kinds is not None else np.full(len(self.ids), kind == 0)
        return TuningQueries(self.ids[keep], self.vectors[keep], self.kth[keep], self.k)


KINDS = ("along its neighbours", "any way")  # how tuning queries are moved (see the module)
ALL_KINDS = tuple(range(len(KINDS)))


def tuning_queries(
    conn: psycopg.Connection,
    enc_id: int,
    n: int,
    k: int = 10,
    seed: int = 0,
    *,
    moved: bool = True,
    kinds: tuple[int, ...] = ALL_KINDS,
) -> TuningQueries:
    """`n` queries of each of `kinds` (indexes into KINDS) made from a seeded sample of the
    encoder's stored vectors, moved where new images of their neighbourhood would lie (`moved`
    False: `n` stored vectors as they are, the easier queries, for comparison), with their exact
    k-th nearest distances."""
    ids, vectors = _sample(conn, enc_id, n, seed)
    if len(ids) == 0:
        raise ImgsearchError("The encoder has no vectors to measure recall with.")
    labels = None
    if moved:
        rows, neighbours = _nearest_stored(conn, enc_id, ids, vectors)
        has = rows[:, 0] >= 0
        nearest = np.where(has, 1.0 - np.sum(neighbours[np.where(has, rows[:, 0], 0)] * vectors, axis=1), 0.0)
        made = {
            0: lambda: _moved_along_neighbours(vectors, (rows, neighbours), seed),
            1: lambda: _moved_any_way(vectors, nearest, seed),
        }
        vectors = np.concatenate([made[kind]() for kind in kinds])
        labels = np.repeat(np.asarray(kinds), len(ids))
        ids = np.tile(ids, len(kinds))
    return TuningQueries(ids, vectors, _exact_kth_distance(conn, enc_id, ids, vectors, k), k, labels)


def _options(parameter: str, setting: int) -> QueryOptions:
    # a binary index's candidates are QueryOptions.ef_search (see nearest._plan)
    if parameter == "probes":
        return QueryOptions(probes=setting, augmented=False)
    return QueryOptions(ef_search=setting, augmented=False)


def _grid(conn: psycopg.Connection, name: str, rows: int) -> tuple[str, tuple[int, ...]]:
    if "_bit_" in name:
        return "rerank", RERANK
    if "_hnsw_" in name:
        return "ef_search", EF_SEARCH
    options = scalar(
        conn.execute("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = %s", (name,))
    )
    lists = default_lists(rows)
    for option in (options or "").split(","):
        if option.startswith("lists="):
            lists = int(option.split("=", 1)[1])
    return "probes", tuple(p for p in PROBES if p < lists) + (lists,)


def _sample(conn: psycopg.Connection, enc_id: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` stored vectors chosen by a seeded hash of their image ids (the same ones each run)."""
    picked = conn.execute(
        "SELECT image_id, embedding FROM imgsearch.embeddings WHERE encoder_id = %s"
        " ORDER BY md5(image_id::text || ':' || %s::text) LIMIT %s",
        (enc_id, seed, n),
    ).fetchall()
    ids = np.array([r[0] for r in picked], dtype=np.int64)
    vectors = np.array([_unit(r[1]) for r in picked], dtype=np.float32).reshape(len(picked), -1)
    return ids, vectors


def _unit(vector) -> np.ndarray:
    v = np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _stream(conn: psycopg.Connection, enc_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image ids, unit vectors) of the encoder, CHUNK_ROWS at a time (a server-side cursor)."""
    with conn.cursor(name="imgsearch_tune", binary=True) as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute("SELECT image_id, embedding FROM imgsearch.embeddings WHERE encoder_id = %s", (enc_id,))
        while batch := cur.fetchmany(CHUNK_ROWS):
            ids = np.array([r[0] for r in batch], dtype=np.int64)
            yield ids, np.array([_unit(r[1]) for r in batch], dtype=np.float32)


def _nearest_stored(
    conn: psycopg.Connection, enc_id: int, ids: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the image ids of its NEIGHBOURS nearest other stored vectors, nearest first
    (-1 where there are fewer), and those vectors (unit), one row per distinct id."""
    m = NEIGHBOURS
    best = np.full((len(ids), m), -np.inf, dtype=np.float32)
    best_ids = np.full((len(ids), m), -1, dtype=np.int64)
    for chunk_ids, chunk in _stream(conn, enc_id):
        sims = queries @ chunk.T
        sims[ids[:, None] == chunk_ids[None, :]] = -np.inf  # not itself
        top = np.argpartition(-sims, min(m, sims.shape[1] - 1), axis=1)[:, :m]
        merged = np.concatenate([best, np.take_along_axis(sims, top, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, chunk_ids[top]], axis=1)
        order = np.argsort(-merged, axis=1, kind="stable")[:, :m]
        best = np.take_along_axis(merged, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    best_ids[~np.isfinite(best)] = -1
    wanted = np.unique(best_ids[best_ids >= 0])
    rows = conn.execute(
        "SELECT image_id, embedding FROM imgsearch.embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
        (enc_id, wanted.tolist()),
    ).fetchall()
    conn.commit()  # ends the transaction the reads began
    row_of = {int(r[0]): i for i, r in enumerate(rows)}
    vectors = np.array([_unit(r[1]) for r in rows], dtype=np.float32).reshape(len(rows), queries.shape[1])
    return np.vectorize(lambda i: row_of.get(int(i), -1), otypes=[np.int64])(best_ids), vectors


def _moved_along_neighbours(
    queries: np.ndarray, neighbourhoods: tuple[np.ndarray, np.ndarray], seed: int
) -> np.ndarray:
    """Each query moved by the distance to its nearest neighbour, in a random direction that
    the offsets to its neighbours span (where the collection spreads), unit length and
    float16-rounded as the search sends it."""
    rows, neighbours = neighbourhoods
    rng = np.random.default_rng(seed)
    moved = queries.copy()
    for i, (query, found) in enumerate(zip(queries, rows, strict=True)):
        found = found[found >= 0]
        if len(found) == 0:
            continue
        offsets = neighbours[found] - query
        direction = rng.normal(size=len(found)) @ offsets
        norm = float(np.linalg.norm(direction))
        if norm > 1e-12:
            moved[i] = query + float(np.linalg.norm(offsets[0])) * direction / norm
    moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
    return moved.astype(np.float16).astype(np.float32)


def _moved_any_way(queries: np.ndarray, nearest_distance: np.ndarray, seed: int) -> np.ndarray:
    """Each query moved MOVE times its straight-line distance to its nearest neighbour (given
    as a cosine distance), in a random direction along the sphere (off the directions the
    collection spreads in), unit length and float16-rounded as the search sends it."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=queries.shape)
    directions -= np.sum(directions * queries, axis=1, keepdims=True) * queries  # along the sphere
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    steps = MOVE * np.sqrt(2.0 * np.clip(nearest_distance, 0.0, 2.0))  # chord length of unit vectors
    moved = queries + steps[:, None] * directions
    moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
    return moved.astype(np.float16).astype(np.float32)


def _exact_kth_distance(
    conn: psycopg.Connection, enc_id: int, ids: np.ndarray, queries: np.ndarray, k: int
) -> np.ndarray:
    """Per query, the cosine distance of its k-th nearest other vector (exact)."""
    best = np.full((len(ids), k), -np.inf, dtype=np.float32)  # the k largest similarities so far
    for chunk_ids, chunk in _stream(conn, enc_id):
        sims = queries @ chunk.T
        sims[ids[:, None] == chunk_ids[None, :]] = -np.inf  # not itself
        merged = np.concatenate([best, sims], axis=1)
        best = np.partition(merged, merged.shape[1] - k, axis=1)[:, -k:]
    conn.commit()  # ends the cursor's transaction
    return 1.0 - best.min(axis=1)


def measure(
    conn: psycopg.Connection, enc_id: int, dim: int, queries: TuningQueries, parameter: str, setting: int
) -> TuningStep:
    """recall@k (of the worst kind of query) and the median latency of `queries` through the
    search path at one setting (`parameter`: ef_search, probes or rerank)."""
    hits = np.zeros(len(queries.ids))
    timings = []
    options = _options(parameter, setting)
    k = queries.k
    for i, (image_id, query, limit) in enumerate(zip(queries.ids, queries.vectors, queries.kth, strict=True)):
        started = time.perf_counter()
        found = nearest(conn, enc_id, dim, HalfVector(query), k, exclude_id=int(image_id), options=options)
        timings.append(time.perf_counter() - started)
        conn.rollback()  # the knobs are transaction-local
        hits[i] = sum(1 for row in found[:k] if row.distance <= limit + DISTANCE_TOLERANCE) / k
    kinds = queries.kinds if queries.kinds is not None else np.zeros(len(hits), dtype=int)
    recall = min(float(hits[kinds == kind].mean()) for kind in np.unique(kinds))
    return TuningStep(setting, recall, float(np.median(timings)) * 1000)
