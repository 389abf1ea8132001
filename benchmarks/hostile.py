"""Peak memory of hostile images: a few hundred bytes of PNG whose pixels are few but thin
(60000x2, 120000x2), against an ordinary photo, through `imgsearch ingest` and through an
upload to `imgsearch serve`; and an image over the decode budget.

    python benchmarks/hostile.py
    python benchmarks/hostile.py --smoke   # the photo, the 60000x2 strip, and a 2500x2500 PNG over
                                           # a budget lowered to 8 MiB

Each ingest runs in a fresh process (peak RSS from wait4); the server is one `imgsearch serve`
process whose high-water mark (VmHWM) is read before and after each upload. Everything runs
on an embedded PostgreSQL in a temporary IMGSEARCH_HOME.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402

CASES = {  # label: (file name, size and mode of a blank PNG; None: a photo)
    "photo 640x480 (JPEG)": ("photo.jpg", None),
    "strip 60000x2 (PNG)": ("strip60k.png", ((60000, 2), "L")),
    "strip 120000x2 (PNG)": ("strip120k.png", ((120000, 2), "L")),
    "8000x8000 RGB (PNG, 256 MiB estimated)": ("large.png", ((8000, 8000), "RGB")),
    "12000x12000 RGB (PNG, 549 MiB: over)": ("huge.png", ((12000, 12000), "RGB")),
}
SMOKE_CASES = {
    "photo 640x480 (JPEG)": ("photo.jpg", None),
    "strip 60000x2 (PNG)": ("strip60k.png", ((60000, 2), "L")),
    "2500x2500 RGB (PNG, over 8 MiB)": ("over.png", ((2500, 2500), "RGB")),
}
SMOKE_DECODE_BYTES = 8 * 2**20  # IMGSEARCH_MAX_DECODE_BYTES of a smoke run


def make(folder: Path, cases: dict) -> dict[str, Path]:
    from skimage import data

    files = {}
    for label, (name, blank) in cases.items():
        buf = io.BytesIO()
        if blank is None:
            Image.fromarray(data.astronaut()).resize((640, 480)).save(buf, "JPEG", quality=90)
        else:
            Image.new(blank[1], blank[0]).save(buf, "PNG", optimize=True)
        path = folder / name.split(".")[0] / name  # a folder each: one ingest, one image
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
        files[label] = path
    return files


def ingest_peak(path: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Peak RSS (MiB) and seconds of `imgsearch ingest` of the folder holding `path`."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "ingest", str(path.parent)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = process.stdout.read() if process.stdout else ""
    _, _, usage = os.wait4(process.pid, 0)
    summary = next((line for line in out.splitlines() if " new, " in line), out.strip()[-120:])
    return usage.ru_maxrss / 1024, time.monotonic() - started, summary.strip()


def vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def upload(port: int, path: Path) -> tuple[int, float, str]:
    boundary = "imgsearchbench"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/search",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    detail = json.loads(text).get("detail", "") if status != 200 else ""
    return status, time.monotonic() - started, detail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _support.add_arguments(parser)
    args = parser.parse_args()
    home = _support.home(args, "imgsearch-hostile-")
    env = {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_DEVICE": "cpu"}
    env.pop("IMGSEARCH_DATABASE_URL", None)
    if args.database_url:  # else the embedded server in the home, started by the first ingest
        env["IMGSEARCH_DATABASE_URL"] = args.database_url
    if args.smoke:
        env["IMGSEARCH_MAX_DECODE_BYTES"] = str(SMOKE_DECODE_BYTES)
    files = make(home / "images", SMOKE_CASES if args.smoke else CASES)
    warm_up = home / "warm-up" / "photo.jpg"  # exports the model to ONNX once, not measured
    warm_up.parent.mkdir()
    warm_up.write_bytes(files["photo 640x480 (JPEG)"].read_bytes()[:-2] + b"\xff\xd9")
    ingest_peak(warm_up, env)
    print("imgsearch ingest, one image per run (fresh process):")
    print(f"| {'image':38} | {'bytes':>9} | {'peak RSS':>9} | {'seconds':>7} | result")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 11}|{'-' * 9}|-------")
    for label, path in files.items():
        peak, seconds, summary = ingest_peak(path, env)
        print(f"| {label:38} | {path.stat().st_size:9,} | {peak:6,.0f} MiB | {seconds:7.1f} | {summary}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)
        print(
            f"\nimgsearch serve, POST /api/search uploads (server started: "
            f"{vm_hwm(server.pid):,.0f} MiB high-water mark):"
        )
        print(f"| {'upload':38} | {'status':>6} | {'seconds':>7} | {'server peak':>11} | detail")
        print(f"|{'-' * 40}|{'-' * 8}|{'-' * 9}|{'-' * 13}|-------")
        for label, path in files.items():
            status, seconds, detail = upload(port, path)
            print(
                f"| {label:38} | {status:6} | {seconds:7.2f} | {vm_hwm(server.pid):7,.0f} MiB | {detail[:90]}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.database_url:
            subprocess.run([sys.executable, "-m", "imgsearch", "db", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
