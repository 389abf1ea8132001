"""The web page in headless Chromium (Debian's, driven by Playwright) against a live server
(every view at a phone's and a desktop's width, axe and no sideways scrolling, is
journeys/test_page_journeys.py's `test_every_view_photographed`): searches that race,
the viewer, feedback, browsing by folder, duplicates decisions, clusters, the map, the docs."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from .support import web as web_support
from .support.photos import sample_photos
from .support.web import (
    PHONE,
    TOKEN,
    _expect,
    _id_of,
    _ids,
    _page,
    _results,
)

chromium_browser = web_support.chromium_browser  # the shared fixtures, where pytest finds them
web_collection = web_support.web_collection
server = web_support.server
web_page = web_support.web_page

pytestmark = pytest.mark.slow  # a browser: the full tier only


def test_two_result_columns_and_big_targets_on_a_phone(chromium_browser, server, tmp_path, request) -> None:
    base, _, index, _ = server
    context, page = _page(chromium_browser, request, tmp_path, PHONE)
    page.goto(f"{base}/?view=search&id={_id_of(index, 'coffee.jpg')}")
    _expect()(_results(page).nth(3)).to_be_visible()
    boxes = [_results(page).nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[1]["x"] > boxes[0]["x"]  # side by side
    for button in ("plus", "minus"):
        box = page.locator(f"[data-testid={button}]").first.bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44
    header = page.locator("header.top").bounding_box()
    assert header["height"] <= 110  # brand and views: two lines at most
    context.close()


# --- search ---------------------------------------------------------------------------------


def test_upload_shows_the_query_its_results_and_a_link_repeats_it(web_page, server) -> None:
    base, photos, _, _ = server
    page, expect = web_page, _expect()
    page.goto(base)
    page.get_by_test_id("k").fill("5")
    page.get_by_test_id("k").dispatch_event("change")
    page.get_by_test_id("min-score").fill("-1")  # every result (by default, the close ones only)
    page.get_by_test_id("file").set_input_files(str(photos / "chelsea.jpg"))
    expect(_results(page)).to_have_count(5)
    expect(page).to_have_url(re.compile(r"upload=[0-9a-f]{64}"))
    expect(page.get_by_test_id("query")).to_be_visible()
    assert page.get_by_test_id("query-image").get_attribute("src")
    first = _results(page).first
    assert first.locator(".name").inner_text() == "chelsea.jpg"  # a short name...
    assert first.locator(".name").get_attribute("title").endswith("/chelsea.jpg")  # ...the path on hover
    scores = [float(s) for s in page.get_by_test_id("score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.95
    ids = _ids(page)
    page.reload()  # the upload is kept on the server under its sha256
    expect(_results(page)).to_have_count(5)
    assert _ids(page) == ids
    expect(page.get_by_test_id("query-image")).to_have_attribute(
        "src", re.compile(r"/api/queries/[0-9a-f]{64}")
    )


def test_a_slow_earlier_search_never_replaces_a_newer_one(web_page, server) -> None:
    base, photos, index, delays = server
    page, expect = web_page, _expect()
    rocket = _id_of(index, "rocket.jpg")
    delays.once("search", lambda args, kwargs: args[0] == f"id:{rocket}", 3.0)
    page.goto(f"{base}/?view=search&id={rocket}")  # slow
    expect(page.get_by_test_id("message")).to_have_class(re.compile("busy"))
    expect(page.get_by_test_id("search")).to_be_disabled()
    page.get_by_test_id("file").set_input_files(str(photos / "coffee.jpg"))  # fast, and later
    expect(_results(page).first.locator(".name")).to_have_text("coffee.jpg")
    page.wait_for_timeout(3500)  # the slow answer would have arrived by now
    expect(_results(page).first.locator(".name")).to_have_text("coffee.jpg")
    expect(page).to_have_url(re.compile(r"upload="))
    expect(page.get_by_test_id("search")).to_be_enabled()


def test_the_viewer_shows_an_image_and_leads_to_more_like_it(web_page, server) -> None:
    base, _, index, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=search&id={_id_of(index, 'astronaut.jpg')}")
    _results(page).nth(1).locator("button.open").click()
    viewer = page.get_by_test_id("viewer")
    expect(viewer).to_be_visible()
    second = _ids(page)[1]
    expect(page.get_by_test_id("viewer-details")).to_contain_text("px")
    expect(page.get_by_test_id("viewer-original")).to_have_attribute("href", f"/api/images/{second}/file")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("viewer-position")).to_have_text(re.compile(r"^3 of "))
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("viewer-position")).to_have_text(re.compile(r"^2 of "))
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    _results(page).nth(1).locator("button.open").click()
    page.get_by_test_id("viewer-similar").click()
    expect(page).to_have_url(re.compile(rf"id={second}"))
    expect(page.get_by_test_id("query-text")).to_contain_text(f"image {second}")
    page.go_back()
    expect(page).to_have_url(re.compile(rf"id={_id_of(index, 'astronaut.jpg')}"))
    expect(page.get_by_test_id("query-text")).to_contain_text("astronaut.jpg")


def test_feedback_can_be_undone_and_cleared(web_page, server) -> None:
    base, _, index, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=search&id={_id_of(index, 'coffee.jpg')}&k=8&min=-1")
    expect(_results(page)).to_have_count(8)
    last = _ids(page)[-1]
    last_name = page.locator(f"[data-testid=result][data-id='{last}'] .name").inner_text()
    page.locator(f"[data-testid=result][data-id='{last}'] [data-testid=plus]").click()
    expect(page).to_have_url(re.compile(rf"pos={last}"))
    expect(page.get_by_test_id("positive").locator(f"li[data-id='{last}']")).to_contain_text(last_name)
    # pulled up, once the new results are on screen (the chip can show before they are)
    page.wait_for_function(
        """last => {
            const ids = [...document.querySelectorAll('[data-testid=result]')].map(e => e.dataset.id);
            return ids.length === 8 && ids.indexOf(last) >= 0 && ids.indexOf(last) < 7;
        }""",
        arg=str(last),
        timeout=10_000,
    )
    marked = _ids(page)[1]
    marked_name = page.locator(f"[data-testid=result][data-id='{marked}'] .name").inner_text()
    page.locator(f"[data-testid=result][data-id='{marked}'] [data-testid=minus]").click()
    expect(page).to_have_url(re.compile(rf"neg={marked}"))
    chip = page.get_by_test_id("negative").locator("button")
    expect(chip).to_have_attribute("aria-label", f"Remove {marked_name} (image {marked}) from “less like”")
    chip.click()  # a card pushed away by − can still be un-marked
    expect(page).not_to_have_url(re.compile("neg="))
    expect(page.locator(f"[data-testid=result][data-id='{marked}']")).to_be_visible()
    page.get_by_test_id("clear-feedback").click()
    expect(page).not_to_have_url(re.compile("pos="))
    expect(page.get_by_test_id("feedback")).to_be_hidden()


def test_min_similarity_filters_without_history_and_says_why(web_page, server, tmp_path) -> None:
    base, _, index, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=search&id={_id_of(index, 'chelsea.jpg')}")
    expect(_results(page).first).to_be_visible()
    before = page.evaluate("() => history.length")
    page.get_by_test_id("min-score").fill("")
    page.get_by_test_id("min-score").press_sequentially("0.875")
    expect(page).to_have_url(re.compile(r"min=0.875"))
    assert page.evaluate("() => history.length") == before
    scores = [float(s) for s in page.get_by_test_id("score").all_inner_texts()]
    assert scores and min(scores) >= 0.875
    kept = _ids(page)
    with page.expect_download() as download:
        page.get_by_test_id("export-json").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert [str(r["image_id"]) for r in exported] == kept and {"similarity", "path"} <= set(exported[0])
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["image_id"] for r in rows] == kept
    page.get_by_test_id("min-score").fill("0.9999")
    expect(page.get_by_test_id("message")).to_contain_text("the best is")
    page.get_by_test_id("min-score").fill("2")
    expect(page.get_by_test_id("message")).to_have_class(re.compile("error"))
    expect(page.get_by_test_id("message")).to_contain_text("from -1 to 1")


def test_failures_are_said_and_nothing_stale_stays(web_page, server) -> None:
    base, _, index, _ = server
    page, expect = web_page, _expect()
    held: list = []  # /api/stats answers after the click (it once reset the message to the prompt)
    page.route("**/api/stats", lambda route: held.append(route))
    page.goto(base)
    expect(page.get_by_test_id("nav-search")).to_have_attribute("aria-current", "page")  # wired
    page.get_by_test_id("search").click()  # nothing chosen
    expect(page.get_by_test_id("message")).to_have_class(re.compile("error"))
    while not held:
        page.wait_for_timeout(20)
    with page.expect_response("**/api/stats"):
        held[0].continue_()
    page.unroute("**/api/stats")
    expect(page.get_by_test_id("stats")).to_contain_text("image")
    expect(page.get_by_test_id("message")).to_have_class(re.compile("error"))
    expect(page.get_by_test_id("message")).to_contain_text("first")
    expect(page.get_by_test_id("message")).to_have_text(re.compile("^Choose"))  # no words: no CLIP model
    page.route(
        "**/api/search",
        lambda route: route.fulfill(status=502, body="<html>Bad Gateway</html>", content_type="text/html"),
    )
    page.goto(f"{base}/?view=search&id={_id_of(index, 'rocket.jpg')}")
    expect(page.get_by_test_id("message")).to_contain_text("502")
    expect(_results(page)).to_have_count(0)
    page.unroute("**/api/search")
    page.route("**/api/search", lambda route: route.abort())
    page.get_by_test_id("url").fill("https://example.org/a.jpg")
    page.get_by_test_id("search").click()
    expect(page.get_by_test_id("message")).to_contain_text("cannot be reached")
    assert not any("Uncaught" in p for p in page.problems)


# --- browse, duplicates, clusters, map, docs -----------------------------------------------


def test_browse_by_folder_races_and_loads_more(web_page, server) -> None:
    base, _, _, delays = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=browse")
    expect(page.locator("[data-testid=image]")).to_have_count(24)
    # the folders arrive by a request of their own: waited for, not read at once (a race that
    # failed on a busy machine)
    folders = page.get_by_test_id("folder").locator("option")
    expect(folders.filter(has_text=re.compile(r"^\s*sub \(\d+\)\s*$"))).to_have_count(1)
    delays.once("images", lambda args, kwargs: kwargs.get("folder") == "sub", 3.0)
    page.get_by_test_id("folder").select_option("sub")  # slow
    page.get_by_test_id("folder").select_option("")  # fast, and later
    page.wait_for_timeout(3500)
    expect(page.get_by_test_id("folder")).to_have_value("")
    expect(page).to_have_url(re.compile(r"view=browse$"))
    paths = [
        t for t in page.locator("[data-testid=image] .name").evaluate_all("els => els.map(e => e.title)")
    ]
    assert any("/sub/" not in p for p in paths)  # the whole collection, not only sub/
    page.get_by_test_id("folder").select_option("sub")
    expect(page).to_have_url(re.compile(r"folder=sub"))
    expect(page.locator("[data-testid=image]").first).to_be_visible()
    paths = page.locator("[data-testid=image] .name").evaluate_all("els => els.map(e => e.title)")
    assert paths and all("/sub/" in p for p in paths)
    page.get_by_test_id("folder").press("Enter")  # no reload to /? (an empty search)
    expect(page).to_have_url(re.compile(r"view=browse"))
    page.get_by_test_id("folder").select_option("")
    total = 3 * len(sample_photos())
    for _ in range(20):
        if page.locator("[data-testid=image]").count() == total:
            break
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(200)
    expect(page.locator("[data-testid=image]")).to_have_count(total)
    expect(page.get_by_test_id("browse-message")).to_contain_text(f"{total} images, newest first.")


def test_duplicates_suggest_the_original_and_decide_per_image(web_page, server) -> None:
    base, _, index, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=duplicates")
    groups = page.locator("[data-testid=dup-group]")
    expect(groups.first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("duplicates-message")).not_to_have_class(re.compile("error"))
    # no threshold asked: the contrast rule, said in words for people (no margin, no command)
    expect(page.get_by_test_id("threshold")).to_have_value("")
    expect(page.get_by_test_id("duplicates-message")).to_contain_text(
        re.compile(r"^\d+ groups of near-identical images")
    )
    assert "margin" not in page.get_by_test_id("duplicates-message").inner_text()
    for group in groups.all():
        kept = group.locator(".card.keep .name").inner_text()
        assert "_rot12" not in kept, kept  # never the copy with black corners
    page.get_by_test_id("token").fill(TOKEN)
    page.reload()  # the token is kept once typed, not only after a search
    expect(page.get_by_test_id("token")).to_have_value(TOKEN)
    first = groups.first
    group_id = int(first.get_attribute("data-id"))
    members = first.locator("[data-testid=dup-member]")
    expect(members.nth(2)).to_be_visible()
    members.nth(1).locator("[data-testid=dup-keep-choice]").check()  # another keeper
    members.nth(2).locator("[data-testid=dup-exclude]").check()  # and one that is no duplicate
    kept_id = int(members.nth(1).get_attribute("data-id"))
    left_out = int(members.nth(2).get_attribute("data-id"))
    first.get_by_test_id("dup-keep").click()
    expect(page.get_by_test_id("duplicates-message")).to_contain_text(f"Saved for group {group_id}")
    with index.reading() as conn:
        decisions = conn.execute(
            "SELECT decision, count(*) FROM imgsearch.duplicate_decisions GROUP BY 1"
        ).fetchall()
    assert dict(decisions)["keep"] >= 1 and dict(decisions)["not-duplicates"] >= 1
    page_ids = {
        int(i)
        for i in page.locator("[data-testid=dup-member]").evaluate_all("els => els.map(e => e.dataset.id)")
    }
    assert left_out not in page_ids or kept_id in page_ids


def test_clusters_open_in_the_url(web_page, server) -> None:
    base, _, _, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=clusters")
    clusters = page.get_by_test_id("cluster")
    expect(clusters).to_have_count(4)
    clusters.first.click()
    expect(page).to_have_url(re.compile(r"cluster=\d"))
    expect(page.get_by_test_id("cluster-title")).to_have_text(re.compile(r"Cluster \d+: \d+ images?"))
    expect(page.locator("[data-testid=cluster-image]").first).to_be_visible()
    expect(clusters.first).to_have_attribute("aria-pressed", "true")


def test_map_points_stay_inside_and_open_the_viewer(web_page, server) -> None:
    base, _, _, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/?view=map")
    points = page.get_by_test_id("map-point")
    expect(points).to_have_count(3 * len(sample_photos()))
    box = page.get_by_test_id("map").bounding_box()
    for point in points.all():
        p = point.bounding_box()
        assert box["x"] <= p["x"] and p["x"] + p["width"] <= box["x"] + box["width"] + 0.5
        assert box["y"] <= p["y"] and p["y"] + p["height"] <= box["y"] + box["height"] + 0.5
    points.first.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("viewer")).to_be_visible()


def test_docs_and_favicon_work_offline(web_page, server) -> None:
    base, _, _, _ = server
    page, expect = web_page, _expect()
    page.goto(f"{base}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert page.locator(".opblock").count() >= 15
    assert page.locator(".opblock-summary-path", has_text="/api/search").count() >= 1
    page.goto(f"{base}/redoc")
    expect(page.get_by_text("imgsearch", exact=False).first).to_be_visible(timeout=30_000)
    answer = page.request.get(f"{base}/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg")


def test_the_page_works_under_its_own_csp(chromium_browser, server, tmp_path, request) -> None:
    """Search, the viewer, browse: nothing the page does is blocked by the
    Content-Security-Policy it is served with."""
    base, photos, _, _ = server
    context, page = _page(chromium_browser, request, tmp_path)
    expect = _expect()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base)
    page.evaluate(
        "() => document.addEventListener('securitypolicyviolation', e =>"
        " console.error('Content Security Policy: ' + e.violatedDirective))"
    )
    page.get_by_test_id("file").set_input_files(str(photos / "chelsea.jpg"))
    expect(_results(page).first).to_be_visible()
    _results(page).nth(1).locator("button.open").click()
    expect(page.get_by_test_id("viewer-image")).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_test_id("nav-browse").click()
    expect(page.locator("[data-testid=image]").first).to_be_visible()
    context.close()
    assert violations == []
