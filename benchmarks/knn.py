"""Nearest-neighbour indexes compared: pgvector HNSW / IVFFlat / exact scan vs FAISS vs Annoy.

    python benchmarks/knn.py [--n 100000] [--dim 1280] [--queries 200] [--url URL]
    python benchmarks/knn.py --smoke   # 1,500 x 64, 20 queries; every method whose package is here
                                       # (index tune on 50 stored vectors, faiss PQ codes of 4 bits)

The vectors are synthetic but shaped like pooled CNN features: 1,000 clusters in a 64-d latent
space, projected to --dim dimensions, plus noise, ReLU (non-negative, as efficientnet-lite0's
are) and L2 normalisation. The queries are held out (not in the index). Every method sees the
same float16-rounded vectors (imgsearch stores halfvec); the ground truth is the exact cosine
top-k computed with numpy.

pgvector is measured through imgsearch itself: rows written with `store.write_batch` (ingest's
code path), indexes built with `indexes.create_index` (HNSW m=16, ef_construction=64; IVFFlat
lists from the row count), and every query is one call of the SQL contract
`imgsearch.similar_to_vector(v, k, encoder)` from a single client. FAISS (IndexIVFFlat, inner
product, nlist = pgvector's lists) and Annoy (angular) are queried one vector at a time in this
process, so they pay no client/server round trip; the table says so.

Each method's search parameter is swept upwards until recall@k reaches 0.99 (or the sweep
ends); the summary gives the cheapest setting reaching 0.90 / 0.95 / 0.99.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402

ENCODER = "knn-bench"
TARGETS = (0.90, 0.95, 0.99)
HNSW_EF_SEARCH = (20, 40, 64, 80, 100, 128, 160, 200, 256, 400)
PROBES = (1, 2, 4, 8, 16, 32, 64, 100)
FAISS_EF_SEARCH = (16, 32, 64, 96, 128, 192, 256, 512)
FAR_SHOOTS = 10  # clusters 0-9 of 1,000: the filtered shoot
RERANK = (20, 40, 60, 80, 120, 160, 240, 320, 480, 640, 1000)
ANNOY_SEARCH_K = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000)


@dataclass
class Point:
    """One setting of one method: recall and single-client latency."""

    method: str
    setting: str
    recall: float
    p50_ms: float
    p95_ms: float
    qps: float


@dataclass
class Build:
    method: str
    seconds: float
    size_bytes: int
    note: str = ""


def synthetic_vectors(n: int, dim: int, seed: int = 0, clusters: int = 1000, latent: int = 64) -> np.ndarray:
    """Clustered, non-negative, unit-length float16-rounded vectors (see the module docstring)."""
    return synthetic_collection(n, dim, seed, clusters, latent)[0]


def synthetic_collection(
    n: int, dim: int, seed: int = 0, clusters: int = 1000, latent: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """synthetic_vectors and the cluster ("shoot") of each."""
    rng = np.random.default_rng(seed)
    labels = np.empty(n, dtype=np.int64)
    projection = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    centres = rng.normal(size=(clusters, latent)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):
        m = min(10_000, n - start)
        labels[start : start + m] = rng.integers(0, clusters, m)
        z = centres[labels[start : start + m]] + 0.6 * rng.normal(size=(m, latent))
        x = np.maximum(z.astype(np.float32) @ projection + 0.3 * rng.normal(size=(m, dim)), 0)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out.astype(np.float16).astype(np.float32), labels


def hard_collection(
    n: int,
    dim: int,
    seed: int = 0,
    clusters: int = 1000,
    latent: int = 256,
    spectrum: float = 1.0,
    zipf: float = 1.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Harder vectors, closer to real photo features than `synthetic_collection`, and the
    cluster of each: an anisotropic latent space (at most `dim` directions) whose variances
    fall as a power law (the i-th has variance i^-`spectrum`), a mean direction every vector
    shares (pooled CNN features all point roughly one way), clusters whose sizes follow a Zipf
    law (`zipf`) and whose spreads differ (log-normal), then ReLU, unit length and float16
    rounding as imgsearch stores them. Rows drawn after the first ones come from the same
    mixture, so held-out queries are as hard as the collection."""
    rng = np.random.default_rng(seed)
    latent = min(latent, dim)
    scales = (1.0 + np.arange(latent)) ** (-spectrum / 2)  # standard deviation per direction
    basis = np.linalg.qr(rng.normal(size=(dim, latent)))[0].astype(np.float32)  # orthonormal
    mean = np.abs(rng.normal(size=dim)).astype(np.float32)
    mean /= np.linalg.norm(mean)
    weights = (1.0 + np.arange(clusters)) ** -zipf
    weights = rng.permutation(weights / weights.sum())
    centres = rng.normal(size=(clusters, latent)) * scales
    spreads = rng.lognormal(np.log(0.6), 0.5, size=clusters)
    labels = rng.choice(clusters, size=n, p=weights)
    out = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 10_000):
        part = labels[start : start + 10_000]
        z = centres[part] + spreads[part, None] * rng.normal(size=(len(part), latent)) * scales
        x = (z.astype(np.float32) @ basis.T) * 2.0 + mean + 0.02 * rng.normal(size=(len(part), dim))
        x = np.maximum(x, 0).astype(np.float32)
        out[start : start + len(part)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out.astype(np.float32), labels


def far_shoots(labels: np.ndarray, at_least: int) -> int:
    """How many of the first clusters make the filtered "shoot": FAR_SHOOTS (1% of the even
    clusters), or as many as hold 1% of the rows, and `at_least` rows, when sizes differ."""
    counts = np.cumsum(np.bincount(labels))
    if counts[FAR_SHOOTS - 1] >= max(at_least, 0.005 * len(labels)):
        return FAR_SHOOTS
    return int(np.searchsorted(counts, max(at_least, 0.01 * len(labels)))) + 1


DATA = {"clustered": synthetic_collection, "hard": hard_collection}  # --data: the generators


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k largest cosine similarities per query."""
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ unit.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def measure(
    method: str,
    setting: str,
    search: Callable[[np.ndarray], list[int]],
    queries: np.ndarray,
    truth: np.ndarray,
    warmup: int = 10,
) -> Point:
    for q in queries[:warmup]:
        search(q)
    found, times = [], []
    start = time.perf_counter()
    for q in queries:
        t0 = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    ms = np.array(times) * 1000
    point = Point(
        method,
        setting,
        recall(found, truth),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
        len(queries) / total,
    )
    print(
        f"  {method:<16} {setting:<18} recall@{truth.shape[1]} {point.recall:.4f}  "
        f"p50 {point.p50_ms:8.2f} ms  p95 {point.p95_ms:8.2f} ms  {point.qps:8.1f} QPS",
        flush=True,
    )
    return point


def sweep(
    method: str,
    name: str,
    values: Sequence[int],
    configure: Callable[[int], None],
    search: Callable[[np.ndarray], list[int]],
    queries: np.ndarray,
    truth: np.ndarray,
) -> list[Point]:
    points = []
    for value in values:
        configure(value)
        points.append(measure(method, f"{name}={value}", search, queries, truth))
        if points[-1].recall >= TARGETS[-1]:
            break
    return points


# --- pgvector through imgsearch ---------------------------------------------------------


def load_postgres(url: str, data: np.ndarray, far: np.ndarray | None = None) -> tuple[object, int]:
    """The vectors written through ingest's code path; rows marked in `far` are one shoot
    (metadata shoot=far, folder /synthetic/far)."""
    from imgsearch.db import store
    from imgsearch.db.connection import connect
    from imgsearch.db.schema import open_database
    from imgsearch.encoding.encoder import EncoderIdentity

    db = open_database(url)
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, EncoderIdentity(ENCODER, data.shape[1], "synthetic", "none"))
        for start in range(0, len(data), 2000):
            stop = min(start + 2000, len(data))
            rows = [
                store.ImageRow(f"/synthetic/far/{i}.jpg", f"sha{i}", 1, 8, 8, "JPEG", 0.0, {"shoot": "far"})
                if far is not None and far[i]
                else store.ImageRow(f"/synthetic/{i}.jpg", f"sha{i}", 1, 8, 8, "JPEG", 0.0)
                for i in range(start, stop)
            ]
            store.write_batch(conn, enc_id, rows, data[start:stop])
        conn.execute("VACUUM ANALYZE imgsearch.embeddings")
        conn.execute("VACUUM ANALYZE imgsearch.images")
    return db, enc_id


def _pg_search(conn, k: int, id_of_path: dict[int, int]) -> Callable[[np.ndarray], list[int]]:
    from pgvector import HalfVector

    def search(q: np.ndarray) -> list[int]:
        rows = conn.execute(
            "SELECT image_id FROM imgsearch.similar_to_vector(%b, %s, %s)",  # the vector in binary
            (HalfVector(q), k, ENCODER),
            prepare=True,
        ).fetchall()
        return [id_of_path[r[0]] for r in rows]

    return search


def _filtered(
    conn, enc_id: int, data: np.ndarray, queries: np.ndarray, far: np.ndarray, k: int
) -> list[Point]:
    """Searches filtered to one shoot far from the query (1% of rows) through the library's path
    (`db.nearest.nearest`, the tuned HNSW index): rows returned, recall against the exact top-k of
    the shoot, latency."""
    from pgvector import HalfVector

    from imgsearch.db.nearest import QueryOptions, nearest

    rows = np.flatnonzero(far)
    truth = rows[exact_top_k(data[rows], queries, k)]
    points = []
    for name, options in (
        ("metadata shoot=far", {"where": {"shoot": "far"}}),
        ("folder /synthetic/far", {"folder": "/synthetic/far"}),
    ):
        counts, hits, times = [], [], []
        conn.execute("BEGIN")
        for q, t in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            found = nearest(conn, enc_id, data.shape[1], HalfVector(q), k, options=QueryOptions(**options))
            times.append(time.perf_counter() - t0)
            ids = {int(r.path.rsplit("/", 1)[1].split(".")[0]) for r in found}
            counts.append(len(found))
            hits.append(len(ids & set(t.tolist())) / k)
        conn.execute("ROLLBACK")
        ms = np.array(times) * 1000
        full = float(np.mean(np.array(counts) == k))
        point = Point(
            f"pg filtered to a far shoot (1%): {name}",
            "as shipped",
            float(np.mean(hits)),
            float(np.percentile(ms, 50)),
            float(np.percentile(ms, 95)),
            len(queries) / (sum(times)),
        )
        print(
            f"  {point.method}: {full:.0%} of queries got {k} rows "
            f"(mean {np.mean(counts):.2f}), recall {point.recall:.4f}, p50 {point.p50_ms:.2f} ms",
            flush=True,
        )
        points.append(point)
    return points


def postgres_methods(
    db,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    k: int,
    skip: Sequence[str],
    far: np.ndarray | None = None,
    far_queries: np.ndarray | None = None,
    tune_queries: int = 300,
) -> tuple[list[Build], list[Point]]:
    """pgvector through imgsearch as shipped: the embedded server's own settings, indexes built by
    `create_index`, `index tune --recall 0.95` (with `tune_queries` queries, as shipped
    300), every query one call of `similar_to_vector`."""
    from imgsearch.db import search_settings
    from imgsearch.db.connection import connect
    from imgsearch.db.index_tuning import tune
    from imgsearch.db.indexes import create_index, default_lists, drop_index, index_status

    builds: list[Build] = []
    points: list[Point] = []
    with connect(db, autocommit=True) as conn:
        enc_id = conn.execute("SELECT id FROM imgsearch.encoders WHERE name = %s", (ENCODER,)).fetchone()[0]
        id_of_path = dict(
            conn.execute("SELECT id, substring(path from '(\\d+)')::int FROM imgsearch.images").fetchall()
        )
        table_bytes = conn.execute("SELECT pg_table_size('imgsearch.embeddings')").fetchone()[0]
        print(f"  embeddings table: {table_bytes / 2**20:.0f} MiB", flush=True)
        search = _pg_search(conn, k, id_of_path)

        def set_ef(value: int) -> None:
            conn.execute(f"SET hnsw.ef_search = {int(value)}")

        def round_trip(q: np.ndarray) -> list[int]:
            conn.execute("SELECT 1", prepare=True).fetchall()
            return []

        floor = measure("pg round trip", "SELECT 1", round_trip, queries, truth)
        print(f"  (the client/server round trip alone costs {floor.p50_ms:.3f} ms at p50)")
        if "pg-exact" not in skip:  # no index yet; 100 queries are enough at ~0.2 s each
            points.append(measure("pg exact scan", "no index", search, queries[:100], truth[:100], warmup=3))
            builds.append(Build("pg exact scan", 0.0, 0, f"table {table_bytes / 2**20:.0f} MiB"))

        def build(method: str, **options) -> str:
            t0 = time.perf_counter()
            name, warnings = create_index(db, ENCODER, **options)
            seconds = time.perf_counter() - t0
            status = next(s for s in index_status(db) if s.name == name)
            builds.append(Build(method, seconds, status.size_bytes, status.parameters))
            print(
                f"  built {name} ({status.parameters}) in {seconds:.1f}s, "
                f"{status.size_bytes / 2**20:.0f} MiB {'; '.join(warnings)}",
                flush=True,
            )
            return name

        def shipped(method: str) -> None:
            """`index tune --recall 0.95`, then queries with no setting of the client's own."""
            t0 = time.perf_counter()
            result = tune(db, ENCODER, 0.95, queries=tune_queries)
            chosen = result.chosen
            value = chosen.setting[1]
            print(
                f"  index tune: {result.parameter}={value} (recall@10 {chosen.recall:.3f} on "
                f"{chosen.queries} tuning queries) in {time.perf_counter() - t0:.1f}s",
                flush=True,
            )
            conn.execute("RESET ALL")
            points.append(
                measure(f"{method} as shipped", f"tuned {result.parameter}={value}", search, queries, truth)
            )

        if "pg-hnsw" not in skip:
            build("pg hnsw (halfvec)")
            points.extend(
                sweep("pg hnsw (halfvec)", "ef_search", HNSW_EF_SEARCH, set_ef, search, queries, truth)
            )
            shipped("pg hnsw (halfvec)")
            conn.execute("RESET ALL")
        if "pg-hnsw" not in skip and far is not None:
            points.extend(_filtered(conn, enc_id, data, far_queries, far, k))
            conn.execute("RESET ALL")
        if "pg-binary" not in skip:
            build("pg hnsw (binary) + re-rank", quantize="binary")

            def set_rerank(value: int) -> None:
                search_settings.save(
                    conn,
                    enc_id,
                    search_settings.SearchSettings("manual", None, None, value, k, 0, 0, 0, 0, 0),
                )

            points.extend(
                sweep("pg hnsw (binary) + re-rank", "rerank", RERANK, set_rerank, search, queries, truth)
            )
            shipped("pg hnsw (binary) + re-rank")
        if "pg-ivfflat" not in skip:
            build("pg ivfflat", kind="ivfflat")
            lists = default_lists(len(data))
            values = [p for p in PROBES if p < lists] + [lists]
            points.extend(
                sweep(
                    "pg ivfflat",
                    "probes",
                    values,
                    lambda v: conn.execute(f"SET ivfflat.probes = {int(v)}"),
                    search,
                    queries,
                    truth,
                )
            )
            conn.execute("RESET ALL")
        drop_index(db, ENCODER)
    return builds, points


# --- FAISS and Annoy, in process -----------------------------------------------------------


def faiss_ivfflat(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, nlist: int
) -> tuple[Build, list[Point]]:
    import faiss

    unit = np.ascontiguousarray(data / np.linalg.norm(data, axis=1, keepdims=True), dtype=np.float32)
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(unit.shape[1])
    index = faiss.IndexIVFFlat(quantizer, unit.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(unit)
    index.add(unit)
    seconds = time.perf_counter() - t0
    size = len(faiss.serialize_index(index))
    print(f"  built faiss IndexIVFFlat nlist={nlist} in {seconds:.1f}s, {size / 2**20:.0f} MiB", flush=True)
    k = truth.shape[1]

    def search(q: np.ndarray) -> list[int]:
        v = (q / np.linalg.norm(q)).astype(np.float32)[None]
        return index.search(v, k)[1][0].tolist()

    def configure(value: int) -> None:
        index.nprobe = value

    values = [p for p in PROBES if p < nlist] + [nlist]
    points = sweep("faiss ivfflat", "nprobe", values, configure, search, queries, truth)
    return Build("faiss ivfflat", seconds, size, f"nlist={nlist}, float32"), points


def annoy_index(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, trees: int
) -> tuple[Build, list[Point]]:
    from annoy import AnnoyIndex

    t0 = time.perf_counter()
    index = AnnoyIndex(data.shape[1], "angular")
    for i, v in enumerate(data):
        index.add_item(i, v)
    index.build(trees, n_jobs=-1)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "annoy.ann")
        index.save(path)
        size = os.path.getsize(path)
    print(f"  built annoy n_trees={trees} in {seconds:.1f}s, {size / 2**20:.0f} MiB", flush=True)
    k = truth.shape[1]
    search_k = {"value": -1}

    def search(q: np.ndarray) -> list[int]:
        return index.get_nns_by_vector(q.tolist(), k, search_k=search_k["value"])

    def configure(value: int) -> None:
        search_k["value"] = value

    points = sweep("annoy", "search_k", ANNOY_SEARCH_K, configure, search, queries, truth)
    return Build("annoy", seconds, size, f"n_trees={trees}, float32"), points


def _unit32(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data / np.linalg.norm(data, axis=1, keepdims=True), dtype=np.float32)


def _built(method: str, seconds: float, size: int, note: str) -> Build:
    print(f"  built {method} ({note}) in {seconds:.1f}s, {size / 2**20:.0f} MiB", flush=True)
    return Build(method, seconds, size, note)


def faiss_hnsw(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, m: int) -> tuple[Build, list[Point]]:
    import faiss

    unit = _unit32(data)
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(unit.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.add(unit)
    build = _built(
        "faiss hnsw",
        time.perf_counter() - t0,
        len(faiss.serialize_index(index)),
        f"M={m}, efConstruction=40, float32",
    )
    k = truth.shape[1]

    def search(q: np.ndarray) -> list[int]:
        return index.search(_unit32(q[None]), k)[1][0].tolist()

    def configure(value: int) -> None:
        index.hnsw.efSearch = value

    return build, sweep("faiss hnsw", "efSearch", FAISS_EF_SEARCH, configure, search, queries, truth)


def faiss_ivfpq_refine(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, nlist: int, bits: int = 8
) -> tuple[Build, list[Point]]:
    import faiss

    unit = _unit32(data)
    dim = unit.shape[1]  # sub-quantisers: 1 per 20 dims (64 at 1,280), a divisor of dim as faiss needs
    m = max(d for d in range(1, max(1, dim // 20) + 1) if dim % d == 0)
    spec = f"IVF{nlist},PQ{m}x{bits},RFlat"
    t0 = time.perf_counter()
    index = faiss.index_factory(unit.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    index.train(unit)
    index.add(unit)
    build = _built("faiss ivfpq+refine", time.perf_counter() - t0, len(faiss.serialize_index(index)), spec)
    ivf = faiss.extract_index_ivf(index)
    index.k_factor = 32
    k = truth.shape[1]

    def search(q: np.ndarray) -> list[int]:
        return index.search(_unit32(q[None]), k)[1][0].tolist()

    def configure(value: int) -> None:
        ivf.nprobe = value

    values = [p for p in PROBES if p < nlist] + [nlist]
    return build, sweep("faiss ivfpq+refine", "nprobe", values, configure, search, queries, truth)


def hnswlib_index(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, m: int
) -> tuple[Build, list[Point]]:
    import hnswlib

    unit = _unit32(data)
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=unit.shape[1])
    index.init_index(max_elements=len(unit), M=m, ef_construction=64)
    index.add_items(unit, np.arange(len(unit)))
    size = len(unit) * (unit.shape[1] * 4 + m * 2 * 4 + 16)  # its own formula: vectors + level-0 links
    build = _built("hnswlib", time.perf_counter() - t0, size, f"M={m}, ef_construction=64, float32")
    k = truth.shape[1]

    def search(q: np.ndarray) -> list[int]:
        return index.knn_query(_unit32(q[None]), k=k)[0][0].tolist()

    return build, sweep("hnswlib", "ef", FAISS_EF_SEARCH, index.set_ef, search, queries, truth)


def usearch_index(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, m: int
) -> tuple[Build, list[Point]]:
    from usearch.index import Index

    unit = _unit32(data)
    t0 = time.perf_counter()
    index = Index(ndim=unit.shape[1], metric="cos", dtype="f16", connectivity=m, expansion_add=64)
    index.add(np.arange(len(unit)), unit)
    build = _built(
        "usearch (f16)",
        time.perf_counter() - t0,
        index.memory_usage,
        f"connectivity={m}, expansion_add=64, f16",
    )
    k = truth.shape[1]

    def search(q: np.ndarray) -> list[int]:
        return index.search(_unit32(q[None])[0], k).keys.tolist()

    def configure(value: int) -> None:
        index.expansion_search = value

    return build, sweep(
        "usearch (f16)", "expansion_search", FAISS_EF_SEARCH, configure, search, queries, truth
    )


# --- report ----------------------------------------------------------------------------------


def print_report(args, builds: list[Build], points: list[Point]) -> None:
    print()
    print(
        f"## k-NN: N={args.n:,} x {args.dim} dims, {args.queries} held-out queries, "
        f"recall@{args.k}; {platform.machine()}, {os.cpu_count()} cores"
    )
    print()
    print("| method | build s | index MiB | parameters |")
    print("|---|---|---|---|")
    for b in builds:
        size = f"{b.size_bytes / 2**20:.0f}" if b.size_bytes else "-"
        print(f"| {b.method} | {b.seconds:.1f} | {size} | {b.note} |")
    print()
    print(f"| method | target recall@{args.k} | setting | recall | p50 ms | p95 ms | QPS |")
    print("|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(p.method for p in points):
        mine = [p for p in points if p.method == method]
        for target in TARGETS:
            hit = next((p for p in mine if p.recall >= target), None)
            if hit is None:
                best = max(mine, key=lambda p: p.recall)
                print(
                    f"| {method} | {target:.2f} | not reached (best {best.setting}) | "
                    f"{best.recall:.3f} | {best.p50_ms:.2f} | {best.p95_ms:.2f} | {best.qps:.0f} |"
                )
            else:
                print(
                    f"| {method} | {target:.2f} | {hit.setting} | {hit.recall:.3f} | "
                    f"{hit.p50_ms:.2f} | {hit.p95_ms:.2f} | {hit.qps:.0f} |"
                )


METHODS = (
    "pg-exact",
    "pg-hnsw",
    "pg-binary",
    "pg-ivfflat",
    "faiss-hnsw",
    "faiss-ivfpq",
    "faiss-ivfflat",
    "hnswlib",
    "usearch",
    "annoy",
)
PACKAGES = {  # the in-process methods' packages (pip install -e '.[bench]')
    "faiss-hnsw": "faiss",
    "faiss-ivfpq": "faiss",
    "faiss-ivfflat": "faiss",
    "hnswlib": "hnswlib",
    "usearch": "usearch",
    "annoy": "annoy",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--data",
        choices=sorted(DATA),
        default="clustered",
        help="clustered: 1,000 even clusters in 64 latent dimensions (easy); hard: a power-law "
        "spectrum, a shared mean direction, Zipf-sized clusters of different spreads",
    )
    parser.add_argument(
        "--m", type=int, default=32, help="links per node of faiss's, hnswlib's and usearch's HNSW"
    )
    parser.add_argument("--annoy-trees", type=int, default=50)
    parser.add_argument(
        "--url", help="an existing PostgreSQL database (default: a new embedded server, as shipped)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=["pg-ivfflat", "faiss-ivfflat", "annoy"], choices=METHODS
    )
    _support.add_arguments(parser)
    args = parser.parse_args()
    tune_queries, pq_bits = 300, 8
    if args.smoke:  # (faiss trains 256 centroids per PQ code for seconds; 16 for a fraction)
        args.n, args.dim, args.queries, args.m, args.annoy_trees = 1500, 64, 20, 8, 5
        tune_queries, pq_bits = 50, 4
        args.skip = [m for m, package in PACKAGES.items() if importlib.util.find_spec(package) is None]
        if args.skip:
            print(f"smoke: {', '.join(args.skip)} left out (not installed: pip install -e '.[bench]')")
    url = args.database_url or args.url

    t0 = time.perf_counter()
    vectors, labels = DATA[args.data](args.n + args.queries, args.dim)
    data, queries = vectors[: args.n], vectors[args.n :]
    truth = exact_top_k(data, queries, args.k)
    shoots = far_shoots(labels[: args.n], 2 * args.k)
    far = labels[: args.n] < shoots  # ~1% of rows: one "shoot" the queries are not near
    far_queries = queries[labels[args.n :] >= shoots]
    print(
        f"{args.n:,} x {args.dim} {args.data} vectors and {args.queries} held-out queries "
        f"with exact top-{args.k} in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )

    from imgsearch.db.indexes import default_lists

    builds: list[Build] = []
    points: list[Point] = []
    home = None
    try:
        if any(m.startswith("pg-") and m not in args.skip for m in METHODS):
            if url is None:
                from imgsearch.db import embedded

                home = Path(tempfile.mkdtemp(prefix="imgsearch-knn-"))
                url = embedded.start(home).url
            t0 = time.perf_counter()
            db, _ = load_postgres(url, data, far)
            seconds = time.perf_counter() - t0
            print(f"pgvector: loaded {args.n:,} rows through store.write_batch in {seconds:.1f}s", flush=True)
            b, p = postgres_methods(
                db, data, queries, truth, args.k, args.skip, far, far_queries, tune_queries
            )
            builds += b
            points += p
        in_process = {
            "faiss-hnsw": lambda: faiss_hnsw(data, queries, truth, args.m),
            "faiss-ivfpq": lambda: faiss_ivfpq_refine(data, queries, truth, default_lists(args.n), pq_bits),
            "faiss-ivfflat": lambda: faiss_ivfflat(data, queries, truth, default_lists(args.n)),
            "hnswlib": lambda: hnswlib_index(data, queries, truth, args.m),
            "usearch": lambda: usearch_index(data, queries, truth, args.m),
            "annoy": lambda: annoy_index(data, queries, truth, args.annoy_trees),
        }
        for method, run in in_process.items():
            if method not in args.skip:
                b1, p1 = run()
                builds.append(b1)
                points += p1
    finally:
        if home is not None:
            from imgsearch.db import embedded

            embedded.stop(home)
    print_report(args, builds, points)


if __name__ == "__main__":
    main()
