"""The FastAPI application: the library object loaded once, its routes, the page, metrics,
the middleware (security headers, body limit) and JSON problems for every error."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from imgsearch.errors import ImgsearchError, first_line
from imgsearch.library import Index
from imgsearch.service import problems
from imgsearch.service.jobs import Jobs
from imgsearch.service.metrics import Metrics
from imgsearch.service.middleware import BodyLimit, SecurityHeaders

log = logging.getLogger(__name__)


def _prewarm(index: Index) -> None:
    """Load the ANN indexes into memory while the service starts answering (best effort)."""
    try:
        loaded = index.ann.prewarm()
    except ImgsearchError as exc:
        log.warning("indexes not prewarmed: %s", exc)
    except psycopg.Error as exc:
        log.warning("indexes not prewarmed: %s", first_line(exc))
    else:
        log.info("prewarmed %s", ", ".join(loaded) or "no indexes")


def create_app(
    index: Index,
    *,
    api_token: str | None = None,
    max_upload_bytes: int = 20 * 1024 * 1024,
    watch: list[str] | None = None,
    query_concurrency: int = 2,
) -> FastAPI:
    """The service over `index` (whose encoder is loaded before the first request); with
    `watch`, those folders are indexed and kept in step while it runs. At most
    `query_concurrency` uploaded or downloaded query images are decoded at once."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        index.prepare()  # the database opened and the model loaded (or exported) before serving
        index.encoder()
        threading.Thread(target=_prewarm, args=(index,), name="imgsearch-prewarm", daemon=True).start()
        stop = threading.Event()
        threading.Thread(
            target=index.database.supervise, args=(stop,), name="imgsearch-supervisor", daemon=True
        ).start()
        watcher = None
        if watch:
            watcher = threading.Thread(
                target=index.watch, args=(watch,), kwargs={"stop": stop}, name="imgsearch-watch", daemon=True
            )
            watcher.start()
        yield
        stop.set()
        if watcher is not None:
            watcher.join(timeout=10)
        index.close()

    from imgsearch import __version__

    # fastapi-offline serves Swagger UI 5 (/docs) and ReDoc (/redoc) from its own files: no CDN
    app = FastAPIOffline(
        static_url="/docs-assets",
        favicon_url="/favicon.ico",
        title="imgsearch",
        version=__version__,
        lifespan=lifespan,
        description="Image similarity search with PostgreSQL + pgvector as the index.",
    )
    app.state.index = index
    app.state.api_token = api_token
    app.state.max_upload_bytes = max_upload_bytes
    app.state.metrics = Metrics()
    app.state.jobs = Jobs()
    app.state.query_slots = asyncio.Semaphore(query_concurrency)
    app.state.download_slots = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics = app.state.metrics
        metrics.requests.labels(request.method, name, str(response.status_code)).inc()
        metrics.latency.labels(request.method, name).observe(time.perf_counter() - start)
        return response

    problems.install(app)

    from imgsearch.service import api_admin, api_collection, api_images, api_search, page

    for module in (api_search, api_images, api_collection, api_admin):
        app.include_router(module.router)
    page.mount(app)
    app.add_middleware(BodyLimit, limit=max_upload_bytes + FORM_OVERHEAD, shown_limit=max_upload_bytes)
    app.add_middleware(SecurityHeaders)
    return app


DOWNLOAD_CONCURRENCY = 8  # query URLs downloaded at once
FORM_OVERHEAD = 64 * 1024  # room for a multipart request's headers and small fields
