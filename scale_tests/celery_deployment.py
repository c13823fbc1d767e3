"""The deploy_tests harness with the CeleryExecutor: Redis (Debian's redis-server) as broker, two
Celery workers that stand for two hosts (each its own token-cache directory and log-server port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from deploy_tests.deployment import MARKER, Deployment, DeploymentError, free_port, wait_for

WORKERS = ("w1", "w2")


@dataclass
class CeleryDeployment(Deployment):
    """api-server, scheduler, dag-processor, triggerer, Redis and two Celery workers."""

    worker_concurrency: int = 2
    redis_port: int = field(init=False, default=0)
    redis_dir: Path | None = field(init=False, default=None)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        assert self.postgres is not None
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": (
                    f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.postgres.port}/airflow"
                ),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            }
        )
        return env

    def token_cache_dir(self, worker: str) -> Path:
        return self.root / f"token-cache-{worker}"

    def start(self, timeout: float = 180) -> CeleryDeployment:
        redis = shutil.which("redis-server")
        if redis is None:
            raise DeploymentError("redis-server not found: make test-scale installs Debian's redis-server")
        self.redis_port = free_port()
        self.redis_dir = Path(tempfile.mkdtemp(prefix="eshopbox-scale-redis-"))
        self.procs["redis"] = subprocess.Popen(
            [
                redis,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.redis_dir),
                "--logfile",
                str(self.redis_dir / "redis.log"),
            ],
            env={**os.environ, MARKER: self.marker},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        super().start(timeout)
        for worker in WORKERS:
            env = dict(self._env)
            env["ESHOPBOX_TOKEN_CACHE_DIR"] = str(self.token_cache_dir(worker))
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            out = open(self.component_logs / f"worker-{worker}.log", "wb")  # noqa: SIM115 - the child's
            try:
                self.procs[f"worker-{worker}"] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "airflow",
                        "celery",
                        "worker",
                        "--celery-hostname",
                        f"{worker}@%h",
                        "--concurrency",
                        str(self.worker_concurrency),
                        "--without-gossip",
                        "--without-mingle",
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                out.close()
        for worker in WORKERS:
            wait_for(
                f"celery worker {worker} to be ready",
                lambda w=worker: self._worker_ready(w),
                120,
            )
        return self

    def _worker_ready(self, worker: str) -> bool:
        self.assert_running()
        return " ready." in self.tail(f"worker-{worker}", 200_000)

    def stop(self, keep: Path | None = None) -> list[int]:
        killed = super().stop(keep)
        if self.redis_dir is not None:
            shutil.rmtree(self.redis_dir, ignore_errors=True)
        return killed
