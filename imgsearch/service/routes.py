"""The JSON API: search, browse, thumbnails and files, writes behind a token, metrics."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError

from imgsearch.browse import MAX_PAGE, ImageInfo
from imgsearch.errors import ImageDecodeError, ImgsearchError
from imgsearch.library import Index
from imgsearch.search import QueryOptions, SearchResult
from imgsearch.service.problems import describe
from imgsearch.service.schemas import (
    MAX_K,
    Health,
    Image,
    ImagePage,
    IngestJob,
    IngestRequest,
    Problem,
    Result,
    SearchRequest,
    SearchResponse,
)

router = APIRouter()
QUERY_WAIT_S = 10.0  # longest wait for a free decode slot
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 404, 409, 413, 415, 422)
}
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
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
                    },
                }
            },
        },
    }
}


def index_of(request: Request) -> Index:
    """The service's library object."""
    index: Index = request.app.state.index
    return index


def _image(info: ImageInfo) -> Image:
    return Image(**info.to_json(), thumb_url=f"/api/images/{info.id}/thumb")


def _response(result: SearchResult, started: float) -> SearchResponse:
    results = [Result(**m.to_json(), thumb_url=f"/api/images/{m.image_id}/thumb") for m in result.results]
    return SearchResponse(results=results, took_ms=(time.perf_counter() - started) * 1000, model=result.model)


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.api_token
    if not token:
        raise HTTPException(403, "Writes are disabled: start the server with IMGSEARCH_API_TOKEN.")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "A valid `Authorization: Bearer <token>` header is needed.",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get("/health", response_model=Health, responses={503: {"model": Problem}})
def health(request: Request) -> Health:
    """Whether the service and its database answer, with versions (no paths, no URLs)."""
    from imgsearch import __version__

    index = index_of(request)
    postgresql, pgvector = index.server_versions()
    return Health(
        status="ok",
        database="up",
        postgresql=postgresql,
        pgvector=pgvector,
        model=index.model,
        version=__version__,
    )


@router.get("/api/stats")
def stats(request: Request) -> dict:
    index = index_of(request)
    return {**index.stats().to_json(), "model": index.model}


@router.get("/api/images", response_model=ImagePage, responses=ERRORS)
def list_images(
    request: Request,
    folder: Annotated[str | None, Query(max_length=4096)] = None,
    since: float | None = None,
    until: float | None = None,
    sort: Annotated[str, Query(pattern="^(path|date)$")] = "path",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> ImagePage:
    page = index_of(request).images(
        folder=folder,
        since=since,
        until=until,
        sort=sort,
        descending=order == "desc",
        after=cursor,
        limit=limit,
    )
    return ImagePage(images=[_image(i) for i in page.images], next_cursor=page.next_cursor)


def _found(request: Request, image_id: int) -> ImageInfo:
    info = index_of(request).image(image_id) if 1 <= image_id < 2**63 else None
    if info is None:
        raise HTTPException(404, f"No indexed image has id {image_id}.")
    return info


@router.get("/api/images/{image_id}", response_model=Image, responses=ERRORS)
def get_image(request: Request, image_id: int) -> Image:
    return _image(_found(request, image_id))


@router.get("/api/images/{image_id}/thumb", response_class=FileResponse, responses=ERRORS)
def thumbnail(
    request: Request, image_id: int, size: Annotated[int, Query(ge=16, le=1024)] = 256
) -> FileResponse:
    from imgsearch.thumbnails import thumbnail as make

    info = _found(request, image_id)
    try:
        path = make(info.location, info.sha256, info.byte_size, size)
    except ImageDecodeError as exc:
        raise HTTPException(404, f"The image cannot be read any more: {exc}") from exc
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/api/images/{image_id}/file", response_class=StreamingResponse, responses=ERRORS)
def image_file(request: Request, image_id: int) -> StreamingResponse:
    """The indexed file itself, only while it is the file that was indexed (no link followed
    at its name, same size and sha256), else 404."""
    from imgsearch.indexed_files import open_indexed

    info = _found(request, image_id)  # the path comes from the index, never from the request
    if info.path.startswith(("http://", "https://")):
        raise HTTPException(404, "That image is a URL, not a file on this server.")
    try:
        file = open_indexed(info.location, info.sha256, info.byte_size)
    except ImageDecodeError as exc:
        raise HTTPException(
            404, "That image is not on this server as it was indexed (gone, moved or changed since)."
        ) from exc

    def chunks() -> Iterator[bytes]:
        with file:
            while chunk := file.read(1 << 20):
                yield chunk

    media_type = f"image/{info.format.lower()}" if info.format else "application/octet-stream"
    return StreamingResponse(
        chunks(),
        media_type=media_type,
        headers={"Content-Length": str(info.byte_size), "Cache-Control": "private, max-age=3600"},
    )


@router.get("/api/images/{image_id}/similar", response_model=SearchResponse, responses=ERRORS)
def similar(
    request: Request,
    image_id: int,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 20,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
    min_score: Annotated[
        float | None, Query(ge=-1, le=1, deprecated=True, description="the name before 0.2")
    ] = None,
) -> SearchResponse:
    _found(request, image_id)
    started = time.perf_counter()
    result = index_of(request).search(
        f"id:{image_id}", k, min_similarity=min_similarity if min_similarity is not None else min_score
    )
    request.app.state.metrics.search.labels("id").observe(time.perf_counter() - started)
    return _response(result, started)


@router.post("/api/search", response_model=SearchResponse, responses=ERRORS, openapi_extra=SEARCH_BODY)
async def search(request: Request) -> SearchResponse:
    """Search by an uploaded image (multipart `file`), an image URL, or an indexed image id,
    with relevance feedback: positive_ids / negative_ids move the query towards / away."""
    ctype = request.headers.get("content-type", "")
    query: str | bytes
    if ctype.startswith("multipart/form-data"):
        query, fields, kind = await _upload(request)
    elif ctype.startswith("application/json"):
        try:
            fields = SearchRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, describe(exc.errors())) from exc
        if (fields.url is None) == (fields.image_id is None):
            raise HTTPException(422, "Give exactly one of `url`, `image_id` (or upload a file).")
        query, kind = (fields.url, "url") if fields.url else (f"id:{fields.image_id}", "id")
    else:
        raise HTTPException(
            415, 'Send JSON ({"url": ...} or {"image_id": ...}) or a multipart upload with a `file` part.'
        )
    options = QueryOptions(
        folder=fields.folder,
        since=fields.since,
        until=fields.until,
        positive_ids=fields.positive_ids,
        negative_ids=fields.negative_ids,
    )
    if isinstance(query, str) and kind == "url" and not query.lower().startswith(("http://", "https://")):
        raise HTTPException(400, "Only http and https URLs are fetched.")
    started = time.perf_counter()
    async with _decode_slot(request, needed=kind != "id"):
        result = await run_in_threadpool(
            index_of(request).search,
            query,
            fields.k,
            model=fields.model,
            min_similarity=fields.min_similarity,
            options=options,
        )
    request.app.state.metrics.search.labels(kind).observe(time.perf_counter() - started)
    return _response(result, started)


