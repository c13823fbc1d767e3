"""EshopboxInventorySensor end to end: the restock example DAG under dag.test(), deferred."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dagtest import load_example_dag, run_dag

from .conftest import route_count, when

pytestmark = pytest.mark.usefixtures("airflow_db")

SKU = "TSHIRT-BLU-S"  # seed=7: BLR01 sellable 10, CCU01 sellable 143 -> 153 in total, under 200


def load_restock_dag(**sensor_attrs: Any) -> Any:
    return load_example_dag("eshopbox_restock_alert", wait_for_stock=sensor_attrs)


def test_deferred_restock_sensor_completes_when_stock_arrives(sandbox, capfd):
    base = route_count(sandbox, "inventory_list")
    # the sensor's own first look (1) and one trigger poll (2) see 153; then 90 more arrive in BLR01
    changer = when(
        lambda: route_count(sandbox, "inventory_list") >= base + 2,
        lambda: sandbox.set_stock(SKU, "BLR01", sellable=100),
    )
    result = run_dag(load_restock_dag(poke_interval=0.1, timeout=20), capfd, run_conf={"sku": SKU})
    changer.join(1)
    assert result.task_states == {"wait_for_stock": "success", "alert": "success"}
    assert result.returns["wait_for_stock"]["sellable"] == 243
    assert result.returns["alert"] == f"{SKU} is back: 243 sellable (threshold 200)."
    assert route_count(sandbox, "inventory_list") >= base + 3


def test_deferred_restock_sensor_times_out_cleanly(sandbox, capfd):
    result = run_dag(load_restock_dag(poke_interval=0.1, timeout=1), capfd, run_conf={"sku": SKU})
    assert result.task_states == {"wait_for_stock": "failed", "alert": "upstream_failed"}
    assert "AirflowSensorTimeout" in result.log
    assert "deadline passed" in result.log
