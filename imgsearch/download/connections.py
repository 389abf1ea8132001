"""The connections a download makes (an httpcore network backend): to checked addresses only,
and every wait ending by the deadline of the whole download. Imported when a download starts:
httpx and httpcore cost a command that downloads nothing a sixth of a second."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import httpcore

from imgsearch.download.addresses import address_allowed, host_allowed_by_name
from imgsearch.errors import ImageDecodeError


class _Stream(httpcore.NetworkStream):
    """A connection whose every wait ends by the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: CheckedBackend) -> None:
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


class CheckedBackend(httpcore.NetworkBackend):
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
