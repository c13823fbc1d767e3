"""Issue 22: the inventory sensor and its trigger under every quirk mode that applies to them.

Both read one ESIN through ``get_inventory``/``aget_inventory`` (``esin=`` filter, page 1, page 0
when not found). Each case goes through the deferrable sensor's first poke and through the trigger
(its event handed to ``execute_complete``, as the triggerer would), and asserts exact stock or the
typed failure naming the ASSUMPTION, and the inventoryListing requests each took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox.exceptions import EshopboxContractError
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor
from airflow_provider_eshopbox.triggers.base import deadline_from_timeout
from airflow_provider_eshopbox.triggers.inventory import EshopboxInventoryTrigger
from tests.dagtest import default_connection

FAULT_503 = {"error_rate": 1.0, "error_statuses": (503,), "routes": ["inventory_list"]}
# mode -> (quirks, faults, "exact" or the ASSUMPTION named, inventoryListing requests per poll)
MODES: dict[str, tuple[dict[str, Any], dict[str, Any] | None, str, int]] = {
    "none": ({}, None, "exact", 1),
    "ignore_page": ({"ignore_page": True}, None, "exact", 1),
    "inventory_per_page_cap=10": ({"inventory_per_page_cap": 10}, None, "exact", 1),
    "zero_indexed_pages": ({"zero_indexed_pages": True}, None, "exact", 2),  # page 1 empty: page 0 asked
    "bad_filter_200_empty": ({"bad_filter_200_empty": True}, None, "exact", 1),
    "error_200": ({"error_200": True}, None, "exact", 1),
    "error_200+faults": ({"error_200": True}, FAULT_503, "INVENTORY_LIST", 1),
    "ignore_filters": ({"ignore_filters": True}, None, "INVENTORY_PARAM_ESIN", 1),  # esin= ignored
}


@pytest.fixture(scope="module")
def sb() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=5, products=30, seed=31) as box, default_connection(box.connection_json()):
        yield box


@pytest.fixture
def target(sb: EshopboxSandbox) -> tuple[str, int]:
    """An ESIN past the first page of 25 and its total sellable stock."""
    esin = sorted({r["esin"] for r in sb.inventory_rows()})[27]
    return esin, sum(r["sellable"] for r in sb.inventory_rows() if r["esin"] == esin)


def _inventory_requests(sb: EshopboxSandbox) -> int:
    return int(sb.stats()["by_route"].get("inventory_list", 0))


def _configure(sb: EshopboxSandbox, mode: str) -> None:
    quirks, faults, _, _ = MODES[mode]
    sb.quirks.configure(**quirks)
    if faults:
        sb.faults.configure(**faults)
    sb.reset_stats()


@pytest.mark.parametrize("mode", list(MODES))
def test_deferrable_sensor_poke_is_exact_or_typed(sb, target, mode):
    esin, sellable = target
    _configure(sb, mode)
    sensor = EshopboxInventorySensor(
        task_id="s", esin=esin, threshold=sellable, deferrable=True, poke_interval=0.1, timeout=10
    )
    expected, per_poll = MODES[mode][2:]
    try:
        if expected == "exact":
            assert sensor.execute({})["sellable"] == sellable  # done at the first poke: no deferral
        else:
            with pytest.raises(EshopboxContractError) as failed:
                sensor.execute({})
            assert isinstance(failed.value, AirflowFailException) and failed.value.assumption == expected
    finally:
        sb.quirks.clear()
        sb.faults.clear()
    assert _inventory_requests(sb) == per_poll


@pytest.mark.parametrize("mode", list(MODES))
def test_trigger_event_is_exact_or_typed(sb, target, mode):
    esin, sellable = target
    _configure(sb, mode)
    trigger = EshopboxInventoryTrigger(
        esin=esin, threshold=sellable, deadline=deadline_from_timeout(10), poll_interval=0.1,
        eshopbox_conn_id="eshopbox_default",
    )  # fmt: skip

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    try:
        event = asyncio.run(first_event())
    finally:
        sb.quirks.clear()
        sb.faults.clear()
    sensor = EshopboxInventorySensor(task_id="s", esin=esin, threshold=sellable, deferrable=True)
    expected, per_poll = MODES[mode][2:]
    if expected == "exact":
        assert event["status"] == "success" and event["sellable"] == sellable
        assert sensor.execute_complete({}, event)["sellable"] == sellable
    else:
        assert event["status"] == "error" and f"({expected})" in event["message"]
        with pytest.raises(AirflowFailException, match=rf"\({expected}\)"):
            sensor.execute_complete({}, event)
    assert _inventory_requests(sb) == per_poll  # one poll: the first decides
