"""Settings read from the environment (every `IMGSEARCH_*` variable is read here)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import ImgsearchError

DEFAULT_MODEL = "efficientnet-lite0"
DATABASE_URL_ENV = "IMGSEARCH_DATABASE_URL"
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_DOWNLOAD_DEADLINE_S = 30.0


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


def _number(name: str, default: float, cast=float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ImgsearchError(f"{name}={raw!r} is not a number.") from None
    if not value > 0:
        raise ImgsearchError(f"{name}={raw!r} must be greater than 0.")
    return value


def max_download_bytes() -> int:
    """Size cap for one downloaded image (`IMGSEARCH_MAX_DOWNLOAD_BYTES`)."""
    return int(_number("IMGSEARCH_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_DOWNLOAD_BYTES, int))


def download_deadline_s() -> float:
    """Time allowed for one whole download, redirects included (`IMGSEARCH_DOWNLOAD_TIMEOUT_S`)."""
    return float(_number("IMGSEARCH_DOWNLOAD_TIMEOUT_S", DEFAULT_DOWNLOAD_DEADLINE_S))


def allowed_hosts() -> list[str]:
    """Hosts, addresses or networks (CIDR) that downloads may reach although they are
    loopback, private, link-local or multicast (`IMGSEARCH_ALLOWED_HOSTS`, comma-separated)."""
    raw = os.environ.get("IMGSEARCH_ALLOWED_HOSTS") or ""
    return [item.strip().lower() for item in raw.split(",") if item.strip()]
