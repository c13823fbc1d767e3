"""Stock snapshot every 15 minutes: one JSON Lines row per (ESIN, warehouse) of the whole catalog.

Each run writes ``inventory/dt=<day>/<mode>-<data interval end>.jsonl.gz`` (a re-run replaces it).
Trigger with ``{"mode": "changed"}`` to land only the ESINs whose stock changed in the run's data
interval (or in an explicit ``start``/``end``), e.g. to feed a channel's availability update cheaply.

A snapshot triggered by hand without a logical date (no data interval) snapshots the stock now and
is named after the moment it was triggered; ``changed`` then needs ``start`` and ``end``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.params import conn_id_param

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
INVENTORY_ASSET = Asset("eshopbox_inventory")
# The quarter-hour a scheduled snapshot closes; for a manual run without a data interval, its trigger time.
SNAPSHOT_AT = "(data_interval_end if data_interval_end is defined else dag_run.run_after)"
SNAPSHOT_STAMP = "{{ " + SNAPSHOT_AT + " | ts_nodash }}"
SNAPSHOT_DAY = "{{ " + SNAPSHOT_AT + " | ds }}"  # Hive-style partition: dt=YYYY-MM-DD

with DAG(
    dag_id="eshopbox_inventory_snapshot",
    # A cron *data interval* timetable: each run covers the previous 15 minutes, so "changed" runs
    # have a real window and the file name says which quarter-hour a snapshot closes.
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,  # a snapshot is "stock now": old quarter-hours cannot be re-read
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "mode": Param("snapshot", enum=["snapshot", "changed"], title="Full snapshot or changed only"),
        "start": Param(None, type=["null", "string"], format="date-time", title="Changed from (UTC)"),
        "end": Param(None, type=["null", "string"], format="date-time", title="Changed until (exclusive)"),
        "conn_id": conn_id_param(),
    },
    tags=["eshopbox", "example"],
) as dag:
    EshopboxInventoryToStorageOperator(
        task_id="snapshot_inventory",
        mode="{{ params.mode }}",
        start="{{ params.start or '' }}",
        end="{{ params.end or '' }}",
        destination=OUTPUT
        + "/inventory/dt="
        + SNAPSHOT_DAY
        + "/{{ params.mode }}-"
        + SNAPSHOT_STAMP
        + ".jsonl.gz",
        outlets=[INVENTORY_ASSET],
        eshopbox_conn_id="{{ params.conn_id }}",
    )
