"""Deployment-test DAG: the token exchange fails on purpose (wrong refresh token, wrong client secret,
unknown client id).

Each task reads inventory through a connection with one wrong value (``AIRFLOW_CONN_ESHOPBOX_WRONG_RT``,
``..._WRONG_SECRET``, ``..._LONG_CLIENT_ID``, set by the deployment test), so the hook's auth error
path runs in the real task runner; every task must fail, and the wrong values are secrets the leak
scan searches for too. The long client id shifts the credentials the sandbox quotes in its error
message so that the refresh token straddles the 300th character.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG

from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///nonexistent")

with DAG(dag_id="deploytest_bad_credentials", schedule=None, tags=["deploy-test"]) as dag:
    for conn_id in ("eshopbox_wrong_rt", "eshopbox_wrong_secret", "eshopbox_long_client_id"):
        EshopboxInventoryToStorageOperator(
            task_id=f"inventory_{conn_id}",
            eshopbox_conn_id=conn_id,
            destination=f"{OUTPUT}/bad-credentials/{conn_id}.jsonl.gz",
            retries=0,
        )
