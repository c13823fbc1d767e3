"""Driving sensors: ship/deliver/cancel an order and set stock, from Python, over HTTP and by CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.__main__ import main


def _statuses(sb: EshopboxSandbox, con: str) -> set[str]:
    return {r["orderStatus"] for r in sb.store.rows.values() if r["customerOrderNumber"] == con}


def _listed(sb: EshopboxSandbox, client: httpx.Client, headers: dict, con: str) -> list[dict]:
    r = client.get(
        sb.api_url + "/api/v1/orders/erp", params={"filters": f"customerOrderNumber:{con}"}, headers=headers
    )
    return list(r.json()["hits"])


def test_python_ship_deliver_cancel(sb: EshopboxSandbox) -> None:
    t0 = sb.clock.now_ms()
    ids = sb.ship_order("SHOP-100040")
    assert ids and _statuses(sb, "SHOP-100040") == {"shipped"}
    assert set(ids) <= sb.truth_order_item_ids(t0, None)
    sb.deliver_order("SHOP-100040")
    assert _statuses(sb, "SHOP-100040") == {"delivered"}
    sb.cancel_order("SHOP-100041")
    assert _statuses(sb, "SHOP-100041") == {"cancelled"}
    with pytest.raises(KeyError):
        sb.ship_order("SHOP-NOPE")


def test_http_order_actions(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    t0 = sb.clock.now_ms()
    r = client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/ship", json={})
    assert r.status_code == 200
    body = r.json()
    assert body["customerOrderNumber"] == "SHOP-100045" and body["orderStatus"] == "shipped"
    assert body["updatedAt"] >= t0
    hits = _listed(sb, client, headers, "SHOP-100045")
    assert {h["orderItemID"] for h in hits} == set(body["orderItemIDs"])
    assert {(h["orderStatus"], h["transactionStatus"], h["updatedAt"]) for h in hits} == {
        ("shipped", "Invoiced", body["updatedAt"])
    }
    assert (
        client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/deliver", json={}).json()["orderStatus"]
        == "delivered"
    )
    assert {h["orderStatus"] for h in _listed(sb, client, headers, "SHOP-100045")} == {"delivered"}
    r = client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/status", json={"status": "sidelined"})
    assert r.json()["orderStatus"] == "sidelined" and _statuses(sb, "SHOP-100045") == {"sidelined"}
    r = client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/cancel", json={})
    assert r.json()["orderStatus"] == "cancelled" and _statuses(sb, "SHOP-100045") == {"cancelled"}
    assert client.post(sb.origin + "/__sandbox__/orders/SHOP-NOPE/ship", json={}).status_code == 404
    assert client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/explode", json={}).status_code == 404
    assert client.post(sb.origin + "/__sandbox__/orders/SHOP-100045/status", json={}).status_code == 400
    assert sb.stats()["requests"] == 2  # only the two list calls count as API traffic


def test_http_set_stock(sb: EshopboxSandbox, client: httpx.Client) -> None:
    product = sb.store.products[3]
    t0 = sb.clock.now_ms() // 1000 * 1000
    r = client.post(
        sb.origin + "/__sandbox__/stock", json={"sku": product.sku, "warehouse": "DEL01", "sellable": 5}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["esin"] == product.esin and body["stock"]["sellable"] == 5 and body["updatedOn"] >= t0
    row = next(x for x in sb.inventory_rows() if x["esin"] == product.esin and x["warehouse"] == "DEL01")
    assert row["sellable"] == 5 and row["updatedOn"] == body["updatedOn"]
    assert product.esin in sb.esins_updated_between(t0, None)
    bad = {"esin": "NOPE", "warehouse": "DEL01", "sellable": 1}
    assert client.post(sb.origin + "/__sandbox__/stock", json=bad).status_code == 404
    bad = {"esin": product.esin, "warehouse": "DEL01", "bogus": 1}
    assert client.post(sb.origin + "/__sandbox__/stock", json=bad).status_code == 400
    bad = {"esin": product.esin, "warehouse": "DEL01"}
    assert client.post(sb.origin + "/__sandbox__/stock", json=bad).status_code == 400


def test_cli_control_commands(sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ship", "--url", sb.origin, "SHOP-100050", "SHOP-100051"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["customerOrderNumber"] for o in out] == ["SHOP-100050", "SHOP-100051"]
    assert _statuses(sb, "SHOP-100050") == _statuses(sb, "SHOP-100051") == {"shipped"}
    product = sb.store.products[5]
    args = ["set-stock", "--url", sb.origin, "--esin", product.esin, "--warehouse", "BLR01"]
    assert main([*args, "--sellable", "9", "--non-sellable", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["stock"]["nonSellable"] == 2
    row = next(x for x in sb.inventory_rows() if x["esin"] == product.esin and x["warehouse"] == "BLR01")
    assert (row["sellable"], row["nonSellable"]) == (9, 2)
    assert main(["cancel", "--url", sb.origin, "SHOP-NOPE"]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_cli_deliver_in_a_subprocess(sb: EshopboxSandbox) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_eshopbox.sandbox", "deliver", "SHOP-100052"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ESHOPBOX_SANDBOX_URL": sb.origin},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orderStatus"] == "delivered"
    assert _statuses(sb, "SHOP-100052") == {"delivered"}


def test_cli_control_over_tls(capsys: pytest.CaptureFixture[str]) -> None:
    with EshopboxSandbox(orders=20, seed=5, tls=True) as sb:
        assert main(["ship", "--url", sb.origin, "--ca-bundle", str(sb.ca_bundle), "SHOP-100001"]) == 0
        assert _statuses(sb, "SHOP-100001") == {"shipped"}
        assert main(["ship", "--url", sb.origin, "SHOP-100001"]) == 2  # the CA is not trusted by default
        assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err


def test_cli_faults_command(sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--url", sb.origin]
    assert (
        main(["faults", *url, "drip_bytes_per_s=5", 'drip_routes=["order_get"]', "drip_phase=headers"]) == 0
    )
    snap = json.loads(capsys.readouterr().out)
    assert (snap["drip_bytes_per_s"], snap["drip_routes"], snap["drip_phase"]) == (
        5,
        ["order_get"],
        "headers",
    )
    assert sb.faults.snapshot() == snap
    assert main(["faults", *url]) == 0 and json.loads(capsys.readouterr().out) == snap  # read only
    assert main(["faults", *url, "--clear"]) == 0
    assert json.loads(capsys.readouterr().out)["drip_bytes_per_s"] == 0
    assert main(["faults", *url, "drip_phase=sideways"]) == 1
    assert "drip_phase" in capsys.readouterr().err
