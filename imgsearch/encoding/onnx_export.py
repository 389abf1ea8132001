"""Exporting a torch encoder to ONNX, once per cache key (needs torch; running it does not).

The graph takes the same uint8 NHWC batch that `Encoder.preprocess` makes and does what the
torch runtime does on its device: normalise, run the model, L2-normalise. Before it is kept,
its vectors are checked against torch's on a test batch.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock

from imgsearch.encoding.encoder import TextEncoder
from imgsearch.encoding.onnx_runtime import (
    INPUT,
    OUTPUT,
    TOKENS,
    OnnxEncoder,
    OnnxTextEncoder,
    cache_paths,
    load_cached,
    load_cached_text,
    text_key,
    write_metadata,
    write_text_metadata,
)
from imgsearch.encoding.torch_runtime import TorchEncoder
from imgsearch.errors import ImgsearchError

OPSET = 17
MIN_COSINE = 0.9999  # torch and ONNX Runtime vectors must agree this well


class _Graph(torch.nn.Module):
    """uint8 NHWC pictures -> unit vectors, as TorchEncoder computes them."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, encoder: TorchEncoder) -> None:
        super().__init__()
        self.model = encoder.module
        self.register_buffer("mean", encoder._mean.detach().cpu().clone())
        self.register_buffer("std", encoder._std.detach().cpu().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return F.normalize(self.model(x).float().flatten(1), dim=1)


def export(encoder: TorchEncoder, key: str, device: str = "cpu") -> OnnxEncoder:
    """The ONNX encoder of `key`, exported from `encoder` unless another process just did (a
    CLIP-style encoder's text tower too)."""
    exported = _export_image(encoder, key, device)
    if encoder.text is not None:
        exported.text = export_text(encoder.text, key, device)
    return exported


def _export_image(encoder: TorchEncoder, key: str, device: str) -> OnnxEncoder:
    graph, _ = cache_paths(key)
    graph.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(graph.with_suffix(".lock")), timeout=600):
        cached = load_cached(key, device)
        if cached is not None:
            return cached
        crop = encoder.preprocessing.crop
        module = _Graph(encoder).to("cpu").eval()
        _write_graph(module, torch.zeros(1, crop, crop, 3, dtype=torch.uint8), INPUT, graph)
        write_metadata(key, encoder.identity, encoder.preprocessing)
    exported = OnnxEncoder(encoder.identity, encoder.preprocessing, graph, device)
    _check_agreement(encoder, exported, graph)
    return exported


def export_text(text: TextEncoder, key: str, device: str = "cpu") -> OnnxTextEncoder:
    """The text tower of `key` on ONNX Runtime, exported (and checked against torch) unless it
    already is."""
    graph, _ = cache_paths(text_key(key))
    with FileLock(str(graph.with_suffix(".lock")), timeout=600):
        cached = load_cached_text(key, device)
        if cached is not None:
            return cached
        module = text.module.to("cpu").eval()  # type: ignore[attr-defined]
        _write_graph(module, torch.zeros(1, text.context_length, dtype=torch.long), TOKENS, graph)
        write_text_metadata(key, text.dimension, text.context_length)
    exported = OnnxTextEncoder(graph, text.dimension, text.context_length, device)
    from imgsearch.encoding.clip_tokenizer import tokenizer

    tokens = tokenizer(text.context_length)(["a photo of a red bicycle in the snow", "x", "night"])
    worst = float((text.encode_tokens(tokens) * exported.encode_tokens(tokens)).sum(axis=1).min())
    if worst < MIN_COSINE:
        for path in cache_paths(text_key(key)):
            path.unlink(missing_ok=True)
        raise ImgsearchError(f"The ONNX export of the text tower disagrees with torch (cosine {worst:.5f}).")
    return exported


@contextlib.contextmanager
def _exporting() -> Iterator[None]:
    """No gradients, no exporter notes on constant folding, and no fused attention kernel
    (`_native_multi_head_attention`, which ONNX has no operator for)."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _write_graph(module: torch.nn.Module, sample: torch.Tensor, input_name: str, graph: Path) -> None:
    """Export `module` (batch size free) to a temporary file, then move it to `graph`."""
    tmp = graph.with_suffix(f".onnx.{os.getpid()}.tmp")
    try:
        with _exporting():
            torch.onnx.export(
                module,
                (sample,),
                str(tmp),
                input_names=[input_name],
                output_names=[OUTPUT],
                dynamic_axes={input_name: {0: "n"}, OUTPUT: {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, graph)
    finally:
        tmp.unlink(missing_ok=True)


def _check_agreement(torch_encoder: TorchEncoder, onnx_encoder: OnnxEncoder, graph: Path) -> None:
    crop = torch_encoder.preprocessing.crop
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (4, crop, crop, 3), dtype=np.uint8)
    expected = torch_encoder.encode_batch((batch,))
    got = onnx_encoder.encode_batch((batch,))
    worst = float((expected * got).sum(axis=1).min())
    if worst < MIN_COSINE:
        for path in cache_paths(graph.stem):
            path.unlink(missing_ok=True)
        raise ImgsearchError(
            f"The ONNX export of {torch_encoder.name} disagrees with torch "
            f"(cosine {worst:.5f}); use --backend torch."
        )
