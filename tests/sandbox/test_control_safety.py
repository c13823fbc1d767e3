"""A web page in the user's browser cannot drive or read the sandbox's control routes (issue 26, 3)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

pytestmark = pytest.mark.usefixtures("sb")


@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1.nip.io", "10.0.0.5"])
def test_foreign_host_is_refused_on_every_control_route(
    sb: EshopboxSandbox, client: httpx.Client, host: str
) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own name as Host."""
    headers = {"Host": host}
    info = client.get(sb.origin + "/__sandbox__/info", headers=headers)
    assert info.status_code == 403 and sb.client_secret not in info.text
    posted = client.post(sb.origin + "/__sandbox__/faults", json={"error_rate": 1.0}, headers=headers)
    assert posted.status_code == 403
    assert sb.faults.snapshot() == client.get(sb.origin + "/__sandbox__/faults").json()
    assert sb.faults.snapshot()["error_rate"] == 0.0


def test_loopback_names_are_served(sb: EshopboxSandbox, client: httpx.Client) -> None:
    for host in (f"127.0.0.1:{sb.port}", f"localhost:{sb.port}", "localhost"):
        assert client.get(sb.origin + "/__sandbox__/stats", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
def test_simple_cross_site_post_is_refused(
    sb: EshopboxSandbox, client: httpx.Client, kind: str | None
) -> None:
    """A form or fetch() with a "simple" content type needs no preflight; only JSON is taken."""
    headers = {"Origin": "https://evil.example"} | ({"Content-Type": kind} if kind else {})
    r = client.post(sb.origin + "/__sandbox__/faults", content=b'{"error_rate": 1.0}', headers=headers)
    assert r.status_code == 415 and "application/json" in r.text
    assert sb.faults.snapshot()["error_rate"] == 0.0
    before = sb.order("SHOP-100045")
    shipped = client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/ship", headers=headers)
    assert shipped.status_code == 415
    assert sb.order("SHOP-100045") == before


def test_non_loopback_bind_warns_and_wants_the_printed_token() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_eshopbox.sandbox", *("--host", "0.0.0.0", "--port", "0")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and not line.startswith("READY "):
            line = proc.stdout.readline()
            assert line, f"CLI exited early: {proc.stderr.read()}"
        warning = proc.stderr.readline()
        assert "not loopback" in warning and "client secret and refresh token" in warning
        token = warning.rsplit("X-Sandbox-Token: ", 1)[1].strip()
        # a token_urlsafe token began with "-" now and then, and argparse took it for an option
        assert re.fullmatch(r"sbx-ctl-[0-9a-f]{36}", token), token
        port = line.rsplit(":", 1)[1].strip()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/__sandbox__/info"
        assert httpx.get(url).status_code == 403
        assert httpx.get(url, headers={"X-Sandbox-Token": "wrong"}).status_code == 403
        assert httpx.get(url, headers={"X-Sandbox-Token": token}).json()["origin"].endswith(f":{port}")
        cli = [sys.executable, "-m", "airflow_provider_eshopbox.sandbox", "faults", "--url", base]
        denied = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert denied.returncode == 1 and "403" in denied.stderr
        allowed = subprocess.run([*cli, "--token", token], capture_output=True, text=True, timeout=60)
        assert allowed.returncode == 0, allowed.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
