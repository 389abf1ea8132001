"""The collection tools as methods of the library object (`imgsearch.Index` mixes them in)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg

from imgsearch.collection.cache import ResultCache
from imgsearch.db.connection import Database, connect


class CollectionTools:
    """Duplicates, clusters and maps over an index's database (see imgsearch.collection)."""

    db: Database
    model: str
    _duplicate_groups: ResultCache  # duplicate groups per encoder, threshold, folder and state

    def reading(self) -> AbstractContextManager[psycopg.Connection]:  # provided by Index
        raise NotImplementedError

    def duplicates(self, threshold: float | None = None, *, folder: str | None = None,
                   model: str | None = None) -> list[Any]:
        """Groups of near-identical images, largest first (see collection.duplicates); computed
        once per state of the collection, and shared by callers asking at once."""
        from imgsearch.collection.cache import collection_version
        from imgsearch.collection.duplicates import DEFAULT_THRESHOLD, find_groups

        threshold = threshold or DEFAULT_THRESHOLD
        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
            version = collection_version(conn, enc.id)

        def compute() -> list[Any]:
            with self.reading() as conn:
                return find_groups(conn, enc.id, enc.dimension, threshold, folder)

        return self._duplicate_groups.get((enc.id, threshold, folder, version), compute)

    def clusters(self, n: int | None = None, *, folder: str | None = None,
                 model: str | None = None, rerun: bool = True) -> Any:
        """K-Means over the stored vectors (n None: chosen by silhouette), stored as a run;
        with `rerun=False`, the latest run instead (None when there is none)."""
        from imgsearch.collection import clusters

        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
            if not rerun:
                run_id = clusters.latest(conn, enc.id)
                return clusters.summary(conn, run_id) if run_id else None
            result = clusters.run(conn, enc.id, enc.name, n, folder)
            conn.commit()
            return result

    def cluster_members(self, cluster: int, *, limit: int = 100, offset: int = 0,
                        model: str | None = None) -> list[dict]:
        """Images of one cluster of the latest run, nearest its centroid first."""
        from imgsearch.collection import clusters

        with self.reading() as conn:
            run_id = clusters.latest(conn, self._indexed_encoder(conn, model).id)
            return clusters.members(conn, run_id, cluster, limit, offset) if run_id else []

    def map(self, out: str | Path | None = None, *, method: str = "pca",
            model: str | None = None) -> int:
        """Project the collection to 2-D (stored); with `out`, also write it as .png or .html."""
        from imgsearch.collection import maps

        if out is not None and Path(out).suffix.lower() not in (".png", ".html"):
            from imgsearch.errors import ImgsearchError

            raise ImgsearchError("The map is written as .png or .html.")
        with self.reading() as conn:
            map_id = maps.project(conn, self._indexed_encoder(conn, model).id, method)
            conn.commit()
            pts = maps.points(conn, map_id)
        if out is not None:
            write = maps.write_png if Path(out).suffix.lower() == ".png" else maps.write_html
            write(pts, Path(out))
        return map_id

    def map_points(self, model: str | None = None) -> list[Any]:
        """The points of the latest map ([] when there is none)."""
        from imgsearch.collection import maps

        with self.reading() as conn:
            map_id = maps.latest(conn, self._indexed_encoder(conn, model).id)
            return maps.points(conn, map_id) if map_id else []

    def _indexed_encoder(self, conn: psycopg.Connection, model: str | None) -> Any:
        from imgsearch.db import store
        from imgsearch.search import NoVectors

        name = model or self.model
        enc = store.encoder_by_name(conn, name)
        if enc is None:
            raise NoVectors(f"No images are indexed with {name} yet: run `imgsearch ingest` first.")
        return enc

    def decide(self, image_ids: Sequence[int], decision: str, keep: int | None = None) -> int:
        """Record `keep` (with the image to keep) or `not-duplicates` for these images."""
        from imgsearch.collection.duplicates import decide

        with connect(self.db, autocommit=True) as conn:
            return decide(conn, list(image_ids), decision, keep)

    def resolve_duplicates(self) -> int:
        """Forget the images that `keep` decisions rank below another; how many."""
        from imgsearch.collection.duplicates import resolve

        with connect(self.db, autocommit=True) as conn:
            return resolve(conn)

