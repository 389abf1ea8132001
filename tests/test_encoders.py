"""Encoders: real efficientnet-lite0 retrieval behaviour; torchvision shapes, weights, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.encoding.decode import decode_image
from imgsearch.encoding.encoder import EnsembleEncoder
from imgsearch.encoding.registry import get_encoder, list_models
from imgsearch.errors import UnknownEncoder, WeightsUnavailable

from .support.photos import TRANSFORMS, exif_rotated_jpeg, sample_photos


@pytest.fixture(scope="module")
def photo_vectors(lite0):
    photos = sample_photos()
    names = list(photos)
    return names, lite0.encode([photos[n] for n in names])


def test_vectors_have_unit_length(photo_vectors) -> None:
    _, vectors = photo_vectors
    assert vectors.dtype == np.float32
    assert vectors.shape[1] == 1280
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_stereo_views_are_each_others_nearest_neighbours(photo_vectors) -> None:
    names, vectors = photo_vectors
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    left, right = names.index("motorcycle_left"), names.index("motorcycle_right")
    assert sims[left].argmax() == right
    assert sims[right].argmax() == left


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_transformed_copy_finds_its_original_first(lite0, photo_vectors, transform) -> None:
    names, vectors = photo_vectors
    photos = sample_photos()
    copies = lite0.encode([TRANSFORMS[transform](photos[n]) for n in names])
    nearest = (copies @ vectors.T).argmax(axis=1)
    assert [names[i] for i in nearest] == names


def test_batch_of_8_equals_one_at_a_time(lite0) -> None:
    photos = list(sample_photos().values())[:8]
    batched = lite0.encode(photos)
    single = np.concatenate([lite0.encode([p]) for p in photos])
    np.testing.assert_allclose(batched, single, atol=1e-3)


def test_exif_rotated_jpeg_encodes_like_the_upright_image(lite0) -> None:
    upright = sample_photos()["astronaut"]
    rotated = decode_image(exif_rotated_jpeg(upright)).image
    straight = decode_image(_jpeg(upright)).image
    a, b = lite0.encode([rotated, straight])
    assert float(a @ b) > 0.99


def _jpeg(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "dim"),
    [("resnet18", 512), ("resnet50", 2048), pytest.param("vit_b_16", 768, marks=pytest.mark.slow)],
)
def test_torchvision_random_weights_shape_and_norm(name: str, dim: int) -> None:
    from imgsearch.encoding.torch_models import build_torchvision

    enc = build_torchvision(name, device="cpu", random_init_seed=0)
    photos = list(sample_photos().values())[:3]
    vectors = enc.encode(photos)
    assert vectors.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert enc.device.type == "cpu"
    assert enc.identity.weights == "random-init:seed=0"
    again = build_torchvision(name, device="cpu", random_init_seed=0).encode(photos)
    np.testing.assert_allclose(vectors, again, atol=1e-5)


def test_weights_file_is_loaded_and_changes_the_identity(tmp_path) -> None:
    import torch
    import torchvision

    torch.manual_seed(7)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-mine.pth"
    torch.save(model.state_dict(), path)
    enc = get_encoder("resnet18", device="cpu", weights=path)
    assert enc.identity.weights.startswith("file:")
    photo = sample_photos()["coffee"]
    model.fc = torch.nn.Identity()
    x = torch.from_numpy(np.array(enc.preprocess(photo)[0])).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(enc.preprocessing.mean).view(1, 3, 1, 1)) / torch.tensor(
        enc.preprocessing.std
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.eval()(x), dim=1).numpy()
    np.testing.assert_allclose(enc.encode([photo]), expected, atol=1e-4)


def test_wrong_weights_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "not-weights.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsUnavailable, match="not a torch state-dict"):
        get_encoder("resnet18", device="cpu", weights=path)
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsUnavailable, match="does not fit resnet50"):
        get_encoder("resnet50", device="cpu", weights=path)


def test_offline_without_weights_names_the_file_and_the_option(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(WeightsUnavailable) as err:
        get_encoder("resnet50", device="cpu")
    message = str(err.value)
    assert "resnet50-11ad3fa6.pth" in message
    assert str(tmp_path / "empty-torch-home") in message
    assert "--weights" in message
    models = {m.name: m for m in list_models()}
    assert not models["resnet50"].weights_present
    assert models["efficientnet-lite0"].weights_present


def test_prefilled_torch_home_is_used_offline(tmp_path, monkeypatch) -> None:
    import torch
    import torchvision

    from imgsearch.encoding.catalog import expected_weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target = expected_weights_file("resnet18")
    target.parent.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), target)
    assert {m.name: m for m in list_models()}["resnet18"].weights_present
    from_cache = get_encoder("resnet18", device="cpu")  # no network here: must use the cache
    assert from_cache.identity.weights == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    from_file = get_encoder("resnet18", device="cpu", weights=target)
    photo = sample_photos()["rocket"]
    np.testing.assert_allclose(from_cache.encode([photo]), from_file.encode([photo]), atol=1e-5)


def test_ensemble_concatenates_and_renormalises(lite0) -> None:
    from imgsearch.encoding.torch_models import build_torchvision

    other = build_torchvision("resnet18", device="cpu", random_init_seed=1)
    ensemble = EnsembleEncoder([lite0, other])
    assert ensemble.name == "efficientnet-lite0+resnet18"
    assert ensemble.dimension == 1280 + 512
    photos = list(sample_photos().values())[:2]
    joined = ensemble.encode(photos)
    expected = np.concatenate([lite0.encode(photos), other.encode(photos)], axis=1) / np.sqrt(2)
    np.testing.assert_allclose(joined, expected, atol=1e-5)


def test_unknown_encoder() -> None:
    with pytest.raises(UnknownEncoder, match="Known: efficientnet-lite0"):
        get_encoder("resnet9000")


def test_identity_changes_with_preprocessing(lite0_torch) -> None:
    from dataclasses import replace

    from imgsearch.encoding.torch_runtime import TorchEncoder

    lite0 = lite0_torch
    altered = TorchEncoder(
        lite0.name,
        lite0.module,
        lite0.dimension,
        lite0.weights_id,
        replace(lite0.preprocessing, resize=288),
        "cpu",
    )
    assert altered.identity != lite0.identity
    assert altered.identity.name == lite0.identity.name


def test_cuda_encoding_matches_cpu(lite0) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    gpu = get_encoder("efficientnet-lite0", device="cuda")
    photos = list(sample_photos().values())[:4]
    np.testing.assert_allclose(gpu.encode(photos), lite0.encode(photos), atol=2e-2)


def test_the_catalog_knows_torchvision_s_weights_files_and_cache(tmp_path, monkeypatch) -> None:
    """`imgsearch models` lists where each weights file goes without importing torch: the
    catalog's file names and cache folder are torchvision's and torch.hub's."""
    import torch
    import torchvision

    from imgsearch.encoding.catalog import TORCHVISION, torch_hub_dir

    for name, spec in TORCHVISION.items():
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        assert spec.weights_file == url.rsplit("/", 1)[-1], name
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert torch_hub_dir() == Path(torch.hub.get_dir())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert torch_hub_dir() == Path(torch.hub.get_dir()) == tmp_path / "xdg" / "torch" / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert torch_hub_dir() == Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
