"""Local validation of a create-order body against the documented required fields (api doc §3.3).

One place for the rules, so a bad row is rejected with a reason before it ever reaches the API.
"Required" follows the API's (Laravel) meaning: missing, null, an empty string and an empty list or
object all fail, while ``0`` and ``false`` are valid values (``taxAmount: 0``, ``isCOD: "0"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# eshopbox-api.md §3.3: the required top-level fields of POST /api/order.
REQUIRED_ORDER_FIELDS = (
    "externalChannelID",
    "customerOrderNumber",
    "isCOD",
    "paymentType",
    "taxAmount",
    "subtotal",
    "orderTotal",
    "balanceDue",
    "thirdPartyShipping",
    "shippingAddress",
    "billingAddress",
    "items",
)
# §3.3 lists "name, line1, postalCode, phone, email"; the key names are those of the §3.2 shape.
REQUIRED_SHIPPING_ADDRESS_FIELDS = ("customerName", "addressLine1", "postalCode", "contactPhone", "email")
# ASSUMPTION (§3.3 does not list item fields): every line names the ``sku`` it orders.
REQUIRED_ITEM_FIELDS = ("sku",)
# Numeric amounts of §3.3; a string that is not a number is a certain server-side rejection.
NUMERIC_ORDER_FIELDS = ("taxAmount", "subtotal", "orderTotal", "balanceDue")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def order_number(order: Any) -> str | None:
    """The order's ``customerOrderNumber`` if it is a usable (non-blank string) value, else None."""
    if not isinstance(order, Mapping):
        return None
    value = order.get("customerOrderNumber")
    return value if isinstance(value, str) and value.strip() else None


def validate_order(order: Any, *, default_external_channel_id: str | None = None) -> list[str]:
    """Every reason ``order`` would be refused by ``POST /api/order``; an empty list means valid.

    ``default_external_channel_id`` is the connection's channel, which the hook fills into orders
    that omit ``externalChannelID``.
    """
    if not isinstance(order, Mapping):
        return [f"an order must be a JSON object, got {type(order).__name__}"]
    reasons: list[str] = []
    for name in REQUIRED_ORDER_FIELDS:
        if name == "externalChannelID" and default_external_channel_id:
            continue
        if _blank(order.get(name)):
            reasons.append(f"{name} is required")
    number = order.get("customerOrderNumber")
    if not _blank(number) and not isinstance(number, str):
        reasons.append(f"customerOrderNumber must be a string, got {type(number).__name__}")
    for name in NUMERIC_ORDER_FIELDS:
        value = order.get(name)
        if not _blank(value) and not _numeric(value):
            reasons.append(f"{name} must be a number, got {value!r}")
    for name in ("shippingAddress", "billingAddress"):
        value = order.get(name)
        if not _blank(value) and not isinstance(value, Mapping):
            reasons.append(f"{name} must be an object")
    shipping = order.get("shippingAddress")
    if isinstance(shipping, Mapping) and shipping:
        for name in REQUIRED_SHIPPING_ADDRESS_FIELDS:
            if _blank(shipping.get(name)):
                reasons.append(f"shippingAddress.{name} is required")
    items = order.get("items")
    if not _blank(items) and not isinstance(items, list):
        reasons.append("items must be a list")
    elif isinstance(items, list):
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                reasons.append(f"items.{index} must be an object")
                continue
            for name in REQUIRED_ITEM_FIELDS:
                if _blank(item.get(name)):
                    reasons.append(f"items.{index}.{name} is required")
    return reasons
