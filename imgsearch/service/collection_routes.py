"""The collection tools over HTTP: duplicate groups and decisions, clusters, the map."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from imgsearch.service.routes import ERRORS, index_of, require_token
from imgsearch.service.schemas import Problem

router = APIRouter()


class Decision(BaseModel):
    decision: str = Field(..., pattern="^(keep|not-duplicates)$")
    image_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(..., min_length=2, max_length=1000)
    keep: int | None = Field(None, ge=1, le=2**63 - 1, description="with `keep`: the one kept")


@router.get("/api/duplicates", responses=ERRORS)
def duplicates(
    request: Request,
    threshold: Annotated[float, Query(ge=0.5, le=1.0)] = 0.85,
    folder: Annotated[str | None, Query(max_length=4096)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    """Duplicate groups, largest first, a page at a time."""
    groups = index_of(request).duplicates(threshold, folder=folder)
    page = groups[offset : offset + limit]
    return {
        "groups": [g.to_json() for g in page],
        "total": len(groups),
        "next_offset": offset + limit if offset + limit < len(groups) else None,
    }


@router.post(
    "/api/duplicates/{group_id}/decision",
    dependencies=[Depends(require_token)],
    responses={401: {"model": Problem}, 403: {"model": Problem}, **ERRORS},
)
def decide(request: Request, group_id: int, body: Decision) -> dict:
    """Record `keep` (with the image kept) or `not-duplicates` for a group's images."""
    if group_id not in body.image_ids:
        raise HTTPException(422, "The group id is its smallest image id: list it in image_ids.")
    pairs = index_of(request).decide(body.image_ids, body.decision, body.keep)
    return {"group": group_id, "decision": body.decision, "pairs": pairs}


class ClusterRequest(BaseModel):
    n: int | None = Field(None, ge=2, le=10_000, description="clusters; none: chosen by silhouette")
    folder: str | None = Field(None, max_length=4096)


@router.get("/api/clusters", responses=ERRORS)
def clusters(request: Request) -> dict:
    """The latest clustering run: clusters by size, each with the images nearest its centre."""
    result = index_of(request).latest_clusters()
    if result is None:
        raise HTTPException(404, "No clustering yet: POST /api/clusters or `imgsearch clusters`.")
    return result.to_json()


@router.post(
    "/api/clusters",
    dependencies=[Depends(require_token)],
    responses={401: {"model": Problem}, 403: {"model": Problem}, **ERRORS},
)
def run_clusters(request: Request, body: ClusterRequest) -> dict:
    """Cluster the collection now (K-Means) and keep the run."""
    return index_of(request).clusters(body.n, folder=body.folder).to_json()


@router.get("/api/clusters/{cluster}/images", responses=ERRORS)
def cluster_images(
    request: Request,
    cluster: Annotated[int, Path(ge=0, le=10_000)],
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict:
    """One cluster of the latest run, nearest its centre first."""
    images = index_of(request).cluster_members(cluster, limit=limit, offset=offset)
    return {
        "cluster": cluster,
        "images": [{**asdict(i), "thumb_url": f"/api/images/{i.id}/thumb"} for i in images],
    }


@router.get("/api/map", responses=ERRORS)
def map_points(request: Request) -> dict:
    """The latest map: each image's place (0..1 on both axes)."""
    pts = index_of(request).map_points()
    if not pts:
        raise HTTPException(404, "No map yet: `imgsearch map --out map.html` makes one.")
    return {
        "points": [
            {"id": p.id, "x": p.x, "y": p.y, "path": p.path, "thumb_url": f"/api/images/{p.id}/thumb"}
            for p in pts
        ]
    }
