"""Journeys through the web page (issue 33), as a person walks them, in Debian's chromium at a
phone's and a desktop's width: the library on the first visit; a search by a dropped, pasted or
chosen file (a damaged one too), refined with "More" and "Less", with the line where the close
matches end; the viewer from a link, kept by a reload and closed by Back; browsing by folder and
date with the count; clusters and the map made from the page with the API token; duplicates
reviewed and decided, the decisions kept across a reload. Every state passes axe (no critical
or serious violation) and fits the screen; each view is photographed at both widths (into
$IMGSEARCH_SCREENSHOTS when set, e.g. docs/screenshots, else the test's folder).

Words search needs a CLIP model (tests/test_text_search.py covers it) and a search by URL needs
another server the service may fetch from: neither is walked here."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from ..support import web as web_support
from ..support.photos import sample_photos
from ..support.web import (
    AXE_RULES,
    DESKTOP,
    PHONE,
    TOKEN,
    VIEWS,
    Delays,
    _expect,
    _id_of,
    _page,
    _results,
    copied_collection,
    serving,
    taken_on,
)

pytestmark = pytest.mark.slow  # a browser: the full tier only

chromium_browser = web_support.chromium_browser  # the shared fixtures, where pytest finds them
web_collection = web_support.web_collection
server = web_support.server


@functools.cache
def _names() -> list[str]:
    """The sample photos' names, in the order of their dates (`taken_on`)."""
    return list(sample_photos())


IMAGES = 33  # 11 sample photos, each with its mirror image and a copy turned 12°


@pytest.fixture
def fresh_server(pg_admin_url, web_collection, lite0):
    """A served collection with no clusters and no map yet; making the clusters takes a second
    longer than it would, so that its progress can be seen."""
    with copied_collection(pg_admin_url, web_collection.ingested, lite0) as index:
        real = index.clusters

        def slow_clusters(*args, **kwargs):
            time.sleep(1.5)
            return real(*args, **kwargs)

        index.clusters = slow_clusters
        with serving(index) as base:
            yield base, web_collection.photos, index, Delays(index)


def _shots() -> Path | None:
    """Where the screenshots are kept: IMGSEARCH_SCREENSHOTS (docs/img for the documentation), or
    nowhere (they are taken and read, not kept)."""
    kept = os.environ.get("IMGSEARCH_SCREENSHOTS")
    if not kept:
        return None
    folder = Path(kept)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shoot(page, folder: Path | None, name: str) -> None:
    """A screenshot of the viewport; kept in `folder` as a PNG of 256 colours (small enough to
    keep in the repository)."""
    from PIL import Image

    shot = Image.open(io.BytesIO(page.screenshot()))
    assert shot.size == (page.viewport_size["width"], page.viewport_size["height"]), shot.size
    if folder is not None:
        small = shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(folder / f"{name}-{page.viewport_size['width']}.png", optimize=True)


def _check(page, what: str) -> None:
    """No critical or serious axe violation, and nothing wider than the screen."""
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")  # (dimmed while loading)
    violations = Axe().run(page, options=AXE_RULES).response["violations"]
    serious = [
        (v["id"], len(v["nodes"]), v["nodes"][0]["target"])
        for v in violations
        if v["impact"] in ("critical", "serious")
    ]
    assert not serious, f"{what} at {page.viewport_size['width']}px: {serious}"
    wider = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{what} is {wider}px wider than a {page.viewport_size['width']}px screen"


def _file_event(page, kind: str, selector: str, path: Path, mime: str = "image/jpeg") -> None:
    """Drop (`kind` "drop", after a dragover) or paste (`kind` "paste") the file at `path` on
    the element `selector`, as the browser does for a file from the desktop or the clipboard."""
    page.evaluate(
        """([kind, selector, data, name, type]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type }));
            const target = document.querySelector(selector);
            if (kind === "paste") {
                target.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true }));
                return;
            }
            const how = { dataTransfer: dt, bubbles: true, cancelable: true };
            target.dispatchEvent(new DragEvent("dragover", how));
            target.dispatchEvent(new DragEvent("drop", how));
        }""",
        [kind, selector, base64.b64encode(path.read_bytes()).decode(), path.name, mime],
    )


def _api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path) as answer:
        return json.load(answer)


