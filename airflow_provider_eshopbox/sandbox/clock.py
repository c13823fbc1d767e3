"""Injectable wall clock: token expiry and "now" stamps use it, so tests can jump time without sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SandboxClock:
    """Wall-clock seconds (``time.time`` by default) plus an offset that tests can advance."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current sandbox time in epoch seconds."""
        with self._lock:
            return self._source() + self._offset

    def now_ms(self) -> int:
        """Current sandbox time in epoch milliseconds (the unit of ``updatedAt``)."""
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        """Move sandbox time forward (e.g. past a token's expiry) without sleeping."""
        with self._lock:
            self._offset += seconds
