"""Clustering runs (K-Means) with each image's cluster, and 2-D maps of a collection.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imgsearch.clusterings (
            id          serial PRIMARY KEY,
            encoder_id  integer NOT NULL REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            clusters    integer NOT NULL CHECK (clusters > 0),
            method      text NOT NULL,
            folder      text,
            inertia     double precision,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE imgsearch.cluster_assignments (
            clustering_id integer NOT NULL REFERENCES imgsearch.clusterings (id) ON DELETE CASCADE,
            image_id      bigint NOT NULL REFERENCES imgsearch.images (id) ON DELETE CASCADE,
            cluster       integer NOT NULL,
            distance      double precision NOT NULL,  -- to the cluster's centroid
            PRIMARY KEY (clustering_id, image_id)
        );
        CREATE INDEX cluster_assignments_cluster_idx
            ON imgsearch.cluster_assignments (clustering_id, cluster, distance);

        CREATE TABLE imgsearch.maps (
            id          serial PRIMARY KEY,
            encoder_id  integer NOT NULL REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
            method      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE imgsearch.map_points (
            map_id   integer NOT NULL REFERENCES imgsearch.maps (id) ON DELETE CASCADE,
            image_id bigint NOT NULL REFERENCES imgsearch.images (id) ON DELETE CASCADE,
            x        double precision NOT NULL,
            y        double precision NOT NULL,
            PRIMARY KEY (map_id, image_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("""
        DROP TABLE imgsearch.map_points;
        DROP TABLE imgsearch.maps;
        DROP TABLE imgsearch.cluster_assignments;
        DROP TABLE imgsearch.clusterings;
    """)
