"""Search by words with a tiny CLIP-style model trained here on pictures this file draws.

The model (tests/support/tiny_clip.py) never saw the held-out combinations of shape, colour and
background; typing their captions must still find their pictures, through the library, the
CLI (`--weights FOLDER`, the hub's layout), the API and the page. This checks the plumbing,
not the quality of any real checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from imgsearch.encoding import clip_catalog
from imgsearch.encoding.registry import get_encoder
from imgsearch.errors import ImgsearchError, WeightsUnavailable
from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support import artefacts, tiny_clip
from .support.cli import imgsearch as run_imgsearch
from .support.warm_python import Finished

PER_COMBINATION = 5
MIN_P5 = 0.9
TINY = "tiny-clip"


def _combo(path: str) -> tuple[str, str, str]:
    shape, colour, background, _ = Path(path).stem.split("-")
    return shape, colour, background


def _p5(found: list[list[str]]) -> float:
    """Mean share of each held-out query's first five results that show its combination."""
    hits = [
        sum(_combo(p) == combo for p in paths[:5]) / 5
        for combo, paths in zip(tiny_clip.HELD_OUT, found, strict=True)
    ]
    return float(np.mean(hits))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny model in the hub's layout, trained for 300 steps (21 s on 2 quiet cores; a fixed
    count, so a busy machine trains the same model, only slower), kept between runs under the
    hash of its recipe (support/artefacts.py); a copy of the session's own."""
    kept = tiny_clip.trained(seed=0, steps=300)
    checkpoint = tmp_path_factory.mktemp("tiny-clip") / "checkpoint"
    artefacts.copy_files(kept, checkpoint)
    return checkpoint


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> Path:
    """PER_COMBINATION new pictures of every combination, named shape-colour-background-i.png."""
    folder = tmp_path_factory.mktemp("captioned")
    rng = np.random.default_rng(123)
    for shape, colour, background in [*tiny_clip.TRAINED, *tiny_clip.HELD_OUT]:
        for i in range(PER_COMBINATION):
            tiny_clip.draw(shape, colour, background, rng).save(
                folder / f"{shape}-{colour}-{background}-{i}.png"
            )
    return folder


@pytest.fixture(scope="module")
def text_index(module_db, tiny_checkpoint, pictures):
    """The pictures indexed with the tiny model, installed in the model cache as `tiny-clip`
    (how a server finds a model of one's own)."""
    clip_catalog.install(TINY, tiny_checkpoint)
    artefacts.kept_export(TINY, lambda: get_encoder(TINY, "cpu", backend="onnx"))  # exported once
    index = Index(module_db.url, model=TINY, device="cpu", backend="onnx", pool_size=2)
    report = index.ingest([pictures])
    assert report.failed == 0
    yield index
    index.close()


def test_words_find_pictures_of_combinations_never_trained_on(text_index) -> None:
    found = [
        [m.path for m in text_index.search(text=tiny_clip.caption(*combo), k=5).results]
        for combo in tiny_clip.HELD_OUT
    ]
    p5 = _p5(found)
    print(f"held-out P@5 through the library: {p5:.3f}")
    assert p5 >= MIN_P5


def test_the_encoder_runs_on_onnx_runtime_with_the_text_tower(text_index) -> None:
    encoder = text_index.encoder()
    assert type(encoder).__name__ == "OnnxEncoder" and type(encoder.text).__name__ == "OnnxTextEncoder"
    torch_encoder = get_encoder(TINY, "cpu", backend="torch")
    words = ["a red circle on a grey background", "blue"]
    assert np.allclose(torch_encoder.text.encode_text(words), encoder.text.encode_text(words), atol=1e-4)
    assert encoder.identity == torch_encoder.identity


def test_a_text_query_in_a_fresh_interpreter_imports_no_torch(text_index, module_db) -> None:
    caption = tiny_clip.caption(*tiny_clip.HELD_OUT[0])
    code = (
        "import sys, json; from imgsearch.library import Index; "
        f"r = Index({module_db.url!r}, model={TINY!r}, backend='onnx').search(text={caption!r}, k=5); "
        "print(json.dumps([[m.path for m in r.results], 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    paths, torch_loaded = json.loads(out.stdout)
    assert not torch_loaded
    assert len(paths) == 5


def test_sql_applications_search_with_a_text_vector(text_index, module_db) -> None:
    """The round trip the README shows: words -> a vector (index.encode_text) -> SQL."""
    import psycopg
    from pgvector.psycopg import register_vector

    caption = tiny_clip.caption(*tiny_clip.HELD_OUT[0])
    vector = text_index.encode_text([caption])[0]
    with psycopg.connect(module_db.url) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT image_id FROM imgsearch.similar_to_vector(%s, 5, %s)", (vector, TINY)
        ).fetchall()
    assert [r[0] for r in rows] == [m.image_id for m in text_index.search(text=caption, k=5).results]


