"""Re-aligning a CLIP-style model's two towers on a collection's captions (torch, CPU, seeded).

Two square linear maps, one after each tower, start as the identity (the base model exactly)
and are trained with CLIP's symmetric contrastive loss on (caption, picture) pairs from the
stored picture vectors and the encoded captions; a pull back towards the identity keeps what
the base model knew where the captions say nothing.
"""

from __future__ import annotations

import numpy as np

from imgsearch.encoding.projection import Joint, as_stored
from imgsearch.errors import ImgsearchError
from imgsearch.learning.train import TrainOptions, fixed_threads

BATCH = 256
ANCHOR = 1e-2  # weight of ||W - I||^2 per map
TEMPERATURE = 0.05  # CLIP's learnt logit scale ends near 100; a fixed 1/20 trains faster on little data


def fit_joint(
    image_vectors: np.ndarray,
    text_vectors: np.ndarray,
    image_of: np.ndarray,
    base: str,
    options: TrainOptions | None = None,
) -> Joint:
    """Maps for pictures and words, trained so each caption finds its picture and each picture
    one of its captions among the batch's."""
    import torch

    o = options or TrainOptions(lr=1e-3, epochs=30)
    if len(set(image_of.tolist())) < 2:
        raise ImgsearchError("Training on captions needs captions of at least two pictures.")
    with fixed_threads():
        torch.manual_seed(o.seed)
        rng = np.random.default_rng(o.seed)
        images = torch.from_numpy(as_stored(image_vectors))
        texts = torch.from_numpy(np.asarray(text_vectors, np.float32))
        owners = torch.from_numpy(np.asarray(image_of, np.int64))
        d = images.shape[1]
        eye = torch.eye(d)
        w_image = torch.nn.Parameter(eye.clone())
        w_words = torch.nn.Parameter(eye.clone())
        optimiser = torch.optim.Adam([w_image, w_words], lr=o.lr)
        steps = max(1, o.epochs * int(np.ceil(len(texts) / BATCH)))
        for _ in range(steps):
            rows = torch.from_numpy(rng.choice(len(texts), size=min(BATCH, len(texts)), replace=False))
            pictures, which = torch.unique(owners[rows], return_inverse=True)
            t = torch.nn.functional.normalize(texts[rows] @ w_words, dim=1)
            p = torch.nn.functional.normalize(images[pictures] @ w_image, dim=1)
            logits = t @ p.T / TEMPERATURE  # (captions, pictures)
            text_loss = torch.nn.functional.cross_entropy(logits, which)
            # each picture against the batch's captions: its own captions share the target
            target = torch.zeros(len(pictures), len(rows))
            target[which, torch.arange(len(rows))] = 1.0
            image_loss = torch.nn.functional.cross_entropy(logits.T, target / target.sum(1, keepdim=True))
            anchor = ((w_image - eye) ** 2).sum() + ((w_words - eye) ** 2).sum()
            loss = (text_loss + image_loss) / 2 + ANCHOR * anchor
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return Joint(
        base, w_image.detach().numpy().astype(np.float32), w_words.detach().numpy().astype(np.float32)
    )
