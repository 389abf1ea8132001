"""The Ray engine (`imgsearch ingest --engine ray`, extra `imgsearch[ray]`).

The driver plans exactly as the local engine does (only new or changed files), then Ray Data
decodes in CPU tasks and encodes in an actor pool (one actor per GPU, or N CPU actors with
ONNX Runtime), and the driver writes each batch in one transaction with the local engine's
writer (same upserts, errors table and summary). The decode stage (`loading.load`) and the
writer are the local engine's own; only where they run differs. Ray may fuse decoding into
the encoding actors when both need the same resources (one CPU each).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.config import Settings
from imgsearch.db import store
from imgsearch.encoding.encoder import Encoder, Preprocessor
from imgsearch.errors import ImgsearchError
from imgsearch.ingest.loading import Loaded, load
from imgsearch.ingest.run import Run, failure
from imgsearch.sources import Failure, Source

DECODE_BATCH = 16


def start_ray(address: str | None) -> None:
    """Connect to `address` ("auto", "ray://...") or start a local Ray, quietly."""
    try:
        import ray
    except ImportError:
        raise ImgsearchError("The Ray engine needs Ray: pip install 'imgsearch[ray]'.") from None
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # its C++ notices on stderr
    warnings.filterwarnings("ignore", message=".*concurrent actors.*")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    import ray.data

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


class RayRun(Run):
    """A run whose decoding and encoding are Ray Data's (`options.address`: "auto",
    "ray://host:10001", or None: a local Ray)."""

    def load_and_encode(self, planned: Iterator[tuple[Source, store.KnownImage | None]]) -> None:
        import ray
        import ray.data

        rows = [_planned_row(source, known) for source, known in planned]
        self.finding = False
        if not rows or self.stop.is_set():
            return
        start_ray(self.options.address)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if self.encoder.device_type == "cuda" else 0
        spec = {
            "name": self.encoder.name,
            "device": "cuda" if gpus else "cpu",
            "weights": self.encoder.weights_path,
            "backend": "torch" if gpus else self.settings.backend,
            "identity": self.encoder.identity,
            "finetuned_size": _finetuned_size(self.encoder),
        }
        ds: ray.data.Dataset = ray.data.from_items(
            rows, override_num_blocks=max(1, min(math.ceil(len(rows) / DECODE_BATCH), 10_000))
        )
        decode = functools.partial(
            _decode_batch,
            preprocessor=self.encoder.preprocessor(),
            # the limits on reading and decoding go to the cluster, never the secrets
            settings=self.settings.model_copy(
                update={"database_url": None, "replica_url": None, "api_token": None}
            ),
            augment=self.augment,
        )
        ds = ds.map_batches(decode, batch_size=DECODE_BATCH, batch_format="numpy")
        ds = ds.map_batches(
            _EncodeActor,
            batch_size=self.batch_size,
            batch_format="numpy",
            fn_constructor_kwargs={"spec": spec},
            compute=ray.data.ActorPoolStrategy(size=max(1, gpus or self.workers)),
            num_gpus=1 if gpus else 0,
        )
        for batch in ds.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
            for i in range(len(batch["location"])):
                self.add(self._item({key: column[i] for key, column in batch.items()}))
            if self.stop.is_set():
                break

    def _item(self, r: dict[str, Any]) -> Loaded | Failure:
        source = Source(str(r["location"]), json.loads(str(r["metadata"])))
        if r["error_kind"]:
            return Failure(str(r["display"]), str(r["error_kind"]), str(r["error_message"]))
        row = store.ImageRow(
            source.location,
            str(r["sha256"]),
            int(r["byte_size"]),
            _positive(r["width"]),
            _positive(r["height"]),
            str(r["format"]) or None,
            None if math.isnan(r["mtime"]) else float(r["mtime"]),
            source.metadata,
        )
        if not r["needs_encode"]:
            return Loaded(source, row, None, existed=True)
        self.report.encoded += 1
        return Loaded(
            source,
            row,
            (),
            existed=bool(r["existed"]),
            vector=np.asarray(r["vector"], np.float32),
            extra_vectors=list(np.asarray(r["extra_vectors"], np.float32)),
            warning=str(r["warning"]) or None,
        )


def _planned_row(source: Source, known: store.KnownImage | None) -> dict[str, Any]:
    return {
        "location": source.location,
        "metadata": json.dumps(source.metadata),
        "known_sha256": known.sha256 if known else "",
        "known_has_vector": bool(known and known.has_vector),
        "known": known is not None,
    }


def _decode_batch(
    batch: dict[str, np.ndarray], preprocessor: Preprocessor, settings: Settings, augment: int
) -> dict[str, np.ndarray]:
    """Ray task: the local engine's decode stage over a batch of planned rows. Inputs are
    fixed-shape uint8 columns (zeros where nothing is to be encoded)."""
    from imgsearch.sources import display_path

    n = len(batch["location"])
    out: dict[str, list] = {
        key: []
        for key in (
            "location",
            "metadata",
            "display",
            "error_kind",
            "error_message",
            "warning",
            "needs_encode",
            "existed",
            "sha256",
            "byte_size",
            "width",
            "height",
            "format",
            "mtime",
        )
    }
    inputs = [np.zeros((n, *shape), np.uint8) for shape in preprocessor.shapes]
    extras = [np.zeros((n, augment, *shape), np.uint8) for shape in preprocessor.shapes]
    for i in range(n):
        location = str(batch["location"][i])
        source = Source(location, json.loads(str(batch["metadata"][i])))
        known = (
            store.KnownImage(
                0, 0, None, str(batch["known_sha256"][i]), bool(batch["known_has_vector"][i]), {}
            )
            if batch["known"][i]
            else None
        )
        values = {
            "location": location,
            "metadata": str(batch["metadata"][i]),
            "display": display_path(location),
            "error_kind": "",
            "error_message": "",
            "warning": "",
            "needs_encode": False,
            "existed": known is not None,
            "sha256": "",
            "byte_size": 0,
            "width": -1,
            "height": -1,
            "format": "",
            "mtime": math.nan,
        }
        try:
            loaded = load(source, known, preprocessor, preprocessor.min_decode_size, settings, augment)
        except Exception as exc:  # one bad file costs only itself
            f = failure(source, exc)
            values.update(error_kind=f.kind, error_message=f.message)
        else:
            row = loaded.row
            values.update(
                sha256=row.sha256,
                byte_size=row.byte_size,
                width=row.width or -1,
                height=row.height or -1,
                format=row.format or "",
                mtime=math.nan if row.mtime is None else row.mtime,
                existed=loaded.existed,
                needs_encode=loaded.inputs is not None,
                warning=loaded.warning or "",
            )
            for j, part in enumerate(loaded.inputs or ()):
                inputs[j][i] = part
            for v, copy in enumerate(loaded.extras):
                for j, part in enumerate(copy):
                    extras[j][i, v] = part
        for key, value in values.items():
            out[key].append(value)
    result = {key: np.asarray(values) for key, values in out.items()}
    result.update({f"input{j}": array for j, array in enumerate(inputs)})
    result.update({f"extras{j}": array for j, array in enumerate(extras)})
    return result


def _finetuned_size(encoder: Encoder) -> int | None:
    """The input size of a fine-tuned encoder (`train --finetune`: not a registered model, so a
    worker builds it from its weights file), else None."""
    from imgsearch.encoding.registry import base_names

    if encoder.name in base_names() or "+" in encoder.name or encoder.weights_path is None:
        return None
    crop = getattr(getattr(encoder, "preprocessing", None), "crop", None)
    return int(crop) if crop else None


class _EncodeActor:
    """Ray actor: loads the encoder once and encodes the rows that need it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from imgsearch.encoding.registry import finetuned_encoder, get_encoder

        self.encoder: Encoder = (
            finetuned_encoder(
                spec["name"], Path(spec["weights"]), spec["finetuned_size"], spec["device"], spec["backend"]
            )
            if spec.get("finetuned_size")
            else get_encoder(spec["name"], spec["device"], spec["weights"], spec["backend"])
        )
        if self.encoder.identity != spec["identity"]:
            raise ImgsearchError(
                f"A Ray worker's {spec['name']} is not the driver's: "
                f"{self.encoder.identity} vs {spec['identity']}."
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n, dim = len(batch["location"]), self.encoder.dimension
        parts = sorted(key for key in batch if key.startswith("input"))
        extra_parts = sorted(key for key in batch if key.startswith("extras"))
        augment = batch[extra_parts[0]].shape[1] if extra_parts else 0
        todo = np.flatnonzero(batch["needs_encode"])
        vectors = np.zeros((n, dim), np.float32)
        extra_vectors = np.zeros((n, augment, dim), np.float32)
        if len(todo):
            vectors[todo] = self.encoder.encode_batch(tuple(batch[p][todo] for p in parts))
            if augment:
                flat = tuple(batch[p][todo].reshape(-1, *batch[p].shape[2:]) for p in extra_parts)
                extra_vectors[todo] = self.encoder.encode_batch(flat).reshape(len(todo), augment, dim)
        result = {k: v for k, v in batch.items() if k not in parts and k not in extra_parts}
        result["vector"] = vectors
        result["extra_vectors"] = extra_vectors
        return result


def _positive(value: Any) -> int | None:
    return int(value) if int(value) >= 0 else None
