"""The trigger form's connection choice (issue 15): ``conn_id`` flows to every operator and sensor.

Two sandboxes with different seeds, workspaces and credentials: ``eshopbox_default`` points at one,
``eshopbox_second`` at the other. A run triggered with ``conn_id=eshopbox_second`` must land exactly
the second sandbox's data and send nothing to the first; a conn id that names no connection must fail
the first task at once (no retry, no request), saying which id and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.operators.streams import (
    EshopboxProductsToStorageOperator,
    EshopboxReturnsToStorageOperator,
    EshopboxShipmentsToStorageOperator,
    EshopboxStreamToStorageOperator,
)
from airflow_provider_eshopbox.params import CONN_ID_TITLE
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor
from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor
from tests.dagtest import EXAMPLE_DAGS, load_example_dag, run_dag, task_instance

from .operators.conftest import read_jsonl

pytestmark = pytest.mark.usefixtures("airflow_db")

SECOND = "eshopbox_second"
MISSING = "eshopbox_nope"
# Every example DAG with a trigger form (params): each must offer the connection choice.
FORM_DAGS = (
    "eshopbox_orders_resync",
    "eshopbox_streams_resync",
    "eshopbox_push_orders",
    "eshopbox_inventory_snapshot",
    "eshopbox_restock_alert",
    "eshopbox_wait_for_shipment",
)
CONN_TEMPLATE = "{{ params.conn_id }}"


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[tuple[EshopboxSandbox, EshopboxSandbox]]:
    with (
        EshopboxSandbox(seed=7) as default,
        EshopboxSandbox(seed=11, workspace="globex", order_items=3000) as second,
    ):
        yield default, second


@pytest.fixture
def two(
    sandboxes: tuple[EshopboxSandbox, EshopboxSandbox], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[EshopboxSandbox, EshopboxSandbox]:
    """Both connections set, caches empty (so each test's token exchanges are its own)."""
    default, second = sandboxes
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    TokenCache.clear_process_cache()
    EshopboxHook._rotated_refresh_tokens.clear()
    transport._limiters.clear()
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", default.connection_json())
    monkeypatch.setenv(f"AIRFLOW_CONN_{SECOND.upper()}", second.connection_json())
    monkeypatch.delenv(f"AIRFLOW_CONN_{MISSING.upper()}", raising=False)
    return default, second


def _requests(sb: EshopboxSandbox) -> int:
    return int(sb.stats()["requests"])


# ------------------------------------------------------------------------------ declarations
@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (EshopboxOrdersToStorageOperator, {"destination": "file:///tmp/x.jsonl"}),
        (EshopboxInventoryToStorageOperator, {"destination": "file:///tmp/x.jsonl"}),
        (EshopboxCreateOrdersOperator, {"source": "file:///tmp/s.jsonl", "rejects": "file:///tmp/r.jsonl"}),
        (EshopboxStreamToStorageOperator, {"stream": "products", "destination": "file:///tmp/x.jsonl"}),
        (EshopboxShipmentsToStorageOperator, {"destination": "file:///tmp/x.jsonl"}),
        (EshopboxReturnsToStorageOperator, {"destination": "file:///tmp/x.jsonl"}),
        (EshopboxProductsToStorageOperator, {"destination": "file:///tmp/x.jsonl"}),
        (EshopboxOrderStatusSensor, {"customer_order_numbers": "SHOP-1", "target_statuses": ["shipped"]}),
        (EshopboxInventorySensor, {"sku": "TSHIRT-BLU-S", "threshold": 1}),
    ],
)
def test_every_operator_and_sensor_templates_the_conn_id_and_reads_no_connection_when_defined(
    cls: type, kwargs: dict[str, Any]
) -> None:
    assert "eshopbox_conn_id" in cls.template_fields, cls.template_fields
    # A template as conn id: defining the task reads no connection and builds no hook (no connection
    # named "{{ params.conn_id }}" exists, so reading one here would raise).
    task = cls(task_id="t", eshopbox_conn_id=CONN_TEMPLATE, **kwargs)
    assert task.eshopbox_conn_id == CONN_TEMPLATE
    assert getattr(task, "_hook", None) is None


@pytest.mark.parametrize("dag_id", FORM_DAGS)
def test_every_example_dag_with_a_form_offers_the_connection_and_passes_it_to_every_task(dag_id: str) -> None:
    dag = load_example_dag(dag_id)
    param = dag.params.get_param("conn_id")
    assert param.value == "eshopbox_default"
    assert param.schema["type"] == "string"
    assert param.schema["title"] == CONN_ID_TITLE
    assert "Admin > Connections" in param.description
    eshopbox_tasks = [t for t in dag.tasks if hasattr(t, "eshopbox_conn_id")]
    assert eshopbox_tasks
    assert {t.task_id: t.eshopbox_conn_id for t in eshopbox_tasks} == {
        t.task_id: CONN_TEMPLATE for t in eshopbox_tasks
    }


def test_every_example_dag_with_params_is_covered() -> None:
    """A new example DAG with a trigger form must offer the connection choice too."""
    with_params = {path.stem for path in EXAMPLE_DAGS.glob("eshopbox_*.py") if "params=" in path.read_text()}
    assert with_params == set(FORM_DAGS)


