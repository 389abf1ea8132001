"""Configuration read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DEFAULT_MODEL = "efficientnet-lite0"
DATABASE_URL_ENV = "IMGSEARCH_DATABASE_URL"


def home() -> Path:
    """Directory for imgsearch's own data (the embedded server lives below it)."""
    override = os.environ.get("IMGSEARCH_HOME")
    path = Path(override).expanduser() if override else platformdirs.user_data_path("imgsearch")
    return path.resolve()


def database_url_from_env() -> str | None:
    return os.environ.get(DATABASE_URL_ENV) or None


def default_model() -> str:
    return os.environ.get("IMGSEARCH_MODEL") or DEFAULT_MODEL


def default_device() -> str:
    return os.environ.get("IMGSEARCH_DEVICE") or "auto"
