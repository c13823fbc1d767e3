"""Fixtures for the sensor/trigger tests: a fresh sandbox per test, dag.test() of the example DAG."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import load_example_dag

DAG_ID = "eshopbox_wait_for_shipment"
SENSOR = "wait_for_shipment"
# seed=7, orders=2000 (sandbox defaults): single-item orders with a known status.
DELIVERED_ORDER = "SHOP-100001"


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
    """The shipment example DAG, parsed afresh, with sensor attributes overridden (poke_interval...)."""
    return load_example_dag(DAG_ID, **{SENSOR: sensor_attrs})
