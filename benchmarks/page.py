"""Click-to-results times of the web page, as a person meets them (issue 33's acceptance:
upload, "more like this" and browse times kept; the duplicates' first page under 4 s for 400
images).

    python benchmarks/page.py [--images 400] [--repeats 10] [--url URL] [--cold-thumbnails]
    python benchmarks/page.py --smoke        # 12 images, 1 repeat, no warm-up
    python benchmarks/page.py --browser /usr/bin/chromium-headless-shell

A collection of real photographs (skimage, sklearn and matplotlib's sample images: no
downloads) is made in a temporary folder: shots (tiles of a 3 x 3 split of each sample photo,
scaled to 1600 px) and edited copies of most of them (crops, mirror images, turns, JPEG
re-saves, colour shifts, half size), so that there are duplicates. With so few sample photos,
the tiles of one photo (the moon's, a clock's, a cell's) are often grouped as duplicates too,
so the first page of duplicates before calibration is a heavy one (the figures say how many
images it shows: the keeper choice reads each one's file). It is ingested
into a throwaway database (the embedded server in a temporary IMGSEARCH_HOME, or `--url`, an
empty database) and served on 127.0.0.1 (`imgsearch serve`'s app under uvicorn, in a thread),
and Debian's chromium (headless, 1280x900) walks the page, a new browser context (empty
browser cache) for every repeat:

- upload: a file chosen in the search form (a 1600 px JPEG not in the collection), and a
  camera-size one (3000x2000, quality 90, with a little noise; its size is printed);
- more like this (viewer): "More like this" in the viewer of an image opened by a link;
- More on a result: "+ More" on the second result of a search by an indexed image;
- browse tab: the Browse tab clicked on a page of search results (the library not loaded yet);
- browse filter: a folder chosen in the browse view;
- duplicates, first ever: the Duplicates tab on a fresh service of a library never calibrated
  (the groups are computed, by the default margin; the service then calibrates in the
  background, waited for before the next repeat, and the calibration is deleted again);
- duplicates, fresh service: the same once the library is calibrated (a service restarted:
  the groups are computed again);
- duplicates, warm reload: that page reloaded (the groups already computed).

Each is timed in the page itself, from the click's (or the chosen file's `change`) event to the
animation frame that first shows (1) the first card of the new results, with the view no
longer busy ("list"), and (2) that card's thumbnail loaded ("first picture"); a reload is
timed from its navigation start. The page's Resource Timing gives when the view's API answer
arrived. The server's thumbnails are made beforehand (as after a first look at every image)
unless --cold-thumbnails; the browser's cache holds only what that repeat's page showed
before the click (a thumbnail shown there comes at once: the figures say how often).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402

LONG_SIDE = 1600  # px, the longer side of every shot (a downsized camera photo)
ALBUMS = 6  # folders of the collection
GRID = 3  # each sample photo gives GRID x GRID shots (tiles); more shots repeat them
EDITS_PER_SHOT = [2, 0, 3, 1, 2, 4, 1, 3, 2, 2]  # cycled: about 3 files a shot
# skimage's bundled grey photos
GREY = ("camera", "coins", "moon", "clock", "cell")

# --- the collection -------------------------------------------------------------------------


def source_photos() -> dict[str, Image.Image]:
    """The colour sample photos (tests/support/photos.py) and skimage's bundled grey ones, by name."""
    import numpy as np
    import skimage.data

    photos = dict(_support.sample_photos())
    for name in GREY:
        try:
            array = np.asarray(getattr(skimage.data, name)())
        except Exception:  # not bundled with this skimage (it would download): left out
            continue
        photos[name] = Image.fromarray(array).convert("RGB")
    return photos


