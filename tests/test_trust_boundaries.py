"""Trust boundaries (findings 1-6 and 9 of the probe of 6450b97): files written from data
imgsearch did not compute (database rows, `--from` folders, uploads) are named by digests it
computed, stay inside their folder and are bounded; weights are loaded without executing
anything; a full disk never fails a search; no link is followed below the collection's root;
settings imgsearch controls cannot be overridden."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imgsearch import config, safe_files
from imgsearch.db import finetuned, sizing
from imgsearch.db.connection import connect
from imgsearch.encoding import clip_catalog
from imgsearch.encoding.encoder import EncoderIdentity
from imgsearch.encoding.onnx_runtime import cache_dir, cache_paths
from imgsearch.encoding.registry import export_key, get_encoder
from imgsearch.errors import ImgsearchError, WeightsUnavailable
from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.cli import imgsearch as run_imgsearch
from .support.hostile import jpeg_bytes
from .support.warm_python import Finished

TOKEN = "t0ken"


def _cli(*args: str, env: dict[str, str] | None = None) -> Finished:
    """The real command, as a person runs it (errors are one sentence on stderr)."""
    return run_imgsearch(*args, env={**os.environ, **(env or {})}, timeout=300)


class _Evil:
    """Pickled, it runs code when unpickled by an unrestricted loader: it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"weights": _Evil(marker)}, path)  # a real torch.save archive with a payload
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "a" / "b").mkdir(parents=True)
    for i, name in enumerate(["one.jpg", "two.jpg", "a/b/deep.jpg"]):
        (folder / name).write_bytes(jpeg_bytes(i, (160, 120)))
    return folder


@pytest.fixture
def index(db, lite0, photos):
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    index.ingest([photos])
    yield index
    index.close()


def _hostile_finetuned(db, name: str, sha256: str, weights: bytes) -> int:
    """An encoder row and a fine-tuned row as anyone who may write the table could make them,
    with one stored vector so the service counts the model as indexed."""
    identity = EncoderIdentity(name, 1280, "fine-tuned:x", "lite0/224")
    with connect(db) as conn:
        encoder_id = finetuned.register(conn, identity, "efficientnet-lite0", weights, {"size": 224})
        conn.execute(
            "UPDATE imgsearch.finetuned_encoders SET sha256 = %s WHERE encoder_id = %s", (sha256, encoder_id)
        )
        conn.execute(
            """INSERT INTO imgsearch.embeddings (image_id, encoder_id, embedding)
               SELECT image_id, %s, embedding FROM imgsearch.embeddings LIMIT 1""",
            (encoder_id,),
        )
        conn.commit()
    return encoder_id


# --- finding 1: a digest from a database row names no file outside the cache ---------------


def test_finding1_a_row_digest_cannot_write_outside_the_model_cache(db, index, photos, tmp_path) -> None:
    target = tmp_path / "WRITTEN"
    hostile = os.path.relpath(target, cache_dir() / "finetuned")
    _hostile_finetuned(db, "planted", hostile, b"any bytes at all")

    with pytest.raises(ImgsearchError, match="not a sha256"):
        index.search(str(photos / "one.jpg"), 3, model="planted")
    assert not target.with_suffix(".pt").exists()

    with TestClient(create_app(index, api_token=TOKEN)) as client:
        answer = client.post(
            "/api/search",
            files={"file": ("q.jpg", jpeg_bytes(5), "image/jpeg")},
            data={"model": "planted"},
        )
    assert answer.status_code == 400, answer.text
    assert "sha256" in answer.json()["detail"]
    assert not target.with_suffix(".pt").exists()


def test_finding1_weights_that_do_not_match_their_digest_are_refused(db, index, photos) -> None:
    _hostile_finetuned(db, "swapped", hashlib.sha256(b"other").hexdigest(), b"these bytes")
    with pytest.raises(ImgsearchError, match="do not match"):
        index.search(str(photos / "one.jpg"), 3, model="swapped")
    assert not list((cache_dir() / "finetuned").glob(f"{hashlib.sha256(b'other').hexdigest()}*"))


def test_finding1_a_model_name_from_a_row_names_no_cache_file_outside() -> None:
    for key in ("../../../../tmp/ONNX_ESCAPE.v1", "a/b", "..", ".hidden", "x\0y"):
        graph, meta = cache_paths(key)
        assert graph.parent == meta.parent == cache_dir()
    assert (
        cache_paths("efficientnet-lite0.bundled-x.v1.2.3")[0].name
        == "efficientnet-lite0.bundled-x.v1.2.3.onnx"
    )


# --- finding 2: weights are loaded without executing anything -------------------------------


