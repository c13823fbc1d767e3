"""TLS mode: HTTPS with a throw-away CA that verifying clients accept only when told to trust it."""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from cryptography import x509

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import mint


def ssl_context_from(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def test_https_trusted_only_with_the_ca() -> None:
    with EshopboxSandbox(orders=20, seed=5, tls=True) as sb:
        assert sb.tls and sb.origin.startswith("https://127.0.0.1:")
        assert sb.api_url.startswith("https://") and sb.auth_url.startswith("https://")
        ca = sb.ca_bundle
        assert ca is not None and os.path.isfile(ca)
        with httpx.Client(verify=ssl_context_from(ca), timeout=10) as c:
            tok = mint(sb, c)
            r = c.get(sb.wms_url + "/api/order/SHOP-100000", headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 200 and r.json()["customerOrderNumber"] == "SHOP-100000"
            assert c.get(sb.origin + "/__sandbox__/info").json()["ca_bundle"] == ca
        with (
            httpx.Client(timeout=10) as c,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            c.get(sb.origin + "/__sandbox__/stats")
        with httpx.Client(timeout=10) as c, pytest.raises(httpx.HTTPError):
            c.get(sb.origin.replace("https://", "http://") + "/__sandbox__/stats")
        with open(os.path.join(os.path.dirname(ca), "server.pem"), "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(san.get_values_for_type(x509.DNSName)) == {"localhost"}
        assert set(san.get_values_for_type(x509.IPAddress)) == {
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        }
    assert not os.path.exists(ca) and not os.path.exists(os.path.dirname(ca))
    assert sb.ca_bundle is None


def test_connection_carries_ca_bundle() -> None:
    from airflow.sdk import Connection

    sb = EshopboxSandbox(orders=5, seed=21, tls=True)
    with pytest.raises(RuntimeError, match="start it first"):
        sb.connection_json()
    with sb:
        extra = json.loads(sb.connection_json())["extra"]
        assert extra["ca_bundle"] == sb.ca_bundle
        assert extra["api_url"] == f"https://127.0.0.1:{sb.port}/ws/acme"
        conn = Connection.from_uri(sb.connection_uri(), conn_id="eshopbox_default")
        assert conn.extra_dejson == extra
    plain = EshopboxSandbox(orders=5, seed=21, port=8765)
    assert "ca_bundle" not in json.loads(plain.connection_json())["extra"]


def test_cli_tls_prints_trust_hints_and_removes_ca() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_eshopbox.sandbox",
            "serve",
            "--port",
            "0",
            "--orders",
            "20",
            "--tls",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"CLI exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
            if line.startswith("READY "):
                break
        origin = lines[-1].split(" ", 1)[1]
        assert origin.startswith("https://")
        conn_line = next(x for x in lines if x.startswith("AIRFLOW_CONN_ESHOPBOX_DEFAULT="))
        ca = json.loads(shlex.split(conn_line.split("=", 1)[1])[0])["extra"]["ca_bundle"]
        assert any(f"SSL_CERT_FILE={ca}" in x for x in lines)
        with httpx.Client(verify=ssl_context_from(ca), timeout=10) as c:
            assert c.get(origin + "/__sandbox__/info").json()["tls"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert not os.path.exists(ca)
