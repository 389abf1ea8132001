"""Duplicate groups: each image's nearest neighbours within a similarity threshold (served by
the encoder's ANN index), gathered around centres (`_stars`); decisions that last.

Decisions are stored per pair of contents (sha256), so a re-ingest (new image ids) keeps them:
`not-duplicates` pairs are never linked again; `keep` marks which image of a pair to keep, and
`resolve` forgets the others from the index (the files themselves are not touched).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import psycopg

from imgsearch.collection.keeper import Look, choose
from imgsearch.errors import ImgsearchError
from imgsearch.sources import location_of

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
    location: str = field(default="", repr=False)  # to open the file (see sources)
    similarity: float = 1.0  # to the suggested keeper (1.0 for itself)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "location"}


@dataclass
class Group:
    id: int  # the smallest image id in the group (stable while the group is)
    members: list[Member] = field(default_factory=list)
    keep: int | None = None  # the suggested keeper (`suggest`)
    reasons: list[str] = field(default_factory=list)  # why that one

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "keep": self.keep,
            "reasons": self.reasons,
            "members": [m.to_json() for m in self.members],
        }


@dataclass
class DuplicatePage:
    groups: list[Group]  # this page's, each with its suggested keeper
    total: int  # groups in all
    threshold: float


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
    links = _links(conn, enc_id, dim, threshold, folder)
    groups = [_group(conn, ids) for ids in _stars(links)]
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


def _stars(links: list[tuple[int, int, float]]) -> list[list[int]]:
    """Groups around a centre: the image linked to the most others takes them all, then the
    next among those left, and so on. Every member is at or above the threshold to its group's
    centre, so images that only chain through others (A~B~C, A not ~C) are not lumped together."""
    near: dict[int, set[int]] = {}
    for a, b, _ in links:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    taken: set[int] = set()
    groups = []
    for centre in sorted(near, key=lambda x: (-len(near[x]), x)):
        if centre in taken:
            continue
        members = [centre, *sorted(n for n in near[centre] if n not in taken)]
        if len(members) > 1:
            taken.update(members)
            groups.append(members)
    return groups


def _group(conn: psycopg.Connection, ids: list[int]) -> Group:
    rows = conn.execute(
        "SELECT id, path, byte_size, width, height, mtime, sha256, path_bytes FROM imgsearch.images"
        " WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    ).fetchall()
    members = [
        Member(image_id, path, size, width, height, mtime, sha256, location_of(path, exact))
        for image_id, path, size, width, height, mtime, sha256, exact in rows
    ]
    return Group(min(ids), members)


def suggest(
    conn: psycopg.Connection, enc_id: int, dim: int, group: Group, look: Callable[[Member], Look | None]
) -> Group:
    """The group with its suggested keeper (`keeper.choose` over the members that can be read;
    all of them when none can), its reasons, and each member's similarity to it, keeper first."""
    looks = [found for m in group.members if (found := look(m)) is not None]
    if looks:
        keep, reasons = choose(looks)
    else:
        keep, reasons = max(group.members, key=lambda m: ((m.width or 0) * (m.height or 0), -m.id)).id, []
    similarity: dict[int, float] = dict(
        conn.execute(
            f"""SELECT e.image_id, 1 - ((e.embedding::halfvec({dim})) <=> (k.embedding::halfvec({dim})))
            FROM imgsearch.embeddings e JOIN imgsearch.embeddings k
              ON k.image_id = %s AND k.encoder_id = e.encoder_id
            WHERE e.encoder_id = %s AND e.image_id = ANY(%s)""",
            (keep, enc_id, [m.id for m in group.members]),
        ).fetchall()
    )
    members = [replace(m, similarity=float(similarity.get(m.id, 0.0))) for m in group.members]
    members.sort(key=lambda m: (m.id != keep, -m.similarity, m.id))
    return Group(group.id, members, keep, reasons)


def decide(
    conn: psycopg.Connection,
    image_ids: list[int],
    decision: str,
    keep: int | None = None,
    exclude: Sequence[int] = (),
) -> int:
    """Record a decision about a group's images; the number of pairs recorded.

    `keep`: keep `keep` over the others; `not-duplicates`: none of them are duplicates of each
    other. Images in `exclude` are not duplicates of the rest of the group (with either)."""
    if decision not in ("keep", "not-duplicates"):
        raise ImgsearchError("A decision is `keep` or `not-duplicates`.")
    shas: dict[int, str] = dict(
        conn.execute(
            "SELECT id, sha256 FROM imgsearch.images WHERE id = ANY(%s)", (list(image_ids),)
        ).fetchall()
    )
    if len(shas) != len(set(image_ids)) or len(shas) < 2:
        raise ImgsearchError("A decision needs two or more indexed images.")
    if not set(exclude) <= set(shas):
        raise ImgsearchError("The images left out must be among the group's images.")
    if decision == "keep" and (keep not in shas or keep in exclude):
        raise ImgsearchError("The image to keep must be one of the group's images (not one left out).")
    pairs: set[tuple[str, str, str]] = set()
    rest = [i for i in shas if i not in exclude]
    for left_out in exclude:
        pairs |= {(shas[left_out], shas[i], "not-duplicates") for i in shas if i != left_out}
    if decision == "keep" and keep is not None:
        pairs |= {(shas[keep], shas[i], "keep") for i in rest if i != keep}
    elif decision == "not-duplicates":
        pairs |= {(shas[a], shas[b], "not-duplicates") for a in rest for b in rest if a < b}
    pairs = {(a, b, d) for a, b, d in pairs if a != b}
    with conn.transaction():
        for a, b, what in sorted(pairs):
            conn.execute(
                "DELETE FROM imgsearch.duplicate_decisions WHERE (a_sha256, b_sha256)"
                " IN ((%s, %s), (%s, %s))",
                (a, b, b, a),
            )
            if what == "not-duplicates":  # stored in order: the pair's key is symmetric
                a, b = min(a, b), max(a, b)
            conn.execute(
                "INSERT INTO imgsearch.duplicate_decisions (a_sha256, b_sha256, decision)"
                " VALUES (%s, %s, %s)",
                (a, b, what),
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
