"""The JSON shapes of the HTTP API (they are its OpenAPI schema)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from imgsearch.browse import ImageRecord
from imgsearch.ingest.options import IngestChoices

MAX_K = 1000  # the service's bound on k (the library allows more)


class SearchRequest(BaseModel):
    """One of `url`, `image_id` or `upload` (an upload is a multipart request with a `file`
    part; its answer's `query.upload` repeats it later), `text`, or a picture and `text`
    together (a CLIP-style model's)."""

    url: str | None = Field(None, max_length=4096, description="an http(s) image URL")
    image_id: int | None = Field(None, ge=1, le=2**63 - 1, description="an indexed image")
    upload: str | None = Field(
        None, pattern="^[0-9a-f]{64}$", description="an earlier upload, by the sha256 its answer gave"
    )
    k: int = Field(20, ge=1, le=MAX_K)
    min_similarity: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        validation_alias=AliasChoices("min_similarity", "min_score"),
        description="results below this cosine similarity are left out (`min_score`: the "
        "name before 0.2, still accepted)",
    )
    folder: str | None = Field(None, max_length=4096, description="displayed path prefix")
    since: float | None = Field(None, description="file mtime at least (epoch seconds)")
    until: float | None = Field(None, description="file mtime at most (epoch seconds)")
    positive_ids: list[int] = Field(default_factory=list, max_length=100)
    negative_ids: list[int] = Field(default_factory=list, max_length=100)
    model: str | None = Field(None, max_length=200)
    text: str | None = Field(
        None, min_length=1, max_length=1000, description="words to search by (a CLIP-style model)"
    )
    text_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="the words' share when a picture is given too"
    )


class Result(BaseModel):
    """A search hit: the same fields as `Match` in the library and `search --json`, plus its
    thumbnail's URL."""

    rank: int
    image_id: int
    path: str
    similarity: float  # cosine similarity, 1 - distance
    distance: float  # cosine distance
    metadata: dict
    width: int | None
    height: int | None
    mtime: float | None
    thumb_url: str


class SearchQuery(BaseModel):
    """What was searched for: `kind` is id, url, upload or text, with the matching field (and
    `text` beside a picture for a mixed query)."""

    kind: str
    image_id: int | None = None
    url: str | None = None
    upload: str | None = None  # sha256: GET /api/queries/{upload} shows it, `upload` repeats it
    text: str | None = None
    text_weight: float | None = None


class SearchResponse(BaseModel):
    results: list[Result]
    took_ms: float
    model: str
    query: SearchQuery


class EncoderCount(BaseModel):
    name: str
    dimension: int
    vectors: int


class Stats(BaseModel):
    images: int
    encoders: list[EncoderCount]
    ann_indexes: list[str]
    last_indexed_at: float | None  # epoch seconds
    model: str  # the service's default encoder
    text_search: bool = False  # whether it reads words too (a CLIP-style model)


class Folder(BaseModel):
    path: str  # absolute, as displayed; the `folder` filters take it (or `name`)
    name: str  # relative to the collection's root folder ("" for the root)
    images: int  # in it and below it
    depth: int


class FolderList(BaseModel):
    root: str | None  # the collection's root folder (None: no local files)
    folders: list[Folder]


class DuplicateMember(BaseModel):
    id: int
    path: str
    byte_size: int
    width: int | None
    height: int | None
    mtime: float | None
    sha256: str
    similarity: float  # to the suggested keeper (1.0 for itself)
    thumb_url: str


class DuplicateGroup(BaseModel):
    id: int  # its smallest image id
    keep: int  # the suggested keeper
    reasons: list[str]  # why that one (the checks the others failed), or ["your choice"]
    decided: bool = False  # the keeper was chosen over every other member (listed with ?decided=true)
    members: list[DuplicateMember]


class DuplicatePage(BaseModel):
    groups: list[DuplicateGroup]
    total: int  # groups
    next_offset: int | None
    threshold: float | None  # the similarity asked for (rule "threshold"), else null
    margin: float | None  # over the background (the contrast rule), else null
    rule: str  # "calibrated", "default margin" or "threshold"
    calibrating: bool = False  # the margin of this collection is being measured in the background


class ClusterImage(BaseModel):
    id: int
    path: str
    distance: float  # to the cluster's centre
    thumb_url: str


class ClusterSummary(BaseModel):
    cluster: int
    size: int
    nearest: list[ClusterImage]


class Clustering(BaseModel):
    id: int
    model: str
    clusters: int
    images: int
    method: str
    clusters_found: list[ClusterSummary]


class ClusterPage(BaseModel):
    cluster: int
    images: list[ClusterImage]


class MapPoint(BaseModel):
    id: int
    x: float  # 0..1
    y: float  # 0..1
    path: str
    thumb_url: str


class MapPoints(BaseModel):
    points: list[MapPoint]


@dataclass
class Image(ImageRecord):
    thumb_url: str = ""


class ImagePage(BaseModel):
    images: list[Image]
    next_cursor: str | None
    total: int | None = Field(
        None, description="images matching the filters; on the first page (no cursor) only"
    )


@pydantic_dataclass(kw_only=True)
class IngestRequest(IngestChoices):
    """A folder on the server, and the ingest's choices (the library's own dataclass)."""

    path: str = Field(..., min_length=1, max_length=4096, description="a folder on the server")


class IngestJob(BaseModel):
    id: str
    path: str
    state: str  # running, done, failed
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str | None = None


class Health(BaseModel):
    status: str  # "ok" (a database that does not answer is a 503)
    database: str  # "up"
    postgresql: str  # server version
    pgvector: str | None  # extension version
    model: str  # the default encoder
    version: str  # imgsearch's


class FieldError(BaseModel):
    loc: list[str | int] = Field(..., description="where: `query`, `body` or `path`, then the field")
    msg: str
    type: str = Field(..., description="pydantic's error type, e.g. `missing`, `greater_than_equal`")


class Problem(BaseModel):
    """Every error: one sentence in `detail`; a 422 also lists each invalid field in `errors`."""

    detail: str
    errors: list[FieldError] | None = None
