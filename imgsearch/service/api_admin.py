"""Health, statistics, Prometheus metrics, and ingest jobs (a write: behind the token)."""

from __future__ import annotations

import os
from dataclasses import fields

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from imgsearch.ingest.options import IngestChoices, IngestOptions
from imgsearch.service.common import WRITE_ERRORS, IndexDep, busy, require_token
from imgsearch.service.schemas import EncoderCount, Health, IngestJob, IngestRequest, Problem, Stats

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Problem}})
def health(index: IndexDep) -> Health:
    """Whether the service and its database answer, with versions (no paths, no URLs)."""
    from imgsearch import __version__

    postgresql, pgvector = index.database.server_versions()
    return Health(
        status="ok",
        database="up",
        postgresql=postgresql,
        pgvector=pgvector,
        model=index.model,
        version=__version__,
    )


@router.get("/api/stats", response_model=Stats, responses={503: {"model": Problem}})
def stats(index: IndexDep) -> Stats:
    """Images, encoders with their vector counts, ANN indexes, when the last image was indexed."""
    s = index.stats()
    return Stats(
        images=s.images,
        encoders=[EncoderCount(name=e.name, dimension=e.dimension, vectors=e.vectors) for e in s.encoders],
        ann_indexes=s.ann_indexes,
        last_indexed_at=s.last_indexed_at,
        model=index.model,
        text_search=index.reads_words(),
    )


@router.post(
    "/api/ingest",
    status_code=202,
    response_model=IngestJob,
    dependencies=[Depends(require_token)],
    responses={**WRITE_ERRORS, **busy("Other ingests are running: try again when one has finished.")},
)
def start_ingest(request: Request, index: IndexDep, body: IngestRequest) -> IngestJob:
    """Index a folder on the server (an absolute path), in the background; poll
    GET /api/ingest/{id}. At most two run at once (503 with Retry-After beyond)."""
    if not os.path.isabs(body.path):
        raise HTTPException(422, "path: give an absolute path (a folder on the server).")
    if not os.path.isdir(body.path):
        raise HTTPException(404, "No such folder on the server.")
    options = IngestOptions(**{f.name: getattr(body, f.name) for f in fields(IngestChoices)})

    def run(job: IngestJob) -> None:
        report = index.ingest([body.path], options)
        job.new, job.updated, job.unchanged, job.failed = (
            report.new,
            report.updated,
            report.unchanged,
            report.failed,
        )

    return request.app.state.jobs.start(body.path, run)


@router.get(
    "/api/ingest/{job_id}",
    response_model=IngestJob,
    dependencies=[Depends(require_token)],
    responses=WRITE_ERRORS,
)
def ingest_job(request: Request, job_id: str) -> IngestJob:
    """An ingest job's state and counts (its errors can name server paths: behind the token)."""
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "No such ingest job.")
    return job


@router.get("/metrics", response_class=Response)
def metrics(request: Request, index: IndexDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app_metrics = request.app.state.metrics
    app_metrics.images.set(index.stats().images)
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
