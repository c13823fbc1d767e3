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

    def __init__(self, *args: str, echo: bool = False, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
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
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
