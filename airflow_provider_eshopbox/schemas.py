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

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxConfigError

FieldType = Literal[
    "string", "integer", "number", "boolean", "object", "array", "map", "timestamp", "decimal", "flag"
]
#: The JSON types a column's values arrive as (JSON Schema output, and the sandbox check).
_WIRE: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "integer": ("integer",),
    "number": ("number",),
    "boolean": ("boolean",),
    "object": ("object",),
    "map": ("object",),
    "array": ("array",),
    "decimal": ("number",),
    "flag": ("string", "integer", "boolean"),  # "1"/"0", 1/0 or true/false
}
#: Digits of every money column: decimal128(MONEY_PRECISION, scale).
MONEY_PRECISION = 18


@dataclass(frozen=True)
class Column:
    """One key of a landed row, and the typed column it becomes in Parquet (sync/formats.py).

    ``timestamp``: ``zone`` is how it is sent (an ``api.TIME_*`` constant); Parquet holds the instant,
    ``timestamp[us, tz=UTC]``. ``decimal``: money, exact at ``scale`` digits after the point.
    ``flag``: "1"/"0" (or 1/0, true/false), a boolean in Parquet. ``object`` with ``fields``: a
    struct of those keys; ``array``/``map`` with ``items``: a list of, or a map to, that column.
    An ``object`` or ``array`` without a declared shape is kept as its JSON text.
    """

    name: str
    type: FieldType
    description: str
    nullable: bool = True
    zone: str | None = None
    scale: int = 0
    fields: tuple[Column, ...] = ()
    items: Column | None = None

    def json_types(self) -> tuple[str, ...]:
        """The JSON types its values are sent as."""
        if self.type == "timestamp":
            return ("integer",) if self.zone == api.TIME_EPOCH_MS else ("string",)
        return _WIRE[self.type]

    def arrow_type(self) -> str:
        """Its Parquet (Arrow) type, spelt as pyarrow prints it (no pyarrow needed to say it)."""
        if self.type == "object" and self.fields:
            return "struct<" + ", ".join(f"{f.name}: {f.arrow_type()}" for f in self.fields) + ">"
        if self.type == "array" and self.items is not None:
            return f"list<item: {self.items.arrow_type()}>"
        if self.type == "map" and self.items is not None:
            return f"map<string, {self.items.arrow_type()}>"
        if self.type == "decimal":
            return f"decimal128({MONEY_PRECISION}, {self.scale})"
        return _ARROW[self.type]


_ARROW = {
    "string": "string",
    "integer": "int64",
    "number": "double",
    "boolean": "bool",
    "flag": "bool",
    "timestamp": "timestamp[us, tz=UTC]",
    "object": "string",  # no declared keys: the JSON text
    "array": "string",
    "map": "string",
}


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
            "properties": {c.name: _json_property(c) for c in self.columns},
            "additionalProperties": True,
        }


def _json_property(column: Column) -> dict[str, Any]:
    types = list(column.json_types()) + (["null"] if column.nullable else [])
    out: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if column.description:
        out["description"] = column.description
    if column.type == "object" and column.fields:
        out["properties"] = {f.name: _json_property(f) for f in column.fields}
    elif column.type == "array" and column.items is not None:
        out["items"] = _json_property(column.items)
    elif column.type == "map" and column.items is not None:
        out["additionalProperties"] = _json_property(column.items)
    return out


def _c(name: str, type_: FieldType, description: str = "", nullable: bool = True, **shape: Any) -> Column:
    return Column(name, type_, description, nullable, **shape)


def _money(name: str, description: str) -> Column:
    return Column(name, "decimal", description, scale=2)


def _time(name: str, zone: str, description: str, nullable: bool = True) -> Column:
    return Column(name, "timestamp", description, nullable, zone=zone)


def _struct(name: str, description: str, *fields: Column) -> Column:
    return Column(name, "object", description, fields=fields)


