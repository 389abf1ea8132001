"""Every error the service answers is JSON `{"detail": "..."}` with the right status: library
errors, validation errors, database outages and costly work already running (503 with
Retry-After), and anything unexpected (500, details in the log). Database passwords never
show."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from imgsearch.db.nearest import NoVectors
from imgsearch.errors import (
    Busy,
    DatabaseUnavailable,
    DiskFull,
    ImgsearchError,
    NotFound,
    UnknownEncoder,
    first_line,
)
from imgsearch.redaction import redact
from imgsearch.search import QueryImageError

log = logging.getLogger("imgsearch.service")
RETRY_AFTER_S = 2  # what a 503 tells clients to wait
DOWN = "The database is not answering; try again in a few seconds."
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# the status of a library error, by class (the first that matches)
LIBRARY_STATUS = {
    NotFound: 404,
    NoVectors: 409,
    UnknownEncoder: 400,
    DatabaseUnavailable: 503,
    Busy: 503,
    DiskFull: 503,
    ImgsearchError: 400,
}
# the status of a query image that could not be used, by its kind
QUERY_STATUS = {
    "too_large": 413,
    "forbidden_address": 400,
    "unsupported_url": 400,
    "bad_url": 400,
    "download": 400,
    "timeout": 504,  # the other server took too long
}


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error; a 503 says when to try again."""
    extra = {**(headers or {}), **({"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {})}
    return JSONResponse({"detail": redact(detail)}, status_code=status, headers=extra)


def describe(errors: Sequence[Any]) -> str:
    """One sentence for pydantic's validation errors: the first one, with where it is."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
    if first.get("type") == "json_invalid":
        return f"The body is not valid JSON ({first.get('ctx', {}).get('error', first['msg'])})."
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _jsonable(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def allowed_methods(app: FastAPI, request: Request, first: str) -> list[str]:
    """The methods the API takes at this request's path: those of every operation in the
    OpenAPI schema whose path matches, with `first`, the Allow of the route that answered."""
    methods = {m.strip() for m in first.split(",") if m.strip()}
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a JSON problem."""

    async def library_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, QueryImageError):
            return problem(QUERY_STATUS.get(exc.kind, 422), str(exc))
        status = next(code for kind, code in LIBRARY_STATUS.items() if isinstance(exc, kind))
        if isinstance(exc, DiskFull):
            log.warning("disk full: %s", exc)
            return problem(503, "The server's disk is full; try again later.")
        if isinstance(exc, DatabaseUnavailable):  # the server's address stays in the log
            log.warning("database unavailable: %s", redact(str(exc)))
            return problem(503, DOWN)
        return problem(status, str(exc))

    for kind in (QueryImageError, *LIBRARY_STATUS):
        app.add_exception_handler(kind, library_error)

    async def unusable_value(request: Request, exc: Exception) -> JSONResponse:
        return problem(400, f"A parameter holds a value the database cannot take ({first_line(exc)}).")

    app.add_exception_handler(psycopg.DataError, unusable_value)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", redact(first_line(exc)))
        return problem(503, DOWN)

    for kind in (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, database_down)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return problem(500, "Internal error; the server's log has the details.")

    app.add_exception_handler(Exception, unexpected)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return JSONResponse({"detail": describe(errors), "errors": _jsonable(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request, headers.get("Allow", "")))
        return problem(exc.status_code, str(exc.detail), headers)

    app.add_exception_handler(StarletteHTTPException, http_error)
