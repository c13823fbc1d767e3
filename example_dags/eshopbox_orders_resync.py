"""Ad-hoc re-sync of any time range, from the UI's trigger form (validated before the run starts).

Airflow checks each param's ``pattern`` when the run is created (``format`` it does not check), so a
malformed date-time or URL is refused by the form's Trigger button. A reversed range is refused by
the task, at once: bad parameters are not retried. The form's "Eshopbox connection" (``conn_id``)
chooses the connection; one that does not exist fails the task at once, saying so.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.params import conn_id_param

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
# ISO-8601 with a date and a time (what datetime.fromisoformat reads): Airflow ignores format="date-time".
ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"

with DAG(
    dag_id="eshopbox_orders_resync",
    schedule=None,
    default_args={"retries": 0},  # a wrong range or URL fails the same way every time
    params={
        "start": Param(
            "2026-11-02T00:00:00+00:00",
            type="string",
            format="date-time",
            pattern=ISO_DATE_TIME,
            title="From (inclusive, UTC)",
            description="ISO-8601 date and time, e.g. 2026-11-02T00:00:00+00:00 (no offset: UTC).",
        ),
        "end": Param(
            "2026-11-03T00:00:00+00:00",
            type="string",
            format="date-time",
            pattern=ISO_DATE_TIME,
            title="To (exclusive, UTC)",
            description="After From. ISO-8601 date and time, e.g. 2026-11-03T00:00:00+00:00.",
        ),
        "destination": Param(
            OUTPUT + "/resync/orders.jsonl.gz",
            type="string",
            pattern=r"^[a-z][a-z0-9+.-]*://.+[^/]$",
            title="Destination URL",
            description="A URL with a scheme, not ending in /: file:///tmp/eshopbox/orders.jsonl.gz, "
            "s3://bucket/key.jsonl.gz, ... (an existing file is replaced)",
        ),
        "conn_id": conn_id_param(),
    },
    tags=["eshopbox", "example"],
) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="resync_orders",
        start="{{ params.start }}",
        end="{{ params.end }}",
        destination="{{ params.destination }}",
        eshopbox_conn_id="{{ params.conn_id }}",
    )
