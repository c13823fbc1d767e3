"""A host-wide rate state that is finite but absurd, or left by a clock that stepped, leads to a normal
(bounded) call and a rewritten sane state, never a hang or a host where every task fails (issue 26)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.hooks.rate_control import (
    MAX_HOLD_S,
    MIN_RATE,
    DeploymentRateState,
    FileRateState,
    RateLimiter,
    RateState,
    host_clock,
    sanitize,
)

REQUESTS = 7


def _write(path: Path, state: RateState) -> None:
    path.write_bytes(FileRateState.pack(state))


def _absurd(now: float) -> dict[str, RateState]:
    learned = RateState(slow_start=False, w_max=10.0, since=now - 5, last_throttle=now - 5, bucket_start=now)
    return {
        "next_slot an hour ahead": replace(learned, next_slot=now + 3600),
        "next_slot 1e15": replace(learned, next_slot=1e15),
        "since an hour ahead": replace(learned, since=now + 3600, last_throttle=now + 3600),
        "rate 1e-300 in slow start": RateState(rate=1e-300, bucket_start=now),
        "w_max 1e-300": replace(learned, w_max=1e-300),
        "w_max -5": replace(learned, w_max=-5.0),
        "bucket_start ahead": replace(learned, bucket_start=now + 99),
    }


@pytest.mark.parametrize("case", list(_absurd(0.0)))
def test_an_absurd_state_gives_a_normal_call_and_is_rewritten_sane(tmp_path, caplog, case):
    path = tmp_path / "conn.rate"
    _write(path, _absurd(host_clock())[case])
    limiter = RateLimiter(None, FileRateState(path))

    async def calls() -> None:
        for _ in range(REQUESTS):
            await limiter.acquire(lambda _seconds: None)
            limiter.succeeded()

    started = time.monotonic()
    asyncio.run(asyncio.wait_for(calls(), timeout=60))  # a guard against a hang, not a timing check
    took = time.monotonic() - started
    kept = FileRateState.unpack(path.read_bytes())
    assert sanitize(replace(kept), host_clock()) == [], kept  # what is left for the next task is sane
    assert kept.next_slot <= host_clock() + MAX_HOLD_S
    warnings = [r for r in caplog.records if "rate state had" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert took < REQUESTS * (1 / MIN_RATE), took  # never one request per 20 s


def test_w_max_negative_no_longer_fails_with_a_type_error():
    now = host_clock()
    state = RateState(slow_start=False, w_max=-5.0, since=now)
    assert "w_max -5" in sanitize(state, now)
    assert state.w_max == MIN_RATE


def test_a_backwards_wall_clock_step_after_a_429_does_not_throttle(tmp_path, monkeypatch):
    """All stamps are host_clock(): setting the wall clock back an hour after a 429 changes nothing."""
    limiter = RateLimiter(None, FileRateState(tmp_path / "conn.rate"))
    limiter.throttled(None)
    before = limiter.rate()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    assert limiter.rate() >= before > MIN_RATE
    assert limiter.held_for() <= 2.0 / before


class _Variables:
    def __init__(self, text: str) -> None:
        self.text: str | None = text

    def get(self, name: str) -> str | None:
        return self.text

    def set(self, name: str, value: str, description: str) -> None:
        self.text = value

    def delete(self, name: str) -> None:
        self.text = None


def test_a_deployment_record_from_the_future_is_clamped(tmp_path):
    wall = time.time()
    import json

    record = {"v": 1, "members": {"other": wall + 3600}, "learned": [1e-300, wall + 3600]}
    variables = _Variables(json.dumps(record))
    state = DeploymentRateState("budget", FileRateState(tmp_path / "c.rate"), "me", variables, period=3600)
    state.sync()
    written = json.loads(variables.text or "{}")
    assert written["learned"][0] == MIN_RATE and written["learned"][1] <= time.time()
    assert max(written["members"].values()) <= time.time()
    ceiling = state.ceiling(None, host_clock())
    assert ceiling is not None and ceiling >= MIN_RATE / 2


@pytest.mark.parametrize(
    ("expires_at", "refresh_at", "usable"),
    [
        (3600.0, 3480.0, True),
        (1e15, 1e15 - 120, False),  # absurd: exchanged afresh, not trusted until a 401
        (3600.0, 7200.0, False),  # refresh after expiry: not something this code writes
        (31 * 86400.0, 31 * 86400.0 - 120, False),  # a wall clock set back a month
    ],
)
def test_a_cached_token_with_absurd_stamps_is_not_used(expires_at, refresh_at, usable):
    from airflow_provider_eshopbox.hooks.token_cache import CachedToken

    now = time.time()
    assert CachedToken("t", now + expires_at, now + refresh_at).usable(now) is usable
    assert CachedToken.from_lifetime("t", 1e12, now).usable(now)  # a server's huge expires_in is capped


def _hold(seconds: float) -> None:
    """Leave the default connection's host-wide rate state holding every request for ``seconds``."""
    import hashlib

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.hooks.token_cache import default_cache_dir

    digest = hashlib.sha256(EshopboxHook().get_config().cache_key.encode()).hexdigest()[:40]
    now = host_clock()
    default_cache_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(default_cache_dir() / f"{digest}.rate", RateState(next_slot=now + seconds, bucket_start=now))


def _orders(attempts: int) -> Any:
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks._http import RetryPolicy
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    hook = EshopboxHook(retry_policy=RetryPolicy(max_attempts=attempts, backoff_base=0.2, backoff_max=0.2))
    return asyncio.wait_for(hook.afetch_orders_page(api.orders_window_filter(0, 1)), timeout=60)  # hang guard


def test_a_limiter_hold_past_the_attempt_deadline_fails_the_attempt_and_is_retried(live, monkeypatch, caplog):
    """A legal but long hold (30 s, under MAX_HOLD_S) with a 0.2 s timeout: each attempt's deadline
    (3 x 0.2 s) ends the wait, the attempt counts as failed and unsent, and the call gives up bounded."""
    from airflow_provider_eshopbox.exceptions import EshopboxApiError

    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(timeout=0.2))
    _hold(30.0)
    with pytest.raises(EshopboxApiError) as info:
        asyncio.run(_orders(attempts=3))
    message = str(info.value)
    assert "not sent: the client-side rate limit held it back past the attempt's 0.6 s" in message, message
    assert "gave up after 3 attempts" in message and "token" in message, message
    assert live.exchanges() == 0  # nothing reached the server
    (told,) = [r.getMessage() for r in caplog.records if "requests waiting" in r.getMessage()]
    assert told.startswith("Eshopbox requests waiting 30 s (")  # said once, not per attempt


def test_a_limiter_hold_shorter_than_two_attempts_ends_in_a_normal_call(live, monkeypatch):
    """A 1 s hold with a 0.6 s attempt deadline: the first attempt times out unsent, the retry waits
    out the rest of the hold and goes through (the normal retry path, not a failure of the call).
    The token is minted first under a roomy timeout: the server's 0.2 s token latency against a
    0.2 s timeout would otherwise make a second exchange now and then, which is not what this tests."""
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(timeout=5))
    assert asyncio.run(_orders(attempts=1)) is not None
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(timeout=0.2))
    _hold(1.0)
    page = asyncio.run(_orders(attempts=5))
    assert live.exchanges() == 1 and page is not None
