"""What the hourly orders DAG's runs wrote on a deployment, read back for comparison with the truth.

Shared by the deployment test (a backfill made through the REST API) and the browser test (a
backfill made in the UI's dialog): each run's file is ``orders/<data interval start>.jsonl.gz`` under
the deployment's output directory, its manifest (XCom) must count the file's rows, and no row may be in
two files. The caller compares the union with the sandbox's truth for the runs' intervals.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deploy_tests.deployment import Deployment

HOURLY = "eshopbox_orders_hourly"
SYNC_TASK = "sync_orders"


def parse_instant(value: str) -> datetime:
    """An aware datetime from the REST API's ISO-8601 (``Z`` or an offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class HourlyOutput:
    """The union of the runs' files: orderItemID -> the file holding it, and rows per file."""

    files: dict[str, str]
    rows_per_file: list[int]
    intervals: list[tuple[datetime, datetime]]

    @property
    def ids(self) -> set[str]:
        return set(self.files)

    @property
    def span(self) -> tuple[datetime, datetime]:
        """``[first start, last end)``; asserts the intervals are contiguous hours, in order."""
        for (_, end), (start, _) in zip(self.intervals, self.intervals[1:], strict=False):
            assert start == end, f"intervals not contiguous: {self.intervals}"
        assert all(end - start == timedelta(hours=1) for start, end in self.intervals), self.intervals
        return self.intervals[0][0], self.intervals[-1][1]


def read_hourly_output(
    d: Deployment,
    runs: Sequence[dict[str, Any]],
    dag_id: str = HOURLY,
    folder: str = "orders",
    hive: bool | None = None,
) -> HourlyOutput:
    """Read every run's file (``<output>/<folder>/[dt=<day>/]<interval start>.jsonl.gz``: the example
    hourly DAG writes Hive-style day partitions, ``hive`` defaults to whether ``dag_id`` is it); assert
    each exists, matches its manifest, and shares no row with another."""
    hive = dag_id == HOURLY if hive is None else hive
    files: dict[str, str] = {}
    rows_per_file: list[int] = []
    intervals: list[tuple[datetime, datetime]] = []
    for run in sorted(runs, key=lambda r: r["data_interval_start"]):
        start = parse_instant(run["data_interval_start"])
        intervals.append((start, parse_instant(run["data_interval_end"])))
        day = d.output / folder / (f"dt={start:%Y-%m-%d}" if hive else "")
        path = day / f"{start.strftime('%Y%m%dT%H%M%S')}.jsonl.gz"
        assert path.exists(), f"no file for {run['dag_run_id']}: {path}"
        manifest = d.xcom(dag_id, run["dag_run_id"], SYNC_TASK)
        with gzip.open(path, "rt") as fh:
            ids = [json.loads(line)["orderItemID"] for line in fh]
        assert manifest["rows"] == len(ids), (manifest, len(ids))
        rows_per_file.append(len(ids))
        for item in ids:
            assert item not in files, f"{item} in {files[item]} and {path.name}"
            files[item] = path.name
    return HourlyOutput(files=files, rows_per_file=rows_per_file, intervals=intervals)
