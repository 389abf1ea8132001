"""The text of a search's statements (`db.nearest` runs them): the candidates of one vector
table in the order an ANN index serves, filtered by metadata, folder and time, and the k best of
them joined with their images."""

from __future__ import annotations


def search_sql(enc_id: int, dim: int, binary: bool, variants: int, filtered: bool) -> str:
    """The statement of one search (parameters as `nearest` makes them): the candidates, each
    an image id and its exact distance, read from the vector tables alone unless a filter needs
    the images' columns; the k best of them; then the images' rows of those k. A binary index's
    candidates (`rerank` of them, in Hamming order) are re-ranked by exact distance before that
    join, so images is read k times, not `rerank` times."""
    candidates = candidate_rows(
        "imgsearch.embeddings", enc_id, dim, "%(rerank)s" if binary else "%(k)s", filtered, binary
    )
    if variants:  # each image once, at the distance of its closest vector
        augmented = candidate_rows(
            "imgsearch.augmented_embeddings", enc_id, dim, f"%(k)s * {int(variants)}", filtered
        )
        candidates = f"""
            SELECT DISTINCT ON (u.id) u.id, u.distance FROM (({candidates}) UNION ALL ({augmented})) u
            ORDER BY u.id, u.distance"""
    return f"""
        SELECT i.id, i.path, i.path_bytes, i.metadata, d.distance, i.width, i.height, i.mtime
        FROM (
            SELECT c.id, c.distance FROM ({candidates}) c
            WHERE %(max_dist)s::float8 IS NULL OR c.distance <= %(max_dist)s::float8
            ORDER BY c.distance, c.id
            LIMIT %(k)s) d
        JOIN imgsearch.images i ON i.id = d.id
        ORDER BY d.distance, d.id"""


FILTERS = """
          AND (%(filter)s::jsonb IS NULL OR i.metadata @> %(filter)s::jsonb)
          AND (%(folder)s::text IS NULL OR starts_with(i.path, %(folder)s::text))
          AND (%(since)s::float8 IS NULL OR i.mtime >= %(since)s::float8)
          AND (%(until)s::float8 IS NULL OR i.mtime <= %(until)s::float8)"""


def distance_sql(dim: int) -> str:
    """Cosine distance of embedding `e` to the query, in the form the ANN indexes serve."""
    return f"(e.embedding::halfvec({dim})) <=> %(v)b::halfvec({dim})"


def candidate_rows(
    table: str, enc_id: int, dim: int, limit: str, filtered: bool, binary: bool = False
) -> str:
    """The nearest rows of one vector table (image id, exact distance), filtered (the cast lets
    per-encoder indexes serve it); images is joined only for a filter's columns. An image with
    N vectors in `table` can fill N places, hence the caller's limit. With `binary`, the rows
    come in Hamming order of their binary-quantised vectors (the binary index serves it); the
    caller re-ranks them by `distance`."""
    distance = distance_sql(dim)
    order = distance
    if binary:
        order = (
            f"binary_quantize(e.embedding::halfvec({dim}))::bit({dim})"
            f" <~> binary_quantize(%(v)b::halfvec({dim}))"
        )
    images = " JOIN imgsearch.images i ON i.id = e.image_id" if filtered else ""
    filters = FILTERS if filtered else ""
    return f"""
        SELECT e.image_id AS id, {distance} AS distance
        FROM {table} e{images}
        WHERE e.encoder_id = {int(enc_id)} AND e.image_id IS DISTINCT FROM %(exclude)s{filters}
        ORDER BY {order}
        LIMIT {limit}"""
