"""`similar_to_vector` re-ranks a binary-quantised index's candidates before it joins the images.

With a binary-quantised HNSW index, the function took `rerank` candidates (100 to 480, often)
in Hamming order, joined `imgsearch.images` for every one of them, then sorted them by exact
distance and kept k. The candidates now carry only the image id and the exact distance (read
from `imgsearch.embeddings` alone); the k best of them are kept, and only those k are joined
with `imgsearch.images`. Same rows, same order (exact distance, then image id); the halfvec
path, the tuned settings and the grants are as migration 0013 left them (CREATE OR REPLACE keeps
the grants of 0014).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# Migration 0013's binary branch, the part that changes (the rest of its text is kept as it is).
BEFORE = """
        RETURN QUERY EXECUTE format(
            'SELECT i.id, i.path, (1 - (c.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s)))::float8,'
            '       i.metadata'
            '  FROM (SELECT e.image_id, e.embedding FROM imgsearch.embeddings e'
            '         WHERE e.encoder_id = %2$s'
            '         ORDER BY binary_quantize(e.embedding::halfvec(%1$s))::bit(%1$s)'
            '              <~> binary_quantize($1::halfvec(%1$s)) LIMIT $3) c'
            '  JOIN imgsearch.images i ON i.id = c.image_id'
            ' ORDER BY c.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s), i.id LIMIT $2',
            dim, enc_id) USING v, k, candidates;
"""
AFTER = """
        RETURN QUERY EXECUTE format(
            'SELECT i.id, i.path, (1 - r.distance)::float8, i.metadata'
            '  FROM (SELECT c.image_id, c.distance'
            '          FROM (SELECT e.image_id, e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s) AS distance'
            '                  FROM imgsearch.embeddings e'
            '                 WHERE e.encoder_id = %2$s'
            '                 ORDER BY binary_quantize(e.embedding::halfvec(%1$s))::bit(%1$s)'
            '                      <~> binary_quantize($1::halfvec(%1$s)) LIMIT $3) c'
            '         ORDER BY c.distance, c.image_id LIMIT $2) r'
            '  JOIN imgsearch.images i ON i.id = r.image_id'
            ' ORDER BY r.distance, i.id',
            dim, enc_id) USING v, k, candidates;
"""


def _previous():
    """Migration 0013 (the function's text, its lookup of pgvector's schema)."""
    from importlib import import_module

    return import_module("imgsearch.migrations.versions.0013_tuned_searches")


def function() -> str:
    """The function as this migration makes it: 0013's with the binary branch above."""
    before = _previous().FUNCTION
    if BEFORE not in before:
        raise RuntimeError("migration 0013's similar_to_vector is not the text 0015 replaces")
    return before.replace(BEFORE, AFTER)


def upgrade() -> None:
    op.execute("LOAD 'vector'")  # its settings must be known to name them in SET clauses
    op.execute(function().format(vector_schema=_previous()._vector_schema()))


def downgrade() -> None:
    op.execute("LOAD 'vector'")
    op.execute(_previous().FUNCTION.format(vector_schema=_previous()._vector_schema()))
