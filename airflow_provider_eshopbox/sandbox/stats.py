"""Request counters (thread-safe): what clients did to the sandbox, for exact assertions and benches."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class SandboxStats:
    """Counts API requests by route/status, token traffic, injected faults and peak concurrency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter (in-flight requests keep being tracked)."""
        with self._lock:
            self._requests = 0
            self._by_route: Counter[str] = Counter()
            self._by_status: Counter[str] = Counter()
            self._token_exchanges = 0
            self._token_requests = 0
            self._missing_proxy_host = 0
            self._faults: Counter[str] = Counter()
            self._in_flight = getattr(self, "_in_flight", 0)
            self._dripping = getattr(self, "_dripping", 0)
            self._max_concurrent = self._in_flight

    def begin(self, route: str) -> None:
        """An API request arrived on ``route``."""
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            if route == "token":
                self._token_requests += 1
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)

    def end(self, status: int | None) -> None:
        """The request finished with ``status`` (None = connection dropped, counted as "dropped")."""
        with self._lock:
            self._in_flight -= 1
            self._by_status["dropped" if status is None else str(status)] += 1

    def token_minted(self) -> None:
        """A token exchange succeeded."""
        with self._lock:
            self._token_exchanges += 1

    def missing_proxy_host(self) -> None:
        """A workspace-host request came without a ``ProxyHost`` header (served anyway)."""
        with self._lock:
            self._missing_proxy_host += 1

    def fault(self, kind: str) -> None:
        """A fault of ``kind`` was injected."""
        with self._lock:
            self._faults[kind] += 1

    def dripping(self, delta: int) -> None:
        """A drip-fault reply started (+1) or ended (-1); lets tests see that none is left running."""
        with self._lock:
            self._dripping += delta

    def snapshot(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (also served at ``/__sandbox__/stats``)."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_route": dict(sorted(self._by_route.items())),
                "by_status": dict(sorted(self._by_status.items())),
                "token_exchanges": self._token_exchanges,
                "token_requests": self._token_requests,
                "missing_proxy_host": self._missing_proxy_host,
                "faults_injected": dict(sorted(self._faults.items())),
                "max_concurrent": self._max_concurrent,
                "in_flight": self._in_flight,
                "dripping": self._dripping,
            }
