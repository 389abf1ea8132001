"""Screenshots of every view of the page at a phone's and a desktop's width, for the README.

    python docs/screenshots.py          # writes docs/screens/<view>-<width>.png

The sample photos (with a mirrored copy and a rotated one each, a third of them in a sub-folder)
are indexed into a temporary imgsearch home (embedded PostgreSQL), clustered and mapped; the
service runs on a free local port; Debian's chromium takes the pictures.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screens"
WIDTHS = {390: 844, 1280: 900}


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="imgsearch-screens-"))
    os.environ.update(IMGSEARCH_HOME=str(home), IMGSEARCH_DEVICE="cpu")
    os.environ.pop("IMGSEARCH_DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from playwright.sync_api import sync_playwright

    from imgsearch.db import embedded
    from imgsearch.library import Index
    from imgsearch.service.app import create_app
    from tests.photos import sample_photos

    photos = home / "photos"
    (photos / "travel").mkdir(parents=True)
    for i, (name, img) in enumerate(sorted(sample_photos().items())):
        folder = photos / "travel" if i % 3 == 0 else photos
        img.save(folder / f"{name}.jpg", quality=90)
        img.transpose(0).save(folder / f"{name}-mirror.jpg", quality=90)
        img.rotate(12).save(folder / f"{name}_rot12.png")
    index = Index(pool_size=4)
    index.ingest([photos])
    index.clusters(4)
    index.map()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    chelsea = next(i.id for i in index.images(limit=500).images if i.path.endswith("/chelsea.jpg"))
    views = {
        "search": f"?view=search&id={chelsea}",
        "browse": "?view=browse",
        "duplicates": "?view=duplicates",
        "clusters": "?view=clusters&cluster=0",
        "map": "?view=map",
    }
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        for width, height in WIDTHS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            for view, query in views.items():
                page.goto(f"{base}/{query}")
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)
                page.screenshot(path=str(OUT / f"{view}-{width}.png"))
            page.goto(f"{base}/{views['search']}")
            page.wait_for_load_state("networkidle")
            page.locator("[data-testid=result] button.open").nth(1).click()
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / f"viewer-{width}.png"))
            page.close()
        browser.close()
    server.should_exit = True
    index.close()
    embedded.stop(home)
    print(f"wrote {len(list(OUT.glob('*.png')))} screenshots to {OUT}")


if __name__ == "__main__":
    main()
