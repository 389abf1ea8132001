"""The Typer application, its sub-commands' groups, and the options commands share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from imgsearch.config import Settings

app = typer.Typer(
    help="Image similarity search with PostgreSQL + pgvector as the index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: migrations, status, connection URL.", no_args_is_help=True)
app.add_typer(db_app, name="db")
index_app = typer.Typer(help="pgvector ANN indexes (one per encoder).", no_args_is_help=True)
app.add_typer(index_app, name="index")

MAX_K = 10_000  # imgsearch.search.MAX_K, repeated so that --help imports nothing heavy

ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Encoder name (see `imgsearch models`); default IMGSEARCH_MODEL."),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps; default IMGSEARCH_DEVICE.",
        show_default=False,
    ),
]

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="auto (ONNX Runtime on a CPU, torch on a GPU), torch or onnx; default IMGSEARCH_BACKEND.",
        show_default=False,
    ),
]

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--labels", help="CSV with path,label columns (paths relative to FOLDER) instead of sub-folders."
    ),
]

_command_settings: list[Settings] = []  # those of the command being run (one per process, as a rule)


@app.callback()
def _load_settings() -> None:
    # Before every command: its settings, loaded once from the environment (`settings()`).
    from imgsearch import config

    _command_settings[:] = [config.load()]


def settings() -> Settings:
    """The settings of the command being run (loaded once, by the app's callback)."""
    if not _command_settings:
        raise RuntimeError("settings() is for the commands of the imgsearch app")
    return _command_settings[0]


def echo_err(message: str) -> None:
    """Print to stderr, with any database password masked."""
    from imgsearch.redaction import redact

    typer.echo(redact(message), err=True)


def similarity_range(value: float | None) -> float | None:
    """Typer callback: a cosine similarity in -1..1 (NaN refused)."""
    if value is not None and not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise typer.BadParameter(f"{value} is not a number between -1 and 1.")
    return value


def open_index(model: str | None = None, device: str | None = None, backend: str | None = None):
    """The library object every command works through, with the command's settings (the
    database is opened on first use)."""
    from imgsearch.library import Index

    return Index(model=model, device=device, backend=backend, settings=settings())


Options = TypeVar("Options")


def options_from(kind: type[Options], params: Mapping[str, Any]) -> Options:
    """The library's options dataclass `kind` built from a command's parameters of the same
    names (`ctx.params`): the options are declared once, in the library."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{name: value for name, value in params.items() if name in names})
