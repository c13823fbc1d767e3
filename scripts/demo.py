"""The main job, end to end: start the sandbox, run the example DAGs with ``airflow dags test``.

Runs on an embedded SQLite Airflow in a throw-away ``AIRFLOW_HOME``; prints what each DAG synced and
where; stops the sandbox. Exits non-zero if any DAG run fails. Invoked by ``make demo``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from airflow_provider_eshopbox.sandbox.process import SandboxProcess

REPO = Path(__file__).resolve().parent.parent

# (dag_id, logical date, run conf) - in the order a user would try them.
DEMO_RUNS: list[tuple[str, str | None, dict[str, str] | None]] = [
    ("eshopbox_orders_hourly", "2026-11-03T13:00:00+00:00", None),
    (
        "eshopbox_orders_resync",
        None,
        {"start": "2026-11-02T00:00:00+00:00", "end": "2026-11-04T00:00:00+00:00"},
    ),
    ("eshopbox_inventory_snapshot", "2026-11-03T13:00:00+00:00", None),
    ("eshopbox_push_orders", None, None),
    ("eshopbox_wait_for_shipment", None, None),
]
# Issue 16: the fulfilment mart for one day, then the summary its assets schedule (RTO by courier).
DEMO_RUNS += [
    ("eshopbox_fulfilment_mart", "2026-11-04T00:00:00+00:00", None),
    ("eshopbox_fulfilment_summary", None, None),
]


def _airflow(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True)


def _summarise(output_dir: Path) -> None:
    print("\nWhat the demo synced:")
    files = sorted(p for p in output_dir.rglob("*") if p.is_file())
    if not files:
        raise SystemExit("no output files were written")
    for path in files:
        if ".jsonl" not in path.name:  # the mart summary's CSV and SVG
            print(f"  {path}  {path.stat().st_size} bytes")
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            rows = [json.loads(line) for line in fh]
        print(f"  {path}  {len(rows)} rows  {path.stat().st_size} bytes")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="eshopbox-demo-"))
    output_dir = home / "output"
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        ESHOPBOX_TOKEN_CACHE_DIR=str(home / "token-cache"),
        ESHOPBOX_DEMO_OUTPUT=f"file://{output_dir}",
    )
    print(f"Airflow home: {env['AIRFLOW_HOME']} (SQLite, removed at the end)")
    with SandboxProcess("--orders", "5000", "--seed", "7", echo=True, env=env) as sandbox:
        env["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = sandbox.connection_json
        _airflow(["db", "migrate"], env)
        for dag_id, logical_date, conf in DEMO_RUNS:
            print(f"\n=== airflow dags test {dag_id} {logical_date or ''}")
            args = ["dags", "test", dag_id] + ([logical_date] if logical_date else [])
            if conf:
                args += ["-c", json.dumps(conf)]
            _airflow(args, env)
        _summarise(output_dir)
    print("sandbox stopped")
    shutil.rmtree(home / "airflow", ignore_errors=True)
    print(f"Output kept in {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
