"""A real Airflow 3 deployment for tests: api-server, scheduler, dag-processor and triggerer.

LocalExecutor on PostgreSQL, in a throw-away directory that holds everything: AIRFLOW_HOME, a private
PostgreSQL cluster (``initdb``/``pg_ctl`` from Debian's ``postgresql``, run as the ``postgres`` user
when we are root, since postgres refuses root, on a free loopback port), task logs, each component's
stdout/stderr, the token cache, the DAG outputs and TMPDIR.

Why not SQLite: Airflow 3.3.2 does run LocalExecutor on SQLite (``airflow standalone`` does), but the
backfill API says "Backfill create is not supported on SQLite under concurrent access", and it is
right: creating a 24-run backfill while the scheduler runs got a 503 (database locked), then a
``FOREIGN KEY constraint failed`` in the scheduler, which exited.

``stop()`` ends every process the deployment started (found by a marker in their environment,
which every descendant inherits, including task processes that moved to their own process group) and
removes the directory.

Every wait is a poll of a condition with a deadline; nothing sleeps a fixed time to "let things
settle".
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
MARKER = "ESHOPBOX_DEPLOY_TEST_ID"
TERMINAL_RUN_STATES = {"success", "failed"}


class DeploymentError(AssertionError):
    """A deployment did not reach a state in time (the message carries the component log tails)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; raise with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError) as exc:  # the server may not be up yet
            last_error = exc
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
            )
        time.sleep(interval)


def _pg_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/<major>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise DeploymentError(f"{name} not found: install PostgreSQL (make deploy-deps)")
    return path


