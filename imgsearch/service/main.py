"""The app uvicorn serves (`imgsearch serve`), built from settings.

`build(settings)` is the service's startup: one Index with those settings, and the service's
own (token, upload size, watched folders, decoding concurrency) from them too. `imgsearch serve`
hands each worker its settings as this function's argument (see cli/commands.py serve);
`uvicorn imgsearch.service.main:app` builds the app from the environment's settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgsearch import config
from imgsearch.library import Index
from imgsearch.service.app import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI


def build(settings: config.Settings | None = None) -> FastAPI:
    """The service over an Index with `settings` (default: the environment's, loaded now)."""
    settings = settings if settings is not None else config.load()
    return create_app(
        Index(pool_size=8, settings=settings),
        api_token=settings.api_token,
        max_upload_bytes=settings.max_upload_bytes,
        watch=list(settings.serve_watch) or None,
        query_concurrency=settings.query_concurrency,
    )


def __getattr__(name: str) -> Any:
    if name == "app":  # `uvicorn imgsearch.service.main:app`: built when uvicorn asks for it
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
