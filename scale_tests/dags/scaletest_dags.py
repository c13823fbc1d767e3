"""DAGs of the CeleryExecutor scale test: the hourly orders sync on two connections (token_cache
shared / deployment), and a pod simulation whose every task starts with a fresh, empty cache dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, task

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
PODS = 12

for mode in ("shared", "deployment"):
    with DAG(
        dag_id=f"scaletest_hourly_{mode}",
        schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
        start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=4,
        tags=["eshopbox", "scale-test"],
    ):
        EshopboxOrdersToStorageOperator(
            task_id="sync_orders",
            destination=OUTPUT + f"/{mode}/" + "{{ data_interval_start | ts_nodash }}.jsonl.gz",
            eshopbox_conn_id=f"eshopbox_{mode}",
            max_concurrency=8,
        )

with DAG(dag_id="scaletest_pods", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc)):

    @task
    def pod_task(n: int) -> int:
        """Like a KubernetesExecutor pod: an empty token-cache directory of its own, one API call."""
        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

        directory = tempfile.mkdtemp(prefix=f"pod-{n}-")
        os.environ["ESHOPBOX_TOKEN_CACHE_DIR"] = directory
        try:
            ok, message = EshopboxHook(eshopbox_conn_id="eshopbox_pods").test_connection()
            if not ok:
                raise RuntimeError(message)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return n

    pod_task.expand(n=list(range(PODS)))
