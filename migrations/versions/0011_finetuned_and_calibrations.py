"""Fine-tuned encoders and calibrated duplicate thresholds.

`finetuned_encoders` keeps the weights of an encoder fine-tuned on the collection
(`imgsearch train --finetune`): the whole network's state dict, so every client of the database
can load it (it is written to the model cache once, named by its sha256). `duplicate_calibrations`
keeps the duplicate threshold measured on the collection for an encoder
(`imgsearch duplicates --calibrate`), with the measurements behind it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.finetuned_encoders (
            encoder_id  integer PRIMARY KEY REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            base_name   text NOT NULL,
            sha256      text NOT NULL,
            weights     bytea NOT NULL,
            details     jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE imgsearch.finetuned_encoders IS
            'Encoders whose network was fine-tuned on this collection (imgsearch train --finetune).';
        CREATE TABLE imgsearch.duplicate_calibrations (
            id          bigserial PRIMARY KEY,
            encoder_id  integer NOT NULL REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            threshold   real NOT NULL CHECK (threshold > 0 AND threshold <= 1),
            details     jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX duplicate_calibrations_encoder_idx
            ON imgsearch.duplicate_calibrations (encoder_id, created_at DESC);
        COMMENT ON TABLE imgsearch.duplicate_calibrations IS
            'Duplicate thresholds measured on edited copies of a sample of the collection.';
        GRANT SELECT ON imgsearch.duplicate_calibrations TO imgsearch_reader;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE imgsearch.duplicate_calibrations; DROP TABLE imgsearch.finetuned_encoders")
