"""Issue 22: every quirk mode x every list reader ends in exact data or EshopboxContractError.

Readers: the whole-list reads of shipments, returns and products, and the keyed reads of products
(``ids=`` batches) and returns (the documented WMS get), each through the stream operator under
``dag.test()``. Each case asserts which of the two happened (and the ASSUMPTION the failure names),
the list requests against the read's budget (``list_budget``), and on failure an empty destination.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sync.streams import list_budget
from tests.dagtest import default_connection
from tests.streams.test_streams import land

UTC = timezone.utc
# Every row updated before the window's end: the whole list is the truth.
WINDOW = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))
ROUTES = {"shipments": "shipments_list", "returns": "returns_list", "products": "products_list"}
FAULT_503 = {"error_rate": 1.0, "error_statuses": (503,)}
FILTERS = {"ignore_filters": True, "ignore_upper_bound": True, "bad_filter_200_empty": True}

# mode -> (quirks, faults or None, {stream: "exact" or the ASSUMPTION named}). 300 orders: about 240
# shipments (3 pages of 100), 40 returns and 27 products (one page each).
LIST_MODES: dict[str, tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]] = {
    "none": ({}, None, dict.fromkeys(ROUTES, "exact")),
    # one page: page is never asked beyond 1, so a list that fits it stays exact
    "ignore_page": ({"ignore_page": True}, None, {"shipments": "LIST_PARAM_PAGE", "returns": "exact",
                                                  "products": "exact"}),
    "clamp_per_page=10": ({"clamp_per_page": 10}, None, dict.fromkeys(ROUTES, "LIST_PER_PAGE_MAX")),
    "zero_indexed_pages": ({"zero_indexed_pages": True}, None, dict.fromkeys(ROUTES, "LIST_FIRST_PAGE")),
    "error_200": ({"error_200": True}, None, dict.fromkeys(ROUTES, "exact")),
    "error_200+faults": ({"error_200": True}, FAULT_503, {s: f"{s.upper()}_LIST" for s in ROUTES}),
    # the WMS lists' updated_at with an offset: not api.WMS_TIME; products send ISO with offsets anyway
    "offset_times": ({"offset_times": True}, None, {"shipments": "WMS_TIME", "returns": "WMS_TIME",
                                                    "products": "exact"}),
    # the lists take no filter: these modes must change nothing
    "filter_quirks": (FILTERS, None, dict.fromkeys(ROUTES, "exact")),
}  # fmt: skip
# Keyed reads: 2 keys. Products: one ids= batch; returns: one get each (not paged).
KEYED_MODES: dict[str, tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]] = {
    "none": ({}, None, {"products": "exact", "returns": "exact"}),
    "ignore_ids": (
        {"ignore_ids": True},
        None,
        {"products": "PRODUCTS_IDS_MAX", "returns": "RETURN_NUMBER_FIELD"},
    ),
    "clamp_per_page=1": ({"clamp_per_page": 1}, None, {"products": "LIST_PER_PAGE_MAX", "returns": "exact"}),
    "zero_indexed_pages": (
        {"zero_indexed_pages": True},
        None,
        {"products": "LIST_FIRST_PAGE", "returns": "exact"},
    ),
    "ignore_page": ({"ignore_page": True}, None, {"products": "exact", "returns": "exact"}),
    "error_200+faults": (
        {"error_200": True},
        FAULT_503,
        {"products": "PRODUCTS_LIST", "returns": "RETURN_GET"},
    ),
}
KEYED_ROUTES = {"products": "products_list", "returns": "return_get"}


@pytest.fixture(scope="module")
def sb(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=300, seed=5) as box, default_connection(box.connection_json()):
        yield box


def _run(
    sb: EshopboxSandbox, output_dir: Path, capfd: Any, stream: str, mode: tuple[Any, ...], route: str,
    **conf: Any,
) -> tuple[Any, list[dict[str, Any]], int]:  # fmt: skip
    quirks, faults, _ = mode
    sb.quirks.configure(**quirks)
    if faults:
        sb.faults.configure(**faults, routes=[route])
    sb.reset_stats()
    try:
        result, rows = land(output_dir, stream, capfd=capfd, **conf)
    finally:
        sb.quirks.clear()
        sb.faults.clear()
    return result, rows, sb.stats()["by_route"].get(route, 0)


def _failed_typed(result: Any, rows: list[dict[str, Any]], output_dir: Path, assumption: str) -> None:
    assert result.task_states == {"land": "failed"}, result.task_states
    assert "EshopboxContractError" in result.log
    assert f"({assumption})" in result.log, result.log[-3000:]
    assert not rows and not list(output_dir.rglob("*.jsonl*"))


LIST_CASES = [(m, s) for m in LIST_MODES for s in ROUTES]


@pytest.mark.parametrize(("mode", "stream"), LIST_CASES, ids=[f"{m}-{s}" for m, s in LIST_CASES])
def test_list_read_is_exact_or_fails_typed(sb, output_dir, capfd, mode, stream):
    truth = {
        "shipments": lambda: sb.truth_shipment_rows(*WINDOW),
        "returns": lambda: sb.truth_return_rows(*WINDOW),
        "products": sb.products,
    }[stream]()
    listed = {"shipments": len(sb.truth_shipments()), "returns": len(sb.truth_returns())}.get(
        stream, len(truth)
    )
    window = {} if stream == "products" else {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
    result, rows, requests = _run(sb, output_dir, capfd, stream, LIST_MODES[mode], ROUTES[stream], **window)
    pages = math.ceil(listed / api.LIST_PER_PAGE_MAX)
    assert requests <= list_budget(listed, api.LIST_PER_PAGE_MAX)
    expected = LIST_MODES[mode][2][stream]
    if expected == "exact":
        assert result.state == "success", result.log[-3000:]
        key = {"shipments": "id", "returns": "id", "products": "esin"}[stream]
        strip = (lambda r: {k: v for k, v in r.items() if k != "tracking"}) if stream == "shipments" else dict
        assert sorted(map(strip, rows), key=lambda r: r[key]) == sorted(truth, key=lambda r: r[key])
        assert (
            requests
            == pages
            == result.returns["land"]["requests"] - result.returns["land"].get("tracking_requests", 0)
        )
    else:
        _failed_typed(result, rows, output_dir, expected)
        assert requests <= pages  # a typed failure ends the read in its first pass


KEYED_CASES = [(m, s) for m in KEYED_MODES for s in KEYED_ROUTES]


@pytest.mark.parametrize(("mode", "stream"), KEYED_CASES, ids=[f"{m}-{s}" for m, s in KEYED_CASES])
def test_keyed_read_is_exact_or_fails_typed(sb, output_dir, capfd, mode, stream):
    if stream == "products":
        wanted = sorted(p["sku"] for p in sb.products())[:2]
        truth = sorted((p for p in sb.products() if p["sku"] in wanted), key=lambda p: p["esin"])
        budget = 1
    else:
        wanted = sorted(sb.truth_returns())[:2]
        truth = [sb.truth_return_got(n) for n in wanted]
        budget = len(wanted)
    result, rows, requests = _run(
        sb, output_dir, capfd, stream, KEYED_MODES[mode], KEYED_ROUTES[stream], keys=",".join(wanted)
    )
    assert requests <= budget
    expected = KEYED_MODES[mode][2][stream]
    if expected == "exact":
        assert result.state == "success", result.log[-3000:]
        assert rows == truth
        assert requests == budget
    else:
        _failed_typed(result, rows, output_dir, expected)


def test_a_list_that_never_ends_fails_at_its_budget(monkeypatch):
    """100 shipments join before every page: each page is full and its total says more. The read stops
    at the budget its first reply's total allows and names LIST_TOTAL_FIELD with the figures."""
    import asyncio

    from airflow_provider_eshopbox.exceptions import EshopboxContractError
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.sync.streams import STREAMS, read_list

    with EshopboxSandbox(orders=300, seed=6) as box:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", box.connection_json())
        first_total = len(box.truth_shipments()) + 100  # the first page is cut after 100 joined
        box.changes_while_paging(inserts=100, routes=["shipments_list"])

        async def go() -> None:
            hook = EshopboxHook()
            try:
                await read_list(hook, STREAMS["shipments"], keep=lambda r: True, max_concurrency=2)
            finally:
                await hook.aclose()

        with pytest.raises(EshopboxContractError) as failed:
            asyncio.run(go())
        budget = list_budget(first_total, api.LIST_PER_PAGE_MAX)
        assert failed.value.assumption == "LIST_TOTAL_FIELD"
        assert f"{budget} requests made" in str(failed.value) and f"budget of {budget}" in str(failed.value)
        assert box.stats()["by_route"]["shipments_list"] == budget
