"""torch and ONNX Runtime give the same vectors; the ONNX model cache; search without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from imgsearch.encoding.encoder import EnsembleEncoder
from imgsearch.encoding.onnx_runtime import OnnxEncoder, cache_paths, load_cached
from imgsearch.encoding.registry import export_key, get_encoder, resolve_backend
from imgsearch.errors import ImgsearchError

from .support import pg
from .support.photos import sample_photos

MIN_COSINE = 0.9999


def _photos():
    return list(sample_photos().values())


def _worst_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.fixture(scope="module")
def resnet18_pair():
    """A torchvision ResNet-18 with seeded random weights, in torch and exported to ONNX."""
    from imgsearch.encoding.onnx_export import export
    from imgsearch.encoding.torch_models import build_torchvision

    torch_encoder = build_torchvision("resnet18", "cpu", random_init_seed=0)
    return torch_encoder, export(torch_encoder, "test-resnet18-random-seed0")


def test_lite0_vectors_agree(lite0, lite0_torch) -> None:
    assert isinstance(lite0, OnnxEncoder)
    assert lite0.identity == lite0_torch.identity  # the backend is not part of the identity
    assert _worst_cosine(lite0.encode(_photos()), lite0_torch.encode(_photos())) >= MIN_COSINE


@pytest.mark.slow
def test_torchvision_resnet_vectors_agree(resnet18_pair) -> None:
    torch_encoder, onnx_encoder = resnet18_pair
    assert onnx_encoder.identity == torch_encoder.identity
    got = onnx_encoder.encode(_photos())
    assert _worst_cosine(got, torch_encoder.encode(_photos())) >= MIN_COSINE


@pytest.mark.slow
def test_ensemble_vectors_agree(lite0, lite0_torch, resnet18_pair) -> None:
    torch_resnet, onnx_resnet = resnet18_pair
    on_torch = EnsembleEncoder([lite0_torch, torch_resnet])
    on_onnx = EnsembleEncoder([lite0, onnx_resnet])
    assert on_onnx.identity == on_torch.identity
    assert _worst_cosine(on_onnx.encode(_photos()), on_torch.encode(_photos())) >= MIN_COSINE


def test_auto_backend_is_onnx_on_a_cpu_and_torch_on_a_gpu() -> None:
    assert resolve_backend("auto", "cpu") == "onnx"
    assert resolve_backend("auto", "cuda") == resolve_backend("auto", "mps") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ImgsearchError, match="auto, torch or onnx"):
        resolve_backend("tensorrt", "cpu")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-record"])
def test_a_damaged_export_is_rebuilt_not_loaded(lite0, damage) -> None:
    key = export_key("efficientnet-lite0")
    graph, meta = cache_paths(key)
    assert load_cached(key) is not None
    if damage == "truncate":
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    elif damage == "garbage":
        graph.write_bytes(b"\x00" * 1000)
    else:
        meta.unlink()
    assert load_cached(key) is None  # detected, never handed to ONNX Runtime as good
    rebuilt = get_encoder("efficientnet-lite0", "cpu", backend="onnx")
    assert isinstance(rebuilt, OnnxEncoder) and load_cached(key) is not None
    photos = _photos()[:3]
    assert _worst_cosine(rebuilt.encode(photos), lite0.encode(photos)) >= MIN_COSINE


SEARCH_WITHOUT_TORCH = textwrap.dedent("""
    import sys
    import imgsearch
    index = imgsearch.open()
    result = index.search(sys.argv[1], k=1)
    print(result.results[0].path)
    print("torch" in sys.modules, "torchvision" in sys.modules)
""")


@pytest.mark.slow
def test_search_never_imports_torch_once_exported(db, lite0, tmp_path) -> None:
    from imgsearch.ingest import ingest

    photos = sample_photos()
    for name in ("chelsea", "coffee", "rocket"):
        photos[name].save(tmp_path / f"{name}.jpg")
    ingest([tmp_path], encoder=lite0, database=db)
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    run = subprocess.run(
        [sys.executable, "-c", SEARCH_WITHOUT_TORCH, str(tmp_path / "coffee.jpg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    path, loaded = run.stdout.splitlines()
    assert path.endswith("coffee.jpg")
    assert loaded == "False False"


@pytest.mark.slow
def test_the_first_export_says_so_in_one_line(db, tmp_path) -> None:
    home = tmp_path / "fresh-home"  # an empty model cache
    env = {
        **os.environ,
        "IMGSEARCH_DATABASE_URL": db.url,
        "IMGSEARCH_HOME": str(home),
        "IMGSEARCH_DEVICE": "cpu",
    }
    sample_photos()["astronaut"].save(tmp_path / "astronaut.jpg")
    run = subprocess.run(
        [sys.executable, "-m", "imgsearch", "ingest", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if "ONNX" in line]
    assert len(notes) == 1 and "once" in notes[0] and "torch" in notes[0]
    assert "Warning" not in run.stderr
    again = subprocess.run(
        [sys.executable, "-m", "imgsearch", "search", str(tmp_path / "astronaut.jpg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and "ONNX" not in again.stderr


@pytest.mark.slow
def test_evaluate_gives_the_same_precision_with_either_backend(
    pg_admin_url, lite0, lite0_torch, tmp_path
) -> None:
    from imgsearch.db.schema import open_database
    from imgsearch.evaluation.evaluate import EvaluationOptions, evaluate

    from .support.photos import TRANSFORMS

    for name, img in list(sample_photos().items())[:6]:
        (tmp_path / name).mkdir()
        img.save(tmp_path / name / "original.jpg")
        for tname, transform in TRANSFORMS.items():
            transform(img).save(tmp_path / name / f"{tname}.jpg")
    scores = []
    for encoder in (lite0, lite0_torch):
        with pg.scratch_database(pg_admin_url) as url:
            result = evaluate(
                tmp_path, EvaluationOptions(ks=[1, 3]), encoders=[encoder], database=open_database(url)
            )
            scores.append(result.models[0].scores)
    onnx_scores, torch_scores = scores
    for k in (1, 3):
        assert round(onnx_scores.precision[k], 3) == round(torch_scores.precision[k], 3)
    assert round(onnx_scores.map, 3) == round(torch_scores.map, 3)


def test_onnx_cache_lives_under_the_imgsearch_home(lite0) -> None:
    graph, meta = cache_paths(export_key("efficientnet-lite0"))
    assert graph.is_relative_to(Path(os.environ["IMGSEARCH_HOME"]))
    assert graph.exists() and meta.exists()
