"""Client-side rate control of one connection: spacing between request starts, learned from 429s.

Without a configured ``max_requests_per_second`` the rate is learned the way TCP (and the AWS SDKs'
"adaptive" retry mode) learn a link's capacity: it starts modestly and doubles while requests
succeed ("slow start"); a 429 sets it just below the throughput that was getting through, and it
then grows back along a cubic curve that is flat near that level and probes beyond it slowly. A
configured rate is a hard ceiling over all of this, read as "at most that many request starts in
any one second": a burst up to it, then starts as the oldest of the last second's leave it
(``window_of``), so the time a read spends waiting on its own replies is not lost to spacing. Once
a 429 shows the server's limit is lower, starts are spaced at the learned rate, as without one.

The state can live in this process (``MemoryRateState``) or in a small flock-guarded file shared
by every process of the host (``FileRateState``), so several task processes of one connection
share one budget instead of each discovering the limit and exceeding it together. With
``token_cache=deployment``, ``DeploymentRateState`` adds a deployment-wide level in an Airflow
Variable: the hosts (workers, pods) using the connection at the same time register there, and each
gets an equal share of the configured rate, or of the rate the deployment learned from its 429s.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
# A configured ceiling is held as at most b starts in any 1/m s (window_of): the start times kept
# are at most this many, so the host's shared file stays small (m > 1 only above 64 requests/s).
WINDOW_STARTS = 64
# ...and each window is held this much longer: a start recorded here reaches the server a little
# late or early, and a server whose bucket the burst emptied answers one that came early with a 429.
WINDOW_MARGIN = 0.02
SAME_EVENT_S = 0.5  # 429s this close together are one event (requests that were already in flight)
# Deployment level (DeploymentRateState): how often a host in use reports itself and reads the others,
# how long a host that stopped reporting still counts, and how close two hosts' 429s are one event.
SYNC_PERIOD_S = 1.0
MEMBER_TTL_S = 5.0
DEPLOYMENT_SAME_EVENT_S = 2.0
RATE_VARIABLE_PREFIX = "eshopbox_rate_budget__"


def host_clock() -> float:
    """Seconds on a clock every process of this host shares and that never steps: Linux's
    ``CLOCK_BOOTTIME`` (counts suspend too). Elsewhere ``time.monotonic()``, which is system-wide on
    macOS and Linux but may stop during suspend. The wall clock is never used for the host's
    state, so setting the time back an hour cannot throttle every task for an hour."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if _BOOTTIME else time.monotonic()


_BOOTTIME = hasattr(time, "CLOCK_BOOTTIME")
MAX_HOLD_S = 2.0 / MIN_RATE  # the longest the client ever holds requests back by itself (a 429's pause)


@dataclass
class RateState:
    """What the controller remembers; plain numbers, so that processes can share it as JSON."""

    next_slot: float = 0.0  # host_clock() time the next request may start
    slow_start: bool = True
    rate: float = SLOW_START_RATE  # in slow start: the current rate
    w_max: float = 0.0  # after a 429: the throughput that was getting through
    since: float = 0.0  # ...and when that 429 came
    last_throttle: float = 0.0
    successes: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    bucket_start: float = 0.0  # time of successes[-1]'s bucket
    starts: list[float] = field(default_factory=list)  # under a ceiling: the last second's starts, in order


