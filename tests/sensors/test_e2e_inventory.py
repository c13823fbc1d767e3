"""EshopboxInventorySensor against the sandbox over real HTTP, driven step by step.

dag.test() needs the DAG in a file under DAGS_FOLDER (example_dags/) and no example DAG uses this
sensor, so here the sensor's ``execute`` runs directly; on ``TaskDeferred`` its trigger runs on an
event loop (as the triggerer would) and the event goes to ``execute_complete``.
"""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor
from airflow_provider_eshopbox.triggers.inventory import EshopboxInventoryTrigger

from .conftest import route_count, when

SKU = "TSHIRT-BLU-S"  # seed=7: ESN0000001B, BLR01 sellable 10, CCU01 sellable 143


def stock(sb, sku, warehouse):
    return next(r["sellable"] for r in sb.inventory_rows() if r["sku"] == sku and r["warehouse"] == warehouse)


async def first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


def run_sensor(sensor):
    """execute(); if it defers, run the trigger to its first event and resume with execute_complete."""
    try:
        return sensor.execute({})
    except TaskDeferred as deferred:
        assert deferred.method_name == "execute_complete"
        assert isinstance(deferred.trigger, EshopboxInventoryTrigger)
        event = asyncio.run(first_event(deferred.trigger))
        return sensor.execute_complete({}, event)


def test_deferred_inventory_sensor_completes_on_restock(sandbox):
    assert stock(sandbox, SKU, "BLR01") == 10
    base = route_count(sandbox, "inventory_list")
    changer = when(
        lambda: route_count(sandbox, "inventory_list") >= base + 2,
        lambda: sandbox.set_stock(SKU, "BLR01", sellable=60),
    )
    sensor = EshopboxInventorySensor(
        task_id="s", sku=SKU, warehouse="BLR01", threshold=50, deferrable=True, poke_interval=0.1, timeout=20
    )
    result = run_sensor(sensor)
    changer.join(1)
    assert result == {
        "sku": SKU,
        "esin": None,
        "warehouse": "BLR01",
        "threshold": 50,
        "below": False,
        "sellable": 60,
    }
    assert route_count(sandbox, "inventory_list") >= 3


def test_deferred_inventory_sensor_times_out(sandbox):
    assert stock(sandbox, SKU, "BLR01") + stock(sandbox, SKU, "CCU01") == 153
    sensor = EshopboxInventorySensor(
        task_id="s",
        esin="ESN0000001B",
        threshold=5,
        below=True,
        deferrable=True,
        poke_interval=0.1,
        timeout=0.5,
    )
    with pytest.raises(AirflowSensorTimeout) as info:
        run_sensor(sensor)
    assert str(info.value).startswith(
        "Timed out waiting for Eshopbox ESIN 'ESN0000001B' to reach sellable <= 5: deadline passed "
    )


def test_poke_inventory_sensor_below_is_inclusive(sandbox):
    sensor = EshopboxInventorySensor(
        task_id="s", sku=SKU, threshold=153, below=True, deferrable=False, poke_interval=0.1, timeout=5
    )
    assert run_sensor(sensor)["sellable"] == 153  # total over BLR01 + CCU01
    assert route_count(sandbox, "inventory_list") == 1


def test_unknown_sku_fails_fast(sandbox):
    sensor = EshopboxInventorySensor(task_id="s", sku="NO-SUCH-SKU", threshold=1, deferrable=True, timeout=30)
    with pytest.raises(AirflowFailException, match=r"^Eshopbox SKU 'NO-SUCH-SKU' does not exist\.$"):
        run_sensor(sensor)
    assert route_count(sandbox, "inventory_list") == 0
