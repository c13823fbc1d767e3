"""Defect 6 (issue 13): an order Eshopbox cannot confirm is *ambiguous*, never rejected.

Staged with the sandbox's own faults over HTTP: a create that is stored and then answered 500
(``store_then_fail``), and GET answering 404 for a just-created order (``order_get_lag_s``).
"""

from __future__ import annotations

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from tests.create_orders.test_create_orders import _SAMPLE, DAG_ID, _read_jsonl, _write_jsonl
from tests.dagtest import load_example_dag, run_dag

LAG_S = 3600  # sandbox seconds; far longer than the hook re-checks, skipped with sb.clock.advance


def test_created_order_that_get_cannot_see_is_ambiguous_not_rejected(
    conn, airflow_db, tmp_path, capfd, monkeypatch
):
    sb = conn
    # How long the hook keeps re-checking with GET (60 s in production): 1 s here, still far shorter
    # than the sandbox's GET lag, so the order stays unconfirmed for the same reason, in a second.
    monkeypatch.setattr(api, "ORDER_VISIBLE_AFTER_CREATE_S", 1.0)
    lagging, old = _SAMPLE("AMB-LAG"), _SAMPLE("AMB-OLD")
    new = [_SAMPLE("AMB-NEW-1"), _SAMPLE("AMB-NEW-2")]
    with EshopboxHook() as hook:
        assert hook.create_order(old).status == "created"
    sb.clock.advance(LAG_S + 1)  # AMB-OLD is readable again by the time the push runs
    source = _write_jsonl(tmp_path / "in" / "orders.jsonl", [lagging, old, *new])
    rejects = f"file://{tmp_path}/out/rejects.jsonl"
    ambiguous = f"file://{tmp_path}/out/rejects.ambiguous.jsonl"
    conf = {"source": source, "rejects": rejects, "generate_sample": False, "max_rejected": 0}
    dag = load_example_dag(DAG_ID, push_orders={"max_concurrency": 1})  # row 0 is the first POST
    lags_before = sb.stats()["faults_injected"].get("order_get_lag", 0)
    # AMB-LAG: stored, then 500; the resend gets the real duplicate 422; GET still answers 404.
    sb.faults.configure(order_get_lag_s=LAG_S)
    sb.faults.script("order_create", ["store_then_fail"])
    try:
        result = run_dag(dag, capfd, run_conf=conf)
    finally:
        sb.faults.clear()
    assert sb.stats()["faults_injected"].get("order_get_lag", 0) - lags_before >= 2
    assert result.task_states == {"write_sample_orders": "success", "push_orders": "failed"}
    assert _read_jsonl(rejects) == []  # it exists: re-keying it by hand would create it twice
    entries = _read_jsonl(ambiguous)
    assert [(e["row"], e["customerOrderNumber"], e["order"]) for e in entries] == [(0, "AMB-LAG", lagging)]
    assert entries[0]["reasons"][0].startswith("Eshopbox could not confirm whether this order exists: ")
    assert result.returns["push_orders"] == {
        "created": 2,
        "existing": 1,
        "rejected": 0,
        "ambiguous": 1,
        "rejects_path": rejects,
        "ambiguous_path": ambiguous,
    }
    assert (
        f"1 of 4 valid orders could not be confirmed by Eshopbox and may or may not exist; "
        f"they are listed in {ambiguous}. Do not re-key them by hand" in result.log
    )
    assert "re-run this task, which is safe because creation is idempotent" in result.log
    numbers = {"AMB-LAG", "AMB-OLD", "AMB-NEW-1", "AMB-NEW-2"}
    created = {k: v for k, v in sb.orders_created().items() if k.startswith("AMB-")}
    assert created == dict.fromkeys(numbers, 1)

    # GET has caught up: the re-run the message asks for confirms it and creates nothing twice.
    sb.clock.advance(LAG_S + 1)
    result = run_dag(DAG_ID, capfd, run_conf=conf)
    assert result.state == "success"
    assert result.returns["push_orders"] == {
        "created": 0,
        "existing": 4,
        "rejected": 0,
        "ambiguous": 0,
        "rejects_path": rejects,
        "ambiguous_path": ambiguous,
    }
    assert _read_jsonl(ambiguous) == []
    assert {k: v for k, v in sb.orders_created().items() if k.startswith("AMB-")} == created
