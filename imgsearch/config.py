"""Settings: every `IMGSEARCH_*` environment variable the product reads, in one class.

The entry points load them once (`load()`: the CLI's commands, `imgsearch.open()` / `Index(...)`,
the HTTP service's startup) and hand them down: an `Index` keeps its `settings`, and the
functions below it take what they need as parameters. A program (or a test) that changes a
variable sees the change in the settings it loads next, not in an `Index` already open.

`documented_variables()` gives the table of every variable (name, default, meaning) from the
class itself, for the documentation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from imgsearch.errors import ImgsearchError

DEFAULT_MODEL = "efficientnet-lite0"
MAX_PIXELS = 150_000_000  # the defaults of the limits on one image
MAX_DECODE_BYTES = 512 * 2**20
PREFIX = "IMGSEARCH_"
DATABASE_URL_ENV = "IMGSEARCH_DATABASE_URL"
SERVER_SETTINGS_ENV = "IMGSEARCH_SERVER_SETTINGS"

_FALSE = {"", "0", "false", "no", "off"}
_POSITIVE = (
    "max_pixels",
    "max_decode_bytes",
    "max_download_bytes",
    "download_timeout_s",
    "max_upload_bytes",
    "query_concurrency",
    "kept_queries_bytes",
)


def _default_home() -> Path:
    import platformdirs

    return platformdirs.user_data_path("imgsearch").resolve()


def _default_concurrency() -> int:
    return max(2, os.cpu_count() or 2)


class Settings(BaseSettings):
    """imgsearch's settings: each field is the variable IMGSEARCH_<FIELD NAME> (an empty variable
    counts as unset). A bad value is an ImgsearchError of one sentence."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        validate_default=False,
    )

    home: Path = Field(
        default_factory=_default_home,
        description="imgsearch's own data: the embedded PostgreSQL server, the model cache, thumbnails "
        "and kept query images.",
        json_schema_extra={
            "shown_default": "the user data folder (platformdirs), e.g. ~/.local/share/imgsearch"
        },
    )
    database_url: str | None = Field(
        None,
        description="The PostgreSQL database (postgresql://user:password@host:port/database); unset: the "
        "embedded server below the home.",
    )
    replica_url: str | None = Field(
        None, description="A read replica of the database that searches are sent to (unset: the database)."
    )
    model: str = Field(DEFAULT_MODEL, description="The default encoder (`imgsearch models` lists them).")
    device: str = Field("auto", description="Where encoders run: auto, cpu, cuda, cuda:N or mps.")
    backend: str = Field(
        "auto", description="How encoders run: auto (ONNX Runtime on a CPU, torch on a GPU), torch or onnx."
    )
    max_pixels: int = Field(MAX_PIXELS, description="Larger images are refused (decompression bombs).")
    max_decode_bytes: int = Field(
        MAX_DECODE_BYTES,
        description="Memory one image may take to decode, judged from its header; larger files are "
        "refused unread.",
    )
    max_download_bytes: int = Field(50 * 2**20, description="Size cap of one downloaded image, in bytes.")
    download_timeout_s: float = Field(
        30.0, description="Seconds one whole download (redirects included) may take."
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated non-public hosts, addresses or networks (CIDR) that image downloads "
        "may reach (public ones always may).",
    )
    debug: bool = Field(
        False, description="Set (to anything but 0, false, no or off): show tracebacks of unexpected errors."
    )
    api_token: str | None = Field(
        None, description="Bearer token the HTTP service's writes need (unset: writes are disabled)."
    )
    max_upload_bytes: int = Field(
        20 * 2**20, description="Largest image upload the HTTP service accepts, in bytes."
    )
    query_concurrency: int = Field(
        default_factory=_default_concurrency,
        description="Query images the HTTP service decodes at once.",
        json_schema_extra={"shown_default": "the CPU count, at least 2"},
    )
    kept_queries_bytes: int = Field(
        256 * 2**20,
        description="Bytes of uploaded query images kept (with their thumbnails) for their links.",
    )
    serve_watch: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=f"Folders `imgsearch serve` indexes and keeps in step (separated by {os.pathsep!r}; "
        "`serve --watch` sets them).",
    )
    server_settings: str | None = Field(
        None,
        description="Overrides of the embedded server's PostgreSQL settings: name=value pairs separated "
        "by commas (e.g. shared_buffers=2GB,work_mem=64MB).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings  # arguments, then the environment: no .env or secrets files

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ImgsearchError(_sentence(exc)) from None

    @field_validator("home", mode="before")
    @classmethod
    def _home(cls, value: Any) -> Any:
        return Path(value).expanduser().resolve() if isinstance(value, (str, Path)) else value

    @field_validator("database_url", "replica_url", "api_token", "server_settings", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None

    @field_validator(*_POSITIVE, mode="before")
    @classmethod
    def _positive_number(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        cast = int if field.annotation in (int, "int") else float
        name = variable(info.field_name)
        try:
            number = cast(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r} is not a number.") from None
        if not number > 0:
            raise ValueError(f"{name}={value!r} must be greater than 0.")
        return number

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        return tuple(h.strip().lower() for h in value if h.strip())

    @field_validator("serve_watch", mode="before")
    @classmethod
    def _folders(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(os.pathsep)
        return tuple(str(p) for p in value if str(p))

    @field_validator("debug", mode="before")
    @classmethod
    def _set(cls, value: Any) -> Any:
        return value.strip().lower() not in _FALSE if isinstance(value, str) else bool(value)


def variable(field: str) -> str:
    """The environment variable of a settings field (`max_pixels` -> IMGSEARCH_MAX_PIXELS)."""
    return f"{PREFIX}{field.upper()}"


def _sentence(exc: ValidationError) -> str:
    """The first error of a validation, as the one sentence the validators wrote (else a plain one)."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    name = variable(str(error["loc"][0])) if error.get("loc") else "a setting"
    return f"{name}={error.get('input')!r} is not valid: {error['msg']}."


def load() -> Settings:
    """The settings as the environment gives them now (for the entry points; the rest is handed them)."""
    return Settings()


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default as text, what it means) of every setting, in the class's order."""
    rows = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "shown_default" in extra:
            default = str(extra["shown_default"])
        elif field.default is None or field.default is False:
            default = "unset"
        elif field.default == ():
            default = "none"
        else:
            default = str(field.default)
        rows.append((variable(name), default, field.description or ""))
    return rows
