"""The ONNX Runtime backend: an exported encoder graph, loaded from the model cache without torch.

The cache lives in `<imgsearch home>/models`: `<key>.onnx` (uint8 NHWC pictures in, unit
vectors out) and `<key>.json` (the encoder's identity, its preprocessing and the sha256 of the
graph). The JSON is written last, so a half-written export has none; a graph whose hash does
not match, or that ONNX Runtime cannot load, is treated as missing and exported again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from imgsearch import config
from imgsearch.encoding.catalog import file_sha256
from imgsearch.encoding.encoder import EncoderIdentity, Inputs, SingleModelEncoder, TextEncoder
from imgsearch.encoding.preprocess import Preprocessing
from imgsearch.errors import ImgsearchError
from imgsearch.safe_files import file_name, inside

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graph would change for the same encoder
INPUT, OUTPUT = "images", "vectors"
TOKENS = "tokens"  # a text tower's input: (n, context) int64 token ids


def cache_dir(home: Path | None = None) -> Path:
    """The model cache below the imgsearch `home` (exported graphs; open_clip checkpoints in
    `open_clip/`). Without `home`, the settings' (IMGSEARCH_HOME) are loaded: the one place
    below the entry points that still reads them itself, as model names are looked up in the
    cache from everywhere a model is named (`clip_catalog.is_clip`); an Index passes its own."""
    return (home if home is not None else config.load().home) / "models"


def cache_paths(key: str) -> tuple[Path, Path]:
    """(graph, metadata) files of a cache key (a key that is not one plain file name, as a model
    name or digest taken from a database row or a `--from` folder might be, is hashed)."""
    folder, name = cache_dir(), file_name(key)
    return inside(folder, f"{name}.onnx"), inside(folder, f"{name}.json")


def cores() -> int:
    """CPU cores this process may use: OMP_NUM_THREADS when set (Ray sets it to a worker's
    CPUs, so that actors sharing a machine do not oversubscribe it), else the affinity mask."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        return int(threads)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _session(graph: Path, device: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cores()
    options.inter_op_num_threads = 1
    # No busy-waiting between runs: it costs a search about 1 ms but gives the ingest's
    # decoding threads the cores back (benchmarks/ingest.py: 91 vs 83 images/s on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ImgsearchError(
                "This ONNX Runtime has no CUDA provider (pip install "
                "onnxruntime-gpu), or use --backend torch on the GPU."
            )
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(graph), options, providers=providers)


class OnnxEncoder(SingleModelEncoder):
    """An exported encoder run by ONNX Runtime (CPU, or CUDA where its provider exists)."""

    def __init__(
        self, identity: EncoderIdentity, preprocessing: Preprocessing, graph: Path, device: str = "cpu"
    ) -> None:
        self.name, self.dimension = identity.name, identity.dimension
        self.weights_id = identity.weights
        self.preprocessing = preprocessing
        self.graph = graph
        self.device = device
        self.session = _session(graph, device)

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        (batch,) = inputs
        if len(batch) == 0:
            return np.zeros((0, self.dimension), np.float32)
        vectors = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch)})[0]
        return vectors.astype(np.float32, copy=False)


def _write_record(key: str, fields: dict) -> None:
    """Record a freshly written graph (atomically; the graph must be in place already)."""
    graph, meta = cache_paths(key)
    record = {"export_version": EXPORT_VERSION, **fields, "sha256": file_sha256(graph)}
    tmp = meta.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, meta)


def _read_record(key: str) -> dict | None:
    """The record of a cached graph; None when it is missing; ValueError when stale."""
    graph, meta = cache_paths(key)
    if not graph.exists() or not meta.exists():
        return None
    record = json.loads(meta.read_text())
    if record.get("export_version") != EXPORT_VERSION or record["sha256"] != file_sha256(graph):
        raise ValueError("the graph does not match its record")
    return record


def _forget(key: str, exc: Exception) -> None:
    """A damaged or stale cache entry is rebuilt, never trusted."""
    graph, meta = cache_paths(key)
    log.warning("imgsearch: the cached ONNX model %s is unusable (%s); exporting it again", graph, exc)
    for path in (meta, graph):
        path.unlink(missing_ok=True)


def write_metadata(key: str, identity: EncoderIdentity, preprocessing: Preprocessing) -> None:
    """Record a freshly written image graph."""
    _write_record(key, {"identity": asdict(identity), "preprocessing": asdict(preprocessing)})


def load_cached(key: str, device: str = "cpu") -> OnnxEncoder | None:
    """The cached encoder of `key`, or None when it is missing, stale or damaged."""
    try:
        record = _read_record(key)
        if record is None:
            return None
        preprocessing = Preprocessing(
            **{
                **record["preprocessing"],
                "mean": tuple(record["preprocessing"]["mean"]),
                "std": tuple(record["preprocessing"]["std"]),
            }
        )
        identity = EncoderIdentity(**record["identity"])
        if preprocessing.identity != identity.preprocessing:
            raise ValueError("the preprocessing changed since the export")
        return OnnxEncoder(identity, preprocessing, cache_paths(key)[0], device)
    except ImgsearchError:
        raise
    except Exception as exc:
        _forget(key, exc)
        return None


class OnnxTextEncoder(TextEncoder):
    """An exported text tower run by ONNX Runtime: token ids in, unit vectors out."""

    def __init__(self, graph: Path, dimension: int, context_length: int, device: str = "cpu") -> None:
        self.dimension, self.context_length, self.device = dimension, context_length, device
        self.session = _session(graph, device)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        vectors = self.session.run([OUTPUT], {TOKENS: np.ascontiguousarray(tokens, dtype=np.int64)})[0]
        return vectors.astype(np.float32, copy=False)


def text_key(key: str) -> str:
    """The cache key of the text tower exported beside the image graph of `key`."""
    return f"{key}.text"


def write_text_metadata(key: str, dimension: int, context_length: int) -> None:
    """Record a freshly written text graph beside the image graph of `key`."""
    _write_record(text_key(key), {"dimension": dimension, "context_length": context_length})


def load_cached_text(key: str, device: str = "cpu") -> OnnxTextEncoder | None:
    """The cached text tower of `key`, or None when it is missing, stale or damaged."""
    try:
        record = _read_record(text_key(key))
        if record is None:
            return None
        graph = cache_paths(text_key(key))[0]
        return OnnxTextEncoder(graph, int(record["dimension"]), int(record["context_length"]), device)
    except ImgsearchError:
        raise
    except Exception as exc:
        _forget(text_key(key), exc)
        return None
