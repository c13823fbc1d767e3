"""EshopboxCreateOrdersOperator end to end (dag.test, sandbox over HTTP) and its validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.order_validation import validate_order
from tests.dagtest import example_dag_module, run_dag

DAG_ID = "eshopbox_push_orders"


_DAG_SAMPLE = example_dag_module(DAG_ID).sample_order


def _SAMPLE(number: str, sku: str = "TSHIRT-BLU-S") -> dict:
    return _DAG_SAMPLE(number, sku)


def _write_jsonl(path: Path, rows: list) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return f"file://{path}"


def _read_jsonl(url: str) -> list[dict]:
    return [json.loads(line) for line in Path(url.removeprefix("file://")).read_text().splitlines()]


def _malformed(number: str) -> list[tuple[dict, list[str]]]:
    """Four locally invalid orders with the exact reasons expected."""
    no_email = _SAMPLE(f"{number}-A")
    del no_email["shippingAddress"]["email"]
    no_items = _SAMPLE(f"{number}-B")
    no_items["items"] = []
    bad_tax = _SAMPLE(f"{number}-C")
    bad_tax["taxAmount"] = "abc"
    no_number = _SAMPLE("x")
    del no_number["customerOrderNumber"]
    return [
        (no_email, ["shippingAddress.email is required"]),
        (no_items, ["items is required"]),
        (bad_tax, ["taxAmount must be a number, got 'abc'"]),
        (no_number, ["customerOrderNumber is required"]),
    ]


def _two_hundred(prefix: str, tmp_path: Path) -> tuple[list[dict], list[dict], str]:
    """200 input rows: 195 distinct valid orders (20 of them created beforehand) and 5 bad rows."""
    valid = [_SAMPLE(f"{prefix}-{i:04d}") for i in range(195)]
    existing = valid[::10][:20]
    assert len(existing) == 20
    with EshopboxHook() as hook:
        assert {hook.create_order(order).status for order in existing} == {"created"}
    malformed = _malformed(f"{prefix}-BAD")
    duplicate = dict(valid[7], subtotal=1)  # a second row claiming <prefix>-0007
    rows = list(valid)
    for index, (order, _reasons) in zip((17, 60, 111, 150), malformed, strict=True):
        rows.insert(index, order)
    rows.insert(199, duplicate)
    assert len(rows) == 200
    expected_rejects = [
        {
            "row": row,
            "customerOrderNumber": order.get("customerOrderNumber"),
            "reasons": reasons,
            "order": order,
        }
        for row, (order, reasons) in zip((17, 60, 111, 150), malformed, strict=True)
    ] + [
        {
            "row": 199,
            "customerOrderNumber": f"{prefix}-0007",
            "reasons": [f"duplicate customerOrderNumber '{prefix}-0007' in this input (first at row 7)"],
            "order": duplicate,
        }
    ]
    return valid, expected_rejects, _write_jsonl(tmp_path / "in" / f"{prefix}.jsonl", rows)


def test_push_200_orders_then_rerun_creates_nothing(conn, airflow_db, tmp_path):
    sb = conn
    valid, expected_rejects, source = _two_hundred("P200", tmp_path)
    assert expected_rejects[3]["customerOrderNumber"] is None
    rejects = f"file://{tmp_path}/out/rejects.jsonl"
    conf = {"source": source, "rejects": rejects, "generate_sample": False, "max_rejected": 5}
    result = run_dag(DAG_ID, run_conf=conf)
    assert result.state == "success"
    assert result.returns["push_orders"] == {
        "created": 175,
        "existing": 20,
        "rejected": 5,
        "ambiguous": 0,
        "rejects_path": rejects,
        "ambiguous_path": rejects.replace("rejects.jsonl", "rejects.ambiguous.jsonl"),
    }
    assert _read_jsonl(rejects) == expected_rejects
    numbers = {order["customerOrderNumber"] for order in valid}
    created = {k: v for k, v in sb.orders_created().items() if k.startswith("P200-")}
    assert created == dict.fromkeys(numbers, 1)

    sb.reset_stats()
    result = run_dag(DAG_ID, run_conf=conf)
    assert result.state == "success"
    assert result.returns["push_orders"] == {
        "created": 0,
        "existing": 195,
        "rejected": 5,
        "ambiguous": 0,
        "rejects_path": rejects,
        "ambiguous_path": rejects.replace("rejects.jsonl", "rejects.ambiguous.jsonl"),
    }
    assert {k: v for k, v in sb.orders_created().items() if k.startswith("P200-")} == created
    assert sb.stats()["by_route"]["order_create"] == 195  # the bad rows never reach the API
    assert _read_jsonl(rejects) == expected_rejects


def test_push_under_timeouts_and_5xx_never_creates_twice(conn, airflow_db, tmp_path, monkeypatch):
    sb = conn
    valid, expected_rejects, source = _two_hundred("FLT", tmp_path)
    rejects = f"file://{tmp_path}/out/rejects.jsonl"
    # Unknown outcomes: hangs past the (lowered) timeout, dropped connections, random 5xx.
    connection = json.loads(sb.connection_json())
    connection["extra"]["timeout"] = 0.4
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps(connection))
    sb.reset_stats()
    sb.faults.configure(error_rate=0.1, routes=["order_create"], hang_s=1.0)
    sb.faults.script("order_create", ["hang", "drop", "hang", 503, "drop", "hang"])
    conf = {"source": source, "rejects": rejects, "generate_sample": False, "max_rejected": 5}
    try:
        result = run_dag(DAG_ID, run_conf=conf)
    finally:
        sb.faults.clear()
    assert result.state == "success"
    manifest = result.returns["push_orders"]
    faults = sb.stats()["faults_injected"]
    assert faults.get("hang", 0) >= 3 and faults.get("drop", 0) >= 2 and faults.get("error", 0) >= 5, faults
    # A pre-existing order whose POST had an unknown outcome is confirmed by GET and reported as
    # "created" by the hook (it cannot tell whose POST made it): the sum is exact, the split may move.
    assert manifest["created"] + manifest["existing"] == 195
    assert manifest["created"] >= 175 and manifest["existing"] <= 20
    assert manifest["rejected"] == 5
    assert _read_jsonl(rejects) == expected_rejects
    numbers = {order["customerOrderNumber"] for order in valid}
    created = {k: v for k, v in sb.orders_created().items() if k.startswith("FLT-")}
    assert created == dict.fromkeys(numbers, 1)  # every order exactly once, none twice

    # The re-run at the normal timeout: under the 0.4 s one a loaded machine can time out a POST
    # that the server answered "duplicate", and the GET that confirms it cannot tell "existing" apart.
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
    result = run_dag(DAG_ID, run_conf=conf)
    assert result.returns["push_orders"] == {
        "created": 0,
        "existing": 195,
        "rejected": 5,
        "ambiguous": 0,
        "rejects_path": rejects,
        "ambiguous_path": rejects.replace("rejects.jsonl", "rejects.ambiguous.jsonl"),
    }
    assert {k: v for k, v in sb.orders_created().items() if k.startswith("FLT-")} == created


def test_demo_dag_generates_and_pushes_sample_orders(conn, airflow_db, tmp_path):
    sb = conn
    conf = {
        "source": f"file://{tmp_path}/demo/orders.jsonl",
        "rejects": f"file://{tmp_path}/demo/rejects.jsonl",
        "sample_orders": 12,
        "order_prefix": "DEMOT",
    }
    result = run_dag(DAG_ID, run_conf=conf)
    assert result.state == "success"
    assert result.returns["push_orders"]["created"] == 12
    assert {k: v for k, v in sb.orders_created().items() if k.startswith("DEMOT-")} == {
        f"DEMOT-{i:05d}": 1 for i in range(1, 13)
    }
    assert _read_jsonl(conf["rejects"]) == []


def test_too_many_rejects_fail_after_writing_everything(conn, tmp_path):
    sb = conn
    taken_item_id = sorted(sb.truth_order_item_ids())[0]
    server_refused = _SAMPLE("FAIL-SRV")
    server_refused["items"][0]["orderItemID"] = taken_item_id  # passes local checks, 422 from the API
    orders = [_SAMPLE("FAIL-1"), _malformed("FAIL-BAD")[1][0], server_refused, _SAMPLE("FAIL-2")]
    rejects = f"file://{tmp_path}/rejects.jsonl.gz"
    operator = EshopboxCreateOrdersOperator(task_id="push", source=orders, rejects=rejects, max_rejected=1)
    with pytest.raises(
        AirflowFailException, match=r"2 of 4 orders were rejected \(max_rejected=1\); 2 created"
    ):
        operator.execute({})
    assert sb.orders_created().get("FAIL-1") == 1 and sb.orders_created().get("FAIL-2") == 1
    assert "FAIL-SRV" not in sb.orders_created()
    import gzip

    lines = gzip.decompress(Path(rejects.removeprefix("file://")).read_bytes()).decode().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["row"], e["customerOrderNumber"]) for e in entries] == [(1, "FAIL-BAD-B"), (2, "FAIL-SRV")]
    assert entries[0]["reasons"] == ["items is required"]
    assert entries[1]["reasons"] == [
        "Eshopbox refused the order (HTTP 422): "
        "items.0.orderItemID: The items.0.orderItemID has already been taken."
    ]


def test_unparseable_lines_are_rejected_not_fatal(conn, tmp_path):
    source = _write_jsonl(tmp_path / "in.jsonl", ["{not json", "", "[1, 2]", _SAMPLE("PARSE-1")])
    rejects = f"file://{tmp_path}/rejects.jsonl"
    operator = EshopboxCreateOrdersOperator(task_id="push", source=source, rejects=rejects, max_rejected=2)
    assert operator.execute({}) == {
        "created": 1,
        "existing": 0,
        "rejected": 2,
        "ambiguous": 0,
        "rejects_path": rejects,
        "ambiguous_path": f"file://{tmp_path}/rejects.ambiguous.jsonl",
    }
    entries = _read_jsonl(rejects)
    assert [(e["row"], e["order"]) for e in entries] == [(0, "{not json"), (1, "[1, 2]")]
    assert entries[0]["reasons"][0].startswith("line 1 is not valid JSON")
    assert entries[1]["reasons"] == ["line 3 is not a JSON object"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"source": "file:///nonexistent/dir/orders.jsonl"},
            "source='file:///nonexistent/dir/orders.jsonl' does not exist",
        ),
        ({"source": "orders.jsonl"}, "source='orders.jsonl' has no scheme"),
        ({"rejects": "ftpx://bucket/rejects.jsonl"}, "no filesystem is registered for scheme 'ftpx'"),
        ({"max_rejected": -1}, "max_rejected must be a non-negative integer"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer from 1 to 64"),
    ],
)
def test_bad_input_fails_before_any_request(conn, tmp_path, kwargs, match):
    sb = conn
    before = sb.stats()["requests"]
    arguments = {
        "source": [_SAMPLE("NEVER-1")],
        "rejects": f"file://{tmp_path}/out/rejects.jsonl",
        **kwargs,
    }
    operator = EshopboxCreateOrdersOperator(task_id="push", **arguments)
    with pytest.raises(EshopboxConfigError, match=match):
        operator.execute({})
    assert sb.stats()["requests"] == before
    assert not (tmp_path / "out").exists()
    assert "NEVER-1" not in sb.orders_created()


def test_local_validation_accepts_a_complete_order_and_names_each_problem():
    assert validate_order(_SAMPLE("V-1")) == []
    order = _SAMPLE("V-2")
    del order["externalChannelID"]
    assert validate_order(order) == ["externalChannelID is required"]
    assert validate_order(order, default_external_channel_id="CH0001") == []
    order = dict(_SAMPLE("V-3"), taxAmount=0, balanceDue=0, thirdPartyShipping=False, isCOD="0")
    assert validate_order(order) == []  # 0 and false are values, not blanks
    order = dict(_SAMPLE("V-4"), billingAddress="same", paymentType="", items=[{"quantity": 1}, "x"])
    assert validate_order(order) == [
        "paymentType is required",
        "billingAddress must be an object",
        "items.0.sku is required",
        "items.1 must be an object",
    ]
    assert validate_order(dict(_SAMPLE("V-5"), customerOrderNumber=42)) == [
        "customerOrderNumber must be a string, got int"
    ]
    assert validate_order(["not", "an", "order"]) == ["an order must be a JSON object, got list"]
