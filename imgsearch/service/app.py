"""The FastAPI application: the library object loaded once, errors as JSON, metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from imgsearch.errors import DatabaseUnavailable, ImgsearchError, UnknownEncoder, first_line
from imgsearch.library import Index
from imgsearch.redaction import redact
from imgsearch.search import NoVectors, QueryImageError
from imgsearch.service.metrics import Metrics
from imgsearch.service.middleware import BodyLimit, SecurityHeaders

log = logging.getLogger("imgsearch.service")
RETRY_AFTER_S = 2  # what a 503 tells clients to wait

QUERY_ERROR_STATUS = {"too_large": 413, "forbidden_address": 400, "unsupported_url": 400, "download": 400}


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
        index.encoder()  # load (or export) the model before serving
        stop = threading.Event()
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

    app = FastAPI(
        title="imgsearch",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        description="Image similarity search with PostgreSQL + pgvector as the index.",
    )
    app.state.index = index
    app.state.api_token = api_token
    app.state.max_upload_bytes = max_upload_bytes
    app.state.metrics = Metrics()
    app.state.jobs = {}
    app.state.query_slots = asyncio.Semaphore(query_concurrency)

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

    statuses = {NoVectors: 409, UnknownEncoder: 400, DatabaseUnavailable: 503, ImgsearchError: 400}

    async def library_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, QueryImageError):
            return problem(QUERY_ERROR_STATUS.get(exc.kind, 422), str(exc))
        status = next(code for kind, code in statuses.items() if isinstance(exc, kind))
        return problem(status, str(exc))

    for kind in (QueryImageError, *statuses):
        app.add_exception_handler(kind, library_error)

    @app.exception_handler(psycopg.DataError)
    async def unusable_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return problem(400, f"A parameter holds a value the database cannot take ({first_line(exc)}).")

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        return problem(503, f"The database is not answering ({first_line(exc)}); try again in a few seconds.")

    for kind in (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, database_down)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return problem(500, "Internal error; the server's log has the details.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse(
            {"detail": f"{where}: {first.get('msg', 'invalid')}", "errors": jsonable(exc.errors())},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request, headers.get("Allow", "")))
        return problem(exc.status_code, str(exc.detail), headers)

    from imgsearch.service import collection_routes, page, routes

    app.include_router(routes.router)
    app.include_router(collection_routes.router)
    page.mount(app)
    app.add_middleware(BodyLimit, limit=max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(SecurityHeaders)
    return app


def allowed_methods(app: FastAPI, request: Request, first: str) -> list[str]:
    """The methods the API takes at this request's path: those of every operation in the
    OpenAPI schema whose path matches, with `first`, the Allow of the route that answered."""
    methods = {m.strip() for m in first.split(",") if m.strip()}
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    return sorted(methods)


HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error; a 503 says when to try again. Database passwords never show."""
    extra = {**(headers or {}), **({"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {})}
    return JSONResponse({"detail": redact(detail)}, status_code=status, headers=extra)


FORM_OVERHEAD = 64 * 1024  # room for a multipart request's headers and small fields


def jsonable(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