def sanitize(state: RateState, now: float) -> list[str]:
    """Clamp a state read from a shared file (or left by a clock from before an upgrade) into what
    this code could itself have written at ``now``; returns what was wrong (empty: nothing).

    A finite but absurd value would otherwise stall or break every task of the host: ``next_slot``
    an hour ahead hangs the call, ``since`` in the future or a tiny ``rate`` throttles to one
    request in 20 s, a negative ``w_max`` fails the cube root.
    """
    numbers = (state.next_slot, state.rate, state.w_max, state.since, state.last_throttle, state.bucket_start)
    if not all(map(math.isfinite, numbers)) or len(state.successes) != BUCKETS:
        fresh = RateState()
        state.__dict__.update(fresh.__dict__)
        return ["values that are not finite numbers"]
    wrong: list[str] = []
    if state.next_slot > now + MAX_HOLD_S:
        wrong.append(f"next_slot {state.next_slot - now:.0f} s ahead")
        state.next_slot = now
    if not MIN_RATE <= state.rate <= UNLIMITED_RATE:
        wrong.append(f"rate {state.rate:g}")
        state.rate = min(max(state.rate, SLOW_START_RATE), UNLIMITED_RATE)
    if not state.slow_start and not MIN_RATE <= state.w_max <= UNLIMITED_RATE:
        wrong.append(f"w_max {state.w_max:g}")
        state.w_max = min(max(state.w_max, MIN_RATE), UNLIMITED_RATE)
    for name in ("since", "last_throttle", "bucket_start"):
        if getattr(state, name) > now:
            wrong.append(f"{name} {getattr(state, name) - now:.0f} s in the future")
            setattr(state, name, now)
    if min(state.successes) < 0:
        wrong.append("a negative success count")
        state.successes = [max(0, n) for n in state.successes]
    # Another process may have started one after this one read the clock and before it got the lock.
    if any(not math.isfinite(t) or t > now + MAX_HOLD_S for t in state.starts):
        wrong.append("request starts that are not finite or far in the future")
        state.starts = []
    state.starts.sort()
    return wrong


def window_of(ceiling: float) -> tuple[int, float] | None:
    """``(b, w)``: at most ``b`` starts in any ``w`` s keeps a configured ceiling of ``ceiling``/s in
    every 1 s window (``1/w`` windows of ``b``, ``b / w <= ceiling``, w a little longer than that:
    ``WINDOW_MARGIN``); None below 2/s, which is
    held by spacing starts ``1 / ceiling`` apart instead (a window of 1 s would round it down to 1)."""
    if ceiling < 2:
        return None
    whole = math.floor(ceiling)
    parts = math.ceil(whole / WINDOW_STARTS)
    return whole // parts, (1.0 + WINDOW_MARGIN) / parts


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


def claim(state: RateState, now: float, ceiling: float | None, told: bool = False) -> float:
    """Take the start slot if it is due (returns 0), else return how long until it is. ``told``: the
    ceiling is (a share of) a configured ``max_requests_per_second``, held in windows (``window_of``);
    a ceiling the deployment learned from 429s is spaced, as a learned rate is.

    Slots are taken when due, never reserved ahead: waiting callers re-check, so a 429's lower rate
    and pause apply at once to every request not yet sent.
    """
    wait = state.next_slot - now
    if wait > 0:
        return wait
    rate = current_rate(state, now, ceiling)
    # Bursts only while no 429 was met: a ceiling the server has proved too high is spaced, below it.
    window = window_of(ceiling) if told and ceiling and rate >= ceiling and state.slow_start else None
    if window is not None:  # the ceiling sets the pace: at most b starts in any w s
        burst, width = window
        _roll(state, now)
        # ...and no more than twice what got through in the last second (plus two), as slow start
        # grows: a ceiling above the server's real limit draws a few 429s, not a burst of them.
        allowed = min(burst, 2 + 2 * sum(state.successes))
        recent = [t for t in state.starts if t > now - width][-burst:]
        state.starts = recent
        if len(recent) >= allowed:
            return recent[len(recent) - burst] + width - now if len(recent) >= burst else 1.0 / ceiling
        state.starts.append(now)
        state.next_slot = now  # a later switch to spacing starts from here, with no credit banked
        return 0.0
    # Spaced starts under a ceiling count too, should the ceiling come to set the pace (window_of).
    recent = [t for t in state.starts if t > now - 1.0][-WINDOW_STARTS + 1 :]
    state.starts = [*recent, now] if ceiling else []
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

    def ceiling(self, configured: float | None, now: float) -> float | None:
        """The ceiling in force for this state's requests: the configured one."""
        return configured

    def note_throttle(self, state: RateState, now: float) -> None:
        """A 429 was learned from (only a deployment-wide state passes it on)."""


