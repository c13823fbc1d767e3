"""Issue 22: every sandbox quirk mode x every orders reader ends in exact data or EshopboxContractError.

Readers: the slicer (the resync DAG under dag.test()), the hook's page loops (``iter_order_pages``,
``aiter_order_pages``, which the order-status trigger and sensor page with) and ``test_connection``.
Each case asserts which of the two happened, the orders requests against the read's budget, and on
failure that nothing landed at the destination.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxContractError
from airflow_provider_eshopbox.hooks._http import RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection, run_dag

from .conftest import read_jsonl

UTC = timezone.utc
FAST = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)

# (quirks, faults) -> for each window: "exact" or the ASSUMPTION the failure must name.
SMALL = (datetime(2026, 11, 3, 10, tzinfo=UTC), datetime(2026, 11, 3, 13, tzinfo=UTC))  # ~50 rows, 1 page
DEEP = (datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))  # ~430 rows, several pages
EMPTY = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))  # no rows at all

MODES: dict[str, tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]] = {
    "none": ({}, None, {"small": "exact", "deep": "exact", "empty": "exact"}),
    "ignore_page": (
        {"ignore_page": True},
        None,
        {"small": "ORDERS_PARAM_PAGE", "deep": "ORDERS_PARAM_PAGE", "empty": "exact"},
    ),
    "clamp_per_page=20": (
        {"clamp_per_page": 20},
        None,
        {"small": "ORDERS_PER_PAGE_MAX", "deep": "ORDERS_PER_PAGE_MAX", "empty": "exact"},
    ),
    "ignore_filters": (
        {"ignore_filters": True},
        None,
        {"small": "ORDERS_WINDOW_FILTER", "deep": "ORDERS_WINDOW_FILTER", "empty": "ORDERS_WINDOW_FILTER"},
    ),
    "ignore_upper_bound": (
        {"ignore_upper_bound": True},
        None,
        {"small": "ORDERS_WINDOW_FILTER", "deep": "ORDERS_WINDOW_FILTER", "empty": "ORDERS_WINDOW_FILTER"},
    ),
    "bad_filter_200_empty": (
        {"bad_filter_200_empty": True},
        None,
        {"small": "ORDERS_WINDOW_FILTER", "deep": "ORDERS_WINDOW_FILTER", "empty": "ORDERS_WINDOW_FILTER"},
    ),
    "error_200": ({"error_200": True}, None, {"small": "exact", "deep": "exact", "empty": "exact"}),
    "error_200+faults": (
        {"error_200": True},
        {"error_rate": 1.0, "error_statuses": (503,), "routes": ["orders_list"]},
        {"small": "ORDERS_LIST", "deep": "ORDERS_LIST", "empty": "ORDERS_LIST"},
    ),
    "zero_indexed_pages": (
        {"zero_indexed_pages": True},
        None,
        # An empty window: page 0 is empty too, but the cross-check's row is found on page 0 of its
        # millisecond, not page 1: pages count from 0 (test_an_empty_window_is_told_right).
        {"small": "ORDERS_FIRST_PAGE", "deep": "ORDERS_FIRST_PAGE", "empty": "ORDERS_FIRST_PAGE"},
    ),
}
WINDOWS = {"small": SMALL, "deep": DEEP, "empty": EMPTY}
CASES = [(mode, window) for mode in MODES for window in WINDOWS]


@pytest.fixture(scope="module")
def sb(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    """3,000 order-item rows over a week: about 18 an hour."""
    with EshopboxSandbox(order_items=3_000, seed=22) as box, default_connection(box.connection_json()):
        yield box


@pytest.fixture(autouse=True)
def fresh_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each case mints its own token: the page-0 check is made once per server, token and host
    (EshopboxHook.aorders_first_page_known), and a case's quirks make the sandbox another server."""
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    TokenCache.clear_process_cache()


@pytest.fixture
def quirky(sb: EshopboxSandbox, request: pytest.FixtureRequest) -> Iterator[tuple[EshopboxSandbox, str, str]]:
    mode, window = request.param
    quirks, faults, _ = MODES[mode]
    sb.quirks.configure(**quirks)
    if faults:
        sb.faults.configure(**faults)
    sb.reset_stats()
    yield sb, mode, window
    sb.quirks.clear()
    sb.faults.clear()


def _orders_requests(sb: EshopboxSandbox) -> int:
    return sb.stats()["by_route"].get("orders_list", 0)


def _slicer_budget(rows: int, workers: int = 8) -> int:
    # ReadContract.budget_floor + 8 per page of rows + 24 per worker; slices add 3 each (here a few).
    return 256 + 8 * math.ceil(rows / api.ORDERS_PER_PAGE_MAX) + 24 * workers + 3 * 40


