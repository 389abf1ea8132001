"""The FastAPI application: the library object loaded once, errors as JSON, metrics."""

from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imgsearch.errors import DatabaseUnavailable, ImgsearchError, UnknownEncoder, first_line
from imgsearch.library import Index
from imgsearch.search import NoVectors, QueryImageError
from imgsearch.service.metrics import Metrics

QUERY_ERROR_STATUS = {"too_large": 413, "forbidden_address": 400, "unsupported_url": 400,
                      "download": 400}


def create_app(index: Index, *, api_token: str | None = None,
               max_upload_bytes: int = 20 * 1024 * 1024, watch: list[str] | None = None) -> FastAPI:
    """The service over `index` (whose encoder is loaded before the first request); with
    `watch`, those folders are indexed and kept in step while it runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        index.encoder()  # load (or export) the model before serving
        stop = threading.Event()
        watcher = None
        if watch:
            watcher = threading.Thread(target=index.watch, args=(watch,), kwargs={"stop": stop},
                                       name="imgsearch-watch", daemon=True)
            watcher.start()
        yield
        stop.set()
        if watcher is not None:
            watcher.join(timeout=10)
        index.close()

    app = FastAPI(title="imgsearch", version="0.1.0", lifespan=lifespan, docs_url=None,
                  description="Image similarity search with PostgreSQL + pgvector as the index.")
    app.state.index = index
    app.state.api_token = api_token
    app.state.max_upload_bytes = max_upload_bytes
    app.state.metrics = Metrics()
    app.state.jobs = {}

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

    def problem(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status)

    statuses = {NoVectors: 409, UnknownEncoder: 400, DatabaseUnavailable: 503, ImgsearchError: 400}

    async def library_error(request: Request, exc: ImgsearchError) -> JSONResponse:
        if isinstance(exc, QueryImageError):
            return problem(QUERY_ERROR_STATUS.get(exc.kind, 422), str(exc))
        status = next(code for kind, code in statuses.items() if isinstance(exc, kind))
        return problem(status, str(exc))

    for kind in (QueryImageError, *statuses):
        app.add_exception_handler(kind, library_error)

    @app.exception_handler(psycopg.DataError)
    async def unusable_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return problem(400, "A parameter holds a value the database cannot take "
                            f"({first_line(exc)}).")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}",
                             "errors": jsonable(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail))

    from imgsearch.service import collection_routes, page, routes

    app.include_router(routes.router)
    app.include_router(collection_routes.router)
    page.mount(app)
    app.add_middleware(BodyLimit, limit=max_upload_bytes + FORM_OVERHEAD)
    return app


FORM_OVERHEAD = 64 * 1024  # room for a multipart request's headers and small fields


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse (413) any request body over `limit` bytes, declared or streamed, before it is
    read into memory or onto disk."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = b'{"detail": "The request body is too large."}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def jsonable(errors: list) -> list:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
