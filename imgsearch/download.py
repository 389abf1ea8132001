"""Downloading one image over http(s), safely.

- http and https only, also after every redirect (at most `MAX_REDIRECTS`);
- the address actually connected to must be public: loopback, private, link-local,
  multicast and other non-global addresses are refused unless `IMGSEARCH_ALLOWED_HOSTS`
  names the host or a network holding the address (the address checked is the one connected
  to, so a DNS answer that changes between check and use cannot get around it);
- a deadline for the whole download (redirects included: every wait ends by it) as well as a
  timeout per read, a size cap, and an image Content-Type.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

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


def host_allowed_by_name(host: str, allowed: list[str]) -> bool:
    return host.lower().strip("[]") in allowed


# IPv6 prefixes that carry an IPv4 address (NAT64, IPv4-compatible, IPv4-translated, 6to4,
# Teredo): on a network that routes them they can reach the IPv4 address inside, so they are
# refused like the private networks unless allow-listed.
_IPV4_IN_IPV6 = [
    ipaddress.ip_network(n)
    for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96", "2002::/16", "2001::/32")
]


def address_allowed(address: str, allowed: list[str]) -> bool:
    """True for a global unicast address, or one inside an allow-listed address/network."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name, checked by host_allowed_by_name
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _IPV4_IN_IPV6):
        return False
    return ip.is_global and not ip.is_multicast


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


class _Stream(httpcore.NetworkStream):
    """A connection whose every wait ends by the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: _CheckedBackend) -> None:
        self.inner, self.backend = inner, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.backend.wait(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.backend.wait(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _Stream(
            self.inner.start_tls(ssl_context, server_hostname, self.backend.wait(timeout)), self.backend
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    """Connects to a host's addresses only when every one is allowed, and then to the very
    address checked (a DNS answer that changes between check and use cannot get around it);
    every wait ends by the deadline of the whole download."""

    def __init__(self, allowed: list[str], seconds: float) -> None:
        self.allowed, self.seconds = allowed, seconds
        self.ends = time.monotonic() + seconds
        self.sockets = httpcore.SyncBackend()
        self.cut_by_deadline = False  # the last wait was shortened to end at the deadline

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def wait(self, timeout: float | None) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise httpcore.TimeoutException("the download's deadline has passed")
        if timeout is not None and timeout < left:
            self.cut_by_deadline = False
            return timeout
        self.cut_by_deadline = True
        return left

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if host_allowed_by_name(host, self.allowed):
            addresses = [host]
        else:  # resolved and checked before connecting: no packet goes to a refused address
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ImageDecodeError(f"cannot resolve {host}: {exc}", "download") from exc
            addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))
            for address in addresses:
                if not address_allowed(address, self.allowed):
                    raise ImageDecodeError(
                        f"refused {host}: it resolves to {address}, a loopback, private, link-local "
                        "or multicast address (IMGSEARCH_ALLOWED_HOSTS can allow it)",
                        "forbidden_address",
                    )
        for address in addresses[:-1]:  # the next one when one cannot be reached
            with contextlib.suppress(httpcore.ConnectError):
                return self._connect(address, port, timeout, local_address, socket_options)
        return self._connect(addresses[-1], port, timeout, local_address, socket_options)

    def _connect(self, address, port, timeout, local_address, socket_options) -> httpcore.NetworkStream:
        stream = self.sockets.connect_tcp(address, port, self.wait(timeout), local_address, socket_options)
        return _Stream(stream, self)


def download(url: str, settings: Settings) -> bytes:
    """The body of an image URL, or ImageDecodeError with the reason (within the settings'
    size cap, deadline and allowed hosts)."""
    check_url(url)
    limit = settings.max_download_bytes
    backend = _CheckedBackend(list(settings.allowed_hosts), settings.download_timeout_s)
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
