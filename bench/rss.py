"""Peak memory of a month-long orders resync in one task: RSS above the baseline, time, temp disk.

Each size runs the orders operator in a fresh child process against a sandbox process holding that
many order-item rows over 30 days (no added latency), checks the file against the sandbox's truth
(every id once, nothing else), and reports peak RSS above the child's baseline (measured after the
imports and one connection test, as in bench.orders_sync), the spool's peak temporary disk use and
the output size. Exit status 1 if a file is not exact or the RSS bound is exceeded: +50 MB, or
+60 MB from 5M rows up (issue 23; memory must stay flat in rows). ``--with-5m`` adds the 5M case,
opt-in as it takes several minutes. ``--format jsonl,parquet`` writes each size both ways (``.jsonl.gz``,
then typed ``.parquet``), a row each, under the same bound; ``write s`` is the spool's sorted write alone.

    python -m bench.rss [--rows 200000,1000000] [--with-5m] [--days 30] [--bound-mb 50] [--big-bound-mb 60]
                        [--format jsonl,parquet]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from bench import rss_mb
from bench.report import headline

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
BIG = 5_000_000  # rows of the opt-in case, bound by --big-bound-mb


def child(days: int, concurrency: int, destination: Path) -> dict[str, Any]:
    """One resync in this process; the spool's peak temp disk is read as it closes."""
    from airflow.sdk.listener import get_listener_manager

    import airflow_provider_eshopbox.sync.slicing
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
    from airflow_provider_eshopbox.sync import storage

    del airflow_provider_eshopbox.sync.slicing  # imported for the baseline only
    if destination.name.endswith(".parquet"):  # pyarrow's libraries load once, whatever the rows: baseline
        from airflow_provider_eshopbox.sync.formats import require_pyarrow

        require_pyarrow()  # as the operator loads it (its allocator chosen)
        import pyarrow.compute  # noqa: F401
    get_listener_manager()
    ok, message = EshopboxHook().test_connection()
    if not ok:
        raise SystemExit(message)
    disk: list[int] = []
    writing: list[float] = []
    read_peak: list[float] = []
    close, write_to = storage.RowSpool.close, storage.RowSpool.write_to

    def recording_close(self: storage.RowSpool) -> None:
        disk.append(self.disk_bytes)
        close(self)

    def timed_write_to(self: storage.RowSpool, *args: Any) -> int:
        read_peak.append(rss_mb("VmHWM"))  # the read's peak
        began = time.monotonic()
        try:
            return write_to(self, *args)
        finally:
            writing.append(time.monotonic() - began)

    storage.RowSpool.close = recording_close  # type: ignore[method-assign]
    storage.RowSpool.write_to = timed_write_to  # type: ignore[method-assign]
    op = EshopboxOrdersToStorageOperator(
        task_id="bench_rss",
        destination=f"file://{destination}",
        start=START.isoformat(),
        end=(START + timedelta(days=days)).isoformat(),
        max_concurrency=concurrency,
    )
    baseline = rss_mb()
    began = time.monotonic()
    manifest = op.execute({})  # type: ignore[arg-type]
    return {
        "rows": manifest["rows"],
        "requests": manifest["requests"],
        "seconds": time.monotonic() - began,
        "write_seconds": sum(writing),
        "baseline_mb": baseline,
        "peak_mb": rss_mb("VmHWM"),
        "read_peak_mb": read_peak[0] if read_peak else 0.0,
        "temp_disk_mb": (disk[0] if disk else 0) / 1e6,
        "output_mb": destination.stat().st_size / 1e6,
    }


