"""Streams under rows changing and joining mid-read, and under the fault matrix's faults.

Contract for a window that is over (operators/streams.py): every row of the window that did not
change during the read is written exactly once with its values at the start; a row that changed is
written with its values from before the change or is absent (its new updated_at is now, after the
window); nothing else. Products (a snapshot): every product that existed at the start exactly once.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.evidence.conftest import ALL_RANDOM, RequestTrigger
from tests.streams.test_streams import DAY, land

# name: (random settings, the kind that must show up, a one-shot on each of the stream's routes so
# that even a 2-request read meets the fault)
FAULTS = {
    "latency 25ms": ({"latency_ms": 25}, "latency", None),
    "429 Retry-After 1": ({"throttle_rate": 0.08, "retry_after": 1}, "throttle", 429),
    "500/502/503": ({"error_rate": 0.1, "error_statuses": (500, 502, 503)}, "error", 502),
    "dropped connection": ({"drop_rate": 0.06}, "drop", "drop"),
    "truncated JSON": ({"truncate_rate": 0.06}, "truncate", "truncate"),
    "token revoked": ({}, None, None),
    "token expired": ({}, None, None),  # the sandbox's clock jumps past the token's lifetime mid-read
    "all together": (ALL_RANDOM, None, "truncate"),
}
ROUTES = {
    "shipments": ("shipments_list", "tracking"),
    "returns": ("returns_list",),
    "products": ("products_list",),
}


def _truth(sb: Any, stream: str) -> dict[Any, dict[str, Any]]:
    if stream == "shipments":
        return {r["id"]: r for r in sb.truth_shipment_rows(*DAY)}
    if stream == "returns":
        return {r["customerReturnNumber"]: r for r in sb.truth_return_rows(*DAY)}
    return {p["esin"]: p for p in sb.products()}


def _identity(stream: str, row: dict[str, Any]) -> Any:
    return row[{"shipments": "id", "returns": "customerReturnNumber", "products": "esin"}[stream]]


@pytest.mark.parametrize("stream", ["shipments", "returns", "products"])
def test_rows_changing_and_joining_while_paging(conn, output_dir, stream):
    sb = conn
    before = _truth(sb, stream)
    sb.changes_while_paging(updates=4, inserts=3)
    result, rows = land(output_dir, stream, f"{stream}.jsonl")
    sb.changes_while_paging()
    assert result.state == "success", result.task_states
    assert sb.stats()["faults_injected"].get("stream_change", 0) >= 2  # changes happened between pages
    after = _truth(sb, stream) if stream == "products" else None
    got = {_identity(stream, r): r for r in rows}
    assert len(got) == len(rows)  # none twice
    if stream == "products":
        # every product of the start once; a changed one with old or new values; joiners may show
        assert set(before) <= set(got) <= set(after)
        for esin, product in before.items():
            assert got[esin] in (product, after[esin])
        return
    now = {
        _identity(stream, r): r
        for r in (sb.truth_shipment_rows() if stream == "shipments" else sb.truth_return_rows())
    }
    changed = {k for k, r in before.items() if now[k]["updated_at"] != r["updated_at"]}
    assert set(got) <= set(before)  # nothing from outside the window (joiners are stamped now)
    for key, row in before.items():
        if key in changed:
            if key in got:
                got_row = dict(got[key])
                got_row.pop("tracking", None)
                assert got_row == row
        else:
            assert key in got
            got_row = dict(got[key])
            got_row.pop("tracking", None)
            assert got_row == row


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("stream", ["shipments", "returns", "products"])
def test_exact_under_faults(conn, output_dir, stream, fault):
    sb = conn
    settings, kind, one_shot = FAULTS[fault]
    truth = _truth(sb, stream)
    trigger = None
    if fault in ("token revoked", "token expired", "all together"):
        kill = sb.revoke_tokens if fault != "token expired" else lambda: sb.clock.advance(sb.tokens.ttl + 1)
        if stream == "products":  # two pages: too short to kill the token in the middle without a race
            kill()
        else:
            trigger = RequestTrigger(sb, 2, kill)
    if settings:
        sb.faults.configure(**settings, seed=4321)
    if one_shot is not None:
        for route in ROUTES[stream]:
            sb.faults.script(route, ["ok", one_shot])
    try:
        result, rows = land(output_dir, stream, f"{stream}.jsonl.gz")
    finally:
        sb.faults.clear()
        fired = trigger.stop() if trigger is not None else False
    assert result.state == "success", result.task_states
    got = {_identity(stream, r): {k: v for k, v in r.items() if k != "tracking"} for r in rows}
    assert len(got) == len(rows)
    assert got == truth
    if stream == "shipments":
        assert all(r["tracking"] == sb.tracking_details(r["trackingID"]) for r in rows)
    if kind is not None:
        assert sb.stats()["faults_injected"].get(kind, 0) >= 1, sb.stats()["faults_injected"]
    if fault in ("token revoked", "token expired", "all together"):
        assert fired or trigger is None
        assert sb.stats()["by_status"].get("401", 0) >= 1  # a request met the dead token...
        assert sb.stats()["token_exchanges"] >= 1  # ...and it was replaced


@pytest.mark.parametrize("down", ["lists", "token endpoint"])
@pytest.mark.parametrize("stream", ["shipments", "returns", "products"])
def test_api_down_fails_clearly_and_writes_nothing(conn, output_dir, stream, down, capfd):
    """Beyond what retries absorb (503 on every list call, or on every token exchange once the cached
    token is revoked): a failed task, a clear error, no file."""
    sb = conn
    routes = list(ROUTES[stream]) if down == "lists" else ["token"]
    if down == "token endpoint":
        sb.revoke_tokens()
    sb.faults.configure(error_rate=1.0, error_statuses=(503,), routes=routes, seed=4321)
    try:
        result, rows = land(output_dir, stream, f"{stream}.jsonl.gz", capfd=capfd)
    finally:
        sb.faults.clear()
    assert result.state == "failed", result.task_states
    assert rows == []
    assert list((output_dir / "streams").rglob("*")) in ([], [output_dir / "streams" / stream])
    call = r"GET \S+ \(\w+\)" if down == "lists" else r"POST <token url> \(token\)"
    error = rf"EshopboxApiError: {call}: HTTP 503.*gave up after \d+ attempts"
    assert re.search(error, result.log), result.log[-2000:]
    assert sb.stats()["faults_injected"].get("error", 0) >= 1
