"""Cold start of the command line: `imgsearch --help` and `imgsearch search photo.jpg`, each a
fresh process, median of 5, with the ONNX Runtime backend (the CPU default) and with torch.

    python benchmarks/cli.py [--runs 5]
    python benchmarks/cli.py --smoke      # one run of each

Indexes the example photos into a fresh embedded server first, and exports the default model to
ONNX once (not timed), so every timed search is what a user's second and later searches cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _support  # noqa: E402


def median_seconds(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imgsearch", *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.runs = 1

    home = _support.home(args, "imgsearch-bench-cli-")
    env = {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_DEVICE": "cpu"}
    env.pop("IMGSEARCH_DATABASE_URL", None)
    if args.database_url:  # else the embedded server in the home, started by the first command
        env["IMGSEARCH_DATABASE_URL"] = args.database_url
    photos = ROOT / "examples" / "photos"
    query = str(ROOT / "examples" / "chelsea-cropped.jpg")
    try:
        subprocess.run(
            [sys.executable, "-m", "imgsearch", "ingest", str(photos)],
            env=env,
            check=True,
            capture_output=True,
        )  # starts the server, exports to ONNX
        rows = [
            ("imgsearch --help", ["--help"], {}),
            ("imgsearch search photo.jpg (onnx)", ["search", query], {"IMGSEARCH_BACKEND": "onnx"}),
            ("imgsearch search photo.jpg (torch)", ["search", query], {"IMGSEARCH_BACKEND": "torch"}),
        ]
        for label, command, extra in rows:
            seconds = median_seconds(command, {**env, **extra}, args.runs)
            print(f"{label:<36} {seconds:6.2f} s  (median of {args.runs} cold runs)")
    finally:
        if not args.database_url:
            subprocess.run([sys.executable, "-m", "imgsearch", "db", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
