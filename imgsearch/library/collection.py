"""The collection tools of the library object: duplicate groups (calibrated, decided,
resolved), clusters and the 2-D map."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgsearch.db.connection import connect
from imgsearch.errors import ImgsearchError, first_line
from imgsearch.library.core import Core, log

if TYPE_CHECKING:
    from imgsearch.collection.calibration import Calibration
    from imgsearch.collection.clusters import Clustering, ClusterMember
    from imgsearch.collection.duplicates import DuplicatePage, DuplicateQuery, Group
    from imgsearch.collection.maps import Point


class CollectionTools(Core):
    """Duplicates, clusters and maps over the stored vectors (methods of `Index`)."""

    def duplicates(
        self,
        query: DuplicateQuery | None = None,
        *,
        model: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        wait_s: float | None = None,
        **choices: Any,
    ) -> DuplicatePage:
        """Groups of near-identical images, largest first (see collection.duplicates), a page at
        a time, each with its suggested keeper (collection.keeper). Without `threshold`, the
        contrast rule with the encoder's calibrated margin (`calibrate_duplicates`; the default
        margin until there is one); with it, the global rule. The groups are computed once per
        state of the collection and rule, one computation at a time, and shared by callers
        asking at once (`wait_s`: how long to wait for another's computation before `Busy`;
        None: as long as it takes); the keepers of the page asked for are chosen when it is
        asked for. A group whose keeper the user chose over every other member is left out
        unless `decided`; a keeper the user chose is always the one shown. `choices`: fields of
        DuplicateQuery to change, e.g. `index.duplicates(threshold=0.9)`."""
        from imgsearch.browse import resolve_folder
        from imgsearch.collection.cache import collection_version
        from imgsearch.collection.calibration import stored_calibration
        from imgsearch.collection.duplicates import (
            DEFAULT_MARGIN,
            DuplicatePage,
            DuplicateQuery,
            chosen_keepers,
            find_groups,
            suggest,
        )

        chosen_query = replace(query or DuplicateQuery(), **choices)
        threshold, decided = chosen_query.threshold, chosen_query.decided
        margin: float | None = None
        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
            version = collection_version(conn, enc.id)
            folder = resolve_folder(conn, chosen_query.folder)
            if threshold is not None:
                rule = "threshold"
            elif (calibration := stored_calibration(conn, enc.id)) is not None:
                rule, margin = "calibrated", calibration.margin
            else:
                rule, margin = "default margin", DEFAULT_MARGIN

        def compute() -> tuple[list[Group], dict[int, tuple[int, bool]]]:
            with self.reading() as conn:  # decisions change the version: the choices keep with it
                groups = find_groups(conn, enc.id, enc.dimension, threshold, folder, margin)
                return groups, chosen_keepers(conn, groups)

        key = (enc.id, threshold, margin, folder, version)
        groups, chosen = self._duplicate_groups.get(key, compute, wait_s)
        shown = [g for g in groups if decided or not chosen.get(g.id, (0, False))[1]]
        page = shown[offset : None if limit is None else offset + limit]
        with self.reading() as conn:
            suggested = [
                suggest(conn, enc.id, enc.dimension, g, self._looks.look, chosen.get(g.id)) for g in page
            ]
        return DuplicatePage(suggested, len(shown), threshold, margin, rule)

    def calibrate_duplicates(
        self, model: str | None = None, *, sample: int = 200, target: float | None = None, seed: int = 0
    ) -> Calibration:
        """Measure the duplicate margin on edited copies of a sample of the collection, store it
        for the encoder and return it (see collection.calibration; `target` default 0.995)."""
        from imgsearch.collection.calibration import TARGET, calibrate, store_calibration

        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
        encoder = self.encoder(enc.name)
        with connect(self.db) as conn:
            calibration = calibrate(
                conn,
                encoder,
                enc.id,
                enc.dimension,
                sample=sample,
                target=target or TARGET,
                seed=seed,
                settings=self.settings,
            )
            store_calibration(conn, enc.id, calibration)
            conn.commit()
        return calibration

    def calibrate_duplicates_in_background(self, model: str | None = None) -> bool:
        """Start measuring the duplicate margin of `model` in a background thread (as the CLI
        does on its first `duplicates`), unless it is being measured already; whether it
        started. Failures are logged: the default margin stays in use."""
        with self._calibrating_lock:
            if model in self._calibrating:
                return False
            self._calibrating.add(model)

        def run() -> None:
            try:
                found = self.calibrate_duplicates(model)
                log.info("duplicates calibrated: margin %.2f on %d images", found.margin, found.images)
            except Exception as exc:  # a background job: logged, never raised into the service
                log.warning("duplicates not calibrated: %s", first_line(exc))
            finally:
                with self._calibrating_lock:
                    self._calibrating.discard(model)

        threading.Thread(target=run, name="imgsearch-calibration", daemon=True).start()
        return True

    def calibrating(self, model: str | None = None) -> bool:
        """Whether the duplicate margin of `model` is being measured now."""
        with self._calibrating_lock:
            return model in self._calibrating

    def duplicate_calibration(self, model: str | None = None) -> Calibration | None:
        """The encoder's latest stored duplicate calibration, if any."""
        from imgsearch.collection.calibration import stored_calibration

        with self.reading() as conn:
            return stored_calibration(conn, self._indexed_encoder(conn, model).id)

    def decide(
        self, image_ids: Sequence[int], decision: str, keep: int | None = None, exclude: Sequence[int] = ()
    ) -> int:
        """Record `keep` (with the image to keep) or `not-duplicates` for a group's images;
        `exclude`: images that are not duplicates of the rest of the group."""
        from imgsearch.collection.duplicates import decide

        with connect(self.db, autocommit=True) as conn:
            return decide(conn, list(image_ids), decision, keep, exclude)

    def resolve_duplicates(self) -> int:
        """Forget the images that `keep` decisions rank below another; how many."""
        from imgsearch.collection.duplicates import resolve

        with connect(self.db, autocommit=True) as conn:
            return resolve(conn)

    def clusters(
        self, n: int | None = None, *, folder: str | None = None, model: str | None = None
    ) -> Clustering:
        """K-Means over the stored vectors (n None: chosen by silhouette), stored as a run."""
        from imgsearch.browse import resolve_folder
        from imgsearch.collection import clusters

        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
            result = clusters.run(conn, enc.id, enc.name, n, resolve_folder(conn, folder))
            conn.commit()
            return result

    def latest_clusters(self, model: str | None = None) -> Clustering | None:
        """The latest clustering run (None when there is none)."""
        from imgsearch.collection import clusters

        with self.reading() as conn:
            run_id = clusters.latest(conn, self._indexed_encoder(conn, model).id)
            return clusters.summary(conn, run_id) if run_id else None

    def cluster_members(
        self, cluster: int, *, limit: int = 100, offset: int = 0, model: str | None = None
    ) -> list[ClusterMember]:
        """Images of one cluster of the latest run, nearest its centroid first."""
        from imgsearch.collection import clusters

        with self.reading() as conn:
            run_id = clusters.latest(conn, self._indexed_encoder(conn, model).id)
            return clusters.members(conn, run_id, cluster, limit, offset) if run_id else []

    def map(self, out: str | Path | None = None, *, method: str = "pca", model: str | None = None) -> int:
        """Project the collection to 2-D (stored); with `out`, also write it as .png or .html."""
        from imgsearch.collection import maps

        if out is not None and Path(out).suffix.lower() not in (".png", ".html"):
            raise ImgsearchError("The map is written as .png or .html.")
        with self.reading() as conn:
            map_id = maps.project(conn, self._indexed_encoder(conn, model).id, method)
            conn.commit()
            pts = maps.points(conn, map_id)
        if out is not None:
            write = maps.write_png if Path(out).suffix.lower() == ".png" else maps.write_html
            write(pts, Path(out), self.settings)
        return map_id

    def map_points(self, model: str | None = None) -> list[Point]:
        """The points of the latest map ([] when there is none)."""
        from imgsearch.collection import maps

        with self.reading() as conn:
            map_id = maps.latest(conn, self._indexed_encoder(conn, model).id)
            return maps.points(conn, map_id) if map_id else []