@asynccontextmanager
async def _decode_slot(request: Request, needed: bool) -> AsyncIterator[None]:
    """At most `query_slots` images decoded at once (each within IMGSEARCH_MAX_DECODE_BYTES),
    so that memory stays bounded; a request that waits too long gets a 503."""
    if not needed:
        yield
        return
    slots: asyncio.Semaphore = request.app.state.query_slots
    try:
        await asyncio.wait_for(slots.acquire(), timeout=QUERY_WAIT_S)
    except asyncio.TimeoutError:
        raise HTTPException(503, "Too many image queries at once; try again in a moment.") from None
    try:
        yield
    finally:
        slots.release()


async def _upload(request: Request) -> tuple[bytes, SearchRequest, str]:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "The multipart request needs a `file` part with the image.")
    data = await upload.read(request.app.state.max_upload_bytes + 1)
    if len(data) > request.app.state.max_upload_bytes:
        raise HTTPException(413, f"The upload is over {request.app.state.max_upload_bytes:,} bytes.")
    values: dict[str, str | list[str]] = {
        k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""
    }
    for key in ("positive_ids", "negative_ids"):
        text = values.get(key)
        if isinstance(text, str):
            values[key] = [part for part in text.split(",") if part.strip()]
    try:
        fields = SearchRequest.model_validate(values)
    except ValidationError as exc:
        raise HTTPException(422, describe(exc.errors())) from exc
    return data, fields, "upload"


@router.post(
    "/api/ingest",
    status_code=202,
    response_model=IngestJob,
    dependencies=[Depends(require_token)],
    responses={401: {"model": Problem}, 403: {"model": Problem}, **ERRORS},
)
def start_ingest(request: Request, body: IngestRequest) -> IngestJob:
    """Index a folder on the server, in the background; poll GET /api/ingest/{id}."""
    if not os.path.isdir(body.path):
        raise HTTPException(404, "No such folder on the server.")
    job = IngestJob(id=uuid.uuid4().hex, path=body.path, state="running")
    request.app.state.jobs[job.id] = job
    index = index_of(request)

    def run() -> None:
        try:
            report = index.ingest([body.path])
            job.new, job.updated, job.unchanged = report.new, report.updated, report.unchanged
            job.failed, job.state = report.failed, "done"
        except (ImgsearchError, OSError) as exc:
            job.state, job.error = "failed", str(exc)

    threading.Thread(target=run, name=f"ingest-{job.id}", daemon=True).start()
    return job


@router.get("/api/ingest/{job_id}", response_model=IngestJob, responses=ERRORS)
def ingest_job(request: Request, job_id: str) -> IngestJob:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "No such ingest job.")
    return job


@router.delete(
    "/api/images/{image_id}",
    status_code=204,
    dependencies=[Depends(require_token)],
    responses={401: {"model": Problem}, 403: {"model": Problem}, **ERRORS},
)
def delete_image(request: Request, image_id: int) -> Response:
    """Forget an image and its vectors (the file itself is not touched)."""
    if not (1 <= image_id < 2**63 and index_of(request).delete(image_id)):
        raise HTTPException(404, f"No indexed image has id {image_id}.")
    return Response(status_code=204)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app_metrics = request.app.state.metrics
    app_metrics.images.set(index_of(request).stats().images)
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
