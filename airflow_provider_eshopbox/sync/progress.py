"""Throttled progress lines for the task log: at most one every few seconds, plus a final one."""

from __future__ import annotations

import logging
import time


class ProgressLog:
    """Logs ``rows so far, rows/s`` and whatever counters the caller adds, at most every ``every`` s."""

    def __init__(self, log: logging.Logger, what: str, *, every: float = 5.0) -> None:
        self._log = log
        self._what = what
        self._every = every
        self._started = time.monotonic()
        self._last = self._started

    def update(self, rows: int, *, force: bool = False, **counters: object) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        extra = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counters.items())
        self._log.info("%s: %d rows, %.0f rows/s, %s", self._what, rows, rows / elapsed, extra)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started