def test_pictures_and_words_mix_by_weight(text_index, pictures) -> None:
    query = str(next(pictures.glob(f"{'-'.join(tiny_clip.TRAINED[0])}-0.png")))
    words = tiny_clip.caption(*tiny_clip.HELD_OUT[0])
    picture_only = [m.image_id for m in text_index.search(query, k=10).results]
    words_only = [m.image_id for m in text_index.search(text=words, k=10).results]
    assert [
        m.image_id for m in text_index.search(query, k=10, text=words, text_weight=0.0).results
    ] == picture_only
    assert [
        m.image_id for m in text_index.search(query, k=10, text=words, text_weight=1.0).results
    ] == words_only
    mixed = text_index.search(query, k=10, text=words, text_weight=0.5)
    assert "+" in mixed.query and mixed.text == words
    # an indexed picture steered by words: the same mix, from its stored vector
    image_id = picture_only[0]
    by_id = text_index.search(f"id:{image_id}", k=10, text=words, text_weight=1.0).results
    assert [m.image_id for m in by_id] == [i for i in words_only if i != image_id][: len(by_id)]


def test_relevance_feedback_works_with_words(text_index) -> None:
    from imgsearch.db.nearest import QueryOptions

    words = tiny_clip.caption(*tiny_clip.HELD_OUT[0])
    plain = text_index.search(text=words, k=30).results
    last = plain[-1]
    pushed = text_index.search(text=words, k=30, options=QueryOptions(positive_ids=[last.image_id])).results
    rank = {m.image_id: m.rank for m in pushed}
    assert rank.get(last.image_id, 99) < last.rank


def test_words_with_a_model_that_reads_pictures_only_are_one_sentence(text_index, module_db) -> None:
    index = Index(module_db.url, model="efficientnet-lite0", device="cpu")
    with pytest.raises(ImgsearchError, match="reads pictures only"):
        index.search(text="a red bicycle")
    assert not index.reads_words() and text_index.reads_words()
    for bad in ("", "   ", "x" * 1001):
        with pytest.raises(ImgsearchError, match="text query"):
            text_index.search(text=bad)
    with pytest.raises(ImgsearchError, match="text weight"):
        text_index.search(text="red", text_weight=1.5)
    with pytest.raises(ImgsearchError, match="image, by words"):
        text_index.search()


def test_captions_are_evaluated_and_trained_on(text_index, pictures, tmp_path) -> None:
    rows = ["path,caption"] + [
        f"{p.name},{tiny_clip.caption(*_combo(str(p)))}" for p in sorted(pictures.glob("*.png"))
    ]
    rows.append("missing.png,a blue square")  # listed, not on disk
    rows.append("bad-row.png,")  # no caption
    captions = tmp_path / "captions.csv"
    captions.write_text("\n".join(rows) + "\n")
    result = text_index.evaluate_captions(pictures, captions, ks=(1, 5, 10))
    assert result.images == result.captions == len(list(pictures.glob("*.png")))
    assert (result.missing, result.rejected) == (1, 1)
    # each caption names PER_COMBINATION pictures alike: recall@1 is at most 1/PER_COMBINATION
    # even for a perfect model, recall@10 is the figure that shows the model works
    assert result.text_to_image[10] >= 0.8 and result.image_to_text[10] >= 0.8
    assert result.text_to_image[1] <= result.text_to_image[5] <= result.text_to_image[10]

    report = text_index.train("tiny-captions", pictures, captions_csv=captions)
    assert report.kind == "joint (captions)" and report.filled == result.images
    assert text_index.reads_words("tiny-captions")
    found = [
        [m.path for m in text_index.search(text=tiny_clip.caption(*c), k=5, model="tiny-captions").results]
        for c in tiny_clip.HELD_OUT
    ]
    assert _p5(found) >= MIN_P5
    tuned = text_index.evaluate_captions(pictures, captions, model="tiny-captions")
    print(f"captions: base t2i R@10 {result.text_to_image[10]:.3f}, joint {tuned.text_to_image[10]:.3f}")
    assert tuned.text_to_image[10] >= result.text_to_image[10] - 0.05


