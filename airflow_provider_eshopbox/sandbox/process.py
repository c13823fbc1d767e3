"""Run the sandbox CLI in its own process (its CPU is not the caller's), for demos and benchmarks."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from types import TracebackType


class SandboxProcess:
    """``python -m airflow_provider_eshopbox.sandbox <args>``, ready once it prints ``READY <origin>``.

    ``origin`` and ``connection_json`` are read from what the CLI prints; ``echo`` receives each line.
    """

    def __init__(
        self, *args: str, echo: bool = False, env: dict[str, str] | None = None, stop_timeout: float = 60.0
    ) -> None:
        self.args = list(args)
        self.stop_timeout = stop_timeout
        self.echo = echo
        self.env = env
        self.origin = ""
        self.connection_json = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_eshopbox.sandbox", "--port", "0", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**(self.env if self.env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
        )
        self._proc = proc
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.echo:
                print(f"  sandbox | {line.rstrip()}")
            if line.startswith("AIRFLOW_CONN_ESHOPBOX_DEFAULT="):
                self.connection_json = shlex.split(line.split("=", 1)[1])[0]
                json.loads(self.connection_json)  # fail here, not in Airflow, if the format changes
            if line.startswith("READY "):
                self.origin = line.split(" ", 1)[1].strip()
                return self
        raise RuntimeError(f"the sandbox exited before it was ready (exit code {proc.wait()})")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """SIGTERM, then wait; a sandbox that does not stop is killed (never left holding its rows)
        and, like one that exits non-zero, fails the block unless it already failed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            code = proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problem = f"did not stop within {self.stop_timeout:.0f} s of SIGTERM and was killed"
        else:
            problem = f"exited with code {code}" if code else ""
        if problem and exc_type is None:
            raise RuntimeError(f"the sandbox (pid {proc.pid}) {problem}")