class FileRateState(MemoryRateState):
    """The state of one connection for every process of the host: a small 0600 file under flock.

    The file holds ``RateState`` packed in a fixed binary layout and stays open, so a request costs
    a lock, a read and a write. Any failure of the file (read-only or full disk, a directory in its
    place) falls back to this process's own state for good, with one warning: rate control never
    fails a task.
    """

    _LAYOUT = struct.Struct(f"<d?dddd{BUCKETS}idH{WINDOW_STARTS}d")

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._broken = False
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
                        try:
                            state = self.unpack(os.pread(fd, self._LAYOUT.size, 0))
                        except OSError as exc:
                            self._fall_back(exc)
                        else:
                            yield state  # an OSError of the caller's body is the caller's, not the file's
                            try:
                                os.pwrite(fd, self.pack(state), 0)
                            except OSError as exc:
                                self._fall_back(exc)
                            return
                    finally:
                        with contextlib.suppress(OSError):
                            fcntl.flock(fd, fcntl.LOCK_UN)
        with super().locked() as state:
            yield state

    @classmethod
    def pack(cls, state: RateState) -> bytes:
        return cls._LAYOUT.pack(
            state.next_slot, state.slow_start, state.rate, state.w_max, state.since,
            state.last_throttle, *state.successes, state.bucket_start, len(state.starts),
            *state.starts, *[0.0] * (WINDOW_STARTS - len(state.starts)),
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> RateState:
        """The state in ``data`` (``sanitize`` judges its values); a fresh one for an empty or short file."""
        if len(data) != cls._LAYOUT.size:
            return RateState()
        values = cls._LAYOUT.unpack(data)
        head, tail = values[: 7 + BUCKETS], values[7 + BUCKETS :]
        starts = list(tail[1 : 1 + min(tail[0], WINDOW_STARTS)])
        return RateState(*head[:6], successes=list(head[6:-1]), bucket_start=head[-1], starts=starts)

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


class VariableBackend(Protocol):
    """Where a deployment-wide level (the rate budget here, ``token_cache``'s shared token) keeps its
    record: text values by name (``token_cache.TaskSdkVariables`` in Airflow)."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str, description: str) -> None: ...

    def delete(self, name: str) -> None: ...


class DeploymentRateState:
    """A host's state (file or memory) plus a deployment-wide share, kept in an Airflow Variable.

    Request spacing, the 429 pause and the host's own learning stay local (no network call in the
    request path). A daemon thread, while the connection is in use, writes this host's heartbeat to
    the Variable every ``SYNC_PERIOD_S`` and reads back who else is active and what the deployment
    has learned. The ceiling of this host is then ``rate / hosts``, where ``rate`` is the configured
    ``max_requests_per_second`` or else the deployment's learned rate (the hosts' combined
    throughput at the last 429, grown back along the same cubic curve as a single host's). A host
    that learns from a 429 publishes that estimate at its next sync. Writers race (last writer
    wins): a lost heartbeat is back a second later, and a host counts for ``MEMBER_TTL_S`` after its
    last one, so the shares err on the low side. If the Variable cannot be used (no Task SDK), the
    host's state carries on alone, with one warning.
    """

    def __init__(
        self,
        name: str,
        local: MemoryRateState | FileRateState,
        member: str,
        variables: VariableBackend,
        clock: Callable[[], float] = time.time,
        period: float = SYNC_PERIOD_S,
    ) -> None:
        self.name = name
        self.local = local
        self.member = member
        self.variables = variables
        self.clock = clock
        self.period = period
        self.hosts = 1  # active hosts seen at the last sync, this one included
        self.learned: tuple[float, float] | None = None  # (w_max, since) of the deployment
        self._pending: tuple[float, float] | None = None  # a 429's estimate, to publish
        self._last_used = -math.inf
        self._registered = False
        self._broken = False
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[RateState]:
        self._last_used = self.clock()
        if self._thread is None and not self._broken:
            self._start()
        with self.local.locked() as state:
            yield state

    def ceiling(self, configured: float | None, now: float) -> float | None:
        """This host's share of the configured rate, else of the learned one (None: still unknown)."""
        with self._guard:
            hosts, learned = max(1, self.hosts), self.learned
        if configured:
            return configured / hosts
        if learned is None:
            return None
        wall = self.clock()  # the record's stamps come from many hosts: wall-clock, clamped here
        w_max, since = min(max(learned[0], MIN_RATE), UNLIMITED_RATE), min(learned[1], wall)
        total = current_rate(RateState(slow_start=False, w_max=w_max, since=since), wall, None)
        return max(MIN_RATE, total / hosts)

    def note_throttle(self, state: RateState, now: float) -> None:
        """Publish what the whole deployment was getting through: this host's share times the hosts."""
        with self._guard:
            # the host's stamps are host_clock(); the record's are wall-clock, for every host
            self._pending = (state.w_max * max(1, self.hosts), self.clock())
        self._wake.set()

    # --- the sync thread -------------------------------------------------------------------------
    def _start(self) -> None:
        with self._guard:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="eshopbox-rate-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._broken:
            idle = self.clock() - self._last_used > MEMBER_TTL_S
            try:
                if not idle or self._registered:
                    self.sync(leaving=idle)
            except Exception as exc:
                self._fall_back(exc)
                return
            self._wake.wait(self.period)
            self._wake.clear()

    def sync(self, leaving: bool = False) -> None:
        """One heartbeat: read the record, update this host and the learned rate, write it back."""
        now = self.clock()
        record = _load_record(self.variables.get(self.name))
        members = {m: seen for m, seen in record["members"].items() if now - seen < MEMBER_TTL_S}
        if leaving:
            members.pop(self.member, None)
        else:
            members[self.member] = now
        with self._guard:
            pending, self._pending = self._pending, None
        learned = record["learned"]
        if pending is not None and (learned is None or pending[1] - learned[1] >= DEPLOYMENT_SAME_EVENT_S):
            learned = pending
        members = {m: min(seen, now) for m, seen in members.items()}  # a stamp from the future ages
        if learned is not None:
            learned = (min(max(learned[0], MIN_RATE), UNLIMITED_RATE), min(learned[1], now))
        self.variables.set(
            self.name,
            json.dumps({"v": 1, "members": members, "learned": learned}),
            "Eshopbox request-rate budget shared by the workers using one connection (no secrets).",
        )
        with self._guard:
            self.hosts = max(1, len(members))
            self.learned = tuple(learned) if learned else None  # type: ignore[assignment]
            self._registered = not leaving

    def _fall_back(self, exc: BaseException) -> None:
        self._broken = True
        with self._guard:
            self.hosts, self.learned = 1, None
        log.warning(
            "Eshopbox deployment rate budget %s cannot be used (%s: %s); this host keeps its own.",
            self.name,
            type(exc).__name__,
            str(exc)[:200],
        )


