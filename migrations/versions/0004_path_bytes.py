"""File names that are not valid UTF-8: keep their exact bytes beside a displayable path.

`images.path` stays the text to show and to match on; for a file whose name is not valid
UTF-8 or holds control characters, `path` shows those bytes as `\\xNN` and `path_bytes` holds
the exact bytes of the full path (NULL for every other image). The view `image_catalog` gains
`file_path_bytes`: the bytes to open the file with, for every local image.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CATALOG = """
CREATE OR REPLACE VIEW imgsearch.image_catalog AS
SELECT id AS image_id, path, sha256, byte_size, width, height, format, indexed_at, metadata{extra}
FROM imgsearch.images;
"""

FILE_PATH_BYTES = """,
       CASE WHEN path_bytes IS NOT NULL THEN path_bytes
            WHEN path LIKE 'http://%' OR path LIKE 'https://%' THEN NULL
            ELSE convert_to(path, 'UTF8') END AS file_path_bytes"""


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE imgsearch.images ADD COLUMN path_bytes bytea;
        COMMENT ON COLUMN imgsearch.images.path IS
            'Absolute file path or http(s) URL, as text to show; see path_bytes.';
        COMMENT ON COLUMN imgsearch.images.path_bytes IS
            'The exact bytes of the file path when path cannot show them (a name that is not '
            'valid UTF-8 or holds control characters, written there as \\xNN); else NULL.';
        """
    )
    op.execute(CATALOG.format(extra=FILE_PATH_BYTES))
    op.execute(
        "COMMENT ON VIEW imgsearch.image_catalog IS "
        "'Indexed images and their metadata (stable). Open files with file_path_bytes.'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW imgsearch.image_catalog")
    op.execute(CATALOG.format(extra=""))
    op.execute("""
        COMMENT ON VIEW imgsearch.image_catalog IS 'Indexed images and their metadata (stable).';
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_reader') THEN
                GRANT SELECT ON imgsearch.image_catalog TO imgsearch_reader;
            END IF;
        END
        $$;
        ALTER TABLE imgsearch.images DROP COLUMN path_bytes;
    """)
