"""End to end on a real deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor).

Everything goes through the REST API, as a user would: unpause, trigger, backfill, poll states. The
tests share one deployment and run in file order; the leak scan comes last so it also reads what the
backfill and the sensor runs left.

1. a 24-run backfill of ``eshopbox_orders_hourly``: all green, the 24 files hold exactly the sandbox's
   truth for those 24 hours, one token exchange for every run together (host-wide token cache);
2. both deferrable sensors observed ``deferred``, released by a change made in the sandbox, finished
   by the triggerer;
3. the retries test: errors that cannot heal fail on try 1 despite retries=2, five 503s are retried;
4. the secret-leak scan (issue 13, defect 8): successful and deliberately failing runs through the
   real task runner and triggerer, with the sandbox quoting credentials in its error replies; then
   every task log file, every component log, the api-server's task-log endpoint, every row of the
   metadata DB, the DB file's raw bytes and every output file are searched for each secret whole and
   for every piece of 12+ characters of it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from deploy_tests.conftest import WRONG_REFRESH_TOKEN, WRONG_SECRET, report
from deploy_tests.deployment import Deployment, DeploymentError, wait_for
from deploy_tests.leakscan import Scan
from deploy_tests.orders_output import read_hourly_output

UTC = timezone.utc
HOURLY = "eshopbox_orders_hourly"
BACKFILL_FROM = datetime(2026, 11, 2, 0, tzinfo=UTC)
BACKFILL_HOURS = 24
PLANTED = "deploytest_planted_leak"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _all_runs(d: Deployment, dag_id: str) -> list[dict[str, Any]]:
    return d.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]


def _run(
    d: Deployment,
    dag_id: str,
    expect: str,
    conf: dict | None = None,
    logical_date: str | None = None,
    timeout: float = 180,
) -> str:
    began = time.monotonic()
    run_id = d.trigger(dag_id, conf=conf, logical_date=logical_date)
    state = d.wait_run(dag_id, run_id, timeout=timeout)
    assert state == expect, (
        f"{dag_id} {run_id}: {state}, expected {expect}\n{d.failure_reason(dag_id, run_id)}"
    )
    report(f"  {dag_id:32} {state:8} {time.monotonic() - began:5.1f} s  conf={json.dumps(conf or {})}")
    return run_id


# ------------------------------------------------------------------------------------------ backfill
def test_backfill_24_hours_exact_with_one_token_exchange(
    deployment: Deployment, sandbox: EshopboxSandbox
) -> None:
    d = deployment
    began = time.monotonic()
    d.unpause(HOURLY)  # the scheduler also makes the one catch-up-less scheduled run of "now"
    body = {
        "dag_id": HOURLY,
        "from_date": _iso(BACKFILL_FROM),
        "to_date": _iso(BACKFILL_FROM + timedelta(hours=BACKFILL_HOURS - 1)),
        "max_active_runs": 4,
        "reprocess_behavior": "none",
    }
    dry = d.api("POST", "/backfills/dry_run", json=body)
    assert dry["total_entries"] == BACKFILL_HOURS, dry

    def create() -> dict[str, Any] | None:  # SQLite answers 503 while another writer holds the lock
        try:
            return d.api("POST", "/backfills", json=body)
        except DeploymentError as exc:
            if "-> 503" in str(exc):
                return None
            raise

    backfill = wait_for("the backfill to be created", create, 60, interval=1)
    assert backfill["dag_id"] == HOURLY, backfill

    runs = d.wait_backfill(HOURLY, BACKFILL_HOURS, timeout=420)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, f"failed backfill runs: {failed}\n{d.failure_reason(HOURLY, failed[0])}"
    wall = time.monotonic() - began

    # The union of the 24 files is the sandbox's truth for the 24 hours; each row in its own hour's file.
    truth = httpx.get(
        f"{sandbox.origin}/__sandbox__/truth/orders",
        params={"start": _iso(BACKFILL_FROM), "end": _iso(BACKFILL_FROM + timedelta(hours=BACKFILL_HOURS))},
    ).json()
    output = read_hourly_output(d, runs)
    assert output.span == (BACKFILL_FROM, BACKFILL_FROM + timedelta(hours=BACKFILL_HOURS))
    seen, rows_per_file = output.files, output.rows_per_file
    want = set(truth["orderItemIDs"])
    assert set(seen) == want, f"missing {len(want - set(seen))}, extra {len(set(seen) - want)}"
    stats = sandbox.stats()
    hourly_runs = _all_runs(d, HOURLY)
    assert stats["token_exchanges"] == 1, stats  # every hourly run so far (the backfill + scheduled)
    report(
        f"backfill: {BACKFILL_HOURS} runs green in {wall:.0f} s (max_active_runs 4), "
        f"{len(seen)} rows = truth {truth['count']} (per file {min(rows_per_file)}-{max(rows_per_file)}), "
        f"token exchanges {stats['token_exchanges']} for {len(hourly_runs)} hourly runs, "
        f"{stats['requests']} API requests, by status {stats['by_status']}"
    )


# ------------------------------------------------------------------------------------------- sensors
def _processing_order(sb: EshopboxSandbox) -> str:
    with sb.store.lock:
        for con, info in sb.store.orders.items():
            if len(info.item_ids) == 1 and sb.store.rows[info.item_ids[0]]["orderStatus"] == "processing":
                return con
    raise LookupError("no order in status processing")


def test_sensors_defer_and_complete_through_the_triggerer(
    deployment: Deployment, sandbox: EshopboxSandbox
) -> None:
    d = deployment
    con = _processing_order(sandbox)
    sku = "TSHIRT-BLU-S"
    esin = sandbox.store.resolve_esin(sku)
    for warehouse in list(sandbox.store.stock[esin]):
        sandbox.set_stock(esin, warehouse, sellable=0)
    for dag_id in ("eshopbox_wait_for_shipment", "eshopbox_restock_alert"):
        d.unpause(dag_id)
    began = time.monotonic()
    ship = d.trigger("eshopbox_wait_for_shipment", conf={"customer_order_number": con})
    stock = d.trigger("eshopbox_restock_alert", conf={"sku": sku})
    ship_ti = d.wait_task_state("eshopbox_wait_for_shipment", ship, "wait_for_shipment", "deferred")
    stock_ti = d.wait_task_state("eshopbox_restock_alert", stock, "wait_for_stock", "deferred")
    deferred_after = time.monotonic() - began
    for ti in (ship_ti, stock_ti):
        d.wait_deferral_settled(ti["id"])
    polls_before = sandbox.stats()["by_route"].get("inventory_list", 0)
    # The triggerer polls (the sensors' workers are gone): the inventory count grows while deferred.
    wait_for(
        "the triggerer to poll inventory",
        lambda: sandbox.stats()["by_route"].get("inventory_list", 0) > polls_before,
        60,
    )
    sandbox.set_order_status(con, "shipped")
    sandbox.set_stock(esin, next(iter(sandbox.store.stock[esin])), sellable=250)
    assert d.wait_run("eshopbox_wait_for_shipment", ship, timeout=120) == "success", d.failure_reason(
        "eshopbox_wait_for_shipment", ship
    )
    assert d.wait_run("eshopbox_restock_alert", stock, timeout=120) == "success", d.failure_reason(
        "eshopbox_restock_alert", stock
    )
    notified = d.xcom("eshopbox_wait_for_shipment", ship, "notify")
    assert notified["orders"] == [con] and notified["statuses"] == {con: ["shipped"]}, notified
    alert = d.xcom("eshopbox_restock_alert", stock, "alert")
    assert alert.startswith(f"{sku} is back: 250 sellable"), alert
    # Resumed from the trigger: the sensor ran twice (execute, then execute_complete after the event).
    for dag_id, run_id, task_id in (
        ("eshopbox_wait_for_shipment", ship, "wait_for_shipment"),
        ("eshopbox_restock_alert", stock, "wait_for_stock"),
    ):
        log = d.task_log(dag_id, run_id, task_id, 1)
        assert "trigger" in log.lower(), log[-2000:]
    report(
        f"sensors: both deferred after {deferred_after:.0f} s, completed by the triggerer "
        f"{time.monotonic() - began:.0f} s after trigger (order {con} shipped, {sku} restocked to 250)"
    )


# ------------------------------------------------------------------------------------------- retries
RETRIES = "deploytest_retries"
# task -> (state, try it ended on, what its last log must say)
RETRY_EXPECT = {
    "config_error": ("failed", 1, "EshopboxConfigError"),
    "credentials_rejected": ("failed", 1, "EshopboxCredentialsRejectedError"),
    "contract_broken": ("failed", 1, "EshopboxContractError"),
    "transient_503": ("success", 2, ""),
}


def test_errors_that_cannot_heal_fail_on_try_1_and_a_503_is_retried(
    deployment: Deployment, sandbox: EshopboxSandbox
) -> None:
    """The real task runner and scheduler (dag.test() never retries): every task has retries=2."""
    d = deployment
    d.unpause(RETRIES)
    sandbox.quirks.configure(ignore_filters=True)  # orders filters ignored: a contract error, not a retry
    sandbox.faults.script("inventory_list", [503] * 5)  # the hook's 5 attempts of try 1, all 503
    try:
        run_id = _run(d, RETRIES, "failed")
    finally:
        sandbox.quirks.clear()
        sandbox.faults.clear()
    got = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in d.task_instances(RETRIES, run_id)}
    assert got == {task: want[:2] for task, want in RETRY_EXPECT.items()}, got
    for task, (_state, tries, error) in RETRY_EXPECT.items():
        assert error in d.task_log(RETRIES, run_id, task, tries), task
    assert "HTTP 503" in d.task_log(RETRIES, run_id, "transient_503", 1)
    report(f"retries: {got} (retries=2 each; non-healing errors failed on try 1, the 503s healed on try 2)")


# --------------------------------------------------------------------------------------- leak scan
def _needles(sb: EshopboxSandbox) -> dict[str, str]:
    needles = {sb.client_secret: "client_secret", WRONG_SECRET: "client_secret (wrong)"}
    needles[WRONG_REFRESH_TOKEN] = "refresh_token (wrong)"
    issued = sb.tokens.issued_secrets()
    refresh = [v for v in issued if v.startswith("sbx-rt-")]
    for value in refresh:
        needles[value] = (
            "refresh_token (seeded)" if value == sb.credentials.refresh_token else "refresh_token"
        )
    for n, value in enumerate(sb.tokens.minted(), 1):
        needles[value] = f"access_token #{n}"
    for n, value in enumerate((v for v in issued if v.startswith("sbx-id-")), 1):
        needles[value] = f"id_token #{n}"
    # Number the rotated refresh tokens too (labels stay value-free).
    rotated = [v for v, label in needles.items() if label == "refresh_token"]
    for n, value in enumerate(rotated, 1):
        needles[value] = f"refresh_token (rotated #{n})"
    return needles


def test_no_secret_leaks_through_the_real_task_runner(
    deployment: Deployment, sandbox: EshopboxSandbox
) -> None:
    d = deployment
    sb = sandbox
    began = time.monotonic()
    report("leak-scan runs (real task runner / triggerer):")
    for dag_id in (
        "eshopbox_inventory_snapshot",
        "eshopbox_orders_resync",
        "eshopbox_push_orders",
        "deploytest_bad_credentials",
        PLANTED,
    ):
        d.unpause(dag_id)

    # --- successes (every hook path that mints, caches, rotates and re-uses tokens)
    _run(d, "eshopbox_inventory_snapshot", "success", logical_date="2026-11-02T12:00:00Z")
    _run(
        d,
        "eshopbox_orders_resync",
        "success",
        conf={"start": "2026-11-03T00:00:00+00:00", "end": "2026-11-03T04:00:00+00:00"},
    )
    _run(d, "eshopbox_push_orders", "success", conf={"sample_orders": 5, "order_prefix": "LEAK"})
    sb.revoke_tokens()  # the cached token now gets 401: the hook drops it and exchanges again
    _run(
        d,
        "eshopbox_inventory_snapshot",
        "success",
        logical_date="2026-11-02T12:15:00Z",
        conf={"mode": "changed", "start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z"},
    )

    # --- failures on purpose, the sandbox quoting the request's credentials in every error reply
    sb.faults.configure(echo_secrets=True, error_rate=1.0, error_statuses=(500,), routes=["inventory_list"])
    _run(d, "eshopbox_inventory_snapshot", "failed", logical_date="2026-11-02T12:30:00Z")  # 500 + bearer
    sb.faults.configure(echo_secrets=True)
    _run(d, "deploytest_bad_credentials", "failed")  # 401 invalid_grant / invalid_client + wrong values
    sb.revoke_tokens()
    sb.faults.configure(
        echo_secrets=True, echo_secrets_routes=["token"]
    )  # 401 + bearer, then 400 + secret/RT
    _run(d, "eshopbox_inventory_snapshot", "failed", logical_date="2026-11-02T12:45:00Z")
    sb.faults.configure(echo_secrets=True)
    _run(
        d,
        "eshopbox_orders_resync",
        "failed",
        conf={"start": "2026-11-03T00:00:00+00:00", "end": "2026-11-02T00:00:00+00:00"},
    )

    # --- the triggerer's error path: a deferred sensor whose polls get echoing 500s, then released
    sku = "MUG-BLU-S"
    esin = sb.store.resolve_esin(sku)
    for warehouse in list(sb.store.stock[esin]):
        sb.set_stock(esin, warehouse, sellable=0)
    stock_run = d.trigger("eshopbox_restock_alert", conf={"sku": sku})
    ti = d.wait_task_state("eshopbox_restock_alert", stock_run, "wait_for_stock", "deferred")
    d.wait_deferral_settled(ti["id"])
    errors_before = sb.stats()["by_status"].get("500", 0)
    sb.faults.configure(echo_secrets=True, error_rate=1.0, error_statuses=(500,), routes=["inventory_list"])
    wait_for(
        "three echoing 500s answered to the triggerer",
        lambda: sb.stats()["by_status"].get("500", 0) >= errors_before + 3,
        60,
    )
    sb.faults.clear()
    sb.set_stock(esin, next(iter(sb.store.stock[esin])), sellable=250)
    assert d.wait_run("eshopbox_restock_alert", stock_run, timeout=120) == "success"
    report(f"  {'eshopbox_restock_alert':32} success  (deferred; triggerer polls answered 500 + echo first)")
    stats = sb.stats()
    echoed = stats["faults_injected"].get("echo_secrets", 0)

    # --- plant, last: a task prints the client secret whole (the masker hides it in the task log) and
    # in halves (no masker can know those). Component logs are scanned up to here for the real scan.
    offsets = {p.name: p.stat().st_size for p in d.component_logs.iterdir()}
    planted = _run(d, PLANTED, "success")
    report(
        f"leak-scan runs done in {time.monotonic() - began:.0f} s; sandbox echoed credentials in {echoed} "
        f"error replies; {len(sb.tokens.minted())} access tokens minted"
    )

    # --- the scan
    needles = _needles(sb)
    scan = Scan(needles)
    planted_logs = d.logs / f"dag_id={PLANTED}"
    scan.files("task log files (AIRFLOW_HOME/logs)", d.logs, skip=[planted_logs])
    for path in sorted(d.component_logs.iterdir()):
        with path.open("rb") as fh:
            text = fh.read(offsets.get(path.name, 0)).decode("utf-8", errors="replace")
        scan.text("component stdout/stderr (before the plant)", path.name, text)
    for dag in d.api("GET", "/dags", params={"limit": 100})["dags"]:
        if dag["dag_id"] == PLANTED:
            continue
        for run in _all_runs(d, dag["dag_id"]):
            for ti in d.task_instances(dag["dag_id"], run["dag_run_id"]):
                for attempt in range(1, ti["try_number"] + 1):
                    item = f"{dag['dag_id']}/{run['dag_run_id']}/{ti['task_id']}/{attempt}"
                    scan.text(
                        "api-server task-log endpoint",
                        item,
                        d.task_log(dag["dag_id"], run["dag_run_id"], ti["task_id"], attempt),
                    )
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=d.postgres.port, user="airflow", dbname="airflow")
    try:
        scan.database("metadata DB rows (every table)", con)
        con.rollback()  # end the scan's read transaction: CHECKPOINT cannot run inside one
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("CHECKPOINT")  # every row on disk in the heap files before they are read
    finally:
        con.close()
    # PostgreSQL keeps running and may delete a cache file (pg_internal.init) between listing and read.
    scan.files("metadata DB raw files (PostgreSQL heap + WAL)", d.database_files, live=True)
    if scan.vanished:
        report(f"files deleted by PostgreSQL before they were read: {scan.vanished}")
    scan.files("output files", d.output)

    # The plant proves the scan fails when a secret gets out, and that a half counts.
    plant = Scan(needles)
    plant.files("planted task log", planted_logs)
    for path in sorted(d.component_logs.iterdir()):
        with path.open("rb") as fh:
            fh.seek(offsets.get(path.name, 0))
            plant.text(
                "component stdout/stderr (from the plant on)", path.name, fh.read().decode(errors="replace")
            )
    report(f"\nplanted-leak run ({planted}): {len(plant.hits)} hits")
    for hit in plant.hits:
        report(f"  {hit.where} | {hit.item} | {hit.describe()} | ...{hit.context}...")

    report(
        f"\nsecret-leak scan: {len(needles)} secret values "
        f"({sum(1 for v in needles.values() if v.startswith('access_token'))} access tokens), "
        f"pieces >= 12 chars count\n{scan.table()}"
    )
    if scan.hits:
        report("hits:\n" + scan.report())

    in_file = plant.hits_in("planted task log")
    length = len(sb.client_secret)
    halves = sorted((h.start, h.stop) for h in in_file if h.label == "client_secret")
    assert halves == [(0, length // 2), (length // 2, length)], plant.report()
    assert not [h for h in in_file if h.whole], "the masker let the whole secret into the task log"
    assert scan.searched["task log files (AIRFLOW_HOME/logs)"] >= 30
    assert echoed >= 5, "the sandbox's echo_secrets fault did not fire: the error paths were not exercised"
    assert not scan.hits, f"{len(scan.hits)} secret leaks:\n{scan.report(50)}"
