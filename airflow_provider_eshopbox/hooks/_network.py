"""The connection pool's network streams: httpcore's own, asked "is this socket readable?" cheaply.

httpcore asks that of every idle connection each time it places a request (a server that closed
an idle connection makes it readable), and its anyio stream answers by building anyio's table of
socket attributes anew for each question: about 0.3 ms of client CPU per request at 16 in flight
(bench.orders_sync). These streams find the socket once and poll it, as httpcore itself does.
"""

from __future__ import annotations

import select
import socket
import ssl
from typing import Any

import httpcore
import httpx


def readable(sock: socket.socket | None) -> bool:
    """True when a read would not block: data waiting, or the peer closed (httpcore's reading of an
    idle connection: either way it is not reused). No socket, or a closed one, counts as readable."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """An ``httpcore`` network stream, with ``is_readable`` answered from the socket found once."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable(self._socket)
        return self._inner.get_extra_info(info)


class Backend(httpcore.AnyIOBackend):
    """httpcore's asyncio backend, handing out the streams above."""

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _Stream(await super().connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _Stream(await super().connect_unix_socket(*args, **kwargs))


def transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, with its pool on :class:`Backend`.

    httpx takes no network backend, so its pool is replaced by one made with the same settings;
    where an httpx release keeps its pool elsewhere, the transport is left as httpx made it (the
    requests are the same, only the CPU differs; tests/hook/test_network.py notices).
    """
    made = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    if isinstance(getattr(made, "_pool", None), httpcore.AsyncConnectionPool):
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        made._pool = httpcore.AsyncConnectionPool(  # httpx takes no network_backend: see the docstring
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=Backend(),
        )
    return made
