"""The declared stream schemas: true of the sandbox's rows, enforced on fields=, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.schemas import SCHEMAS, markdown, resolve_fields

PY_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def test_docs_page_is_generated_from_the_schemas():
    page = Path(__file__).resolve().parents[2] / "docs" / "STREAMS.md"
    assert page.read_text() == markdown(), (
        "regenerate: python -m airflow_provider_eshopbox.schemas > docs/STREAMS.md"
    )


def test_sandbox_rows_have_the_declared_columns_and_types():
    with EshopboxSandbox(orders=300, seed=3) as sb:
        samples = {
            "orders": sb.truth_order_rows(),
            "shipments": [
                {**r, "tracking": sb.tracking_details(r["trackingID"])} for r in sb.truth_shipment_rows()
            ],
            "returns": [
                *sb.truth_return_rows(),
                *(sb.truth_return_got(n) for n in sorted(sb.truth_returns())[:5]),
            ],
            "products": sb.products(),
        }
    for stream, rows in samples.items():
        assert rows, stream
        for column in SCHEMAS[stream].columns:
            for row in rows:
                value = row.get(column.name)
                if value is None:
                    assert column.nullable, (stream, column.name)
                else:
                    wanted = tuple(PY_TYPES[t] for t in column.json_types())
                    assert isinstance(value, wanted), (stream, column.name, value)


def test_fields_are_checked_against_the_schema():
    assert resolve_fields("returns", "status, refundAmount") == [
        "customerReturnNumber",
        "status",
        "refundAmount",
    ]
    assert resolve_fields("products", None) is None
    with pytest.raises(
        EshopboxConfigError,
        match=r"fields \['courier'\] are not columns of the shipments stream; choose from: id, ",
    ):
        resolve_fields("shipments", ["courier"])
    with pytest.raises(EshopboxConfigError, match="stream must be one of"):
        resolve_fields("parcels", ["x"])
    for schema in SCHEMAS.values():
        assert schema.json_schema()["required"] == list(schema.key)
