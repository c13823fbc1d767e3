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
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
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


#: AsyncConnectionPool's settings, as its attributes hold them (httpcore 1.x)
_SETTINGS = (
    "ssl_context",
    "max_connections",
    "max_keepalive_connections",
    "keepalive_expiry",
    "http1",
    "http2",
    "retries",
    "local_address",
    "uds",
    "socket_options",
)


def on_backend(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """``client`` with its own transport's pool on :class:`Backend`, every setting kept.

    httpx takes no network backend, so the pool it made (no connection yet) is replaced by one with
    the same settings. Proxy transports (HTTP(S)_PROXY, ALL_PROXY) stay as httpx made them. Where an
    httpx or httpcore release keeps these elsewhere, the client is left as it is: the requests are
    the same, only the CPU differs (tests/hook/test_network.py notices).
    """
    made = getattr(client, "_transport", None)
    pool = getattr(made, "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool:
        return client
    try:
        settings = {name: getattr(pool, f"_{name}") for name in _SETTINGS}
    except AttributeError:
        return client
    made._pool = httpcore.AsyncConnectionPool(**settings, network_backend=Backend())  # type: ignore[union-attr]
    return client
