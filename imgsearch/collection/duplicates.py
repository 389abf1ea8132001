"""Duplicate groups: each image linked to its nearest neighbours (served by the encoder's ANN
index) that stand out from the images around it, gathered around centres (`_stars`); decisions
that last.

The rule (`find_groups`): a neighbour j of i is linked when their similarity exceeds both
images' background by a margin. An image's background is the median similarity of its
neighbours ranked 17th to 32nd: among look-alike images (solar cells, say) unrelated nearest
neighbours reach 0.96 and the background is high, while a photo's copies stand well above a
low one, so one margin fits both where one similarity threshold fits neither. The margin is
measured on the collection (`calibration`); an image with fewer than 32 neighbours has no
background and is held to FALLBACK_THRESHOLD instead. An explicit `threshold` keeps the older
global rule (similarity at or above it).

Decisions are stored per pair of contents (sha256), so a re-ingest (new image ids) keeps them:
`not-duplicates` pairs are never linked again; `keep` marks which image of a pair to keep, and
`resolve` forgets the others from the index (the files themselves are not touched).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated

import psycopg
from annotated_types import Interval, MaxLen  # honoured by pydantic where a request is validated

from imgsearch.collection.keeper import Look, choose
from imgsearch.db.connection import scalar
from imgsearch.errors import ImgsearchError
from imgsearch.sources import location_of

FALLBACK_THRESHOLD = 0.85  # the contrast rule's bar for an image without a background
FLOOR = 0.5  # no pair below this similarity is linked, whatever its contrast (copies: 0.6 and up)
DEFAULT_MARGIN = 0.2  # over the background, when no calibration is stored (benchmarks/duplicates.py)
NEIGHBOURS = 16  # neighbours that can be linked, per image
BACKGROUND = (16, 32)  # ranks (0-based, end excluded) whose median similarity is the background
EF_SEARCH = 64  # HNSW candidates for the 32 neighbours
RULES = ("calibrated", "default margin", "threshold")  # how a page's groups were found


@dataclass(kw_only=True)
class DuplicateQuery:
    """Which duplicate groups are listed, declared once for the library (`Index.duplicates`),
    the CLI (`imgsearch duplicates`) and the HTTP API (GET /api/duplicates's parameters)."""

    threshold: Annotated[float | None, Interval(ge=FLOOR, le=1.0)] = None  # the global rule; None: contrast
    folder: Annotated[str | None, MaxLen(4096)] = None  # only images under this folder
    decided: bool = False  # also the groups whose keeper was chosen over every other member


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
    keep: int | None = None  # the suggested keeper (`suggest`), or the one the user chose
    reasons: list[str] = field(default_factory=list)  # why that one
    decided: bool = False  # the user chose the keeper over every other member

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "keep": self.keep,
            "reasons": self.reasons,
            "decided": self.decided,
            "members": [m.to_json() for m in self.members],
        }


@dataclass
class DuplicatePage:
    groups: list[Group]  # this page's, each with its suggested keeper
    total: int  # groups in all (without the decided ones unless they were asked for)
    threshold: float | None  # the global rule's similarity (rule "threshold"), else None
    margin: float | None = None  # over the background (the contrast rule), else None
    rule: str = "threshold"  # one of RULES


# a pair of images (ia, ib) that a stored decision keeps apart
_KEPT_APART = """EXISTS (
    SELECT 1 FROM imgsearch.duplicate_decisions d
    WHERE d.decision = 'not-duplicates'
      AND d.a_sha256 = least(ia.sha256, ib.sha256)
      AND d.b_sha256 = greatest(ia.sha256, ib.sha256))"""


def _nearest(enc_id: int, dim: int, limit: int) -> str:
    """FROM clause: each embedding `a` of the encoder (image `ia`) with its `limit` nearest
    others `n` (ANN-served; image `ib`, `n.distance` the cosine distance)."""
    return f"""FROM imgsearch.embeddings a JOIN imgsearch.images ia ON ia.id = a.image_id
            CROSS JOIN LATERAL (
                SELECT b.image_id, (b.embedding::halfvec({dim})) <=> (a.embedding::halfvec({dim}))
                       AS distance
                FROM imgsearch.embeddings b
                WHERE b.encoder_id = {int(enc_id)} AND b.image_id <> a.image_id
                ORDER BY (b.embedding::halfvec({dim})) <=> (a.embedding::halfvec({dim}))
                LIMIT {int(limit)}) n
            JOIN imgsearch.images ib ON ib.id = n.image_id"""


