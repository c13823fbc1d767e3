"""Hourly incremental orders sync: every hour lands the order-item rows updated in that hour.

Backfill a month from the UI (Trigger > Backfill) or with
``airflow backfill create --dag-id eshopbox_orders_hourly --from-date 2026-11-01 --to-date 2026-12-01``:
each run reads exactly its own data interval, and a re-run replaces its file with the same rows.

A run triggered by hand without a logical date has no data interval: it fails at once, without
retries, saying what to do (give the trigger form a logical date, or use eshopbox_orders_resync).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
ORDERS_ASSET = Asset("eshopbox_orders")
# Renders even for a run without a data interval, so the operator can fail it clearly and at once.
INTERVAL_START = "{{ data_interval_start | ts_nodash if data_interval_start is defined else 'no-interval' }}"
# Hive-style day partition (``dt=YYYY-MM-DD``): DuckDB, Spark and Athena read it as a column.
DAY = "{{ data_interval_start | ds if data_interval_start is defined else 'no-interval' }}"

with DAG(
    dag_id="eshopbox_orders_hourly",
    # A cron *data interval* timetable: runs cover [previous hour, this hour). Airflow 3's plain cron
    # schedules give zero-length intervals, which the operator rejects.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,  # history is loaded with Backfill, sized to the API's rate limit below
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["eshopbox", "example"],
) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="sync_orders",
        destination=OUTPUT + "/orders/dt=" + DAY + "/" + INTERVAL_START + ".jsonl.gz",
        lookback=timedelta(minutes=0),
        max_concurrency=8,
        outlets=[ORDERS_ASSET],
    )
