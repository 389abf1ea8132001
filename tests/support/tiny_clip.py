"""A tiny open_clip CLIP trained in under a minute on synthetic captioned pictures.

The pictures are one shape of one colour on a plain background ("a red circle on a grey
background"): 6 shapes x 8 colours x 6 backgrounds = 288 combinations, of which `HELD_OUT` (12)
are never shown in training. Each held-out combination's pairs (shape+colour, shape+background,
colour+background) all occur in training, so a model that factorises the attributes retrieves
the held-out combinations from their captions; one that memorises combinations does not.

Recipe (what made held-out retrieval work, not just trained retrieval):
- vision tower: open_clip's ModifiedResNet (layers [1, 1, 1, 1], width 8, 0.34 M parameters).
  Shape is the hard attribute; a tiny ViT (patch 4 or 8) barely learned it in the budget, the
  convolutional tower learns it in ~100 steps. It has BatchNorm: use the model in eval() mode.
- text tower: open_clip's causal transformer (width 64, 2 layers, 2 heads, argmax/EOT pooling),
  the standard CLIP BPE vocabulary (49408) and `open_clip.tokenize(texts, context_length=16)`.
- data: 64 pictures of each trained combination drawn up front (random size and position,
  random left-right flips), batches of 256.
- loss: 2 x CLIP's contrastive loss (picture -> the captions of the batch's combinations,
  caption -> every picture of its combination in the batch) plus, during training only, a
  cross-entropy per attribute on BOTH towers' unit embeddings (x10) against fixed orthonormal
  prototype directions shared by the two towers (weights shape 3, colour 2, background 1).
  The shared prototypes make both embeddings ~ (shape + colour + background) directions,
  which compose to unseen combinations. The saved model is a plain open_clip CLIP.
- optimiser: AdamW lr 1e-2 (30 warm-up steps, cosine to 0 over the wall-clock budget),
  weight decay 0.1 on matrices, betas (0.9, 0.98).
- speed: only the ~25 vocabulary rows the captions use are trained (a small embedding table
  written back into the full 49408-row table at the end); the text tower runs on the 9
  leading positions (exact under the causal mask: padding after <end_of_text> cannot change
  it); 1 or 2 threads, whichever steps faster (2 threads on 2 busy cores are ~4x slower).
  ~150 steps suffice for held-out P@5 >= 0.95; 45 s gives ~600 on 2 idle cores.
"""

from __future__ import annotations

import itertools
import json
import math
import pathlib
import time
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import open_clip
    import torch

SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "pink", "teal"]
BACKGROUNDS = ["grey", "white", "black", "brown", "navy", "beige"]

_SHAPE_RGB = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 70, 230),
    "yellow": (245, 225, 30),
    "purple": (140, 40, 190),
    "orange": (250, 140, 20),
    "pink": (250, 130, 200),
    "teal": (0, 140, 140),
}
_BACKGROUND_RGB = {
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "brown": (110, 70, 30),
    "navy": (20, 25, 90),
    "beige": (225, 210, 170),
}

# No two held-out combinations share two attributes, so every pair of a held-out combination
# occurs in training (with the other backgrounds / colours / shapes); each shape and background
# is held out twice, each colour once or twice.
HELD_OUT: list[tuple[str, str, str]] = [
    ("square", "teal", "grey"),
    ("square", "green", "white"),
    ("triangle", "yellow", "navy"),
    ("circle", "purple", "brown"),
    ("star", "red", "beige"),
    ("star", "purple", "navy"),
    ("cross", "red", "grey"),
    ("cross", "teal", "brown"),
    ("circle", "orange", "black"),
    ("diamond", "yellow", "beige"),
    ("triangle", "blue", "black"),
    ("diamond", "pink", "white"),
]
ALL: list[tuple[str, str, str]] = list(itertools.product(SHAPES, COLOURS, BACKGROUNDS))
TRAINED: list[tuple[str, str, str]] = [c for c in ALL if c not in HELD_OUT]

IMAGE_SIZE = 32
CONTEXT_LENGTH = 16
EMBED_DIM = 64
MODEL_CFG: dict = {
    "embed_dim": EMBED_DIM,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 8},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's
STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESS_CFG: dict = {
    "mean": list(MEAN),
    "std": list(STD),
    "interpolation": "bilinear",
    "resize_mode": "shortest",
}

