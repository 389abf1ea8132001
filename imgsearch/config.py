"""Settings: every `IMGSEARCH_*` environment variable is read here, into one `Settings`.

`load()` reads the environment when called, so a long-lived program (or a test) that changes
a variable sees the change on the next operation that loads its settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imgsearch.errors import ImgsearchError

DEFAULT_MODEL = "efficientnet-lite0"
DATABASE_URL_ENV = "IMGSEARCH_DATABASE_URL"


@dataclass(frozen=True)
class Settings:
    home: Path  # imgsearch's own data: the embedded server, caches
    database_url: str | None  # None: the embedded server below `home`
    replica_url: str | None  # a read replica that searches are sent to (None: the database itself)
    model: str  # default encoder
    device: str  # auto, cpu, cuda, cuda:N, mps
    backend: str  # auto (ONNX Runtime on a CPU, torch on a GPU), torch, onnx
    max_pixels: int  # larger images are refused (decompression bombs)
    max_decode_bytes: int  # memory one image may take to decode (judged from its header)
    max_download_bytes: int  # size cap of one downloaded image
    download_deadline_s: float  # one whole download, redirects included
    allowed_hosts: tuple[str, ...]  # non-public hosts, addresses or networks downloads may reach
    debug: bool  # show tracebacks of unexpected errors
    api_token: str | None  # bearer token for the HTTP service's writes (None: writes disabled)
    max_upload_bytes: int  # largest image upload the HTTP service accepts
    query_concurrency: int  # query images the HTTP service decodes at once
    serve_watch: tuple[str, ...]  # folders `imgsearch serve --watch` keeps in step
    kept_queries_bytes: int  # uploaded query images kept (with their thumbnails), in bytes


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


def _home() -> Path:
    override = os.environ.get("IMGSEARCH_HOME")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return platformdirs.user_data_path("imgsearch").resolve()


def database_url() -> str | None:
    """`IMGSEARCH_DATABASE_URL` (None when unset: the embedded server)."""
    return os.environ.get(DATABASE_URL_ENV) or None


def debug() -> bool:
    """`IMGSEARCH_DEBUG`: show the traceback of an unexpected error."""
    return bool(os.environ.get("IMGSEARCH_DEBUG"))


def load() -> Settings:
    """The settings as the environment gives them now."""
    hosts = os.environ.get("IMGSEARCH_ALLOWED_HOSTS") or ""
    return Settings(
        home=_home(),
        database_url=database_url(),
        replica_url=os.environ.get("IMGSEARCH_REPLICA_URL") or None,
        model=os.environ.get("IMGSEARCH_MODEL") or DEFAULT_MODEL,
        device=os.environ.get("IMGSEARCH_DEVICE") or "auto",
        backend=os.environ.get("IMGSEARCH_BACKEND") or "auto",
        max_pixels=int(_number("IMGSEARCH_MAX_PIXELS", 150_000_000, int)),
        max_decode_bytes=int(_number("IMGSEARCH_MAX_DECODE_BYTES", 512 * 2**20, int)),
        max_download_bytes=int(_number("IMGSEARCH_MAX_DOWNLOAD_BYTES", 50 * 1024 * 1024, int)),
        download_deadline_s=_number("IMGSEARCH_DOWNLOAD_TIMEOUT_S", 30.0),
        allowed_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
        debug=debug(),
        api_token=os.environ.get("IMGSEARCH_API_TOKEN") or None,
        max_upload_bytes=int(_number("IMGSEARCH_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, int)),
        query_concurrency=int(_number("IMGSEARCH_QUERY_CONCURRENCY", max(2, os.cpu_count() or 2), int)),
        kept_queries_bytes=int(_number("IMGSEARCH_KEPT_QUERIES_BYTES", 256 * 2**20, int)),
        serve_watch=tuple(p for p in (os.environ.get("IMGSEARCH_SERVE_WATCH") or "").split(os.pathsep) if p),
    )


# Every IMGSEARCH_* variable imgsearch reads: (name, default as text, what it means). The
# documentation's configuration page is generated from this list (docs/hooks/variables.py).
_DOCUMENTED: tuple[tuple[str, str, str], ...] = (
    (
        DATABASE_URL_ENV,
        "unset: the embedded server",
        "any PostgreSQL with pgvector >= 0.7 (`postgresql://user:pass@host/db`)",
    ),
    (
        "IMGSEARCH_HOME",
        "the user data directory (`~/.local/share/imgsearch`)",
        "imgsearch's own data: the embedded server's files and the ONNX model cache (`models/`)",
    ),
    (
        "IMGSEARCH_REPLICA_URL",
        "unset",
        "a read replica (streaming standby) that searches are sent to; the primary answers while it"
        " does not (`imgsearch serve --replica URL` sets it)",
    ),
    ("IMGSEARCH_MODEL", f"`{DEFAULT_MODEL}`", "default encoder"),
    ("IMGSEARCH_DEVICE", "`auto`", "`auto`, `cpu`, `cuda`, `cuda:N`, `mps`"),
    ("IMGSEARCH_BACKEND", "`auto`", "`auto` (ONNX Runtime on a CPU, torch on a GPU), `torch`, `onnx`"),
    ("IMGSEARCH_MAX_PIXELS", "150000000", "larger images are refused (decompression bombs)"),
    (
        "IMGSEARCH_MAX_DECODE_BYTES",
        "536870912 (512 MiB)",
        "memory one image may take to decode, judged from its header before decoding"
        " (over it: an error row, or 413 for a query)",
    ),
    ("IMGSEARCH_MAX_DOWNLOAD_BYTES", "52428800 (50 MiB)", "size cap of one downloaded (http/https) image"),
    (
        "IMGSEARCH_DOWNLOAD_TIMEOUT_S",
        "30",
        "deadline for one whole download, redirects included (each read also times out after 15 s)",
    ),
    (
        "IMGSEARCH_ALLOWED_HOSTS",
        "unset",
        "comma-separated hosts, addresses or CIDR networks that downloads may reach although they"
        " are loopback, private, link-local or multicast",
    ),
    ("IMGSEARCH_DEBUG", "unset", "show the traceback of an unexpected error"),
    ("IMGSEARCH_API_TOKEN", "unset: writes disabled", "bearer token for the HTTP service's writes"),
    (
        "IMGSEARCH_MAX_UPLOAD_BYTES",
        "20971520 (20 MiB)",
        "largest image upload the HTTP service accepts (413 above, chunked or not)",
    ),
    (
        "IMGSEARCH_QUERY_CONCURRENCY",
        "the number of CPUs (at least 2)",
        "query images the HTTP service decodes at once (others wait up to 10 s, then 503)",
    ),
    (
        "IMGSEARCH_KEPT_QUERIES_BYTES",
        "268435456 (256 MiB)",
        "uploaded query images kept for `?upload=` links, with their thumbnails (the oldest go first)",
    ),
    (
        "IMGSEARCH_SERVE_WATCH",
        "unset",
        "folders `imgsearch serve --watch` keeps in step (set by `serve` for its workers)",
    ),
    (
        "IMGSEARCH_SERVER_SETTINGS",
        "unset",
        "the embedded server's PostgreSQL settings over those sized to the machine:"
        " `shared_buffers=2GB,work_mem=16MB` (`port`, `listen_addresses`, `unix_socket_*`,"
        " `*_file`, `data_directory`, `include*` are refused)",
    ),
)


def documented_variables() -> list[tuple[str, str, str]]:
    """Every `IMGSEARCH_*` variable: (name, default as text, description), for the docs' table."""
    return list(_DOCUMENTED)
