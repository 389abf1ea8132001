"""The duplicate margin, measured on the collection itself and stored per encoder.

The contrast rule (`duplicates`) links two images when their similarity exceeds both images'
background (the median similarity of their 17th to 32nd nearest neighbours) by a margin. The
margin is chosen here: a sample of the collection is edited the ways copies are made
(`encoding.edits.random_edit`: crops, rotations, borders, captions, recompression, colour,
grey, mirror, downscale), and each copy is compared, the way `duplicates` compares stored
images, with

- its original (a positive: the copy's contrast to it should reach the margin), and
- its nearest neighbour among those not already linked to its original at that margin (a
  negative: an unrelated image, whose contrast should stay under it).

For each margin of a grid (0.05 to 0.50), the share of copies whose negative reaches it; the
margin chosen is the smallest whose share is at most `1 - target` (the one with the smallest
share if none is). The share of positives that reach it is the recall to expect on such copies. The
negatives depend on the margin (what is "already linked" does), so each margin is judged on
its own: the margin is a fixed point of the rule it is used with.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch.collection.duplicates import (
    BACKGROUND,
    NEIGHBOURS,
    background,
    bar,
    neighbour_lists,
    use_ann,
)
from imgsearch.config import Settings
from imgsearch.db.connection import scalar
from imgsearch.encoding.decode import DecodeLimits
from imgsearch.encoding.edited_copies import copy_vectors
from imgsearch.encoding.edits import random_edit
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import unit
from imgsearch.errors import ImgsearchError
from imgsearch.indexed_files import read_indexed
from imgsearch.sources import is_url, location_of

SAMPLE = 200  # images edited
COPIES = 4  # edits of each
TARGET = 0.995  # at most 0.5% of copies reach an unrelated image's margin (see docs/guide/collection.md)
GRID = tuple(round(0.05 * k, 2) for k in range(1, 11))  # margins tried, 0.05 to 0.50
MIN_IMAGES = 10  # readable originals needed
BATCH = 8  # originals edited and encoded at a time (4 copies each)


@dataclass
class Calibration:
    encoder: str
    margin: float  # chosen
    target: float  # precision asked for
    images: int  # originals edited
    copies: int  # copies compared
    recall: float  # copies linked to their original at the margin (expected recall)
    negatives: float  # copies linked to an unrelated image at the margin (at most 1 - target, if any is)
    table: list[dict[str, float]] = field(default_factory=list)  # per margin: recall, negatives
    percentiles: dict[str, list[float]] = field(default_factory=dict)  # 5, 25, 50, 75, 95
    seed: int = 0
    seconds: float = 0.0
    created_at: datetime | None = None  # when stored (None until then)

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["created_at"] = self.created_at.isoformat() if self.created_at else None
        return found


def _sample(conn: psycopg.Connection, enc_id: int, n: int, seed: int) -> list[tuple[int, str, str, int]]:
    """Up to n images with a vector of the encoder, local files only, chosen with `seed`."""
    rows = conn.execute(
        """SELECT i.id, i.path, i.path_bytes, i.sha256, i.byte_size FROM imgsearch.images i
           JOIN imgsearch.embeddings e ON e.image_id = i.id AND e.encoder_id = %s
           ORDER BY i.id""",
        (enc_id,),
    ).fetchall()
    local = [row for row in rows if not is_url(row[1])]
    chosen = random.Random(seed).sample(local, min(n, len(local)))
    return [(image_id, location_of(path, exact), sha, size) for image_id, path, exact, sha, size in chosen]


def _copies(
    conn: psycopg.Connection,
    encoder: Encoder,
    enc_id: int,
    sample: int,
    copies: int,
    seed: int,
    settings: Settings,
) -> tuple[list[int], np.ndarray]:
    """The owners (original image ids) and unit vectors (rounded as stored) of the edited
    copies of a sample's readable images (one gone or changed since it was indexed is left out)."""
    rng = random.Random(seed)
    chosen = _sample(conn, enc_id, sample, seed)
    vectors, rows = copy_vectors(
        chosen,
        encoder,
        lambda picture, _: [random_edit(picture, rng) for _ in range(copies)],
        copies=copies,
        read=lambda row: read_indexed(*row[1:], settings=settings),
        limits=DecodeLimits.of(settings),
        scale=2,
        batch=BATCH * copies,
    )
    owners = [chosen[r][0] for r in rows]
    if len(set(owners)) < MIN_IMAGES:
        raise ImgsearchError(
            f"Calibrating needs at least {MIN_IMAGES} readable indexed images; "
            f"{len(set(owners))} could be read."
        )
    return owners, unit(vectors)


def _nearest(conn: psycopg.Connection, enc_id: int, dim: int, vector: np.ndarray) -> list[tuple[int, float]]:
    """The BACKGROUND[1] stored vectors nearest `vector` (ANN, as `duplicates` finds them)."""
    v = HalfVector(vector)
    rows = conn.execute(
        f"""SELECT image_id, 1 - ((embedding::halfvec({dim})) <=> %(v)s::halfvec({dim}))
            FROM imgsearch.embeddings WHERE encoder_id = {int(enc_id)}
            ORDER BY (embedding::halfvec({dim})) <=> %(v)s::halfvec({dim})
            LIMIT {BACKGROUND[1]}""",
        {"v": v},
    ).fetchall()
    return sorted(((int(i), float(s)) for i, s in rows), key=lambda n: (-n[1], n[0]))


