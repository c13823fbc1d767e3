"""WMS routes: get, create (validation, duplicate, rows appear), cancel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _order(con: str, **over: Any) -> dict[str, Any]:
    address = {
        "customerName": "Asha Rao",
        "addressLine1": "12 MG Road",
        "city": "Pune",
        "state": "Maharashtra",
        "postalCode": "411001",
        "countryCode": "IN",
        "contactPhone": "9000000001",
        "email": "asha@example.com",
    }
    body: dict[str, Any] = {
        "externalChannelID": "CH0001",
        "customerOrderNumber": con,
        "isCOD": "0",
        "paymentType": "Prepaid",
        "taxAmount": 0,
        "subtotal": 1998,
        "orderTotal": 1998,
        "balanceDue": 0,
        "thirdPartyShipping": False,
        "shippingAddress": address,
        "billingAddress": address,
        "items": [
            {"lineItemSequenceNumber": 1, "itemID": "VAR-1", "sku": "TSHIRT-BLU-S", "quantity": 1,
             "customerPrice": 999, "productName": "Blue Tee S"},
            {"lineItemSequenceNumber": 2, "itemID": "VAR-2", "sku": "MUG-BLU-S", "quantity": 1,
             "customerPrice": 999},
        ],
    }  # fmt: skip
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


ORDER_KEYS = {
    "id", "externalChannelID", "customerOrderNumber", "vendorOrderNumber", "shipMethod", "orderDate",
    "expectedShipDate", "promiseDeliveryDate", "isCOD", "paymentType", "taxAmount", "shipChargeAmount",
    "subtotal", "orderTotal", "balanceDue", "thirdPartyShipping", "onHold", "created_at", "updated_at",
    "shippingAddress", "billingAddress", "items",
}  # fmt: skip
ITEM_KEYS = {
    "lineItemSequenceNumber", "orderItemID", "itemID", "sku", "productName", "quantity", "customerPrice",
    "discount", "lineItemTotal", "taxRate", "taxAmount", "cancellationReason", "cancellationTime",
    "productUrl", "productImageUrl",
}  # fmt: skip


def test_get_seeded_order(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    r = client.get(sb.wms_url + "/api/order/SHOP-100003", headers=_auth(token))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ORDER_KEYS
    assert body["customerOrderNumber"] == "SHOP-100003"
    rows = [row for row in sb.store.rows.values() if row["customerOrderNumber"] == "SHOP-100003"]
    assert [i["orderItemID"] for i in body["items"]] == [row["orderItemID"] for row in rows]
    assert all(set(i) == ITEM_KEYS for i in body["items"])
    assert body["shippingAddress"]["city"] == rows[0]["customerDetails"]["shippingCity"]
    assert body["isCOD"] in ("0", "1") and len(body["updated_at"]) == 19
    assert sb.order("SHOP-100003") == body


def test_get_unknown_order(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    r = client.get(sb.wms_url + "/api/order/NOPE-1", headers=_auth(token))
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})


def test_create_get_and_rows_appear(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    before = sb.clock.now_ms()
    r = client.post(sb.wms_url + "/api/order", json=_order("NEW-1"), headers=_auth(token))
    assert r.status_code == 200, r.text
    created = r.json()
    assert set(created) == ORDER_KEYS
    assert created["customerOrderNumber"] == "NEW-1"
    assert [i["sku"] for i in created["items"]] == ["TSHIRT-BLU-S", "MUG-BLU-S"]
    assert client.get(sb.wms_url + "/api/order/NEW-1", headers=_auth(token)).json() == created
    new_ids = {i["orderItemID"] for i in created["items"]}
    assert new_ids <= sb.truth_order_item_ids(before, None)
    hits = client.get(
        sb.api_url + "/api/v1/orders/erp",
        params={"filters": f"updatedAt >= {before} AND customerOrderNumber:NEW-1"},
        headers={**_auth(token), "ProxyHost": "acme"},
    ).json()["hits"]
    assert {h["orderItemID"] for h in hits} == new_ids
    assert {h["orderStatus"] for h in hits} == {"new"}
    assert sb.orders_created() == {"NEW-1": 1}


def test_duplicate_is_422(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    assert (
        client.post(sb.wms_url + "/api/order", json=_order("DUP-1"), headers=_auth(token)).status_code == 200
    )
    r = client.post(sb.wms_url + "/api/order", json=_order("DUP-1"), headers=_auth(token))
    assert (r.status_code, r.json()) == (
        422,
        {"customerOrderNumber": ["The customerOrderNumber has already been taken."]},
    )
    seeded = client.post(sb.wms_url + "/api/order", json=_order("SHOP-100000"), headers=_auth(token))
    assert seeded.status_code == 422
    assert sb.orders_created()["DUP-1"] == 1 and "SHOP-100000" not in sb.orders_created()


def test_missing_fields_422(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    body = _order("MISS-1", isCOD=None, items=[], balanceDue=None)
    body["shippingAddress"] = {"customerName": "A"}
    r = client.post(sb.wms_url + "/api/order", json=body, headers=_auth(token))
    assert r.status_code == 422
    assert r.json() == {
        "isCOD": ["The isCOD field is required."],
        "balanceDue": ["The balanceDue field is required."],
        "items": ["The items field is required."],
        "shippingAddress.addressLine1": ["The shippingAddress.addressLine1 field is required."],
        "shippingAddress.postalCode": ["The shippingAddress.postalCode field is required."],
        "shippingAddress.contactPhone": ["The shippingAddress.contactPhone field is required."],
        "shippingAddress.email": ["The shippingAddress.email field is required."],
    }
    r = client.post(
        sb.wms_url + "/api/order", json=_order("MISS-2", items=[{"quantity": 1}]), headers=_auth(token)
    )
    assert r.json() == {"items.0.sku": ["The items.0.sku field is required."]}
    assert "MISS-1" not in sb.orders_created()


@pytest.mark.parametrize("path", ["/api/order", "/api/cancel-order"])
@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b""])
def test_non_json_body_400(
    sb: EshopboxSandbox, client: httpx.Client, token: str, path: str, content: bytes
) -> None:
    r = client.post(
        sb.wms_url + path, content=content, headers={**_auth(token), "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Request body must be a JSON object"
    assert r.json()["error"]["errors"][0]["reason"] == "badRequest"


def test_cancel(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    assert (
        client.post(sb.wms_url + "/api/order", json=_order("CXL-1"), headers=_auth(token)).status_code == 200
    )
    t0 = sb.clock.now_ms()
    body = {
        "externalChannelID": "CH0001",
        "customerOrderNumber": "CXL-1",
        "reason": "Customer request",
        "cancellationTime": "2026-11-28 10:00:00",
        "actor": "ops",
        "items": [{"lineItemSequenceNumber": 2, "itemID": "VAR-2", "quantity": 1, "remark": "customer"}],
    }
    r = client.post(sb.wms_url + "/api/cancel-order", json=body, headers=_auth(token))
    assert r.status_code == 200
    assert r.json() == {
        "status": "SUCCESS",
        "result": {
            "customerOrderNumber": "CXL-1",
            "reason": "Customer request",
            "cancellationTime": "2026-11-28 10:00:00",
            "items": [
                {"lineItemSequenceNumber": 2, "itemID": "VAR-2", "quantity": 1, "productName": "Blue Mug S",
                 "remark": "customer"}
            ],
        },
    }  # fmt: skip
    order = client.get(sb.wms_url + "/api/order/CXL-1", headers=_auth(token)).json()
    assert [i["cancellationReason"] for i in order["items"]] == [None, "Customer request"]
    rows = {
        r["lineItemSequenceNumber"]: r for r in sb.truth_order_rows() if r["customerOrderNumber"] == "CXL-1"
    }
    assert [(rows[n]["orderStatus"], rows[n]["transactionStatus"]) for n in (1, 2)] == [
        ("new", "Open"),
        ("cancelled", "Void"),
    ]
    assert rows[2]["updatedAt"] >= t0


def test_cancel_validation(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    r = client.post(sb.wms_url + "/api/cancel-order", json={"customerOrderNumber": "X"}, headers=_auth(token))
    assert (r.status_code, r.json()) == (
        422,
        {
            "externalChannelID": ["The externalChannelID field is required."],
            "reason": ["The reason field is required."],
            "items": ["The items field is required."],
        },
    )
    body = {
        "externalChannelID": "CH0001",
        "customerOrderNumber": "NOPE",
        "reason": "x",
        "items": [{"sku": "A"}],
    }
    r = client.post(sb.wms_url + "/api/cancel-order", json=body, headers=_auth(token))
    assert r.json() == {"customerOrderNumber": ["The selected customerOrderNumber is invalid."]}
    body["customerOrderNumber"] = "SHOP-100001"
    r = client.post(sb.wms_url + "/api/cancel-order", json=body, headers=_auth(token))
    assert (r.status_code, r.json()) == (422, {"items.0": ["The selected items.0 is invalid."]})
