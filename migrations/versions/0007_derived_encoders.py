"""Derived encoders: a trained head or a PCA over another encoder's stored vectors.

A derived encoder is an ordinary row of `encoders` (its vectors live in `embeddings`, the SQL
functions find it by name); this table says which base encoder it is computed from and holds
the projection's weights. Deleting the base encoder is refused while a derived one depends on
it (ON DELETE RESTRICT); deleting the derived encoder's row removes this one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.derived_encoders (
            encoder_id      integer PRIMARY KEY
                            REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            base_encoder_id integer NOT NULL
                            REFERENCES imgsearch.encoders (id) ON DELETE RESTRICT,
            kind            text NOT NULL,
            digest          text NOT NULL,
            projection      bytea NOT NULL,
            details         jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CHECK (encoder_id <> base_encoder_id)
        );
        CREATE INDEX derived_encoders_base_idx ON imgsearch.derived_encoders (base_encoder_id);
        COMMENT ON TABLE imgsearch.derived_encoders IS
            'Encoders whose vectors are a projection (head, PCA) of a base encoder''s vectors.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE imgsearch.derived_encoders")