def test_the_api_searches_by_words(text_index) -> None:
    app = create_app(text_index, api_token="t")
    with TestClient(app) as client:
        assert client.get("/api/stats").json()["text_search"] is True
        found = []
        for combo in tiny_clip.HELD_OUT:
            answer = client.post("/api/search", json={"text": tiny_clip.caption(*combo), "k": 5})
            assert answer.status_code == 200, answer.text
            assert answer.json()["query"]["kind"] == "text"
            found.append([r["path"] for r in answer.json()["results"]])
        assert _p5(found) >= MIN_P5
        mixed = client.post("/api/search", json={"image_id": 1, "text": "a red circle", "text_weight": 0.3})
        assert mixed.status_code == 200 and mixed.json()["query"]["text_weight"] == 0.3
        upload = (next(iter(sorted(Path(found[0][0]).parent.glob("*.png"))))).read_bytes()
        both = client.post("/api/search", files={"file": ("q.png", upload)}, data={"text": "a red circle"})
        assert both.status_code == 200 and both.json()["query"]["text"] == "a red circle"
        for body, status in (
            ({"text": ""}, 422),
            ({"text": "   "}, 400),
            ({"text": "x" * 1001}, 422),
            ({"text": "red", "text_weight": 2}, 422),
            ({"text": 5}, 422),
            ({"text": "red", "model": "efficientnet-lite0"}, 400),
        ):
            answer = client.post("/api/search", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert isinstance(answer.json()["detail"], str)


@pytest.mark.slow
def test_the_cli_with_weights_from_a_hub_folder(
    db, tiny_checkpoint, pictures, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from imgsearch.cli import app

    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}

    def cli(*args: str) -> Finished:
        return run_imgsearch(*args, env=env, timeout=600)

    weights = ["--model", "open-clip", "--weights", str(tiny_checkpoint)]
    ingest = cli("ingest", str(pictures), *weights)
    assert ingest.returncode == 0, ingest.stderr
    # the held-out captions through the same command in this process (a subprocess each would
    # only add its start-up, a dozen times over); the command's own process runs below
    monkeypatch.setenv("IMGSEARCH_DATABASE_URL", db.url)
    monkeypatch.setenv("IMGSEARCH_DEVICE", "cpu")
    runner = CliRunner()
    found = []
    for combo in tiny_clip.HELD_OUT:
        out = runner.invoke(
            app, ["search", "--text", tiny_clip.caption(*combo), "-k", "5", "--json", *weights]
        )
        assert out.exit_code == 0, out.output
        found.append([r["path"] for r in json.loads(out.stdout)["results"]])
    assert _p5(found) >= MIN_P5
    first = cli("search", "--text", tiny_clip.caption(*tiny_clip.HELD_OUT[0]), "-k", "5", "--json", *weights)
    assert first.returncode == 0, first.stderr
    assert [r["path"] for r in json.loads(first.stdout)["results"]] == found[0]
    query = str(sorted(pictures.glob("*.png"))[0])
    mixed = cli("search", query, "--text", "a red circle", "--text-weight", "0.3", *weights)
    assert mixed.returncode == 0 and "rank" in mixed.stdout
    refused = cli("search", "--text", "a red circle", "--model", "efficientnet-lite0")
    assert refused.returncode == 2 and "reads pictures only" in refused.stderr
    assert "Traceback" not in refused.stderr
    nothing = cli("search")
    assert nothing.returncode == 2 and "--text" in nothing.stderr
    missing = cli("search", "--text", "red", "--model", "clip-vit-b-32")
    assert missing.returncode == 2 and "imgsearch models pull clip-vit-b-32" in missing.stderr


def test_a_registered_model_loads_a_checkpoint_in_the_real_format(tmp_path) -> None:
    """ViT-B/32 with random weights, saved as open_clip saves checkpoints: loaded by name with
    --weights (a file, and a hub-layout folder), and installed with `models pull --from`."""
    import open_clip
    import torch
    from PIL import Image

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")
    file = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), file)
    encoder = get_encoder("clip-vit-b-32", "cpu", weights=file, backend="torch")
    assert encoder.dimension == 512 and encoder.text is not None
    assert encoder.preprocessing.crop == 224 and encoder.preprocessing.interpolation == "bicubic"
    picture = encoder.encode([Image.new("RGB", (300, 200), "red")])
    words = encoder.text.encode_text(["a red bicycle"])
    with torch.no_grad():
        expected = model.encode_text(open_clip.tokenize(["a red bicycle"]), normalize=True).numpy()
    assert np.allclose(words, expected, atol=1e-5)
    assert picture.shape == (1, 512) and abs(float(np.linalg.norm(picture)) - 1) < 1e-5

    folder = clip_catalog.install("clip-vit-b-32", file)
    assert clip_catalog.checkpoint_for("clip-vit-b-32", None).weights.parent == folder
    by_name = get_encoder("clip-vit-b-32", "cpu", backend="torch")
    assert by_name.identity == encoder.identity

    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="not a checkpoint"):
        get_encoder("clip-vit-b-32", "cpu", weights=broken, backend="torch")


