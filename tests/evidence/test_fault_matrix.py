"""Fault matrix (issue 6): every data operator, end to end under ``dag.test()``, under each fault.

Operators: the orders sync (``eshopbox_orders_resync`` over four days, ~6,600 rows: six times the
1,000-hit cap, with two bulk-update bursts of 111 and 234 rows sharing one millisecond), the
inventory snapshot (300 ESINs, 761 stock rows, 13 pages) and the order push (60 rows: 56 valid
orders of which 6 exist already, 4 malformed).

Faults, each alone and all together: latency, 429 with Retry-After, 500/502/503, dropped
connections, truncated JSON, every token revoked mid-run, the token expiring mid-run (the sandbox
clock jumps past its lifetime), rows updated while paging (orders) and a smaller deep-paging cap
(orders). Rates are moderate so the hook's default retries usually absorb them, and seeded.

A run may end in exactly two ways: the exact data at the destination, or a failed task with a clear
error and nothing at the destination (for the push: no order created twice). Each cell also states
which of the two it expects. The table is printed at the end of the module (``pytest -s``) and
written to ``<session dir>/fault_matrix.txt``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import DagTestResult, load_example_dag, run_dag

from .conftest import ALL_RANDOM, TOKEN_TTL, Cell, Matrix, RequestTrigger

UTC = timezone.utc
WINDOW = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC))
BUCKETS = ("sellable", "nonSellable", "inwardInProcess", "outwardInProcess")
PUSH_VALID, PUSH_EXISTING, PUSH_MALFORMED = 56, 6, 4
# What a failed task must have said: an Eshopbox error naming the problem.
CLEAR_ERROR = re.compile(r"(Eshopbox\w*Error|AirflowFailException): .{10,}")


@dataclass(frozen=True)
class Fault:
    """How to inject one fault: random settings, a smaller hit cap, and/or a mid-run action."""

    name: str
    configure: dict[str, Any] = field(default_factory=dict)
    hit_cap: int | None = None
    mid_run: str | None = None  # "revoke", "expire" or "revoke+expire"
    token_ttl: int | None = None  # a short real-time token lifetime for this run
    operators: tuple[str, ...] = ("orders", "inventory", "push")
    expected: str = "exact"
    # faults_injected kinds that must show up (proof the cell really exercised the fault)
    kinds: tuple[str, ...] = ()


FAULTS = [
    Fault("latency 25ms", {"latency_ms": 25}, kinds=("latency",)),
    Fault("429 Retry-After 1", {"throttle_rate": 0.08, "retry_after": 1}, kinds=("throttle",)),
    # 5%: one request failing all 5 attempts is then about 3e-7 (at 10% it was 1e-5 a request, and a
    # read of a few hundred requests failed that way once in CI, which the cell does not expect).
    Fault("500/502/503", {"error_rate": 0.05, "error_statuses": (500, 502, 503)}, kinds=("error",)),
    Fault("dropped connection", {"drop_rate": 0.06}, kinds=("drop",)),
    Fault("truncated JSON", {"truncate_rate": 0.06}, kinds=("truncate",)),
    Fault("token revoked", mid_run="revoke"),
    Fault("token expired", mid_run="expire"),
    # 3 s tokens, 450 ms a request: each run outlives a token (push, the shortest, takes about 4.8 s)
    # and a fresh token still has 2.5 s to reach the sandbox. With 2 s tokens and 300 ms, under load
    # a fresh token now and then expired before its request was served ("rejected a freshly minted
    # token", rightly); 4 s tokens outlived the push run on a quiet machine (3.2 s).
    Fault(
        "token ttl 3s, run > 3s",
        {"latency_ms": 450, "routes": ["orders_list", "inventory_list", "order_create", "order_get"]},
        token_ttl=3,
        kinds=("latency",),
    ),
    Fault(
        "rows updated while paging",
        {"mutate_rate": 0.15, "mutate_rows": 3, "routes": ["orders_list"]},
        operators=("orders",),
        kinds=("mutate",),
    ),
    Fault("hit cap 300 (> bursts)", hit_cap=300, operators=("orders",)),
    Fault("hit cap 200 (< a burst)", hit_cap=200, operators=("orders",), expected="fail"),
    # Beyond what retries absorb: proves the other allowed ending (failed, clear error, nothing written).
    Fault(
        "API down (503 always)",
        {
            "error_rate": 1.0,
            "error_statuses": (503,),
            "routes": ["orders_list", "inventory_list", "order_create"],
        },
        expected="fail",
        kinds=("error",),
    ),
    Fault(
        "token endpoint down",
        {"error_rate": 1.0, "error_statuses": (503,), "routes": ["token"]},
        mid_run="revoke",
        operators=("push",),
        expected="fail",
        kinds=("error",),
    ),
    Fault(
        "all together",
        {**ALL_RANDOM, "mutate_rate": 0.1, "mutate_rows": 2},
        mid_run="revoke+expire",
        operators=("orders",),
        expected="either",
    ),
    Fault(
        "all together",
        ALL_RANDOM,
        mid_run="revoke+expire",
        operators=("inventory", "push"),
        expected="either",
    ),
]
# After how many API requests (of the run) the mid-run action fires: well inside every run.
MID_RUN_AFTER = {"orders": 40, "inventory": 5, "push": 20}

CELLS = [
    pytest.param(
        fault,
        operator,
        id=f"{operator}-{fault.name}",
        # Each cell resets the sandbox and depends on no other (tests/conftest.py): its own xdist group.
        marks=pytest.mark.xdist_group(f"fault-matrix-{operator}-{fault.name}"),
    )
    for fault in FAULTS
    for operator in fault.operators
]


@pytest.fixture(autouse=True)
def _quiet_sandbox(sandbox: EshopboxSandbox) -> Iterator[None]:
    """Every run starts with no faults, zeroed counters, the default hit cap and token lifetime."""
    hit_cap = sandbox.hit_cap
    sandbox.faults.clear()
    sandbox.reset_stats()
    yield
    sandbox.faults.clear()
    sandbox.hit_cap = hit_cap
    sandbox.tokens.ttl = TOKEN_TTL


# --- helpers ---------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def _leftovers(directory: Path) -> list[str]:
    """Every file under ``directory`` (a failed run must leave none, temporaries included)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _first_error(log: str) -> str:
    match = CLEAR_ERROR.search(log)
    return match.group(0)[:160] if match else ""


