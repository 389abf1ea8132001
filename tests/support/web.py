"""What the browser tests share (tests/test_web.py, tests/journeys/test_page_journeys.py): Debian's
chromium (its headless shell) driven by Playwright, a live server on a small collection of real
photos, a page at a phone's or a desktop's width, and small ways to read the page."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .photos import sample_photos

TOKEN = "web-token"
# Debian's headless shell (package chromium-headless-shell: chromium's Blink without the browser
# around it, what Playwright itself runs headless tests in) takes about half the CPU of chromium's
# own headless mode (test_web: 14 vs 26 CPU s); Debian's chromium where only it is installed.
CHROMIUM = (
    shutil.which("chromium-headless-shell") or shutil.which("chromium") or "/usr/bin/chromium-headless-shell"
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
AXE_RULES = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    # violations in full, the passes not itemised (a third of the time, a fifteenth of the JSON)
    "resultTypes": ["violations"],
}
VIEWS = ["search", "browse", "duplicates", "clusters", "map"]


def _need_browser() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium-headless-shell")
        pytest.skip("no browser: apt-get install -y chromium-headless-shell (or chromium)")


@pytest.fixture(scope="module")
def chromium_browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Delays:
    """Make the service's library object slow for chosen calls (to let searches race)."""

    def __init__(self, index: Index) -> None:
        self.rules: list[tuple[str, object, float]] = []
        for name in ("search", "images"):
            real = getattr(index, name)
            setattr(index, name, self._slowed(name, real))

    def _slowed(self, name, real):
        def call(*args, **kwargs):
            for rule in list(self.rules):
                method, match, seconds = rule
                if method == name and match(args, kwargs):
                    self.rules.remove(rule)
                    time.sleep(seconds)
            return real(*args, **kwargs)

        return call

    def once(self, method: str, match, seconds: float) -> None:
        self.rules.append((method, match, seconds))


def taken_on(i: int) -> datetime:
    """The date the files of the i-th sample photo carry: the 15th of month i+1 of 2021, at noon."""
    return datetime(2021 + i // 12, 1 + i % 12, 15, 12, 0)


def write_photos(photos: Path) -> None:
    """Each sample photo, its mirror image and a copy turned 12° (black corners), every third
    one in `sub/`, the three files of the i-th photo dated `taken_on(i)`."""
    (photos / "sub").mkdir(parents=True, exist_ok=True)
    for i, (name, img) in enumerate(sample_photos().items()):
        folder = photos / "sub" if i % 3 == 0 else photos
        files = [folder / f"{name}.jpg", folder / f"{name}-mirror.jpg", folder / f"{name}_rot12.png"]
        img.save(files[0], quality=90)
        img.transpose(0).save(files[1], quality=90)  # near twins
        img.rotate(12).save(files[2])  # rotation padding: black corners
        when = taken_on(i).timestamp()
        for file in files:
            os.utime(file, (when, when))


@contextlib.contextmanager
def serving(index: Index):
    """The service over `index` on a free local port, in a thread: its base URL."""
    import uvicorn

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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class Collection:
    """The photos (`write_photos`, written once, only read) and two databases to copy:
    `ingested` holds them ingested, `made` also their clusters and map."""

    photos: Path
    ingested: str  # database names, templates of each test's own database
    made: str


@pytest.fixture(scope="session")
def web_collection(pg_admin_url, migrated_template, lite0, tmp_path_factory):
    """Ingested with its duplicate margin calibrated, then clustered and mapped, once a session
    (each test used to do it again; the duplicates view starts a calibration in the background
    on a collection without one: test_duplicates' concern): a test's database is a copy (CREATE
    DATABASE ... TEMPLATE), as it was after the same calls."""
    from .pg import scratch_database

    photos = tmp_path_factory.mktemp("web-photos")
    write_photos(photos)
    with contextlib.ExitStack() as stack:
        ingested = stack.enter_context(scratch_database(pg_admin_url, template=migrated_template))
        index = Index(ingested, device="cpu", pool_size=4, encoders=[lite0])
        try:
            index.ingest([photos])
            index.calibrate_duplicates()
        finally:
            index.close()  # a template has no connection left open
        made = stack.enter_context(scratch_database(pg_admin_url, template=_name(ingested)))
        index = Index(made, device="cpu", pool_size=4, encoders=[lite0])
        try:
            index.clusters(4)
            index.map()
        finally:
            index.close()
        yield Collection(photos, _name(ingested), _name(made))


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextlib.contextmanager
def copied_collection(pg_admin_url: str, template: str, lite0):
    """An Index on a new copy of one of `web_collection`'s databases."""
    from .pg import scratch_database

    with scratch_database(pg_admin_url, template=template) as url:
        index = Index(url, device="cpu", pool_size=4, encoders=[lite0])
        try:
            yield index
        finally:
            index.close()


@pytest.fixture
def server(pg_admin_url, web_collection: Collection, lite0):
    """A served collection with its clusters and map made: (base URL, photos folder, index, delays)."""
    with copied_collection(pg_admin_url, web_collection.made, lite0) as index:
        delays = Delays(index)
        with serving(index) as base:
            yield base, web_collection.photos, index, delays


def _page(browser, request, tmp_path, viewport=DESKTOP):
    context = browser.new_context(accept_downloads=True, viewport=viewport)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    return context, page


@pytest.fixture
def web_page(chromium_browser, server, tmp_path, request):
    context, page = _page(chromium_browser, request, tmp_path)
    yield page
    page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
    context.close()


def _expect():
    from playwright.sync_api import expect

    return expect


def _results(page):
    return page.locator("[data-testid=result]")


def _ids(page) -> list[str]:
    return [li.get_attribute("data-id") for li in _results(page).all()]


def _id_of(index: Index, name: str) -> int:
    page = index.images(limit=500)
    return next(i.id for i in page.images if Path(i.path).name == name)
