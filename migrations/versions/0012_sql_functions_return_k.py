"""`similar_to_vector` (and so `similar_to_image`) returns k rows whenever k exist.

An HNSW scan stops after `hnsw.ef_search` candidates (40 by default), so `similar_to_vector(v,
100)` returned 40 rows through the index. The function now runs with pgvector's iterative index
scans (`hnsw.iterative_scan = strict_order`, `ivfflat.iterative_scan = relaxed_order`), as the
library's searches do, and sorts what the scan returns (an IVFFlat iterative scan may return
rows slightly out of order). Grants are kept (CREATE OR REPLACE keeps them).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION imgsearch.similar_to_vector(
    v halfvec, k integer, encoder text DEFAULT 'efficientnet-lite0')
RETURNS TABLE (image_id bigint, path text, similarity double precision, metadata jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, {vector_schema}
{settings}
AS $fn$
DECLARE
    enc_id integer;
    dim integer;
BEGIN
    SELECT c.id, c.dimension INTO enc_id, dim FROM imgsearch.encoders c
    WHERE c.name = encoder ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF enc_id IS NULL THEN
        RAISE EXCEPTION 'imgsearch: no encoder named "%"', encoder;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.path, s.similarity, s.metadata FROM ('
        '  SELECT i.id, i.path, (1 - (e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s)))::float8'
        '         AS similarity, i.metadata'
        '    FROM imgsearch.embeddings e JOIN imgsearch.images i ON i.id = e.image_id'
        '   WHERE e.encoder_id = %2$s'
        '   ORDER BY e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s) LIMIT $2) s'
        ' ORDER BY s.similarity DESC, s.id',
        dim, enc_id) USING v, k;
END
$fn$;
"""

ITERATIVE = "SET hnsw.iterative_scan = 'strict_order'\nSET ivfflat.iterative_scan = 'relaxed_order'"


def _vector_schema() -> str:
    return (
        op.get_bind()
        .exec_driver_sql(
            "SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace"
            " WHERE x.extname = 'vector'"
        )
        .scalar_one()
    )


def upgrade() -> None:
    op.execute("LOAD 'vector'")  # its settings must be known to name them in SET clauses
    op.execute(FUNCTION.format(vector_schema=_vector_schema(), settings=ITERATIVE))


def downgrade() -> None:
    op.execute(
        "ALTER FUNCTION imgsearch.similar_to_vector(halfvec, integer, text) "
        "RESET hnsw.iterative_scan; "
        "ALTER FUNCTION imgsearch.similar_to_vector(halfvec, integer, text) "
        "RESET ivfflat.iterative_scan"
    )
