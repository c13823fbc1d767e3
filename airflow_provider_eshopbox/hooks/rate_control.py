"""Client-side rate control of one connection: spacing between request starts, learned from 429s.

Without a configured ``max_requests_per_second`` the rate is learned the way TCP (and the AWS SDKs'
"adaptive" retry mode) learn a link's capacity: it starts modestly and doubles while requests
succeed ("slow start"); a 429 sets it just below the throughput that was getting through, and it
then grows back along a cubic curve that is flat near that level and probes beyond it slowly. A
configured rate is a hard ceiling over all of this.

The state can live in this process (``MemoryRateState``) or in a small flock-guarded file shared
by every process of the host (``FileRateState``), so several task processes of one connection
share one budget instead of each discovering the limit and exceeding it together.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SLOW_START_RATE = 20.0  # requests/s before anything is known: one a round trip at 50 ms
SLOW_START_PERIOD = 0.1  # the rate doubles about this often (in requests sent) while all succeed
UNLIMITED_RATE = 10_000.0  # slow start stops growing here: effectively no client-side limit
BETA = 0.85  # after a 429, the rate drops to this share of what was getting through
CUBIC_C = 0.02  # how fast the rate grows back: rate(t) = C (t - K)^3 + W_max (C=0.02: a probe past
# the last W_max every ~10 s at 10/s; simulated in tests/hook/test_rate_control.py)
MIN_RATE = 0.05  # never slower than one request in 20 s
WINDOW_S = 1.0  # throughput is measured over the last second of successes
BUCKETS = 10  # ...in buckets of a tenth of it
SAME_EVENT_S = 0.5  # 429s this close together are one event (requests that were already in flight)


@dataclass
class RateState:
    """What the controller remembers; plain numbers, so that processes can share it as JSON."""

    next_slot: float = 0.0  # wall-clock time the next request may start
    slow_start: bool = True
    rate: float = SLOW_START_RATE  # in slow start: the current rate
    w_max: float = 0.0  # after a 429: the throughput that was getting through
    since: float = 0.0  # ...and when that 429 came
    last_throttle: float = 0.0
    successes: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    bucket_start: float = 0.0  # time of successes[-1]'s bucket


def current_rate(state: RateState, now: float, ceiling: float | None) -> float:
    """Requests per second allowed now."""
    if state.slow_start:
        rate = state.rate
    else:
        k = (state.w_max * (1 - BETA) / CUBIC_C) ** (1 / 3)
        rate = CUBIC_C * (now - state.since - k) ** 3 + state.w_max
    rate = max(MIN_RATE, rate)
    return min(rate, ceiling) if ceiling else rate


def _roll(state: RateState, now: float) -> None:
    """Move the success buckets forward to ``now``."""
    width = WINDOW_S / BUCKETS
    steps = int((now - state.bucket_start) // width)
    if steps <= 0:
        return
    keep = max(0, BUCKETS - steps)
    state.successes = state.successes[BUCKETS - keep :] + [0] * (BUCKETS - keep)
    state.bucket_start += steps * width


def claim(state: RateState, now: float, ceiling: float | None) -> float:
    """Take the start slot if it is due (returns 0), else return how long until it is.

    Slots are taken when due, never reserved ahead: waiting callers re-check, so a 429's lower rate
    and pause apply at once to every request not yet sent.
    """
    wait = state.next_slot - now
    if wait > 0:
        return wait
    rate = current_rate(state, now, ceiling)
    if rate < UNLIMITED_RATE or ceiling:
        state.next_slot = max(state.next_slot, now - 1.0 / rate) + 1.0 / rate  # keep a one-slot credit
    return 0.0


def succeeded(state: RateState, now: float) -> None:
    """Count a success; in slow start, grow the rate (doubling about every SLOW_START_PERIOD)."""
    _roll(state, now)
    state.successes[-1] += 1
    if state.slow_start and state.rate < UNLIMITED_RATE:
        state.rate *= 2 ** (1 / max(2.0, state.rate * SLOW_START_PERIOD))


def throttled(state: RateState, now: float, ceiling: float | None, retry_after: float | None) -> float:
    """Learn from a 429; returns how long every request of the connection should now hold back."""
    if now - state.last_throttle >= SAME_EVENT_S:
        _roll(state, now)
        successes = sum(state.successes)
        current = current_rate(state, now, ceiling)
        # What was getting through; with hardly any successes to go by (a process's first request
        # throttled, say), half the rate that was tried.
        through = successes / WINDOW_S if successes >= 2 else current / 2
        state.w_max = max(MIN_RATE, min(current, through))
        state.since = now
        state.slow_start = False
        state.last_throttle = now
    rate = current_rate(state, now, ceiling)
    # Two request intervals let the server's bucket refill; the throttled request itself waits its
    # whole Retry-After. Holding everything back for a coarse Retry-After would waste the budget.
    pause = 2.0 / rate if retry_after is None else min(retry_after, 2.0 / rate)
    state.next_slot = max(state.next_slot, now + pause)
    return pause


class MemoryRateState:
    """The state of one connection in this process."""

    def __init__(self) -> None:
        self._state = RateState()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[RateState]:
        with self._lock:
            yield self._state


class FileRateState:
    """The state of one connection for every process of the host: a small 0600 file under flock.

    The file holds ``RateState`` packed in a fixed binary layout and stays open, so a request costs
    a lock, a read and a write. Any failure of the file (read-only or full disk, a directory in its
    place) falls back to this process's own state for good, with one warning: rate control never
    fails a task.
    """

    _LAYOUT = struct.Struct(f"<d?dddd{BUCKETS}id")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memory = MemoryRateState()
        self._broken = False
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def locked(self) -> Iterator[RateState]:
        if not self._broken:
            with self._lock:
                try:
                    fd = self._open()
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError as exc:
                    self._fall_back(exc)
                else:
                    try:
                        state = self.unpack(os.pread(fd, self._LAYOUT.size, 0))
                        yield state
                        os.pwrite(fd, self.pack(state), 0)
                    except OSError as exc:
                        self._fall_back(exc)
                    finally:
                        with contextlib.suppress(OSError):
                            fcntl.flock(fd, fcntl.LOCK_UN)
                    return
        with self._memory.locked() as state:
            yield state

    @classmethod
    def pack(cls, state: RateState) -> bytes:
        return cls._LAYOUT.pack(
            state.next_slot, state.slow_start, state.rate, state.w_max, state.since,
            state.last_throttle, *state.successes, state.bucket_start,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> RateState:
        """The state in ``data``; a fresh one for an empty, short or nonsensical file."""
        if len(data) != cls._LAYOUT.size:
            return RateState()
        values = cls._LAYOUT.unpack(data)
        state = RateState(*values[:6], successes=list(values[6:-1]), bucket_start=values[-1])
        numbers = (state.next_slot, state.rate, state.w_max, state.since, state.bucket_start)
        if not all(map(math.isfinite, numbers)) or state.rate <= 0 or min(state.successes) < 0:
            return RateState()
        return state

    def _fall_back(self, exc: OSError) -> None:
        self._broken = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        log.warning(
            "Eshopbox rate state %s cannot be used (%s: %s); this process keeps its own. Set "
            "ESHOPBOX_TOKEN_CACHE_DIR to a writable private directory to share one across processes.",
            self.path,
            type(exc).__name__,
            exc.strerror or exc,
        )


class RateLimiter:
    """Spacing of request starts for one connection: a ceiling, a learned rate, a 429's pause."""

    def __init__(
        self,
        ceiling: float | None,
        state: MemoryRateState | FileRateState | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ceiling = ceiling
        self.state = state or MemoryRateState()
        self.clock = clock
        self.waits = 0  # requests held back, and for how long: summarised in the task log
        self.waited = 0.0

    @property
    def interval(self) -> float:
        """Seconds between request starts at the current rate (0: no limit in force)."""
        with self.state.locked() as state:
            rate = current_rate(state, self.clock(), self.ceiling)
        return 0.0 if rate >= UNLIMITED_RATE and not self.ceiling else 1.0 / rate

    def rate(self) -> float:
        """Requests per second allowed now (for log lines)."""
        with self.state.locked() as state:
            return current_rate(state, self.clock(), self.ceiling)

    def claim(self) -> float:
        """Take the start slot if due (0), else how long until it is (then ask again)."""
        with self.state.locked() as state:
            return claim(state, self.clock(), self.ceiling)

    def held_for(self) -> float:
        """Seconds until the next request may start (more than zero while a 429's pause lasts)."""
        with self.state.locked() as state:
            return max(0.0, state.next_slot - self.clock())

    def succeeded(self) -> None:
        with self.state.locked() as state:
            succeeded(state, self.clock())

    def throttled(self, retry_after: float | None) -> float:
        """A 429: learn from it; returns how long every request now holds back."""
        with self.state.locked() as state:
            return throttled(state, self.clock(), self.ceiling, retry_after)

    async def acquire(self) -> None:
        """Wait (without blocking the loop) until this caller may send."""
        import asyncio

        started = self.clock()
        while delay := self.claim():
            await asyncio.sleep(delay)
        if (waited := self.clock() - started) > 0:
            self.waits += 1
            self.waited += waited
