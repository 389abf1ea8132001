"""The index setting each encoder's searches use, as `imgsearch index tune` chose and measured it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

FIELDS = (
    "index_name",
    "ef_search",
    "probes",
    "rerank",
    "k",
    "target_recall",
    "recall",
    "p50_ms",
    "queries",
    "rows_at_tuning",
)


@dataclass
class SearchSettings:
    index_name: str
    ef_search: int | None  # HNSW
    probes: int | None  # IVFFlat
    rerank: int | None  # binary-quantised HNSW: candidates re-ranked by exact distance
    k: int
    target_recall: float
    recall: float  # recall@k measured with this setting
    p50_ms: float
    queries: int  # stored vectors used as queries
    rows_at_tuning: int
    tuned_at: datetime | None = None

    @property
    def setting(self) -> tuple[str, int]:
        """The one index setting chosen: (ef_search, probes or rerank, its value)."""
        for name in ("ef_search", "probes", "rerank"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise ValueError("search settings without a setting")


def load(conn: psycopg.Connection, enc_id: int) -> SearchSettings | None:
    row = conn.execute(
        f"SELECT {', '.join(FIELDS)}, tuned_at FROM imgsearch.search_settings WHERE encoder_id = %s",
        (enc_id,),
    ).fetchone()
    return SearchSettings(*row) if row else None


def save(conn: psycopg.Connection, enc_id: int, settings: SearchSettings) -> None:
    values = [getattr(settings, name) for name in FIELDS]
    conn.execute(
        f"""INSERT INTO imgsearch.search_settings (encoder_id, {", ".join(FIELDS)})
            VALUES (%s, {", ".join(["%s"] * len(FIELDS))})
            ON CONFLICT (encoder_id) DO UPDATE SET
            ({", ".join(FIELDS)}, tuned_at) = ({", ".join(f"EXCLUDED.{f}" for f in FIELDS)}, now())""",
        [enc_id, *values],
    )


def forget(conn: psycopg.Connection, enc_id: int) -> None:
    """The index changed: its tuning no longer holds."""
    conn.execute("DELETE FROM imgsearch.search_settings WHERE encoder_id = %s", (enc_id,))
