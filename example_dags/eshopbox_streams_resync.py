"""Ad-hoc landing of one stream from the trigger form: shipments, returns or the product catalogue.

Pick the stream and a UTC window (shipments, returns), or keys (return numbers, SKUs), optionally
fewer columns. The file goes to ``streams/<stream>/<name>`` under ``$ESHOPBOX_DEMO_OUTPUT``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from airflow_provider_eshopbox.operators.streams import EshopboxStreamToStorageOperator
from airflow_provider_eshopbox.params import conn_id_param

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")

with DAG(
    dag_id="eshopbox_streams_resync",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    params={
        "stream": Param("shipments", enum=["shipments", "returns", "products"], title="Stream"),
        "start": Param(None, type=["null", "string"], format="date-time", title="Updated from (UTC)"),
        "end": Param(None, type=["null", "string"], format="date-time", title="Updated until (exclusive)"),
        "keys": Param(None, type=["null", "string"], title="Return numbers or SKUs, comma-separated"),
        "fields": Param(None, type=["null", "string"], title="Columns to keep, comma-separated"),
        "name": Param(
            "latest.jsonl.gz",
            type="string",
            pattern=r"^[\w.-]+\.(jsonl(\.gz)?|parquet)$",
            title="File name (.parquet: typed Parquet, needs the [parquet] extra)",
        ),
        "conn_id": conn_id_param(),
    },
    tags=["eshopbox", "example"],
) as dag:
    EshopboxStreamToStorageOperator(
        task_id="land",
        stream="{{ params.stream }}",
        start="{{ params.start or '' }}",
        end="{{ params.end or '' }}",
        keys="{{ params['keys'] or '' }}",
        fields="{{ params.fields or '' }}",
        destination=OUTPUT + "/streams/{{ params.stream }}/{{ params.name }}",
        eshopbox_conn_id="{{ params.conn_id }}",
    )
