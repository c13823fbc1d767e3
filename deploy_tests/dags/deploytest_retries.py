"""Deployment-test DAG: which errors the real task runner retries (issue 25, 4).

Every task has ``retries=2``. Three fail with errors no retry can heal (a bad argument, credentials
the token endpoint rejects, a server that breaks an api.py ASSUMPTION: the test turns on the sandbox's
``ignore_filters`` quirk) and must fail on try 1; the fourth meets five 503s in a row (the test
scripts them), exhausts the hook's own attempts, and must succeed on try 2.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///nonexistent")
WINDOW = {"start": "2026-11-03T10:00:00+00:00", "end": "2026-11-03T13:00:00+00:00"}

with DAG(
    dag_id="deploytest_retries",
    schedule=None,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["deploy-test"],
) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="config_error", destination=f"{OUTPUT}/retries/config.jsonl.gz", max_concurrency=0, **WINDOW
    )
    EshopboxInventoryToStorageOperator(
        task_id="credentials_rejected",
        eshopbox_conn_id="eshopbox_wrong_secret",
        destination=f"{OUTPUT}/retries/credentials.jsonl.gz",
    )
    EshopboxOrdersToStorageOperator(
        task_id="contract_broken", destination=f"{OUTPUT}/retries/contract.jsonl.gz", **WINDOW
    )
    EshopboxInventoryToStorageOperator(
        task_id="transient_503", destination=f"{OUTPUT}/retries/stock.jsonl.gz"
    )
