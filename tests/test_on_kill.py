"""``on_kill`` stops every operator mid-read (issue 24, 2): the task runner of Airflow 3.3 calls it
from its SIGTERM handler, in the main thread, and would otherwise let the task run on to the end.

Here a handler installed as the task runner installs its own sends the operator's ``on_kill``; the
signal comes while the (slowed) sandbox is being read. The real task runner with S3 is in tests/s3.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.exceptions import EshopboxTaskStopped
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.operators.streams import EshopboxShipmentsToStorageOperator
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection, example_dag_module

UTC = timezone.utc
WINDOW = {
    "start": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    "end": datetime(2027, 1, 1, tzinfo=UTC).isoformat(),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=400, seed=7) as sb, default_connection(sb.connection_json()):
        yield sb


def _orders(out: Path) -> Any:
    return EshopboxOrdersToStorageOperator(task_id="t", destination=f"file://{out}/o.jsonl", **WINDOW)


def _shipments(out: Path) -> Any:
    return EshopboxShipmentsToStorageOperator(task_id="t", destination=f"file://{out}/s.jsonl", **WINDOW)


def _inventory(out: Path) -> Any:
    return EshopboxInventoryToStorageOperator(task_id="t", destination=f"file://{out}/i.jsonl")


def _create(out: Path) -> Any:
    sample = example_dag_module("eshopbox_push_orders").sample_order
    orders = [sample(f"KILL-{n:04d}", "TSHIRT-BLU-S") for n in range(40)]
    return EshopboxCreateOrdersOperator(
        task_id="t", source=orders, rejects=f"file://{out}/r.jsonl", max_concurrency=1
    )


@pytest.mark.parametrize(
    ("make", "route"),
    [
        (_orders, "orders_list"),
        (_shipments, "shipments_list"),
        (_inventory, "inventory_list"),
        (_create, "order_create"),
    ],
    ids=["orders", "shipments", "inventory", "create-orders"],
)
def test_sigterm_stops_the_read_and_leaves_nothing(
    sandbox: EshopboxSandbox, tmp_path: Path, make: Callable[[Path], Any], route: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    operator = make(out)
    sandbox.faults.configure(latency_ms=100, routes=[route])
    sandbox.reset_stats()
    previous = signal.signal(signal.SIGTERM, lambda *_: operator.on_kill())  # as the task runner does

    def stop_once_reading() -> None:
        deadline = time.monotonic() + 60
        while sandbox.stats()["by_route"].get(route, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_reading)
    try:
        stopper.start()
        with pytest.raises(EshopboxTaskStopped, match="asked to stop"):
            operator.execute({})
        stopper.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.faults.clear()

    assert sandbox.stats()["by_route"][route] >= 2  # stopped mid-read, not before it
    assert sorted(p.name for p in out.iterdir()) == []  # no output, no temporary, no probe
    operator.on_kill()  # after execute: nothing to stop, no error
