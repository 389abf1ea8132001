"""Warm searches per second through the library object, against a one-shot call per search,
and the cold start of `imgsearch --help`.

    python benchmarks/search.py [--images 1000] [--searches 100] [--model efficientnet-lite0]
    python benchmarks/search.py --smoke   # 10 images, 5 searches, 1 one-shot, 1 cold --help

Indexes `--images` 640x480 JPEGs made from real photos into a fresh database on a private
embedded server, then searches with a 640x480 JPEG that is not in the index.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from sample_images import camera_jpeg, make_camera_jpegs, source_photos  # noqa: E402

SIZE = (640, 480)


def cold_help(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imgsearch", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--one-shot", type=int, default=5, help="searches without the object")
    parser.add_argument("--model", default="efficientnet-lite0")
    _support.add_arguments(parser)
    args = parser.parse_args()
    help_runs = 5
    if args.smoke:
        args.images, args.searches, args.one_shot, help_runs = 10, 5, 1, 1

    import imgsearch
    from imgsearch.search import search

    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}"
    )
    # the server's folder; IMGSEARCH_HOME (the model cache) stays as it is unless --home
    home = _support.home(args, "") if args.home else Path(tempfile.mkdtemp(prefix="imgsearch-bench-search-"))
    out = home / "out" if args.smoke else HERE / "out"
    paths = make_camera_jpegs(out / "vga", args.images, SIZE, prefix="vga", elpv=not args.smoke)
    query = out / "query_vga.jpg"
    query.write_bytes(camera_jpeg(source_photos(not args.smoke)[3], seed=999_999, size=SIZE))

    with _support.database_server(args, home) as server:
        index = imgsearch.open(server.url, model=args.model, device="cpu")
        t0 = time.perf_counter()
        report = index.ingest(paths)
        print(f"indexed {report.new} images in {time.perf_counter() - t0:.1f}s")

        index.search(str(query))  # the model loads and the connection opens here
        t0 = time.perf_counter()
        for _ in range(args.searches):
            result = index.search(str(query), k=10)
        warm = args.searches / (time.perf_counter() - t0)
        assert len(result.results) == 10

        t0 = time.perf_counter()
        for _ in range(args.one_shot):
            search(str(query), 10, model=args.model, database=server.url)
        one_shot = args.one_shot / (time.perf_counter() - t0)
        index.close()

    print(
        f"warm searches through imgsearch.open(): {warm:6.1f} /s  ({args.searches} searches, "
        f"640x480 JPEG query, k=10, {report.new} images)"
    )
    print(f"one-shot search() (loads the model each call): {one_shot:6.1f} /s")
    print(f"ratio: {warm / one_shot:.1f}x")
    print(f"cold `imgsearch --help`: {cold_help(help_runs):.2f} s (median of {help_runs})")


if __name__ == "__main__":
    main()
