"""A 2xx from a write counts only when it shows the write took effect (issue 26, 2): a 200 that says
"FAILED", or that is about another order, is confirmed with a GET and reported, never counted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxError
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from tests.dagtest import example_dag_module

_DAG_SAMPLE = example_dag_module("eshopbox_push_orders").sample_order


def _SAMPLE(number: str) -> dict:
    return _DAG_SAMPLE(number, "TSHIRT-BLU-S")


def _lines(url: str) -> list[dict]:
    raw = Path(url.removeprefix("file://")).read_bytes()
    return [json.loads(line) for line in gzip.decompress(raw).decode().splitlines()]


@pytest.fixture
def quirky(conn, monkeypatch):
    monkeypatch.setattr(api, "ORDER_VISIBLE_AFTER_CREATE_S", 1.0)  # how long GET may lag: short here
    yield conn
    conn.quirks.clear()


@pytest.mark.parametrize(
    ("quirk", "outcome", "reason"),
    [
        ("create_200_failed", "rejected", "Eshopbox refused the order (HTTP 200): status 'FAILED': SKU"),
        ("create_other_order", "ambiguous", "Eshopbox could not confirm whether this order exists: "),
    ],
)
def test_a_2xx_that_did_not_store_the_order_is_never_created(quirky, tmp_path, quirk, outcome, reason):
    sb = quirky
    prefix = f"W2XX-{quirk}"
    orders = [_SAMPLE(f"{prefix}-1"), _SAMPLE(f"{prefix}-2")]
    rejects = f"file://{tmp_path}/rejects.jsonl.gz"
    sb.quirks.configure(**{quirk: True})
    sb.reset_stats()
    operator = EshopboxCreateOrdersOperator(task_id="push", source=orders, rejects=rejects, max_rejected=5)
    if outcome == "ambiguous":
        with pytest.raises(EshopboxError, match="2 of 2 valid orders could not be confirmed"):
            operator.execute({})
        written = _lines(rejects.replace("rejects.jsonl.gz", "rejects.ambiguous.jsonl.gz"))
    else:
        manifest = operator.execute({})
        assert {k: manifest[k] for k in ("created", "existing", "rejected", "ambiguous")} == {
            "created": 0,
            "existing": 0,
            "rejected": 2,
            "ambiguous": 0,
        }
        written = _lines(rejects)
    assert [(e["row"], e["customerOrderNumber"]) for e in written] == [(0, f"{prefix}-1"), (1, f"{prefix}-2")]
    assert all(e["reasons"][0].startswith(reason) for e in written), written
    assert not any(k.startswith(prefix) for k in sb.orders_created())
    assert sb.stats()["by_route"]["order_get"] >= 2  # each one confirmed with a GET before it was judged


def test_max_rejected_still_applies_to_a_200_failure(quirky, tmp_path):
    quirky.quirks.configure(create_200_failed=True)
    operator = EshopboxCreateOrdersOperator(
        task_id="push", source=[_SAMPLE("W2XX-MAX-1")], rejects=f"file://{tmp_path}/r.jsonl.gz"
    )
    with pytest.raises(AirflowFailException, match=r"1 of 1 orders were rejected \(max_rejected=0\)"):
        operator.execute({})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"customerOrderNumber": "A-1", "status": "CREATED"}, None),
        ({"status": "SUCCESS", "customerOrderNumber": "A-1"}, None),
        ({"status": "FAILED", "message": "SKU X not found", "code": 412}, "status 'FAILED': SKU X not found"),
        ({"customerOrderNumber": "B-9"}, "the reply is about order 'B-9'"),
        ({}, "the reply names no customerOrderNumber"),
        ([], "the reply is list, not a JSON object"),
        ({"error": {"message": "nope"}, "customerOrderNumber": "A-1"}, "an error reply: nope"),
    ],
)
def test_write_reply_problem(body, problem):
    assert api.write_reply_problem(body, "A-1") == problem


def test_a_cancel_reply_need_not_name_the_order_but_must_not_say_failed():
    assert api.write_reply_problem({"message": "cancelled"}, "A-1", names_order=False) is None
    failed = api.write_reply_problem({"status": "Failed"}, "A-1", names_order=False)
    assert failed == "status 'Failed': no message"
