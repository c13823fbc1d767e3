"""Fixtures for the sensor/trigger tests: a fresh sandbox per test, dag.test() of the example DAG."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import transport
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.token_cache import TokenCache

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "example_dags" / "eshopbox_wait_for_shipment.py"
DAG_ID = "eshopbox_wait_for_shipment"
SENSOR = "wait_for_shipment"
# seed=7, orders=2000 (sandbox defaults): single-item orders with a known status.
DELIVERED_ORDER = "SHOP-100001"


@dataclass
class RunResult:
    """What a dag.test() run left behind."""

    state: str
    task_states: dict[str, str]
    returns: dict[str, Any]
    failure: str  # everything the run printed (task logs, tracebacks with the error messages)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EshopboxSandbox]:
    """A fresh seed=7 sandbox per test, wired as AIRFLOW_CONN_ESHOPBOX_DEFAULT, caches cleared."""
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    TokenCache.clear_process_cache()
    EshopboxHook._rotated_refresh_tokens.clear()
    transport._limiters.clear()
    with EshopboxSandbox(seed=7) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
        yield sb
    TokenCache.clear_process_cache()


def order_with_status(sb: EshopboxSandbox, status: str) -> str:
    """A single-item order of the seed data whose item has exactly ``status`` (lower case)."""
    with sb.store.lock:
        for con, info in sb.store.orders.items():
            if len(info.item_ids) == 1 and sb.store.rows[info.item_ids[0]]["orderStatus"] == status:
                return con
    raise LookupError(status)


def route_count(sb: EshopboxSandbox, route: str) -> int:
    return int(sb.stats()["by_route"].get(route, 0))


def when(condition: Callable[[], bool], action: Callable[[], Any], limit: float = 20.0) -> threading.Thread:
    """Run ``action`` in a background thread as soon as ``condition()`` holds (polled, with a deadline)."""

    def body() -> None:
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def load_dag(**sensor_attrs: Any) -> Any:
    """Parse the example DAG file afresh and override sensor attributes (poke_interval, timeout...)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(DAG_ID)
    sensor = dag.get_task(SENSOR)
    for key, value in sensor_attrs.items():
        setattr(sensor, key, value)
    return dag


def run_dag(dag: Any, capfd: pytest.CaptureFixture[str], **test_kwargs: Any) -> RunResult:
    """dag.test() and collect states, return values and the logged text."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_run = dag.test(**test_kwargs)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        return RunResult(
            state=str(dag_run.state),
            task_states={ti.task_id: str(ti.state) for ti in tis},
            returns={x.task_id: XComModel.deserialize_value(x) for x in xcoms},
            failure="".join(capfd.readouterr()),
        )
