"""Local validation of a create-order body against the documented required fields (api doc §3.3).

One place for the rules, so a bad row is rejected with a reason before it ever reaches the API.
"Required" follows the API's (Laravel) meaning: missing, null, an empty or whitespace-only string and
an empty list or object all fail, while ``0`` and ``false`` are valid values (``taxAmount: 0``,
``isCOD: "0"``). Numbers follow PHP's ``is_numeric`` (ASCII digits, finite).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
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


# What PHP's trim() removes: Laravel's "required" fails a string that is empty after it.
_PHP_TRIM = " \t\n\r\0\x0b"
# PHP 8 is_numeric(): optional surrounding whitespace, ASCII digits only (no "inf", "nan", "1_000", "١٢").
_PHP_NUMERIC = re.compile(
    r"[ \t\n\r\v\f]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[ \t\n\r\v\f]*", re.ASCII
)


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip(_PHP_TRIM)
    return value is None or (isinstance(value, (list, dict)) and not value)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _PHP_NUMERIC.fullmatch(value) is not None and math.isfinite(float(value))
    return False


def _json_problem(order: Mapping[str, Any]) -> str | None:
    """Why ``order`` cannot be sent as a JSON body (NaN, a non-JSON value, an unpaired surrogate), or None."""
    try:
        json.dumps(order, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        return (
            f"the order holds an unpaired UTF-16 surrogate {bad!a}, which is not text: "
            "fix the source's encoding"
        )
    except (TypeError, ValueError) as exc:
        return (
            f"the order cannot be sent as JSON ({exc}): use only strings, finite numbers, booleans, "
            "null, lists and objects"
        )
    return None


def _number_problem(number: str) -> str | None:
    """Why a customerOrderNumber string is unsafe to send (it is the key a re-run looks the order up by)."""
    if number != number.strip():
        return (
            f"customerOrderNumber {number!r} has leading or trailing whitespace: remove it in the source "
            "(Eshopbox may trim it, and the order could then not be found again by its number)"
        )
    odd = sorted({ch for ch in number if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")})
    if odd:
        return (
            f"customerOrderNumber {number!r} contains control or invisible characters "
            f"({', '.join(f'U+{ord(ch):04X}' for ch in odd)}): remove them in the source"
        )
    return None


def lookalike_key(number: str) -> str:
    """``number`` with case, Unicode compatibility forms, invisible characters and spacing folded away.

    Two numbers with the same key but different spellings ("SHOP-1", "shop-1 ") may be one order to
    Eshopbox (whose comparison of customerOrderNumber is not documented) or two.
    """
    folded = unicodedata.normalize("NFKC", number).casefold()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(visible.split())


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
    elif isinstance(number, str) and not _blank(number):
        problem = _number_problem(number)
        if problem:
            reasons.append(problem)
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
    problem = _json_problem(order)
    if problem:
        reasons.append(problem)
    return reasons
