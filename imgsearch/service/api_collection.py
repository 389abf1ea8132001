"""The collection tools over HTTP: duplicate groups (paged, with a suggested keeper) and
decisions, clusters, the map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from imgsearch.collection.clusters import Cluster, ClusterMember
from imgsearch.collection.duplicates import DuplicateQuery, Group
from imgsearch.service.common import ERRORS, WRITE_ERRORS, IndexDep, busy, require_token
from imgsearch.service.schemas import (
    ClusterImage,
    Clustering,
    ClusterPage,
    ClusterSummary,
    DuplicateGroup,
    DuplicateMember,
    DuplicatePage,
    MapPoint,
    MapPoints,
)

router = APIRouter()
DUPLICATES_WAIT_S = 2.0  # how long a request waits for another's duplicate groups, then 503
BUSY = busy("Duplicate groups are being computed for another request: try again.")
ImageId = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _thumb(image_id: int) -> str:
    return f"/api/images/{image_id}/thumb"


class Decision(BaseModel):
    decision: str = Field(..., pattern="^(keep|not-duplicates)$")
    image_ids: list[ImageId] = Field(..., min_length=2, max_length=1000)
    keep: ImageId | None = Field(None, description="with `keep`: the one kept")
    exclude: list[ImageId] = Field(
        default_factory=list, max_length=1000, description="images that are not duplicates of the others"
    )


class DecisionResult(BaseModel):
    group: int
    decision: str
    pairs: int  # decisions recorded (per pair of contents)


def _group(g: Group) -> DuplicateGroup:
    return DuplicateGroup(
        id=g.id,
        keep=g.keep if g.keep is not None else g.id,
        reasons=g.reasons,
        decided=g.decided,
        members=[DuplicateMember(**m.to_json(), thumb_url=_thumb(m.id)) for m in g.members],
    )


@router.get("/api/duplicates", response_model=DuplicatePage, responses={**ERRORS, **BUSY})
def duplicates(
    index: IndexDep,
    query: Annotated[DuplicateQuery, Depends()],
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> DuplicatePage:
    """Duplicate groups, largest first, a page at a time, each with the image to keep
    suggested and why (the groups are computed once per state of the collection). Without
    `threshold`: the contrast rule with the calibrated margin (`imgsearch duplicates
    --calibrate`; the default margin until then); `rule` says which was used. One computation
    runs at a time: a request whose groups are not computed yet waits up to 2 s for the running
    one, then gets a 503 with Retry-After. Groups whose keeper was chosen over every other
    member are left out unless `decided`. Without a calibration, the service starts measuring
    the margin in the background (`calibrating`) and uses the default one meanwhile."""
    page = index.duplicates(query, offset=offset, limit=limit, wait_s=DUPLICATES_WAIT_S)
    if page.rule == "default margin":
        index.calibrate_duplicates_in_background()
    return DuplicatePage(
        groups=[_group(g) for g in page.groups],
        total=page.total,
        next_offset=offset + limit if offset + limit < page.total else None,
        threshold=page.threshold,
        margin=page.margin,
        rule=page.rule,
        calibrating=index.calibrating(),
    )


@router.post(
    "/api/duplicates/{group_id}/decision",
    response_model=DecisionResult,
    dependencies=[Depends(require_token)],
    responses=WRITE_ERRORS,
)
def decide(index: IndexDep, group_id: int, body: Decision) -> DecisionResult:
    """Record `keep` (with the image kept) or `not-duplicates` for a group's images; images
    in `exclude` are recorded as not duplicates of the others."""
    if group_id not in body.image_ids:
        raise HTTPException(422, "The group id is its smallest image id: list it in image_ids.")
    pairs = index.decide(body.image_ids, body.decision, body.keep, body.exclude)
    return DecisionResult(group=group_id, decision=body.decision, pairs=pairs)


class ClusterRequest(BaseModel):
    n: int | None = Field(None, ge=2, le=10_000, description="clusters; none: chosen by silhouette")
    folder: str | None = Field(None, max_length=4096)


def _image(m: ClusterMember) -> ClusterImage:
    return ClusterImage(id=m.id, path=m.path, distance=m.distance, thumb_url=_thumb(m.id))


def _summary(c: Cluster) -> ClusterSummary:
    return ClusterSummary(cluster=c.cluster, size=c.size, nearest=[_image(m) for m in c.nearest])


@router.get("/api/clusters", response_model=Clustering, responses=ERRORS)
def clusters(index: IndexDep) -> Clustering:
    """The latest clustering run: clusters by size, each with the images nearest its centre."""
    result = index.latest_clusters()
    if result is None:
        raise HTTPException(
            404, "The collection has not been grouped yet: make clusters (Clusters, or `imgsearch clusters`)."
        )
    return Clustering(
        id=result.id,
        model=result.model,
        clusters=result.clusters,
        images=result.images,
        method=result.method,
        clusters_found=[_summary(c) for c in result.clusters_found],
    )


@router.post(
    "/api/clusters", response_model=Clustering, dependencies=[Depends(require_token)], responses=WRITE_ERRORS
)
def run_clusters(index: IndexDep, body: ClusterRequest) -> Clustering:
    """Cluster the collection now (K-Means) and keep the run."""
    index.clusters(body.n, folder=body.folder)
    return clusters(index)


@router.get("/api/clusters/{cluster}/images", response_model=ClusterPage, responses=ERRORS)
def cluster_images(
    index: IndexDep,
    cluster: Annotated[int, Path(ge=0, le=10_000)],
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ClusterPage:
    """One cluster of the latest run, nearest its centre first."""
    images = index.cluster_members(cluster, limit=limit, offset=offset)
    if not images and offset == 0:
        latest = index.latest_clusters()
        if latest is None or cluster not in {c.cluster for c in latest.clusters_found}:
            raise HTTPException(404, f"The latest clustering has no cluster {cluster}.")
    return ClusterPage(cluster=cluster, images=[_image(m) for m in images])


@router.get("/api/map", response_model=MapPoints, responses=ERRORS)
def map_points(index: IndexDep) -> MapPoints:
    """The latest map: each image's place (0..1 on both axes)."""
    pts = index.map_points()
    if not pts:
        raise HTTPException(
            404, "There is no map of this collection yet: make one (Map, or `imgsearch map`)."
        )
    return MapPoints(
        points=[MapPoint(id=p.id, x=p.x, y=p.y, path=p.path, thumb_url=_thumb(p.id)) for p in pts]
    )


class MapRequest(BaseModel):
    method: str = Field("pca", pattern="^(pca|umap)$", description="the projection")


@router.post(
    "/api/map", response_model=MapPoints, dependencies=[Depends(require_token)], responses=WRITE_ERRORS
)
def make_map(index: IndexDep, body: MapRequest) -> MapPoints:
    """Project the collection to 2-D now and keep the map."""
    index.map(method=body.method)
    return map_points(index)
