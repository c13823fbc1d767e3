"""Rate control against a simulated token-bucket server, in virtual time: the learned rate, its
429s, and a configured ceiling; then the host-wide state shared by processes."""

from __future__ import annotations

import bisect
import heapq
import itertools
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.hooks.rate_control import (
    UNLIMITED_RATE,
    FileRateState,
    MemoryRateState,
    RateLimiter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class BucketServer:
    """The sandbox's rate limit: ``rate`` tokens a second, ``burst`` at most; a 429 when empty."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = float(burst), clock.now

    def take(self) -> float | None:
        """None if served, else the Retry-After in whole seconds (as the sandbox sends it)."""
        now = self.clock.now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return float(max(1, -(-(1 - self.tokens) // self.rate)))


def drive(
    limiter: RateLimiter, server: BucketServer, clock: Clock, requests: int, in_flight: int = 16
) -> tuple[float, int]:
    """``in_flight`` workers sending through the limiter as the HTTP client does (a throttled request
    waits its Retry-After, then queues again), each reply 50 ms after its request reaches the
    server, until ``requests`` are served; returns (seconds, 429s). Events in time order."""
    started, throttles, served = clock.now, 0, 0
    events: list[tuple[float, int, int, float | None]] = []  # (when, seq, worker, retry_after or -1: try)
    seq = itertools.count()
    for worker in range(in_flight):
        heapq.heappush(events, (clock.now, next(seq), worker, -1.0))
    while served < requests:
        clock.now, _, worker, outcome = heapq.heappop(events)
        if outcome == -1.0:  # the worker asks the limiter
            if wait := limiter.claim():
                heapq.heappush(events, (clock.now + wait, next(seq), worker, -1.0))
            else:
                heapq.heappush(events, (clock.now + 0.05, next(seq), worker, server.take()))
        elif outcome is None:
            limiter.succeeded()
            served += 1
            heapq.heappush(events, (clock.now, next(seq), worker, -1.0))
        else:
            throttles += 1
            limiter.throttled(outcome)
            heapq.heappush(events, (clock.now + outcome, next(seq), worker, -1.0))
    return clock.now - started, throttles


def claim_now(limiter: RateLimiter, clock: Clock) -> float:
    """Wait (in virtual time) until the limiter gives a slot; returns how long that took."""
    waited = 0.0
    while wait := limiter.claim():
        clock.now += wait
        waited += wait
    return waited


@pytest.mark.parametrize("limit", [5.0, 10.0, 20.0, 50.0])
def test_an_unknown_limit_is_learned_with_few_429s_and_most_of_its_budget(limit):
    clock = Clock()
    limiter = RateLimiter(None, MemoryRateState(), clock=clock)
    requests = int(limit * 30)  # half a minute of work at the limit
    seconds, throttles = drive(limiter, BucketServer(limit, int(limit), clock), clock, requests)
    floor = requests / limit
    assert throttles <= 0.05 * requests, (throttles, requests)
    assert seconds <= 1.25 * floor, (seconds, floor)


def _most_in_a_second(starts: list[float]) -> int:
    """The most of ``starts`` in any window ``[t, t + 1)``."""
    starts = sorted(starts)
    return max(bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts))


def test_a_configured_limit_is_a_ceiling_and_never_draws_a_429():
    clock = Clock()
    limiter = RateLimiter(10.0, MemoryRateState(), clock=clock)
    starts: list[float] = []
    claim = limiter.claim

    def claiming() -> float:
        wait = claim()
        if not wait:
            starts.append(clock.now)
        return wait

    limiter.claim = claiming  # type: ignore[method-assign]
    seconds, throttles = drive(limiter, BucketServer(10.0, 10, clock), clock, 300)
    # 30 windows of 10 starts, each held WINDOW_MARGIN (2%) longer than a second
    assert throttles == 0 and 29 <= seconds <= 31
    assert limiter.rate() == 10.0
    # At most 10 starts in any second; the first 10 within the first round trips (a burst, not spaced).
    assert _most_in_a_second(starts) == 10 and starts[9] - starts[0] <= 0.15, starts[:10]


def test_a_ceiling_above_the_real_limit_still_learns_below_it():
    clock = Clock()
    limiter = RateLimiter(50.0, MemoryRateState(), clock=clock)
    seconds, throttles = drive(limiter, BucketServer(5.0, 5, clock), clock, 150)
    # 11: the ceiling's first burst (twice what got through, as slow start grows) draws 5 at once
    assert throttles <= 11 and seconds <= 1.25 * 30


def test_no_limit_anywhere_means_no_spacing_once_slow_start_has_grown():
    clock = Clock()
    limiter = RateLimiter(None, MemoryRateState(), clock=clock)
    for _ in range(1500):  # slow start doubles about every tenth of a second of successes
        claim_now(limiter, clock)
        limiter.succeeded()
    assert limiter.rate() >= UNLIMITED_RATE and limiter.claim() == 0.0 and limiter.claim() == 0.0


def test_a_throttle_holds_every_request_back_briefly_not_for_a_coarse_retry_after():
    clock = Clock()
    limiter = RateLimiter(None, MemoryRateState(), clock=clock)
    for _ in range(30):
        claim_now(limiter, clock)
        clock.now += 0.1
        limiter.succeeded()
    pause = limiter.throttled(60.0)
    assert 0 < pause <= 2 / limiter.rate() + 1e-9 and limiter.held_for() == pytest.approx(pause)


def _worker(path: str, go: Any, count: int, out: multiprocessing.Queue) -> None:
    import time

    limiter = RateLimiter(None, FileRateState(Path(path)))
    out.put("ready")
    go.wait(60)
    slots = []
    for _ in range(count):
        while wait := limiter.claim():
            time.sleep(wait)
        slots.append(time.time())
    out.put(slots)


def _in_processes(
    target: Any, path: Path, count: int, before_go: Any = None, processes: int = 3
) -> list[float]:
    """Run ``target(path, go, count, out)`` in spawned processes released together once all are
    ready (``before_go`` runs in between); every process's start times, sorted."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(str(path), go, count, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    assert [out.get(timeout=60) for _ in procs] == ["ready"] * processes
    if before_go is not None:
        before_go()
    go.set()
    starts = sorted(start for _ in procs for start in out.get(timeout=60))
    for proc in procs:
        proc.join(30)
    return starts


def test_processes_of_one_host_share_one_budget(tmp_path):
    """A rate learned in one process spaces the requests of every process that shares the file."""
    path = tmp_path / "conn.rate"
    learned: list[float] = []

    def learn() -> None:
        first = RateLimiter(None, FileRateState(path))
        first.throttled(None)  # learned: no more than a few requests a second
        learned.append(first.rate())

    # Spawning is slow on a loaded machine; the rate is learned once every worker is up, so it has not
    # recovered by the time they claim (the test measured the spacing against a stale rate).
    slots = _in_processes(_worker, path, 3, before_go=learn)
    rate = learned[0]
    assert rate < 20
    # Nine starts from three processes keep one spacing between them: at most one slot of credit
    # after an idle spell, and a start that came late does not let the rest catch up beyond it.
    assert slots[-1] - slots[0] >= 0.9 * (len(slots) - 2) / rate, (slots, rate)
    assert FileRateState.unpack(path.read_bytes()).slow_start is False
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def _ceiling_worker(path: str, go: Any, count: int, out: multiprocessing.Queue) -> None:
    import time

    from airflow_provider_eshopbox.hooks.rate_control import host_clock

    limiter = RateLimiter(10.0, FileRateState(Path(path)))
    out.put("ready")
    go.wait(60)
    starts = []
    for _ in range(count):
        while wait := limiter.claim():
            time.sleep(wait)
        starts.append(host_clock())
        limiter.succeeded()
    out.put(starts)


def test_a_configured_limit_holds_across_the_processes_of_a_host(tmp_path):
    """Three processes told 10/s, sharing the host's file: never more than 10 starts in any second
    between them, in bursts (the first 10 at once), 36 starts in a little over 3 s."""
    starts = _in_processes(_ceiling_worker, tmp_path / "conn.rate", 12)
    assert len(starts) == 36 and _most_in_a_second(starts) == 10, starts
    assert starts[-1] - starts[0] >= 3.0 and starts[9] - starts[0] < 0.5, starts


def test_an_unusable_state_file_falls_back_to_this_process_with_one_warning(tmp_path, caplog):
    (tmp_path / "conn.rate").mkdir()  # a directory where the file should be
    limiter = RateLimiter(5.0, FileRateState(tmp_path / "conn.rate"))
    assert [limiter.claim() > 0 for _ in range(3)] == [False, False, True]  # still limited, in memory
    warnings = [r for r in caplog.records if "rate state" in r.getMessage()]
    assert len(warnings) == 1 and "ESHOPBOX_TOKEN_CACHE_DIR" in warnings[0].getMessage()
