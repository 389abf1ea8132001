"""Keep embeddings inline in the table row (STORAGE MAIN) instead of out-of-line TOAST.

A 1,280-d halfvec is 2.5 KiB, over PostgreSQL's 2 KiB TOAST threshold, so by default it went
to the TOAST table and every exact scan (`--exact`, filtered searches, the ground truth of
`imgsearch evaluate`) fetched and reassembled it: measured 272 ms vs 63 ms for an exact top-10
over 100,000 x 1,280 rows (benchmarks/knn.py's machine). MAIN keeps values inline whenever
they fit in a page and only moves them out when they cannot, so any dimension still works.

Only rows written after this revision are stored inline; older rows move when re-ingested.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE imgsearch.embeddings ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE imgsearch.embeddings ALTER COLUMN embedding SET STORAGE EXTENDED")
