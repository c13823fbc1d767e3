"""Daily fulfilment mart: the day's orders, shipments (with tracking) and returns, and the catalogue.

Each run lands four files, ``mart/<stream>/dt=<day>/<stream>.jsonl.gz`` (Hive-style partitions:
``read_json('mart/orders/*/*.jsonl.gz', hive_partitioning=true)`` has a ``dt`` column), and updates one
Asset per stream; the
``eshopbox_fulfilment_summary`` DAG runs when shipments and returns have landed. A re-run of a day
rewrites its files with the same bytes (if Eshopbox has not changed since). Shipments and returns
cannot be filtered by update time, so their tasks read the whole lists (see
``EshopboxStreamToStorageOperator``); ``lookback`` picks up rows updated late.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.operators.streams import (
    EshopboxProductsToStorageOperator,
    EshopboxReturnsToStorageOperator,
    EshopboxShipmentsToStorageOperator,
)

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
DAY = "dt={{ data_interval_start | ds }}"


def _mart(stream: str) -> str:
    return f"{OUTPUT}/mart/{stream}/{DAY}/{stream}.jsonl.gz"


ORDERS = Asset("eshopbox_mart_orders")
SHIPMENTS = Asset("eshopbox_mart_shipments")
RETURNS = Asset("eshopbox_mart_returns")
PRODUCTS = Asset("eshopbox_mart_products")

with DAG(
    dag_id="eshopbox_fulfilment_mart",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["eshopbox", "example", "mart"],
) as dag:
    EshopboxOrdersToStorageOperator(task_id="orders", destination=_mart("orders"), outlets=[ORDERS])
    EshopboxShipmentsToStorageOperator(
        task_id="shipments", destination=_mart("shipments"), outlets=[SHIPMENTS]
    )
    EshopboxReturnsToStorageOperator(task_id="returns", destination=_mart("returns"), outlets=[RETURNS])
    EshopboxProductsToStorageOperator(task_id="products", destination=_mart("products"), outlets=[PRODUCTS])
