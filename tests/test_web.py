"""The web page in headless Chromium (Debian's, driven by Playwright) against a live server."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .photos import sample_photos

pytestmark = pytest.mark.slow  # a browser: the full tier only

TOKEN = "web-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def chromium_browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(db, lite0, tmp_path_factory):
    import uvicorn

    photos = tmp_path_factory.mktemp("web-photos")
    for name, img in sample_photos().items():
        img.save(photos / f"{name}.jpg", quality=90)
        img.transpose(0).save(photos / f"{name}-mirror.jpg", quality=90)  # near twins
        img.rotate(90, expand=True).save(photos / f"{name}-turned.jpg", quality=90)
    index = Index(db.url, device="cpu", pool_size=4, encoders=[lite0])
    index.ingest([photos])
    index.clusters(4)
    index.map()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(index, api_token=TOKEN), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", photos
    uv.should_exit = True
    thread.join(timeout=30)
    index.close()


@pytest.fixture
def web_page(chromium_browser, server, tmp_path, request):
    # Playwright's wait_for_function compiles its predicate in the page, which the page's CSP
    # forbids (no eval): these tests bypass it; test_the_page_works_under_its_own_csp does not.
    context = chromium_browser.new_context(
        accept_downloads=True, bypass_csp=True, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    yield page
    page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
    context.close()


def _open(page, server, view: str):
    page.goto(server[0])
    page.get_by_test_id(f"nav-{view}").click()
    return page


def _upload(page, path) -> None:
    page.get_by_test_id("file").set_input_files(str(path))
    page.wait_for_function("document.querySelectorAll('[data-testid=result]').length > 0")


def _ids(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=result]", "els => els.map(e => e.dataset.id)")


def _scores(page) -> list[float]:
    return [
        float(s)
        for s in page.eval_on_selector_all("[data-testid=score]", "els => els.map(e => e.textContent)")
    ]


def test_the_page_works_under_its_own_csp(chromium_browser, server) -> None:
    """Search by upload, click a result, browse: nothing the page does is blocked by the
    Content-Security-Policy it is served with."""
    base, photos = server
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base)
    page.evaluate(
        "() => document.addEventListener('securitypolicyviolation', e =>"
        " console.error('Content Security Policy: ' + e.violatedDirective))"
    )
    page.get_by_test_id("file").set_input_files(str(photos / "chelsea.jpg"))
    page.locator("[data-testid=result]").first.wait_for()
    page.locator("[data-testid=result] img").first.wait_for()
    page.locator("[data-testid=result]").nth(1).click()
    page.wait_for_url("**id=*")
    page.locator("[data-testid=result]").first.wait_for()
    page.get_by_test_id("nav-browse").click()
    page.locator("[data-testid=image]").first.wait_for()
    context.close()
    assert violations == []


def test_upload_shows_k_results_with_scores(web_page, server) -> None:
    page = web_page
    base, photos = server
    page.goto(base)
    page.get_by_test_id("k").fill("5")
    _upload(page, photos / "chelsea.jpg")
    assert len(_ids(page)) == 5
    scores = _scores(page)
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.99
    assert "images" in page.get_by_test_id("stats").text_content()


def test_click_a_result_then_back(web_page, server) -> None:
    page = web_page
    base, photos = server
    page.goto(base)
    _upload(page, photos / "coffee.jpg")
    first = _ids(page)
    page.locator("[data-testid=result] img").nth(1).click()
    page.wait_for_url("**id=*")
    page.wait_for_function(
        "ids => [...document.querySelectorAll('[data-testid=result]')].map(e => e.dataset.id).join() !== ids",
        arg=",".join(first),
    )
    neighbours = _ids(page)
    assert neighbours and neighbours != first
    # Back shows the upload's results again, Forward the neighbours
    page.go_back()
    page.wait_for_function(
        "ids => [...document.querySelectorAll('[data-testid=result]')].map(e => e.dataset.id).join() === ids",
        arg=",".join(first),
    )
    page.go_forward()
    page.wait_for_function(
        "ids => [...document.querySelectorAll('[data-testid=result]')].map(e => e.dataset.id).join() === ids",
        arg=",".join(neighbours),
    )
    # a copied link reproduces the results, in a fresh page
    other = page.context.new_page()
    other.goto(page.url)
    other.wait_for_function("document.querySelectorAll('[data-testid=result]').length > 0")
    assert _ids(other) == neighbours
    other.close()


def test_plus_and_minus_change_the_order(web_page, server) -> None:
    page = web_page
    base, photos = server
    page.goto(base)
    _upload(page, photos / "astronaut.jpg")
    before = _ids(page)
    last = before[-1]
    page.locator(f"[data-testid=result][data-id='{last}'] [data-testid=plus]").click()
    page.wait_for_function(
        f"[...document.querySelectorAll('[data-testid=result]')]"
        f".findIndex(e => e.dataset.id === '{last}') < {len(before) - 1}"
    )
    assert _ids(page).index(last) < len(before) - 1
    second = _ids(page)[1]
    page.locator(f"[data-testid=result][data-id='{second}'] [data-testid=minus]").click()
    page.wait_for_function(
        f"[...document.querySelectorAll('[data-testid=result]')]"
        f".findIndex(e => e.dataset.id === '{second}') !== 1"
    )


def test_min_score_hides_results_and_export_has_what_is_shown(web_page, server, tmp_path) -> None:
    page = web_page
    base, photos = server
    page.goto(base)
    _upload(page, photos / "rocket.jpg")
    assert len(_ids(page)) > 2
    page.get_by_test_id("min-score").fill("0.5")
    page.get_by_test_id("min-score").dispatch_event("input")
    kept = _ids(page)
    assert 1 <= len(kept) < 20 and all(s >= 0.5 for s in _scores(page))
    with page.expect_download() as download:
        page.get_by_test_id("export-json").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert [str(r["image_id"]) for r in exported] == kept
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["image_id"] for r in rows] == kept


def test_browse_loads_more_on_scroll(web_page, server) -> None:
    page = _open(web_page, server, "browse")
    page.wait_for_function("document.querySelectorAll('[data-testid=image]').length >= 24")
    total = 3 * len(sample_photos())
    assert total > 24  # more than the first page
    for _ in range(10):
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(200)
        if page.locator("[data-testid=image]").count() == total:
            break
    assert page.locator("[data-testid=image]").count() == total


def test_duplicates_view_decides(web_page, server) -> None:
    page = _open(web_page, server, "duplicates")
    page.get_by_test_id("find-duplicates").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=dup-group]').length > 0")
    groups = page.locator("[data-testid=dup-group]").count()
    first = page.locator("[data-testid=dup-group]").first
    assert first.locator("[data-testid=score]").count() >= 2  # side by side, with scores
    first.get_by_test_id("dup-not").click()  # no token yet: refused, nothing changes
    page.wait_for_function(
        "document.querySelector('[data-testid=duplicates-message]').textContent.includes('Bearer')"
    )
    page.get_by_test_id("token").fill(TOKEN)
    page.locator("[data-testid=dup-group]").first.get_by_test_id("dup-not").click()
    page.wait_for_function(f"document.querySelectorAll('[data-testid=dup-group]').length === {groups - 1}")


def test_clusters_view_opens_a_cluster(web_page, server) -> None:
    page = _open(web_page, server, "clusters")
    page.wait_for_function("document.querySelectorAll('[data-testid=cluster]').length === 4")
    page.locator("[data-testid=cluster]").first.click()
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=cluster-images] [data-testid=image]').length > 0"
    )


def test_map_view_points_lead_to_a_search(web_page, server) -> None:
    page = _open(web_page, server, "map")
    total = 3 * len(sample_photos())
    page.wait_for_function(f"document.querySelectorAll('[data-testid=map-point]').length === {total}")
    page.locator("[data-testid=map-point]").last.click()  # drawn last: on top of any overlap
    page.wait_for_url("**id=*")
    page.wait_for_function("document.querySelectorAll('[data-testid=result]').length > 0")
