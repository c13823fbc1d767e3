"""The write probe of tasks that start together into one new directory (a backfill's hourly runs all
writing the same new ``dt=`` partition): each task's probe removes the directories it made, and
another task's probe must not fail for it (bench.load saw one run of 24 fail that way)."""

from __future__ import annotations

import threading
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_provider_eshopbox.sync.destination import check_writable


def test_tasks_probing_one_new_partition_at_once_all_pass_and_leave_nothing(tmp_path: Path) -> None:
    tasks, rounds = 8, 40
    barrier = threading.Barrier(tasks)
    failures: list[str] = []

    def task(n: int) -> None:
        for r in range(rounds):
            destination = ObjectStoragePath(
                f"file://{tmp_path}/orders/dt=2026-11-{r:02d}/{n:02d}0000.jsonl.gz"
            )
            barrier.wait()
            try:
                check_writable(destination)
            except Exception as error:
                failures.append(f"round {r} task {n}: {error}")

    threads = [threading.Thread(target=task, args=(n,)) for n in range(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # no probe left (a partition directory two tasks made at once may stay, empty)
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []
