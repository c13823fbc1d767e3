"""Token endpoint, token validation (expiry, revocation, rotation), ProxyHost and workspace checks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import mint, ws_headers


def _body(sb: EshopboxSandbox, **over: str) -> dict[str, str]:
    body = {
        "grant_type": "refresh_token",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
        "refresh_token": sb.refresh_token,
    }
    body.update(over)
    return {k: v for k, v in body.items() if v != "-"}


@pytest.fixture
def small() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=30, seed=3, token_ttl=60) as sb:
        yield sb


@pytest.mark.parametrize("path", ["/auth/api/v1/generateToken", "/auth/oauth/token"])
@pytest.mark.parametrize("encoding", ["json", "form"])
def test_token_exchange(sb: EshopboxSandbox, client: httpx.Client, path: str, encoding: str) -> None:
    kwargs = {encoding if encoding == "json" else "data": _body(sb)}
    r = client.post(sb.origin + path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "id_token", "scope", "expires_in", "token_type"}
    assert body["access_token"].startswith("sbx-at-") and len(body["access_token"]) >= 50
    assert body["scope"] == "openid profile offline_access"
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert sb.stats()["token_exchanges"] == 1
    assert sb.stats()["token_requests"] == 1


def test_tokens_are_unique(sb: EshopboxSandbox, client: httpx.Client) -> None:
    assert len({mint(sb, client) for _ in range(5)}) == 5
    assert sb.auth_url == f"{sb.origin}/auth/api/v1/generateToken"


@pytest.mark.parametrize(
    ("over", "status", "error"),
    [
        ({"client_secret": "sbx-secret-wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"refresh_token": "sbx-rt-wrong"}, 401, "invalid_grant"),
        ({"client_secret": "-"}, 401, "invalid_request"),
        ({"refresh_token": "-"}, 401, "invalid_request"),
        ({"grant_type": "-"}, 401, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_errors(sb: EshopboxSandbox, client: httpx.Client, over: dict, status: int, error: str) -> None:
    r = client.post(sb.auth_url, json=_body(sb, **over))
    assert r.status_code == status
    assert set(r.json()) == {"error", "error_description"}
    assert r.json()["error"] == error
    assert sb.stats()["token_exchanges"] == 0
    assert sb.stats()["token_requests"] == 1


def test_token_garbage_body(sb: EshopboxSandbox, client: httpx.Client) -> None:
    r = client.post(sb.auth_url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_api_rejects_missing_unknown_tokens(sb: EshopboxSandbox, client: httpx.Client) -> None:
    url = sb.api_url + "/api/v1/orders/erp"
    assert client.get(url, headers={"ProxyHost": "acme"}).json() == {"message": "Unauthorized"}
    r = client.get(url, headers=ws_headers("sbx-at-forged"))
    assert (r.status_code, r.json()) == (401, {"message": "Unauthorized"})
    r = client.get(sb.wms_url + "/api/order/SHOP-100000", headers={"Authorization": "Basic abc"})
    assert (r.status_code, r.json()) == (401, {"message": "Unauthorized"})


def test_expiry_via_clock(small: EshopboxSandbox) -> None:
    with httpx.Client() as c:
        tok = mint(small, c)
        url = small.api_url + "/api/v1/orders/erp"
        assert c.get(url, headers=ws_headers(tok)).status_code == 200
        small.clock.advance(59)
        assert c.get(url, headers=ws_headers(tok)).status_code == 200
        small.clock.advance(1)
        r = c.get(url, headers=ws_headers(tok))
        assert (r.status_code, r.json()) == (401, {"message": "Expired token"})
        fresh = mint(small, c)
        assert c.get(url, headers=ws_headers(fresh)).status_code == 200


def test_revocation(small: EshopboxSandbox) -> None:
    with httpx.Client() as c:
        a, b = mint(small, c), mint(small, c)
        assert small.revoke_tokens() == 2
        for tok in (a, b):
            r = c.get(small.wms_url + "/api/order/SHOP-100000", headers={"Authorization": f"Bearer {tok}"})
            assert (r.status_code, r.json()) == (401, {"message": "Expired token"})
        fresh = mint(small, c)
        r = c.get(small.wms_url + "/api/order/SHOP-100000", headers={"Authorization": f"Bearer {fresh}"})
        assert r.status_code == 200


def test_rotation_knob() -> None:
    with EshopboxSandbox(orders=10, seed=4, rotate_refresh_token=True) as sb, httpx.Client() as c:
        first = sb.refresh_token
        body = c.post(sb.auth_url, json=_body(sb)).json()
        assert body["refresh_token"].startswith("sbx-rt-") and body["refresh_token"] != first
        assert sb.refresh_token == body["refresh_token"]
        # the previous refresh token keeps working (ASSUMPTION, documented)
        assert c.post(sb.auth_url, json=_body(sb, refresh_token=first)).status_code == 200


def test_no_rotation_by_default(sb: EshopboxSandbox, client: httpx.Client) -> None:
    assert "refresh_token" not in client.post(sb.auth_url, json=_body(sb)).json()


def test_proxyhost_and_workspace(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    url = sb.api_url + "/api/v1/orders/erp"
    r = client.get(url, headers=ws_headers(token, "other"))
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "badRequest",
                    "message": "ProxyHost header 'other' does not match workspace 'acme'",
                }
            ],
            "code": 400,
            "message": "ProxyHost header 'other' does not match workspace 'acme'",
        }
    }
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert sb.stats()["missing_proxy_host"] == 1
    r = client.get(f"{sb.origin}/ws/nope/api/v1/orders/erp", headers=ws_headers(token, "nope"))
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})