# ------------------------------------------------------------------------ data through conn_id
def test_orders_resync_through_the_chosen_connection_lands_that_workspace_exactly(
    two: tuple[EshopboxSandbox, EshopboxSandbox], output_dir: Path
) -> None:
    default, second = two
    start, end = datetime(2026, 11, 3, tzinfo=timezone.utc), datetime(2026, 11, 3, 6, tzinfo=timezone.utc)
    truth = second.truth_order_item_ids(start, end)
    other = default.truth_order_item_ids(start, end)
    assert truth and other and truth != other, "the two workspaces must differ in this window"
    before = _requests(default)

    destination = f"file://{output_dir}/resync/second.jsonl.gz"
    conf = {"start": start.isoformat(), "end": end.isoformat(), "destination": destination, "conn_id": SECOND}
    result = run_dag("eshopbox_orders_resync", logical_date=None, run_conf=conf)

    assert result.state == "success", result.task_states
    rows = read_jsonl(output_dir / "resync" / "second.jsonl.gz")
    assert sorted(row["orderItemID"] for row in rows) == sorted(truth)
    assert result.returns["resync_orders"]["rows"] == len(truth)
    assert _requests(default) == before, "the default connection's Eshopbox was called"
    assert second.stats()["token_exchanges"] >= 1


def test_push_orders_through_the_chosen_connection_creates_them_there_only(
    two: tuple[EshopboxSandbox, EshopboxSandbox], output_dir: Path
) -> None:
    default, second = two
    before = _requests(default)
    conf = {"sample_orders": 3, "order_prefix": "CONN2", "conn_id": SECOND}
    result = run_dag("eshopbox_push_orders", logical_date=None, run_conf=conf)

    assert result.state == "success", result.task_states
    assert result.returns["push_orders"]["created"] == 3, result.returns["push_orders"]
    numbers = [f"CONN2-{i:05d}" for i in range(1, 4)]
    assert all(n in second.store.orders for n in numbers)
    assert not any(n in default.store.orders for n in numbers)
    assert _requests(default) == before


def test_products_snapshot_through_the_chosen_connection_is_that_catalogue(
    two: tuple[EshopboxSandbox, EshopboxSandbox], output_dir: Path
) -> None:
    default, second = two
    before = _requests(default)
    conf = {"stream": "products", "name": "second.jsonl", "conn_id": SECOND}
    result = run_dag("eshopbox_streams_resync", logical_date=None, run_conf=conf)

    assert result.state == "success", result.task_states
    rows = read_jsonl(output_dir / "streams" / "products" / "second.jsonl")
    prices = {p.sku: p.mrp for p in second.store.products}
    assert prices != {p.sku: p.mrp for p in default.store.products}, "the catalogues must differ"
    assert {r["sku"]: float(r["mrp"]) for r in rows} == prices
    assert _requests(default) == before


def test_shipment_sensor_watches_the_order_in_the_chosen_workspace(
    two: tuple[EshopboxSandbox, EshopboxSandbox], output_dir: Path
) -> None:
    """The order is shipped in the second workspace and cancelled in the default one: a sensor that
    asked the wrong workspace would fail (cancelled is a fail status)."""
    default, second = two
    order = next(con for con, info in second.store.orders.items() if len(info.item_ids) == 1)
    second.set_order_status(order, "shipped")
    if order in default.store.orders:
        default.set_order_status(order, "cancelled")
    dag = load_example_dag("eshopbox_wait_for_shipment", wait_for_shipment={"poke_interval": 0.2})
    result = run_dag(dag, logical_date=None, run_conf={"customer_order_number": order, "conn_id": SECOND})

    assert result.state == "success", result.task_states
    assert result.returns["notify"]["statuses"] == {order: ["shipped"]}


# ------------------------------------------------------------------------ a conn id that is missing
@pytest.mark.parametrize(
    ("dag_id", "task_id", "conf"),
    [
        ("eshopbox_orders_resync", "resync_orders", {}),
        ("eshopbox_streams_resync", "land", {"stream": "products"}),
        ("eshopbox_push_orders", "push_orders", {"sample_orders": 2}),
        ("eshopbox_inventory_snapshot", "snapshot_inventory", {}),  # retries=2 in this DAG
        ("eshopbox_restock_alert", "wait_for_stock", {}),
        ("eshopbox_wait_for_shipment", "wait_for_shipment", {}),
    ],
)
def test_a_conn_id_that_does_not_exist_fails_at_once_naming_it_and_the_fix(
    two: tuple[EshopboxSandbox, EshopboxSandbox],
    output_dir: Path,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    task_id: str,
    conf: dict[str, Any],
) -> None:
    default, second = two
    before = (_requests(default), _requests(second))
    result = run_dag(dag_id, capfd, logical_date=None, run_conf={**conf, "conn_id": MISSING})

    assert result.state == "failed"
    assert result.task_states[task_id] == "failed", result.task_states
    assert f"Eshopbox connection {MISSING!r} does not exist" in result.log, result.log[-3000:]
    assert "Admin > Connections" in result.log
    assert f"AIRFLOW_CONN_{MISSING.upper()}" in result.log
    ti = task_instance(result, task_id)
    assert ti.try_number == 1, f"retried: try {ti.try_number}"
    if dag_id == "eshopbox_inventory_snapshot":
        assert ti.max_tries >= 1, "this DAG configures retries: the test must show they are not used"
    assert (_requests(default), _requests(second)) == before, "no request may be sent"
    landed = [p for p in output_dir.rglob("*.jsonl*") if "push" not in p.parts]  # push writes its source
    assert not landed, landed


def test_the_missing_conn_error_is_a_no_retry_config_error() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_provider_eshopbox.exceptions import EshopboxConfigError
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxConnectionNotFoundError

    exc = EshopboxConnectionNotFoundError("my-conn.eu")
    assert isinstance(exc, AirflowFailException) and isinstance(exc, EshopboxConfigError)
    assert exc.conn_id == "my-conn.eu" and exc.field == "eshopbox_conn_id"
    assert "AIRFLOW_CONN_MY_CONN_EU" in str(exc)
    assert json.dumps(str(exc))  # plain text, no secrets to mask: it holds only the id
