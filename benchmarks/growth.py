"""How the cost grows: 10,000 to 1,000,000 vectors, and what that says of 10M and 100M.

    python benchmarks/growth.py [--sizes 10000 100000 300000 1000000] [--dims 1280 512]
                                [--queries 500] [--skip binary partitions faiss ...] [--plot DIR]
    python benchmarks/growth.py --smoke   # 1,000 and 2,000 x 64, 20 queries: seconds

For each size n of `--sizes` and each dimension of `--dims`, n + `--queries` vectors of knn.py's
generators (`--data hard`, the default), the last `--queries` held out as queries (exact top-10
by numpy, in chunks), written into a new database of the run's server (`Server.new_database`,
dropped when that size is done) through `knn.load_postgres` (ingest's `store.write_batch` in
2,000-row batches, then VACUUM ANALYZE): rows/s. Then, one at a time on that table, each index
as imgsearch builds it (`indexes.create_index`, m=16, ef_construction=64):

- halfvec HNSW: the build's seconds; the server's peak memory during it (the summed RSS, and
  PSS, of the postmaster and all its children, parallel build workers included, sampled every
  0.5 s with psutil, or from /proc without it; RSS counts a shared page once per process that
  touched it, PSS shares it out); the index's size (`index_status`); and whether the graph
  outgrew maintenance_work_mem (pgvector's NOTICE "hnsw graph no longer fits into
  maintenance_work_mem", caught on create_index's own connection, and the index's size against
  the memory the build had: the server's setting, or create_index's `build_memory` when larger);
  then `index_tuning.tune(db, encoder, 0.95)` (as `imgsearch index tune --recall 0.95`), and
  each held-out query three ways at the tuned setting, from one client, after a warm-up pass,
  round robin (search_overhead.py's `time_ways`): the bare prepared pgvector statement,
  `imgsearch.similar_to_vector` (prepared) and `Index.search_vector`: recall@10, p50, p95;
- binary-quantised HNSW (`quantize="binary"`, tuned: how many candidates to re-rank): the same;
- 4 hash partitions (`partition.partition(db, 4)`: the copy timed on its own, then the halfvec
  HNSW index built on the parent, one per partition): the same;
- faiss IndexHNSWFlat (M=16, efConstruction=64, inner product on unit float32, faiss's own
  thread count unless `--faiss-threads`) on the same vectors, in this process: build seconds,
  then efSearch 16, 32, 48, ... 768 until held-out recall@10 reaches 0.95, one query at a time:
  its p50, and each pg index's p50 (library and bare) over it. pg's own recall is what its tuned
  setting gave on the held-out queries (the tables say when it is below 0.95).

Each measurement prints a line as it is made; markdown tables follow at the end, then the 10M
and 100M arithmetic from the largest size measured of each dimension, each an estimate: bytes
per vector (embeddings table with its keys, images table, each index) times 10M and 100M, and the
build time scaled as n log n (a build whose graph outgrows maintenance_work_mem is slower than
that). `--plot DIR` draws build time, index size, p50 and load rate against n (matplotlib).

The embedded server runs with its own settings (sized to the machine, as shipped); with
`--database-url` the databases are made beside that one, and its server's memory is sampled
only when it runs on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402
from knn import DATA, ENCODER, exact_top_k, load_postgres  # noqa: E402
from knn import measure as measure_one  # noqa: E402
from search_overhead import WAYS, time_ways  # noqa: E402

K = 10
TARGET = 0.95
FAISS_M, FAISS_EF_CONSTRUCTION = 16, 64
FAISS_EF_SEARCH = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)
PARTITIONS = 4
INDEXES = {"halfvec": None, "binary": "binary", "partitions": None}  # create_index's quantize=
ITEMS = ("halfvec", "binary", "partitions", "faiss", *WAYS)  # --skip
SAMPLE_S = 0.5
ESTIMATE_SIZES = (10_000_000, 100_000_000)


@dataclass
class Build:
    """One index built: seconds, size, the server's memory meanwhile, maintenance_work_mem."""

    index: str
    seconds: float
    size_bytes: int
    setting: str = ""  # what tune chose
    tuned_recall: float | None = None  # on tune's own queries
    peak_rss: int | None = None
    peak_pss: int | None = None
    before_rss: int | None = None
    maintenance_bytes: int | None = None
    notice: bool | None = None  # pgvector's "no longer fits" NOTICE seen (None: not caught)
    copy_seconds: float | None = None  # partitions: the copy into them

    def outgrew(self) -> str:
        """Whether the graph outgrew maintenance_work_mem, and how that is known."""
        if self.maintenance_bytes is None:
            return "?"
        parts = PARTITIONS if self.index == "partitions" else 1
        bigger = self.size_bytes / parts > self.maintenance_bytes
        if self.notice:
            return "yes (NOTICE)"
        if self.notice is None:
            return "yes (size, no notices caught)" if bigger else "no (size, no notices caught)"
        return "no NOTICE, but index > mwm" if bigger else "no"


