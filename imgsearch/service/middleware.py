"""ASGI middleware of the service: a bound on request bodies, security headers."""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]

# The page loads its script, styles and images from this server only; nothing may frame it.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (/docs) and ReDoc (/redoc) start with an inline script; ReDoc also injects styles
# and runs a worker from a blob.
DOCS_POLICY = (
    PAGE_POLICY
    + "; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"
)
DOCS_PATHS = ("/docs", "/redoc")
# Everything else (JSON, image files, thumbnails): no script, no plugin, no framing, and an
# image file opened on its own runs in a sandbox (an SVG or HTML body cannot act as this site).
OTHER_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
)
COMMON = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
}


class SecurityHeaders:
    """Add Content-Security-Policy, X-Content-Type-Options, X-Frame-Options and
    Referrer-Policy to every HTTP response (a response's own value wins)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html"):
                    policy = DOCS_POLICY if scope.get("path") in DOCS_PATHS else PAGE_POLICY
                else:
                    policy = OTHER_POLICY
                wanted = {**COMMON, b"content-security-policy": policy.encode()}
                headers += [(k, v) for k, v in wanted.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse (413) any request body over `limit` bytes, declared or streamed (chunked), before
    it is read into memory or onto disk."""

    def __init__(self, app: Any, limit: int, shown_limit: int | None = None) -> None:
        self.app, self.limit = app, limit
        shown = shown_limit or limit
        self.message = (
            f'{{"detail": "The request body is over the limit of {shown:,} bytes '
            f'(IMGSEARCH_MAX_UPLOAD_BYTES)."}}'
        ).encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await refuse(send, self.message)
            return
        received = 0
        over = started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # whatever the app answers to a body cut short, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:  # the app's failure on a cut-off body is no failure of the app
                raise
        if over and not started:
            await refuse(send, self.message)


async def refuse(send: Any, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