def shot(photo: Image.Image, tile: int, rng: random.Random) -> Image.Image:
    """Tile `tile` of a GRID x GRID split of the photo (85-95% of it, somewhere inside: the
    shots of one photo do not overlap), scaled to LONG_SIDE."""
    w, h = photo.size
    tw, th = w // GRID, h // GRID
    cw, ch = int(tw * rng.uniform(0.85, 0.95)), int(th * rng.uniform(0.85, 0.95))
    left = (tile % GRID) * tw + rng.randint(0, tw - cw)
    top = (tile // GRID) * th + rng.randint(0, th - ch)
    img = photo.crop((left, top, left + cw, top + ch))
    scale = LONG_SIDE / max(cw, ch)
    return img.resize((round(cw * scale), round(ch * scale)), Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


EDITS = {
    "crop": lambda img, rng: ImageOps.crop(img, border=int(min(img.size) * rng.uniform(0.05, 0.12))),
    "mirror": lambda img, rng: ImageOps.mirror(img),
    "turn": lambda img, rng: img.rotate(rng.choice([-8, -5, 4, 7]), resample=Image.Resampling.BICUBIC),
    "rot90": lambda img, rng: img.transpose(Image.Transpose.ROTATE_90),
    "jpeg": lambda img, rng: _jpeg(img, rng.choice([25, 35, 50])),
    "colour": lambda img, rng: ImageEnhance.Brightness(
        ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.6))
    ).enhance(rng.uniform(0.85, 1.2)),
    "half": lambda img, rng: img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR),
}


