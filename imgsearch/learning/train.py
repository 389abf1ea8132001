"""Training a projection head on stored vectors and labels (torch, CPU, seeded).

Losses: batch-hard triplet (each anchor's farthest positive against its nearest negative in
the batch) or supervised contrastive (Khosla et al. 2020). Batches hold P classes x K images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsearch.encoding.projection import Head
from imgsearch.errors import ImgsearchError

LOSSES = ("triplet", "supcon")
TRAIN_THREADS = 2  # fixed: how every sum is split between threads, hence the weights, depends on it


@contextlib.contextmanager
def fixed_threads(n: int = TRAIN_THREADS) -> Iterator[None]:
    """Run torch on exactly `n` threads (whatever the cores or OMP_NUM_THREADS), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainOptions:
    dim: int = 256
    hidden: int = 512
    epochs: int = 60
    loss: str = "supcon"
    lr: float = 3e-4
    classes_per_batch: int = 8
    per_class: int = 16
    margin: float = 0.2  # triplet
    temperature: float = 0.1  # supcon
    seed: int = 0


def stratified_split(
    labels: Sequence[str], test_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): each class split in the same proportion; no row in both.
    (Not sklearn's train_test_split(stratify=...): it refuses a class of one image, and a
    held-out part with fewer rows than there are classes.)"""
    if not 0.0 < test_fraction < 1.0:
        raise ImgsearchError("The held-out fraction must be between 0 and 1.")
    rng = np.random.default_rng(seed)
    names = np.asarray(labels)
    train: list[int] = []
    test: list[int] = []
    for label in np.unique(names):
        rows = rng.permutation(np.flatnonzero(names == label))
        cut = int(round(len(rows) * test_fraction))
        test.extend(rows[:cut])
        train.extend(rows[cut:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))


def train_head(
    vectors: np.ndarray, labels: Sequence[str], base: str, options: TrainOptions | None = None
) -> Head:
    """A head trained so that images of one label end up close together (on `TRAIN_THREADS`
    threads, so the same at any thread count)."""
    with fixed_threads():
        return _train_head(vectors, labels, base, options)


def _train_head(vectors: np.ndarray, labels: Sequence[str], base: str, options: TrainOptions | None) -> Head:
    import torch
    import torch.nn.functional as F

    o = options or TrainOptions()
    if o.loss not in LOSSES:
        raise ImgsearchError(f"--loss must be one of {', '.join(LOSSES)}.")
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ImgsearchError("Training needs at least two labels.")
    torch.manual_seed(o.seed)
    rng = np.random.default_rng(o.seed)
    x = torch.from_numpy(np.asarray(vectors, np.float32))
    target = torch.from_numpy(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], o.hidden), torch.nn.ReLU(), torch.nn.Linear(o.hidden, o.dim)
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=1e-4)
    by_class = [np.flatnonzero(y == c) for c in range(len(classes))]
    steps = max(1, len(y) // (o.classes_per_batch * o.per_class))
    for _ in range(o.epochs):
        for _ in range(steps):
            chosen = rng.choice(len(classes), min(o.classes_per_batch, len(classes)), replace=False)
            rows = np.concatenate(
                [rng.choice(by_class[c], o.per_class, replace=len(by_class[c]) < o.per_class) for c in chosen]
            )
            z = F.normalize(model(x[rows]), dim=1)
            loss = (
                _triplet(z, target[rows], o.margin)
                if o.loss == "triplet"
                else supcon(z, target[rows], o.temperature)
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    first: Any = model[0]
    second: Any = model[2]
    return Head(
        base,
        first.weight.detach().numpy().T.copy(),
        first.bias.detach().numpy().copy(),
        second.weight.detach().numpy().T.copy(),
        second.bias.detach().numpy().copy(),
    )


def _triplet(z, labels, margin: float):
    import torch

    distance = 1.0 - z @ z.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    hardest_positive = distance.masked_fill(~same | eye, -1.0).max(dim=1).values
    hardest_negative = distance.masked_fill(same, 3.0).min(dim=1).values
    return torch.relu(hardest_positive - hardest_negative + margin).mean()


def supcon(z, labels, temperature: float):
    """Supervised contrastive loss of normalised rows `z` (each row's positives: same label)."""
    import torch

    logits = z @ z.T / temperature
    eye = torch.eye(len(labels), dtype=torch.bool)
    logits = logits.masked_fill(eye, -1e9)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    counts = positives.sum(dim=1).clamp(min=1)
    return -((log_prob * positives).sum(dim=1) / counts).mean()