def test_finding2_efficientnet_weights_never_run_a_pickle(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(WeightsUnavailable, match="not a torch state-dict file"):
        get_encoder("efficientnet-lite0", device="cpu", weights=evil, backend="torch")
    assert not marker.exists()

    plain = tmp_path / "plain.pkl"  # a bare pickle, not even a torch archive
    plain.write_bytes(__import__("pickle").dumps(_Evil(marker)))
    with pytest.raises(WeightsUnavailable):
        get_encoder("resnet18", device="cpu", weights=plain, backend="torch")
    assert not marker.exists()


def test_finding2_a_fine_tuned_row_holding_a_pickle_never_runs_it(
    db, index, photos, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    monkeypatch.setenv("IMGSEARCH_BACKEND", "torch")
    marker = tmp_path / "ran"
    data = _evil_checkpoint(tmp_path / "evil.pt", marker).read_bytes()
    _hostile_finetuned(db, "pickled", hashlib.sha256(data).hexdigest(), data)
    with pytest.raises(WeightsUnavailable, match="not a torch state-dict file"):
        index.search(str(photos / "one.jpg"), 3, model="pickled")
    assert not marker.exists()


def test_finding2_safetensors_weights_load(tmp_path) -> None:
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    state = resnet18(weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "r18.safetensors"))
    encoder = get_encoder("resnet18", device="cpu", weights=tmp_path / "r18.safetensors", backend="torch")
    assert encoder.dimension == 512


# --- finding 3: `models pull --from` copies only checkpoints and computes their digest ------


def _clip_folder(folder: Path, digest: str | None = None) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(folder / "open_clip_model.safetensors"))
    model_cfg = {"embed_dim": 64, "vision_cfg": {}, "text_cfg": {"context_length": 16}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    if digest is not None:
        (folder / "imgsearch.json").write_text(json.dumps({"digest": digest}))
    return folder


def test_finding3_a_from_folder_digest_is_computed_not_copied(tmp_path) -> None:
    source = _clip_folder(tmp_path / "mine", digest="../../../../tmp/ONNX_ESCAPE")
    installed = clip_catalog.install("mine", source)
    record = json.loads((installed / "imgsearch.json").read_text())
    weights = (installed / "open_clip_model.safetensors").read_bytes()
    assert record["digest"] == hashlib.sha256(weights).hexdigest()[:16]
    key = export_key("mine")
    assert "/" not in key and ".." not in key
    assert all(p.parent == cache_dir() for p in cache_paths(key))

    # a record planted in the cache folder itself is not trusted either
    (installed / "imgsearch.json").write_text(json.dumps({"digest": "../../../../tmp/ONNX_ESCAPE"}))
    assert clip_catalog.checkpoint_for("mine", None).digest == record["digest"]


def test_finding3_a_link_to_a_secret_is_not_copied(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    secret.chmod(0o600)
    link = tmp_path / "model.bin"
    link.symlink_to(secret)
    with pytest.raises(WeightsUnavailable, match="not a checkpoint"):
        clip_catalog.install("clip-vit-b-32", link)
    folder = _clip_folder(tmp_path / "linked")
    (folder / "open_clip_model.safetensors").unlink()
    (folder / "open_clip_pytorch_model.bin").symlink_to(secret)
    result = _cli("models", "pull", "linked", "--from", str(folder))
    assert result.returncode == 2 and "not a checkpoint" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (clip_catalog.cache_root() / "linked").exists()


# --- findings 4 and 5: kept uploads are bounded and best effort -----------------------------


def _upload(client: TestClient, data: bytes, name: str = "q.jpg"):
    return client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "3"})


def test_finding4_kept_uploads_and_their_thumbnails_stay_within_their_bytes(index, monkeypatch) -> None:
    budget = 400_000
    monkeypatch.setenv("IMGSEARCH_KEPT_QUERIES_BYTES", str(budget))
    monkeypatch.setattr(index, "settings", config.load())  # the service's, from now on
    home = Path(os.environ["IMGSEARCH_HOME"])
    with TestClient(create_app(index, api_token=TOKEN)) as client:
        for i in range(40):
            answer = _upload(client, jpeg_bytes(100 + i, (400, 300)))
            assert answer.status_code == 200, answer.text
            digest = answer.json()["query"]["upload"]
            assert client.get(f"/api/queries/{digest}", params={"size": 1024}).status_code == 200
            assert client.get(f"/api/queries/{digest}", params={"size": 128}).status_code == 200
        kept = [p for p in (home / "queries").iterdir() if safe_files.is_digest(p.name)]
        thumbs = [t for p in kept for t in (home / "thumbnails" / p.name[:2]).glob(f"{p.name}-*.jpg")]
        used = sum(p.stat().st_size for p in [*kept, *thumbs])
        assert 0 < len(kept) < 40 and used <= budget
        assert client.get(f"/api/queries/{digest}", params={"size": 512}).status_code == 200  # newest kept

        uploaded = {hashlib.sha256(jpeg_bytes(100 + i, (400, 300))).hexdigest() for i in range(40)}
        orphans = [
            t
            for t in (home / "thumbnails").rglob("*.jpg")
            if not (home / "queries" / t.name.split("-")[0]).exists() and t.name.split("-")[0] in uploaded
        ]
        assert not orphans  # pruned uploads took their thumbnails with them


