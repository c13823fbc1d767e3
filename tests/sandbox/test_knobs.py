"""Constructor knobs (hit_cap, per_page_max, require_filters) and the catch-all error envelope."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import mint, ws_headers


@pytest.fixture(scope="module")
def tuned() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=150, seed=5, hit_cap=120, per_page_max=50, require_filters=True) as sb:
        yield sb


def test_custom_cap_and_page_max(tuned: EshopboxSandbox) -> None:
    with httpx.Client() as c:
        h = ws_headers(mint(tuned, c))
        url = tuned.api_url + "/api/v1/orders/erp"
        assert len(tuned.store.rows) > 120
        got: list[dict] = []
        for page in range(1, 10):
            body = c.get(
                url, params={"filters": "account:acme", "per_page": 50, "page": page}, headers=h
            ).json()
            got.extend(body["hits"])
            if not body["hasNext"]:
                break
        assert (page, len(got)) == (3, 120)
        r = c.get(url, params={"filters": "account:acme", "per_page": 51}, headers=h)
        assert r.json()["error"]["message"] == "per_page must be at most 50, got 51"
        r = c.get(url, headers=h)
        assert (r.status_code, r.json()["error"]["message"]) == (400, "filters is required")


def test_unexpected_error_gives_envelope_not_traceback(
    tuned: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Boom(dict):
        def get(self, *args: object) -> None:  # type: ignore[override]
            raise RuntimeError("secret internals")

    monkeypatch.setattr(tuned.store, "products_by_sku", Boom())
    with httpx.Client() as c:
        h = ws_headers(mint(tuned, c))
        r = c.get(tuned.api_url + "/product-engine/api/v1/products/X", headers=h)
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "errors": [{"domain": "global", "reason": "backendError", "message": "Internal Server Error"}],
            "code": 500,
            "message": "Internal Server Error",
        }
    }
    assert "secret" not in r.text
