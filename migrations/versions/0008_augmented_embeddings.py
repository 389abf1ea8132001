"""Extra vectors per image from augmented copies (`imgsearch ingest --augment N`).

Each row is the vector of one flipped / cropped / colour-jittered copy of an image; searches
rank an image by the closest of its vectors (primary or augmented) and return it once. The SQL
contract's functions keep using the primary vectors only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.augmented_embeddings (
            image_id   bigint NOT NULL REFERENCES imgsearch.images (id) ON DELETE CASCADE,
            encoder_id integer NOT NULL REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            variant    smallint NOT NULL CHECK (variant >= 1),
            embedding  halfvec NOT NULL,
            PRIMARY KEY (image_id, encoder_id, variant)
        );
        ALTER TABLE imgsearch.augmented_embeddings ALTER COLUMN embedding SET STORAGE MAIN;
        CREATE INDEX augmented_embeddings_encoder_idx
            ON imgsearch.augmented_embeddings (encoder_id, variant);
        COMMENT ON TABLE imgsearch.augmented_embeddings IS
            'Vectors of augmented copies of an image (ingest --augment); variant 1..N.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE imgsearch.augmented_embeddings")
