"""Daily lake of typed Parquet: orders, shipments, returns, the catalogue and stock, Hive-partitioned.

Each run lands ``lake/<stream>/dt=<day>/<stream>.parquet`` (needs the ``[parquet]`` extra). Column
types come from the declared schemas (docs/STREAMS.md): instants in UTC, exact money, booleans,
structs. Read the whole lake with DuckDB (README, "Parquet and DuckDB")::

    SELECT dt, count(*) FROM read_parquet('lake/orders/*/*.parquet', hive_partitioning = true) GROUP BY dt

Products and inventory are snapshots: each day's partition holds the catalogue and the stock (one row
per ESIN and warehouse) as of that run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.operators.streams import EshopboxStreamToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")


def _lake(stream: str) -> str:
    return f"{OUTPUT}/lake/{stream}/dt={{{{ data_interval_start | ds }}}}/{stream}.parquet"


with DAG(
    dag_id="eshopbox_lake_parquet",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["eshopbox", "example", "parquet"],
) as dag:
    EshopboxOrdersToStorageOperator(task_id="orders", destination=_lake("orders"), format="parquet")
    for stream in ("shipments", "returns", "products"):
        EshopboxStreamToStorageOperator(task_id=stream, stream=stream, destination=_lake(stream))
    EshopboxInventoryToStorageOperator(task_id="inventory", destination=_lake("inventory"))
