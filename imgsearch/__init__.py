"""imgsearch: image similarity search with PostgreSQL + pgvector as the index.

    from imgsearch import ingest, search, get_encoder
    report = ingest(["./photos"])
    for match in search("query.jpg", k=5).results:
        print(match.rank, match.similarity, match.path)
"""

from .database import Database, open_database
from .decode import decode_image
from .encoders import Encoder
from .errors import ImgsearchError
from .evaluate import evaluate
from .ingest import IngestReport, ingest
from .models import get_encoder, list_models
from .nearduplicates import near_duplicates
from .prune import prune
from .search import Match, SearchResult, search


def encode(images, model: str | None = None, device: str = "auto"):
    """Vectors (n, dim) for PIL images or file paths with the named encoder."""
    encoder = get_encoder(model, device)
    pictures = [decode_image(i, encoder.min_decode_size).image if not hasattr(i, "mode") else i
                for i in images]
    return encoder.encode(pictures)


__all__ = ["Database", "Encoder", "ImgsearchError", "IngestReport", "Match", "SearchResult",
           "decode_image", "encode", "evaluate", "get_encoder", "ingest", "list_models",
           "near_duplicates", "open_database", "prune", "search"]
__version__ = "0.1.0"
