"""The SQL interface for other applications: a view, two search functions, a read-only role.

The role `imgsearch_reader` belongs to the whole server, so the downgrade revokes its
privileges in this database but leaves the role itself for other databases that use it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The functions build their query with the encoder's dimension and id as literals, so that the
# per-encoder expression/partial ANN indexes (see imgsearch.indexes) serve them.
SIMILAR_TO_VECTOR = """
CREATE FUNCTION imgsearch.similar_to_vector(
    v halfvec, k integer, encoder text DEFAULT 'efficientnet-lite0')
RETURNS TABLE (image_id bigint, path text, similarity double precision, metadata jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, {vector_schema}
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
        'SELECT i.id, i.path, (1 - (e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s)))::float8,'
        '       i.metadata'
        '  FROM imgsearch.embeddings e JOIN imgsearch.images i ON i.id = e.image_id'
        ' WHERE e.encoder_id = %2$s'
        ' ORDER BY e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s) LIMIT $2',
        dim, enc_id) USING v, k;
END
$fn$;
"""

SIMILAR_TO_IMAGE = """
CREATE FUNCTION imgsearch.similar_to_image(
    query_image_id bigint, k integer, encoder text DEFAULT 'efficientnet-lite0')
RETURNS TABLE (image_id bigint, path text, similarity double precision, metadata jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, {vector_schema}
AS $fn$
DECLARE
    query_vector halfvec;
    query_id bigint := query_image_id;
BEGIN
    SELECT e.embedding INTO query_vector
    FROM imgsearch.embeddings e JOIN imgsearch.encoders c ON c.id = e.encoder_id
    WHERE e.image_id = query_id AND c.name = encoder
    ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF query_vector IS NULL THEN
        RAISE EXCEPTION 'imgsearch: image % has no % vector', query_id, encoder;
    END IF;
    RETURN QUERY
        SELECT s.image_id, s.path, s.similarity, s.metadata
        FROM imgsearch.similar_to_vector(query_vector, k + 1, encoder) s
        WHERE s.image_id <> query_id
        LIMIT k;
END
$fn$;
"""


def upgrade() -> None:
    vector_schema = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace"
            " WHERE x.extname = 'vector'"
        )
        .scalar_one()
    )
    op.execute(
        """
        CREATE VIEW imgsearch.image_catalog AS
        SELECT id AS image_id, path, sha256, byte_size, width, height, format, indexed_at, metadata
        FROM imgsearch.images;
        COMMENT ON VIEW imgsearch.image_catalog IS 'Indexed images and their metadata (stable).';
        """
    )
    op.execute(SIMILAR_TO_VECTOR.format(vector_schema=vector_schema))
    op.execute(SIMILAR_TO_IMAGE.format(vector_schema=vector_schema))
    op.execute(
        """
        REVOKE ALL ON FUNCTION imgsearch.similar_to_vector(halfvec, integer, text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION imgsearch.similar_to_image(bigint, integer, text) FROM PUBLIC;
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_reader') THEN
                CREATE ROLE imgsearch_reader NOLOGIN;
            END IF;
            GRANT USAGE ON SCHEMA imgsearch TO imgsearch_reader;
            GRANT SELECT ON imgsearch.image_catalog TO imgsearch_reader;
            GRANT EXECUTE ON FUNCTION imgsearch.similar_to_vector(halfvec, integer, text)
                TO imgsearch_reader;
            GRANT EXECUTE ON FUNCTION imgsearch.similar_to_image(bigint, integer, text)
                TO imgsearch_reader;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'imgsearch: no privilege to create role imgsearch_reader; skipped';
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_reader') THEN
                REVOKE ALL ON SCHEMA imgsearch FROM imgsearch_reader;
            END IF;
        END
        $$;
        DROP FUNCTION imgsearch.similar_to_image(bigint, integer, text);
        DROP FUNCTION imgsearch.similar_to_vector(halfvec, integer, text);
        DROP VIEW imgsearch.image_catalog;
        """
    )
