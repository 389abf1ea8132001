"""Are `index tune`'s queries as hard as new images? Recall@10 per ef_search on one pgvector HNSW
graph for three kinds of query, and what the tuner chose, over several builds of the same data.

    python benchmarks/tuning_queries.py [--n 100000] [--dim 1280] [--data hard] [--builds 3]
    python benchmarks/tuning_queries.py --smoke   # 3,000 x 64, one build, seconds

- held out: vectors drawn from the same mixture and never stored (what new images are);
- tuning queries: what `index tune` measures with (`db.index_tuning.tuning_queries`): stored
  vectors, each left out of its own answer, moved two ways (one nearest-neighbour distance in a
  direction their neighbours span; 1.5 in any direction): "tuning (worst)" is what the tuner
  reads (the lower kind), then each kind alone;
- stored vectors: the sample itself, each left out of its own answer (what the tuner used before;
  the graph links them to their own neighbours, so they read too high).

Every query goes through the search path (`db.nearest.nearest`); the truth is exact. Each build
is `index create` (HNSW m=16, ef_construction=64 on halfvec), then `index tune --recall 0.95`;
the run says what it chose, the held-out recall there, and how many steps of the tuner's grid
it lies from the smallest setting that reaches 0.95 held out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402
import knn  # noqa: E402

TARGET = 0.95


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="vectors stored")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=500, help="of each kind")
    parser.add_argument("--data", choices=sorted(knn.DATA), default="hard")
    parser.add_argument("--builds", type=int, default=3, help="index builds of the same data")
    parser.add_argument(
        "--up-to", type=int, default=160, help="the largest ef_search of the tuner's grid measured"
    )
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.dim, args.queries, args.builds, args.up_to = 3000, 64, 30, 1, 40

    from imgsearch.db.connection import connect
    from imgsearch.db.index_tuning import EF_SEARCH, KINDS, TuningQueries, measure, tune, tuning_queries
    from imgsearch.db.indexes import create_index

    t0 = time.perf_counter()
    vectors, _ = knn.DATA[args.data](args.n + args.queries, args.dim)
    data, held = vectors[: args.n], vectors[args.n :]
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    sims = (held / np.linalg.norm(held, axis=1, keepdims=True)) @ unit.T
    kth = 1.0 - np.partition(sims, sims.shape[1] - 10, axis=1)[:, -10]
    held_out = TuningQueries(np.full(len(held), -1), held, kth.astype(np.float32), 10)
    print(
        f"{args.n:,} x {args.dim} {args.data} vectors, {args.queries} queries of each kind, "
        f"{args.builds} build(s), in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    with _support.database_server(args, _support.home(args, "imgsearch-tq-")) as server:
        db, enc_id = knn.load_postgres(server.new_database("tuning_queries"), data)
        with connect(db) as conn:
            tuning = tuning_queries(conn, enc_id, args.queries, 10, seed=0)
            kinds = {
                "held out": held_out,
                "tuning (worst)": tuning,
                **{name: tuning.of_kind(i) for i, name in enumerate(KINDS)},
                "stored vectors": tuning_queries(conn, enc_id, args.queries, 10, seed=0, moved=False),
            }
        for build in range(1, args.builds + 1):
            t0 = time.perf_counter()
            create_index(db, knn.ENCODER)
            print(f"\nbuild {build}: index in {time.perf_counter() - t0:.1f}s", flush=True)
            result = tune(db, knn.ENCODER, TARGET)
            chosen = result.chosen.ef_search
            grid = [ef for ef in EF_SEARCH if ef <= max(args.up_to, chosen or 0)]
            print(f"{'ef_search':>10} " + " ".join(f"{name:>20}" for name in kinds))
            held_recall = {}
            with connect(db) as conn:
                for ef in grid:
                    steps = {
                        name: measure(conn, enc_id, args.dim, queries, "ef_search", ef)
                        for name, queries in kinds.items()
                    }
                    held_recall[ef] = steps["held out"].recall
                    mark = "  <- tuned" if ef == chosen else ""
                    print(f"{ef:>10} " + " ".join(f"{s.recall:>20.3f}" for s in steps.values()) + mark)
            reaching = [ef for ef in grid if held_recall[ef] >= TARGET]
            steps_off = f"{grid.index(chosen) - grid.index(reaching[0]):+d} grid steps" if reaching else ""
            print(
                f"tuned ef_search {chosen} (tuning queries {result.chosen.recall:.3f}, asked "
                f">= {result.required:.3f}); held out there {held_recall[chosen]:.3f}; smallest "
                f"reaching {TARGET} held out: {reaching[0] if reaching else 'none measured'} "
                f"({steps_off or 'n/a'})",
                flush=True,
            )


if __name__ == "__main__":
    main()
