"""`serve` on the embedded default owns its server (finding 5 of the journeys probe of 6450b97):
stopped with `imgsearch db stop`, or killed, it is started again within seconds, and the
service answers again with no other command run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imgsearch.db import embedded
from imgsearch.library import Index
from imgsearch.service.app import create_app

from ..support.hostile import write_photos


def _answering_within(client: TestClient, seconds: float) -> float:
    """Seconds until /health and a page of images answer 200 (fails after `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if client.get("/health").status_code == 200 and client.get("/api/images").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"the service did not answer again within {seconds} s")


def _postmaster(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
def test_serve_restarts_its_embedded_server_after_db_stop_and_kill(
    tmp_path: Path, lite0, monkeypatch
) -> None:
    home = Path(tempfile.mkdtemp(prefix="imgsearch-supervised-"))  # not below pytest's 0700 folder
    monkeypatch.setenv("IMGSEARCH_HOME", str(home))
    monkeypatch.delenv("IMGSEARCH_DATABASE_URL", raising=False)
    write_photos(tmp_path / "photos", 3)
    index = Index(device="cpu", pool_size=2, encoders=[lite0])
    try:
        assert index.db.embedded_dir is not None
        index.ingest([tmp_path / "photos"])
        with TestClient(create_app(index)) as client:
            assert client.get("/health").status_code == 200

            first = _postmaster(home)
            stopped = subprocess.run(
                [sys.executable, "-m", "imgsearch", "db", "stop"],
                env={**os.environ, "IMGSEARCH_HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert stopped.returncode == 0, stopped.stderr
            _answering_within(client, 30)  # the service's supervisor starts it again within ~1 s
            assert client.get("/api/images").json()["images"]
            assert _postmaster(home) != first, "the server answering is not a new one"

            killed = _postmaster(home)
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (home / "pgdata" / "postmaster.pid").exists() and _postmaster(home) == killed:
                assert time.monotonic() < deadline, "the killed server was not started again"
                time.sleep(0.2)
            _answering_within(client, 30)
            answer = client.get("/api/images")
            assert answer.status_code == 200 and len(answer.json()["images"]) == 3, answer.text
    finally:
        index.close()
        with contextlib.suppress(Exception):  # a server killed a moment ago may not stop cleanly
            embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_the_page_recovers_by_itself_when_the_embedded_server_is_stopped(
    lite0, monkeypatch, tmp_path
) -> None:
    """The page journey of the same: the library is shown again with no reload and no command
    once `serve` has started its server again (a read waits out the 503s)."""
    from playwright.sync_api import sync_playwright

    from ..support import web as web_support

    web_support._need_browser()
    home = Path(tempfile.mkdtemp(prefix="imgsearch-supervised-page-"))
    monkeypatch.setenv("IMGSEARCH_HOME", str(home))
    monkeypatch.delenv("IMGSEARCH_DATABASE_URL", raising=False)
    write_photos(tmp_path / "photos", 3)
    index = Index(device="cpu", pool_size=2, encoders=[lite0])
    try:
        index.ingest([tmp_path / "photos"])
        with web_support.serving(index) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=web_support.CHROMIUM, args=web_support.LAUNCH_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/?view=browse")
            images = page.locator("[data-testid=image]")
            web_support._expect()(images).to_have_count(3)
            embedded.stop(home)  # what `imgsearch db stop` does
            page.get_by_test_id("sort").select_option("old")  # a new read while it is down
            message = page.get_by_test_id("browse-message")  # said once the new page arrived
            web_support._expect()(message).to_contain_text("3 images, oldest first", timeout=40_000)
            web_support._expect()(images).to_have_count(3)
            browser.close()
    finally:
        index.close()
        with contextlib.suppress(Exception):
            embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
