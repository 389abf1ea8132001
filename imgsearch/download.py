"""Downloading one image over http(s), safely.

- http and https only, also after every redirect (at most `MAX_REDIRECTS`);
- the address actually connected to must be public: loopback, private, link-local,
  multicast and other non-global addresses are refused unless `IMGSEARCH_ALLOWED_HOSTS`
  names the host or a network holding the address (checked on the connected socket, so a
  DNS answer that changes between check and use cannot get around it);
- a deadline for the whole download as well as a timeout per read, a size cap, and an
  image Content-Type.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

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


class _Deadline:
    """Shuts down every socket of one download when its time is up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.01, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _opener(deadline: _Deadline, allowed: list[str]) -> urllib.request.OpenerDirector:
    def refuse(host: str, address: str) -> ImageDecodeError:
        return ImageDecodeError(
            f"refused {host}: it resolves to {address}, a loopback, private, link-local or "
            "multicast address (IMGSEARCH_ALLOWED_HOSTS can allow it)",
            "forbidden_address",
        )

    def checked_connect(conn: http.client.HTTPConnection) -> None:
        conn.timeout = min(READ_TIMEOUT_S, deadline.remaining())
        by_name = host_allowed_by_name(conn.host, allowed)
        if not by_name:  # before connecting: no packet goes to a refused address
            try:
                infos = socket.getaddrinfo(conn.host, conn.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ImageDecodeError(f"cannot resolve {conn.host}: {exc}", "download") from exc
            for *_, sockaddr in infos:
                if not address_allowed(str(sockaddr[0]), allowed):
                    raise refuse(conn.host, str(sockaddr[0]))
        http.client.HTTPConnection.connect(conn)
        deadline.watch(conn.sock)
        peer = conn.sock.getpeername()[0]
        if not by_name and not address_allowed(peer, allowed):  # the DNS answer changed
            conn.sock.close()
            raise refuse(conn.host, peer)

    class CheckedHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            checked_connect(self)

    class CheckedHTTPS(http.client.HTTPSConnection, CheckedHTTP):
        """HTTPSConnection.connect sets up TLS on the socket CheckedHTTP.connect checked."""

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(CheckedHTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(CheckedHTTPS, req)

    class RedirectHandler(urllib.request.HTTPRedirectHandler):
        max_redirections = MAX_REDIRECTS

        def http_error_302(self, req, fp, code, msg, headers):
            target = headers.get("location") or headers.get("uri")
            if target:
                check_url(urljoin(req.full_url, target))
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    # No proxies from the environment: the address check must see the real server.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), HTTPHandler, HTTPSHandler, RedirectHandler
    )


def download(url: str, settings: Settings) -> bytes:
    """The body of an image URL, or ImageDecodeError with the reason (within the settings'
    size cap, deadline and allowed hosts)."""
    check_url(url)
    limit = settings.max_download_bytes
    deadline = _Deadline(settings.download_timeout_s)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _opener(deadline, list(settings.allowed_hosts)).open(request) as response:
            ctype = response.headers.get_content_type()
            if not ctype.startswith("image/"):
                raise ImageDecodeError(f"not an image (Content-Type {ctype})", "not_an_image")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise ImageDecodeError(f"larger than {limit:,} bytes ({int(length):,})", "too_large")
            data = response.read(limit + 1)
    except ImageDecodeError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if deadline.expired:
            raise ImageDecodeError(
                f"download took longer than {deadline.seconds:g} s (IMGSEARCH_DOWNLOAD_TIMEOUT_S)", "timeout"
            ) from exc
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, ImageDecodeError):
            raise reason from exc
        raise ImageDecodeError(f"download failed: {reason}", "download") from exc
    finally:
        deadline.cancel()
    if deadline.expired:
        raise ImageDecodeError(
            f"download took longer than {deadline.seconds:g} s (IMGSEARCH_DOWNLOAD_TIMEOUT_S)", "timeout"
        )
    if len(data) > limit:
        raise ImageDecodeError(f"larger than {limit:,} bytes", "too_large")
    return data
