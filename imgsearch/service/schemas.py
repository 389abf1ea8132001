"""The JSON shapes of the HTTP API (they are its OpenAPI schema)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel, Field

from imgsearch.browse import ImageRecord

MAX_K = 1000  # the service's bound on k (the library allows more)


class SearchRequest(BaseModel):
    """One of `url` or `image_id` (an upload is a multipart request with a `file` part)."""

    url: str | None = Field(None, max_length=4096, description="an http(s) image URL")
    image_id: int | None = Field(None, ge=1, le=2**63 - 1, description="an indexed image")
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


class SearchResponse(BaseModel):
    results: list[Result]
    took_ms: float
    model: str


@dataclass
class Image(ImageRecord):
    thumb_url: str = ""


class ImagePage(BaseModel):
    images: list[Image]
    next_cursor: str | None


class IngestRequest(BaseModel):
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


class Problem(BaseModel):
    detail: str