def _load_record(text: str | None) -> dict[str, Any]:
    empty: dict[str, Any] = {"members": {}, "learned": None}
    try:
        raw = json.loads(text or "{}")
        members = {str(k): float(v) for k, v in dict(raw.get("members") or {}).items()}
        learned = raw.get("learned")
        if learned is not None:
            w_max, since = float(learned[0]), float(learned[1])
            learned = (w_max, since) if math.isfinite(w_max + since) and w_max > 0 else None
        return {"members": members, "learned": learned}
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return empty


_deployment_limiters: dict[tuple[str, float | None], RateLimiter] = {}
_deployment_guard = threading.Lock()


def deployment_limiter(
    key: str, rate: float | None, shared_dir: Path | None, variables: VariableBackend | None = None
) -> RateLimiter:
    """The limiter of one connection with ``token_cache=deployment``: the host's file state (the
    same file ``_http.limiter_for`` uses) under a deployment-wide share; one per process."""
    from airflow_provider_eshopbox.hooks.token_cache import TaskSdkVariables, variable_name

    with _deployment_guard:
        limiter = _deployment_limiters.get((key, rate))
        if limiter is None:
            digest = hashlib.sha256(key.encode()).hexdigest()[:40]
            local: MemoryRateState | FileRateState
            if shared_dir is not None:
                local = FileRateState(shared_dir / f"{digest}.rate")
                host = f"{os.uname().nodename}:{local.path}"
            else:
                local = MemoryRateState()
                host = f"{os.uname().nodename}:{os.getpid()}"
            member = hashlib.sha256(host.encode()).hexdigest()[:16]
            state = DeploymentRateState(
                variable_name(RATE_VARIABLE_PREFIX, key), local, member, variables or TaskSdkVariables()
            )
            limiter = _deployment_limiters[(key, rate)] = RateLimiter(rate, state)
        return limiter