class PostgresCluster:
    """A private PostgreSQL cluster in ``directory`` on a free loopback port, trust auth, no fsync."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.env = env
        self.started = False

    def _as_owner(self, *args: str) -> list[str]:
        # postgres refuses to run as root; Debian's package creates the "postgres" user.
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            self._as_owner(*args), env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise DeploymentError(f"{' '.join(args[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self) -> None:
        self.directory.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "airflow", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.directory / "server.log")
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"
        )
        self.started = True
        self._run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow")

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(DeploymentError):
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            self.started = False


@dataclass
class Deployment:
    """One Airflow deployment. ``bundles`` maps a DAG bundle name to a folder of DAG files."""

    bundles: dict[str, Path]
    env_extra: dict[str, str] = field(default_factory=dict)
    pythonpath: list[Path] = field(default_factory=list)
    root: Path = field(init=False)
    port: int = field(init=False, default=0)
    procs: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    marker: str = field(init=False, default_factory=lambda: secrets.token_hex(8))
    postgres: PostgresCluster | None = field(init=False, default=None)
    _token: str = field(init=False, default="")
    _client: httpx.Client | None = field(init=False, default=None)

    # ------------------------------------------------------------------ layout
    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def component_logs(self) -> Path:
        return self.root / "components"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def database_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.url

    @property
    def database_files(self) -> Path:
        """The cluster's data directory (heap files and WAL), for a raw-bytes scan."""
        assert self.postgres is not None
        return self.postgres.data

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every component runs with (for CLI calls against the same deployment)."""
        return dict(self._env)

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        bundle_list = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path), "refresh_interval": 0},
            }
            for name, path in self.bundles.items()
        ]
        env.update(
            {
                MARKER: self.marker,
                "TMPDIR": str(self.root / "tmp"),
                "PYTHONPATH": os.pathsep.join(str(p) for p in self.pythonpath),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__DAGS_FOLDER": str(next(iter(self.bundles.values()))),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundle_list),
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # The log servers of the LocalExecutor workers and the triggerer (fixed ports by default).
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # What the example DAGs and the hook write, inside the throw-away directory.
                "ESHOPBOX_DEMO_OUTPUT": f"file://{self.output}",
                "ESHOPBOX_TOKEN_CACHE_DIR": str(self.root / "token-cache"),
            }
        )
        env.update(self.env_extra)
        return env

    # --------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 180) -> Deployment:
        self.root = Path(tempfile.mkdtemp(prefix="eshopbox-deploy-"))
        self.root.chmod(0o711)  # the postgres user must reach its data directory inside
        for sub in ("tmp", "components", "output", "airflow"):
            (self.root / sub).mkdir()
        self.port = free_port()
        began = time.monotonic()
        self.postgres = PostgresCluster(self.root / "pg", {**os.environ, MARKER: self.marker})
        self.postgres.start()
        env = self.environment()
        self._env = env
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        (self.component_logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise DeploymentError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"
            )
        for name in COMPONENTS:
            args = [sys.executable, "-m", "airflow", name]
            if name == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            out = open(self.component_logs / f"{name}.log", "wb")  # noqa: SIM115 - closed by the child
            try:
                self.procs[name] = subprocess.Popen(
                    args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            finally:
                out.close()
        remaining = max(timeout - (time.monotonic() - began), 10)
        wait_for("the api-server to answer", self._healthy, remaining)
        self.timings = {"startup_s": time.monotonic() - began}
        return self

    def _healthy(self) -> bool:
        self.assert_running()
        reply = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        if reply.status_code != 200:
            return False
        health = reply.json()
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def assert_running(self) -> None:
        """Raise (with the log tail) if a component died."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise DeploymentError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.component_logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def our_pids(self) -> list[int]:
        """Every live process carrying this deployment's marker (components and all descendants)."""
        needle = f"{MARKER}={self.marker}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids

    def stop(self, keep: Path | None = None) -> list[int]:
        """Terminate everything, then kill what is left; remove the directory (copy it to ``keep``
        first if given). Returns the pids that needed SIGKILL."""
        if self._client is not None:
            self._client.close()
            self._client = None
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.2)
        if self.postgres is not None:
            self.postgres.stop()
        while time.monotonic() < deadline and (
            any(p.poll() is None for p in self.procs.values()) or self.our_pids()
        ):
            time.sleep(0.2)
        killed = self.our_pids()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.our_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if keep is not None and self.root.exists():
            shutil.copytree(self.root, keep, dirs_exist_ok=True, symlinks=True)
        if getattr(self, "root", None) is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        return killed

    # -------------------------------------------------------------- REST API
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=30)
        return self._client

    def _auth(self) -> dict[str, str]:
        if not self._token:
            reply = self.client.get("/auth/token")
            reply.raise_for_status()
            self._token = reply.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, *, ok: Iterable[int] = (200, 201), **kwargs: Any) -> Any:
        """One REST call under /api/v2; the JSON reply (raises on an unexpected status)."""
        extra_headers = kwargs.pop("headers", {})
        for _ in range(2):
            headers = {**self._auth(), **extra_headers}
            reply = self.client.request(method, f"/api/v2{path}", headers=headers, **kwargs)
            if reply.status_code == 401:
                self._token = ""
                continue
            break
        if reply.status_code not in set(ok):
            raise DeploymentError(f"{method} {path} -> {reply.status_code}: {reply.text[:2000]}")
        ctype = reply.headers.get("content-type", "")
        return reply.json() if "json" in ctype else reply.text

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Until every DAG is parsed and serialized (an import error fails at once)."""
        wanted = set(dag_ids)

        def parsed() -> bool:
            self.assert_running()
            errors = self.api("GET", "/importErrors")
            if errors.get("import_errors"):
                raise DeploymentError(f"DAG import errors: {json.dumps(errors)[:4000]}")
            have = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            return wanted <= have

        wait_for(f"DAGs {sorted(wanted)} to be parsed", parsed, timeout)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        def done() -> str | None:
            self.assert_running()
            state = self.run_state(dag_id, run_id)
            return state if state in TERMINAL_RUN_STATES else None

        return wait_for(f"run {dag_id}/{run_id} to finish", done, timeout)

    def backfill_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's backfill runs (oldest first), as the REST API lists them."""
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return sorted((r for r in runs if r["run_type"] == "backfill"), key=lambda r: r["logical_date"])

    def wait_backfill(self, dag_id: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """Until ``count`` backfill runs of ``dag_id`` exist and every one has finished; returns them."""

        def finished() -> list[dict[str, Any]] | None:
            self.assert_running()
            runs = self.backfill_runs(dag_id)
            done = [r for r in runs if r["state"] in TERMINAL_RUN_STATES]
            return runs if len(runs) == count and len(done) == count else None

        return wait_for(f"{count} backfill runs of {dag_id} to finish", finished, timeout, interval=2)

    def failure_reason(self, dag_id: str, run_id: str) -> str:
        """The log tail of each task of a run that did not succeed (for assertion messages)."""
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] != "success":
                tried = ti["try_number"]
                log = self.task_log(dag_id, run_id, ti["task_id"], tried) if tried else ""
                parts.append(f"{ti['task_id']} {ti['state']}: ...{log[-2500:]}")
        return "\n".join(parts) or "(no task log)"

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A task's return value (deserialized)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120
    ) -> dict[str, Any]:
        """Until the task instance is in ``state``; returns it (fails at once on another final state)."""

        def reached() -> dict[str, Any] | None:
            self.assert_running()
            tis = {ti["task_id"]: ti for ti in self.task_instances(dag_id, run_id)}
            ti = tis.get(task_id) or {}
            got = ti.get("state")
            if got in ("failed", "upstream_failed", "success") and got != state:
                raise DeploymentError(f"{dag_id}/{run_id}/{task_id} is {got}, waited for {state}")
            return ti if got == state else None

        return wait_for(f"{dag_id}/{run_id}/{task_id} to be {state}", reached, timeout)

    def wait_deferral_settled(self, ti_id: str, timeout: float = 120) -> None:
        """Until the scheduler has processed the end of the workload that deferred ``ti_id``.

        Airflow 3.3.2 race (LocalExecutor): if the trigger fires and the task resumes before the
        scheduler has handled the executor's "success" event of the workload that deferred (same
        try number), the scheduler takes it for the resumed run, logs "finished with state success,
        but the task instance's state attribute is running" and marks the task FAILED. Releasing a
        sensor only after this line keeps the test about the provider.
        """

        def settled() -> bool:
            self.assert_running()
            text = (self.component_logs / "scheduler.log").read_text(errors="replace")
            return any(
                "TaskInstance Finished:" in line and f"ti_id={ti_id}" in line for line in text.splitlines()
            )

        wait_for(f"the scheduler to see the deferring workload of {ti_id} end", settled, timeout)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The api-server's view of a task log (JSON lines, as served)."""
        reply = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        return reply if isinstance(reply, str) else json.dumps(reply)
