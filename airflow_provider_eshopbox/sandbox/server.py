"""Runs an ASGI app with uvicorn in a daemon thread on a pre-bound loopback socket."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class ServerThread:
    """Start/stop uvicorn in a background thread; ``start`` returns once the server is listening.

    With ``ssl_certfile``/``ssl_keyfile`` it serves HTTPS (uvicorn's own ssl options)."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            date_header=False,  # the app sends its clock's (app.py)
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            backlog=1024,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._sock]},
            name=f"eshopbox-sandbox-{self.port}",
            daemon=True,
        )

    def start(self, timeout: float = 15.0) -> None:
        """Run the server thread and wait until uvicorn reports ``started``."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("eshopbox sandbox server thread exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"eshopbox sandbox did not start within {timeout} s")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, join the thread, close the socket."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
