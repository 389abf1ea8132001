"""Searching: by an upload (kept for a while, so a link can repeat it), an image URL, an indexed
image or a kept upload, with relevance feedback; "more like this"; kept query images."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError

from imgsearch.db.nearest import QueryOptions
from imgsearch.errors import ImageDecodeError
from imgsearch.library import Index
from imgsearch.search import SearchResult
from imgsearch.service import kept_queries
from imgsearch.service.api_images import found
from imgsearch.service.common import ERRORS, JPEG, IndexDep
from imgsearch.service.schemas import MAX_K, Result, SearchQuery, SearchRequest, SearchResponse

router = APIRouter()
QUERY_WAIT_S = 10.0  # longest wait for a free decode slot
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": SearchRequest.model_json_schema()
            },  # inline: no other route uses it
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                        "min_similarity": {"type": "number", "minimum": -1, "maximum": 1},
                        "folder": {"type": "string"},
                        "model": {"type": "string"},
                        "positive_ids": {"type": "string", "description": "comma-separated image ids"},
                        "negative_ids": {"type": "string", "description": "comma-separated image ids"},
                        "text": {"type": "string", "description": "words that steer the picture"},
                        "text_weight": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                }
            },
        },
    }
}


def _response(result: SearchResult, started: float, query: SearchQuery) -> SearchResponse:
    results = [Result(**m.to_json(), thumb_url=f"/api/images/{m.image_id}/thumb") for m in result.results]
    took_ms = (time.perf_counter() - started) * 1000
    return SearchResponse(results=results, took_ms=took_ms, model=result.model, query=query)


@router.post("/api/search", response_model=SearchResponse, responses=ERRORS, openapi_extra=SEARCH_BODY)
async def search(request: Request, index: IndexDep) -> SearchResponse:
    """Search by an uploaded image (multipart `file`), an image URL, an indexed image id, an
    earlier upload (`upload`: the sha256 its answer gave), or words (`text`, with a CLIP-style
    model; beside a picture they steer it, `text_weight` their share), with relevance
    feedback: positive_ids / negative_ids move the query towards / away."""
    ctype = request.headers.get("content-type", "")
    query: str | bytes | None
    if ctype.startswith("multipart/form-data"):
        query, fields = await _upload(request)
        shown = SearchQuery(kind="upload", upload=kept_queries.digest_of(query))
    elif ctype.startswith("application/json"):
        try:
            fields = SearchRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from exc
        query, shown = _json_query(index, fields)
    else:
        raise HTTPException(
            415,
            'Send JSON ({"url": ...}, {"image_id": ...}, {"upload": ...} or {"text": ...}) or a '
            "multipart upload with a `file` part.",
        )
    if fields.model and fields.model != index.model and fields.model not in index.models.indexed():
        # the service loads no encoder a caller names at will: only those the index uses
        raise HTTPException(
            400,
            f"No images are indexed with model {fields.model!r}: this service searches with "
            f"{', '.join(index.models.indexed()) or index.model}.",
        )
    if shown.kind == "url" and isinstance(query, str):
        async with _slot(request.app.state.download_slots, "downloads"):
            query = await run_in_threadpool(index.download_query, query)
    options = QueryOptions(
        folder=fields.folder,
        since=fields.since,
        until=fields.until,
        positive_ids=fields.positive_ids,
        negative_ids=fields.negative_ids,
    )
    if fields.text is not None:
        shown.text, shown.text_weight = fields.text, fields.text_weight if query is not None else None
    started = time.perf_counter()
    needed = shown.kind != "id" or fields.text is not None
    async with _slot(request.app.state.query_slots, "image queries", needed=needed):
        result = await run_in_threadpool(
            index.search,
            query,
            fields.k,
            text=fields.text,
            text_weight=fields.text_weight,
            model=fields.model,
            min_similarity=fields.min_similarity,
            options=options,
        )
    request.app.state.metrics.search.labels(shown.kind).observe(time.perf_counter() - started)
    if ctype.startswith("multipart/form-data") and isinstance(query, bytes):
        # searched, so an image: kept for its link
        await run_in_threadpool(kept_queries.keep, query, index.settings)
    return _response(result, started, shown)


def _json_query(index: Index, fields: SearchRequest) -> tuple[str | bytes | None, SearchQuery]:
    """The query picture a JSON body names (None for words alone), and how to show it."""
    given = [name for name in ("url", "image_id", "upload") if getattr(fields, name) is not None]
    if not given and fields.text is not None:
        return None, SearchQuery(kind="text")
    if len(given) != 1:
        raise HTTPException(
            422, "Give exactly one of `url`, `image_id`, `upload` (or upload a file), and/or `text`."
        )
    if fields.url is not None:
        if not fields.url.lower().startswith(("http://", "https://")):
            raise HTTPException(400, "Only http and https URLs are fetched.")
        return fields.url, SearchQuery(kind="url", url=fields.url)
    if fields.image_id is not None:
        return f"id:{fields.image_id}", SearchQuery(kind="id", image_id=fields.image_id)
    data = kept_queries.kept(fields.upload or "", index.settings)
    if data is None:
        raise HTTPException(404, "That uploaded image is not kept any more: upload it again.")
    return data, SearchQuery(kind="upload", upload=fields.upload)


@asynccontextmanager
async def _slot(slots: asyncio.Semaphore, what: str, needed: bool = True) -> AsyncIterator[None]:
    """One of a few slots: at most `query_slots` images decoded at once (each within
    IMGSEARCH_MAX_DECODE_BYTES, so memory stays bounded), at most `download_slots` query URLs
    downloaded at once (a slow server cannot hold the decode slots); a request that waits too
    long gets a 503."""
    if not needed:
        yield
        return
    try:
        await asyncio.wait_for(slots.acquire(), timeout=QUERY_WAIT_S)
    except asyncio.TimeoutError:
        raise HTTPException(503, f"Too many {what} at once; try again in a moment.") from None
    try:
        yield
    finally:
        slots.release()


async def _upload(request: Request) -> tuple[bytes, SearchRequest]:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "The multipart request needs a `file` part with the image.")
    limit = request.app.state.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            413, f"The upload is over the limit of {limit:,} bytes (IMGSEARCH_MAX_UPLOAD_BYTES)."
        )
    values: dict[str, str | list[str]] = {
        k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v
    }
    for key in ("positive_ids", "negative_ids"):
        text = values.get(key)
        if isinstance(text, str):
            values[key] = [part for part in text.split(",") if part.strip()]
    try:
        fields = SearchRequest.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return data, fields


def _invalid(exc: ValidationError) -> RequestValidationError:
    """A body that does not validate, answered like FastAPI's own 422: a sentence and the fields."""
    return RequestValidationError(
        [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
    )


@router.get("/api/images/{image_id}/similar", response_model=SearchResponse, responses=ERRORS)
def similar(
    request: Request,
    index: IndexDep,
    image_id: int,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 20,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
    min_score: Annotated[
        float | None, Query(ge=-1, le=1, deprecated=True, description="the name before 0.2")
    ] = None,
) -> SearchResponse:
    """More like an indexed image."""
    found(index, image_id)
    started = time.perf_counter()
    result = index.search(
        f"id:{image_id}", k, min_similarity=min_similarity if min_similarity is not None else min_score
    )
    request.app.state.metrics.search.labels("id").observe(time.perf_counter() - started)
    return _response(result, started, SearchQuery(kind="id", image_id=image_id))


@router.get("/api/queries/{upload}", response_class=FileResponse, responses={**ERRORS, **JPEG})
def query_image(
    index: IndexDep, upload: str, size: Annotated[int, Query(ge=16, le=1024)] = 512
) -> FileResponse:
    """A thumbnail of a kept uploaded query image (by the sha256 its search answer gave)."""
    try:
        path = kept_queries.thumbnail(upload, size, index.settings)
    except ImageDecodeError as exc:
        raise HTTPException(404, f"The upload cannot be shown: {exc}") from exc
    if path is None:
        raise HTTPException(404, "No kept upload has that sha256.")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
