"""The app uvicorn serves (`imgsearch serve`): configured from the environment."""

from __future__ import annotations

from imgsearch import config
from imgsearch.library import Index
from imgsearch.service.app import create_app

_settings = config.load()
app = create_app(
    Index(pool_size=8),
    api_token=_settings.api_token,
    max_upload_bytes=_settings.max_upload_bytes,
    watch=list(_settings.serve_watch) or None,
    query_concurrency=_settings.query_concurrency,
)