def make_collection(folder: Path, images: int, queries: int, seed: int = 0) -> dict:
    """`images` files under `folder`/photos/album-N/ (shots and their edited copies, dated a few
    days apart), and `queries` query JPEGs under `folder`/queries (new edits of shots, so that
    each has close matches, none of them in the collection). What was made, in numbers."""
    rng = random.Random(seed)
    photos = source_photos()
    names = list(photos)
    start = datetime(2020, 1, 1, 12, 0)
    shots: list[Image.Image] = []
    files = 0
    while files < images:
        i = len(shots)
        img = shot(photos[names[i % len(names)]], (i // len(names)) % GRID**2, rng)
        shots.append(img)
        album = folder / "photos" / f"album-{i % ALBUMS}"
        album.mkdir(parents=True, exist_ok=True)
        made = [(album / f"{names[i % len(names)]}-{i:03d}.jpg", img, 90)]
        for edit in rng.sample(sorted(EDITS), EDITS_PER_SHOT[i % len(EDITS_PER_SHOT)]):
            made.append((album / f"{names[i % len(names)]}-{i:03d}-{edit}.jpg", EDITS[edit](img, rng), 90))
        for n, (path, picture, quality) in enumerate(made[: images - files]):
            picture.save(path, quality=quality)
            when = (start + timedelta(days=5 * i, hours=n)).timestamp()
            os.utime(path, (when, when))
            files += 1
    (folder / "queries").mkdir(exist_ok=True)
    from sample_images import camera_jpeg

    query_files, camera_files = [], []
    for q in range(queries):
        base = shots[(q * 7 + 3) % len(shots)]
        picture = EDITS["colour"](EDITS["crop"](base, rng), rng)
        path = folder / "queries" / f"query-{q:02d}.jpg"
        picture.save(path, quality=90)
        query_files.append(path)
        camera = folder / "queries" / f"camera-{q:02d}.jpg"
        camera.write_bytes(camera_jpeg(shots[(q * 11 + 5) % len(shots)], seed=q))
        camera_files.append(camera)
    return {
        "images": files,
        "shots": len(shots),
        "sources": len(names),
        "folders": min(ALBUMS, len(shots)),
        "bytes": sum(p.stat().st_size for p in (folder / "photos").rglob("*.jpg")),
        "query_files": query_files,
        "query_bytes": statistics.median(p.stat().st_size for p in query_files),
        "camera_files": camera_files,
        "camera_bytes": statistics.median(p.stat().st_size for p in camera_files),
    }


# --- the page's own stopwatch ---------------------------------------------------------------

# Installed in every page before its scripts: `__bench.arm(spec)` starts watching for the next
# `spec.trigger` event ("click" or "change") on an element inside `spec.on` (or, without a
# trigger, from the navigation's start: armed through sessionStorage before a reload);
# `__bench.result` then resolves with the times (ms after that event) of the animation frames
# that first show the first new `spec.list` element (visible, `spec.busy` not aria-busy) and
# its picture loaded, and the view's API requests (`spec.api`) from Resource Timing.
PROBE = r"""
(() => {
  const B = (window.__bench = {});
  let a = null;
  performance.setResourceTimingBufferSize(5000);
  B.arm = (spec) => {
    a = { spec, stale: new WeakSet(document.querySelectorAll(spec.list)), t0: spec.trigger ? null : 0,
          list: null, listFrame: null, thumb: null, thumbFrame: null, thumbSrc: null, broken: false };
    B.result = new Promise((resolve) => { a.resolve = resolve; });
    setTimeout(() => done(true), spec.timeout || 60000);
    if (!spec.trigger) watch();
    return true;
  };
  for (const type of ["click", "change"]) {
    window.addEventListener(type, (event) => {
      if (!a || a.t0 !== null || a.spec.trigger !== type) return;
      if (a.spec.on && !(event.target.closest && event.target.closest(a.spec.on))) return;
      const now = performance.now();
      a.t0 = event.timeStamp > 0 && event.timeStamp <= now ? event.timeStamp : now;
      watch();
    }, true);
  }
  function watch() {
    new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
    document.addEventListener("load", check, true);
    const tick = () => { check(); if (a && !a.finished) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    check();
  }
  function check() {
    if (!a || a.t0 === null || a.finished) return;
    const first = [...document.querySelectorAll(a.spec.list)].find((e) => !a.stale.has(e));
    if (!first || !first.checkVisibility()) return;
    const busy = a.spec.busy && document.querySelector(a.spec.busy);
    if (busy && busy.getAttribute("aria-busy") === "true") return;
    if (a.list === null) {
      a.list = performance.now();
      requestAnimationFrame(() => { a.listFrame = performance.now(); settle(); });
    }
    const img = first.querySelector("img");
    if (a.thumb === null && img && img.complete) {
      if (img.naturalWidth === 0) { a.broken = true; return; }
      a.thumb = performance.now();
      a.thumbSrc = img.currentSrc;
      requestAnimationFrame(() => { a.thumbFrame = performance.now(); settle(); });
    }
  }
  function settle() { if (a.listFrame !== null && a.thumbFrame !== null) done(false); }
  function done(timedOut) {
    if (!a || a.finished) return;
    a.finished = true;
    const t0 = a.t0 ?? 0;
    const at = (t) => (t === null ? null : t - t0);
    const entries = performance.getEntriesByType("resource").filter((e) => e.startTime >= t0 - 1);
    const api = entries.filter((e) => new URL(e.name).pathname === a.spec.api);
    const thumb = entries.find((e) => e.name === a.thumbSrc);
    a.resolve({
      timedOut, triggered: a.t0 !== null, broken: a.broken,
      list: at(a.listFrame), listDom: at(a.list), thumb: at(a.thumbFrame), thumbDom: at(a.thumb),
      apiSent: api.length ? at(api[0].startTime) : null,
      apiAnswered: api.length ? at(api[api.length - 1].responseEnd) : null,
      apiRequests: api.length,
      thumbAnswered: thumb ? at(thumb.responseEnd) : null,
      cards: document.querySelectorAll(a.spec.list).length,
      members: a.spec.members ? document.querySelectorAll(a.spec.members).length : null,
      message: a.spec.message ? (document.querySelector(a.spec.message) || {}).textContent || "" : "",
    });
  }
  const pending = sessionStorage.getItem("__bench_arm");
  if (pending) { sessionStorage.removeItem("__bench_arm"); B.arm(JSON.parse(pending)); }
})();
"""

QUIET = """() => !document.querySelector("[aria-busy=true]") && [...document.images].every((i) => {
    const box = i.getBoundingClientRect();
    return i.complete || !i.checkVisibility() || box.bottom <= 0 || box.top >= innerHeight || !box.width;
})"""

RESULTS = {
    "list": "[data-testid=result]",
    "busy": "[data-testid=results]",
    "api": "/api/search",
    "message": "[data-testid=message]",
}
BROWSE = {
    "list": "[data-testid=image]",
    "busy": "[data-testid=browse]",
    "api": "/api/images",
    "message": "[data-testid=browse-message]",
}
GROUPS = {
    "list": "[data-testid=dup-group]",
    "busy": "[data-testid=duplicates]",
    "api": "/api/duplicates",
    "message": "[data-testid=duplicates-message]",
    "members": "[data-testid=dup-member]",
}


class Walker:
    """Fresh browser contexts at 1280x900 on one Chromium, each with the stopwatch."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.problems: list[str] = []

    @contextlib.contextmanager
    def page(self):
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(PROBE)
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        try:
            yield page
        finally:
            context.close()

    @staticmethod
    def settled(page, selector: str) -> None:
        """The first `selector` on screen and the page quiet: nothing busy, the pictures on
        screen loaded, then 200 ms more."""
        page.locator(selector).first.wait_for(state="visible")
        page.wait_for_function(QUIET)
        page.wait_for_timeout(200)

    @staticmethod
    def timed(page, spec: dict, action) -> dict:
        page.evaluate("spec => window.__bench.arm(spec)", spec)
        action()
        return page.evaluate("() => window.__bench.result")

    @staticmethod
    def timed_reload(page, spec: dict) -> dict:
        page.evaluate("spec => sessionStorage.setItem('__bench_arm', JSON.stringify(spec))", spec)
        page.reload()
        return page.evaluate("() => window.__bench.result")


# --- the measures ---------------------------------------------------------------------------


def upload(walker: Walker, base: str, query: Path) -> dict:
    with walker.page() as page:
        page.goto(base + "/")
        walker.settled(page, "[data-testid=image]")  # the library under the form
        spec = {**RESULTS, "trigger": "change", "on": "[data-testid=file]"}
        return walker.timed(page, spec, lambda: page.get_by_test_id("file").set_input_files(str(query)))


def more_like_this(walker: Walker, base: str, image_id: int) -> dict:
    with walker.page() as page:
        page.goto(f"{base}/?view=browse&image={image_id}")  # the viewer, opened by a link
        walker.settled(page, "[data-testid=viewer-details] dd")
        spec = {**RESULTS, "trigger": "click", "on": "[data-testid=viewer-similar]"}
        return walker.timed(page, spec, lambda: page.get_by_test_id("viewer-similar").click())


def more_on_result(walker: Walker, base: str, image_id: int) -> dict:
    with walker.page() as page:
        page.goto(f"{base}/?view=search&id={image_id}")
        walker.settled(page, RESULTS["list"])
        spec = {**RESULTS, "trigger": "click", "on": "[data-testid=plus]"}
        plus = page.locator(RESULTS["list"]).nth(1).get_by_test_id("plus")
        return walker.timed(page, spec, plus.click)


def browse_tab(walker: Walker, base: str, image_id: int) -> dict:
    with walker.page() as page:
        page.goto(f"{base}/?view=search&id={image_id}")  # results: the library is not loaded
        walker.settled(page, RESULTS["list"])
        spec = {**BROWSE, "trigger": "click", "on": "[data-testid=nav-browse]"}
        return walker.timed(page, spec, lambda: page.get_by_test_id("nav-browse").click())


def browse_filter(walker: Walker, base: str, folder: str) -> dict:
    with walker.page() as page:
        page.goto(f"{base}/?view=browse")
        walker.settled(page, BROWSE["list"])
        page.locator(f"[data-testid=folder] option[value='{folder}']").wait_for(state="attached")
        spec = {**BROWSE, "trigger": "change", "on": "[data-testid=folder]"}
        return walker.timed(page, spec, lambda: page.get_by_test_id("folder").select_option(folder))


def duplicates_tab(walker: Walker, base: str, reload: bool) -> tuple[dict, dict | None]:
    """The Duplicates tab clicked on the first page of a service (and the page reloaded)."""
    with walker.page() as page:
        page.goto(base + "/")
        walker.settled(page, "[data-testid=image]")
        spec = {**GROUPS, "trigger": "click", "on": "[data-testid=nav-duplicates]"}
        first = walker.timed(page, spec, lambda: page.get_by_test_id("nav-duplicates").click())
        again = None
        if reload:
            walker.settled(page, GROUPS["list"])
            again = walker.timed_reload(page, {**GROUPS, "trigger": None, "on": None})
        return first, again


# --- running them ---------------------------------------------------------------------------


def _ms(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return f"{'-':>21}"
    text = f"{min(got):6.0f} {statistics.median(got):6.0f} {max(got):6.0f}"
    return text + (f" ({len(values) - len(got)} n/a)" if len(got) < len(values) else "")


def _image_ids(index) -> list[int]:
    with index.reading() as conn:
        return [row[0] for row in conn.execute("SELECT id FROM imgsearch.images ORDER BY id").fetchall()]


def _copies_with_siblings(index) -> list[int]:
    """The edited copies of shots that have three files or more (the shot, this copy, another)."""
    with index.reading() as conn:
        rows = conn.execute("SELECT id, path FROM imgsearch.images ORDER BY id").fetchall()
    shots: dict[str, list[tuple[int, bool]]] = {}
    for image_id, path in rows:
        parts = Path(path).stem.rsplit("-", 2)  # name-NNN or name-NNN-edit
        edited = len(parts) == 3 and not parts[2].isdigit()
        shots.setdefault("-".join(parts[:2]) if edited else Path(path).stem, []).append((image_id, edited))
    return [i for files in shots.values() if len(files) >= 3 for i, edited in files if edited]


def duplicates_steps(url: str, encoder, repeats: int = 3) -> dict:
    """Seconds of the first page of duplicates on a fresh library object, in this process: the
    groups (collection.duplicates.find_groups) and the whole page (`Index.duplicates`, limit 10:
    the groups again, then the keepers of its groups, which read their files); medians."""
    from imgsearch.collection.calibration import stored_calibration
    from imgsearch.collection.duplicates import find_groups
    from imgsearch.db import store
    from imgsearch.library import Index

    groups, pages, sizes = [], [], []
    for _ in range(repeats):
        fresh = Index(url, device="cpu", pool_size=2, encoders=[encoder])
        try:
            with fresh.reading() as conn:
                enc_id = store.find_encoder_id(conn, encoder.identity)
                calibration = stored_calibration(conn, enc_id)
                t = time.perf_counter()
                find_groups(conn, enc_id, encoder.dimension, None, None, calibration and calibration.margin)
                groups.append(time.perf_counter() - t)
            t = time.perf_counter()
            page = fresh.duplicates(limit=10)
            pages.append(time.perf_counter() - t)
            sizes = [len(g.members) for g in page.groups]
        finally:
            fresh.close()
    return {"groups": statistics.median(groups), "page": statistics.median(pages), "sizes": sizes}


def _make_thumbnails(base: str, ids: list[int]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def get(image_id: int) -> None:
        with urllib.request.urlopen(f"{base}/api/images/{image_id}/thumb?size=256") as answer:
            answer.read()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(get, ids))


def _wait_calibrated(index, limit_s: float = 600) -> float:
    t0 = time.perf_counter()
    time.sleep(0.2)
    while index.calibrating() and time.perf_counter() - t0 < limit_s:
        time.sleep(0.1)
    return time.perf_counter() - t0


def _forget_calibration(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM imgsearch.duplicate_calibrations")


def _chromium_version(chromium: str) -> str:
    try:
        out = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.strip() or "chromium"
    except (OSError, subprocess.SubprocessError):
        return "chromium"


_T0 = time.perf_counter()


def _progress(text: str) -> None:
    print(f"[{time.perf_counter() - _T0:5.0f} s] {text}", flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: argparse.Namespace, url: str, home: Path) -> int:
    from playwright.sync_api import sync_playwright

    from imgsearch import __version__
    from imgsearch.library import Index

    web = _support.web_support()
    chromium = args.browser or (web.CHROMIUM if args.smoke else shutil.which("chromium") or web.CHROMIUM)
    serving = web.serving

    started = datetime.now(UTC)
    load_before = _load()
    repeats, warm = args.repeats, 0 if args.smoke else 1
    t = time.perf_counter()
    made = make_collection(home / "collection", args.images, repeats + warm)
    made_s = time.perf_counter() - t

    _progress(f"{made['images']} images made")
    index = Index(url, device="cpu", pool_size=8)
    if _image_ids(index):
        print(f"{url}: the database is not empty; give an empty, throwaway one", file=sys.stderr)
        return 2
    encoder = index.encoder()
    t = time.perf_counter()
    index.ingest([home / "collection" / "photos"])
    ingest_s = time.perf_counter() - t
    ids = _image_ids(index)
    _progress("ingested")
    copies = _copies_with_siblings(index)  # searched for by id: each has two close matches or more
    picks = [copies[(i * 37 + 11) % len(copies)] for i in range(repeats + warm)]
    rows: list[tuple[str, list[dict]]] = []
    notes: list[str] = []

    def measure(name: str, one) -> list[dict]:
        got = []
        for i in range(warm + repeats):
            result = one(i)
            if result.get("timedOut") or not result.get("triggered"):
                raise RuntimeError(f"{name}: no results within the time limit ({result})")
            if i >= warm:
                got.append(result)
        rows.append((name, got))
        _progress(f"{name}: {_ms([r['list'] for r in got])}")
        return got

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=web.LAUNCH_ARGS, headless=True)
        walker = Walker(browser)
        _progress(f"measuring ({warm} warm-up + {repeats} each; list ms min median max)")
        with serving(index) as base:
            if not args.cold_thumbnails:
                t = time.perf_counter()
                _make_thumbnails(base, ids)
                notes.append(
                    f"thumbnails of all {len(ids)} images made beforehand in {time.perf_counter() - t:.1f} s"
                )
            else:
                notes.append("thumbnails made when first asked for (--cold-thumbnails)")
            with urllib.request.urlopen(f"{base}/api/folders") as answer:
                names = [f["name"] for f in json.load(answer)["folders"] if f["name"]]
            folders = [names[i % len(names)] for i in range(warm + repeats)]
            queries = made["query_files"]
            last = measure("upload (file chosen)", lambda i: upload(walker, base, queries[i]))
            notes.append(
                f"upload: {made['query_bytes'] / 1024:.0f} KiB JPEGs at {LONG_SIDE} px; "
                f"{last[-1]['cards']} results shown; the page said “{last[-1]['message']}”"
            )
            cameras = made["camera_files"]
            last = measure("upload, camera JPEG", lambda i: upload(walker, base, cameras[i]))
            notes.append(
                f"upload, camera JPEG: 3000x2000, {made['camera_bytes'] / 2**20:.1f} MiB; "
                f"the page said “{last[-1]['message']}”"
            )
            measure("more like this (viewer)", lambda i: more_like_this(walker, base, picks[i]))
            measure("More on a result", lambda i: more_on_result(walker, base, picks[i]))
            measure("browse tab", lambda i: browse_tab(walker, base, picks[i]))
            measure("browse filter (folder)", lambda i: browse_filter(walker, base, folders[i]))
        index.close()

        # the duplicates: each repeat on a fresh service (a new library object: no groups computed)
        first_ever, fresh, reloads, calibrations, messages = [], [], [], [], []
        for i in range(warm + repeats):
            _forget_calibration(url)
            service = Index(url, device="cpu", pool_size=8, encoders=[encoder])
            with serving(service) as base:
                result, _ = duplicates_tab(walker, base, reload=False)
                calibrations.append(_wait_calibrated(service))
            service.close()
            if result.get("timedOut"):
                raise RuntimeError(f"duplicates, first ever: no groups within the time limit ({result})")
            if i >= warm:
                first_ever.append(result)
            messages.append(result["message"])
        rows.append(("duplicates, first ever", first_ever))
        _progress(f"duplicates, first ever: {_ms([r['list'] for r in first_ever])}")
        for i in range(warm + repeats):
            service = Index(url, device="cpu", pool_size=8, encoders=[encoder])
            with serving(service) as base:
                result, again = duplicates_tab(walker, base, reload=True)
            service.close()
            if result.get("timedOut") or again is None or again.get("timedOut"):
                raise RuntimeError(f"duplicates: no groups within the time limit ({result}, {again})")
            if i >= warm:
                fresh.append(result)
                reloads.append(again)
        rows.append(("duplicates, fresh service", fresh))
        rows.append(("duplicates, warm reload", reloads))
        _progress(f"duplicates, fresh service: {_ms([r['list'] for r in fresh])}")
        _progress(f"duplicates, warm reload: {_ms([r['list'] for r in reloads])}")
        notes.append(
            f"duplicates, first ever: the page said “{messages[-1]}” ({first_ever[-1]['cards']} groups, "
            f"{first_ever[-1]['members']} images on its first page; "
            f"{max(r['apiRequests'] for r in first_ever)} request(s) at most); the "
            f"background calibration that follows took {statistics.median(calibrations):.1f} s (median)"
        )
        notes.append(
            f"duplicates, fresh service (calibrated): the page said “{fresh[-1]['message']}” "
            f"({fresh[-1]['cards']} groups, {fresh[-1]['members']} images on its first page)"
        )
        steps = duplicates_steps(url, encoder)
        notes.append(
            f"duplicates in-process, a fresh library object: the groups {steps['groups'] * 1000:.0f} ms, "
            f"the first page with its keepers {steps['page'] * 1000:.0f} ms (medians of 3); that page's "
            f"groups have {min(steps['sizes'], default=0)}-{max(steps['sizes'], default=0)} images, "
            f"{sum(steps['sizes'])} in all (the keeper choice reads each one's file)"
        )
        _progress("duplicates timed in-process")
        browser.close()

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print()
    print("imgsearch page: click-to-results times (benchmarks/page.py)")
    print(
        f"date {started:%Y-%m-%d %H:%M} UTC · {platform.machine()} with {cores} cores ({usable} usable) · "
        f"{_chromium_version(chromium)} headless at 1280x900 · imgsearch {__version__} · {encoder.name} "
        f"({type(encoder).__name__}) · Python {platform.python_version()}"
    )
    print(
        f"collection: {made['images']} images ({made['shots']} shots of {made['sources']} sample photos and "
        f"{made['images'] - made['shots']} edited copies; {made['folders']} folders; "
        f"{made['bytes'] / 2**20:.0f} MiB), made in {made_s:.0f} s, ingested in {ingest_s:.1f} s"
    )
    print(f"load average (1, 5, 15 min): {load_before} before, {_load()} after")
    print(f"{repeats} repeats after {warm} warm-up; ms from the click (or file chosen) to the frame showing:")
    print()
    header = f"{'':28} {'list: min median max':>21}   {'first picture':>21}   {'API answer (median)':>19}"
    print(header)
    for name, results in rows:
        answered = [r["apiAnswered"] for r in results if r["apiAnswered"] is not None]
        api = f"{statistics.median(answered):8.0f}" if answered else f"{'-':>8}"
        shown, pictures = _ms([r["list"] for r in results]), _ms([r["thumb"] for r in results])
        print(f"{name:28} {shown}   {pictures}   {api:>19}")
    cached = [
        f"{name} {n} of {len(results)}"
        for name, results in rows
        if (n := sum(r["thumb"] is not None and r["thumbAnswered"] is None for r in results))
    ]
    if cached:
        notes.append(
            "first picture already in the browser's cache (shown earlier on that page, so it came at once): "
            + ", ".join(cached)
        )
    print()
    for note in notes:
        print(f"- {note}")
    problems = [p for p in walker.problems if p]
    if problems:
        print(f"- the browser's console: {len(problems)} error(s), e.g. {problems[0]!r}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "date": started.isoformat(),
                    "cores": cores,
                    "images": made["images"],
                    "load_before": load_before,
                    "load_after": _load(),
                    "measures": {name: results for name, results in rows},
                },
                indent=1,
            )
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=400, help="images in the collection (default 400)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats of each measure (default 10)")
    parser.add_argument(
        "--url", help="an empty, throwaway database (default: the embedded server in a temporary home)"
    )
    parser.add_argument(
        "--cold-thumbnails", action="store_true", help="do not make the thumbnails beforehand"
    )
    parser.add_argument("--json", help="also write every repeat's figures to this file")
    parser.add_argument(
        "--browser",
        help="the chromium to drive (default: Debian's chromium, as the published figures; "
        "--smoke: the tests' browser, its headless shell where installed)",
    )
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeats = 12, 1
    args.database_url = args.database_url or args.url

    made_home = args.home is None
    home = _support.home(args, "imgsearch-bench-page-")  # model cache, thumbnails, embedded data
    os.environ.pop("IMGSEARCH_DATABASE_URL", None)
    try:
        with _support.database_server(args, home) as server:
            return run(args, server.url, home)
    finally:
        if made_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
