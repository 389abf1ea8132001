"""Search by words: how long a text query takes (encoding the words + the index search), warm
and cold, on the CPU, for a tiny CLIP-style model and for a ViT-B/32-sized one (random weights:
the time of a forward pass does not depend on what the weights learnt).

    python benchmarks/text_query.py [--rows 20000] [--queries 200] [--cold 5]
    python benchmarks/text_query.py --smoke   # the tiny model only, 200 rows, 5 queries, 1 cold

Each model gets its own random-weight checkpoint in a temporary model cache, is exported to
ONNX Runtime once (timed), and gets `--rows` random unit vectors stored under its identity with
an HNSW index (tuned like `index create`). Warm: one process, the model loaded, queries of
varied words; encode alone and encode + search. Cold: a new interpreter per query, from
`import imgsearch` to the answer (and whether torch was imported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402

TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
WORDS = ["red", "bicycle", "snow", "a dog", "on the beach", "at night", "old", "castle", "two", "cats"]


def checkpoint(folder: Path, architecture: str | None) -> Path:
    """A random-weight open_clip model in the hub's layout (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    if architecture is None:
        model, cfg = open_clip.CLIP(**TINY_CFG), TINY_CFG
    else:
        model, cfg = open_clip.create_model(architecture), open_clip.get_model_config(architecture)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors"
    )
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    return folder


def queries(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 5))) for _ in range(n)]


def stored(url: str | None, name: str, rows: int) -> None:
    """`rows` random unit vectors under the model's identity, and its tuned HNSW index."""
    from imgsearch.db import store
    from imgsearch.db.connection import connect
    from imgsearch.db.indexes import create_index
    from imgsearch.db.schema import open_database
    from imgsearch.encoding.registry import get_encoder

    encoder = get_encoder(name, "cpu", backend="onnx")
    db = open_database(url)
    rng = np.random.default_rng(1)
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, encoder.identity)
        for start in range(0, rows, 2000):
            stop = min(start + 2000, rows)
            data = rng.standard_normal((stop - start, encoder.dimension)).astype(np.float32)
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            batch = [
                store.ImageRow(f"/bench/{name}/{i}.jpg", f"{name}{i}", 1, 8, 8, "JPEG", 0.0)
                for i in range(start, stop)
            ]
            store.write_batch(conn, enc_id, batch, data)
        conn.execute("VACUUM ANALYZE imgsearch.embeddings")
    create_index(db, name, "hnsw")


def warm(url: str | None, name: str, n: int, backend: str) -> dict:
    import imgsearch

    texts = queries(n)
    index = imgsearch.open(url, model=name, backend=backend)
    encoder = index.encoder()
    index.search(text=texts[0], k=10)  # the first query: loads and compiles
    encode, total = [], []
    for text in texts:
        t0 = time.perf_counter()
        encoder.text.encode_text([text])
        encode.append(time.perf_counter() - t0)
    for text in texts:
        t0 = time.perf_counter()
        index.search(text=text, k=10)
        total.append(time.perf_counter() - t0)
    index.close()
    return {"encode": _ms(encode), "search": _ms(total)}


def cold(url: str | None, name: str, runs: int) -> dict:
    code = (
        "import sys, time; t0 = time.perf_counter(); import imgsearch; "
        f"i = imgsearch.open({url!r}, model={name!r}, backend='onnx'); "
        "r = i.search(text='a red bicycle in the snow', k=10); "
        "print(time.perf_counter() - t0, 'torch' in sys.modules, len(r.results))"
    )
    inner, outer, torch_seen = [], [], False
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
        )
        outer.append(time.perf_counter() - t0)
        seconds, torch_loaded, _ = out.stdout.split()
        inner.append(float(seconds))
        torch_seen = torch_seen or torch_loaded == "True"
    return {
        "in_process_ms": statistics.median(inner) * 1000,
        "process_ms": statistics.median(outer) * 1000,
        "torch_imported": torch_seen,
    }


def _ms(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold", type=int, default=5)
    _support.add_arguments(parser)
    args = parser.parse_args()
    models = [("tiny-clip", None), ("clip-vit-b-32", "ViT-B-32")]
    if args.smoke:
        args.rows, args.queries, args.cold, models = 200, 5, 1, models[:1]
    home = _support.home(args, "imgsearch-text-bench-")
    # the database: --database-url, IMGSEARCH_DATABASE_URL, or the embedded server in the home
    url = args.database_url or os.environ.get("IMGSEARCH_DATABASE_URL")
    try:
        run(args, home, url, models)
    finally:
        if url is None:
            from imgsearch.db import embedded

            embedded.stop(home)


def run(args: argparse.Namespace, home: Path, url: str | None, models: list) -> None:
    from imgsearch.encoding import clip_catalog
    from imgsearch.encoding.registry import get_encoder

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.rows:,} stored vectors"
    )
    for name, architecture in models:
        clip_catalog.install(name, checkpoint(home / "checkpoints" / name, architecture))
        t0 = time.perf_counter()
        get_encoder(name, "cpu", backend="onnx")
        export_s = time.perf_counter() - t0
        stored(url, name, args.rows)
        result = {
            "export_s": export_s,
            "onnx": warm(url, name, args.queries, "onnx"),
            "torch": warm(url, name, args.queries, "torch"),
            "cold": cold(url, name, args.cold),
        }
        c = result["cold"]
        print(f"{name}: ONNX export {export_s:.1f} s")
        for runtime in ("onnx", "torch"):
            e, q = result[runtime]["encode"], result[runtime]["search"]
            print(
                f"  warm, {runtime:5}: encode p50 {e['p50_ms']:.2f} ms (p95 {e['p95_ms']:.2f}), "
                f"encode + search p50 {q['p50_ms']:.2f} ms (p95 {q['p95_ms']:.2f})"
            )
        print(
            f"  cold (a new interpreter, median of {args.cold}): {c['in_process_ms']:.0f} ms from "
            f"import to answer, {c['process_ms']:.0f} ms the process; torch imported: {c['torch_imported']}"
        )


if __name__ == "__main__":
    main()
