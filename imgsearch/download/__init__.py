"""Downloading one image over http(s), safely.

- http and https only, also after every redirect (at most `MAX_REDIRECTS`);
- the address actually connected to must be public: loopback, private, link-local,
  multicast and other non-global addresses are refused unless `IMGSEARCH_ALLOWED_HOSTS`
  names the host or a network holding the address (the address checked is the one connected
  to, so a DNS answer that changes between check and use cannot get around it);
- a deadline for the whole download (redirects included: every wait ends by it) as well as a
  timeout per read, a size cap, and an image Content-Type.

The address rules are in `addresses`, the connections that apply them in `connections`
(imported by `download` only: httpx is not loaded by a command that downloads nothing).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from imgsearch.config import Settings
from imgsearch.errors import ImageDecodeError

URL_SCHEMES = ("http", "https")
READ_TIMEOUT_S = 15.0
MAX_REDIRECTS = 5
USER_AGENT = "imgsearch/0.1 (+https://pypi.org/project/imgsearch)"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(text: str) -> str | None:
    """The scheme of `text` when it is written as `scheme://...`, lower-cased."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def check_url(url: str) -> None:
    scheme = url_scheme(url)
    if scheme not in URL_SCHEMES:
        raise ImageDecodeError(
            f"refused {url[:200]}: only http and https URLs are fetched", "unsupported_url"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ImageDecodeError(f"malformed URL: {exc}", "bad_url") from exc
    if not host:
        raise ImageDecodeError("malformed URL: no host", "bad_url")
    if "@" in parts.netloc:
        raise ImageDecodeError("URLs with a user name or password are not fetched", "bad_url")


def download(url: str, settings: Settings) -> bytes:
    """The body of an image URL, or ImageDecodeError with the reason (within the settings'
    size cap, deadline and allowed hosts)."""
    import ssl

    import httpcore
    import httpx

    from imgsearch.download.connections import CheckedBackend

    check_url(url)
    limit = settings.max_download_bytes
    backend = CheckedBackend(list(settings.allowed_hosts), settings.download_timeout_s)
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx's own transport, on a pool whose connections `backend` makes (system CAs, as before)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl.create_default_context(), network_backend=backend
    )
    client = httpx.Client(
        transport=transport,
        trust_env=False,  # no proxies from the environment: the address check must see the real server
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=READ_TIMEOUT_S,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},  # the bytes as they are
        event_hooks={"request": [lambda request: check_url(str(request.url))]},  # redirects too
    )
    late = False
    try:
        with client, client.stream("GET", url) as response:
            if response.is_error:
                raise ImageDecodeError(
                    f"download failed: HTTP {response.status_code} {response.reason_phrase}", "download"
                )
            ctype = response.headers.get("Content-Type", "text/plain").split(";")[0].strip().lower()
            if not ctype.startswith("image/"):
                raise ImageDecodeError(f"not an image (Content-Type {ctype})", "not_an_image")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise ImageDecodeError(f"larger than {limit:,} bytes ({int(length):,})", "too_large")
            data = bytearray()
            for chunk in response.iter_raw():
                data += chunk
                if len(data) > limit:
                    raise ImageDecodeError(f"larger than {limit:,} bytes", "too_large")
    except httpx.HTTPError as exc:
        # a wait that timed out at the deadline (a socket's clock may wake a little early)
        timed_out = isinstance(exc, httpx.TimeoutException) and backend.cut_by_deadline
        if not (timed_out or backend.expired()):
            raise ImageDecodeError(f"download failed: {exc}", "download") from exc
        late = True
    if late or backend.expired():
        raise ImageDecodeError(
            f"download took longer than {backend.seconds:g} s (IMGSEARCH_DOWNLOAD_TIMEOUT_S)", "timeout"
        )
    return bytes(data)