def _day(i: int) -> str:
    return taken_on(i).strftime("%Y-%m-%d")


# the pictures on screen that failed to load (a browser shows a broken-image icon for each)
BROKEN_PICTURES = """() => [...document.images]
    .filter((i) => i.checkVisibility() && i.complete && i.naturalWidth === 0).map((i) => i.src)"""


def _all_thumbnails_shown(page, selector: str) -> None:
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
        }""",
        arg=selector,
        timeout=30_000,
    )


# --- search ---------------------------------------------------------------------------------


def test_first_visit_shows_the_library_and_a_file_dropped_anywhere_searches(
    chromium_browser, server, tmp_path, request
) -> None:
    base, photos, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path)
    expect = _expect()
    page.goto(base)
    # the first page: the search form, and under it the library, newest first, with its count
    library = page.locator("[data-testid=image]")
    expect(library.first).to_be_visible()
    expect(page.get_by_test_id("browse-message")).to_contain_text(f"{IMAGES} images, newest first")
    newest = library.first.locator(".name").inner_text()
    assert newest.startswith(_names()[-1]), newest  # the last photo has the latest date
    expect(page.get_by_test_id("nav-search")).to_have_attribute("aria-current", "page")
    _check(page, "the first page")

    # a file dropped on the library (not on the dashed box) searches for images like it
    _file_event(page, "drop", "[data-testid=browse]", photos / "coffee.jpg")
    expect(_results(page).first.locator(".name")).to_have_text(re.compile(r"^coffee"))
    expect(page).to_have_url(re.compile(r"view=search&upload=[0-9a-f]{64}"))
    expect(page.get_by_test_id("query-text")).to_contain_text("the uploaded image")
    expect(page.locator("#browse-view")).to_be_hidden()  # the library gives way to the results

    # pasted on another view: the search view opens with it
    page.get_by_test_id("nav-duplicates").click()
    _file_event(page, "paste", "body", photos / "chelsea.jpg")
    expect(page.get_by_test_id("nav-search")).to_have_attribute("aria-current", "page")
    expect(_results(page).first.locator(".name")).to_have_text(re.compile(r"^chelsea"))
    # the close matches (itself, its mirror image, its turned copy) only, by default; the others a click away
    expect(_results(page)).to_have_count(3)
    expect(page.get_by_test_id("min-score")).to_have_value("0.2")
    page.get_by_test_id("show-all").click()
    expect(_results(page)).to_have_count(20)
    expect(page).to_have_url(re.compile(r"min=-1"))
    divider = page.get_by_test_id("close-end")
    expect(divider).to_contain_text("Close matches end here")
    before = page.locator("[data-testid=results] > li").evaluate_all(
        "items => items.findIndex((li) => li.dataset.testid === 'close-end')"
    )
    assert before == 3  # after the photo and its two copies, before the first other picture
    _check(page, "results with the close matches marked")

    # a damaged file: a sentence, no broken picture
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 50)
    page.get_by_test_id("file").set_input_files(str(bad))
    expect(page.get_by_test_id("message")).to_contain_text("“bad.jpg” cannot be read as an image")
    expect(page.get_by_test_id("message")).to_have_class(re.compile("error"))
    expect(page.get_by_test_id("query")).to_be_hidden()  # no broken picture, no "Searching for"
    assert page.evaluate(BROKEN_PICTURES) == []
    expect(_results(page)).to_have_count(0)
    context.close()
    assert page.problems == [] or all("422" in p for p in page.problems), page.problems


def test_more_and_less_have_words_and_their_chips_name_the_image(
    chromium_browser, server, tmp_path, request
) -> None:
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    expect = _expect()
    page.goto(f"{base}/?view=search&id={_id_of(index, 'astronaut.jpg')}&min=-1&k=8")
    expect(_results(page)).to_have_count(8)
    third = _results(page).nth(2)
    name = third.locator(".name").inner_text()
    more, less = third.get_by_test_id("plus"), third.get_by_test_id("minus")
    expect(more).to_have_text(re.compile(r"More$"))
    expect(less).to_have_text(re.compile(r"Less$"))
    expect(more).to_have_accessible_name(f"More like {name}")
    more.click()
    chip = page.get_by_test_id("positive").locator("li")
    expect(chip).to_have_count(1)
    expect(chip.locator(".chip-name")).to_have_text(name)
    assert chip.locator("img").get_attribute("src").endswith("/thumb")
    remove = chip.get_by_role("button")
    expect(remove).to_have_accessible_name(
        re.compile(rf"^Remove {re.escape(name)} \(image \d+\) from “more like”$")
    )
    _check(page, "feedback chips")
    page.reload()  # the chip names the image from the URL alone
    expect(page.get_by_test_id("positive").locator(".chip-name")).to_have_text(name)
    page.get_by_test_id("positive").get_by_role("button").click()
    expect(page.get_by_test_id("feedback")).to_be_hidden()
    expect(page).not_to_have_url(re.compile("pos="))
    context.close()
    assert page.problems == []


# --- the viewer -----------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_viewer_opens_from_a_link_stays_on_reload_and_back_closes_it(
    chromium_browser, server, tmp_path, request, viewport
) -> None:
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, viewport)
    expect = _expect()
    coffee = _id_of(index, "coffee.jpg")
    viewer = page.get_by_test_id("viewer")
    page.goto(f"{base}/?view=browse&sort=name&image={coffee}")  # a link to one image
    expect(viewer).to_be_visible()
    expect(page.get_by_test_id("viewer-title")).to_have_text("coffee.jpg")
    expect(page.get_by_test_id("viewer-position")).to_have_text(re.compile(r"^\d+ of \d+$"))  # in its list
    page.reload()
    expect(viewer).to_be_visible()
    expect(page.get_by_test_id("viewer-title")).to_have_text("coffee.jpg")
    _check(page, "the viewer")
    page.keyboard.press("ArrowRight")  # the next by name, in the URL too
    expect(page.get_by_test_id("viewer-title")).to_have_text("coffee_rot12.png")
    expect(page).to_have_url(re.compile(rf"image={_id_of(index, 'coffee_rot12.png')}"))
    page.keyboard.press("Escape")  # opened by a link: closing leaves the list's address
    expect(viewer).to_be_hidden()
    expect(page).not_to_have_url(re.compile("image="))
    expect(page).to_have_url(re.compile(r"view=browse&sort=name$"))

    card = page.locator("[data-testid=image]").nth(3)
    card.locator("button.open").click()
    expect(viewer).to_be_visible()
    opened = card.get_attribute("data-id")
    expect(page).to_have_url(re.compile(rf"image={opened}$"))
    page.go_back()  # Back closes it
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(re.compile(r"view=browse&sort=name$"))
    page.go_forward()  # and Forward opens it again
    expect(viewer).to_be_visible()
    page.get_by_test_id("viewer-close").click()
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(re.compile(r"view=browse&sort=name$"))
    expect(card.locator("button.open")).to_be_focused()  # back where the person was
    context.close()
    assert page.problems == []


# --- browse ---------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_tiles_are_square_and_show_the_whole_picture(
    chromium_browser, server, tmp_path, request, viewport
) -> None:
    """Finding 6 of the probe of 6450b97: the picture's height=256 beat the stylesheet's square,
    so tiles were 169x256 and landscape photos lost their sides."""
    base, _, _, _ = server
    context, page = _page(chromium_browser, request, tmp_path, viewport)
    page.goto(f"{base}/?view=browse")
    tiles = page.locator("[data-testid=image] .open img")
    _expect()(tiles.first).to_be_visible()
    shapes = tiles.evaluate_all(
        """images => images.slice(0, 8).map((i) => {
            const box = i.getBoundingClientRect();
            return [box.width, box.height, getComputedStyle(i).objectFit];
        })"""
    )
    assert shapes and all(abs(w - h) <= 1 and w > 50 and fit == "contain" for w, h, fit in shapes), shapes
    context.close()


def test_browse_by_date_and_folder_says_how_many(chromium_browser, server, tmp_path, request) -> None:
    base, photos, _, _ = server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    expect = _expect()
    names = _names()
    in_sub = {i for i in range(len(names)) if i % 3 == 0}
    page.goto(f"{base}/?view=browse")
    message = page.get_by_test_id("browse-message")
    expect(message).to_contain_text(f"{IMAGES} images, newest first: the first 24 shown")

    # the oldest first
    page.get_by_test_id("sort").select_option("old")
    expect(page).to_have_url(re.compile(r"sort=old"))
    expect(page.locator("[data-testid=image]").first.locator(".name")).to_have_text(
        re.compile(rf"^{names[0]}")
    )

    # from March to June (months 3 to 6: photos 2 to 5), typed as a person does
    page.get_by_test_id("since").fill(_day(2))
    page.get_by_test_id("since").dispatch_event("change")
    page.get_by_test_id("until").fill(_day(5))
    page.get_by_test_id("until").dispatch_event("change")
    expect(page).to_have_url(re.compile(rf"since={_day(2)}&until={_day(5)}"))
    expect(message).to_contain_text(f"12 images from {taken_on(2):%b} 15, 2021")
    expect(page.locator("[data-testid=image]")).to_have_count(12)
    shown = set(page.locator("[data-testid=image] .name").all_inner_texts())
    assert all(any(s.startswith(names[i]) for i in range(2, 6)) for s in shown), shown

    # and in the folder sub/ too: the photos of both
    page.get_by_test_id("folder").select_option("sub")
    both = [i for i in range(2, 6) if i in in_sub]
    expect(message).to_contain_text(f"{3 * len(both)} images in sub")
    expect(page.locator("[data-testid=image]")).to_have_count(3 * len(both))
    _check(page, "browse by folder and date")

    # a reload keeps it all; "Any date" takes the dates away
    page.reload()
    expect(page.get_by_test_id("since")).to_have_value(_day(2))
    expect(page.locator("[data-testid=image]")).to_have_count(3 * len(both))
    page.get_by_test_id("clear-dates").click()
    expect(message).to_contain_text(f"{3 * len(in_sub)} images in sub, oldest first.")

    # no image in those dates: said so
    page.goto(f"{base}/?view=browse&since=2030-01-01")
    expect(message).to_contain_text("No image has a date in that range")
    # a folder that is not in the library: a sentence, not an empty page
    page.goto(f"{base}/?view=browse&folder=/nowhere/at/all")
    expect(message).to_contain_text(re.compile(r"No (indexed )?images? (is )?in (this|the) folder"))
    context.close()


# --- clusters and the map, made from the page -------------------------------------------------


def test_clusters_and_the_map_are_made_from_the_page_with_the_token(
    chromium_browser, fresh_server, tmp_path, request
) -> None:
    base, _, _, _ = fresh_server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    expect = _expect()
    shots = _shots()
    page.goto(f"{base}/?view=clusters")
    panel = page.get_by_test_id("make-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("make-why")).to_contain_text("There are no clusters yet")
    expect(page.locator("text=POST /api/clusters")).to_have_count(0)  # no developer's note
    expect(page.get_by_test_id("token-hint")).to_contain_text("ask whoever runs it")
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        _check(page, "clusters, none yet")
        _shoot(page, shots, "clusters-none")
    page.get_by_test_id("make").click()  # no token yet: said how to give one
    expect(page.get_by_test_id("make-message")).to_contain_text("Enter the API token first")
    expect(page.get_by_test_id("token")).to_be_focused()
    page.get_by_test_id("token").fill("not-the-token")
    page.get_by_test_id("make").click()
    expect(page.get_by_test_id("make-message")).to_contain_text("The API token was not accepted")

    page.get_by_test_id("token").fill(TOKEN)
    page.get_by_test_id("make").click()
    expect(page.get_by_test_id("make-progress")).to_be_visible()  # progress while it runs
    expect(page.get_by_test_id("make-message")).to_contain_text("Step 1 of 2")
    expect(page.get_by_test_id("make")).to_be_disabled()
    expect(page.get_by_test_id("make-elapsed")).to_have_text(re.compile(r"^\d+ s$"))
    expect(page.get_by_test_id("cluster").first).to_be_visible(timeout=60_000)
    expect(panel).to_be_hidden()
    expect(page.get_by_test_id("clusters-message")).to_contain_text(f"of {IMAGES} images")
    _all_thumbnails_shown(page, "[data-testid=cluster] img")  # no blank tiles on a first visit

    page.get_by_test_id("nav-map").click()  # made too
    expect(page.get_by_test_id("map-point")).to_have_count(IMAGES)
    expect(page.get_by_test_id("map-make")).to_be_hidden()

    # the token is remembered in this browser (another tab, a reload) until forgotten
    page.reload()
    page.get_by_test_id("nav-duplicates").click()
    expect(page.get_by_test_id("token-saved")).to_contain_text("remembered in this browser")
    expect(page.get_by_test_id("token")).to_have_value(TOKEN)
    other = context.new_page()
    other.goto(f"{base}/?view=duplicates")
    expect(other.get_by_test_id("token")).to_have_value(TOKEN)
    other.close()
    page.get_by_test_id("forget-token").click()
    expect(page.get_by_test_id("token")).to_have_value("")
    assert page.evaluate("() => localStorage.getItem('imgsearch-token')") is None
    page.reload()
    page.get_by_test_id("nav-duplicates").click()
    expect(page.get_by_test_id("token")).to_be_visible()
    expect(page.get_by_test_id("token")).to_have_value("")
    context.close()
    # the browser's notes of the answers the page expects: no clusters yet (404), the wrong token (401)
    assert all(re.search(r"\b(401|404)\b", p) for p in page.problems), page.problems


def test_the_map_on_a_phone_zooms_until_every_image_shows(
    chromium_browser, server, tmp_path, request
) -> None:
    """A library of 400 images on a 390px screen: a sample shows, and zooming in (the map then
    scrolls) shows more, then every one."""
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    expect = _expect()
    real = _api(base, "/api/map")["points"]
    many = [
        {**real[i % len(real)], "x": ((i * 37) % 400) / 400, "y": ((i * 91) % 400) / 400} for i in range(400)
    ]
    page.route(
        "**/api/map",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"points": many})
        ),
    )
    page.goto(f"{base}/?view=map")
    points = page.get_by_test_id("map-point")
    message = page.get_by_test_id("map-message")
    expect(message).to_contain_text(re.compile(r"\d+ of 400 images shown: zoom in to see more"))
    first = points.count()
    assert 100 <= first < 400
    page.get_by_test_id("zoom-in").click()
    expect(page.get_by_test_id("zoom-level")).to_have_text("1.5×")
    assert points.count() > first
    box = page.get_by_test_id("map-box")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth && b.scrollHeight > b.clientHeight")  # it scrolls
    page.get_by_test_id("zoom-all").click()
    expect(points).to_have_count(400)
    expect(message).to_contain_text("400 images (scroll to move around)")
    expect(page.get_by_test_id("zoom-all")).to_be_hidden()
    _check(page, "the map zoomed in")
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; b.scrollTop = b.scrollHeight; }")
    last = points.last
    last.scroll_into_view_if_needed()
    last.click()  # far corners can be reached and opened
    expect(page.get_by_test_id("viewer")).to_be_visible()
    page.keyboard.press("Escape")
    for _ in range(10):
        if page.get_by_test_id("zoom-out").is_disabled():
            break
        page.get_by_test_id("zoom-out").click()
    expect(page.get_by_test_id("zoom-level")).to_have_text("1×")
    expect(points).to_have_count(first)
    context.close()
    assert page.problems == []


# --- duplicates -----------------------------------------------------------------------------


def test_duplicates_reviewed_decided_and_kept_across_a_reload(
    chromium_browser, server, tmp_path, request
) -> None:
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    expect = _expect()
    page.goto(f"{base}/?view=duplicates")
    groups = page.get_by_test_id("dup-group")
    expect(groups.first).to_be_visible(timeout=60_000)
    message = page.get_by_test_id("duplicates-message")
    expect(message).to_contain_text(re.compile(r"^\d+ groups of near-identical images"))
    assert not re.search(r"margin|calibrat|`|imgsearch duplicates", message.inner_text()), (
        message.inner_text()
    )
    before = groups.count()
    page.get_by_test_id("token").fill(TOKEN)

    # a group of three: keep another one, and one is not a duplicate
    member = page.locator("[data-testid=dup-member]")
    group = groups.filter(has=member.nth(2)).filter(has_not=member.nth(3)).first
    group_id = group.get_attribute("data-id")
    members = group.get_by_test_id("dup-member")
    suggested = members.nth(0).get_attribute("data-id")
    kept = members.nth(1).get_attribute("data-id")
    left_out = members.nth(2).get_attribute("data-id")
    kept_name = members.nth(1).locator(".name").inner_text()
    members.nth(1).get_by_test_id("dup-keep-choice").check()
    members.nth(2).get_by_test_id("dup-exclude").check()
    _check(page, "a duplicates group being decided")
    group.get_by_test_id("dup-keep").click()
    expect(message).to_contain_text(f"Saved for group {group_id}: you keep {kept_name}; not a duplicate:")

    def decided_as_asked() -> None:
        """The group left the list: its keeper was chosen over the one other copy, and the third
        image is not a duplicate of either (alone, it is in no group)."""
        expect(groups).to_have_count(before - 1)
        shown = page.get_by_test_id("dup-member").evaluate_all("els => els.map((e) => e.dataset.id)")
        assert not {kept, suggested, left_out} & set(shown), shown

    decided_as_asked()
    page.reload()
    expect(groups.first).to_be_visible(timeout=60_000)
    decided_as_asked()
    with index.reading() as conn:
        rows = conn.execute(
            """SELECT ka.id, kb.id, d.decision FROM imgsearch.duplicate_decisions d
               JOIN imgsearch.images ka ON ka.sha256 = d.a_sha256
               JOIN imgsearch.images kb ON kb.sha256 = d.b_sha256"""
        ).fetchall()
    decisions = {(str(a), str(b), what) for a, b, what in rows}
    assert (kept, suggested, "keep") in decisions
    assert any(what == "not-duplicates" and left_out in (a, b) for a, b, what in decisions)

    # decided groups can be looked at again
    page.get_by_test_id("show-decided").check()
    expect(page).to_have_url(re.compile(r"decided=1"))
    expect(groups).to_have_count(before)
    again = groups.filter(has=page.locator(f"[data-testid=dup-member][data-id='{kept}']"))
    expect(again.get_by_test_id("dup-reasons")).to_have_text(f"Decided: you keep {kept_name}.")
    ids = again.get_by_test_id("dup-member").evaluate_all("els => els.map((e) => e.dataset.id)")
    assert ids == [kept, suggested], ids  # the chosen keeper first; the image left out is in no group
    _check(page, "decided groups")
    context.close()
    assert page.problems == []


# --- every view, photographed -----------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_view_photographed(chromium_browser, server, tmp_path, request, viewport) -> None:
    """Every view at a phone's and a desktop's width: the menu marks it, no critical or serious
    axe violation, nothing wider than the screen, and a screenshot of it (docs/img)."""
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, viewport)
    expect = _expect()
    shots = _shots()
    astronaut = _id_of(index, "astronaut.jpg")
    views = {
        "library": ("/", "[data-testid=image]"),
        "search": (
            f"/?view=search&id={astronaut}&min=-1&pos={_id_of(index, 'grace_hopper.jpg')}",
            "[data-testid=close-end]",
        ),
        "browse": (f"/?view=browse&sort=old&since={_day(3)}", "[data-testid=image]"),
        "viewer": (f"/?view=browse&image={astronaut}", "[data-testid=viewer-details] dd"),
        "duplicates": ("/?view=duplicates", "[data-testid=dup-group]"),
        "clusters": ("/?view=clusters&cluster=0", "[data-testid=cluster-image]"),
        "map": ("/?view=map", "[data-testid=map-point]"),
    }
    for name, (url, ready) in views.items():
        page.goto(base + url)
        if name in VIEWS:  # the menu says where you are
            expect(page.get_by_test_id(f"nav-{name}")).to_have_attribute("aria-current", "page")
        expect(page.locator(ready).first).to_be_visible(timeout=60_000)
        if name == "clusters":
            _all_thumbnails_shown(page, "[data-testid=cluster] img")
        page.wait_for_load_state("networkidle")
        _check(page, name)
        _shoot(page, shots, name)
    # the focused result: a ring inside the card, all round the picture
    page.goto(f"{base}/?view=search&id={astronaut}")
    expect(_results(page).first).to_be_visible()
    page.keyboard.press("Tab")
    for _ in range(30):
        if page.evaluate("() => document.activeElement.matches('[data-testid=result] .open')"):
            break
        page.keyboard.press("Tab")
    ring = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, s.outlineWidth, s.outlineOffset]; }"""
    )
    assert ring == ["solid", "3px", "-4px"], ring
    context.close()
    assert page.problems == []
