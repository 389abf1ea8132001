"""Latency and throughput of `POST /api/search` (a 640x480 JPEG upload) at 1, 4 and 16
concurrent clients, against 10,000 indexed images with an HNSW index.

    python benchmarks/api.py [--images 10000] [--real 1000] [--seconds 15]
    python benchmarks/api.py --smoke      # 60 images (6 real), 1 and 2 clients, half a second each

The index holds `--real` 640x480 JPEGs made from the sample photos (ingested for real) and
synthetic unit vectors for the rest (rows of their own; search cost does not depend on where a
vector came from). The server (`imgsearch serve`'s app under uvicorn, one worker) runs in its
own process; the clients are threads of this one, on the same 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from sample_images import camera_jpeg, make_camera_jpegs, source_photos  # noqa: E402

SIZE = (640, 480)


def fill(url: str, real: int, total: int, folder: Path, elpv: bool) -> None:
    import imgsearch
    from imgsearch.db import store
    from imgsearch.db.connection import Database, connect
    from imgsearch.db.indexes import create_index

    index = imgsearch.open(url, device="cpu")
    index.ingest(make_camera_jpegs(folder, real, SIZE, prefix="vga", elpv=elpv))
    encoder = index.encoder()
    rng = np.random.default_rng(0)
    with connect(Database(url), autocommit=True) as conn:
        enc_id = store.encoder_id(conn, encoder.identity)
        for start in range(real, total, 1000):
            rows, vectors = [], []
            for i in range(start, min(total, start + 1000)):
                v = np.maximum(rng.normal(size=encoder.dimension), 0).astype(np.float32)
                vectors.append(v / np.linalg.norm(v))
                rows.append(
                    store.ImageRow(
                        location=f"/synthetic/{i:06d}.jpg",
                        sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                        byte_size=0,
                        width=640,
                        height=480,
                        format="JPEG",
                        mtime=0.0,
                        metadata={},
                    )
                )
            store.write_batch(conn, enc_id, rows, vectors)
    create_index(index.db, encoder.name)
    index.close()


def breakdown(url: str, query: bytes, repeats: int = 50) -> dict[str, float]:
    """Milliseconds of each step of one search, in this process, one at a time."""
    from pgvector import HalfVector

    import imgsearch
    from imgsearch.db import store
    from imgsearch.db.nearest import nearest
    from imgsearch.encoding.decode import decode_image

    index = imgsearch.open(url, device="cpu")
    encoder = index.encoder()
    steps = {"decode + preprocess": 0.0, "encode": 0.0, "HNSW query": 0.0}
    for _ in range(repeats):
        t0 = time.perf_counter()
        inputs = encoder.preprocess(decode_image(query, encoder.min_decode_size).image)
        t1 = time.perf_counter()
        vector = encoder.encode_batch(tuple(np.stack([a]) for a in inputs))[0]
        t2 = time.perf_counter()
        with index.reading() as conn:
            enc_id = store.find_encoder_id(conn, encoder.identity)
            nearest(conn, enc_id, encoder.dimension, HalfVector(vector), 20)
        t3 = time.perf_counter()
        for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            steps[name] += seconds * 1000 / repeats
    index.close()
    return steps


def run_clients(base: str, query: bytes, clients: int, seconds: float) -> tuple[list[float], float]:
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = http.post("/api/search", files={"file": ("q.jpg", query, "image/jpeg")}, data={"k": "20"})
                elapsed = time.perf_counter() - t0
                r.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(latencies) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    _support.add_arguments(parser)
    args = parser.parse_args()
    repeats, warm_up, folder = 50, 2.0, HERE / "out" / "vga"
    if args.smoke:
        args.images, args.real, args.seconds, args.clients = 60, 6, 0.5, [1, 2]
        repeats, warm_up, folder = 3, 0.5, None

    home = _support.home(args, "imgsearch-bench-api-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _support.database_server(args, home) as server:
        t0 = time.perf_counter()
        fill(server.url, args.real, args.images, folder or home / "vga", not args.smoke)
        print(f"{args.images:,} images indexed ({args.real:,} real) in {time.perf_counter() - t0:.0f}s")
        env = {**os.environ, "IMGSEARCH_DATABASE_URL": server.url, "IMGSEARCH_DEVICE": "cpu"}
        uv = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "imgsearch.service.main:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        query = camera_jpeg(source_photos(not args.smoke)[5], seed=424242, size=SIZE)
        try:
            _wait(base)
            run_clients(base, query, 1, warm_up)
            parts = breakdown(server.url, query, repeats)
            print(
                "one search, step by step in-process: "
                + ", ".join(f"{name} {ms:.1f} ms" for name, ms in parts.items())
            )
            baseline = None
            for clients in args.clients:
                latencies, rate = run_clients(base, query, clients, args.seconds)
                p50 = statistics.median(latencies) * 1000
                p95 = float(np.percentile(latencies, 95)) * 1000
                baseline = baseline or rate
                print(
                    f"{clients:>3} clients: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                    f"{rate:6.1f} req/s  ({rate / baseline:.2f}x one client)"
                )
        finally:
            uv.terminate()
            uv.wait(30)


def _wait(base: str) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
