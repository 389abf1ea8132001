"""Decisions about duplicate groups, kept by content (sha256) so they outlive re-ingests.

`not-duplicates`: the two images are not to be grouped again. `keep`: the pair are duplicates
and `a` is the one to keep; `imgsearch duplicates resolve` forgets `b`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.duplicate_decisions (
            a_sha256   text NOT NULL,
            b_sha256   text NOT NULL,
            decision   text NOT NULL CHECK (decision IN ('not-duplicates', 'keep')),
            decided_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (a_sha256, b_sha256),
            CHECK (a_sha256 <> b_sha256)
        );
        COMMENT ON TABLE imgsearch.duplicate_decisions IS
            'Per pair of contents: not-duplicates (never group them), or keep (a over b).';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE imgsearch.duplicate_decisions")
