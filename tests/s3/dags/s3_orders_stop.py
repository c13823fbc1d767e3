"""The DAG the stop tests run through Airflow's task runner: one orders sync, its arguments (JSON)
from the environment the test sets before the task runner parses this file."""

from __future__ import annotations

import json
import os

from airflow.sdk import DAG

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

with DAG(dag_id="eshopbox_s3_stop_test", schedule=None, default_args={"retries": 0}) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="sync", **json.loads(os.environ.get("ESHOPBOX_S3_TEST_ARGS", "{}"))
    )
