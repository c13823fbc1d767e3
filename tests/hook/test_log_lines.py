"""What the task log says about pacing, against the sandbox (issue 25, 5): the throttle summary names
what set the pace (the client's own start-up ramp, a configured limit, a rate learned from 429s) and
reports wall time spent waiting, not a sum over concurrent requests; a long wait gets its own line."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

from .conftest import FAST

SUMMARY = re.compile(
    r"Eshopbox requests in the last \d+ s: (\d+) held back for ([\d.]+) s of wall time by (.+); "
    r"(\d+) answered 429, (\d+) retried after errors"
)


def _pages(requests: int) -> float:
    """Fetch ``requests`` order pages at once on one hook, then close it (the summary is forced)."""

    async def run() -> float:
        hook = EshopboxHook(retry_policy=FAST)
        began = time.monotonic()
        try:
            windows = [api.orders_window_filter(i, i + 1) for i in range(requests)]
            await asyncio.gather(*(hook.afetch_orders_page(w) for w in windows))
        finally:
            await hook.aclose()
        return time.monotonic() - began

    return asyncio.run(run())


def _summary(caplog: pytest.LogCaptureFixture) -> tuple[int, float, str, int, int]:
    (line,) = [m for m in (r.getMessage() for r in caplog.records) if m.startswith("Eshopbox requests in")]
    match = SUMMARY.fullmatch(line)
    assert match, line
    held, wall, why, throttled, retried = match.groups()
    return int(held), float(wall), why, int(throttled), int(retried)


def test_the_client_ramp_is_named_as_such_and_waits_are_wall_time(live, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    took = _pages(40)  # 40 at once, against a slow start of 20 requests/s
    held, wall, why, throttled, retried = _summary(caplog)
    assert held > 10 and (throttled, retried) == (0, 0)
    assert why.startswith("the client's own start-up ramp, now ") and why.endswith("no server limit met")
    assert 0 < wall <= took  # a sum over concurrent requests would be many times the elapsed time


def test_a_configured_limit_is_named(live, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(max_requests_per_second=5))
    _pages(8)
    held, _wall, why, throttled, _retried = _summary(caplog)
    # 5 starts in any second (a burst, rate_control.window_of): of 8 pages, the last 3 at least wait
    assert held >= 3 and throttled == 0 and why == "configured limit 5 requests/s"


def test_a_server_limit_is_named_and_its_long_retry_after_gets_a_line(live, monkeypatch, caplog):
    """One 429 with Retry-After 6 (longer than LONG_WAIT_S): the user is told the sync waits, and why."""
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    live.sb.faults.configure(retry_after=6)
    live.sb.faults.script("orders_list", [429])
    _pages(1)
    told = [m for m in (r.getMessage() for r in caplog.records) if "requests waiting" in m]
    assert told == [
        "Eshopbox requests waiting 6 s (server asked: Retry-After, GET api/v1/orders/erp (orders_list))"
    ], told
    _held, _wall, why, throttled, _retried = _summary(caplog)
    assert throttled == 1 and why.startswith("learned rate "), why