_SUPERSAMPLE = 4
LAST_TRAIN_STATS: dict = {}  # seconds, steps, final loss of the latest train() call


def caption(shape: str, colour: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def tokenize(texts: list[str]) -> torch.Tensor:
    import open_clip

    return open_clip.tokenize(texts, context_length=CONTEXT_LENGTH)


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [
            (cx - r * 0.8, cy - r * 0.8),
            (cx + r * 0.8, cy - r * 0.8),
            (cx + r * 0.8, cy + r * 0.8),
            (cx - r * 0.8, cy + r * 0.8),
        ]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.75, cy), (cx, cy + r), (cx - r * 0.75, cy)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    if shape == "star":
        points = []
        for k in range(10):
            angle = -math.pi / 2 + k * math.pi / 5
            radius = r if k % 2 == 0 else r * 0.45
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "cross":
        w = r * 0.33
        return [
            (cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
            (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
            (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w),
        ]  # fmt: skip
    raise ValueError(f"unknown shape {shape!r}")


def draw(shape: str, colour: str, background: str, rng: np.random.Generator) -> Image.Image:
    """An IMAGE_SIZE x IMAGE_SIZE RGB picture: the shape at a random size and position (drawn 4x
    larger and box-filtered down, so its edges are smooth)."""
    if colour not in _SHAPE_RGB or background not in _BACKGROUND_RGB:
        raise ValueError(f"unknown colour {colour!r} or background {background!r}")
    side = IMAGE_SIZE * _SUPERSAMPLE
    picture = Image.new("RGB", (side, side), _BACKGROUND_RGB[background])
    pen = ImageDraw.Draw(picture)
    r = rng.uniform(0.32, 0.42) * side
    cx, cy = rng.uniform(r, side - r), rng.uniform(r, side - r)
    if shape == "circle":
        pen.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=_SHAPE_RGB[colour])
    else:
        pen.polygon(_outline(shape, cx, cy, r), fill=_SHAPE_RGB[colour])
    return picture.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)


def _pixels(pictures: list[Image.Image]) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.stack([np.asarray(p.convert("RGB"), dtype=np.uint8) for p in pictures]))


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """(n, h, w, 3) uint8 -> (n, 3, h, w) float32: /255, then (x - MEAN) / STD."""
    import torch

    x = pixels.permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def to_tensor(pictures: list[Image.Image]) -> torch.Tensor:
    """As the product preprocesses: uint8 RGB -> /255 -> (x - MEAN) / STD, NCHW float32."""
    return _normalise(_pixels(pictures))


def _prototypes() -> list[torch.Tensor]:
    """Fixed orthonormal directions, one per attribute value (training only)."""
    import torch

    q, _ = torch.linalg.qr(torch.randn(EMBED_DIM, EMBED_DIM, generator=torch.Generator().manual_seed(123)))
    sizes = (len(SHAPES), len(COLOURS), len(BACKGROUNDS))
    edges = np.cumsum((0, *sizes))
    return [q[:, edges[k] : edges[k + 1]].T.contiguous() for k in range(3)]


def _encode_text_short(
    model: open_clip.CLIP, embedding: torch.nn.Embedding, ids: torch.Tensor
) -> torch.Tensor:
    """model.encode_text(normalize=True) on the first ids.shape[1] positions, with a small token
    table: the same function under the causal mask (positions after <end_of_text> are unseen)."""
    import torch
    import torch.nn.functional as F

    n, length = ids.shape
    x = embedding(ids) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(n), ids.argmax(dim=-1)]  # argmax pooling: <end_of_text> has the largest id
    proj = model.text_projection
    x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1)


def _write(model: open_clip.CLIP, out_dir: pathlib.Path) -> None:
    import safetensors.torch

    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(out_dir / "open_clip_model.safetensors"))


def load(out_dir: pathlib.Path) -> open_clip.CLIP:
    """The saved model as the product loads it (strict loading), in eval mode."""
    import open_clip

    return open_clip.create_model("local-dir:" + str(out_dir)).eval()