class RateLimiter:
    """Spacing of request starts for one connection: a ceiling, a learned rate, a 429's pause."""

    def __init__(
        self,
        ceiling: float | None,
        state: MemoryRateState | FileRateState | DeploymentRateState | None = None,
        clock: Callable[[], float] = host_clock,
    ) -> None:
        self.ceiling = ceiling
        self.state = state or MemoryRateState()
        self.clock = clock
        self._warned = False

    @contextlib.contextmanager
    def _locked(self, now: float) -> Iterator[RateState]:
        """The shared state, made sane before use, so that a state nobody can use is never kept."""
        with self.state.locked() as state:
            wrong = sanitize(state, now)
            if wrong and not self._warned:
                self._warned = True
                log.warning("Eshopbox rate state had %s; reset to sane values", ", ".join(wrong))
            yield state

    def _ceiling(self, now: float) -> float | None:
        """The configured ceiling, or this host's share of the deployment's (or learned) rate."""
        return self.state.ceiling(self.ceiling, now)

    def rate(self) -> float:
        """Requests per second allowed now (for log lines)."""
        now = self.clock()
        ceiling = self._ceiling(now)
        with self._locked(now) as state:
            return current_rate(state, now, ceiling)

    def claim(self) -> float:
        """Take the start slot if due (0), else how long until it is (then ask again)."""
        now = self.clock()
        ceiling = self._ceiling(now)
        with self._locked(now) as state:
            return claim(state, now, ceiling, told=self.ceiling is not None)

    def held_for(self) -> float:
        """Seconds until the next request may start (more than zero while a 429's pause lasts)."""
        now = self.clock()
        with self._locked(now) as state:
            return max(0.0, state.next_slot - now)

    def succeeded(self) -> None:
        now = self.clock()
        with self._locked(now) as state:
            succeeded(state, now)

    def throttled(self, retry_after: float | None) -> float:
        """A 429: learn from it; returns how long every request now holds back."""
        now = self.clock()
        ceiling = self._ceiling(now)
        with self._locked(now) as state:
            pause = throttled(state, now, ceiling, retry_after)
            learned = state.since == now  # a new 429 event (not one already in flight)
        if learned:
            self.state.note_throttle(state, now)
        return pause

    def reason(self) -> str:
        """What sets the pace now, for log lines: the configured limit, a learned rate, or the ramp."""
        now = self.clock()
        ceiling = self._ceiling(now)
        with self._locked(now) as state:
            rate, ramp = current_rate(state, now, ceiling), state.slow_start
        if ceiling and rate >= ceiling:
            return f"configured limit {rate:.3g} requests/s"
        if ramp:
            return f"the client's own start-up ramp, now {rate:.3g} requests/s; no server limit met"
        return f"learned rate {rate:.3g} requests/s"

    async def acquire(self, on_wait: Callable[[float], None]) -> bool:
        """Wait (without blocking the loop) until this caller may send; ``on_wait`` hears of each
        sleep. The caller bounds the whole (``_http`` counts it against the attempt's deadline)."""
        import asyncio

        waited = False
        while delay := self.claim():
            waited = True
            on_wait(delay)
            await asyncio.sleep(min(delay, MAX_HOLD_S))  # sanitize() keeps it there; belt and braces
        return waited
