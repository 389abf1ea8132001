"""The library object, `Index`: the one way in to imgsearch for every client (see index.py)."""

from imgsearch.library.index import Index, open

__all__ = ["Index", "open"]
