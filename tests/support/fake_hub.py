"""A stand-in for the Hugging Face hub on this machine: serves files at
/{org}/{repo}/resolve/{revision}/{file} with the headers huggingface_hub reads (the sha256 as
the linked ETag), or, with `lie`, another file's sha256."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serve(files: dict[str, bytes], lie: bool = False) -> Iterator[str]:
    class Hub(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            data = files.get(parts[-1]) if len(parts) >= 5 and parts[2] == "resolve" else None
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            sha = hashlib.sha256(data + (b"?" if lie else b"")).hexdigest()
            self.send_response(200)
            for name, value in (
                ("Content-Length", str(len(data))),
                ("ETag", f'"{sha}"'),
                ("X-Linked-Etag", f'"{sha}"'),
                ("X-Linked-Size", str(len(data))),
                ("X-Repo-Commit", "0" * 40),
            ):
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
            self._answer(False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(True)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