def _links(
    conn: psycopg.Connection, enc_id: int, dim: int, threshold: float, folder: str | None
) -> list[tuple[int, int, float]]:
    """(image, neighbour, similarity) pairs at or above the threshold, minus not-duplicates."""
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(40, NEIGHBOURS)),))
    return conn.execute(
        f"""SELECT a.image_id, n.image_id, 1 - n.distance
            {_nearest(enc_id, dim, NEIGHBOURS)}
            WHERE a.encoder_id = {int(enc_id)} AND n.distance <= %(max_distance)s
              AND (%(folder)s::text IS NULL OR (starts_with(ia.path, %(folder)s::text)
                                                AND starts_with(ib.path, %(folder)s::text)))
              AND NOT {_KEPT_APART}""",
        {"max_distance": 1.0 - threshold, "folder": folder.rstrip("/") + "/" if folder else None},
    ).fetchall()


def find_groups(
    conn: psycopg.Connection,
    enc_id: int,
    dim: int,
    threshold: float | None = None,
    folder: str | None = None,
    margin: float | None = None,
) -> list[Group]:
    """Groups of two or more images, largest first: with `threshold`, the global rule
    (similarity at or above it); else the contrast rule with `margin` (DEFAULT_MARGIN)."""
    if threshold is not None:
        if not 0.0 < threshold <= 1.0:
            raise ImgsearchError("The duplicate threshold must be a similarity in (0, 1].")
        links = _links(conn, enc_id, dim, threshold, folder)
    else:
        margin = DEFAULT_MARGIN if margin is None else margin
        if not 0.0 < margin < 1.0:
            raise ImgsearchError("The duplicate margin must be in (0, 1).")
        links = _contrast_links(conn, enc_id, dim, margin, folder)
    groups = [_group(conn, ids) for ids in _stars(links)]
    return sorted(groups, key=lambda g: (-len(g.members), g.id))


Neighbours = list[tuple[int, float, bool]]  # (image, similarity, under the folder asked), nearest first


def neighbour_lists(
    conn: psycopg.Connection,
    enc_id: int,
    dim: int,
    ids: Sequence[int] | None = None,
    folder: str | None = None,
) -> dict[int, Neighbours]:
    """Each image's BACKGROUND[1] nearest neighbours (ANN), for the images `ids` (all of the
    encoder's by default) under `folder` (all by default)."""
    use_ann(conn)
    prefix = folder.rstrip("/") + "/" if folder else None
    rows = conn.execute(
        f"""SELECT a.image_id, n.image_id, 1 - n.distance,
                   %(folder)s::text IS NULL OR starts_with(ib.path, %(folder)s::text)
            {_nearest(enc_id, dim, BACKGROUND[1])}
            WHERE a.encoder_id = {int(enc_id)}
              AND (%(ids)s::bigint[] IS NULL OR a.image_id = ANY(%(ids)s::bigint[]))
              AND (%(folder)s::text IS NULL OR starts_with(ia.path, %(folder)s::text))""",
        {"ids": None if ids is None else list(ids), "folder": prefix},
    ).fetchall()
    lists: dict[int, Neighbours] = {}
    for a, b, similarity, inside in rows:
        lists.setdefault(a, []).append((b, float(similarity), bool(inside)))
    for found in lists.values():
        found.sort(key=lambda n: (-n[1], n[0]))
    return lists


def use_ann(conn: psycopg.Connection) -> None:
    """For this transaction: EF_SEARCH HNSW candidates, and no exact scan-and-sort where the
    encoder has an ANN index (without statistics, right after a large ingest, the planner
    takes 32 neighbours of 10,000 images by sorting all of them: 97 s instead of 13)."""
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(EF_SEARCH),))
    conn.execute("SELECT set_config('enable_sort', 'off', true)")


def background(similarities: Sequence[float]) -> float | None:
    """The median of the similarities (nearest first) at the ranks BACKGROUND; None when there
    are fewer than BACKGROUND[1]."""
    if len(similarities) < BACKGROUND[1]:
        return None
    return float(statistics.median(similarities[BACKGROUND[0] : BACKGROUND[1]]))


