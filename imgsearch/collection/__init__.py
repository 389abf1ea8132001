"""Tools for whole collections: duplicate groups (and, to come, clusters and maps)."""
