"""Issue 17 on a real CeleryExecutor deployment: two workers standing for two hosts.

1. A 24-run backfill of the hourly orders sync on a ``shared`` connection, then on a ``deployment``
   one, each against its own sandbox with a server rate limit and no client limit: all runs green,
   the union of the files exactly the sandbox's truth; token exchanges 2 (one per worker host) with
   ``shared`` and 1 with ``deployment``; 429s at most 5 % of the requests.
2. Pods: 12 task processes each with a fresh, empty token-cache directory (as KubernetesExecutor
   pods would have): 1 exchange with ``deployment``; the Variable is masked by the REST API.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from deploy_tests.deployment import DeploymentError
from deploy_tests.orders_output import read_hourly_output
from scale_tests.celery_deployment import WORKERS, CeleryDeployment
from scale_tests.conftest import SERVER_RPS, report

UTC = timezone.utc
BACKFILL_FROM = datetime(2026, 11, 2, 0, tzinfo=UTC)
HOURS = 24
MAX_429_SHARE = 0.05


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _backfill(d: CeleryDeployment, sb: EshopboxSandbox, mode: str) -> dict[str, Any]:
    dag_id = f"scaletest_hourly_{mode}"
    began = time.monotonic()
    d.unpause(dag_id)
    body = {
        "dag_id": dag_id,
        "from_date": _iso(BACKFILL_FROM),
        "to_date": _iso(BACKFILL_FROM + timedelta(hours=HOURS - 1)),
        "max_active_runs": 4,
        "reprocess_behavior": "none",
    }
    d.api("POST", "/backfills", json=body)

    runs = d.wait_backfill(dag_id, HOURS, timeout=480)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, f"{mode}: failed runs {failed}\n{d.failure_reason(dag_id, failed[0])}"
    wall = time.monotonic() - began
    truth = httpx.get(
        f"{sb.origin}/__sandbox__/truth/orders",
        params={"start": _iso(BACKFILL_FROM), "end": _iso(BACKFILL_FROM + timedelta(hours=HOURS))},
    ).json()
    output = read_hourly_output(d, runs, dag_id, folder=mode)
    assert output.span == (BACKFILL_FROM, BACKFILL_FROM + timedelta(hours=HOURS))
    seen = output.files
    want = set(truth["orderItemIDs"])
    assert set(seen) == want, f"{mode}: missing {len(want - set(seen))}, extra {len(set(seen) - want)}"
    stats = sb.stats()
    throttled = stats["by_status"].get("429", 0)
    api_requests = stats["requests"] - stats["by_route"].get("token", 0)
    # Both workers run on this machine (one hostname): a worker ran a task of this connection if its
    # own token-cache directory holds the connection's host-level token or rate file.
    workers = {w for w in WORKERS if any(d.token_cache_dir(w).glob("*"))}
    result = {
        "mode": mode,
        "wall": wall,
        "rows": len(seen),
        "exchanges": stats["token_exchanges"],
        "requests": api_requests,
        "429": throttled,
        "share": throttled / max(1, api_requests),
        "workers": len(workers),
    }
    report(
        f"backfill {mode:10}: {HOURS} runs green in {wall:.0f} s on {len(workers)} workers, "
        f"{len(seen)} rows = truth, token exchanges {result['exchanges']}, "
        f"API requests {api_requests}, 429s {throttled} "
        f"({result['share']:.1%}; server limit {SERVER_RPS:.0f}/s, no client limit)"
    )
    return result


def test_backfills_on_two_celery_workers(
    deployment: CeleryDeployment, sandboxes: dict[str, EshopboxSandbox]
) -> None:
    shared = _backfill(deployment, sandboxes["shared"], "shared")
    deployed = _backfill(deployment, sandboxes["deployment"], "deployment")
    assert shared["workers"] == 2 and deployed["workers"] == 2, "both workers must have run tasks"
    assert shared["exchanges"] == 2, shared  # one per worker host: the host-wide cache
    assert deployed["exchanges"] == 1, deployed  # one for the deployment
    assert deployed["share"] <= MAX_429_SHARE, deployed
    assert shared["share"] <= MAX_429_SHARE, shared


def test_pods_with_fresh_cache_dirs_make_one_exchange(
    deployment: CeleryDeployment, sandboxes: dict[str, EshopboxSandbox]
) -> None:
    d, sb = deployment, sandboxes["pods"]
    d.unpause("scaletest_pods")
    began = time.monotonic()
    run_id = d.trigger("scaletest_pods")
    state = d.wait_run("scaletest_pods", run_id, timeout=300)
    assert state == "success", d.failure_reason("scaletest_pods", run_id)
    tis = d.task_instances("scaletest_pods", run_id)
    exchanges = sb.stats()["token_exchanges"]
    assert exchanges == 1, f"{exchanges} exchanges for {len(tis)} pod tasks"
    # The Variable: there, and its value masked by its key name in the REST API.
    name = "eshopbox_access_token__eshopbox_pods"
    try:
        variable = d.api("GET", f"/variables/{name}")
    except DeploymentError as exc:
        raise AssertionError(f"no Variable {name}: {exc}") from None
    for token in sb.tokens.minted():
        assert token not in json.dumps(variable)
    report(
        f"pods: {len(tis)} task processes, each a fresh empty token-cache dir, in "
        f"{time.monotonic() - began:.0f} s: "
        f"{exchanges} token exchange (deployment); REST API shows the Variable's value as "
        f"{str(variable.get('value'))[:20]!r}"
    )
