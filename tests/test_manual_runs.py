"""Every example DAG triggered by hand without a logical date (no data interval), as the UI does.

Each either succeeds or fails at once with a message that says what to do, and is never retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection, load_example_dag, run_dag, task_instance

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(scope="module")
def sandbox(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    # seed=7 with the default data: the shipment DAG's default order (SHOP-100001) is delivered.
    with EshopboxSandbox(seed=7) as sb, default_connection(sb.connection_json()):
        yield sb


def _assert_failed_once_saying_what_to_do(result: Any, task_id: str) -> None:
    assert result.dag_run.data_interval_start is None, "the run must have no data interval"
    assert result.task_states[task_id] == "failed", result.task_states
    ti = task_instance(result, task_id)
    assert ti.max_tries >= 1, "the DAG configures retries: the test must show they are not used"
    assert ti.try_number == 1, f"retried: try {ti.try_number}"
    assert "has no data interval" in result.log
    assert "logical date" in result.log
    assert "eshopbox_orders_resync" in result.log
    assert "UndefinedError" not in result.log


def test_hourly_orders_fails_at_once_and_says_what_to_do(sandbox, output_dir, capfd) -> None:
    result = run_dag("eshopbox_orders_hourly", capfd, logical_date=None)
    _assert_failed_once_saying_what_to_do(result, "sync_orders")
    assert not output_dir.exists() or not any(output_dir.rglob("*.jsonl*")), "nothing may be written"


def test_inventory_snapshot_snapshots_now(sandbox, output_dir, capfd) -> None:
    result = run_dag("eshopbox_inventory_snapshot", capfd, logical_date=None)
    assert result.state == "success", result.log[-3000:]
    run_after = result.dag_run.run_after
    landed = (
        output_dir / "inventory" / f"dt={run_after:%Y-%m-%d}" / f"snapshot-{run_after:%Y%m%dT%H%M%S}.jsonl.gz"
    )
    assert landed.exists(), sorted(output_dir.rglob("*"))
    assert result.returns["snapshot_inventory"]["rows"] > 0


def test_inventory_changed_without_a_window_fails_at_once(sandbox, output_dir, capfd) -> None:
    result = run_dag("eshopbox_inventory_snapshot", capfd, logical_date=None, run_conf={"mode": "changed"})
    _assert_failed_once_saying_what_to_do(result, "snapshot_inventory")


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("eshopbox_orders_resync", None),
        ("eshopbox_push_orders", {"sample_orders": 3}),
        ("eshopbox_orders_downstream", None),
    ],
)
def test_other_example_dags_succeed(sandbox, output_dir, dag_id: str, conf: dict | None) -> None:
    result = run_dag(dag_id, logical_date=None, run_conf=conf)
    assert result.state == "success", result.task_states


def test_shipment_wait_succeeds(sandbox, output_dir) -> None:
    dag = load_example_dag("eshopbox_wait_for_shipment", wait_for_shipment={"poke_interval": 0.2})
    result = run_dag(dag, logical_date=None)
    assert result.state == "success", result.task_states
