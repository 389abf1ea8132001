"""Initial schema: encoders, images, embeddings, ingest errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.encoders (
            id            serial PRIMARY KEY,
            name          text NOT NULL,
            dimension     integer NOT NULL CHECK (dimension > 0 AND dimension <= 16000),
            weights       text NOT NULL,
            preprocessing text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (name, weights, preprocessing)
        );
        COMMENT ON TABLE imgsearch.encoders IS
            'One row per encoder identity; vectors of different encoders never mix.';

        CREATE TABLE imgsearch.images (
            id          bigserial PRIMARY KEY,
            path        text NOT NULL UNIQUE,
            sha256      text NOT NULL,
            byte_size   bigint NOT NULL CHECK (byte_size >= 0),
            width       integer,
            height      integer,
            format      text,
            mtime       double precision,
            indexed_at  timestamptz NOT NULL DEFAULT now(),
            metadata    jsonb NOT NULL DEFAULT '{}'::jsonb
        );
        COMMENT ON COLUMN imgsearch.images.path IS 'Absolute file path or http(s) URL.';
        CREATE INDEX images_sha256_idx ON imgsearch.images (sha256);

        CREATE TABLE imgsearch.embeddings (
            image_id   bigint NOT NULL REFERENCES imgsearch.images (id) ON DELETE CASCADE,
            encoder_id integer NOT NULL REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            embedding  halfvec NOT NULL,
            PRIMARY KEY (image_id, encoder_id)
        );
        CREATE INDEX embeddings_encoder_idx ON imgsearch.embeddings (encoder_id);

        CREATE TABLE imgsearch.ingest_errors (
            id          bigserial PRIMARY KEY,
            path        text NOT NULL,
            kind        text NOT NULL,
            message     text NOT NULL,
            encoder_id  integer REFERENCES imgsearch.encoders (id) ON DELETE SET NULL,
            occurred_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ingest_errors_path_idx ON imgsearch.ingest_errors (path);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE imgsearch.ingest_errors;
        DROP TABLE imgsearch.embeddings;
        DROP TABLE imgsearch.images;
        DROP TABLE imgsearch.encoders;
        """
    )
