"""The library object: one database, its encoders kept loaded, connections for reads.

    index = imgsearch.open()                 # IMGSEARCH_DATABASE_URL, else the embedded server
    index.ingest(["./photos"])
    result = index.search("query.jpg", k=5)  # the encoder is loaded once, then reused

The CLI and the HTTP service are thin layers over this object: every operation they offer is a
method here, with typed parameters, returning the dataclass its module builds. It is safe to
share between threads: reads take turns on one connection (or use a pool), writes open their
own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch import config
from imgsearch.collection.cache import LookCache, ResultCache
from imgsearch.db.connection import Database, connect, libpq_url
from imgsearch.db.reading import ReadConnections
from imgsearch.db.schema import open_database
from imgsearch.errors import DatabaseUnavailable, ImgsearchError, first_line

if TYPE_CHECKING:
    import numpy as np
    import psycopg
    from PIL import Image

    from imgsearch.browse import CollectionStats, Folder, ImageInfo, ImagePage
    from imgsearch.collection.calibration import Calibration
    from imgsearch.collection.clusters import Clustering, ClusterMember
    from imgsearch.collection.duplicates import DuplicatePage, Group
    from imgsearch.collection.maps import Point
    from imgsearch.db.nearest import QueryOptions
    from imgsearch.db.store import EncoderRow
    from imgsearch.encoding.encoder import Encoder
    from imgsearch.evaluation.captions import CaptionEvaluation
    from imgsearch.evaluation.evaluate import Evaluation
    from imgsearch.evaluation.near_duplicates import NearDuplicateEvaluation
    from imgsearch.evaluation.split import SplitEvaluation
    from imgsearch.ingest.report import IngestReport
    from imgsearch.ingest.watch import WatchEvent
    from imgsearch.learning.derive import TrainReport
    from imgsearch.learning.finetune import FinetuneOptions
    from imgsearch.learning.train import TrainOptions
    from imgsearch.progress import ProgressCallback
    from imgsearch.search import SearchResult

EncoderKey = tuple[str, str | None]  # (name, weights file)


log = logging.getLogger(__name__)


class Index:
    """An imgsearch index: a database plus a cache of loaded encoders.

    `encoders` are already loaded encoders to use for their names (a notebook's or a test's
    own instance), instead of loading them again on first use. `replica` (default
    IMGSEARCH_REPLICA_URL): a read replica of the database that searches are sent to.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        backend: str | None = None,
        pool_size: int = 0,
        encoders: Iterable[Encoder] = (),
        replica: str | None = None,
    ) -> None:
        settings = config.load()
        self.db: Database = open_database(url)
        self.model = model or settings.model
        self.device = device or settings.device
        self.backend = backend or settings.backend  # auto: ONNX Runtime on a CPU, torch on a GPU
        self._encoders: dict[EncoderKey, Encoder] = {(e.name, None): e for e in encoders}
        self._encoders_lock = threading.RLock()  # a derived encoder loads its base
        self._reads = ReadConnections(self.db, pool_size)
        self._replica = _replica_connections(replica or settings.replica_url, pool_size)
        # duplicate groups with the keepers chosen in them, per state of the collection
        self._duplicate_groups: ResultCache[tuple[list[Group], dict[int, tuple[int, bool]]]] = ResultCache()
        self._looks = LookCache()  # how duplicate candidates look, by content
        self._calibrating: set[str | None] = set()  # models whose margin is measured in the background
        self._calibrating_lock = threading.Lock()

    # --- encoders -------------------------------------------------------------------------

    def encoder(self, model: str | None = None, weights: str | Path | None = None) -> Encoder:
        """The encoder called `model` (default: this index's), loaded on first use and kept."""
        key = (model or self.model, str(weights) if weights else None)
        with self._encoders_lock:
            if key not in self._encoders:
                self._encoders[key] = self._load_encoder(*key)
            return self._encoders[key]

    def _load_encoder(self, name: str, weights: str | None) -> Encoder:
        """A registered model, or else an encoder trained on this database (`imgsearch train`)."""
        from imgsearch.encoding.registry import get_encoder
        from imgsearch.errors import UnknownEncoder

        try:
            return get_encoder(name, self.device, weights, self.backend)
        except UnknownEncoder as exc:
            from imgsearch.db.derived import by_name
            from imgsearch.encoding.derived import DerivedEncoder

            with self.reading() as conn:
                found = by_name(conn, name)
                tuned = self._finetuned(conn, name) if found is None else None
            if tuned is not None:
                return tuned
            if found is None:
                raise UnknownEncoder(
                    f"{exc} No trained encoder of that name in this database either (`imgsearch train`)."
                ) from None
            row, projection = found
            return DerivedEncoder(name, self.encoder(row.base_name), projection)

    def _finetuned(self, conn, name: str) -> Encoder | None:
        """The fine-tuned encoder `name` (`imgsearch train --finetune`), if this database has one."""
        from imgsearch.db import finetuned
        from imgsearch.encoding.onnx_runtime import cache_dir
        from imgsearch.encoding.registry import finetuned_encoder

        row = finetuned.by_name(conn, name)
        if row is None:
            return None
        path = finetuned.weights_file(conn, row, cache_dir() / "finetuned")
        return finetuned_encoder(name, path, row.size, self.device, self.backend)

    def reads_words(self, model: str | None = None) -> bool:
        """Whether `model` (default: this index's) can be searched by words: a CLIP-style model,
        or one trained from one (`train --captions`); known without loading it."""
        from imgsearch.db.derived import by_name
        from imgsearch.encoding.clip_catalog import is_clip

        name = model or self.model
        if is_clip(name):
            return True
        with self.reading() as conn:
            found = by_name(conn, name)
        return found is not None and is_clip(found[0].base_name) and found[0].kind == "joint"

    def encode_text(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """Vectors (n, dim) of words, in the space of a CLIP-style model's pictures (for SQL
        applications: pass one to imgsearch.similar_to_vector)."""
        from imgsearch.search import check_text, reads_pictures_only

        for text in texts:
            check_text(text)
        encoder = self.encoder(model)
        if encoder.text is None:
            raise reads_pictures_only(encoder.name)
        return encoder.text.encode_text(list(texts))

    def encode(
        self, images: Sequence[Image.Image | bytes | str | Path], model: str | None = None
    ) -> np.ndarray:
        """Vectors (n, dim) for PIL images, file paths or image bytes."""
        from imgsearch.encoding.decode import decode_image

        encoder = self.encoder(model)
        pictures = [
            image
            if not isinstance(image, (bytes, str, Path))
            else decode_image(image, encoder.min_decode_size).image
            for image in images
        ]
        return encoder.encode(pictures)

    def drop_encoder(self, name: str, cascade: bool = False) -> list[str]:
        """Delete an encoder's vectors and registration (refused while others derive from it,
        unless `cascade`); the names dropped."""
        from imgsearch.db.derived import drop_encoder

        with connect(self.db) as conn:
            dropped = drop_encoder(conn, name, cascade)
            conn.commit()
        with self._encoders_lock:
            self._encoders = {k: v for k, v in self._encoders.items() if k[0] not in dropped}
        return dropped

    def prewarm(self) -> list[str]:
        """Load the ANN indexes into the memory of the server searches go to (pg_prewarm; the
        replica when there is one), so that the first searches do not wait on the disk; the
        indexes loaded (none where pg_prewarm is not installed)."""
        from imgsearch.db.indexes import prewarm

        return prewarm(self._replica.db if self._replica is not None else self.db)

    # --- ingest ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path] = (),
        *,
        model: str | None = None,
        weights: str | Path | None = None,
        manifest: str | Path | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        follow_symlinks: bool = False,
        rehash: bool = False,
        prune_gone: bool = False,
        augment: int = 0,
        engine: str = "local",
        address: str | None = None,
        progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> IngestReport:
        """Index images under `paths` and/or a manifest (see `imgsearch.ingest.pipeline`)."""
        from imgsearch.ingest.pipeline import ingest

        return ingest(
            paths,
            encoder=self.encoder(model, weights),
            manifest=manifest,
            batch_size=batch_size,
            workers=workers,
            follow_symlinks=follow_symlinks,
            rehash=rehash,
            prune_gone=prune_gone,
            augment=augment,
            database=self.db,
            progress=progress,
            stop=stop,
            engine=engine,
            address=address,
        )

    def watch(
        self,
        paths: Sequence[str | Path],
        *,
        stop: threading.Event,
        on_event: Callable[[WatchEvent], None] | None = None,
        model: str | None = None,
        first_pass: bool = True,
    ) -> IngestReport | None:
        """Index `paths`, then keep the index in step with them until `stop` is set."""
        from imgsearch.ingest.watch import watch

        return watch(
            paths,
            encoder=self.encoder(model),
            database=self.db,
            stop=stop,
            on_event=on_event,
            first_pass=first_pass,
        )

    def prune(self) -> int:
        """Forget indexed files that are gone; how many were removed."""
        from imgsearch.db.prune import prune

        return prune(self.db)

    def delete(self, image_id: int) -> bool:
        """Forget one image and its vectors (the file is not touched)."""
        from imgsearch.browse import delete_image

        with connect(self.db, autocommit=True) as conn:
            return delete_image(conn, image_id)

    # --- search and browse ----------------------------------------------------------------

    def search(
        self,
        query: str | bytes | None = None,
        k: int = 5,
        *,
        text: str | None = None,
        text_weight: float | None = None,
        model: str | None = None,
        weights: str | Path | None = None,
        min_similarity: float | None = None,
        options: QueryOptions | None = None,
        tta: bool = False,
    ) -> SearchResult:
        """The k indexed images most similar to a file, an http(s) URL, image bytes or `id:<n>`
        (`tta`: the query is the mean vector of the image, its mirror and its centre crop), to
        `text` (a CLIP-style model's words), or to both (`text_weight`: the words' share, 0.5)."""
        from imgsearch.search import DEFAULT_TEXT_WEIGHT, TextQuery, parse_image_id, search

        weight = DEFAULT_TEXT_WEIGHT if text_weight is None else text_weight
        words = None if text is None else TextQuery(text, weight)
        if words is not None and weights is None and not self.reads_words(model):
            from imgsearch.search import reads_pictures_only

            raise reads_pictures_only(model or self.model)  # known before loading the model
        by_id = isinstance(query, str) and parse_image_id(query) is not None
        encoder: Encoder | None = None if by_id and words is None else self.encoder(model, weights)
        if tta and encoder is not None:
            from imgsearch.encoding.tta import TestTimeAugmented

            encoder = TestTimeAugmented(encoder)

        def once() -> SearchResult:
            with self.searching() as conn:
                opts = _with_folder(conn, options)
                return search(
                    query,
                    k,
                    text=words,
                    encoder=encoder,
                    model=model or self.model,
                    min_similarity=min_similarity,
                    options=opts,
                    conn=conn,
                )

        try:
            return once()
        except DatabaseUnavailable:  # the server restarted, say: one fresh connection
            if self._reads.known_down:
                raise
            return once()

    def images(
        self,
        *,
        folder: str | None = None,
        since: float | None = None,
        until: float | None = None,
        sort: str = "path",
        descending: bool = False,
        after: str | None = None,
        limit: int = 100,
    ) -> ImagePage:
        """A page of the collection, with the cursor of the next page (see browse)."""
        from imgsearch.browse import list_images, resolve_folder

        with self.reading() as conn:
            return list_images(
                conn,
                folder=resolve_folder(conn, folder),
                since=since,
                until=until,
                sort=sort,
                descending=descending,
                after=after,
                limit=limit,
            )

    def folders(self) -> list[Folder]:
        """Folders holding indexed files, with image counts, relative to the collection's root."""
        from imgsearch.browse import folders

        with self.reading() as conn:
            return folders(conn)

    def image(self, image_id: int) -> ImageInfo | None:
        """One indexed image's record, or None."""
        from imgsearch.browse import get_image

        with self.reading() as conn:
            return get_image(conn, image_id)

    def supervise_server(self, stop: threading.Event) -> None:
        """Until `stop` is set, start the embedded server this index uses again whenever it is
        found stopped or dead (returns at once for a server given by URL)."""
        if self.db.embedded_dir is not None:
            from imgsearch.db import embedded

            embedded.supervise(self.db.embedded_dir.parent, stop)

    def collection_root(self) -> str | None:
        """The deepest folder holding every indexed local file (None when there is none)."""
        from imgsearch.browse import collection_root

        with self.reading() as conn:
            return collection_root(conn)

    def server_versions(self) -> tuple[str, str | None]:
        """The database server's PostgreSQL and pgvector versions (a cheap liveness check)."""
        from imgsearch.db.status import server_versions

        with self.reading() as conn:
            return server_versions(conn)

    def stats(self) -> CollectionStats:
        """Images, encoders with their vector counts, ANN indexes, the last indexing time."""
        from imgsearch.browse import stats

        with self.reading() as conn:
            return stats(conn)

    # --- collection tools -----------------------------------------------------------------

    def duplicates(
        self,
        threshold: float | None = None,
        *,
        folder: str | None = None,
        model: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        wait_s: float | None = None,
        decided: bool = False,
    ) -> DuplicatePage:
        """Groups of near-identical images, largest first (see collection.duplicates), a page at
        a time, each with its suggested keeper (collection.keeper). Without `threshold`, the
        contrast rule with the encoder's calibrated margin (`calibrate_duplicates`; the default
        margin until there is one); with it, the global rule. The groups are computed once per
        state of the collection and rule, one computation at a time, and shared by callers
        asking at once (`wait_s`: how long to wait for another's computation before `Busy`;
        None: as long as it takes); the keepers of the page asked for are chosen when it is
        asked for. A group whose keeper the user chose over every other member is left out
        unless `decided`; a keeper the user chose is always the one shown."""
        from imgsearch.browse import resolve_folder
        from imgsearch.collection.cache import collection_version
        from imgsearch.collection.calibration import stored_calibration
        from imgsearch.collection.duplicates import (
            DEFAULT_MARGIN,
            DuplicatePage,
            chosen_keepers,
            find_groups,
            suggest,
        )

        margin: float | None = None
        with self.reading() as conn:
            enc = self._indexed_encoder(conn, model)
            version = collection_version(conn, enc.id)
            folder = resolve_folder(conn, folder)
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
                conn, encoder, enc.id, enc.dimension, sample=sample, target=target or TARGET, seed=seed
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

    def download_query(self, url: str) -> bytes:
        """The bytes of a query image at an http(s) URL (the download rules apply: see
        `imgsearch.download`); QueryImageError says why when it cannot be had."""
        from imgsearch.errors import ImageDecodeError
        from imgsearch.search import QueryImageError
        from imgsearch.sources import fetch

        try:
            return fetch(url)
        except ImageDecodeError as exc:
            raise QueryImageError(f"Query {url}: {exc}", exc.kind) from exc

    def indexed_models(self) -> list[str]:
        """The encoders that have vectors in this database (what searches can use)."""
        from imgsearch.db.store import indexed_encoder_names

        with self.reading() as conn:
            return indexed_encoder_names(conn)

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
            write(pts, Path(out))
        return map_id

    def map_points(self, model: str | None = None) -> list[Point]:
        """The points of the latest map ([] when there is none)."""
        from imgsearch.collection import maps

        with self.reading() as conn:
            map_id = maps.latest(conn, self._indexed_encoder(conn, model).id)
            return maps.points(conn, map_id) if map_id else []

    def _indexed_encoder(self, conn: psycopg.Connection, model: str | None) -> EncoderRow:
        from imgsearch.db import store
        from imgsearch.db.nearest import NoVectors

        name = model or self.model
        enc = store.encoder_by_name(conn, name)
        if enc is None:
            raise NoVectors(f"No images are indexed with {name} yet: run `imgsearch ingest` first.")
        return enc

    # --- quality and learning -------------------------------------------------------------

    def evaluate(
        self,
        root: str | Path,
        *,
        models: Sequence[str] = (),
        ks: Sequence[int] = (1, 5, 10),
        labels_csv: str | Path | None = None,
        exact: bool = False,
        sample: int | None = None,
        index_queries: int = 1000,
        progress: ProgressCallback | None = None,
    ) -> Evaluation:
        """Leave-one-out retrieval quality on labelled images (see evaluation.evaluate)."""
        from imgsearch.evaluation.evaluate import evaluate

        return evaluate(
            root,
            encoders=[self.encoder(m) for m in models or [self.model]],
            ks=ks,
            labels_csv=labels_csv,
            exact=exact,
            sample=sample,
            index_queries=index_queries,
            database=self.db,
            progress=progress,
        )

    def evaluate_captions(
        self,
        root: str | Path,
        captions_csv: str | Path,
        *,
        model: str | None = None,
        ks: Sequence[int] = (1, 5, 10),
        progress: ProgressCallback | None = None,
    ) -> CaptionEvaluation:
        """Text->image and image->text recall@k of a CLIP-style model on a `path,caption` CSV."""
        from imgsearch.evaluation.captions import evaluate_captions

        return evaluate_captions(
            root, captions_csv, encoder=self.encoder(model), database=self.db, ks=ks, progress=progress
        )

    def near_duplicates(
        self,
        root: str | Path,
        *,
        models: Sequence[str] = (),
        ks: Sequence[int] = (1, 5),
        transforms: Sequence[str] | None = None,
        sample: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> NearDuplicateEvaluation:
        """Copy detection: do edited copies find their original (see evaluation)."""
        from imgsearch.evaluation.near_duplicates import near_duplicates

        return near_duplicates(
            root,
            encoders=[self.encoder(m) for m in models or [self.model]],
            ks=ks,
            transforms=transforms,
            sample=sample,
            database=self.db,
            progress=progress,
        )

    def train(
        self,
        name: str,
        folder: str | Path | None = None,
        *,
        base: str | None = None,
        labels_csv: str | Path | None = None,
        pca: int | None = None,
        whiten: bool = False,
        self_supervised: bool = False,
        copies: int = 8,
        captions_csv: str | Path | None = None,
        options: TrainOptions | None = None,
        finetune: FinetuneOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainReport:
        """Fit and register a derived encoder of `base` (see learning.derive.train), or, with
        `finetune` options, a fine-tuned network (learning.derive.finetune_and_register)."""
        from imgsearch.learning.derive import finetune_and_register, train

        if finetune is not None:
            if folder is None:
                raise ImgsearchError("Fine-tuning needs a FOLDER of images.")
            return finetune_and_register(
                self.db,
                name,
                folder,
                labels_csv=labels_csv,
                self_supervised=self_supervised,
                options=finetune,
                progress=progress,
            )

        return train(
            self.db,
            self.encoder(base),
            name,
            folder=folder,
            labels_csv=labels_csv,
            pca=pca,
            whiten=whiten,
            self_supervised=self_supervised,
            copies=copies,
            captions_csv=captions_csv,
            options=options,
            progress=progress,
        )

    def evaluate_split(
        self,
        root: str | Path,
        *,
        model: str | None = None,
        test_fraction: float = 0.5,
        seed: int = 0,
        ks: Sequence[int] = (1, 10),
        labels_csv: str | Path | None = None,
        options: TrainOptions | None = None,
        pca: Sequence[int] | None = None,
        finetune: FinetuneOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> SplitEvaluation:
        """Base vs a head fitted on one part vs PCA (vs a network fine-tuned on that part),
        scored on the held-out rest."""
        from imgsearch.evaluation.split import split_evaluate

        return split_evaluate(
            root,
            encoder=self.encoder(model),
            database=self.db,
            test_fraction=test_fraction,
            seed=seed,
            ks=ks,
            labels_csv=labels_csv,
            options=options,
            pca=pca,
            finetune=finetune,
            progress=progress,
        )

    def near_duplicates_split(
        self,
        root: str | Path,
        *,
        model: str | None = None,
        test_fraction: float = 0.5,
        seed: int = 0,
        ks: Sequence[int] = (1, 5),
        options: TrainOptions | None = None,
        copies: int = 8,
        tta: bool = False,
        augment: int = 0,
        finetune: FinetuneOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> SplitEvaluation:
        """Copy detection on held-out images: base vs a self-supervised head fitted on the
        other part (and index augmentation, test-time augmentation)."""
        from imgsearch.evaluation.split import split_near_duplicates

        return split_near_duplicates(
            root,
            encoder=self.encoder(model),
            database=self.db,
            test_fraction=test_fraction,
            seed=seed,
            ks=ks,
            options=options,
            copies=copies,
            tta=tta,
            augment=augment,
            finetune=finetune,
            progress=progress,
        )

    # --- connections ----------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection for reads (see db.reading): DatabaseUnavailable when the database
        cannot be reached, at once while it is known to be down."""
        with self._reads.connection() as conn:
            yield conn

    @contextmanager
    def searching(self) -> Iterator[psycopg.Connection]:
        """A connection for searches: the read replica when there is one (`replica`,
        IMGSEARCH_REPLICA_URL), the database itself while the replica does not answer."""
        with ExitStack() as stack:
            conn = None
            if self._replica is not None:
                try:
                    conn = stack.enter_context(self._replica.connection())
                except DatabaseUnavailable:
                    conn = None  # the replica is down: the primary answers
            if conn is None:
                conn = stack.enter_context(self._reads.connection())
            yield conn

    def close(self) -> None:
        """Close the read connections (loaded encoders are freed with the object)."""
        self._reads.close()
        if self._replica is not None:
            self._replica.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


REPLICA_TIMEOUT_S = 0.5  # a replica that does not answer this fast is skipped ...
REPLICA_DOWN_FOR_S = 30.0  # ... for this long: searches go to the primary meanwhile
REPLICA_CONNECT_TIMEOUT_S = 2  # libpq's smallest useful connect timeout


def _replica_connections(url: str | None, pool_size: int) -> ReadConnections | None:
    """Read connections to a replica (None without one); a malformed URL is refused here."""
    if not url:
        return None
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(libpq_url(url))
    except ProgrammingError as exc:
        raise ImgsearchError(
            "The replica URL (--replica or IMGSEARCH_REPLICA_URL) is not a PostgreSQL URL "
            "(expected postgresql://user@host:port/database)."
        ) from exc
    return ReadConnections(
        Database(libpq_url(url)),
        pool_size,
        timeout=REPLICA_TIMEOUT_S,
        down_for=REPLICA_DOWN_FOR_S,
        connect_timeout=REPLICA_CONNECT_TIMEOUT_S,
        shed_when_busy=False,  # a busy replica is waited for (briefly), not skipped
    )


def _with_folder(conn: psycopg.Connection, options: QueryOptions | None) -> QueryOptions | None:
    """The options with a relative folder filter resolved against the collection's root."""
    if options is None or not options.folder:
        return options
    from dataclasses import replace

    from imgsearch.browse import resolve_folder

    return replace(options, folder=resolve_folder(conn, options.folder))


def open(
    url: str | None = None, *, model: str | None = None, device: str | None = None, backend: str | None = None
) -> Index:
    """An Index on `url` (default: IMGSEARCH_DATABASE_URL, else the embedded server)."""
    return Index(url, model=model, device=device, backend=backend)
