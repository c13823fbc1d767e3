"""Secret-leak scan: run every example DAG (successes and deliberate failures) against a sandbox, then
search everything the runs left behind for the client secret, every refresh token and every token the
sandbox minted.

Searched: task log files under $AIRFLOW_HOME/logs, the captured stdout/stderr of each run, every XCom
(all keys, raw from the DB), every RenderedTaskInstanceFields row, the Trigger table (serialized
kwargs), exceptions raised by ``dag.test()``, every output file (orders/inventory/push/rejects,
gzip-decoded) and, as a backstop, the raw bytes of the metadata database. Besides exact values, a
pattern catches any sandbox credential shape (``sbx-secret-``, ``sbx-rt-``, ``sbx-at-``, ``sbx-id-``).

Note: ``dag.test()`` runs tasks in-process, and Airflow 3.3 then writes no task log *files* (the log
directory is scanned anyway and shows 0); the same task log lines, tracebacks included, are in the
captured output of each run, which is scanned.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import DagTestResult, load_example_dag, run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")

UTC = timezone.utc
# Any credential-shaped value of any sandbox (even one whose exact value the scan does not know).
SHAPE = re.compile(r"sbx-(?:secret|rt|at|id)-[0-9a-f]{8,}")
WRONG_REFRESH_TOKEN = "sbx-rt-" + "0badc0de" * 5  # bad-credentials run: must be masked too
WRONG_SECRET = "sbx-secret-" + "feedface" * 5


# --- the scanner ---------------------------------------------------------------------------------
@dataclass
class Hit:
    where: str
    item: str
    what: str  # which secret (by label, never its value) or "pattern"
    context: str


@dataclass
class Scan:
    """Needles and, per place searched, how many items were searched and what was found."""

    needles: dict[str, str]  # value -> label
    rows: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def text(self, where: str, item: str, text: str) -> None:
        self.rows[where] = self.rows.get(where, 0) + 1
        found: set[tuple[int, int]] = set()
        for value, label in self.needles.items():
            start = text.find(value)
            while start != -1:
                found.add((start, start + len(value)))
                self.hits.append(Hit(where, item, label, _context(text, start, len(value))))
                start = text.find(value, start + 1)
        for match in SHAPE.finditer(text):
            if not any(lo <= match.start() < hi for lo, hi in found):
                self.hits.append(Hit(where, item, "pattern", _context(text, match.start(), len(match[0]))))

    def files(self, where: str, root: Path) -> None:
        self.rows.setdefault(where, 0)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.text(where, str(path), _read_any(path))

    def hits_in(self, where: str) -> int:
        return sum(1 for hit in self.hits if hit.where == where)

    def table(self) -> str:
        lines = ["| where scanned | files/values | hits |", "|---|---:|---:|"]
        lines += [f"| {where} | {count} | {self.hits_in(where)} |" for where, count in self.rows.items()]
        lines.append(f"| **total** | {sum(self.rows.values())} | {len(self.hits)} |")
        return "\n".join(lines)


def _context(text: str, start: int, length: int) -> str:
    # The hit itself is replaced by its length so a failing test does not print the secret.
    before = text[max(0, start - 60) : start]
    after = text[start + length : start + length + 60]
    return f"{before}<{length} chars>{after}".replace("\n", "\\n")


def _read_any(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def scan_database(scan: Scan, runs: Iterable[tuple[str, str]]) -> None:
    """XComs (all keys), rendered template fields and triggers of the given runs; raw DB bytes."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.settings import engine
    from airflow.utils.session import create_session
    from sqlalchemy import select

    runs = list(runs)
    scan.rows.setdefault("XCom values (all keys)", 0)
    scan.rows.setdefault("rendered template fields", 0)
    with create_session() as session:
        for dag_id, run_id in runs:
            for x in session.scalars(
                select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
            ):
                text = f"{x.value!r} {XComModel.deserialize_value(x)!r}"
                scan.text("XCom values (all keys)", f"{dag_id}/{run_id}/{x.task_id}/{x.key}", text)
            for r in session.scalars(select(RTIF).where(RTIF.dag_id == dag_id, RTIF.run_id == run_id)):
                text = json.dumps(r.rendered_fields, default=str) + json.dumps(r.k8s_pod_yaml, default=str)
                scan.text("rendered template fields", f"{dag_id}/{run_id}/{r.task_id}", text)
        scan.rows.setdefault("Trigger table (kwargs)", 0)
        for trigger in session.scalars(select(Trigger)):
            text = f"{trigger.classpath} {trigger.encrypted_kwargs} {trigger.kwargs!r}"
            scan.text("Trigger table (kwargs)", f"trigger {trigger.id}", text)
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database:
        for suffix in ("", "-wal", "-journal"):
            path = Path(database + suffix)
            if path.exists():
                scan.text("metadata DB raw bytes", str(path), path.read_bytes().decode("latin-1"))


