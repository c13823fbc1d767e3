"""Fixtures for the sandbox tests: one shared sandbox per module, clean faults/stats per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


def mint(sb: EshopboxSandbox, client: httpx.Client) -> str:
    """Exchange the sandbox refresh token for an access token."""
    r = client.post(
        sb.auth_url,
        json={
            "grant_type": "refresh_token",
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
            "refresh_token": sb.refresh_token,
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def ws_headers(token: str, workspace: str = "acme") -> dict[str, str]:
    """Headers for a workspace-host call."""
    return {"Authorization": f"Bearer {token}", "ProxyHost": workspace}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=2000, seed=7, token_ttl=3600) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: EshopboxSandbox) -> Iterator[EshopboxSandbox]:
    sandbox.faults.clear()
    sandbox.quirks.clear()
    sandbox.reset_stats()
    yield sandbox
    sandbox.faults.clear()
    sandbox.quirks.clear()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@pytest.fixture
def token(sb: EshopboxSandbox, client: httpx.Client) -> str:
    tok = mint(sb, client)
    sb.reset_stats()
    return tok


@pytest.fixture
def headers(token: str) -> dict[str, str]:
    return ws_headers(token)