def _stored(conn: psycopg.Connection, enc_id: int, ids: list[int]) -> dict[int, np.ndarray]:
    """Unit vectors of stored images."""
    found = {}
    for image_id, vector in conn.execute(
        "SELECT image_id, embedding FROM imgsearch.embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
        (enc_id, ids),
    ):
        v = np.asarray(vector.to_numpy(), dtype=np.float32)
        found[int(image_id)] = v / max(float(np.linalg.norm(v)), 1e-12)
    return found


def _percentiles(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(values, [5, 25, 50, 75, 95])] if values else []


def _contrast(similarity: float, b1: float | None, b2: float | None, margin: float) -> float:
    """Similarity over the higher bar, plus the margin: reaches `margin` exactly when linked."""
    return similarity - max(bar(b1, margin), bar(b2, margin)) + margin


def calibrate(
    conn: psycopg.Connection,
    encoder: Encoder,
    enc_id: int,
    dim: int,
    *,
    sample: int = SAMPLE,
    copies: int = COPIES,
    target: float = TARGET,
    seed: int = 0,
    settings: Settings,
) -> Calibration:
    """Edit a sample of the collection and choose the margin (see the module docstring); the
    settings give the limits on reading the sample."""
    if not 0.5 <= target < 1.0:
        raise ImgsearchError("The target precision is between 0.5 and 1.")
    if sample < MIN_IMAGES:
        raise ImgsearchError(f"The calibration sample is at least {MIN_IMAGES} images.")
    started = time.monotonic()
    owners, vectors = _copies(conn, encoder, enc_id, sample, copies, seed, settings)
    use_ann(conn)
    near = [_nearest(conn, enc_id, dim, v) for v in vectors]  # each copy's neighbours
    copy_bg = [background([s for _, s in found]) for found in near]
    # the stored images compared: originals and each copy's NEIGHBOURS nearest
    ids = sorted(set(owners) | {j for found in near for j, _ in found[:NEIGHBOURS]})
    stored_bg = {
        image: background([s for _, s, _ in found])
        for image, found in neighbour_lists(conn, enc_id, dim, ids=ids).items()
    }
    unit = _stored(conn, enc_id, ids)
    copy_sim = [float(vectors[r] @ unit[o]) for r, o in enumerate(owners)]

    def positives(margin: float) -> list[float]:
        """Each copy's contrast to its original."""
        return [_contrast(copy_sim[r], copy_bg[r], stored_bg.get(o), margin) for r, o in enumerate(owners)]

    def negative(r: int, margin: float) -> float | None:
        """Copy r's contrast to the nearest image not linked to its original at `margin`."""
        o = owners[r]
        for j, similarity in near[r][:NEIGHBOURS]:
            if j == o:
                continue
            if _contrast(float(unit[o] @ unit[j]), stored_bg.get(o), stored_bg.get(j), margin) >= margin:
                continue  # a duplicate of the original already
            return _contrast(similarity, copy_bg[r], stored_bg.get(j), margin)
        return None

    table = []
    for margin in GRID:
        negatives = [negative(r, margin) for r in range(len(owners))]
        table.append(
            {
                "margin": margin,
                "recall": round(float(np.mean([p >= margin for p in positives(margin)])), 4),
                "negatives": round(float(np.mean([n is not None and n >= margin for n in negatives])), 4),
            }
        )
    # the smallest margin that reaches the target; when none does, the one with the fewest
    # unrelated images above it (the largest margin is not safer: see the table in docs/guide/collection.md)
    chosen = next(
        (row for row in table if row["negatives"] <= 1.0 - target + 1e-9),
        min(table, key=lambda row: (row["negatives"], row["margin"])),
    )
    margin = chosen["margin"]
    unrelated = [n for r in range(len(owners)) if (n := negative(r, margin)) is not None]
    return Calibration(
        encoder=encoder.name,
        margin=margin,
        target=target,
        images=len(set(owners)),
        copies=len(owners),
        recall=chosen["recall"],
        negatives=chosen["negatives"],
        table=table,
        percentiles={
            "copy_contrast": _percentiles(positives(margin)),
            "unrelated_contrast": _percentiles(unrelated),
            "copy_similarity": _percentiles(copy_sim),
            "copy_background": _percentiles([b for b in copy_bg if b is not None]),
        },
        seed=seed,
        seconds=round(time.monotonic() - started, 1),
    )


def stored_calibration(conn: psycopg.Connection, enc_id: int) -> Calibration | None:
    """The encoder's latest calibration, if any."""
    row = conn.execute(
        """SELECT threshold, details, created_at FROM imgsearch.duplicate_calibrations
           WHERE encoder_id = %s ORDER BY created_at DESC, id DESC LIMIT 1""",
        (enc_id,),
    ).fetchone()
    if row is None:
        return None
    margin, details, created_at = row
    details = details if isinstance(details, dict) else json.loads(details)
    known = {k: v for k, v in details.items() if k in Calibration.__dataclass_fields__}
    known.update(margin=round(float(margin), 4), created_at=created_at)
    return Calibration(**known)


def store_calibration(conn: psycopg.Connection, enc_id: int, calibration: Calibration) -> None:
    """Store a calibration (the caller commits); its `created_at` is set."""
    details = calibration.to_json()
    details.pop("created_at")
    calibration.created_at = scalar(
        conn.execute(
            """INSERT INTO imgsearch.duplicate_calibrations (encoder_id, threshold, details)
               VALUES (%s, %s, %s) RETURNING created_at""",
            (enc_id, calibration.margin, json.dumps(details)),
        )
    )