def test_pull_downloads_checks_and_installs(tmp_path, monkeypatch) -> None:
    """`models pull` against a stand-in for the hub on this machine: the files land in the
    model cache; a file whose bytes do not match the hub's sha256 is refused; a hub that
    cannot be reached is one sentence."""
    from .support.fake_hub import serve

    config = json.dumps({"model_cfg": {"embed_dim": 8}}).encode()
    with serve({"open_clip_model.safetensors": b"w" * 4096, "open_clip_config.json": config}) as url:
        folder = clip_catalog.pull("clip-vit-b-32", endpoint=url)
    assert sorted(p.name for p in folder.iterdir()) == [
        "imgsearch.json",
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    assert json.loads((folder / "imgsearch.json").read_text())["source"].startswith("hf:laion/")
    with (
        serve({"open_clip_pytorch_model.bin": b"b" * 100}, lie=True) as url,
        pytest.raises(WeightsUnavailable, match="sha256"),
    ):
        clip_catalog.pull("clip-vit-b-16", endpoint=url)
    assert not clip_catalog.installed_folder("clip-vit-b-16").exists()
    with pytest.raises(WeightsUnavailable, match="; offline, copy the checkpoint"):
        clip_catalog.pull("mobileclip2-s0", endpoint="http://127.0.0.1:9")
    with pytest.raises(ImgsearchError, match="no hub repository"):
        clip_catalog.pull("my-own")


@pytest.fixture(scope="module")
def text_server(text_index, module_db):
    """The tiny model's index behind a live HTTP server (its own Index: a TestClient's exit
    closes the one it served)."""
    from .support.web import serving

    index = Index(module_db.url, model=TINY, device="cpu", backend="onnx", pool_size=2)
    with serving(index) as base:
        yield base
    index.close()


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}])
def test_the_page_searches_by_words(text_server, viewport, tmp_path) -> None:
    """Type a caption of a held-out combination in the page's text box (phone and desktop):
    its pictures come first; the words stay in the URL, show beside the results, and pass axe."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    from .support.web import AXE_RULES, CHROMIUM, LAUNCH_ARGS, _need_browser

    _need_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_context(viewport=viewport).new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(text_server + "/")
        box = page.get_by_test_id("text")
        expect(box).to_be_visible()
        found = []
        for combo in tiny_clip.HELD_OUT:
            caption = tiny_clip.caption(*combo)
            box.fill(caption)
            box.press("Enter")
            expect(page.get_by_test_id("query-words")).to_have_text(f"“{caption}”")
            expect(page.get_by_test_id("message")).to_contain_text("result")
            ids = [li.get_attribute("data-id") for li in page.get_by_test_id("result").all()[:5]]
            found.append([_path(text_server, page, i) for i in ids])
            assert "text=" in page.url
        assert _p5(found) >= MIN_P5
        violations = Axe().run(page, options=AXE_RULES).response["violations"]
        serious = [v["id"] for v in violations if v["impact"] in ("critical", "serious")]
        assert not serious, serious
        wider = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert wider <= 0
        page.screenshot(path=str(tmp_path / f"words-{viewport['width']}.png"), full_page=True)
        # a reload repeats the words search from the URL
        page.reload()
        expect(box).to_have_value(tiny_clip.caption(*tiny_clip.HELD_OUT[-1]))
        expect(page.get_by_test_id("result").first).to_be_visible()
        assert not problems, problems
        browser.close()


def _path(base: str, page, image_id: str | None) -> str:
    """An indexed picture's path, as the page's API gives it."""
    answer = page.request.get(f"{base}/api/images/{image_id}")
    return answer.json()["path"]


def test_the_model_cache_refuses_what_it_cannot_run_faithfully(tmp_path) -> None:
    """Built-in names stay theirs, other tokenizers are refused, a damaged folder is one
    sentence, and one checkpoint has one identity however it was installed."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "mine"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "open_clip_model.safetensors"))
    cfg = {"embed_dim": 8, "text_cfg": {"vocab_size": 49408}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    with pytest.raises(ImgsearchError, match="ships"):
        clip_catalog.install("resnet50", folder)
    for bad in ("../up", ".hidden", "a+b", "a/b"):
        with pytest.raises(ImgsearchError, match="cannot name a model"):
            clip_catalog.install(bad, folder)
        assert not clip_catalog.is_clip(bad)
    installed = clip_catalog.install("mine-tiny", folder)
    assert clip_catalog.read_checkpoint(installed).digest == clip_catalog.read_checkpoint(folder).digest
    assert clip_catalog.dimension("mine-tiny") == 8
    (installed / "imgsearch.json").write_text("{broken")
    with pytest.raises(WeightsUnavailable, match="damaged"):
        clip_catalog.checkpoint_for("mine-tiny", None)
    assert clip_catalog.dimension("mine-tiny") is None  # `imgsearch models` still lists the others
    shutil.rmtree(installed)
    cfg["text_cfg"] = {"hf_tokenizer_name": "timm/ViT-B-16-SigLIP", "vocab_size": 32000}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    with pytest.raises(WeightsUnavailable, match="another tokenizer"):
        clip_catalog.install("siglip-mine", folder)