def measure(rows: int, days: int, concurrency: int, fmt: str = "jsonl") -> dict[str, Any]:
    """A sandbox with ``rows`` rows, the resync in a child, and the exactness check."""
    from airflow_provider_eshopbox.sandbox.process import SandboxProcess

    args = ["--order-items", str(rows), "--seed", "7", "--days", str(days)]
    with (
        SandboxProcess(*args) as sandbox,
        tempfile.TemporaryDirectory(prefix="eshopbox-bench-rss-") as work,
    ):
        destination = Path(work) / ("orders.parquet" if fmt == "parquet" else "orders.jsonl.gz")
        env = dict(
            os.environ,
            AIRFLOW_CONN_ESHOPBOX_DEFAULT=sandbox.connection_json,
            ESHOPBOX_TOKEN_CACHE_DIR=str(Path(work) / "token-cache"),
            TMPDIR=work,  # the spool's temporary files, removed with the directory
        )
        command = [sys.executable, "-m", "bench.rss", "--child", str(destination), "--days", str(days)]
        out = subprocess.run(
            [*command, "--concurrency", str(concurrency)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"resync of {rows} rows failed:\n{out.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        end = START + timedelta(days=days)
        truth = httpx.get(
            f"{sandbox.origin}/__sandbox__/truth/orders",
            params={"start": START.isoformat(), "end": end.isoformat()},
            timeout=120,
        ).json()
        if fmt == "parquet":
            import pyarrow.parquet as pq

            ids = pq.read_table(destination, columns=["orderItemID"]).column(0).to_pylist()
        else:
            with gzip.open(destination, "rt") as fh:
                ids = [json.loads(line)["orderItemID"] for line in fh]
    result["exact"] = len(ids) == len(set(ids)) and set(ids) == set(truth["orderItemIDs"])
    result["truth"] = truth["count"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="200000,1000000", help="comma-separated row counts")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bound-mb", type=float, default=50.0, help="peak RSS above baseline allowed")
    parser.add_argument(
        "--big-bound-mb", type=float, default=60.0, help=f"the bound from {BIG:,} rows up (--with-5m)"
    )
    parser.add_argument("--with-5m", action="store_true", help=f"add the {BIG:,}-row case (several minutes)")
    parser.add_argument("--format", default="jsonl", help="comma-separated: jsonl (.jsonl.gz), parquet")
    parser.add_argument(
        "--write-ratio", type=float, default=1.5, help="Parquet's sorted write allowed, x the JSONL write's"
    )
    parser.add_argument("--child", metavar="DESTINATION")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.days, args.concurrency, Path(args.child))))
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"\nOrders resync of {args.days} days in one task (sandbox, no added latency, "
        f"max_concurrency={args.concurrency}); bounds: Parquet write {args.write_ratio}x JSONL's, "
        f"peak RSS +{args.bound_mb:.0f} MB, "
        f"+{args.big_bound_mb:.0f} MB from {BIG:,} rows"
    )
    print(
        f"{'rows':>9}{'format':>8}{'exact':>7}{'requests':>9}{'s':>7}{'write s':>8}{'baseline MB':>12}"
        f"{'peak +MB':>9}{'read +MB':>9}{'temp disk MB':>13}{'output MB':>10}"
    )
    broken = False
    sizes = [int(n) for n in args.rows.split(",") if n.strip()]
    if args.with_5m and BIG not in sizes:
        sizes.append(BIG)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    for rows in sizes:
        writes: dict[str, float] = {}
        for fmt in formats:
            r = measure(rows, args.days, args.concurrency, fmt)
            writes[fmt] = r["write_seconds"]
            grew = r["peak_mb"] - r["baseline_mb"]
            bound = args.big_bound_mb if rows >= BIG else args.bound_mb
            broken |= not r["exact"] or grew > bound
            print(
                f"{r['rows']:>9}{fmt:>8}{'yes' if r['exact'] else 'NO':>7}{r['requests']:>9}"
                f"{r['seconds']:>7.1f}{r['write_seconds']:>8.1f}{r['baseline_mb']:>12.0f}{grew:>9.0f}"
                f"{r['read_peak_mb'] - r['baseline_mb']:>9.0f}{r['temp_disk_mb']:>13.0f}"
                f"{r['output_mb']:>10.0f}",
                flush=True,
            )
            exact = "exact" if r["exact"] else "NOT EXACT"
            headline(
                f"resync of {rows:,} rows ({fmt})",
                f"+{grew:.0f} MB peak RSS (bound +{bound:.0f}), {exact}, {r['seconds']:.0f} s",
            )
        if {"jsonl", "parquet"} <= writes.keys():  # issue 24: the same rows, one run, side by side
            ratio = writes["parquet"] / max(writes["jsonl"], 1e-9)
            broken |= ratio > args.write_ratio
            headline(
                f"Parquet write of {rows:,} rows vs .jsonl.gz",
                f"{ratio:.2f}x ({writes['parquet']:.1f} s vs {writes['jsonl']:.1f} s; "
                f"bound {args.write_ratio}x)",
            )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
