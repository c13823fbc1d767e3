"""Deployment-test DAG: plants a secret in its own task log, bypassing the masker, on purpose.

The task prints the client secret whole (the masker must hide that: the scan expects no full hit in
this log) and in two halves on separate lines (no masker can know a half: the scan must report both).
It proves, through the real task runner, that the leak scan can fail and that it counts a secret cut
in half as a leak.
"""

from __future__ import annotations

from airflow.sdk import DAG, BaseHook, task

with DAG(dag_id="deploytest_planted_leak", schedule=None, tags=["deploy-test"]) as dag:

    @task(retries=0)
    def print_secret() -> None:
        secret = BaseHook.get_connection("eshopbox_default").password
        half = len(secret) // 2
        print("whole secret (the masker must hide this):", secret)
        print("first half:", secret[:half])
        print("second half:", secret[half:])

    print_secret()
