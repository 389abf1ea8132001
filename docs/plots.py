"""Draws the performance pages' plots (docs/img/*.png) from the measured figures below.

Every number here is one that the performance pages quote, with its date; nothing is
interpolated. A pair (a, b) is two runs of one measurement: the plots show the mean and the
range. Run from the repository root after changing a figure: `python docs/plots.py` (or
`python docs/plots.py FOLDER` to draw them elsewhere; the tests do).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).parent / "img"

# benchmarks/encode.py, 2026-11-24, two runs, images/s at batch 1, 8, 32 (2 threads, no GPU)
BATCHES = (1, 8, 32)
ENCODERS = {
    ("efficientnet-lite0", "torch"): ((76.4, 71.9), (56.9, 61.4), (45.4, 50.6)),
    ("efficientnet-lite0", "ONNX Runtime"): ((191.5, 196.7), (227.6, 253.2), (230.3, 235.2)),
    ("resnet50", "torch"): ((20.6, 21.4), (27.8, 28.7), (21.4, 17.8)),
    ("resnet50", "ONNX Runtime"): ((34.2, 34.5), (38.3, 38.2), (37.0, 38.7)),
}

# benchmarks/knn.py, 2026-12-02, two runs: 200,000 x 1,280 vectors, recall@10 and p50 ms
KNN = {
    "imgsearch HNSW halfvec (tuned)": ((0.989, 0.987), (1.10, 1.13)),
    "imgsearch HNSW binary + re-rank (tuned)": ((0.985, 0.986), (1.45, 1.35)),
    "imgsearch exact scan": ((1.000, 1.000), (214, 204)),
    "faiss HNSWFlat, efSearch 32": ((0.967, 0.967), (0.14, 0.13)),
    "faiss IVF200,PQ64x8 + refine": ((0.957, 0.957), (0.32, 0.32)),
    "hnswlib, ef 16": ((0.955, 0.955), (0.13, 0.15)),
    "usearch f16, expansion_search 16": ((0.961, 0.958), (0.25, 0.26)),
}

# benchmarks/api.py, 2026-11-24, four runs (ranges): POST /api/search against 10,000 images
API_CLIENTS = (1, 4, 16)
API_RPS = ((71.8, 80.0), (104.3, 117.9), (99.6, 112.0))
API_P50_MS = ((12.4, 13.7), (33.1, 37.2), (136, 154))

# benchmarks/scale.py, 2026-11-24, two runs: 200,000 vectors, ef_search 40, p50 ms
PARTITIONS = (1, 4, 16)
PARTITION_P50_MS = ((1.48, 1.64), (4.21, 3.97), (22.2, 23.3))

# benchmarks/duplicates.py, 2026-12-02: (recall, purity) per rule on sets A and B (set B's calibrated
# row with the similarity floor of 2026-12-04; the margins 0.15 and 0.25 from before it)
DUPLICATES = {
    "A": {
        "margin 0.15": (1.000, 0.892),
        "margin 0.20 (calibrated)": (1.000, 0.924),
        "margin 0.25": (1.000, 0.940),
        "similarity 0.85": (0.828, 0.108),
        "similarity 0.90": (0.606, 0.077),
    },
    "B": {
        "margin 0.15": (0.991, 0.909),
        "margin 0.20 (calibrated)": (0.982, 0.935),
        "margin 0.25": (0.982, 0.949),
        "similarity 0.85": (0.627, 0.086),
        "similarity 0.90": (0.464, 0.065),
    },
}


# benchmarks/growth.py, 2026-12-04, two runs: hard vectors, 500 held-out queries, one client,
# each index at the setting `index tune` chose (recall@10 0.969-0.993 held out; faiss at the
# smallest efSearch reaching 0.95); p50 ms and build s per size (docs/performance/growth.md)
GROWTH_SIZES = (10000, 100000, 300000, 1000000)
# faiss at 1,000,000 x 512 never reached recall@10 0.95 (0.936 at efSearch 768): no point
NOT_REACHED = (math.nan, math.nan)
GROWTH_P50_MS = {
    ("halfvec", "library", 1280): ((0.82, 0.773), (2.072, 2.053), (3.075, 3.149), (7.817, 7.606)),
    ("halfvec", "library", 512): ((0.673, 0.692), (1.301, 1.193), (3.018, 2.937), (6.699, 6.593)),
    ("halfvec", "bare", 1280): ((0.486, 0.458), (1.479, 1.622), (2.576, 2.449), (6.663, 6.762)),
    ("halfvec", "bare", 512): ((0.356, 0.36), (0.837, 0.795), (2.37, 2.347), (5.698, 6.009)),
    ("partitions", "library", 1280): ((1.918, 1.658), (4.046, 4.082), (6.813, 7.104), (10.01, 11.273)),
    ("partitions", "library", 512): ((1.145, 1.221), (3.445, 2.814), (5.497, 4.997), (10.34, 10.464)),
    ("faiss", "in process", 1280): ((0.156, 0.131), (0.332, 0.341), (0.675, 0.69), (1.2, 1.308)),
    ("faiss", "in process", 512): ((0.047, 0.048), (0.232, 0.204), (0.515, 0.461), NOT_REACHED),
}
GROWTH_BUILD_S = {
    ("halfvec", 1280): ((3.1, 3.2), (36.1, 35.6), (122.9, 123.7), (526.2, 509.0)),
    ("halfvec", 512): ((2.4, 2.2), (21.6, 22.0), (81.1, 77.5), (322.7, 318.3)),
    ("partitions", 1280): ((2.7, 2.6), (29.3, 28.9), (102.0, 100.4), (414.1, 419.7)),
    ("partitions", 512): ((1.5, 1.5), (18.9, 18.5), (62.5, 58.9), (255.2, 251.4)),
    ("faiss", 1280): ((1.0, 1.0), (20.3, 20.5), (71.1, 72.7), (283.8, 301.7)),
    ("faiss", 512): ((0.3, 0.3), (10.0, 9.1), (42.1, 37.1), (178.8, 166.6)),
}


def _mid(pair: tuple[float, float]) -> float:
    return (pair[0] + pair[1]) / 2


def _err(pairs) -> list[list[float]]:
    return [[_mid(p) - min(p) for p in pairs], [max(p) - _mid(p) for p in pairs]]


def encoders(ax) -> None:
    for (model, backend), runs in ENCODERS.items():
        style = "-" if backend == "ONNX Runtime" else "--"
        ax.errorbar(
            BATCHES,
            [_mid(r) for r in runs],
            yerr=_err(runs),
            fmt=style + "o",
            capsize=3,
            label=f"{model}, {backend}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s (2 cores)")
    ax.set_title("Encoders alone, 2026-11-24")
    ax.legend(fontsize=8)


def knn(ax) -> None:
    for name, (recall, p50) in KNN.items():
        marker = "s" if name.startswith("imgsearch") else "o"
        ax.errorbar(
            _mid(p50),
            _mid(recall),
            xerr=[[_mid(p50) - min(p50)], [max(p50) - _mid(p50)]],
            fmt=marker,
            capsize=3,
            label=name,
        )
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, ms (log)")
    ax.set_ylabel("recall@10")
    ax.set_title("200,000 x 1,280 vectors, 2026-12-02")
    ax.legend(fontsize=7, loc="lower right")


def api(ax) -> None:
    ax.errorbar(
        API_CLIENTS, [_mid(r) for r in API_RPS], yerr=_err(API_RPS), fmt="-o", capsize=3, label="requests/s"
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(API_CLIENTS, [str(c) for c in API_CLIENTS])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests/s")
    ax.set_title("POST /api/search, 2026-11-24")
    right = ax.twinx()
    right.errorbar(
        API_CLIENTS,
        [_mid(r) for r in API_P50_MS],
        yerr=_err(API_P50_MS),
        fmt="--s",
        color="tab:red",
        capsize=3,
        label="p50 ms",
    )
    right.set_ylabel("p50 ms")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, ["requests/s", "p50 ms"], fontsize=8, loc="upper left")


def partitions(ax) -> None:
    ax.errorbar(
        PARTITIONS, [_mid(r) for r in PARTITION_P50_MS], yerr=_err(PARTITION_P50_MS), fmt="-o", capsize=3
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(PARTITIONS, [str(p) for p in PARTITIONS])
    ax.set_xlabel("hash partitions on one server")
    ax.set_ylabel("p50 ms, similar_to_vector")
    ax.set_title("200,000 vectors, 2026-11-24")


def duplicates(ax) -> None:
    colours = {}
    for marker, (name, rules) in zip("os", DUPLICATES.items(), strict=True):
        for rule, (recall, purity) in rules.items():
            colour = colours.setdefault(rule, f"C{len(colours)}")
            ax.scatter(purity, recall, marker=marker, color=colour, label=f"set {name}: {rule}")
    ax.set_xlabel("purity of found pairs")
    ax.set_ylabel("recall of original-copy pairs")
    ax.set_title("Duplicate rules, 2026-12-02 (circles: set A, squares: set B)")
    ax.legend(fontsize=7, loc="lower right", ncol=2)


def _growth(ax, series: dict, ylabel: str, title: str) -> None:
    for colour, name in enumerate(dict.fromkeys(key[:-1] for key in series)):
        for dim, style in ((1280, "-o"), (512, "--s")):
            runs = series.get((*name, dim))
            if runs is None:
                continue
            ax.errorbar(
                GROWTH_SIZES,
                [_mid(r) for r in runs],
                yerr=_err(runs),
                fmt=style,
                color=f"C{colour}",
                capsize=3,
                label=f"{' '.join(name)}, {dim}-d",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors (log)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)


def growth_p50(ax) -> None:
    _growth(
        ax, GROWTH_P50_MS, "p50 ms, one client (log)", "Search p50 as the collection grows, 2026-12-04/05"
    )


def growth_build(ax) -> None:
    _growth(ax, GROWTH_BUILD_S, "build s, 2 cores (log)", "Index build time, 2026-12-04/05")


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in [
        ("encoders", encoders),
        ("knn", knn),
        ("api", api),
        ("partitions", partitions),
        ("duplicates", duplicates),
        ("growth_p50", growth_p50),
        ("growth_build", growth_build),
    ]:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        draw(ax)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", metadata={"Software": None})
        plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
