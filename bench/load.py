"""Load: a 24-hour backfill of ``eshopbox_orders_hourly``, several runs at once, against a rate-limited API.

Each hourly run is one ``airflow dags test eshopbox_orders_hourly <logical_date>`` process, at most
``--parallel`` at a time (SQLite cannot be shared by concurrent writers, so every run gets its own
``AIRFLOW_HOME`` with a copy of one migrated database), all sharing one host-wide token cache
(``ESHOPBOX_TOKEN_CACHE_DIR``) and one output location (``ESHOPBOX_DEMO_OUTPUT``), like the task
processes of one Airflow worker. The sandbox (own process) enforces a server-side token bucket of
``--server-rps`` with ``--server-burst``; the connection sets ``max_requests_per_second`` per process.

Why those numbers: a process's limiter spaces request starts (retries and the token exchange
included), so in any window of T seconds it starts at most 1 + r*T requests. The bucket admits
B + R*T - 1 over any stretch in which it goes from full to rejecting, so with B > N it rejects at most
the integral of max(0, k(t)*r - R) dt, k(t) = runs paging at time t (from each operator's final log
line, widened 1 s): the printed bound. Over the whole wall time with k = N that is (N*r - R) * wall,
printed too. The defaults (N=4, r=8, R=30, B=10) deliberately put the aggregate (32 rps) just above
the server rate: 429s occur only while all four runs page at once, and stay within the bound; with
N*r <= R the bound is zero.

With ``--rps 0`` the connection sets no limit: each process learns the server's from its 429s,
sharing what it learned with the others through the host-wide rate file (``token_cache=shared``).
There is no bound then; the check is that at most ``--max-429-share`` of all requests were 429s.

Invariants (exit status 1 if any is broken): every run succeeded; the union of the 24 files equals the
sandbox's truth for the whole span and no row is in two files; 429s within the bound (or share);
exactly one token exchange in total.

    python -m bench.load [--runs 24] [--parallel 4] [--rps 8] [--server-rps 30] [--server-burst 10]
    python -m bench.load --rps 0 --server-rps 12      # issue 14: no client limit, learned
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.report import headline

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "eshopbox_orders_hourly"
DAG_FILE = REPO / "example_dags" / f"{DAG_ID}.py"
SPAN_START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }


def _run_one(logical_date: datetime, template_db: Path, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """One hourly run in its own AIRFLOW_HOME (a copy of the migrated db); returns state and timing."""
    name = logical_date.strftime("%Y%m%dT%H%M%S")
    home = root / "homes" / name
    home.mkdir(parents=True)
    shutil.copyfile(template_db, home / "airflow.db")
    run_env = {**env, **_airflow_env(home, root / "dags")}
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, logical_date.isoformat()],
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - began
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / f"{name}.log").write_text(out.stdout + out.stderr)
    with sqlite3.connect(home / "airflow.db") as db:
        runs = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall()
        tis = db.execute("SELECT state, try_number FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall()
    return {
        "name": name,
        "exit": out.returncode,
        "run_states": [r[0] for r in runs],
        "task_states": [t[0] for t in tis],
        "tries": max((t[1] or 0 for t in tis), default=0),
        "seconds": seconds,
        "log": root / "logs" / f"{name}.log",
    }


_WROTE = re.compile(r"^(\S+Z) .*Wrote \d+ rows to .*\((\d+) requests, .*read in ([\d.]+) s\)", re.M)


def _paging_interval(log: str) -> tuple[float, float] | None:
    """When the operator was paging (epoch s), from its final log line; widened 1 s at the start."""
    match = _WROTE.search(log)
    if match is None:
        return None
    end = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
    return end - float(match.group(3)) - 1.0, end


def _excess_bound(intervals: list[tuple[float, float]], rps: float, server_rps: float) -> tuple[float, int]:
    """Integral of max(0, k(t)*r - R) over time (k = runs paging at t) and the largest k."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    total, active, peak, last = 0.0, 0, 0, None
    for when, step in events:
        if last is not None:
            total += max(0.0, active * rps - server_rps) * (when - last)
        active += step
        peak = max(peak, active)
        last = when
    return total, peak


