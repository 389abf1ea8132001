"""The SQL roles get exactly what docs/sql.md grants them; `similar_to_image` takes any k.

Migrations 0011 and 0013 granted `imgsearch_reader` SELECT on `duplicate_calibrations` and
`search_settings`, beyond its contract (the view `image_catalog`, `similar_to_vector`,
`similar_to_image`). Both roles lose every privilege in the schema and get back exactly their
contract (`imgsearch_lookup`: the view and `similar_to_image`). The functions are SECURITY
DEFINER: they read `search_settings` as their owner, not as the caller.

`similar_to_image(id, k)` asked `similar_to_vector` for k + 1 rows, which overflows at
k = 2147483647 ("integer out of range"); k is now clamped first, so any k is a LIMIT: every
other image when k is at least their number.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

VECTOR = "imgsearch.similar_to_vector(halfvec, integer, text)"
IMAGE = "imgsearch.similar_to_image(bigint, integer, text)"
CONTRACT = {  # role: what it may use, as in docs/sql.md
    "imgsearch_reader": [
        "SELECT ON imgsearch.image_catalog",
        f"EXECUTE ON FUNCTION {VECTOR}",
        f"EXECUTE ON FUNCTION {IMAGE}",
    ],
    "imgsearch_lookup": ["SELECT ON imgsearch.image_catalog", f"EXECUTE ON FUNCTION {IMAGE}"],
}

SIMILAR_TO_IMAGE = """
CREATE OR REPLACE FUNCTION imgsearch.similar_to_image(
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
        FROM imgsearch.similar_to_vector(query_vector, least(k, 2147483646) + 1, encoder) s
        WHERE s.image_id <> query_id
        LIMIT k;
END
$fn$;
"""


def _grants(role: str, verb: str, privileges: list[str]) -> str:
    """GRANT or REVOKE (`verb`) each privilege to or from `role`, where the role exists."""
    to = "TO" if verb == "GRANT" else "FROM"
    statements = "\n".join(f"        {verb} {p} {to} {role};" for p in privileges)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
{statements}
    END IF;
END
$$;"""


def _vector_schema() -> str:
    from importlib import import_module

    return import_module("imgsearch.migrations.versions.0012_sql_functions_return_k")._vector_schema()


def upgrade() -> None:
    everything = [
        "ALL ON ALL TABLES IN SCHEMA imgsearch",  # views too
        "ALL ON ALL SEQUENCES IN SCHEMA imgsearch",
        "ALL ON ALL FUNCTIONS IN SCHEMA imgsearch",
    ]
    for role, contract in CONTRACT.items():
        op.execute(_grants(role, "REVOKE", everything))
        op.execute(_grants(role, "GRANT", contract))
    op.execute(SIMILAR_TO_IMAGE.format(vector_schema=_vector_schema()))


def downgrade() -> None:
    from importlib import import_module

    before = import_module("imgsearch.migrations.versions.0002_sql_interface").SIMILAR_TO_IMAGE
    op.execute(
        before.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").format(vector_schema=_vector_schema())
    )
    op.execute(
        _grants(
            "imgsearch_reader",
            "GRANT",
            ["SELECT ON imgsearch.duplicate_calibrations", "SELECT ON imgsearch.search_settings"],
        )
    )
