"""An image is its exact file name: two names that display alike are two images.

`path` shows a name that is not valid UTF-8 (or holds control characters) with `\\xNN` escapes,
so a file literally named `disp\\xe9.jpg` and one whose name holds the byte 0xE9 share a `path`;
only `path_bytes` tells them apart. The uniqueness of `path` becomes that of the pair
(`path`, `path_bytes`), so both can be indexed. Applications that looked images up by `path`
alone may now find two rows for such names (`file_path_bytes` in `image_catalog` differs).

The downgrade restores the unique `path`; it fails while two images share one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNIQUE INDEX images_location_key
            ON imgsearch.images (path, (coalesce(path_bytes, ''::bytea)));
        ALTER TABLE imgsearch.images DROP CONSTRAINT images_path_key;
        COMMENT ON INDEX imgsearch.images_location_key IS
            'An image is its exact name: path and, for names path cannot show, path_bytes.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE imgsearch.images ADD CONSTRAINT images_path_key UNIQUE (path);
        DROP INDEX imgsearch.images_location_key;
        """
    )