# --- the runs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Iterator[EshopboxSandbox]:
    """This module's sandbox (also overrides any ``sandbox`` fixture of a shared conftest).

    Rotation on: every exchange also issues a new refresh token, which must stay masked too.
    """
    with EshopboxSandbox(seed=7, rotate_refresh_token=True) as sb:
        yield sb


@pytest.fixture(scope="module")
def env(sandbox: EshopboxSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("leaks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(base / "token-cache"))
        mp.setenv("ESHOPBOX_DEMO_OUTPUT", f"file://{base / 'out'}")
        mp.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
        TokenCache.clear_process_cache()
        EshopboxHook._rotated_refresh_tokens.clear()
        transport._limiters.clear()
        yield {"sb": sandbox, "out": base / "out", "base": base, "mp": mp}
        TokenCache.clear_process_cache()
        EshopboxHook._rotated_refresh_tokens.clear()


def _processing_order(sb: EshopboxSandbox) -> str:
    with sb.store.lock:
        for con, info in sb.store.orders.items():
            if len(info.item_ids) == 1 and sb.store.rows[info.item_ids[0]]["orderStatus"] == "processing":
                return con
    raise LookupError("processing")


def _bad_connection(sb: EshopboxSandbox, **changes: str) -> str:
    conn = json.loads(sb.connection_json())
    conn["password"] = changes.get("password", conn["password"])
    conn["extra"]["refresh_token"] = changes.get("refresh_token", conn["extra"]["refresh_token"])
    return json.dumps(conn)


def test_no_secret_leaks_anywhere(
    env: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sb: EshopboxSandbox = env["sb"]
    mp: pytest.MonkeyPatch = env["mp"]
    out: Path = env["out"]
    good_conn = os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"]
    results: dict[str, DagTestResult] = {}
    raised: dict[str, str] = {}

    def run(name: str, dag_id: str, expect: str, task_attrs: dict | None = None, **kwargs: Any) -> None:
        dag = load_example_dag(dag_id, **(task_attrs or {}))
        result = run_dag(dag, capfd, **kwargs)
        results[name] = result
        assert result.state == expect, (name, result.task_states, result.log[-3000:])

    no_retry = {"retries": 0}
    # --- successes
    run("orders hourly", "eshopbox_orders_hourly", "success", {"sync_orders": no_retry},
        logical_date=datetime(2026, 11, 2, 13, tzinfo=UTC))  # fmt: skip
    run("orders downstream", "eshopbox_orders_downstream", "success")
    run("orders resync", "eshopbox_orders_resync", "success",
        run_conf={"start": "2026-11-03T00:00:00+00:00", "end": "2026-11-03T04:00:00+00:00"})  # fmt: skip
    run("inventory snapshot", "eshopbox_inventory_snapshot", "success", {"snapshot_inventory": no_retry},
        logical_date=datetime(2026, 11, 2, 12, tzinfo=UTC))  # fmt: skip
    run("inventory changed", "eshopbox_inventory_snapshot", "success", {"snapshot_inventory": no_retry},
        logical_date=datetime(2026, 11, 2, 12, 15, tzinfo=UTC),
        run_conf={"mode": "changed", "start": "2026-11-01T00:00:00Z",
                  "end": "2026-11-08T00:00:00Z"})  # fmt: skip
    run("push orders", "eshopbox_push_orders", "success",
        run_conf={"sample_orders": 5, "order_prefix": "LEAK"})  # fmt: skip
    run("wait for shipment (deferred)", "eshopbox_wait_for_shipment", "success",
        {"wait_for_shipment": {"poke_interval": 0.1, "timeout": 20}})  # fmt: skip
    run("wait for shipment (poke)", "eshopbox_wait_for_shipment", "success",
        {"wait_for_shipment": {"poke_interval": 0.1, "timeout": 20, "deferrable": False}})  # fmt: skip
    run("restock alert", "eshopbox_restock_alert", "success",
        {"wait_for_stock": {"poke_interval": 0.1, "timeout": 20, "threshold": 100}})  # fmt: skip
    sb.revoke_tokens()  # the next run gets a 401 on its cached token and exchanges again
    run("after token revocation", "eshopbox_inventory_snapshot", "success", {"snapshot_inventory": no_retry},
        logical_date=datetime(2026, 11, 2, 12, 30, tzinfo=UTC))  # fmt: skip

    # --- failures on purpose
    con = _processing_order(sb)
    run("sensor timeout (shipment)", "eshopbox_wait_for_shipment", "failed",
        {"wait_for_shipment": {"poke_interval": 0.1, "timeout": 1}},
        run_conf={"customer_order_number": con})  # fmt: skip
    run("sensor timeout (restock)", "eshopbox_restock_alert", "failed",
        {"wait_for_stock": {"poke_interval": 0.1, "timeout": 1}})  # fmt: skip
    bad_source = out / "push" / "bad.jsonl"
    bad_source.parent.mkdir(parents=True, exist_ok=True)
    bad_source.write_text('{"customerOrderNumber": "BAD-1"}\nnot json\n[1, 2]\n')
    run("push over max_rejected", "eshopbox_push_orders", "failed",
        run_conf={"generate_sample": False, "source": f"file://{bad_source}",
                  "rejects": f"file://{out / 'push' / 'bad-rejects.jsonl'}"})  # fmt: skip
    sb.faults.configure(error_rate=1.0, error_statuses=(500,), routes=["inventory_list"])
    try:
        run("500 storm", "eshopbox_inventory_snapshot", "failed", {"snapshot_inventory": no_retry},
            logical_date=datetime(2026, 11, 2, 12, 45, tzinfo=UTC))  # fmt: skip
    finally:
        sb.faults.clear()
    run("bad param (start after end)", "eshopbox_orders_resync", "failed",
        run_conf={"start": "2026-11-03T00:00:00+00:00", "end": "2026-11-02T00:00:00+00:00"})  # fmt: skip
    try:
        run("bad param (schema)", "eshopbox_orders_resync", "failed", run_conf={"destination": "no-scheme"})
    except Exception as exc:  # the param schema rejects it before a run exists
        raised["bad param (schema)"] = f"{type(exc).__name__}: {exc}"
    for name, conn in (
        ("bad refresh token", _bad_connection(sb, refresh_token=WRONG_REFRESH_TOKEN)),
        ("bad client secret", _bad_connection(sb, password=WRONG_SECRET)),
    ):
        mp.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn)
        try:
            run(name, "eshopbox_inventory_snapshot", "failed", {"snapshot_inventory": no_retry},
                logical_date=datetime(2026, 11, 2, 13, tzinfo=UTC))  # fmt: skip
        finally:
            mp.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", good_conn)
        assert "EshopboxCredentialsRejectedError" in results[name].log  # an EshopboxAuthError

    # The failures failed for the reason intended (so the scan covers those error paths).
    assert "AirflowSensorTimeout" in results["sensor timeout (shipment)"].log
    assert "AirflowSensorTimeout" in results["sensor timeout (restock)"].log
    assert "max_rejected=0" in results["push over max_rejected"].log
    assert "HTTP 500" in results["500 storm"].log
    assert "is after end" in results["bad param (start after end)"].log
    assert "bad param (schema)" in raised or results["bad param (schema)"].state == "failed"

    # --- the scan
    minted = sb.tokens.minted()
    assert len(minted) >= 2, "one token, and another after the revocation"
    needles = {value: "client_secret" for value in (sb.client_secret, WRONG_SECRET)}
    needles.update(
        {value: "refresh_token" for value in sb.tokens.issued_secrets() if value.startswith("sbx-rt-")}
    )
    needles[WRONG_REFRESH_TOKEN] = "refresh_token (wrong)"
    needles.update({value: "access_token" for value in minted})
    needles.update({value: "id_token" for value in sb.tokens.issued_secrets() if value.startswith("sbx-id-")})
    scan = Scan(needles)
    scan.files("task log files ($AIRFLOW_HOME/logs)", Path(os.environ["AIRFLOW_HOME"]) / "logs")
    for name, result in results.items():
        scan.text("captured stdout/stderr (capfd)", name, result.log)
    scan.text("Python log records (caplog)", "all runs", caplog.text)
    for name, text in raised.items():
        scan.text("exceptions raised by dag.test()", name, text)
    scan_database(scan, [(r.dag_run.dag_id, r.dag_run.run_id) for r in results.values()])
    scan.files("output files (orders/inventory/push/rejects)", out)

    summary = (
        f"\nSecret-leak scan: {len(results)} dag.test() runs + {len(raised)} refused, "
        f"{len(needles)} secret values ({len(minted)} access tokens minted)\n{scan.table()}\n"
    )
    with capfd.disabled():
        print(summary)
        print(
            "AIRFLOW_HOME tree:",
            sorted(
                str(p.relative_to(os.environ["AIRFLOW_HOME"]))
                for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*")
            )[:50],
        )
    assert scan.rows["output files (orders/inventory/push/rejects)"] >= 6
    assert scan.rows["captured stdout/stderr (capfd)"] == len(results)
    assert sum(len(r.log) for r in results.values()) > 10_000, "the runs printed their task logs"
    assert not scan.hits, "secrets leaked:\n" + "\n".join(
        f"{h.where} | {h.item} | {h.what} | {h.context}" for h in scan.hits
    )


def test_scanner_finds_planted_secrets(tmp_path: Path) -> None:
    """The scan can fail: secrets planted in a log file, a gzip output, a value, or only by shape."""
    secret, token = "sbx-secret-" + "ab" * 20, "sbx-at-" + "cd" * 24
    unknown = "sbx-rt-" + "ef" * 20  # not among the needles: found by its shape
    logs = tmp_path / "logs" / "dag_id=x" / "run_id=y"
    logs.mkdir(parents=True)
    (logs / "attempt=1.log").write_text(f"line 1\nPOST /token client_secret={secret} ok\nline 3\n")
    (logs / "clean.log").write_text("masked: *** \n")
    (tmp_path / "out.jsonl.gz").write_bytes(gzip.compress(json.dumps({"t": token}).encode()))
    scan = Scan({secret: "client_secret", token: "access_token"})
    scan.files("logs", tmp_path / "logs")
    scan.files("outputs", tmp_path)
    scan.text("xcom", "k", json.dumps({"nested": [f"Bearer {unknown}"]}))
    found = {(h.where, Path(h.item).name, h.what) for h in scan.hits}
    assert ("logs", "attempt=1.log", "client_secret") in found
    assert ("outputs", "out.jsonl.gz", "access_token") in found
    assert ("xcom", "k", "pattern") in found
    assert scan.hits_in("logs") == 1 and scan.rows["logs"] == 2
    assert all(secret not in h.context and token not in h.context for h in scan.hits)