class _ThreadTuner:
    """Chooses 1 or `most` intra-op threads by measured step time, re-checking the other choice
    now and then (backing off while it keeps losing): with another busy process on a 2-core
    machine, 2 threads are ~4x slower per step than 1 (threads wait for each other), alone
    they are ~1.4x faster."""

    def __init__(self, most: int, window: int = 6) -> None:
        import torch

        self.options = sorted({1, max(1, most)})
        self.window, self.current, self.seconds = window, self.options[-1], {}
        self.interval, self.since_check, self.steps_at = 4, 0, {t: 0 for t in self.options}
        self.count, self.began = -1, 0.0  # the first step (allocations) is not timed
        torch.set_num_threads(self.current)

    def stepped(self) -> None:
        import torch

        self.count += 1
        self.steps_at[self.current] += 1
        if self.count == 0:
            self.began = time.monotonic()
            return
        if self.count < self.window:
            return
        now = time.monotonic()
        self.seconds[self.current] = (now - self.began) / self.count
        if len(self.options) > 1:
            best = min(self.seconds, key=self.seconds.get)
            untested = [t for t in self.options if t not in self.seconds]
            if untested:
                choice = untested[0]
            elif self.current != best:  # a check that lost: check less often
                choice, self.interval = best, min(self.interval * 2, 64)
            else:
                self.since_check += 1
                choice = best
                if self.since_check >= self.interval:
                    choice, self.since_check = next(t for t in self.options if t != best), 0
            self.current = choice
            torch.set_num_threads(choice)
        self.count, self.began = 0, time.monotonic()