def _mid_run_action(sb: EshopboxSandbox, what: str) -> Callable[[], None]:
    def act() -> None:
        if "revoke" in what:
            sb.revoke_tokens()
        if "expire" in what:
            sb.clock.advance(TOKEN_TTL + 1)

    return act


def _fresh_token() -> None:
    """Mint a token now, with the whole TOKEN_TTL ahead, into the caches the run reads. A cell that
    breaks the token endpoint must fail on its own mid-run revoke, not at its first request on a
    token an earlier test on this worker left dead or about to expire (CI: the push failed before
    its 20th request, 'the run ended before the mid-run action fired')."""
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.hooks.token_cache import TokenCache

    TokenCache.clear_process_cache()
    shutil.rmtree(os.environ["ESHOPBOX_TOKEN_CACHE_DIR"], ignore_errors=True)
    with EshopboxHook() as hook:
        ok, message = hook.test_connection()
    assert ok, message


def _inject(sb: EshopboxSandbox, fault: Fault, operator: str) -> RequestTrigger | None:
    if "token" in fault.configure.get("routes", ()):
        _fresh_token()
    if fault.configure:
        sb.faults.configure(**fault.configure, seed=1234)
    if fault.hit_cap is not None:
        sb.hit_cap = fault.hit_cap
    if fault.token_ttl is not None:
        sb.tokens.ttl = fault.token_ttl
        sb.revoke_tokens()  # the client's cached long-lived token goes; every new one lives token_ttl s
    if fault.mid_run:
        return RequestTrigger(sb, MID_RUN_AFTER[operator], _mid_run_action(sb, fault.mid_run))
    return None