@pytest.mark.parametrize("quirky", CASES, indirect=True, ids=[f"{m}-{w}" for m, w in CASES])
def test_slicer_is_exact_or_fails_typed(
    quirky: tuple[EshopboxSandbox, str, str], output_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sb, mode, window_name = quirky
    start, end = WINDOWS[window_name]
    truth = sb.truth_order_item_ids(start, end)
    expected = MODES[mode][2][window_name]
    # Paging quirks leave a window that fits their first page exact: the table says what a bigger one does.
    fits = {"ignore_page": api.ORDERS_PER_PAGE_MAX, "clamp_per_page=20": 20}
    if mode in fits and len(truth) <= fits[mode]:
        expected = "exact"
    destination = output_dir / "orders.jsonl"
    conf = {"start": start.isoformat(), "end": end.isoformat(), "destination": f"file://{destination}"}

    result = run_dag("eshopbox_orders_resync", capfd, run_conf=conf)

    requests = _orders_requests(sb)
    assert requests <= _slicer_budget(len(truth)), requests
    if expected == "exact":
        assert result.state == "success", result.log[-3000:]
        ids = [row["orderItemID"] for row in read_jsonl(destination)]
        assert len(ids) == len(set(ids)) and set(ids) == truth
    else:
        assert result.task_states == {"resync_orders": "failed"}
        assert "EshopboxContractError" in result.log
        assert f"({expected})" in result.log, result.log[-3000:]
        assert not destination.exists()
        assert (
            not output_dir.exists() or [p.name for p in output_dir.iterdir() if p.name.startswith(".")] == []
        )


@pytest.mark.parametrize("mode", ["none", "zero_indexed_pages"])
def test_an_empty_window_is_told_right(
    sb: EshopboxSandbox, output_dir: Path, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    """A window without rows, in a gap between rows: on a 1-based server (which answers page=0 with a
    bare ``{"hasNext": false}``, as [T2] saw) it lands empty and green; on a 0-based one the
    empty-window cross-check names ORDERS_FIRST_PAGE, not a filter the server honours."""
    stamps = sorted(api.order_row_updated_at(r) for r in sb.truth_order_rows())
    lo, hi = next((a, b) for a, b in itertools.pairwise(stamps) if b - a > 5_000)
    start_ms = (lo // 1000 + 1) * 1000
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp((start_ms + 2000) / 1000, UTC)
    assert sb.truth_order_item_ids(start, end) == set() and start_ms + 2000 < hi
    sb.quirks.configure(**MODES[mode][0])
    sb.reset_stats()
    destination = output_dir / "orders.jsonl"
    conf = {"start": start.isoformat(), "end": end.isoformat(), "destination": f"file://{destination}"}
    try:
        result = run_dag("eshopbox_orders_resync", capfd, run_conf=conf)
    finally:
        sb.quirks.clear()
    # page 1 and page 0 of the window, the unfiltered reference page, its millisecond (and page 0 of it)
    assert _orders_requests(sb) == (4 if mode == "none" else 5)
    if mode == "none":
        assert result.state == "success", result.log[-3000:]
        assert read_jsonl(destination) == []
    else:
        assert result.task_states == {"resync_orders": "failed"}
        assert "EshopboxContractError" in result.log and "(ORDERS_FIRST_PAGE)" in result.log
        assert not destination.exists()


# --- the hook's page loops (the order-status trigger and sensor page through them) ---------------
HOOK_EXPECT = {
    # One filter paged at per_page=10 over the DEEP window (~430 rows, ~43 pages).
    "none": "exact",
    "ignore_page": "ORDERS_PARAM_PAGE",
    "clamp_per_page=20": "exact",  # 20 >= 10: not a clamp for this loop
    "clamp_per_page=5": "ORDERS_PER_PAGE_MAX",
    "ignore_filters": "ORDERS_WINDOW_FILTER",  # the loop's filter bounds updatedAt: hits are judged
    "ignore_upper_bound": "ORDERS_WINDOW_FILTER",
    "error_200+faults": "ORDERS_LIST",
    "zero_indexed_pages": "ORDERS_FIRST_PAGE",  # page 0 once per hook
}


@pytest.mark.parametrize("mode", list(HOOK_EXPECT))
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_hook_page_loops_end_and_are_exact_or_typed(
    sb: EshopboxSandbox, mode: str, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    quirks, faults = ({"clamp_per_page": 5}, None) if mode == "clamp_per_page=5" else MODES[mode][:2]
    sb.quirks.configure(**quirks)
    if faults:
        sb.faults.configure(**faults)
    sb.reset_stats()
    start, end = DEEP
    truth = sb.truth_order_item_ids(start, end)
    window = api.orders_window_filter(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    hook = EshopboxHook(retry_policy=FAST)
    budget = api.orders_pages_within_cap(10) + 1
    try:
        if flavour == "sync":
            pages = list(hook.iter_order_pages(window, per_page=10))
        else:

            async def collect() -> list[Any]:
                return [p async for p in hook.aiter_order_pages(window, per_page=10)]

            pages = asyncio.run(collect())
        outcome = "exact" if {h["orderItemID"] for p in pages for h in p.hits} == truth else "inexact"
    except EshopboxContractError as exc:
        outcome = exc.assumption
    finally:
        sb.quirks.clear()
        sb.faults.clear()
        hook.close()
    assert outcome == HOOK_EXPECT[mode]
    assert _orders_requests(sb) <= budget * FAST.max_attempts


def test_hook_page_loop_takes_a_refused_page_zero_as_one_based(sb: EshopboxSandbox) -> None:
    """A 1-based server may answer page=0 with 400 instead of empty: no false alarm, the loop is exact."""
    start, end = DEEP
    truth = sb.truth_order_item_ids(start, end)
    window = api.orders_window_filter(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    sb.faults.script("orders_list", [400])  # the first orders request is the page-0 guard's
    sb.reset_stats()
    hook = EshopboxHook(retry_policy=FAST)
    try:
        pages = list(hook.iter_order_pages(window))
    finally:
        sb.faults.clear()
        hook.close()
    assert {h["orderItemID"] for p in pages for h in p.hits} == truth
    assert _orders_requests(sb) == 1 + math.ceil(len(truth) / api.ORDERS_PER_PAGE_MAX)
    assert sb.stats()["by_status"]["400"] == 1


# --- test_connection --------------------------------------------------------------------------------
CONNECTION_EXPECT = {
    "none": True,
    "ignore_filters": False,
    "ignore_upper_bound": False,
    "bad_filter_200_empty": False,
    "zero_indexed_pages": False,
    "ignore_page": True,  # paging is not what the Test button checks
}


@pytest.mark.parametrize("mode", list(CONNECTION_EXPECT))
def test_connection_checks_the_filter(sb: EshopboxSandbox, mode: str) -> None:
    sb.quirks.configure(**MODES[mode][0])
    sb.reset_stats()
    hook = EshopboxHook(retry_policy=FAST)
    try:
        ok, message = hook.test_connection()
    finally:
        sb.quirks.clear()
        hook.close()
    assert ok is CONNECTION_EXPECT[mode], message
    if not ok:
        assert "does not behave as this provider assumes" in message
        assert "ORDERS_WINDOW_FILTER" in message or "ORDERS_FIRST_PAGE" in message
    assert _orders_requests(sb) <= 4


# --- the order-status sensor (check) and trigger (acheck) page loop -----------------------------------
STATUS_EXPECT = {
    "none": "exact",
    "ignore_filters": "order_status_filter",  # rows of other orders come back
    "clamp_per_page=20": "exact",  # one order's few items fit one clamped page
    "error_200+faults": "ORDERS_LIST",
    "ignore_page": "exact",  # one order's few items fit page 1
    "zero_indexed_pages": "ORDERS_FIRST_PAGE",  # page 1 is the server's second: page 0 once per hook
    "bad_filter_200_empty": "exact",  # the status filter is understood
}


@pytest.mark.parametrize("mode", list(STATUS_EXPECT))
@pytest.mark.parametrize("flavour", ["sensor", "trigger"])
def test_order_status_page_loop_is_exact_or_typed(sb: EshopboxSandbox, mode: str, flavour: str) -> None:
    from airflow_provider_eshopbox.triggers.order_status import OrderStatusCheck, item_statuses

    row = next(iter(sb.truth_order_rows()))
    con = str(row[api.ORDER_NUMBER_FIELD])
    want = item_statuses([r for r in sb.truth_order_rows() if str(r[api.ORDER_NUMBER_FIELD]) == con], con)
    quirks, faults = MODES[mode][:2]
    sb.quirks.configure(**quirks)
    if faults:
        sb.faults.configure(**faults)
    sb.reset_stats()
    check = OrderStatusCheck([con], ["NO-SUCH-STATUS"], [])
    check.confirmed.add(con)  # existence is another endpoint's business
    hook = EshopboxHook(retry_policy=FAST)
    try:
        if flavour == "sensor":
            check.check(hook)
        else:
            asyncio.run(check.acheck(hook))
        outcome = "exact" if check.observed[con] == want else "inexact"
    except EshopboxContractError as exc:
        outcome = exc.assumption
    finally:
        sb.quirks.clear()
        sb.faults.clear()
        hook.close()
    assert outcome == STATUS_EXPECT[mode]
    budget = api.orders_pages_within_cap(api.ORDERS_PER_PAGE_MAX) + 1
    assert _orders_requests(sb) <= budget * FAST.max_attempts
