"""Orders sync vs. a sequential HttpHook pager, against the sandbox with a fixed added latency.

Each measurement runs in its own child process (so peak RSS is that run's alone) against one
sandbox process, warmed by one uncounted run, side by side in one invocation; the table quotes
rows/s, the ratio, the fraction of the ideal (pages x latency / concurrency), requests, the
client's CPU per request and peak RSS above the child's baseline.

A second table puts the sandbox behind a token bucket (``--limits``, requests/s, burst 10) where
the rate, not latency, decides: the operator told the limit (``max_requests_per_second`` on the
connection) and not told, beside an hourly pager paced to the limit and the floor
``ceil(rows / per_page) / rate``, with requests, 429s and seconds.

Each window size (``--rows``) gets both tables; beside the operator, a plain ``httpx.AsyncClient``
loop makes as many requests at the same concurrency, for the client CPU per request, and the
``guards`` column is what the contract checks (issue 22) cost, median share of requests. As for
hourly tasks under one token, the connection test before the timer mints the token (as the pager's
is minted before its timer) and asks page 0, which the host then knows for the token's lifetime
(24 h), so the read does not ask it again.

Bounds (exit status 1 if one fails, issue 23): at every size, at most ``--max-requests-per-page``
(1.2) requests per page with no limit, and at most ``--max-vs-floor`` (1.25) times the floor under
a ``--bound-limit`` (10/s) server limit, told and not told; and from ``--cpu-bound-rows`` (20,000)
rows, at most ``--max-cpu-ms`` (3.5) ms of client CPU per request with no limit (below that size a
task's fixed CPU, the TLS context and first-use imports, is spread over a few dozen requests).

    python -m bench.orders_sync [--rows 2000,20000] [--latency-ms 50] [--concurrency 16]
        [--limits 5,10,20] [--rss-rows 20000,200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench import rss_mb
from bench.report import headline as report_headline

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 7
BURST = 10  # the sandbox token bucket's size in the rate-limited table


@contextmanager
def sandbox(rows: int, latency_ms: float) -> Iterator[tuple[str, str]]:
    """A sandbox in its own process (its CPU is not ours); yields (origin, connection JSON)."""
    from airflow_provider_eshopbox.sandbox.process import SandboxProcess

    args = ["--order-items", str(rows), "--seed", "7", "--latency-ms", str(latency_ms), "--days", str(DAYS)]
    with SandboxProcess(*args) as process:
        yield process.origin, process.connection_json


def _stats(origin: str) -> dict[str, Any]:
    return httpx.get(f"{origin}/__sandbox__/stats").json()


def _reset(origin: str) -> None:
    httpx.delete(f"{origin}/__sandbox__/stats")


def _limit(origin: str, latency_ms: float, rps: float | None) -> None:
    """Set the sandbox's token bucket (None: none); the latency is restated, as the body replaces it."""
    body: dict[str, Any] = {"latency_ms": latency_ms}
    if rps is not None:
        body["rate_limit"] = {"rps": rps, "burst": BURST}
    httpx.post(f"{origin}/__sandbox__/faults", json=body).raise_for_status()


