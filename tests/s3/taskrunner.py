"""Run a task through Airflow's real task runner: ``supervise_task`` forks the child that runs the
task runner (its SIGTERM handler calling ``on_kill``, its exit codes), served by the in-process
Execution API on the test's metadata DB. ``dag.test()`` runs tasks in its own process instead, where
no signal reaches a task runner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

BUNDLE = "dags-folder"


@dataclass
class SupervisedRun:
    """What one supervised try left: the supervisor's exit code, the task instance's state, and the
    try's task log (the file Airflow writes, as JSON lines)."""

    exit_code: int
    state: str
    log: str


class TaskRunnerHarness:
    """One DAG run of ``dag_file``'s single task, tried as often as the test asks."""

    def __init__(self, dag_file: Path, dag_id: str, logical_date: datetime) -> None:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
        from airflow.models.dagrun import DagRun, get_or_create_dagrun
        from airflow.serialization.serialized_objects import DagSerialization
        from airflow.utils.session import create_session
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        self.dag_file = dag_file
        with create_session() as session:
            DagBundlesManager().sync_bundles_to_db(session=session)
        bag = BundleDagBag(dag_folder=str(dag_file), bundle_path=dag_file.parent, bundle_name=BUNDLE)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, BUNDLE, None)
        self.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(bag.get_dag(dag_id)))
        (self.task_id,) = self.dag.task_dict
        with create_session() as session:
            run = get_or_create_dagrun(
                dag=self.dag,
                run_id=DagRun.generate_run_id(
                    run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=logical_date
                ),
                logical_date=logical_date,
                data_interval=(logical_date, logical_date),
                run_after=logical_date,
                conf=None,
                triggered_by=DagRunTriggeredByType.TEST,
                triggering_user_name="tests",
                start_date=logical_date,
                session=session,
            )
            self.run_id = run.run_id

    def run(self, while_running: Callable[[int], Any] | None = None) -> SupervisedRun:
        """One more try of the task; ``while_running(pid)`` is called on a thread with the task
        runner's pid while the supervisor (which must own the main thread: it sets signal handlers)
        waits for it."""
        import psutil
        from airflow.configuration import conf
        from airflow.executors.workloads import BundleInfo, ExecuteTask
        from airflow.models.taskinstance import TaskInstance
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task
        from airflow.sdk.io.store import _STORE_CACHE
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        with create_session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.run_id == self.run_id, TaskInstance.task_id == self.task_id
                )
            ).one()
            ti.try_number += 1
            ti.state = TaskInstanceState.QUEUED
            session.commit()
            workload = ExecuteTask.make(ti, dag_rel_path=self.dag_file, bundle_info=BundleInfo(name=BUNDLE))
        # Airflow caches each ObjectStoragePath store (and its fsspec filesystem) per process, and a
        # forked child inherits that cache, whose async filesystems refuse to run after a fork. This
        # process has used S3 in-process; a real supervisor has not.
        _STORE_CACHE.clear()
        before = {child.pid for child in psutil.Process().children()}
        errors: list[BaseException] = []
        watcher = None
        if while_running is not None:

            def watch() -> None:
                try:
                    while_running(_new_child(before))
                except BaseException as error:  # re-raised on the test's thread
                    errors.append(error)

            watcher = threading.Thread(target=watch, name="task-runner-watcher", daemon=True)
            watcher.start()
        exit_code = supervise_task(
            ti=workload.ti,
            bundle_info=workload.bundle_info,
            dag_rel_path=self.dag_file,  # absolute: the child parses this file, not one in the bundle
            token="",
            client=InProcessTestSupervisor._api_client(self.dag),
            log_path=workload.log_path,
        )
        if watcher is not None:
            watcher.join(timeout=60)
        if errors:
            raise errors[0]
        with create_session() as session:
            state = session.scalars(
                select(TaskInstance.state).where(
                    TaskInstance.run_id == self.run_id, TaskInstance.task_id == self.task_id
                )
            ).one()
        log = Path(conf.get("logging", "base_log_folder"), workload.log_path).read_text()
        return SupervisedRun(exit_code=exit_code, state=str(state), log=log)


def _new_child(before: set[int]) -> int:
    """The pid of the child process the supervisor forks (polled: it appears once forked)."""
    import time

    import psutil

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fresh = [child.pid for child in psutil.Process().children() if child.pid not in before]
        if fresh:
            return fresh[0]
        time.sleep(0.01)
    raise AssertionError("the supervisor forked no task runner within 60 s")
