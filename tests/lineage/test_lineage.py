"""OpenLineage: a run emits the Eshopbox stream as input and the landed file as output, with counts."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_eshopbox.lineage import dataset_name
from tests.dagtest import run_dag

UTC = timezone.utc


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///data/x/orders.jsonl.gz", (f"file://{socket.gethostname()}", "/data/x/orders.jsonl.gz")),
        ("s3://bucket/eshopbox/2026/orders.jsonl", ("s3://bucket", "eshopbox/2026/orders.jsonl")),
        ("s3://aws_conn@bucket/k.jsonl", ("s3://bucket", "k.jsonl")),
        ("gs://lake/a/b.jsonl.gz", ("gs://lake", "a/b.jsonl.gz")),
        ("gcs://lake/a/b.jsonl.gz", ("gs://lake", "a/b.jsonl.gz")),
        (
            "abfss://c@acct.dfs.core.windows.net/p/x.jsonl",
            ("abfss://c@acct.dfs.core.windows.net", "p/x.jsonl"),
        ),
    ],
)
def test_dataset_names_follow_the_naming_spec(url, expected):
    assert dataset_name(url) == expected


def _task_events(events: list[dict[str, Any]], dag_id: str, task_id: str, state: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("eventType") == state and e["job"]["name"] == f"{dag_id}.{task_id}"]


def _datasets(event: dict[str, Any], side: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in event[side]}


def test_a_stream_run_emits_its_input_and_output(conn, output_dir, lineage_events):
    sb = conn
    start, end = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    result = run_dag(
        "eshopbox_streams_resync",
        run_conf={
            "stream": "shipments",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "fields": "courierName",
        },
    )
    assert result.state == "success"
    manifest = result.returns["land"]
    complete = _task_events(lineage_events(), "eshopbox_streams_resync", "land", "COMPLETE")
    assert len(complete) == 1, [(e["eventType"], e["job"]["name"]) for e in lineage_events()]
    inputs, outputs = _datasets(complete[0], "inputs"), _datasets(complete[0], "outputs")
    assert list(inputs) == [(f"eshopbox://{sb.workspace}", "shipments")]
    path = output_dir / "streams" / "shipments" / "latest.jsonl.gz"
    assert list(outputs) == [(f"file://{socket.gethostname()}", str(path))]
    out = outputs[(f"file://{socket.gethostname()}", str(path))]
    assert (
        out["outputFacets"]["outputStatistics"]["rowCount"]
        == manifest["rows"]
        == len(sb.truth_shipments(start, end))
    )
    # the schema facet lists the columns written: identity plus the chosen one
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["id", "courierName", "updated_at"]
    assert len(inputs[(f"eshopbox://{sb.workspace}", "shipments")]["facets"]["schema"]["fields"]) == 15


def test_the_mart_emits_every_stream(conn, output_dir, lineage_events):
    sb = conn
    result = run_dag("eshopbox_fulfilment_mart", logical_date=datetime(2026, 11, 3, tzinfo=UTC))
    assert result.state == "success", result.task_states
    events = lineage_events()
    for task_id, stream in (
        ("orders", "orders"),
        ("shipments", "shipments"),
        ("returns", "returns"),
        ("products", "products"),
    ):
        complete = _task_events(events, "eshopbox_fulfilment_mart", task_id, "COMPLETE")
        assert len(complete) == 1, task_id
        assert list(_datasets(complete[0], "inputs")) == [(f"eshopbox://{sb.workspace}", stream)]
        (output,) = complete[0]["outputs"]
        assert output["name"].endswith(f"/mart/{task_id}/dt=2026-11-02/{task_id}.jsonl.gz")
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == result.returns[task_id]["rows"]


def test_a_failed_run_emits_what_it_was_working_on(conn, output_dir, lineage_events, capfd):
    sb = conn
    result = run_dag("eshopbox_streams_resync", capfd, run_conf={"stream": "returns", "keys": "RET-NOPE"})
    assert result.state == "failed"
    (failed,) = _task_events(lineage_events(), "eshopbox_streams_resync", "land", "FAIL")
    assert list(_datasets(failed, "inputs")) == [(f"eshopbox://{sb.workspace}", "returns")]
    (output,) = failed["outputs"]
    assert output["name"] == str(output_dir / "streams" / "returns" / "latest.jsonl.gz")
    assert "outputStatistics" not in output.get("outputFacets", {})  # nothing was written


def test_a_push_emits_the_source_as_input_and_eshopbox_orders_and_rejects_as_outputs(
    conn, output_dir, tmp_path, lineage_events
):
    import json

    from tests.dagtest import example_dag_module

    sample_order = example_dag_module("eshopbox_push_orders").sample_order
    orders = [sample_order(f"LIN-{i}", "TSHIRT-BLU-S") for i in range(3)]
    source, rejects = tmp_path / "in.jsonl", tmp_path / "out" / "rejects.jsonl"
    source.write_text("\n".join(json.dumps(o) for o in [*orders, {"customerOrderNumber": "LIN-BAD"}]) + "\n")
    result = run_dag(
        "eshopbox_push_orders",
        run_conf={
            "source": f"file://{source}",
            "rejects": f"file://{rejects}",
            "generate_sample": False,
            "max_rejected": 1,
        },
    )
    assert result.state == "success", result.task_states
    manifest = result.returns["push_orders"]
    assert (manifest["created"], manifest["existing"], manifest["rejected"]) == (3, 0, 1)
    (complete,) = _task_events(lineage_events(), "eshopbox_push_orders", "push_orders", "COMPLETE")
    host = f"file://{socket.gethostname()}"
    assert list(_datasets(complete, "inputs")) == [(host, str(source))]
    outputs = _datasets(complete, "outputs")
    assert list(outputs) == [(f"eshopbox://{conn.workspace}", "orders"), (host, str(rejects))]
    counts = [o["outputFacets"]["outputStatistics"]["rowCount"] for o in outputs.values()]
    assert counts == [3, 1]