def _check_fault_happened(sb: EshopboxSandbox, fault: Fault, cell: Cell, fired: bool | None) -> None:
    stats = sb.stats()
    injected = dict(stats["faults_injected"])
    if fault.mid_run:
        injected[fault.mid_run] = int(bool(fired))
        statuses = stats["by_status"]
        injected["401s"] = statuses.get("401", 0)
        injected["token_exchanges"] = stats["token_exchanges"]
    cell.injected = ", ".join(f"{k}={v}" for k, v in injected.items())
    cell.extra["stats"] = stats
    for kind in fault.kinds:
        assert injected.get(kind, 0) > 0, f"{fault.name}: no {kind} fault was injected ({injected})"
    if fault.token_ttl is not None:
        injected["token_exchanges"] = stats["token_exchanges"]
        assert cell.seconds > fault.token_ttl + 0.5, f"{fault.name}: the run did not outlive a token"
        assert stats["token_exchanges"] >= 2, f"{fault.name}: expected fresh tokens during the run ({stats})"
        cell.injected = ", ".join(f"{k}={v}" for k, v in injected.items())
    if fault.mid_run:
        assert fired, f"{fault.name}: the run ended before the mid-run action fired"
        assert stats["by_status"].get("401", 0) > 0, f"{fault.name}: no request saw the dead token"


# --- the three operators -----------------------------------------------------------------------------
def _run_orders(sb: EshopboxSandbox, output_dir: Path, cell: Cell, capfd: Any, inject: Callable) -> None:
    start, end = WINDOW
    before = {row["orderItemID"]: row["updatedAt"] for row in sb.truth_order_rows(start, end)}
    destination = output_dir / "orders.jsonl.gz"
    cell.rows_expected = len(before)
    result = inject(
        lambda: run_dag(
            "eshopbox_orders_resync",
            capfd,
            run_conf={
                "start": start.isoformat(),
                "end": end.isoformat(),
                "destination": f"file://{destination}",
            },
        )
    )
    # Rows the sandbox moved during the run (mutate fault) may be missing; every other row must be there.
    untouched = {i for i, ts in before.items() if sb.store.rows[i]["updatedAt"] == ts}
    if len(untouched) != len(before):
        cell.note = f"{len(before) - len(untouched)} rows moved out of the window during the run"
    if sb.hit_cap != api.ORDERS_HIT_CAP:
        bursts = sorted(Counter(before.values()).values())[-2:]
        cell.note = f"server hit_cap={sb.hit_cap}, largest one-ms bursts {bursts}"
    if result.state == "success":
        ids = [row["orderItemID"] for row in _read_jsonl(destination)]
        cell.rows_written = len(ids)
        cell.doubled = len(ids) - len(set(ids))
        cell.lost = len(untouched - set(ids))
        extra = set(ids) - set(before)
        if cell.doubled or cell.lost or extra:
            cell.outcome = f"VIOLATION: {cell.lost} lost, {cell.doubled} doubled, {len(extra)} foreign"
        else:
            cell.outcome = "exact"
        assert result.returns["resync_orders"]["rows"] == len(ids)
        assert _leftovers(output_dir) == ["orders.jsonl.gz"]
    else:
        _failed_clean(cell, result, output_dir, {"resync_orders": "failed"})


def _run_inventory(sb: EshopboxSandbox, output_dir: Path, cell: Cell, capfd: Any, inject: Callable) -> None:
    def as_tuples(rows: list[dict[str, Any]]) -> list[tuple]:
        return [(r["esin"], r["sku"], r["warehouse"], *(r[b] for b in BUCKETS)) for r in rows]

    truth = as_tuples(sb.inventory_rows())
    cell.rows_expected = len(truth)
    # The example DAG retries after a minute; a matrix cell judges one attempt.
    dag = load_example_dag("eshopbox_inventory_snapshot", snapshot_inventory={"retries": 0})
    result = inject(lambda: run_dag(dag, capfd, run_conf={"mode": "snapshot"}))
    if result.state == "success":
        path = Path(result.returns["snapshot_inventory"]["path"].removeprefix("file://"))
        got = as_tuples(_read_jsonl(path))
        cell.rows_written = len(got)
        cell.doubled = len(got) - len(set(got))
        cell.lost = len(set(truth) - set(got))
        wrong = len(set(got) - set(truth))
        cell.outcome = (
            "exact"
            if got == sorted(truth, key=lambda t: (t[0], t[2]))
            else (f"VIOLATION: {cell.lost} lost, {cell.doubled} doubled, {wrong} wrong")
        )
        assert _leftovers(output_dir) == [str(path.relative_to(output_dir))]
    else:
        _failed_clean(cell, result, output_dir, {"snapshot_inventory": "failed"})


