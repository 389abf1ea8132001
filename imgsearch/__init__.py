"""imgsearch: image similarity search with PostgreSQL + pgvector as the index."""

from .database import Database, open_database
from .errors import ImgsearchError

__all__ = ["Database", "ImgsearchError", "open_database"]
__version__ = "0.1.0"