def bar(background_similarity: float | None, margin: float) -> float:
    """The similarity an image's neighbour must reach: its background plus the margin (never
    under FLOOR, so two different pictures that merely stand out from a sparse background are
    not joined), or FALLBACK_THRESHOLD without a background. A pair is linked at or above both
    images' bars."""
    if background_similarity is None:
        return FALLBACK_THRESHOLD
    return max(background_similarity + margin, FLOOR)


def _contrast_links(
    conn: psycopg.Connection, enc_id: int, dim: int, margin: float, folder: str | None
) -> list[tuple[int, int, float]]:
    """(image, neighbour, similarity) pairs linked by the contrast rule, minus not-duplicates."""
    lists = neighbour_lists(conn, enc_id, dim, folder=folder)
    bars = {image: bar(background([s for _, s, _ in found]), margin) for image, found in lists.items()}
    links = [
        (image, other, similarity)
        for image, found in lists.items()
        for other, similarity, inside in found[:NEIGHBOURS]
        if inside and similarity >= max(bars[image], bars.get(other, FALLBACK_THRESHOLD))
    ]
    blocked = _not_duplicates(conn, [(a, b) for a, b, _ in links])
    return [link for link in links if (link[0], link[1]) not in blocked]


def _not_duplicates(conn: psycopg.Connection, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The pairs (as given) that a stored `not-duplicates` decision keeps apart."""
    if not pairs or not scalar(
        conn.execute(
            "SELECT EXISTS (SELECT 1 FROM imgsearch.duplicate_decisions WHERE decision = 'not-duplicates')"
        )
    ):
        return set()
    rows = conn.execute(
        """SELECT x.a, x.b FROM unnest(%s::bigint[], %s::bigint[]) AS x(a, b)
           JOIN imgsearch.images ia ON ia.id = x.a JOIN imgsearch.images ib ON ib.id = x.b
           WHERE """
        + _KEPT_APART,
        ([a for a, _ in pairs], [b for _, b in pairs]),
    ).fetchall()
    return {(int(a), int(b)) for a, b in rows}


def _stars(links: list[tuple[int, int, float]]) -> list[list[int]]:
    """Groups around a centre: the image linked to the most others takes them all, then the
    next among those left, and so on. Every member is linked to its group's centre, so images
    that only chain through others (A~B~C, A not ~C) are not lumped together."""
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


def chosen_keepers(conn: psycopg.Connection, groups: Sequence[Group]) -> dict[int, tuple[int, bool]]:
    """Group id -> (the member the user chose to keep, whether over every other member), for the
    groups where stored `keep` decisions rank a member over others and no member over it."""
    shas = sorted({m.sha256 for g in groups for m in g.members})
    if not shas:
        return {}
    wins: dict[str, set[str]] = {}
    for a, b in conn.execute(
        """SELECT a_sha256, b_sha256 FROM imgsearch.duplicate_decisions
           WHERE decision = 'keep' AND a_sha256 = ANY(%(s)s) AND b_sha256 = ANY(%(s)s)""",
        {"s": shas},
    ):
        wins.setdefault(a, set()).add(b)
    chosen: dict[int, tuple[int, bool]] = {}
    for g in groups:
        contents = {m.sha256 for m in g.members}
        for m in g.members:
            beaten = wins.get(m.sha256, set()) & contents
            if beaten and not any(m.sha256 in wins.get(o, set()) for o in contents - {m.sha256}):
                chosen[g.id] = (m.id, contents - {m.sha256} <= beaten)
                break
    return chosen


def suggest(
    conn: psycopg.Connection,
    enc_id: int,
    dim: int,
    group: Group,
    look: Callable[[Member], Look | None],
    chosen: tuple[int, bool] | None = None,
) -> Group:
    """The group with its keeper (the user's `chosen` one, else `keeper.choose` over the members
    that can be read; all of them when none can), its reasons, and each member's similarity
    to it, keeper first."""
    looks = [found for m in group.members if (found := look(m)) is not None] if chosen is None else []
    if chosen is not None:
        keep, reasons = chosen[0], ["your choice"]
    elif looks:
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
    return Group(group.id, members, keep, reasons, decided=chosen is not None and chosen[1])


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
