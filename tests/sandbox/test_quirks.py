"""Quirk modes do what quirks.py says, on the wire: each is a server a guard must notice."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.quirks import QuirkConfig, parse_specs

from .conftest import ws_headers

pytestmark = pytest.mark.usefixtures("sb")


def _orders(sb: EshopboxSandbox, client: httpx.Client, token: str, **params: object) -> httpx.Response:
    return client.get(f"{sb.api_url}/api/v1/orders/erp", params=params, headers=ws_headers(token))


def _ids(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [str(h["orderItemID"]) for h in reply.json()["hits"]]


def _window(sb: EshopboxSandbox) -> tuple[int, int]:
    """Ten hours ending ten hours before the data does: rows after it, and fewer than the hit cap."""
    _, end = sb.data_window
    hi = int(end.timestamp() * 1000) - 10 * 3600 * 1000
    return hi - 10 * 3600 * 1000, hi


def _flt(lo: int, hi: int) -> str:
    return f"(updatedAt >= {lo} AND updatedAt < {hi})"


def test_quirks_parse_and_refuse_unknown_names() -> None:
    assert parse_specs(["ignore_page", "clamp_per_page=20"]) == {"ignore_page": True, "clamp_per_page": 20}
    for bad in (["nope"], ["clamp_per_page"], ["clamp_per_page=x"], ["ignore_page=3"]):
        with pytest.raises(ValueError, match="quirk"):
            parse_specs(bad)
    with pytest.raises(ValueError, match="page size >= 1"):
        QuirkConfig({"inventory_per_page_cap": 0})


def test_quirks_over_http_replace_show_and_clear(sb: EshopboxSandbox, client: httpx.Client) -> None:
    url = f"{sb.origin}/__sandbox__/quirks"
    assert client.post(url, json={"clamp_per_page": 7, "error_200": True}).json() == {
        "clamp_per_page": 7,
        "error_200": True,
    }
    assert sb.quirks.size("clamp_per_page") == 7
    refused = client.post(url, json={"ignore_everything": True})
    assert refused.status_code == 400 and "ignore_everything" in refused.text
    assert client.get(url).json() == {"clamp_per_page": 7, "error_200": True}  # unchanged by the refusal
    assert client.delete(url).json() == {}
    assert sb.quirks.snapshot() == {}


def test_ignore_page_serves_page_one(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    lo, hi = _window(sb)
    first = _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=1))
    sb.quirks.configure(ignore_page=True)
    assert _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=3)) == first


def test_clamp_per_page_pages_by_the_clamp(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    lo, hi = _window(sb)
    plain = _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=14, page=1))
    sb.quirks.configure(clamp_per_page=7)
    assert _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=14, page=1)) == plain[:7]
    assert _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=14, page=2)) == plain[7:14]
    shipments = f"{sb.wms_url}/api/order/shipment"
    listed = client.get(shipments, params={"per_page": 25}, headers=ws_headers(token))
    body = listed.json()
    assert len(body["data"]) == 7 and body["per_page"] == 25  # the echoed size is the one asked for


def test_filter_quirks_widen_or_empty(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    lo, hi = _window(sb)
    truth = sb.truth_order_item_ids(lo, hi)
    after_lo = sb.truth_order_item_ids(lo, None)
    everything = sb.truth_order_item_ids()
    assert 0 < len(truth) < len(after_lo) < 1000 < len(everything)

    def read() -> set[str]:
        r = _orders(sb, client, token, filters=_flt(lo, hi), per_page=100, page=1)
        got, page = set(_ids(r)), 1
        while r.json()["hasNext"]:
            page += 1
            r = _orders(sb, client, token, filters=_flt(lo, hi), per_page=100, page=page)
            got |= set(_ids(r))
        return got

    assert read() == truth
    sb.quirks.configure(ignore_upper_bound=True)
    assert read() == after_lo
    sb.quirks.configure(ignore_filters=True)
    unfiltered = read()
    assert len(unfiltered) == 1000 and unfiltered <= everything and not unfiltered <= after_lo
    sb.quirks.configure(bad_filter_200_empty=True)
    assert read() == set()
    unparsable = _orders(sb, client, token, filters="orderStatus:shipped OR x:y")
    assert unparsable.status_code == 200 and unparsable.json() == {"hits": [], "hasNext": False}
    sb.quirks.clear()
    assert _orders(sb, client, token, filters="orderStatus:shipped OR x:y").status_code == 400


def test_zero_indexed_pages_start_at_page_zero(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    lo, hi = _window(sb)
    plain = _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=1))
    second = _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=2))
    assert _orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=0).json() == {"hasNext": False}
    sb.quirks.configure(zero_indexed_pages=True)
    assert _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=0)) == plain
    assert _ids(_orders(sb, client, token, filters=_flt(lo, hi), per_page=10, page=1)) == second
    inv = client.get(f"{sb.api_url}/api/v2/inventoryListing", params={"page": 0}, headers=ws_headers(token))
    assert inv.status_code == 200 and len(inv.json()) == 25


def test_inventory_per_page_cap(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    url = f"{sb.api_url}/api/v2/inventoryListing"
    plain = list(client.get(url, params={"perPage": 40}, headers=ws_headers(token)).json())
    sb.quirks.configure(inventory_per_page_cap=10)
    p1 = list(client.get(url, params={"perPage": 40}, headers=ws_headers(token)).json())
    p2 = list(client.get(url, params={"perPage": 40, "page": 2}, headers=ws_headers(token)).json())
    assert p1 + p2 == plain[:20]


def test_error_200_keeps_the_body(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    bad = _orders(sb, client, token, per_page=1000)
    assert bad.status_code == 400
    sb.quirks.configure(error_200=True)
    same = _orders(sb, client, token, per_page=1000)
    assert same.status_code == 200 and same.json() == bad.json() and "error" in same.json()
    sb.faults.configure(error_rate=1.0, error_statuses=(503,))
    assert _orders(sb, client, token).status_code == 200
    assert "error" in _orders(sb, client, token).json()


def test_ignore_ids_products_and_returns(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    url = f"{sb.api_url}/product-engine/api/v1/products"
    skus = sorted(p["sku"] for p in sb.products())[:2]
    asked = client.get(url, params={"ids": ",".join(skus)}, headers=ws_headers(token)).json()["data"]
    assert sorted(r["sku"] for r in asked) == skus
    sb.quirks.configure(ignore_ids=True)
    ignored = client.get(url, params={"ids": ",".join(skus)}, headers=ws_headers(token)).json()["data"]
    assert len(ignored) == 25 and {r["sku"] for r in ignored} != set(skus)
    number = sorted(sb.truth_returns())[0]
    got = client.get(
        f"{sb.wms_url}/api/return-shipment/{number}", headers={"Authorization": f"Bearer {token}"}
    )
    assert got.status_code == 200 and got.json()["customerReturnNumber"] != number


def test_cli_takes_quirks_and_refuses_unknown_ones() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "airflow_provider_eshopbox.sandbox", "--quirk", "ignore_evrything"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "unknown quirk 'ignore_evrything'" in refused.stderr
