"""Fixtures of the scale test: three sandboxes in this process (one per connection, so each counts
its own token exchanges) and one CeleryExecutor deployment for the session."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from deploy_tests.report import SessionReport
from scale_tests.celery_deployment import CeleryDeployment

HERE = Path(__file__).resolve().parent
DAG_IDS = ["scaletest_hourly_shared", "scaletest_hourly_deployment", "scaletest_pods"]
SANDBOX_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
ORDER_ITEMS = 72_000  # 3 days: ~1,000 rows an hour, ~20 requests per hourly run
MODES = {"shared": "shared", "deployment": "deployment", "pods": "deployment"}  # token_cache per connection
SERVER_RPS = 15.0  # the sandbox's rate limit (token bucket, burst 15); no client limit is set

report = SessionReport("scale test report")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report.write(terminalreporter)


def _connection(sb: EshopboxSandbox, token_cache: str) -> str:
    conn = json.loads(sb.connection_json())
    conn["extra"]["token_cache"] = token_cache
    return json.dumps(conn)


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[dict[str, EshopboxSandbox]]:
    boxes: dict[str, EshopboxSandbox] = {}
    try:
        for name in ("shared", "deployment", "pods"):
            sb = EshopboxSandbox(
                order_items=ORDER_ITEMS if name != "pods" else 500, seed=7, start=SANDBOX_START, days=3
            )
            boxes[name] = sb.__enter__()
            if name != "pods":
                sb.faults.rate_limit(SERVER_RPS, burst=int(SERVER_RPS))
        yield boxes
    finally:
        for sb in boxes.values():
            sb.__exit__(None, None, None)


@pytest.fixture(scope="session")
def deployment(sandboxes: dict[str, EshopboxSandbox]) -> Iterator[CeleryDeployment]:
    deploy = CeleryDeployment(
        bundles={"eshopbox_scale_tests": HERE / "dags"},
        env_extra={
            f"AIRFLOW_CONN_ESHOPBOX_{name.upper()}": _connection(sb, MODES[name])
            for name, sb in sandboxes.items()
        },
    )
    try:
        deploy.start()
        deploy.wait_for_dags(DAG_IDS)
        report(
            f"deployment up in {time.monotonic() - report.started:.0f} s: "
            "CeleryExecutor (Redis), 2 workers x "
            f"{deploy.worker_concurrency} slots, each its own token-cache dir; PostgreSQL"
        )
        yield deploy
    finally:
        keep = os.environ.get("ESHOPBOX_DEPLOY_KEEP")
        killed = deploy.stop(keep=Path(keep) if keep else None) if getattr(deploy, "root", None) else []
        report(f"deployment stopped; processes that needed SIGKILL: {killed or 'none'}")