def _push_input(sb: EshopboxSandbox, tmp_path: Path, prefix: str) -> tuple[set[str], set[str], str]:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from tests.create_orders.test_create_orders import _SAMPLE, _malformed

    valid = [_SAMPLE(f"{prefix}-{i:03d}") for i in range(PUSH_VALID)]
    existing = valid[:: PUSH_VALID // PUSH_EXISTING][:PUSH_EXISTING]
    with EshopboxHook() as hook:
        assert {hook.create_order(order).status for order in existing} == {"created"}
    rows: list[dict[str, Any]] = list(valid)
    for index, (order, _reasons) in zip((5, 20, 33, 47), _malformed(f"{prefix}-BAD"), strict=True):
        rows.insert(index, order)
    assert len(rows) == PUSH_VALID + PUSH_MALFORMED == 60
    source = tmp_path / "in" / "orders.jsonl"
    source.parent.mkdir(parents=True)
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    numbers = {order["customerOrderNumber"] for order in valid}
    return numbers, {order["customerOrderNumber"] for order in existing}, f"file://{source}"


def _run_push(
    sb: EshopboxSandbox,
    output_dir: Path,
    cell: Cell,
    capfd: Any,
    inject: Callable,
    tmp_path: Path,
    prefix: str,
) -> None:
    numbers, existing, source = _push_input(sb, tmp_path, prefix)
    sb.reset_stats()
    rejects = output_dir / "rejects.jsonl"
    cell.rows_expected = len(numbers)
    conf = {"source": source, "rejects": f"file://{rejects}", "generate_sample": False, "max_rejected": 4}
    result = inject(lambda: run_dag("eshopbox_push_orders", capfd, run_conf=conf))
    created = {k: v for k, v in sb.orders_created().items() if k.startswith(f"{prefix}-")}
    cell.rows_written = len(created)
    cell.doubled = sum(v - 1 for v in created.values() if v > 1)
    cell.lost = len(numbers - set(created))
    foreign = set(created) - numbers  # a malformed order must never reach the API
    if result.state == "success":
        manifest = result.returns["push_orders"]
        cell.note = (
            f"created={manifest['created']} existing={manifest['existing']} rejected={manifest['rejected']}"
        )
        consistent = (
            manifest["created"] + manifest["existing"] == len(numbers)
            and manifest["existing"] <= len(existing)
            and manifest["rejected"] == PUSH_MALFORMED
            and len(_read_jsonl(rejects)) == PUSH_MALFORMED
        )
        ok = created == dict.fromkeys(numbers, 1) and consistent
        cell.outcome = (
            "exact"
            if ok
            else (
                f"VIOLATION: {cell.lost} missing, {cell.doubled} doubled, {len(foreign)} foreign, "
                f"counts consistent={consistent}"
            )
        )
    else:
        # The push's destination is Eshopbox itself: a failed push may have created orders (each once).
        # No cell here should fail on max_rejected (which writes the rejects file first, by design): an
        # outage must stop the push without writing a rejects file full of valid orders.
        _failed_clean(cell, result, output_dir, {"write_sample_orders": "success", "push_orders": "failed"})
        if cell.doubled or foreign:
            cell.outcome = (
                f"VIOLATION: failed with {cell.doubled} orders created twice, {len(foreign)} foreign"
            )


def _failed_clean(cell: Cell, result: DagTestResult, output_dir: Path | None, states: dict[str, str]) -> None:
    """A failed run: the expected task failed, said why, and (files) left nothing behind."""
    error = _first_error(result.log)
    cell.note = f"{cell.note}; error: {error}" if cell.note else f"error: {error}"
    left = _leftovers(output_dir) if output_dir is not None and output_dir.exists() else []
    if result.task_states != states:
        cell.outcome = f"VIOLATION: task states {result.task_states}"
    elif not error:
        cell.outcome = "VIOLATION: failed without a clear Eshopbox error in the log"
    elif left:
        cell.outcome = f"VIOLATION: failed but left {left}"
    else:
        cell.outcome = "failed clean"


# --- the matrix ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "operator"), CELLS)
def test_fault_cell(
    fault: Fault,
    operator: str,
    sandbox: EshopboxSandbox,
    output_dir: Path,
    tmp_path: Path,
    matrix: Matrix,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cell = matrix.add(Cell(fault.name, operator, fault.expected))
    fired: list[bool] = []

    def inject(run: Callable[[], DagTestResult]) -> DagTestResult:
        trigger = _inject(sandbox, fault, operator)
        started = time.monotonic()
        try:
            return run()
        finally:
            cell.seconds = time.monotonic() - started
            if trigger is not None:
                fired.append(trigger.stop())
            sandbox.faults.clear()
            sandbox.tokens.ttl = TOKEN_TTL

    if operator == "orders":
        _run_orders(sandbox, output_dir, cell, capfd, inject)
    elif operator == "inventory":
        _run_inventory(sandbox, output_dir, cell, capfd, inject)
    else:
        prefix = "MX" + str(len(matrix.cells))
        _run_push(sandbox, output_dir, cell, capfd, inject, tmp_path, prefix)

    assert not cell.outcome.startswith("VIOLATION"), (
        f"{fault.name} x {operator}: {cell.outcome} ({cell.note})"
    )
    assert cell.outcome in ("exact", "failed clean"), cell.outcome
    if fault.expected != "either":
        want = "exact" if fault.expected == "exact" else "failed clean"
        assert cell.outcome == want, (
            f"{fault.name} x {operator}: expected {want}, got {cell.outcome} ({cell.note})"
        )
    _check_fault_happened(sandbox, fault, cell, fired[0] if fired else None)


# --- bug found by the matrix: a truncated 4xx answer was final -----------------------------------
def test_a_refusal_with_a_cut_json_body_is_retried_even_for_a_post() -> None:
    """A 422 "already exists" whose body arrived cut used to reject an existing order as refused."""
    import httpx

    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks._http import RequestSpec, _Retry, classify_response

    spec = RequestSpec(api.ORDER_CREATE, "http://sandbox/orders", json={}, idempotent=False)
    cut = httpx.Response(
        422, content=b'{"message": "The given data was inv', headers={"content-type": "application/json"}
    )
    with pytest.raises(_Retry, match="not valid JSON"):
        classify_response(spec, cut)
    # A refusal that is not JSON at all (a proxy's HTML page) is still final, and never echoed.
    html = httpx.Response(403, content=b"<html>denied</html>", headers={"content-type": "text/html"})
    assert classify_response(spec, html).status == 403


def test_existing_order_whose_duplicate_answer_is_cut_counts_as_existing(
    sandbox: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    # Outside dag.test the task-log handlers an earlier run installed point at closed capture streams.
    monkeypatch.setattr(logging.getLogger("airflow_provider_eshopbox.hooks._http"), "disabled", True)
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from tests.create_orders.test_create_orders import _SAMPLE

    order = _SAMPLE("CUT-0001")
    with EshopboxHook() as hook:
        assert hook.create_order(order).status == "created"
        sandbox.faults.script("order_create", ["truncate"])  # the duplicate 422 arrives cut in half
        assert hook.create_order(order).status == "existing"
    assert sandbox.stats()["faults_injected"] == {"truncate": 1}
    assert sandbox.orders_created()["CUT-0001"] == 1