@pytest.mark.parametrize(
    "data", [os.urandom(200_000), b"<html><script>alert(1)</script></html>" * 50], ids=["random", "html"]
)
def test_finding4_uploads_that_are_not_images_are_not_kept(index, data) -> None:
    home = Path(os.environ["IMGSEARCH_HOME"])
    with TestClient(create_app(index, api_token=TOKEN)) as client:
        answer = _upload(client, data, "x.html")
    assert answer.status_code in (400, 413, 415, 422), answer.text
    assert not (home / "queries" / hashlib.sha256(data).hexdigest()).exists()


def test_finding5_a_full_disk_never_fails_a_search_and_thumbnails_say_503(index, monkeypatch) -> None:
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safe_files.tempfile, "mkstemp", no_room)
    with TestClient(create_app(index, api_token=TOKEN)) as client:
        answer = _upload(client, jpeg_bytes(77, (200, 150)))
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"]
        image_id = answer.json()["results"][0]["image_id"]
        thumb = client.get(f"/api/images/{image_id}/thumb", params={"size": 1024})
        assert thumb.status_code == 503 and thumb.headers["retry-after"]
        assert "disk is full" in thumb.json()["detail"]
        monkeypatch.undo()
        assert client.get(f"/api/images/{image_id}/thumb", params={"size": 1024}).status_code == 200


# --- finding 6: no link followed below the collection's root ------------------------------


def _id(client: TestClient, suffix: str) -> int:
    images = client.get("/api/images", params={"limit": 100}).json()["images"]
    return next(i["id"] for i in images if i["path"].endswith(suffix))


def test_finding6_a_file_swapped_for_a_link_to_itself_is_refused(index, photos) -> None:
    with TestClient(create_app(index, api_token=TOKEN)) as client:
        one = _id(client, "/one.jpg")
        assert client.get(f"/api/images/{one}/file").status_code == 200
        (photos / "one.jpg").rename(photos / "one.real.jpg")
        (photos / "one.jpg").symlink_to(photos / "one.real.jpg")  # same bytes, now a link
        assert client.get(f"/api/images/{one}/file").status_code == 404


@pytest.mark.parametrize("swapped", ["a/b", "a"], ids=["parent", "grandparent"])
def test_finding6_a_folder_on_the_way_swapped_for_a_link_to_the_same_files_is_refused(
    index, photos, swapped
) -> None:
    with TestClient(create_app(index, api_token=TOKEN)) as client:
        deep = _id(client, "/a/b/deep.jpg")
        assert client.get(f"/api/images/{deep}/file").status_code == 200
        (photos / swapped).rename(photos / f"{swapped}.real")
        (photos / swapped).symlink_to(photos / f"{swapped}.real", target_is_directory=True)
        assert client.get(f"/api/images/{deep}/file").status_code == 404
        assert client.get(f"/api/images/{deep}/thumb", params={"size": 512}).status_code == 404


def test_finding6_a_root_reached_through_the_operators_own_link_is_served(
    db, lite0, photos, tmp_path
) -> None:
    link = tmp_path / "linked-photos"
    link.symlink_to(photos, target_is_directory=True)
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    try:
        index.ingest([link])
        with TestClient(create_app(index, api_token=TOKEN)) as client:
            images = client.get("/api/images", params={"limit": 100}).json()["images"]
            deep = next(i["id"] for i in images if i["path"] == f"{link}/a/b/deep.jpg")
            assert client.get(f"/api/images/{deep}/file").status_code == 200
    finally:
        index.close()


# --- finding 9: settings imgsearch controls are refused ------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["port=35432", "listen_addresses=0.0.0.0", "unix_socket_directories=x", "work_mem=8MB,data_directory=x"],
)
def test_finding9_settings_imgsearch_controls_are_refused(raw, monkeypatch) -> None:
    with pytest.raises(ImgsearchError, match="set by imgsearch itself"):
        sizing.overrides(raw)
    result = _cli("db", "status", env={sizing.SETTINGS_ENV: raw})
    assert result.returncode == 2 and "set by imgsearch itself" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_finding9_other_settings_still_pass() -> None:
    assert sizing.overrides("shared_buffers=2GB,work_mem=16MB") == {
        "shared_buffers": "2GB",
        "work_mem": "16MB",
    }
