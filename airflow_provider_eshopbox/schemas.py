"""The declared row shape of every stream the provider lands: the columns a consumer may rely on.

One typed field list per stream (``SCHEMAS``), from the API notes (eshopbox-api.md §3-§5) and the
sandbox. Rows may carry more keys than declared (Eshopbox adds fields); a declared column may be
null where the API leaves it out. Used to validate an operator's ``fields`` choice before any
request, for the OpenLineage schema facet, and to generate ``docs/STREAMS.md``
(``python -m airflow_provider_eshopbox.schemas > docs/STREAMS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_eshopbox.exceptions import EshopboxConfigError

FieldType = Literal["string", "integer", "number", "boolean", "object", "array"]


@dataclass(frozen=True)
class Column:
    """One top-level key of a landed row."""

    name: str
    type: FieldType
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class StreamSchema:
    """A stream's columns, which of them identify a row, and what the output is ordered by."""

    stream: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # always written, even when ``fields`` leaves them out
    order: str

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def json_schema(self) -> dict[str, Any]:
        """The row shape as JSON Schema (draft 2020-12); extra keys allowed."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"eshopbox {self.stream} row",
            "type": "object",
            "required": list(self.key),
            "properties": {
                c.name: {"type": [c.type, "null"] if c.nullable else c.type, "description": c.description}
                for c in self.columns
            },
            "additionalProperties": True,
        }


def _c(name: str, type_: FieldType, description: str, nullable: bool = True) -> Column:
    return Column(name, type_, description, nullable)


_S, _I, _N, _O, _A = "string", "integer", "number", "object", "array"

SCHEMAS: dict[str, StreamSchema] = {
    s.stream: s
    for s in (
        StreamSchema(
            "orders",
            "One row per order item whose updatedAt lies in the window (§3.1), as the API sent it.",
            (
                _c("objectID", _S, "search record id", False),
                _c("account", _S, "workspace slug"),
                _c("erpDetails", _O, "ERP ids, e.g. eshopboxId"),
                _c("customerOrderNumber", _S, "channel order id"),
                _c("vendorOrderNumber", _S, "customer-facing order id"),
                _c("serialNumber", _S, "serial number"),
                _c("orderItemID", _S, "unique per order item", False),
                _c("lineItemSequenceNumber", _I, "position of the item in its order"),
                _c("orderStatus", _S, "forward status of the item (free text: compare case-insensitively)"),
                _c("returnStatus", _S, "return status of the item"),
                _c("transactionStatus", _S, "Open, Invoiced, Refunded or Void"),
                _c("inventoryItemCode", _S, "inventory code of the item"),
                _c("sku", _S, "client SKU"),
                _c("esin", _S, "Eshopbox id of the SKU"),
                _c("productName", _S, "product name"),
                _c("quantity", _I, "units"),
                _c("customerPrice", _N, "unit price paid"),
                _c("onHold", _I, "1 when the order is on hold"),
                _c("thirdPartyShipping", _S, "'1' when the channel ships it"),
                _c("customerDetails", _O, "shipping name, phone, email, city, state, postal code"),
                _c("orderDetails", _O, "isCod, orderDate, paymentType, externalChannelID, shipMethod, ..."),
                _c("updatedAt", _I, "last change, epoch milliseconds", False),
            ),
            ("objectID", "orderItemID", "updatedAt"),
            "updatedAt, orderItemID",
        ),
        StreamSchema(
            "inventory",
            "Stock per (ESIN, warehouse) (§4.1), flattened by the operator.",
            (
                _c("esin", _S, "Eshopbox id of the SKU", False),
                _c("sku", _S, "client SKU, null where the API does not give it"),
                _c("warehouse", _S, "fulfilment centre code", False),
                _c("sellable", _I, "sellable units"),
                _c("nonSellable", _I, "units that failed inspection"),
                _c("inwardInProcess", _I, "units being received"),
                _c("outwardInProcess", _I, "units being dispatched"),
                _c("snapshot_at", _S, "the run's start time, ISO-8601 UTC", False),
            ),
            ("esin", "warehouse"),
            "esin, warehouse",
        ),
        StreamSchema(
            "shipments",
            "One row per shipment whose updated_at lies in the window (§3.6), with its tracking.",
            (
                _c("id", _I, "shipment id (the list's order)", False),
                _c("customerOrderNumber", _S, "the order shipped"),
                _c("externalShipmentID", _S, "client shipment id"),
                _c("externalWarehouseID", _S, "warehouse it left from"),
                _c("externalChannelID", _S, "sales channel"),
                _c("invoiceNumber", _S, "invoice number"),
                _c("label_url", _S, "shipping label"),
                _c("trackingID", _S, "courier AWB"),
                _c("courierName", _S, "courier"),
                _c("status", _S, "current stage, e.g. intransit, delivered, rto_delivered (§3.5)"),
                _c("status_log", _O, "stage -> 'YYYY-MM-DD HH:MM:SS' it was reached"),
                _c("status_updated_at", _S, "when status last changed, UTC"),
                _c("created_at", _S, "'YYYY-MM-DD HH:MM:SS' UTC"),
                _c("updated_at", _S, "last change, 'YYYY-MM-DD HH:MM:SS' UTC", False),
                _c(
                    "tracking",
                    _O,
                    "added by the operator: the tracking reply for trackingID (journeyType, currentStatus, "
                    "dateTime, expectedDeliveryDate, courierPartnerName, statusLogList[]), null if none",
                ),
            ),
            ("id", "updated_at"),
            "updated_at, id",
        ),
        StreamSchema(
            "returns",
            "One row per return (RTO or customer return) whose updated_at lies in the window (§3.6); "
            'keys= gives the documented "Get a Return" row instead, without the list-only columns.',
            (
                _c("id", _I, "list only: return id (the list's order)"),
                _c("customerReturnNumber", _S, "unique return number", False),
                _c("customerOrderNumber", _S, "the order returned"),
                _c("order_id", _I, "Eshopbox id of the order"),
                _c("externalChannelID", _S, "sales channel"),
                _c("pickupType", _S, "reverse (customer pickup) or rto"),
                _c("status", _S, "current stage, e.g. rto_delivered, picked_up, complete"),
                _c("latest_status", _S, "latest stage reached"),
                _c("status_log", _O, "stage -> 'YYYY-MM-DD HH:MM:SS' it was reached"),
                _c("status_updated_at", _S, "when status last changed, UTC"),
                _c("courierName", _S, "courier"),
                _c("trackingID", _S, "return AWB"),
                _c("refundAmount", _N, "amount refunded"),
                _c("isCOD", _S, "'1' for cash on delivery"),
                _c(
                    "items",
                    _A,
                    "[{lineItemSequenceNumber, orderItemID, itemID, productName, quantity, returnReason}]",
                ),
                _c("returnType", _S, "list only: RTO or CUSTOMER_RETURN"),
                _c("externalShipmentID", _S, "list only: the forward shipment"),
                _c("return_request_date", _S, "list only: 'YYYY-MM-DD HH:MM:SS' UTC"),
                _c("created_at", _S, "list only: 'YYYY-MM-DD HH:MM:SS' UTC"),
                _c("updated_at", _S, "list only: last change, 'YYYY-MM-DD HH:MM:SS' UTC (the window's time)"),
            ),
            ("customerReturnNumber",),
            "updated_at, id (keys=: customerReturnNumber)",
        ),
        StreamSchema(
            "products",
            "The product catalogue (§5), a snapshot: every product once.",
            (
                _c("type", _S, "BASE, VIRTUAL_COMBO or KIT"),
                _c("sku", _S, "client SKU", False),
                _c("esin", _S, "Eshopbox id of the SKU (the list's order)", False),
                _c("parentEsin", _S, "variant group"),
                _c("brand", _S, "brand"),
                _c("vertical", _S, "category code"),
                _c("verticalName", _S, "category name"),
                _c("description", _S, "description"),
                _c("mrp", _N, "maximum retail price"),
                _c("unitPrice", _N, "selling price"),
                _c("hsnCode", _S, "HSN code"),
                _c("taxCode", _S, "tax code"),
                _c("weight", _N, "weight in weightUnit"),
                _c("weightUnit", _S, "g, lb, kg or ml"),
                _c("dimensionLength", _N, "length in dimensionUnit"),
                _c("dimensionWidth", _N, "width"),
                _c("dimensionHeight", _N, "height"),
                _c("dimensionUnit", _S, "cm, m, mm or in"),
                _c("imageUrl", _S, "public image URL"),
                _c("additionalNames", _O, "ean, upc, gtin, others[]"),
                _c("status", _S, "e.g. ACTIVE"),
                _c("availableOn", _A, "channels the product is listed on"),
                _c("createdAt", _S, "ISO-8601 UTC"),
                _c("updatedAt", _S, "ISO-8601 UTC"),
            ),
            ("sku", "esin"),
            "esin",
        ),
    )
}


def schema_of(stream: str) -> StreamSchema:
    """The declared schema of ``stream``; EshopboxConfigError naming the streams there are."""
    found = SCHEMAS.get(stream)
    if found is None:
        raise EshopboxConfigError(
            f"stream must be one of {', '.join(SCHEMAS)}, got {stream!r}", field="stream"
        )
    return found


def resolve_fields(stream: str, fields: Sequence[str] | str | None) -> list[str] | None:
    """The columns to keep (key columns always added), or None for whole rows.

    Every name must be a declared top-level column of the stream; the error names the unknown
    ones and lists the columns there are.
    """
    if fields is None or fields == "" or fields == []:
        return None
    if not isinstance(fields, (str, list, tuple)):
        raise EshopboxConfigError(
            f"fields must be a comma-separated string or a list of column names, got {fields!r}",
            field="fields",
        )
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    cleaned = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if len(cleaned) != len(names):
        raise EshopboxConfigError(f"fields must be non-empty strings, got {fields!r}", field="fields")
    schema = schema_of(stream)
    unknown = [n for n in cleaned if n not in schema.names()]
    if unknown:
        raise EshopboxConfigError(
            f"fields {unknown} are not columns of the {stream} stream; choose from: "
            f"{', '.join(schema.names())} (see docs/STREAMS.md)",
            field="fields",
        )
    return list(dict.fromkeys([*schema.key, *cleaned]))


def markdown() -> str:
    """The reference page of every stream's columns (docs/STREAMS.md)."""
    out = [
        "# Streams and their columns",
        "",
        "Generated from `airflow_provider_eshopbox/schemas.py` by",
        "`python -m airflow_provider_eshopbox.schemas > docs/STREAMS.md`; do not edit by hand.",
        "Rows may carry more keys than listed; listed keys may be null unless marked required.",
        "",
    ]
    for schema in SCHEMAS.values():
        out += [
            f"## {schema.stream}",
            "",
            schema.description,
            f"Identity: `{', '.join(schema.key)}`; file order: {schema.order}.",
            "",
            "| column | type | required | description |",
            "|---|---|---|---|",
            *(
                f"| `{c.name}` | {c.type} | {'' if c.nullable else 'yes'} | {c.description} |"
                for c in schema.columns
            ),
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
