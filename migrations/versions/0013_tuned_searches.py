"""Searches tuned per encoder, binary-quantised indexes, pg_prewarm.

`imgsearch.search_settings` holds, per encoder, the index setting `imgsearch index tune` chose
(HNSW ef_search, IVFFlat probes, or the candidates a binary-quantised index re-ranks) with the
recall and latency it measured. `similar_to_vector` uses it (a session's own larger ef_search /
probes wins, so an application can still ask for more; pgvector's defaults count as not set; an
ef_search is never below k),
re-ranks a binary-quantised index's candidates by exact distance, and restores the session's
settings when it returns.
pg_prewarm (a contrib extension) loads indexes into memory when the service starts; where the
role may not create it, prewarming is skipped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION imgsearch.similar_to_vector(
    v halfvec, k integer, encoder text DEFAULT 'efficientnet-lite0')
RETURNS TABLE (image_id bigint, path text, similarity double precision, metadata jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, {vector_schema}
SET hnsw.iterative_scan = 'strict_order'
SET ivfflat.iterative_scan = 'relaxed_order'
AS $fn$
DECLARE
    enc_id integer;
    dim integer;
    tuned imgsearch.search_settings%ROWTYPE;
    -- NULL until pgvector's library is loaded in this session: its defaults then
    old_ef text := coalesce(current_setting('hnsw.ef_search', true), '40');
    old_probes text := coalesce(current_setting('ivfflat.probes', true), '1');
    candidates integer;
BEGIN
    SELECT c.id, c.dimension INTO enc_id, dim FROM imgsearch.encoders c
    WHERE c.name = encoder ORDER BY c.created_at DESC, c.id DESC LIMIT 1;
    IF enc_id IS NULL THEN
        RAISE EXCEPTION 'imgsearch: no encoder named "%"', encoder;
    END IF;
    SELECT * INTO tuned FROM imgsearch.search_settings s WHERE s.encoder_id = enc_id;
    -- the tuned setting; a session's own larger one wins (pgvector's defaults, 40 and 1, count
    -- as not set); ef_search is never below k
    IF tuned.ef_search IS NOT NULL THEN
        PERFORM set_config('hnsw.ef_search', greatest(
            tuned.ef_search, least(k, 1000), nullif(old_ef::int, 40))::text, true);
    END IF;
    IF tuned.probes IS NOT NULL THEN
        PERFORM set_config('ivfflat.probes', greatest(tuned.probes, nullif(old_probes::int, 1))::text, true);
    END IF;
    IF to_regclass(format('imgsearch.embeddings_hnsw_bit_enc%s', enc_id)) IS NOT NULL THEN
        candidates := greatest(k, coalesce(tuned.rerank, 100));
        PERFORM set_config(  -- at most pgvector's 1000: the iterative scan goes on past it
            'hnsw.ef_search', least(greatest(candidates, nullif(old_ef::int, 40)), 1000)::text, true);
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
    ELSE
        RETURN QUERY EXECUTE format(
            'SELECT s.id, s.path, s.similarity, s.metadata FROM ('
            '  SELECT i.id, i.path, (1 - (e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s)))::float8'
            '         AS similarity, i.metadata'
            '    FROM imgsearch.embeddings e JOIN imgsearch.images i ON i.id = e.image_id'
            '   WHERE e.encoder_id = %2$s'
            '   ORDER BY e.embedding::halfvec(%1$s) <=> $1::halfvec(%1$s) LIMIT $2) s'
            ' ORDER BY s.similarity DESC, s.id',
            dim, enc_id) USING v, k;
    END IF;
    PERFORM set_config('hnsw.ef_search', old_ef, true);
    PERFORM set_config('ivfflat.probes', old_probes, true);
END
$fn$;
"""

PREWARM = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_prewarm;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_prewarm not created (needs a superuser): indexes are not prewarmed';
END
$$;
"""


def _previous():
    """Migration 0012 (its function text for downgrade, its lookup of pgvector's schema)."""
    from importlib import import_module

    return import_module("imgsearch.migrations.versions.0012_sql_functions_return_k")


def _vector_schema() -> str:
    return _previous()._vector_schema()


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.search_settings (
            encoder_id integer PRIMARY KEY REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            index_name text NOT NULL,
            ef_search integer,
            probes integer,
            rerank integer,
            k integer NOT NULL,
            target_recall double precision NOT NULL,
            recall double precision NOT NULL,
            p50_ms double precision NOT NULL,
            queries integer NOT NULL,
            rows_at_tuning bigint NOT NULL,
            tuned_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE imgsearch.search_settings IS
            'per encoder: the index setting imgsearch index tune chose, with its measured recall@k';
        GRANT SELECT ON imgsearch.search_settings TO imgsearch_reader;
        """
    )
    op.execute(PREWARM)
    op.execute("LOAD 'vector'")
    op.execute(FUNCTION.format(vector_schema=_vector_schema()))


def downgrade() -> None:
    previous = _previous()
    op.execute("LOAD 'vector'")
    op.execute(previous.FUNCTION.format(vector_schema=_vector_schema(), settings=previous.ITERATIVE))
    op.execute("DROP TABLE imgsearch.search_settings")
