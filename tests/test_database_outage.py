"""The service while its database stops, and after it returns (finding 4 of the attack probe:
plain-text 500s, then 30-second hangs): JSON 503s with Retry-After within seconds, then
answers again without a restart of the service."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fastapi.testclient import TestClient

from imgsearch.db import embedded
from imgsearch.db.schema import open_database
from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.hostile import write_photos

FAST_S = 5.0  # what "fails fast" means here: the pool waits 2 s; before, a request hung 30 s
BACK_S = 60.0  # the service answers again within this long after the database is back

READS = ["/health", "/api/images", "/api/images/1", "/api/images/1/similar", "/api/duplicates", "/api/stats"]


def _down_answers(client: TestClient) -> None:
    for url in READS:
        started = time.monotonic()
        answer = client.get(url)
        took = time.monotonic() - started
        assert answer.status_code == 503, (url, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/json", url
        assert answer.json()["detail"] and answer.headers["retry-after"] == "2", url
        assert took < FAST_S, (url, took)
    search = client.post("/api/search", json={"image_id": 1})
    assert search.status_code == 503 and search.json()["detail"]
    write = client.delete("/api/images/1", headers={"Authorization": "Bearer t"})  # a write connects anew
    assert write.status_code == 503 and "pgdata" not in write.text and "/" not in write.json()["detail"]


def _comes_back(client: TestClient) -> None:
    deadline = time.monotonic() + BACK_S
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)
    for url in READS:
        assert client.get(url).status_code == 200, url


def _postmaster_pid(home) -> int:
    return int((embedded.pgdata_dir(home) / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
def test_database_stopped_or_killed_under_the_service(tmp_path, lite0) -> None:
    home = tmp_path / "home"
    server = embedded.start(home)
    try:
        open_database(server.url)
        write_photos(tmp_path / "photos", 4)
        index = Index(server.url, device="cpu", pool_size=2, encoders=[lite0])
        index.ingest([tmp_path / "photos"])
        with TestClient(create_app(index, api_token="t"), raise_server_exceptions=False) as client:
            _comes_back(client)

            embedded.stop(home)  # a clean shutdown: pooled connections get AdminShutdown
            _down_answers(client)
            embedded.start(home)
            _comes_back(client)

            os.kill(_postmaster_pid(home), signal.SIGKILL)  # the server dies
            deadline = time.monotonic() + 30
            while embedded.running_server(home) is not None:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            _down_answers(client)
            embedded.start(home)
            _comes_back(client)
        index.close()
    finally:
        embedded.stop(home)