def _read_ids(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line)["orderItemID"] for line in fh if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24, help="hourly runs to backfill (default 24)")
    parser.add_argument("--parallel", type=int, default=4, help="runs active at once (default 4)")
    parser.add_argument(
        "--rps", type=float, default=8, help="connection max_requests_per_second (0: none, learned)"
    )
    parser.add_argument(
        "--max-429-share", type=float, default=0.05, help="with --rps 0: most 429s as a share of requests"
    )
    parser.add_argument("--server-rps", type=float, default=30, help="sandbox token-bucket rate")
    parser.add_argument("--server-burst", type=int, default=10, help="sandbox token-bucket size")
    parser.add_argument("--order-items", type=int, default=200_000, help="sandbox rows over --days")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    from airflow_provider_eshopbox.sandbox.process import SandboxProcess

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    root = Path(tempfile.mkdtemp(prefix="eshopbox-bench-load-"))
    (root / "dags").mkdir()
    shutil.copy(DAG_FILE, root / "dags" / DAG_FILE.name)  # parse only the DAG under test
    output = root / "output"
    env = dict(os.environ)
    env.update(
        ESHOPBOX_TOKEN_CACHE_DIR=str(root / "token-cache"),
        ESHOPBOX_DEMO_OUTPUT=f"file://{output}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
    )
    template = root / "template"
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**env, **_airflow_env(template, root / "dags")},
        capture_output=True,
        text=True,
        check=False,
    )
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
    # `dags test <logical date>` infers a manual data interval that *ends* at the logical date for a
    # CronDataIntervalTimetable, so the run covering hour [H, H+1h) is given logical date H+1h.
    hours = [SPAN_START + timedelta(hours=h) for h in range(args.runs)]
    dates = [h + timedelta(hours=1) for h in hours]
    span_end = SPAN_START + timedelta(hours=args.runs)
    sandbox_args = ["--order-items", str(args.order_items), "--seed", "7", "--days", str(args.days)]
    with SandboxProcess(*sandbox_args, env=env) as sandbox:
        origin = sandbox.origin
        conn = json.loads(sandbox.connection_json)
        if args.rps > 0:
            conn.setdefault("extra", {})["max_requests_per_second"] = args.rps
        env["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = json.dumps(conn)
        limit = {"rps": args.server_rps, "burst": args.server_burst}
        httpx.post(f"{origin}/__sandbox__/faults", json={"rate_limit": limit}).raise_for_status()
        httpx.delete(f"{origin}/__sandbox__/stats").raise_for_status()
        began = time.monotonic()
        with ThreadPoolExecutor(args.parallel) as pool:
            results = list(pool.map(lambda d: _run_one(d, template / "airflow.db", root, env), dates))
        wall = time.monotonic() - began
        stats = httpx.get(f"{origin}/__sandbox__/stats").json()
        truth_body = httpx.get(
            f"{origin}/__sandbox__/truth/orders",
            params={"start": SPAN_START.isoformat(), "end": span_end.isoformat()},
            timeout=120,
        ).json()
    truth = set(truth_body["orderItemIDs"])

    # The example hourly DAG writes Hive-style day partitions: orders/dt=YYYY-MM-DD/<interval start>.jsonl.gz
    files = sorted((output / "orders").glob("dt=*/*.jsonl.gz")) if (output / "orders").exists() else []
    per_file = {f"{f.parent.name}/{f.name}": _read_ids(f) for f in files}
    expected_files = {f"dt={h:%Y-%m-%d}/{h:%Y%m%dT%H%M%S}.jsonl.gz" for h in hours}
    union: set[str] = set()
    for ids in per_file.values():
        union.update(ids)
    rows_in_files = sum(len(ids) for ids in per_file.values())
    duplicated = rows_in_files - len(union)
    succeeded = sum(
        1
        for r in results
        if r["exit"] == 0 and r["run_states"] == ["success"] and r["task_states"] == ["success"]
    )
    n429 = int(stats["by_status"].get("429", 0))
    loose = math.ceil(max(0.0, args.parallel * args.rps - args.server_rps) * wall)
    paging = [_paging_interval(Path(r["log"]).read_text()) for r in results]
    if all(paging):
        excess, peak_paging = _excess_bound([p for p in paging if p], args.rps, args.server_rps)
        bound = math.ceil(excess)
    else:
        bound, peak_paging = loose, -1
    if args.server_burst <= args.parallel:
        slack = args.runs * (args.parallel + 1 - args.server_burst)  # one per busy period, <= one per run
        bound, loose = bound + slack, loose + slack
    exchanges = int(stats["token_exchanges"])
    requests = int(stats["requests"])
    missing, extra = len(truth - union), len(union - truth)

    print(
        f"\nLoad: backfill of {args.runs} hourly runs of {DAG_ID} "
        f"({SPAN_START:%Y-%m-%d %H:%M} .. {span_end:%Y-%m-%d %H:%M} UTC, {args.order_items} rows over "
        f"{args.days} days in the sandbox), {args.parallel} `airflow dags test` processes at once (own "
        f"AIRFLOW_HOME each, one shared token cache); sandbox token bucket {args.server_rps:g} rps / burst "
        f"{args.server_burst}; "
        + (
            f"connection max_requests_per_second={args.rps:g} per process ({args.parallel * args.rps:g} rps "
            "aggregate)"
            if args.rps > 0
            else "no client limit (learned from 429s, shared by the host's processes)"
        )
    )
    checks = [
        ("runs succeeded", f"{succeeded}/{args.runs}", succeeded == args.runs),
        ("output files (one per run)", f"{len(per_file)}/{args.runs}", set(per_file) == expected_files),
        ("rows: union of files vs truth", f"{len(union)} vs {len(truth)}", union == truth),
        ("rows missing / not in truth", f"{missing} / {extra}", missing == 0 and extra == 0),
        ("rows in two files (or twice)", f"{duplicated}", duplicated == 0),
        (
            ("429s (bound from client limit)", f"{n429} (<= {bound})", n429 <= bound)
            if args.rps > 0
            else (
                "429s (share of requests)",
                f"{n429} ({n429 / max(requests, 1):.1%} <= {args.max_429_share:.0%})",
                n429 <= args.max_429_share * requests,
            )
        ),
        ("token exchanges", f"{exchanges} (expected 1)", exchanges == 1),
    ]
    print(f"{'check':<34}{'value':>22}  ok")
    for label, value, ok in checks:
        print(f"{label:<34}{value:>22}  {'yes' if ok else 'NO'}")
    run_seconds = sorted(r["seconds"] for r in results)
    retried = sum(1 for r in results if r["tries"] > 1)
    print(f"{'API requests (all routes)':<34}{requests:>22}")
    print(f"{'peak concurrent requests':<34}{stats['max_concurrent']:>22}")
    print(f"{'runs paging at once, max':<34}{peak_paging:>22}")
    print(f"{'429 bound over whole wall time':<34}{loose:>22}")
    print(f"{'task runs retried by Airflow':<34}{retried:>22}")
    print(f"{'wall time s':<34}{wall:>22.1f}")
    print(f"{'runs/minute':<34}{args.runs / wall * 60:>22.1f}")
    print(
        f"{'per run s (min/median/max)':<34}"
        f"{f'{run_seconds[0]:.1f}/{run_seconds[len(run_seconds) // 2]:.1f}/{run_seconds[-1]:.1f}':>22}"
    )
    print(f"{'API request rate, mean rps':<34}{requests / wall:>22.1f}")
    failed = [r for r in results if r["exit"] != 0 or r["run_states"] != ["success"]]
    for r in failed[:3]:
        print(f"\nrun {r['name']} failed (exit {r['exit']}, states {r['run_states']}); log tail:")
        print(Path(r["log"]).read_text()[-2000:])
    broken = [label for label, _, ok in checks if not ok]
    headline(
        f"{args.runs} hourly runs, {args.parallel} at once",
        f"{'exact' if not broken else 'BROKEN'}, {n429} of {requests} requests 429, {wall:.0f} s",
    )
    if args.keep or broken:
        print(f"\nkept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if broken:
        print("INVARIANT BROKEN: " + ", ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
