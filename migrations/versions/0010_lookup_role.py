"""A second SQL role, `imgsearch_lookup`, that cannot probe the vector space.

`imgsearch_reader` may call `similar_to_vector` with any vector it chooses; the similarity of
a stored vector to each of the 1,280 unit vectors is that vector's coordinates, so the reader
can recover every stored vector. That is part of the contract: applications that encode their
own queries (another program, a text tower) need it. `imgsearch_lookup` gets the catalogue and
`similar_to_image` only: it finds images like an indexed one, and learns the similarities of
indexed images to their nearest neighbours, but no vector and nothing about vectors it chose.

Like `imgsearch_reader`, the role belongs to the whole server: the downgrade revokes its
privileges in this database and leaves the role.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_lookup') THEN
                CREATE ROLE imgsearch_lookup NOLOGIN;
            END IF;
            GRANT USAGE ON SCHEMA imgsearch TO imgsearch_lookup;
            GRANT SELECT ON imgsearch.image_catalog TO imgsearch_lookup;
            GRANT EXECUTE ON FUNCTION imgsearch.similar_to_image(bigint, integer, text)
                TO imgsearch_lookup;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'imgsearch: no privilege to create role imgsearch_lookup; skipped';
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_lookup') THEN
                REVOKE ALL ON FUNCTION imgsearch.similar_to_image(bigint, integer, text)
                    FROM imgsearch_lookup;
                REVOKE ALL ON imgsearch.image_catalog FROM imgsearch_lookup;
                REVOKE ALL ON SCHEMA imgsearch FROM imgsearch_lookup;
            END IF;
        END
        $$;
        """
    )
