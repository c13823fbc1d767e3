"""Fixtures of the deployment test: one sandbox and one real Airflow deployment for the session.

The sandbox runs in this process (a thread), so the test can change its state and read every token it
minted; the Airflow processes reach it over loopback HTTP through ``AIRFLOW_CONN_ESHOPBOX_DEFAULT``.
Set ``ESHOPBOX_DEPLOY_KEEP=<dir>`` to copy the deployment directory (logs, DB, outputs) there before
it is removed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from deploy_tests.deployment import Deployment
from deploy_tests.report import SessionReport

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE_DAG_IDS = sorted(p.stem for p in (REPO / "example_dags").glob("eshopbox_*.py"))
TEST_DAG_IDS = sorted(p.stem for p in (HERE / "dags").glob("deploytest_*.py"))
# Wrong credentials of the bad-credentials DAG's connections: secrets the leak scan searches for too.
WRONG_REFRESH_TOKEN = "sbx-rt-" + "0badc0de" * 5
WRONG_SECRET = "sbx-secret-" + "feedface" * 5
# A client id 20 characters longer than the sandbox's: the sandbox rejects it (invalid_client) and
# quotes the request's credentials; the longer id moves the refresh token across character 300 of
# the message, where api.error_message cuts it (real client ids need not be as short as the sandbox's).
LONG_CLIENT_ID_SUFFIX = "-tenant-eu-west-0001"

report = SessionReport("deployment test report")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report.write(terminalreporter)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Like pytest's, but removed afterwards (nothing of this suite stays in /tmp)."""
    with tempfile.TemporaryDirectory(prefix="eshopbox-deploy-unit-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[EshopboxSandbox]:
    """Refresh-token rotation on: every exchange issues a new refresh token the hook must mask too."""
    with EshopboxSandbox(orders=2000, seed=7, rotate_refresh_token=True) as sb:
        yield sb


def _connection(sb: EshopboxSandbox, **changes: str) -> str:
    conn = json.loads(sb.connection_json())
    conn["login"] = changes.get("login", conn["login"])
    conn["password"] = changes.get("password", conn["password"])
    conn["extra"]["refresh_token"] = changes.get("refresh_token", conn["extra"]["refresh_token"])
    return json.dumps(conn)


@pytest.fixture(scope="session")
def deployment(sandbox: EshopboxSandbox) -> Iterator[Deployment]:
    deploy = Deployment(
        bundles={"eshopbox_examples": REPO / "example_dags", "eshopbox_deploy_tests": HERE / "dags"},
        env_extra={
            "AIRFLOW_CONN_ESHOPBOX_DEFAULT": sandbox.connection_json(),
            "AIRFLOW_CONN_ESHOPBOX_WRONG_RT": _connection(sandbox, refresh_token=WRONG_REFRESH_TOKEN),
            "AIRFLOW_CONN_ESHOPBOX_WRONG_SECRET": _connection(sandbox, password=WRONG_SECRET),
            "AIRFLOW_CONN_ESHOPBOX_LONG_CLIENT_ID": _connection(
                sandbox, login=sandbox.client_id + LONG_CLIENT_ID_SUFFIX
            ),
        },
        pythonpath=[HERE / "local_settings"],
    )
    try:
        deploy.start()
        deploy.wait_for_dags(EXAMPLE_DAG_IDS + TEST_DAG_IDS)
        report(
            f"deployment up in {time.monotonic() - report.started:.0f} s "
            "(migrate, 4 components, DAGs parsed): "
            f"{deploy.base_url}, LocalExecutor, PostgreSQL"
        )
        yield deploy
    finally:
        keep = os.environ.get("ESHOPBOX_DEPLOY_KEEP")
        killed = deploy.stop(keep=Path(keep) if keep else None) if getattr(deploy, "root", None) else []
        report(f"deployment stopped; processes that needed SIGKILL: {killed or 'none'}")
