"""A real Airflow deployment and a headless Chromium (Playwright) for the browser tests.

Runs only under ``make test-ui`` (which sets ``ESHOPBOX_UI_TESTS=1`` and installs Chromium, Playwright
and PostgreSQL); elsewhere the whole directory is skipped. The deployment is the one of
``make test-deploy`` (``deploy_tests.deployment``): api-server, scheduler, dag-processor and triggerer,
LocalExecutor on a private PostgreSQL cluster, in a throw-away directory, no login (all users admin),
the example DAGs as its bundle and an in-process sandbox as ``eshopbox_default``. A scheduler is needed
because a backfill made in the UI must run; PostgreSQL because Airflow 3.3.2 refuses to create a
backfill on SQLite while a scheduler writes ("Backfill create is not supported on SQLite under
concurrent access"). Everything is stopped and removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from deploy_tests.deployment import Deployment

REPO = Path(__file__).resolve().parents[2]
ENABLED = os.environ.get("ESHOPBOX_UI_TESTS") == "1"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
START_DEADLINE_S = 180.0
SCREENSHOTS = REPO / "docs" / "screenshots"
EXAMPLE_DAG_IDS = sorted(p.stem for p in (REPO / "example_dags").glob("eshopbox_*.py"))


# Outside `make test-ui` the browser tests are not even collected (Playwright may not be installed).
collect_ignore_glob = [] if ENABLED else ["test_*.py"]


def chromium_path() -> str:
    """Debian's Chromium (Playwright cannot download its own browser here)."""
    configured = os.environ.get("ESHOPBOX_CHROMIUM")
    for candidate in (configured, *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no Chromium found: `apt-get install chromium` or set ESHOPBOX_CHROMIUM=/path")


@dataclass(frozen=True)
class Airflow:
    """The running deployment as the browser tests see it: its base URL, the environment of its
    components (for CLI calls against the same DB), the deployment (REST API, outputs) and the
    sandbox behind ``eshopbox_default`` (ground truth)."""

    url: str
    env: dict[str, str]
    deployment: Deployment
    sandbox: EshopboxSandbox

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "airflow", *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)


@pytest.fixture(scope="session")
def airflow_server() -> Iterator[Airflow]:
    """The deployment with every example DAG parsed; stopped and removed at the end."""
    with EshopboxSandbox(orders=2000, seed=7) as sandbox:
        deployment = Deployment(
            bundles={"eshopbox_examples": REPO / "example_dags"},
            env_extra={
                "AIRFLOW_CONN_ESHOPBOX_DEFAULT": sandbox.connection_json(),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__API__EXPOSE_CONFIG": "True",
            },
        )
        try:
            deployment.start(timeout=START_DEADLINE_S)
            deployment.wait_for_dags(EXAMPLE_DAG_IDS)
            yield Airflow(url=deployment.base_url, env=deployment.env, deployment=deployment, sandbox=sandbox)
        finally:
            if getattr(deployment, "root", None) is not None:
                deployment.stop()


def save_dialog_screenshot(page: Any, dialog: Any, name: str) -> None:
    """The whole dialog (the page grown to fit it), small: sandbox values only, secrets masked.

    The modal is measured by its own markers: its date-time pickers are popovers with role=dialog too.
    """
    height = page.evaluate(
        "() => document.querySelector('[data-scope=dialog][data-part=content]').scrollHeight"
    )
    height += 200
    page.set_viewport_size({"width": 1100, "height": max(900, int(height))})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialog.screenshot(path=str(SCREENSHOTS / name), scale="css")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, airflow_server: Airflow) -> Iterator[Any]:
    context = browser.new_context(
        base_url=airflow_server.url, viewport={"width": 1280, "height": 900}, timezone_id="UTC"
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