def _child(
    kind: str,
    conn: str,
    concurrency: int,
    origin: str,
    *,
    client_rps: float | None = None,
    pace: float = 0,
    requests: int = 0,
) -> dict[str, Any]:
    if client_rps is not None:
        parsed = json.loads(conn)
        parsed.setdefault("extra", {})["max_requests_per_second"] = client_rps
        conn = json.dumps(parsed)
    env = dict(
        os.environ,
        AIRFLOW_CONN_ESHOPBOX_DEFAULT=conn,
        ESHOPBOX_TOKEN_CACHE_DIR=tempfile.mkdtemp(),
        BENCH_SANDBOX_ORIGIN=origin,
    )
    command = [sys.executable, "-m", "bench.orders_sync", "--child", kind, "--concurrency", str(concurrency)]
    out = subprocess.run(
        [*command, "--pace", str(pace), "--requests", str(requests)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_operator(concurrency: int, destination: Path) -> dict[str, Any]:
    # What execute() imports lazily is imported here, outside the timing, as the pager's imports are.
    # And Airflow's task runner loads plugins (listeners) before execute(); the first object-storage
    # write would otherwise load them inside the timing (0.8 s here, with the example plugins).
    from airflow.sdk.io.fs import _register_filesystems
    from airflow.sdk.listener import get_listener_manager

    import airflow_provider_eshopbox.hooks.eshopbox
    import airflow_provider_eshopbox.sync.slicing
    import airflow_provider_eshopbox.sync.storage
    from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

    get_listener_manager()
    # The first object-storage call imports every installed provider's filesystem (the amazon
    # provider's pulls in boto3: 0.4 s of CPU), once per task process and whatever the URL: Airflow's
    # cost, not a request's. Timed on its own and printed under the table.
    discovery = time.process_time()
    _register_filesystems()
    discovery = time.process_time() - discovery
    spent = _capture_slice_stats()
    # The pager's token is minted before its timer starts, so the operator's is too: the connection
    # test puts one in the token cache the operator's hook reads. Its one query is not counted.
    ok, message = airflow_provider_eshopbox.hooks.eshopbox.EshopboxHook().test_connection()
    if not ok:
        raise SystemExit(message)
    _reset(os.environ["BENCH_SANDBOX_ORIGIN"])
    op = EshopboxOrdersToStorageOperator(
        task_id="bench",
        destination=f"file://{destination}",
        start=START.isoformat(),
        end=(START + timedelta(days=DAYS)).isoformat(),
        max_concurrency=concurrency,
    )
    baseline = rss_mb()
    began, cpu = time.monotonic(), time.process_time()
    manifest = op.execute({})  # type: ignore[arg-type]
    seconds = time.monotonic() - began
    return {
        "rows": manifest["rows"],
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "baseline_mb": baseline,
        "fs_discovery_cpu_seconds": discovery,
        "read_cpu_seconds": spent[0].read_cpu if spent else 0.0,
        "spent": dict(spent[0].spent) if spent else {},
        "held": dict(spent[0].held) if spent else {},
    }


def _capture_slice_stats() -> list[Any]:
    """The operator's WindowReader stats, once its read is over (for the request breakdown)."""
    from airflow_provider_eshopbox.sync import slicing

    captured: list[Any] = []
    read = slicing.WindowReader.read

    async def capturing(self: Any, start_ms: int, end_ms: int) -> Any:
        cpu = time.process_time()
        captured.append(await read(self, start_ms, end_ms))
        captured[-1].read_cpu = time.process_time() - cpu  # the read alone, without the write
        return captured[-1]

    slicing.WindowReader.read = capturing  # type: ignore[method-assign]
    return captured


def print_breakdown(runs: list[tuple[str, dict[str, Any]]], per_page: int = 100) -> None:
    """Where each run's requests went (slicing.REQUEST_KINDS): requests, and beyond the pages of its rows."""
    from airflow_provider_eshopbox.sync.slicing import REQUEST_KINDS

    print("\nRequests by kind (slicing.REQUEST_KINDS): requests / beyond rows-per-page (waste)")
    print(f"{'kind':<13}" + "".join(f"{label[:22]:>24}" for label, _ in runs))
    for kind in REQUEST_KINDS:
        cells = []
        for _, r in runs:
            n, rows = r["spent"].get(kind, 0), r["held"].get(kind, 0)
            waste = n if kind == "re-read" else n - rows / per_page
            cells.append(f"{n} / {waste:.1f}" if n else "-")
        if any(cell != "-" for cell in cells):
            print(f"{kind:<13}" + "".join(f"{cell:>24}" for cell in cells))
    totals = [
        f"{sum(r['spent'].values())} / {sum(r['spent'].values()) - r['rows'] / per_page:.1f}" for _, r in runs
    ]
    print(f"{'total':<13}" + "".join(f"{cell:>24}" for cell in totals))


def _run_pager(windowed: bool, destination: Path, pace: float = 0) -> dict[str, Any]:
    """What a user would otherwise write: HttpHook, a bearer token, pages until hasNext is false,
    each hit written as a JSON line to the same kind of file the operator writes (.jsonl.gz, at the
    operator's gzip level: the gzip module's default of 9 would slow the pager down). ``pace`` > 0:
    request starts at least ``1 / pace`` s apart, as a user who knows the rate limit would write."""
    import gzip

    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.sync.destination import GZIP_LEVEL

    config = EshopboxHook().get_config()
    token = httpx.post(
        config.auth_url,
        json=api.token_request_body(config.client_id, config.client_secret, config.refresh_token),
    ).json()["access_token"]
    os.environ["AIRFLOW_CONN_ESHOPBOX_HTTP"] = json.dumps({"conn_type": "http", "host": config.api_url})
    hook = HttpHook(method="GET", http_conn_id="eshopbox_http")
    headers = {"Authorization": f"Bearer {token}", "ProxyHost": config.workspace}
    step = timedelta(hours=1) if windowed else timedelta(days=DAYS)
    baseline = rss_mb()
    began = next_start = time.monotonic()
    ids: set[str] = set()
    with gzip.open(destination, "wt", compresslevel=GZIP_LEVEL, encoding="utf-8") as out:
        lo = START
        while lo < START + timedelta(days=DAYS):
            hi = lo + step
            page = 1
            while True:
                if pace:
                    time.sleep(max(0.0, next_start - time.monotonic()))
                    next_start = time.monotonic() + 1 / pace
                body = hook.run(
                    api.ORDERS_LIST.path,
                    data={
                        "filters": api.orders_window_filter(
                            int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
                        ),
                        "page": page,
                        "per_page": api.ORDERS_PER_PAGE_MAX,
                    },
                    headers=headers,
                ).json()
                for hit in body["hits"]:
                    ids.add(hit["orderItemID"])
                    out.write(json.dumps(hit) + "\n")
                if not body["hasNext"]:
                    break
                page += 1
            lo = hi
    seconds = time.monotonic() - began
    return {"rows": len(ids), "seconds": seconds, "baseline_mb": baseline}


def _run_httpx(concurrency: int, requests: int) -> dict[str, Any]:
    """A plain ``httpx.AsyncClient`` loop: ``requests`` GETs of the whole window's pages 1..10 (full
    pages of 100 hits, as most of the operator's are), ``concurrency`` at a time, each body parsed
    with ``response.json()``: the HTTP client's own CPU per request, for comparison."""
    import asyncio

    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    config = EshopboxHook().get_config()
    token = httpx.post(
        config.auth_url,
        json=api.token_request_body(config.client_id, config.client_secret, config.refresh_token),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", api.PROXY_HOST_HEADER: config.workspace}
    url = f"{config.api_url}/{api.ORDERS_LIST.path}"
    window = api.orders_window_filter(
        int(START.timestamp() * 1000), int((START + timedelta(days=DAYS)).timestamp() * 1000)
    )
    pages = api.ORDERS_HIT_CAP // api.ORDERS_PER_PAGE_MAX
    rows = 0

    async def loop() -> None:
        nonlocal rows
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            numbers = iter(range(requests))

            async def worker() -> None:
                nonlocal rows
                for n in numbers:
                    params = {"filters": window, "page": n % pages + 1, "per_page": api.ORDERS_PER_PAGE_MAX}
                    response = await client.get(url, params=params)
                    response.raise_for_status()
                    rows += len(response.json()["hits"])

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    baseline = rss_mb()
    began, cpu = time.monotonic(), time.process_time()
    asyncio.run(loop())
    cpu = time.process_time() - cpu
    return {"rows": rows, "seconds": time.monotonic() - began, "cpu_seconds": cpu, "baseline_mb": baseline}


def child(kind: str, concurrency: int, pace: float, requests: int = 0) -> None:
    """One measurement; both readers write the same kind of file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="eshopbox-bench-orders-") as out:
        destination = Path(out) / "orders.jsonl.gz"
        if kind == "operator":
            result = _run_operator(concurrency, destination)
        elif kind == "httpx":
            result = _run_httpx(concurrency, requests)
        else:
            result = _run_pager(kind == "pager-hourly", destination, pace)
    result["peak_mb"] = rss_mb("VmHWM")
    print(json.dumps(result))


def _median_run(
    kind: str, origin: str, conn: str, concurrency: int, repeat: int, **extra: Any
) -> dict[str, Any]:
    """``repeat`` runs of one reader; the run with the median time, with its request count, and
    the median over all runs of its CPU per request and of the guards' share of its requests."""
    runs = [_counted(kind, origin, conn, concurrency, **extra) for _ in range(repeat)]
    return _median_of(runs)


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = dict(sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2])
    median["cpu_ms"] = statistics.median(
        1000 * r.get("cpu_seconds", 0.0) / max(1, r["requests"]) for r in runs
    )
    median["read_cpu_ms"] = statistics.median(
        1000 * r.get("read_cpu_seconds", 0.0) / max(1, r["requests"]) for r in runs
    )
    median["guards_share"] = statistics.median(
        r.get("spent", {}).get("guards", 0) / max(1, r["requests"]) for r in runs
    )
    return median


def _counted(kind: str, origin: str, conn: str, concurrency: int, **extra: Any) -> dict[str, Any]:
    """One run of one reader, with the orders requests and 429s the sandbox counted."""
    _reset(origin)
    result = _child(kind, conn, concurrency, origin, **extra)
    stats = _stats(origin)
    result.update(
        kind=kind,
        requests=stats["by_route"].get("orders_list", 0),
        throttled=int(stats["by_status"].get("429", 0)),
    )
    return result


def rate_limited(
    origin: str, conn: str, args: argparse.Namespace, limits: list[float]
) -> list[tuple[float, str, dict[str, Any]]]:
    """Each limit: operator told it, operator not told, paced hourly pager; interleaved, medians."""
    variants = [
        ("operator, limit told", "operator", True),
        ("operator, limit not told", "operator", False),
        ("HttpHook pager, hourly, paced", "pager-hourly", True),
    ]
    out = []
    for rps in limits:
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
        for _ in range(args.rate_repeat):
            for label, kind, told in variants:
                _limit(origin, args.latency_ms, rps)
                time.sleep(BURST / rps)  # the bucket refills: every run starts from a full one
                extra = {"pace": rps} if kind != "operator" else {"client_rps": rps if told else None}
                runs[label].append(_counted(kind, origin, conn, args.concurrency, **extra))
        for label, _, _ in variants:
            out.append((rps, label, _median_of(runs[label])))
    _limit(origin, args.latency_ms, None)
    return out


def print_rate_limited(
    results: list[tuple[float, str, dict[str, Any]]], args: argparse.Namespace, rows: int
) -> None:
    pages = math.ceil(rows / 100)
    print(
        f"\nOrders sync under a server rate limit (sandbox token bucket, burst {BURST}), {rows} rows "
        f"over {DAYS} days, {args.latency_ms:.0f} ms added latency, max_concurrency={args.concurrency}, "
        f"median of {args.rate_repeat}; floor = {pages} pages / rate"
    )
    print(
        f"{'limit/s':>8}  {'reader':<32}{'rows':>7}{'requests':>9}{'req/page':>9}{'429s':>6}{'429 %':>7}"
        f"{'s':>7}{'vs floor':>9}{'guards':>8}"
    )
    for rps, label, r in results:
        floor = pages / rps
        share = r["throttled"] / max(1, r["requests"])
        print(
            f"{rps:>8g}  {label:<32}{r['rows']:>7}{r['requests']:>9}{r['requests'] / pages:>9.2f}"
            f"{r['throttled']:>6}{share:>7.0%}{r['seconds']:>7.1f}{r['seconds'] / floor:>8.2f}x"
            f"{_guards(r):>8}"
        )
    for rps in sorted({rps for rps, _, _ in results}):
        print(f"{rps:>8g}  {'floor':<32}{'':>7}{pages:>9}{1:>9.2f}{0:>6}{'':>7}{pages / rps:>7.1f}{1:>8.2f}x")


def _guards(r: dict[str, Any]) -> str:
    """The contract checks' requests in a run (SliceStats.spent['guards']) and their median share."""
    if "guards_share" not in r or not r.get("spent"):
        return "-"
    return f"{r['spent'].get('guards', 0)} {r['guards_share']:.1%}"


def no_limit(origin: str, conn: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The operator, a plain httpx loop making as many requests, and the two pagers; medians."""
    # One uncounted run first: the sandbox encodes each row's JSON on first serving it and
    # caches it (a real server's cost is inside its latency); the readers then meet it warm.
    _child("operator", conn, args.concurrency, origin)
    operator = _median_run("operator", origin, conn, args.concurrency, args.repeat)
    plain = _median_run("httpx", origin, conn, args.concurrency, args.repeat, requests=operator["requests"])
    return [
        operator,
        plain,
        _median_run("pager-hourly", origin, conn, args.concurrency, 1),
        _median_run("pager-single", origin, conn, args.concurrency, args.repeat),
    ]


_LABELS = {
    "operator": "EshopboxOrdersToStorageOperator",
    "httpx": "plain httpx.AsyncClient loop",
    "pager-hourly": "HttpHook pager, hourly windows",
    "pager-single": "HttpHook pager, one window",
}


def print_no_limit(rows_out: list[dict[str, Any]], args: argparse.Namespace, rows: int) -> None:
    latency = args.latency_ms / 1000
    pages = math.ceil(rows / 100)
    ideal = pages * latency / args.concurrency
    base = next(r for r in rows_out if r["kind"] == "pager-hourly")
    print(
        f"\nOrders sync, {rows} order-item rows over {DAYS} days, "
        f"{args.latency_ms:.0f} ms added latency, max_concurrency={args.concurrency}, "
        f"median of {args.repeat}; "
        f"ideal = {pages} pages x latency / concurrency = {ideal:.2f} s"
    )
    print(
        f"{'reader':<34}{'rows':>7}{'lost':>7}{'requests':>9}{'req/page':>9}{'s':>7}{'rows/s':>8}"
        f"{'vs pager':>9}{'of ideal':>9}{'in flight':>10}{'CPU/req':>9}{'read CPU':>9}{'guards':>9}"
        f"{'RSS +MB':>8}"
    )
    for r in rows_out:
        rate = r["rows"] / r["seconds"]
        ratio = rate / (base["rows"] / base["seconds"])
        operator = r["kind"] == "operator"
        measured = r["kind"] in ("operator", "httpx")
        # of ideal: the ideal over the whole task time; in flight: how busy the concurrency slots
        # were (requests actually made x latency / concurrency / task time).
        of_ideal = f"{ideal / r['seconds']:.0%}" if operator else "-"
        in_flight = f"{r['requests'] * latency / args.concurrency / r['seconds']:.0%}" if measured else "-"
        # The client's own CPU per request (median over runs): the whole task (decode, HTTP, spool,
        # the sorted gzip write), and the read alone (without the write), beside a plain httpx loop.
        cpu = f"{r['cpu_ms']:.1f} ms" if measured else "-"
        read_cpu = f"{r['read_cpu_ms']:.1f} ms" if operator else "-"
        lost = rows - r["rows"] if r["kind"] != "httpx" else 0
        print(
            f"{_LABELS[r['kind']]:<34}{r['rows']:>7}{lost:>7}{r['requests']:>9}"
            f"{r['requests'] / pages:>9.2f}{r['seconds']:>7.2f}{rate:>8.0f}{ratio:>8.1f}x{of_ideal:>9}"
            f"{in_flight:>10}{cpu:>9}{read_cpu:>9}{_guards(r):>9}"
            f"{r['peak_mb'] - r['baseline_mb']:>8.0f}"
        )
    discovery = rows_out[0].get("fs_discovery_cpu_seconds")
    if discovery is not None:
        print(
            f"CPU/req: the operator's whole execute() in a task process that has met object storage once; "
            f"that first meeting (Airflow importing every installed provider's filesystem) took "
            f"{discovery:.2f} s CPU, not counted"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", default="2000,20000", help="comma-separated window sizes, rows over the 7 days"
    )
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per reader (median); the hourly pager runs once"
    )
    parser.add_argument(
        "--rss-rows", default="20000,200000", help="comma-separated row counts for peak RSS; empty: skip"
    )
    parser.add_argument("--limits", default="5,10,20", help="comma-separated server limits, requests/s")
    parser.add_argument("--rate-repeat", type=int, default=1, help="runs per reader and limit (median)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of headline numbers")
    parser.add_argument("--max-requests-per-page", type=float, default=1.2, help="bound, no limit")
    parser.add_argument("--max-vs-floor", type=float, default=1.25, help="bound under --bound-limit")
    parser.add_argument("--bound-limit", type=float, default=10, help="the server limit the time bound is at")
    parser.add_argument("--max-cpu-ms", type=float, default=3.5, help="bound: client CPU per request")
    parser.add_argument("--cpu-bound-rows", type=int, default=20000, help="windows the CPU bound is at")
    parser.add_argument("--child", choices=["operator", "httpx", "pager-hourly", "pager-single"])
    parser.add_argument("--pace", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.concurrency, args.pace, args.requests)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    headline: dict[str, Any] = {}
    checks: list[tuple[str, float, float]] = []  # (what, measured, bound): measured <= bound
    limits = [float(n) for n in args.limits.split(",") if n.strip()]
    for rows in [int(n) for n in args.rows.split(",") if n.strip()]:
        with sandbox(rows, args.latency_ms) as (origin, conn):
            rows_out = no_limit(origin, conn, args)
            limited = rate_limited(origin, conn, args, limits) if limits else []
        print_no_limit(rows_out, args, rows)
        if limited:
            print_rate_limited(limited, args, rows)
        operator, plain = rows_out[0], rows_out[1]
        breakdown = [("no limit", operator)]
        breakdown += [(f"{rps:g}/s {label[10:]}", r) for rps, label, r in limited if r.get("spent")]
        print_breakdown(breakdown)
        pages = math.ceil(rows / 100)
        per_page = operator["requests"] / pages
        checks.append((f"{rows} rows, no limit: requests per page", per_page, args.max_requests_per_page))
        if rows >= args.cpu_bound_rows:
            what = f"{rows} rows, no limit: client CPU per request, ms"
            checks.append((what, operator["cpu_ms"], args.max_cpu_ms))
        checks += [
            (f"{rows} rows, {rps:g}/s, {label[10:]}: vs floor", r["seconds"] * rps / pages, args.max_vs_floor)
            for rps, label, r in limited
            if label.startswith("operator") and rps == args.bound_limit
        ]
        report_headline(f"{rows} rows, no limit: client CPU per request", f"{operator['cpu_ms']:.1f} ms")
        report_headline(f"{rows} rows, no limit: vs hourly pager", _vs_pager(rows_out))
        headline.update(
            {
                f"requests_per_page_{rows}": round(operator["requests"] / pages, 3),
                f"cpu_ms_per_request_{rows}": round(operator["cpu_ms"], 2),
                f"read_cpu_ms_per_request_{rows}": round(operator["read_cpu_ms"], 2),
                f"httpx_cpu_ms_per_request_{rows}": round(plain["cpu_ms"], 2),
                f"guards_share_{rows}": round(operator["guards_share"], 4),
            }
        )
        for rps, label, r in limited:
            if label.startswith("operator"):
                told = "told" if "not told" not in label else "not_told"
                headline[f"x_floor_{rps:g}rps_{told}_{rows}"] = round(r["seconds"] / (pages / rps), 3)
                headline[f"requests_per_page_{rps:g}rps_{told}_{rows}"] = round(r["requests"] / pages, 3)
                headline[f"guards_share_{rps:g}rps_{told}_{rows}"] = round(r["guards_share"], 4)
    sizes = [int(n) for n in args.rss_rows.split(",") if n.strip()]
    if sizes:
        print("\nPeak RSS of the operator, no added latency (rows are spooled to disk, not held in memory)")
        print(f"{'rows':>8}{'baseline MB':>13}{'peak +MB':>10}{'s':>7}")
    for size in sizes:
        with sandbox(size, 0) as (size_origin, conn):
            result = _child("operator", conn, args.concurrency, size_origin)
        print(
            f"{result['rows']:>8}{result['baseline_mb']:>13.0f}"
            f"{result['peak_mb'] - result['baseline_mb']:>10.0f}{result['seconds']:>7.1f}"
        )
    if args.json:
        print(json.dumps(headline))
    sys.exit(_check(checks))


def _vs_pager(rows_out: list[dict[str, Any]]) -> str:
    """The operator's rows/s over the hourly pager's."""
    operator, pager = rows_out[0], next(r for r in rows_out if r["kind"] == "pager-hourly")
    return f"{(operator['rows'] / operator['seconds']) / (pager['rows'] / pager['seconds']):.1f}x"


def _check(checks: list[tuple[str, float, float]]) -> int:
    """Print each bound and whether it held (a headline each); 1 if any failed."""
    print("\nBounds (issue 23: small windows as lean as big ones, CPU per request)")
    failed = 0
    for what, value, bound in checks:
        ok = value <= bound
        failed += not ok
        print(f"  {what}: {value:.2f} (bound {bound:g}) {'ok' if ok else 'FAILED'}")
        report_headline(what, f"{value:.2f} (bound {bound:g}{'' if ok else ', FAILED'})")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
