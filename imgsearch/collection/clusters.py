"""Clusters: K-Means (scikit-learn) over an encoder's stored vectors, kept as a clustering run
with each image's cluster and distance to its centroid."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import psycopg

from imgsearch.db.connection import scalar
from imgsearch.errors import ImgsearchError

AUTO_CANDIDATES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50)
AUTO_SAMPLE = 2000  # silhouette is scored on at most this many images
NEAREST = 5  # images listed per cluster: the ones nearest its centroid


@dataclass
class ClusterMember:
    id: int
    path: str
    distance: float  # to the cluster's centre


@dataclass
class Cluster:
    cluster: int
    size: int
    nearest: list[ClusterMember] = field(default_factory=list)


@dataclass
class Clustering:
    id: int
    model: str
    clusters: int
    images: int
    method: str
    clusters_found: list[Cluster] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def stored_vectors(
    conn: psycopg.Connection, enc_id: int, folder: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, unit float32 vectors) of one encoder, optionally under a folder."""
    rows = conn.execute(
        """SELECT e.image_id, e.embedding FROM imgsearch.embeddings e
           JOIN imgsearch.images i ON i.id = e.image_id
           WHERE e.encoder_id = %s AND (%s::text IS NULL OR starts_with(i.path, %s::text))
           ORDER BY e.image_id""",
        (enc_id, folder, folder),
    ).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([r[1].to_numpy() for r in rows]).astype(np.float32)
    return ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def choose_k(vectors: np.ndarray, seed: int = 0) -> int:
    """The candidate k with the best silhouette (cosine) on a sample."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sample = vectors[rng.permutation(len(vectors))[:AUTO_SAMPLE]]
    best, best_score = 2, -2.0
    for k in AUTO_CANDIDATES:
        if k >= len(sample):
            break
        labels = KMeans(k, n_init=3, random_state=seed).fit_predict(sample)
        score = silhouette_score(sample, labels, metric="cosine")
        if score > best_score:
            best, best_score = k, score
    return best


def run(
    conn: psycopg.Connection,
    enc_id: int,
    model: str,
    n: int | None = None,
    folder: str | None = None,
    seed: int = 0,
) -> Clustering:
    """Cluster the encoder's vectors into `n` clusters (None: chosen by silhouette), store
    the run, and return it with each cluster's size and nearest images."""
    from sklearn.cluster import KMeans

    prefix = folder.rstrip("/") + "/" if folder else None
    ids, vectors = stored_vectors(conn, enc_id, prefix)
    if len(ids) < 2:
        raise ImgsearchError("Clustering needs at least two indexed images.")
    method = "kmeans" if n else "kmeans, k by silhouette"
    k = n or choose_k(vectors, seed)
    if k > len(ids):
        raise ImgsearchError(f"{k} clusters asked for, but only {len(ids)} images are indexed.")
    kmeans = KMeans(k, n_init=4, random_state=seed).fit(vectors)
    distances = np.linalg.norm(vectors - kmeans.cluster_centers_[kmeans.labels_], axis=1)
    with conn.transaction():
        run_id = scalar(
            conn.execute(
                "INSERT INTO imgsearch.clusterings (encoder_id, clusters, method, folder, inertia)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (enc_id, k, method, prefix, float(kmeans.inertia_)),
            )
        )
        with conn.cursor().copy(
            "COPY imgsearch.cluster_assignments (clustering_id, image_id, cluster, distance) FROM STDIN"
        ) as copy:
            for image_id, label, distance in zip(ids, kmeans.labels_, distances, strict=True):
                copy.write_row((run_id, int(image_id), int(label), float(distance)))
    return summary(conn, run_id)


def latest(conn: psycopg.Connection, enc_id: int) -> int | None:
    return scalar(conn.execute("SELECT max(id) FROM imgsearch.clusterings WHERE encoder_id = %s", (enc_id,)))


def summary(conn: psycopg.Connection, run_id: int) -> Clustering:
    head = conn.execute(
        """SELECT c.id, e.name, c.clusters, c.method, count(a.image_id)
           FROM imgsearch.clusterings c JOIN imgsearch.encoders e ON e.id = c.encoder_id
           LEFT JOIN imgsearch.cluster_assignments a ON a.clustering_id = c.id
           WHERE c.id = %s GROUP BY c.id, e.name""",
        (run_id,),
    ).fetchone()
    if head is None:
        raise ImgsearchError(f"No clustering run {run_id}.")
    result = Clustering(head[0], head[1], head[2], head[4], head[3])
    for cluster, size in conn.execute(
        "SELECT cluster, count(*) FROM imgsearch.cluster_assignments WHERE clustering_id = %s"
        " GROUP BY cluster ORDER BY count(*) DESC, cluster",
        (run_id,),
    ):
        result.clusters_found.append(Cluster(cluster, size, members(conn, run_id, cluster, NEAREST)))
    return result


def members(
    conn: psycopg.Connection, run_id: int, cluster: int, limit: int = 100, offset: int = 0
) -> list[ClusterMember]:
    """A cluster's images, nearest its centroid first."""
    return [
        ClusterMember(image_id, path, distance)
        for image_id, path, distance in conn.execute(
            """SELECT a.image_id, i.path, a.distance FROM imgsearch.cluster_assignments a
                   JOIN imgsearch.images i ON i.id = a.image_id
                   WHERE a.clustering_id = %s AND a.cluster = %s
                   ORDER BY a.distance, a.image_id LIMIT %s OFFSET %s""",
            (run_id, cluster, limit, offset),
        )
    ]
