"""Lines for a summary printed at the end of a pytest session (the deployment and scale suites)."""

from __future__ import annotations

import time

import pytest


class SessionReport:
    """Collects lines during the session; ``write`` prints them under ``title`` with the wall time."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.lines: list[str] = []
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        """A line for the summary (and kept in the pytest output)."""
        self.lines.append(line)
        print(line)

    def write(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.write_sep("=", self.title)
            for line in self.lines:
                terminalreporter.write_line(line)
            terminalreporter.write_line(f"session wall time: {time.monotonic() - self.started:.0f} s")
