"""Fine-tuned encoders (`imgsearch train --finetune`): trained on a CPU from cached frozen
stages, kept in the database, ingested and searched like any encoder, the same on ONNX Runtime
as on torch, and the same weights whatever the thread count."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imgsearch.cli import app
from imgsearch.db import finetuned
from imgsearch.db.connection import connect
from imgsearch.encoding.registry import finetuned_encoder
from imgsearch.errors import ImgsearchError
from imgsearch.learning.finetune import FinetuneOptions, finetune

from .support.photos import EDITS, sample_photos

# the smallest run that still trains something: the last two blocks, 96-pixel inputs
TINY = FinetuneOptions(epochs=3, first_block=14, size=96, batch=8, lr=1e-3)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Four sample photos x 10 edits, one sub-folder per photo."""
    root = tmp_path_factory.mktemp("finetune")
    for name, img in list(sample_photos().items())[:4]:
        (root / name).mkdir()
        small = img.resize((160, int(160 * img.height / img.width)))
        for i, edit in enumerate(EDITS):
            edit(small).convert("RGB").save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def few(labelled: Path, tmp_path_factory) -> Path:
    """The first four edits of each of the four photos (16 images, one sub-folder per photo):
    enough to learn from and to hold half out, at a third of the cost."""
    root = tmp_path_factory.mktemp("few")
    for photo in sorted(p for p in labelled.iterdir() if p.is_dir()):
        (root / photo.name).mkdir()
        for i in range(4):
            (root / photo.name / f"{i}.jpg").write_bytes((photo / f"{i}.jpg").read_bytes())
    return root


def _paths_labels(root: Path) -> tuple[list[str], list[str]]:
    paths = sorted(str(p) for p in root.glob("*/*.jpg"))
    return paths, [Path(p).parent.name for p in paths]


@pytest.mark.slow
def test_fine_tuning_learns_and_is_the_same_at_any_thread_count(few: Path) -> None:
    paths, labels = _paths_labels(few)
    result = finetune(paths, labels, TINY)
    losses = result.details["loss_per_epoch"]
    assert losses[-1] < losses[0], losses
    assert result.details["images"] == len(paths) and result.details["classes"] == 4
    digest = hashlib.sha256(result.weights).hexdigest()
    script = (
        "import hashlib, json, sys\n"
        "from imgsearch.learning.finetune import FinetuneOptions, finetune\n"
        "paths, labels = json.loads(sys.argv[1])\n"
        "o = FinetuneOptions(epochs=3, first_block=14, size=96, batch=8, lr=1e-3)\n"
        "print(hashlib.sha256(finetune(paths, labels, o).weights).hexdigest())\n"
    )
    runs = {}  # both at once: each is mostly torch's import, on one core
    for threads in ("1", "3"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        runs[threads] = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps([paths, labels])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    for threads, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert out.strip().splitlines()[-1] == digest, f"OMP_NUM_THREADS={threads}"


def test_fine_tuning_refuses_what_it_cannot_learn_from(labelled: Path, tmp_path: Path) -> None:
    paths, _ = _paths_labels(labelled)
    with pytest.raises(ImgsearchError, match="two labels"):
        finetune(paths, ["one"] * len(paths), TINY)
    with pytest.raises(ImgsearchError, match="--size"):
        finetune(paths, None, FinetuneOptions(size=64))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    with pytest.raises(ImgsearchError, match="two readable"):
        finetune([str(broken), paths[0]], None, TINY)


def test_a_fine_tuned_encoder_is_kept_ingested_searched_and_runs_on_onnx(
    db, few: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IMGSEARCH_DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["train", str(few), "--finetune", "--name", "tuned", "--first-block", "14"]
    result = runner.invoke(app, [*args, "--size", "96", "--epochs", "2", "--lr", "1e-3"])
    assert result.exit_code == 0, result.output
    assert "imgsearch ingest DIR --model tuned" in result.output
    with connect(db) as conn:
        row = finetuned.by_name(conn, "tuned")
        assert row is not None and row.size == 96 and row.details["epochs"] == 2
        weights = finetuned.weights_file(conn, row, tmp_path / "cache")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == row.sha256

    result = runner.invoke(app, ["ingest", str(few), "--model", "tuned"])
    assert result.exit_code == 0, result.output
    query = sorted(few.glob("rocket/*.jpg"))[0] if (few / "rocket").exists() else None
    query = query or sorted(few.glob("*/*.jpg"))[0]
    result = runner.invoke(app, ["search", str(query), "--model", "tuned", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["results"]
    assert hits[0]["path"] == str(query) and hits[0]["similarity"] > 0.999

    # the same vectors on ONNX Runtime as on torch, and a new process finds it by name
    torch_enc = finetuned_encoder("tuned", weights, 96, "cpu", "torch")
    onnx_enc = finetuned_encoder("tuned", weights, 96, "cpu", "onnx")
    assert torch_enc.identity == onnx_enc.identity
    from PIL import Image

    pictures = [Image.open(p).convert("RGB") for p in sorted(few.glob("*/*.jpg"))[:8]]
    a, b = torch_enc.encode(pictures), onnx_enc.encode(pictures)
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.9999

    # dropping it forgets its weights too
    result = runner.invoke(app, ["db", "drop-encoder", "tuned"])
    assert result.exit_code == 0, result.output
    with connect(db) as conn:
        assert finetuned.by_name(conn, "tuned") is None


@pytest.mark.slow
def test_held_out_evaluation_has_fine_tuned_rows(db, lite0, few: Path) -> None:
    from dataclasses import replace

    from imgsearch.evaluation.split import Collected, SplitOptions, split_evaluate, split_near_duplicates
    from imgsearch.learning.derive import labelled_vectors, unlabelled_vectors
    from imgsearch.learning.train import TrainOptions

    # the head and the edits it learns from are not what is tested here: a short training
    head = TrainOptions(epochs=5)
    split = SplitOptions(ks=(1, 3), pca=(), finetune=TINY, train=head)
    paths, vectors, labels = labelled_vectors(few, lite0, db)
    result = split_evaluate(Collected(str(few), paths, vectors, labels), split, encoder=lite0)
    row = result.rows[-1]
    assert row.encoder.startswith("fine-tuned (blocks 14-15, 96 px)") and row.dimension == 1280
    assert 0.0 <= row.scores["P@3"].low <= row.scores["P@3"].mean <= row.scores["P@3"].high <= 1.0
    paths, vectors = unlabelled_vectors(few, lite0, db)
    copies = split_near_duplicates(
        Collected(str(few), paths, vectors),
        SplitOptions(ks=(1,), finetune=replace(TINY, edits=2), train=head, copies=2),
        encoder=lite0,
    )
    row = copies.rows[-1]
    assert row.encoder.startswith("fine-tuned on edits") and row.scores["recall@1"].mean > 0.0
