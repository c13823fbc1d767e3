"""Ad-hoc re-sync of any time range, from the UI's trigger form (validated before the run starts)."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")

with DAG(
    dag_id="eshopbox_orders_resync",
    schedule=None,
    params={
        "start": Param(
            "2026-11-02T00:00:00+00:00", type="string", format="date-time", title="From (inclusive, UTC)"
        ),
        "end": Param(
            "2026-11-03T00:00:00+00:00", type="string", format="date-time", title="To (exclusive, UTC)"
        ),
        "destination": Param(
            OUTPUT + "/resync/orders.jsonl.gz",
            type="string",
            pattern=r"^[a-z][a-z0-9+.-]*://.+[^/]$",
            title="Destination URL",
            description="file:///..., s3://bucket/key.jsonl.gz, ... (an existing file is replaced)",
        ),
    },
    tags=["eshopbox", "example"],
) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="resync_orders",
        start="{{ params.start }}",
        end="{{ params.end }}",
        destination="{{ params.destination }}",
    )
