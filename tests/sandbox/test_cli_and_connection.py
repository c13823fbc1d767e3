"""CLI smoke test in a subprocess, and the Airflow connection forms (URI round trip through Airflow)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_eshopbox.sandbox",
            "--port",
            "0",
            "--orders",
            "200",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"CLI exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
            if line.startswith("READY "):
                break
        origin = lines[-1].split(" ", 1)[1]
        assert "  data      updatedAt 2026-11-01T00:00Z .. 2026-11-08T00:00Z" in "\n".join(lines)
        conn_line = next(x for x in lines if x.startswith("AIRFLOW_CONN_ESHOPBOX_DEFAULT="))
        conn = json.loads(shlex.split(conn_line.split("=", 1)[1])[0])
        assert conn["conn_type"] == "eshopbox"
        assert conn["extra"]["api_url"] == f"{origin}/ws/acme"
        assert conn["extra"]["auth_url"] == f"{origin}/auth/api/v1/generateToken"
        assert conn["extra"]["wms_url"] == f"{origin}/wms"
        token = httpx.post(
            conn["extra"]["auth_url"],
            json={
                "grant_type": "refresh_token",
                "client_id": conn["login"],
                "client_secret": conn["password"],
                "refresh_token": conn["extra"]["refresh_token"],
            },
        )
        assert token.status_code == 200
        stats = httpx.get(origin + "/__sandbox__/stats").json()
        assert stats["token_exchanges"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_connection_json_and_uri_round_trip() -> None:
    from airflow.sdk import Connection

    sb = EshopboxSandbox(orders=5, seed=21, port=8765)  # not started: URLs only need host/port
    data = json.loads(sb.connection_json())
    assert data == {
        "conn_type": "eshopbox",
        "login": sb.client_id,
        "password": sb.client_secret,
        "extra": {
            "workspace": "acme",
            "refresh_token": sb.refresh_token,
            "auth_url": "http://127.0.0.1:8765/auth/api/v1/generateToken",
            "api_url": "http://127.0.0.1:8765/ws/acme",
            "wms_url": "http://127.0.0.1:8765/wms",
        },
    }
    conn = Connection.from_uri(sb.connection_uri(), conn_id="eshopbox_default")
    assert conn.conn_type == "eshopbox"
    assert conn.login == sb.client_id
    assert conn.password == sb.client_secret
    assert conn.extra_dejson == data["extra"]


def test_a_sandbox_off_loopback_gives_a_connection_the_parser_accepts() -> None:
    """Plain http off loopback is refused unless allow_plain_http says so: a LAN sandbox's connection
    says so (its secrets are throw-away), a loopback one needs not."""
    from airflow_provider_eshopbox.connection import parse_connection

    for host, allowed in (("0.0.0.0", "true"), ("127.0.0.1", None)):
        with EshopboxSandbox(orders=5, seed=1, host=host) as sb:
            conn = json.loads(sb.connection_json())
            assert conn["extra"].get("allow_plain_http") == allowed
            config = parse_connection(
                "c", login=conn["login"], password=conn["password"], extra=conn["extra"]
            )
            assert config.api_url.startswith(f"http://{host}:")
