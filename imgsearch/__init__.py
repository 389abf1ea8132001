"""imgsearch: image similarity search with PostgreSQL + pgvector as the index.

    import imgsearch
    index = imgsearch.open()                    # the configured database; encoders stay loaded
    index.ingest(["./photos"])
    for match in index.search("query.jpg", k=5).results:
        print(match.rank, match.similarity, match.path)

Importing this package loads nothing heavy: names are imported when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "Index": "imgsearch.library",
    "open": "imgsearch.library",
    "Database": "imgsearch.db.connection",
    "Encoder": "imgsearch.encoding.encoder",
    "ImgsearchError": "imgsearch.errors",
    "IngestReport": "imgsearch.ingest.report",
    "Match": "imgsearch.search",
    "SearchResult": "imgsearch.search",
    "QueryOptions": "imgsearch.db.nearest",
    "Evaluation": "imgsearch.evaluation.evaluate",
    "NearDuplicateEvaluation": "imgsearch.evaluation.near_duplicates",
    "decode_image": "imgsearch.encoding.decode",
    "get_encoder": "imgsearch.encoding.registry",
    "list_models": "imgsearch.encoding.registry",
}

__all__ = [
    "Database",
    "Encoder",
    "Evaluation",
    "ImgsearchError",
    "Index",
    "IngestReport",
    "Match",
    "NearDuplicateEvaluation",
    "QueryOptions",
    "SearchResult",
    "decode_image",
    "get_encoder",
    "list_models",
    "open",
]

if TYPE_CHECKING:
    from imgsearch.db.connection import Database
    from imgsearch.db.nearest import QueryOptions
    from imgsearch.encoding.decode import decode_image
    from imgsearch.encoding.encoder import Encoder
    from imgsearch.encoding.registry import get_encoder, list_models
    from imgsearch.errors import ImgsearchError
    from imgsearch.evaluation.evaluate import Evaluation
    from imgsearch.evaluation.near_duplicates import NearDuplicateEvaluation
    from imgsearch.ingest.report import IngestReport
    from imgsearch.library import Index, open
    from imgsearch.search import Match, SearchResult


def __getattr__(name: str):
    if name == "__version__":  # written in one place: pyproject.toml
        from importlib.metadata import version

        return version("imgsearch")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgsearch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