@dataclass
class Way:
    index: str
    way: str  # bare, function, library; faiss: "in process"
    setting: str
    recall: float
    p50_ms: float
    p95_ms: float


@dataclass
class Size:
    """Everything measured at one (n, dim)."""

    n: int
    dim: int
    load_seconds: float = 0.0
    embeddings_bytes: int = 0  # heap, TOAST and its btree keys, before any ANN index
    images_bytes: int = 0
    builds: list[Build] = field(default_factory=list)
    ways: list[Way] = field(default_factory=list)

    @property
    def load_rate(self) -> float:
        return self.n / self.load_seconds if self.load_seconds else 0.0

    def p50(self, index: str, way: str) -> float | None:
        return next((w.p50_ms for w in self.ways if w.index == index and w.way == way), None)


# --- the server's memory ---------------------------------------------------------------------


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    return children


def _proc_kib(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_of_tree(root: int) -> tuple[int, int | None]:
    """Summed RSS and PSS (None where unreadable) of `root` and all its descendants now."""
    if importlib.util.find_spec("psutil") is not None:
        import psutil

        try:
            top = psutil.Process(root)
            procs = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0, None
        rss, pss = 0, 0
        for proc in procs:
            try:
                info = proc.memory_full_info()
            except psutil.AccessDenied:
                pss = None
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
                continue
            except psutil.NoSuchProcess:
                continue
            rss += info.rss
            if pss is not None:
                pss += info.pss
        return rss, pss
    children = _proc_children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    rss, pss = 0, 0
    for pid in pids:
        r = _proc_kib(f"/proc/{pid}/status", "VmRSS:")
        p = _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")
        rss += r or 0
        pss = None if pss is None or p is None else pss + p
    return rss, pss


def postmaster_pid(server: _support.Server) -> tuple[int | None, str]:
    """The server's postmaster on this machine, and how it was found (or why not)."""
    import psycopg

    if server.embedded_home is not None:
        pid_file = server.embedded_home / "pgdata" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text().split()[0]), "the embedded server's postmaster.pid"
    with psycopg.connect(server.admin_url) as conn:
        backend, started = conn.execute("SELECT pg_backend_pid(), pg_postmaster_start_time()").fetchone()
        # the backend is ours if it runs here: its parent is the postmaster, started when the
        # server says it was
        try:
            stat = Path(f"/proc/{backend}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            ticks = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19])
            boot = next(
                float(line.split()[1])
                for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime")
            )
        except (OSError, ValueError, IndexError, StopIteration):
            return None, "the server is not on this machine"
        if abs(boot + ticks / os.sysconf("SC_CLK_TCK") - started.timestamp()) > 2:
            return None, "the server is not on this machine"
        return parent, "the backend's parent process"


class MemorySampler:
    """The peak summed RSS / PSS of the server's processes while in use, every SAMPLE_S."""

    def __init__(self, root: int | None) -> None:
        self.root = root
        self.before_rss: int | None = None
        self.peak_rss: int | None = None
        self.peak_pss: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss, pss = memory_of_tree(self.root)
        self.peak_rss = max(self.peak_rss or 0, rss)
        if pss is not None:
            self.peak_pss = max(self.peak_pss or 0, pss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def __enter__(self) -> MemorySampler:
        if self.root is not None:
            self.before_rss = memory_of_tree(self.root)[0]
            self._sample()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()


# --- building and searching ---------------------------------------------------------------------


@contextlib.contextmanager
def notices_of_create_index() -> Iterator[list[str]]:
    """The notices the server sends to create_index's connections (its module's `connect`,
    wrapped for the while to add a notice handler)."""
    from imgsearch.db import indexes

    caught: list[str] = []
    original = indexes.connect

    def connect(*args, **kwargs):
        conn = original(*args, **kwargs)
        conn.add_notice_handler(lambda diag: caught.append(diag.message_primary or ""))
        return conn

    indexes.connect = connect
    try:
        yield caught
    finally:
        indexes.connect = original


def maintenance_bytes(db, n: int, dim: int, index: str) -> int:
    """maintenance_work_mem as create_index builds with it."""
    from imgsearch.db.connection import connect
    from imgsearch.db.indexes import build_maintenance_memory

    with connect(db, autocommit=True) as conn:
        return build_maintenance_memory(conn, "hnsw", n, dim, quantize=INDEXES[index])


def build(db, index: str, memory_root: int | None, n: int, dim: int) -> Build:
    from imgsearch.db.indexes import create_index, index_status

    with notices_of_create_index() as notices, MemorySampler(memory_root) as memory:
        t0 = time.perf_counter()
        name, warnings = create_index(db, ENCODER, quantize=INDEXES[index])
        seconds = time.perf_counter() - t0
    size = next(s.size_bytes for s in index_status(db) if s.name == name)
    fits = [n for n in notices if "no longer fits" in n]
    result = Build(
        index,
        seconds,
        size,
        peak_rss=memory.peak_rss,
        peak_pss=memory.peak_pss,
        before_rss=memory.before_rss,
        maintenance_bytes=maintenance_bytes(db, n, dim, index),
        notice=bool(fits),
    )
    peak = (
        f"server peak RSS {_mib(result.peak_rss)} MiB (PSS {_mib(result.peak_pss)}, "
        f"{_mib(result.before_rss)} before)"
        if result.peak_rss is not None
        else "server memory not sampled"
    )
    print(
        f"  {index}: built {name} in {seconds:.1f} s, {_mib(size)} MiB; {peak}; "
        f"maintenance_work_mem {_mib(result.maintenance_bytes)} MiB, outgrew: {result.outgrew()}"
        + "".join(f"; {w}" for w in warnings)
        + "".join(f"; NOTICE {n}" for n in fits),
        flush=True,
    )
    return result


def tune_and_time(db, enc_id: int, size: Size, built: Build, queries, truth, args) -> None:
    from imgsearch.db.index_tuning import tune

    t0 = time.perf_counter()
    tuned = tune(db, ENCODER, TARGET, k=K, queries=args.tune_queries)
    parameter, value = tuned.chosen.setting
    built.setting, built.tuned_recall = f"{parameter}={value}", tuned.chosen.recall
    print(
        f"  {built.index}: tuned {parameter}={value} (recall@{K} {tuned.chosen.recall:.3f} on "
        f"{tuned.chosen.queries} tuning queries) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    ways = tuple(w for w in WAYS if w not in args.skip)
    if not ways:
        return
    setting, figures = time_ways(
        db, enc_id, size.dim, K, parameter, value, queries, truth, min(args.warmup, len(queries)), ways
    )
    for way in ways:
        recall_, p50, p95 = figures[way]
        size.ways.append(Way(built.index, way, setting, recall_, p50, p95))
        print(
            f"  {built.index} {way:<8} {setting:<28} recall@{K} {recall_:.3f}  "
            f"p50 {p50:7.3f} ms  p95 {p95:7.3f} ms",
            flush=True,
        )


def faiss_hnsw(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, size: Size) -> None:
    """faiss IndexHNSWFlat on the same vectors: build, then the smallest efSearch reaching TARGET."""
    import faiss

    def unit(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)

    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(data.shape[1], FAISS_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = FAISS_EF_CONSTRUCTION
    for start in range(0, len(data), 100_000):  # one float32 copy at a time besides the index's
        index.add(unit(data[start : start + 100_000]))
    seconds = time.perf_counter() - t0
    nbytes = len(data) * (data.shape[1] * 4 + FAISS_M * 2 * 4)  # vectors + level-0 links (estimate)
    size.builds.append(Build("faiss", seconds, nbytes))
    print(
        f"  faiss: built IndexHNSWFlat M={FAISS_M}, efConstruction={FAISS_EF_CONSTRUCTION} in "
        f"{seconds:.1f} s on {faiss.omp_get_max_threads()} threads, ~{_mib(nbytes)} MiB",
        flush=True,
    )

    def search(q: np.ndarray) -> list[int]:
        return index.search(unit(q[None]), K)[1][0].tolist()

    point = None
    for ef in FAISS_EF_SEARCH:
        index.hnsw.efSearch = ef
        point = measure_one("faiss hnsw", f"efSearch={ef}", search, queries, truth)
        if point.recall >= TARGET:
            break
    assert point is not None
    note = "" if point.recall >= TARGET else f" (did not reach {TARGET})"
    size.ways.append(
        Way("faiss", "in process", point.setting + note, point.recall, point.p50_ms, point.p95_ms)
    )


def held_out_truth(data: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000) -> np.ndarray:
    """knn.exact_top_k over `data` in chunks of rows (a bounded copy at a time), merged."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    starts = list(range(0, len(data), chunk))
    if len(starts) > 1 and len(data) - starts[-1] <= k:
        starts.pop()  # exact_top_k needs more than k rows: the tail joins the chunk before
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    best_sims = np.empty((len(queries), 0), dtype=np.float32)
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else len(data)
        top = exact_top_k(data[start:stop], queries, k)
        rows = data[start:stop][top]  # queries x k x dim
        sims = np.einsum("qd,qkd->qk", q, rows / np.linalg.norm(rows, axis=2, keepdims=True))
        ids = np.concatenate([best_ids, top + start], axis=1)
        sims = np.concatenate([best_sims, sims.astype(np.float32)], axis=1)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(ids, order, axis=1)
        best_sims = np.take_along_axis(sims, order, axis=1)
    return best_ids


def one_size(server: _support.Server, memory_root: int | None, n: int, dim: int, args) -> Size:
    from imgsearch.db.connection import connect
    from imgsearch.db.indexes import drop_index
    from imgsearch.db.partition import partition

    size = Size(n, dim)
    t0 = time.perf_counter()
    vectors, _ = DATA[args.data](n + args.queries, dim)
    data, queries = vectors[:n], vectors[n:]
    truth = held_out_truth(data, queries, K)
    print(
        f"{n:,} x {dim} {args.data} vectors, {args.queries} held-out queries with exact top-{K} "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    name = f"growth_{n}_{dim}"
    url = server.new_database(name)
    try:
        t0 = time.perf_counter()
        db, enc_id = load_postgres(url, data)
        size.load_seconds = time.perf_counter() - t0
        with connect(db, autocommit=True) as conn:
            size.embeddings_bytes, size.images_bytes = conn.execute(
                "SELECT pg_total_relation_size('imgsearch.embeddings'),"
                " pg_total_relation_size('imgsearch.images')"
            ).fetchone()
        print(
            f"  load: {n:,} rows through load_postgres in {size.load_seconds:.1f} s, "
            f"{size.load_rate:,.0f} rows/s; embeddings table {_mib(size.embeddings_bytes)} MiB "
            f"(with its keys), images table {_mib(size.images_bytes)} MiB",
            flush=True,
        )
        for index in ("halfvec", "binary"):
            if index not in args.skip:
                size.builds.append(build(db, index, memory_root, n, dim))
                tune_and_time(db, enc_id, size, size.builds[-1], queries, truth, args)
        if "partitions" not in args.skip:
            drop_index(db, ENCODER)  # partition() would rebuild it; the build is timed below
            copy = partition(db, PARTITIONS).seconds
            with connect(db, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE imgsearch.embeddings")
            print(f"  partitions: copied into {PARTITIONS} hash partitions in {copy:.1f} s", flush=True)
            size.builds.append(build(db, "partitions", memory_root, n, dim))
            size.builds[-1].copy_seconds = copy
            tune_and_time(db, enc_id, size, size.builds[-1], queries, truth, args)
    finally:
        with contextlib.suppress(Exception):  # its disk back before the next size
            import psycopg

            with psycopg.connect(server.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{server.prefix}{name}" WITH (FORCE)')
    if "faiss" not in args.skip:
        faiss_hnsw(data, queries, truth, size)
    ratios(size)
    return size


def ratios(size: Size) -> None:
    faiss = size.p50("faiss", "in process")
    if not faiss:
        return
    for index in dict.fromkeys(w.index for w in size.ways if w.index != "faiss"):
        parts = [
            f"{way} / faiss p50 {p50 / faiss:.1f}x"
            for way in ("library", "bare")
            if (p50 := size.p50(index, way)) is not None
        ]
        if parts:
            print(f"  {index}: {', '.join(parts)}", flush=True)


# --- report --------------------------------------------------------------------------------------


def _mib(value: int | float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def report(args, sizes: list[Size], memory_how: str, server_line: str) -> None:
    print()
    print(
        f"## Growth: {args.data} vectors, {args.queries} held-out queries, recall@{K} target "
        f"{TARGET}; {platform.machine()}, {os.cpu_count()} cores; {server_line}"
    )
    print()
    print(f"Server memory: {memory_how}.")
    print()
    print(
        "| n | dim | load rows/s | index | build s | index MiB | bytes/vector (index) | "
        "server peak RSS / PSS MiB | maintenance_work_mem MiB | graph outgrew it | "
        "tuned (recall on tune's queries) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        for b in s.builds:
            seconds = f"{b.seconds:.1f}" + (f" (+{b.copy_seconds:.1f} copy)" if b.copy_seconds else "")
            memory = "-" if b.peak_rss is None else f"{_mib(b.peak_rss)} / {_mib(b.peak_pss)}"
            tuned = "-" if b.index == "faiss" else f"{b.setting} ({b.tuned_recall:.3f})"
            print(
                f"| {s.n:,} | {s.dim} | {s.load_rate:,.0f} | {b.index} | {seconds} | "
                f"{_mib(b.size_bytes)}{' (est.)' if b.index == 'faiss' else ''} | "
                f"{b.size_bytes / s.n:,.0f} | {memory} | "
                f"{'-' if b.index == 'faiss' else _mib(b.maintenance_bytes)} | "
                f"{'-' if b.index == 'faiss' else b.outgrew()} | {tuned} |"
            )
    print()
    print(f"| n | dim | index | way | setting | recall@{K} | p50 ms | p95 ms | p50 / faiss p50 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        faiss = s.p50("faiss", "in process")
        for w in s.ways:
            ratio = f"{w.p50_ms / faiss:.1f}x" if faiss and w.index != "faiss" else "-"
            low = " (< 0.95)" if w.recall < TARGET else ""
            print(
                f"| {s.n:,} | {s.dim} | {w.index} | {w.way} | {w.setting} | {w.recall:.3f}{low} | "
                f"{w.p50_ms:.3f} | {w.p95_ms:.3f} | {ratio} |"
            )
    estimates(sizes)


def estimates(sizes: list[Size]) -> None:
    print()
    print(
        "## 10M and 100M, estimated: bytes per vector of the largest size measured of each "
        "dimension times N (linear); build time scaled as n log n from it"
    )
    print()
    print(
        "| dim | from n | index | bytes/vector: embeddings + images + index | 10M GiB | 100M GiB | "
        "build s | 10M build h (est.) | 100M build h (est.) | index > maintenance_work_mem at 10M |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dim in dict.fromkeys(s.dim for s in sizes):
        s = max((s for s in sizes if s.dim == dim), key=lambda s: s.n)
        for b in s.builds:
            if b.index == "faiss":
                continue
            per = (s.embeddings_bytes + s.images_bytes + b.size_bytes) / s.n
            parts = (
                f"{s.embeddings_bytes / s.n:,.0f} + {s.images_bytes / s.n:,.0f} + {b.size_bytes / s.n:,.0f}"
            )
            at = [per * big / 2**30 for big in ESTIMATE_SIZES]
            hours = [b.seconds * big * math.log(big) / (s.n * math.log(s.n)) / 3600 for big in ESTIMATE_SIZES]
            share = PARTITIONS if b.index == "partitions" else 1
            over = "-"
            if b.maintenance_bytes:
                over = "yes" if b.size_bytes / s.n * ESTIMATE_SIZES[0] / share > b.maintenance_bytes else "no"
            print(
                f"| {dim} | {s.n:,} | {b.index} | {parts} = {per:,.0f} | {at[0]:,.1f} | {at[1]:,.0f} | "
                f"{b.seconds:.1f} | {hours[0]:,.2f} | {hours[1]:,.1f} | {over} |"
            )
    print()
    print(
        "(estimates, not measurements: sizes grow linearly in n; an HNSW build grows at least as "
        "n log n, and one whose graph no longer fits maintenance_work_mem is slower than that; the "
        "images table here holds short synthetic paths and no metadata)"
    )


def plot(sizes: list[Size], folder: Path) -> None:
    """build time, index size, p50 and load rate against n: one line per series and dim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    folder.mkdir(parents=True, exist_ok=True)
    dims = list(dict.fromkeys(s.dim for s in sizes))
    styles = dict(zip(dims, ("-o", "--s", ":^", "-.d"), strict=False))

    def series(value: Callable[[Size], float | None]) -> dict[int, tuple[list, list]]:
        out: dict[int, tuple[list, list]] = {}
        for s in sizes:
            v = value(s)
            if v is not None:
                xs, ys = out.setdefault(s.dim, ([], []))
                xs.append(s.n)
                ys.append(v)
        return out

    def built(index: str, attr: str, unit: float = 1) -> Callable[[Size], float | None]:
        def value(s: Size) -> float | None:
            b = next((b for b in s.builds if b.index == index), None)
            return None if b is None else getattr(b, attr) / unit

        return value

    indexes = list(dict.fromkeys(b.index for s in sizes for b in s.builds))
    ways = list(dict.fromkeys((w.index, w.way) for s in sizes for w in s.ways))
    charts = {
        "growth_build": (
            "build s (log)",
            "Index build time",
            {i: built(i, "seconds") for i in indexes},
            True,
        ),
        "growth_index_size": (
            "index MiB (log)",
            "Index size",
            {(f"{i} (estimated)" if i == "faiss" else i): built(i, "size_bytes", 2**20) for i in indexes},
            True,
        ),
        "growth_p50": (
            f"p50 ms at recall@{K} ~{TARGET} (log)",
            "Search p50, one client",
            {
                f"{i} {w}" if i != "faiss" else "faiss HNSWFlat": (lambda s, i=i, w=w: s.p50(i, w))
                for i, w in ways
            },
            True,
        ),
        "growth_load": ("rows/s", "Load through store.write_batch", {"load": lambda s: s.load_rate}, False),
    }
    for name, (ylabel, title, lines, logy) in charts.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for colour, (label, value) in enumerate(lines.items()):
            for dim, (xs, ys) in series(value).items():
                ax.plot(xs, ys, styles[dim], color=f"C{colour % 10}", label=f"{label}, {dim} dims")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
            for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("vectors (log)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, {time.strftime('%Y-%m-%d')}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", metadata={"Software": None})
        plt.close(fig)
    print(f"plots: {', '.join(f'{name}.png' for name in charts)} in {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 512])
    parser.add_argument("--queries", type=int, default=500, help="held-out queries, each timed every way")
    parser.add_argument("--warmup", type=int, default=50, help="queries of the warm-up pass")
    parser.add_argument(
        "--tune-queries", type=int, default=300, help="index tune's queries (as shipped: 300)"
    )
    parser.add_argument("--data", choices=sorted(DATA), default="hard", help="knn.py's generators")
    parser.add_argument("--skip", nargs="*", default=[], choices=ITEMS, help="items left out")
    parser.add_argument("--faiss-threads", type=int, help="faiss.omp_set_num_threads (default: faiss's)")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots here (matplotlib)")
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.dims, args.queries, args.warmup, args.tune_queries = [1000, 2000], [64], 20, 5, 30
    args.skip = list(args.skip)
    if "faiss" not in args.skip and importlib.util.find_spec("faiss") is None:
        args.skip.append("faiss")
        print("faiss: left out (not installed: pip install -e '.[bench]')", flush=True)
    elif "faiss" not in args.skip and args.faiss_threads:
        import faiss

        faiss.omp_set_num_threads(args.faiss_threads)

    home = _support.home(args, "imgsearch-bench-growth-")
    sizes: list[Size] = []
    with _support.database_server(args, home) as server:
        import psycopg

        with psycopg.connect(server.admin_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            pgvector = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
            version += f" + pgvector {pgvector[0]}" if pgvector else ""
        root, how = postmaster_pid(server)
        tool = "psutil" if importlib.util.find_spec("psutil") is not None else "/proc"
        memory_how = (
            f"summed RSS / PSS of the postmaster {root} and its children ({how}), sampled every "
            f"{SAMPLE_S} s from {tool}"
            if root is not None
            else f"not sampled: {how}"
        )
        print(f"PostgreSQL {version}; server memory: {memory_how}", flush=True)
        for dim in args.dims:
            for n in sorted(args.sizes):
                sizes.append(one_size(server, root, n, dim, args))
    report(args, sizes, memory_how, f"PostgreSQL {version}")
    if args.plot is not None:
        plot(sizes, args.plot)


if __name__ == "__main__":
    main()