def _strings(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, "string", "") for n in names)


_S, _I, _N, _O, _A = "string", "integer", "number", "object", "array"
_WMS, _STRING = api.WMS_TIME, Column("", "string", "")

SCHEMAS: dict[str, StreamSchema] = {
    s.stream: s
    for s in (
        StreamSchema(
            "orders",
            "One row per order item whose updatedAt lies in the window (§3.1), as the API sent it.",
            (
                _c("objectID", _S, "search record id", False),
                _c("account", _S, "workspace slug"),
                _struct("erpDetails", "ERP ids", *_strings("eshopboxId")),
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
                _money("customerPrice", "unit price paid"),
                _c("onHold", "flag", "1 when the order is on hold"),
                _c("thirdPartyShipping", "flag", "'1' when the channel ships it"),
                _struct(
                    "customerDetails",
                    "shipping name, phone, email, city, state, postal code",
                    *_strings(
                        "shippingCustomerName",
                        "shippingContactPhone",
                        "shippingEmail",
                        "shippingCity",
                        "shippingState",
                        "shippingPostalCode",
                    ),
                ),
                _struct(
                    "orderDetails",
                    "isCod, orderDate, paymentType, externalChannelID, shipMethod, orderTotal",
                    _c("isCod", "flag", "'1' for cash on delivery"),
                    _time("orderDate", api.ORDER_DATE_TIME, "when it was placed (api.ORDER_DATE_TIME)"),
                    *_strings("paymentType", "externalChannelID", "shipMethod"),
                    _money("orderTotal", "order total"),
                ),
                _time("updatedAt", api.ORDER_UPDATED_AT_TIME, "last change, epoch milliseconds", False),
            ),
            ("objectID", "orderItemID", "updatedAt"),
            "updatedAt, orderItemID",
        ),
        StreamSchema(
            "inventory",
            "Stock per (ESIN, warehouse) (§4.1), flattened by the operator: one row per ESIN and warehouse.",
            (
                _c("esin", _S, "Eshopbox id of the SKU", False),
                _c("sku", _S, "client SKU, null where the API does not give it"),
                _c("warehouse", _S, "fulfilment centre code", False),
                _c("sellable", _I, "sellable units"),
                _c("nonSellable", _I, "units that failed inspection"),
                _c("inwardInProcess", _I, "units being received"),
                _c("outwardInProcess", _I, "units being dispatched"),
                _time("snapshot_at", api.TIME_ISO_OFFSET, "the run's start time, ISO-8601 UTC", False),
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
                _c("status_log", "map", "stage -> when it was reached", items=_time("", _WMS, "")),
                _time("status_updated_at", _WMS, "when status last changed, UTC"),
                _time("created_at", _WMS, "'YYYY-MM-DD HH:MM:SS' UTC"),
                _time("updated_at", _WMS, "last change, 'YYYY-MM-DD HH:MM:SS' UTC", False),
                _struct(
                    "tracking",
                    "added by the operator: the tracking reply for trackingID, null if none",
                    *_strings("journeyType", "customerOrderNumber", "trackingId", "currentStatus"),
                    _time("dateTime", _WMS, ""),
                    _time("expectedDeliveryDate", _WMS, ""),
                    *_strings("courierPartnerName", "rtoTrackingId"),
                    _c(
                        "statusLogList",
                        _A,
                        items=_struct(
                            "", "", *_strings("status"), _time("dateTime", _WMS, ""), *_strings("location")
                        ),
                    ),
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
                _c("status_log", "map", "stage -> when it was reached", items=_time("", _WMS, "")),
                _time("status_updated_at", _WMS, "when status last changed, 'YYYY-MM-DD HH:MM:SS' UTC"),
                _c("courierName", _S, "courier"),
                _c("trackingID", _S, "return AWB"),
                _money("refundAmount", "amount refunded"),
                _c("isCOD", "flag", "'1' for cash on delivery"),
                _c(
                    "items",
                    _A,
                    "[{lineItemSequenceNumber, orderItemID, itemID, productName, quantity, returnReason}]",
                    items=_struct(
                        "",
                        "",
                        _c("lineItemSequenceNumber", _I),
                        _c("orderItemID", _S),
                        _c("itemID", _S),
                        _c("productName", _S),
                        _c("quantity", _I),
                        _c("returnReason", _S),
                    ),
                ),
                _c("returnType", _S, "list only: RTO or CUSTOMER_RETURN"),
                _c("externalShipmentID", _S, "list only: the forward shipment"),
                _time("return_request_date", _WMS, "list only: 'YYYY-MM-DD HH:MM:SS' UTC"),
                _time("created_at", _WMS, "list only: 'YYYY-MM-DD HH:MM:SS' UTC"),
                _time(
                    "updated_at",
                    _WMS,
                    "list only: last change, 'YYYY-MM-DD HH:MM:SS' UTC (the window's time)",
                ),
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
                _money("mrp", "maximum retail price"),
                _money("unitPrice", "selling price"),
                _c("hsnCode", _S, "HSN code"),
                _c("taxCode", _S, "tax code"),
                _c("weight", _N, "weight in weightUnit"),
                _c("weightUnit", _S, "g, lb, kg or ml"),
                _c("dimensionLength", _N, "length in dimensionUnit"),
                _c("dimensionWidth", _N, "width"),
                _c("dimensionHeight", _N, "height"),
                _c("dimensionUnit", _S, "cm, m, mm or in"),
                _c("imageUrl", _S, "public image URL"),
                _struct(
                    "additionalNames",
                    "ean, upc, gtin, others[]",
                    *_strings("ean", "upc", "gtin"),
                    _c("others", _A, items=_STRING),
                ),
                _c("status", _S, "e.g. ACTIVE"),
                _c("availableOn", _A, "channels the product is listed on", items=_STRING),
                _time("createdAt", api.PRODUCT_TIME, "ISO-8601 UTC"),
                _time("updatedAt", api.PRODUCT_TIME, "ISO-8601 UTC"),
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


def _type_cell(column: Column) -> str:
    if column.type == "timestamp":
        return f"timestamp ({column.zone})"
    if column.type == "decimal":
        return f"decimal (scale {column.scale})"
    return column.type


def markdown() -> str:
    """The reference page of every stream's columns (docs/STREAMS.md)."""
    out = [
        "# Streams and their columns",
        "",
        "Generated from `airflow_provider_eshopbox/schemas.py` by",
        "`python -m airflow_provider_eshopbox.schemas > docs/STREAMS.md`; do not edit by hand.",
        "Rows may carry more keys than listed; listed keys may be null unless marked required.",
        "",
        'With `format="parquet"` each stream is written with the Parquet types below, whatever a batch',
        "holds: every timestamp is the instant as `timestamp[us, tz=UTC]`, converted from how it is sent",
        "(`api.py` names the zone each one assumes: epoch-ms, naive UTC `YYYY-MM-DD HH:MM:SS`, or",
        'ISO-8601 with an offset); money is an exact decimal; `flag`s ("1"/"0") are booleans. Keys',
        "the schema does not declare are kept, as one JSON object per row, in the column `_extra`",
        "(a string, null when there are none; nested ones by dotted path) and named in the manifest.",
        "",
    ]
    for schema in SCHEMAS.values():
        out += [
            f"## {schema.stream}",
            "",
            schema.description,
            f"Identity: `{', '.join(schema.key)}`; file order: {schema.order}.",
            "",
            "| column | type | Parquet type | required | description |",
            "|---|---|---|---|---|",
            *(
                f"| `{c.name}` | {_type_cell(c)} | `{c.arrow_type()}` | {'' if c.nullable else 'yes'} "
                f"| {c.description} |"
                for c in schema.columns
            ),
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
