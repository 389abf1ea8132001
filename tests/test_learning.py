"""Projection heads: seeded training on stored vectors, honest held-out splits."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.encoding.projection import load
from imgsearch.errors import ImgsearchError
from imgsearch.evaluation.evaluate import leave_one_out
from imgsearch.learning.train import TrainOptions, stratified_split, train_head

from .support.photos import EDITS, sample_photos


def test_split_is_stratified_and_disjoint() -> None:
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 4
    train, test = stratified_split(labels, 0.5, seed=3)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert sorted(labels[i] for i in test) == ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    assert np.array_equal(stratified_split(labels, 0.5, seed=3)[1], test)  # seeded
    with pytest.raises(ImgsearchError):
        stratified_split(labels, 1.0)


def test_a_trained_head_beats_the_base_on_held_out_copies(lite0, tmp_path) -> None:
    photos = sample_photos()
    pictures, labels = [], []
    for name, img in photos.items():
        small = img.resize((256, int(256 * img.height / img.width)))
        for edit in EDITS:
            pictures.append(edit(small))
            labels.append(name)
    vectors = lite0.encode(pictures)
    train, test = stratified_split(labels, 0.5, seed=0)
    assert not set(train) & set(test)
    head = train_head(
        vectors[train],
        [labels[i] for i in train],
        lite0.name,
        TrainOptions(dim=64, hidden=256, epochs=40, seed=0),
    )
    test_labels = [labels[i] for i in test]
    base = leave_one_out(vectors[test], test_labels, [1, 3]).precision[3]
    trained = leave_one_out(head.apply(vectors[test]), test_labels, [1, 3]).precision[3]
    print(f"held-out P@3: base {base:.3f}, head {trained:.3f}")
    assert trained > base, (trained, base)

    head.save(tmp_path / "head.npz")
    again = load(tmp_path / "head.npz")
    assert again.digest() == head.digest() and again.base == lite0.name
    np.testing.assert_allclose(again.apply(vectors[:3]), head.apply(vectors[:3]), atol=1e-6)
    assert np.allclose(np.linalg.norm(head.apply(vectors), axis=1), 1.0, atol=1e-5)


def test_training_is_deterministic_on_cpu(lite0) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(120, 32)).astype(np.float32)
    labels = [str(i % 4) for i in range(120)]
    options = TrainOptions(dim=8, hidden=16, epochs=3, seed=7)
    first = train_head(vectors, labels, "x", options)
    second = train_head(vectors, labels, "x", options)
    assert first.digest() == second.digest()
    assert (
        train_head(
            vectors, labels, "x", TrainOptions(dim=8, hidden=16, epochs=3, seed=8, loss="triplet")
        ).digest()
        != first.digest()
    )
