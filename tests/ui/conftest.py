"""A real ``airflow api-server`` and a headless Chromium (Playwright) for the browser tests.

Runs only under ``make test-ui`` (which sets ``ESHOPBOX_UI_TESTS=1`` and installs Chromium and
Playwright); elsewhere the whole directory is skipped. The server gets a throw-away AIRFLOW_HOME on
SQLite, no login (all users admin), the example DAGs serialized, and is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ENABLED = os.environ.get("ESHOPBOX_UI_TESTS") == "1"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
START_DEADLINE_S = 120.0
SCREENSHOTS = REPO / "docs" / "screenshots"


# Outside `make test-ui` the browser tests are not even collected (Playwright may not be installed).
collect_ignore_glob = [] if ENABLED else ["test_*.py"]


def chromium_path() -> str:
    """Debian's Chromium (Playwright cannot download its own browser here)."""
    configured = os.environ.get("ESHOPBOX_CHROMIUM")
    for candidate in (configured, *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no Chromium found: `apt-get install chromium` or set ESHOPBOX_CHROMIUM=/path")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, deadline_s: float) -> None:
    """Poll the health endpoint until it answers 200, the process dies, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api-server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=2) as reply,
        ):
            if reply.status == 200:
                return
        time.sleep(0.2)  # a poll interval, not a wait for a condition: the loop checks the condition
    raise RuntimeError(f"api-server not healthy after {deadline_s:.0f} s:\n{log.read_text()[-4000:]}")


@dataclass(frozen=True)
class Airflow:
    """A running API server: its base URL, home and environment (for CLI calls against the same DB)."""

    url: str
    home: Path
    env: dict[str, str]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "airflow", *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)


def airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ESHOPBOX_DEMO"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__API__EXPOSE_CONFIG="True",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        ESHOPBOX_DEMO_OUTPUT=f"file://{home / 'out'}",
    )
    return env


@pytest.fixture(scope="session")
def airflow_server() -> Iterator[Airflow]:
    """``airflow api-server`` on a free port, DB migrated and example DAGs serialized; stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="eshopbox-ui-"))
    env = airflow_env(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env["AIRFLOW__API__BASE_URL"] = url
    server = Airflow(url=url, home=home, env=env)
    server.cli("db", "migrate")
    server.cli("dags", "reserialize")
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are stopped with it, as one process group
        )
    try:
        wait_until_healthy(f"{url}/api/v2/monitor/health", proc, log, START_DEADLINE_S)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


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
    context = browser.new_context(base_url=airflow_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