def train(
    out_dir: pathlib.Path, seconds: float = 45.0, seed: int = 0, steps: int | None = None
) -> pathlib.Path:
    """Trains on TRAINED combinations for exactly `steps` steps, or else for about `seconds` of
    wall time (as many steps as fit), and writes open_clip_config.json +
    open_clip_model.safetensors into out_dir."""
    import open_clip
    import torch
    import torch.nn.functional as F

    start = time.monotonic()
    out_dir = pathlib.Path(out_dir)
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = open_clip.CLIP(**MODEL_CFG)
        model.train()

        per_combination = 64
        combo_of = np.repeat(np.arange(len(TRAINED)), per_combination)
        pixels = _pixels(
            [draw(*TRAINED[i], rng) for i in combo_of]
        )  # uint8: a float copy is slow to allocate
        attributes = torch.tensor(
            [[SHAPES.index(s), COLOURS.index(c), BACKGROUNDS.index(b)] for s, c, b in TRAINED]
        )

        # The captions' tokens, on a small table of the ids they use (ordered, so <end_of_text>
        # stays the largest id and argmax pooling finds it), cut after the longest caption.
        ids = tokenize([caption(*t) for t in TRAINED])
        used = torch.unique(ids)
        small_ids = torch.searchsorted(used, ids)
        length = int((ids != 0).sum(dim=1).max())
        small_ids = small_ids[:, :length].contiguous()
        full_table = model.token_embedding.weight
        table = torch.nn.Embedding(len(used), full_table.shape[1])
        table.weight.data.copy_(full_table.data[used])
        with torch.no_grad():  # the shortcut is the same function as encode_text
            probe = slice(0, 4)
            gap = (
                (
                    _encode_text_short(model, table, small_ids[probe])
                    - model.encode_text(ids[probe], normalize=True)
                )
                .abs()
                .max()
            )
            assert gap < 1e-5, gap

        params = [p for n, p in model.named_parameters() if n != "token_embedding.weight"] + [table.weight]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        lr, warmup = 1e-2, 30
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
            betas=(0.9, 0.98),
        )
        prototypes = _prototypes()
        weights, proto_scale, contrastive_weight, batch = (3.0, 2.0, 1.0), 10.0, 2.0, 256
        tuner = _ThreadTuner(min(threads, 2))

        deadline = start + seconds - 1.5  # leaves time to write and check the folder
        budget = max(deadline - time.monotonic(), 1e-3)
        step, loss = 0, torch.tensor(float("nan"))
        # `steps`: exactly that many (the same model whatever the machine's load), else the time
        while (step < steps) if steps is not None else (step == 0 or time.monotonic() < deadline):
            if steps is not None:
                done = step / steps
            else:
                done = min(1.0, 1.0 - (deadline - time.monotonic()) / budget)
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * done))
            pick = torch.from_numpy(rng.integers(0, len(pixels), batch))
            x = _normalise(pixels[pick])
            flip = torch.from_numpy(rng.random(batch) < 0.5)
            x[flip] = x[flip].flip(-1)  # every shape is left-right symmetric
            combo = torch.from_numpy(combo_of[pick.numpy()])

            image = model.encode_image(x, normalize=True)
            present = torch.unique(combo)  # the batch's combinations, sorted
            text = _encode_text_short(model, table, small_ids[present])  # their captions
            logits = model.logit_scale.exp() * image @ text.T
            to_text = F.cross_entropy(logits, torch.searchsorted(present, combo))
            positives = (combo[None, :] == present[:, None]).float()  # caption -> every picture of it
            to_image = -(positives / positives.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
            loss = contrastive_weight * (to_text + to_image) / 2
            for k in range(3):
                loss = loss + weights[k] * F.cross_entropy(
                    proto_scale * image @ prototypes[k].T, attributes[combo, k]
                )
                loss = loss + weights[k] * F.cross_entropy(
                    proto_scale * text @ prototypes[k].T, attributes[present, k]
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            tuner.stepped()

        with torch.no_grad():
            full_table.data[used] = table.weight.data
        model.eval()
        _write(model, out_dir)

        # The folder loads strictly and gives the same outputs.
        loaded = load(out_dir)
        check = to_tensor([draw(*c, rng) for c in ALL[::37]])
        check_ids = tokenize([caption(*c) for c in ALL[::37]])
        with torch.no_grad():
            for a, b in (
                (model.encode_image(check), loaded.encode_image(check)),
                (model.encode_text(check_ids), loaded.encode_text(check_ids)),
            ):
                assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        LAST_TRAIN_STATS.clear()
        LAST_TRAIN_STATS.update(
            seconds=round(time.monotonic() - start, 1),
            steps=step,
            loss=round(loss.item(), 4),
            steps_by_threads=tuner.steps_at,
        )
        return out_dir
    finally:
        torch.set_num_threads(threads)


def trained(seed: int = 0, steps: int = 300) -> pathlib.Path:
    """The folder of `train(seed=seed, steps=steps)`, kept between runs under the hash of this
    file, the libraries' versions and the arguments (support/artefacts.py): do not write into it."""
    from . import artefacts

    parts = {
        "recipe": {"seed": seed, "steps": steps},
        "code": artefacts.sha256_file(pathlib.Path(__file__)),
        "versions": artefacts.versions(*artefacts.EXPORT_LIBRARIES),
    }

    def build(folder: pathlib.Path) -> None:
        train(folder, seed=seed, steps=steps)

    return artefacts.kept("tiny-clip", parts, build)


def precision_at_5(out_dir: pathlib.Path, per_combination: int = 5, seed: int = 1) -> dict:
    """Loads the saved folder as the product does and searches `per_combination` new pictures of
    every combination with the captions of HELD_OUT and of 12 TRAINED combinations."""
    import torch

    model = load(pathlib.Path(out_dir))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(ALL)), per_combination)
    pictures = [draw(*ALL[i], rng) for i in labels]
    with torch.no_grad():
        images = torch.cat(
            [
                model.encode_image(to_tensor(pictures[k : k + 512]), normalize=True)
                for k in range(0, len(pictures), 512)
            ]
        )
        result = {}
        for name, combos in (("held_out_p5", HELD_OUT), ("trained_p5", TRAINED[::23][:12])):
            texts = model.encode_text(tokenize([caption(*c) for c in combos]), normalize=True)
            top = (texts @ images.T).topk(5, dim=1).indices.numpy()
            result[name] = float(
                np.mean([(labels[top[q]] == ALL.index(c)).mean() for q, c in enumerate(combos)])
            )
    return result


if __name__ == "__main__":
    for seed in (0, 1, 2):
        folder = train(pathlib.Path(f"/tmp/tiny_clip_seed{seed}"), seed=seed)
        p5 = precision_at_5(folder)
        print(
            f"seed {seed}: {LAST_TRAIN_STATS['seconds']:.1f} s, {LAST_TRAIN_STATS['steps']} steps, "
            f"held_out_p5 {p5['held_out_p5']:.3f}, trained_p5 {p5['trained_p5']:.3f}",
            flush=True,
        )
