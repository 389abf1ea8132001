"""The settings: one class for every IMGSEARCH_* variable, loaded once by the entry points and
handed down; a bad value is one sentence; the documentation's table comes from the class."""

from __future__ import annotations

import functools
import os
import pickle
import re
from pathlib import Path

import pytest

from imgsearch import config
from imgsearch.errors import ImgsearchError
from imgsearch.library import Index

from .support.cli import imgsearch as run_imgsearch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IMGSEARCH_MAX_PIXELS", "x", "IMGSEARCH_MAX_PIXELS='x' is not a number."),
        ("IMGSEARCH_MAX_PIXELS", "0", "IMGSEARCH_MAX_PIXELS='0' must be greater than 0."),
        ("IMGSEARCH_MAX_DECODE_BYTES", "1.5", "IMGSEARCH_MAX_DECODE_BYTES='1.5' is not a number."),
        ("IMGSEARCH_DOWNLOAD_TIMEOUT_S", "-1", "IMGSEARCH_DOWNLOAD_TIMEOUT_S='-1' must be greater than 0."),
        ("IMGSEARCH_QUERY_CONCURRENCY", "many", "IMGSEARCH_QUERY_CONCURRENCY='many' is not a number."),
        ("IMGSEARCH_KEPT_QUERIES_BYTES", "0", "IMGSEARCH_KEPT_QUERIES_BYTES='0' must be greater than 0."),
    ],
)
def test_a_bad_value_is_one_sentence(monkeypatch, name, value, message) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ImgsearchError) as caught:
        config.load()
    assert str(caught.value) == message


def test_values_are_read_as_before(monkeypatch, tmp_path) -> None:
    for name in ("IMGSEARCH_DATABASE_URL", "IMGSEARCH_MAX_PIXELS", "IMGSEARCH_API_TOKEN"):
        monkeypatch.setenv(name, "")  # empty: unset
    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path / "x" / ".." / "home"))
    monkeypatch.setenv("IMGSEARCH_ALLOWED_HOSTS", " Cams.LAN, 10.0.0.0/8,,")
    monkeypatch.setenv("IMGSEARCH_SERVE_WATCH", os.pathsep.join(["/a", "", "/b"]))
    monkeypatch.setenv("IMGSEARCH_DOWNLOAD_TIMEOUT_S", "2.5")
    monkeypatch.setenv("IMGSEARCH_SERVER_SETTINGS", "work_mem=16MB")
    settings = config.load()
    assert settings.database_url is None and settings.api_token is None
    assert settings.max_pixels == config.MAX_PIXELS
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.allowed_hosts == ("cams.lan", "10.0.0.0/8")
    assert settings.serve_watch == ("/a", "/b")
    assert settings.download_timeout_s == 2.5
    assert settings.server_settings == "work_mem=16MB"
    for raw, shown in [("1", True), ("yes", True), ("0", False), ("false", False), ("", False)]:
        monkeypatch.setenv("IMGSEARCH_DEBUG", raw)
        assert config.load().debug is shown


def test_every_variable_the_product_reads_is_in_the_class_and_its_table() -> None:
    table = config.documented_variables()
    names = [name for name, _, _ in table]
    assert names == [config.variable(field) for field in config.Settings.model_fields]
    assert all(isinstance(cell, str) and cell for row in table for cell in row)
    assert dict((n, d) for n, d, _ in table)["IMGSEARCH_MODEL"] == config.DEFAULT_MODEL
    source = "\n".join(p.read_text() for p in (ROOT / "imgsearch").rglob("*.py"))
    read = set(re.findall(r"IMGSEARCH_[A-Z0-9_]*[A-Z0-9]", source))
    assert read <= set(names), read - set(names)


def test_settings_are_read_from_the_environment_only_through_the_class() -> None:
    for path in (ROOT / "imgsearch").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"os\.environ\[", text), path  # never written (handed over) nor indexed
        assert not re.search(r"(environ\.get|getenv)\(\s*[\"']IMGSEARCH_", text), path


def test_an_index_loads_its_settings_once_and_keeps_them(db, monkeypatch) -> None:
    monkeypatch.setenv("IMGSEARCH_KEPT_QUERIES_BYTES", "1234")
    index = Index(db.url)
    try:
        monkeypatch.setenv("IMGSEARCH_KEPT_QUERIES_BYTES", "5678")  # too late for this index
        assert index.settings.kept_queries_bytes == 1234
    finally:
        index.close()
    given = config.load().model_copy(update={"model": "resnet18", "device": "cpu"})
    index = Index(db.url, settings=given)
    try:
        assert index.settings is given and (index.model, index.device) == ("resnet18", "cpu")
    finally:
        index.close()


def test_serve_hands_its_workers_their_settings_as_the_factorys_argument(monkeypatch) -> None:
    """What uvicorn's supervisor pickles into each worker: the factory with the settings."""
    from imgsearch.service.main import build

    served = config.load().model_copy(update={"model": "resnet18", "serve_watch": ("/photos",)})
    factory = pickle.loads(pickle.dumps(functools.partial(build, served)))
    assert factory.func is build and factory.args == (served,)


def test_the_cli_says_a_bad_setting_in_one_line() -> None:
    env = {**os.environ, "IMGSEARCH_MAX_PIXELS": "lots"}
    result = run_imgsearch("db", "url", env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: IMGSEARCH_MAX_PIXELS='lots' is not a number.\n"
