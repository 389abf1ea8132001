"""Duplicate groups: each image's nearest neighbours within a similarity threshold (served by
the encoder's ANN index), joined into connected groups; decisions that last.

Decisions are stored per pair of contents (sha256), so a re-ingest (new image ids) keeps them:
`not-duplicates` pairs are never linked again; `keep` marks which image of a pair to keep, and
`resolve` forgets the others from the index (the files themselves are not touched).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import psycopg

from imgsearch.errors import ImgsearchError

DEFAULT_THRESHOLD = 0.85  # cosine similarity, chosen by benchmarks/collection.py (README)
NEIGHBOURS = 16  # neighbours looked at per image


@dataclass
class Member:
    id: int
    path: str
    byte_size: int
    width: int | None
    height: int | None
    mtime: float | None
    sha256: str
    similarity: float  # to the suggested image (1.0 for itself)


@dataclass
class Group:
    id: int  # the smallest image id in the group (stable while the group is)
    keep: int  # suggested image to keep: most pixels, then largest file, then oldest
    members: list[Member] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _links(
    conn: psycopg.Connection, enc_id: int, dim: int, threshold: float, folder: str | None
) -> list[tuple[int, int, float]]:
    """(image, neighbour, similarity) pairs at or above the threshold, minus not-duplicates."""
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(40, NEIGHBOURS)),))
    return conn.execute(
        f"""SELECT a.image_id, n.image_id, 1 - n.distance
            FROM imgsearch.embeddings a JOIN imgsearch.images ia ON ia.id = a.image_id
            CROSS JOIN LATERAL (
                SELECT b.image_id, (b.embedding::halfvec({dim})) <=> (a.embedding::halfvec({dim}))
                       AS distance
                FROM imgsearch.embeddings b
                WHERE b.encoder_id = {int(enc_id)} AND b.image_id <> a.image_id
                ORDER BY (b.embedding::halfvec({dim})) <=> (a.embedding::halfvec({dim}))
                LIMIT {NEIGHBOURS}) n
            JOIN imgsearch.images ib ON ib.id = n.image_id
            WHERE a.encoder_id = {int(enc_id)} AND n.distance <= %(max_distance)s
              AND (%(folder)s::text IS NULL OR (starts_with(ia.path, %(folder)s::text)
                                                AND starts_with(ib.path, %(folder)s::text)))
              AND NOT EXISTS (
                  SELECT 1 FROM imgsearch.duplicate_decisions d
                  WHERE d.decision = 'not-duplicates'
                    AND d.a_sha256 = least(ia.sha256, ib.sha256)
                    AND d.b_sha256 = greatest(ia.sha256, ib.sha256))""",
        {"max_distance": 1.0 - threshold, "folder": folder.rstrip("/") + "/" if folder else None},
    ).fetchall()


def find_groups(
    conn: psycopg.Connection,
    enc_id: int,
    dim: int,
    threshold: float = DEFAULT_THRESHOLD,
    folder: str | None = None,
) -> list[Group]:
    """Groups of two or more images, largest first."""
    if not 0.0 < threshold <= 1.0:
        raise ImgsearchError("The duplicate threshold must be a similarity in (0, 1].")
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in _links(conn, enc_id, dim, threshold, folder):
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for image in parent:
        members.setdefault(root(image), []).append(image)
    groups = [_group(conn, enc_id, dim, ids) for ids in members.values() if len(ids) > 1]
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


def _group(conn: psycopg.Connection, enc_id: int, dim: int, ids: list[int]) -> Group:
    rows = conn.execute(
        "SELECT id, path, byte_size, width, height, mtime, sha256 FROM imgsearch.images WHERE id = ANY(%s)",
        (ids,),
    ).fetchall()
    keep = max(rows, key=lambda r: ((r[3] or 0) * (r[4] or 0), r[2], -(r[5] or 0), -r[0]))[0]
    similarity: dict[int, float] = dict(
        conn.execute(
            f"""SELECT e.image_id, 1 - ((e.embedding::halfvec({dim})) <=> (k.embedding::halfvec({dim})))
            FROM imgsearch.embeddings e JOIN imgsearch.embeddings k
              ON k.image_id = %s AND k.encoder_id = e.encoder_id
            WHERE e.encoder_id = %s AND e.image_id = ANY(%s)""",
            (keep, enc_id, ids),
        ).fetchall()
    )
    members = [
        Member(
            image_id,
            path,
            size,
            width,
            height,
            mtime,
            sha256,
            similarity=float(similarity.get(image_id, 0.0)),
        )
        for image_id, path, size, width, height, mtime, sha256 in rows
    ]
    members.sort(key=lambda m: (m.id != keep, -m.similarity, m.id))
    return Group(min(ids), keep, members)


def decide(conn: psycopg.Connection, image_ids: list[int], decision: str, keep: int | None = None) -> int:
    """Record a decision about these images; the number of pairs recorded."""
    if decision not in ("keep", "not-duplicates"):
        raise ImgsearchError("A decision is `keep` or `not-duplicates`.")
    shas: dict[int, str] = dict(
        conn.execute(
            "SELECT id, sha256 FROM imgsearch.images WHERE id = ANY(%s)", (list(image_ids),)
        ).fetchall()
    )
    if len(shas) != len(set(image_ids)) or len(shas) < 2:
        raise ImgsearchError("A decision needs two or more indexed images.")
    if decision == "keep" and keep not in shas:
        raise ImgsearchError("The image to keep must be one of the group's images.")
    if decision == "keep" and keep is not None:
        pairs = [(shas[keep], shas[i]) for i in shas if i != keep and shas[i] != shas[keep]]
    else:
        values = sorted(set(shas.values()))
        pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
    with conn.transaction():
        for a, b in pairs:
            conn.execute(
                "DELETE FROM imgsearch.duplicate_decisions WHERE (a_sha256, b_sha256)"
                " IN ((%s, %s), (%s, %s))",
                (a, b, b, a),
            )
            conn.execute(
                "INSERT INTO imgsearch.duplicate_decisions (a_sha256, b_sha256, decision)"
                " VALUES (%s, %s, %s)",
                (a, b, decision),
            )
    return len(pairs)


def resolve(conn: psycopg.Connection) -> int:
    """Forget every image that a `keep` decision ranks below another indexed image."""
    with conn.transaction():
        return conn.execute(
            """DELETE FROM imgsearch.images i USING imgsearch.duplicate_decisions d
               WHERE d.decision = 'keep' AND i.sha256 = d.b_sha256
                 AND EXISTS (SELECT 1 FROM imgsearch.images k WHERE k.sha256 = d.a_sha256)""",
        ).rowcount
