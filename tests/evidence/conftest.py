"""Fixtures for the fault matrix: one sandbox for the module, a result collector that prints a table.

The sandbox holds enough order rows for a window well above the 1,000-hit cap, a catalogue of a few
hundred ESINs and room for pushed orders. Faults, scripts, stats and the hit cap are reset before
every run, so each cell sees exactly the fault it names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection

# Every random fault at a low rate at once (the fault matrix's and the streams' "all together").
ALL_RANDOM = {
    "latency_ms": 10,
    "throttle_rate": 0.03,
    "retry_after": 1,
    "error_rate": 0.04,
    "drop_rate": 0.03,
    "truncate_rate": 0.03,
}
TOKEN_TTL = 60  # sandbox token lifetime (s); the "expire" fault moves the sandbox clock past it


@pytest.fixture(scope="module")
def sandbox(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    """12,000 order-item rows over a week (~1,700 a day), 300 ESINs (12 inventory pages of 25)."""
    sandbox = EshopboxSandbox(order_items=12_000, products=300, seed=23, token_ttl=TOKEN_TTL)
    with sandbox as sb, default_connection(sb.connection_json()):
        yield sb


class RequestTrigger:
    """Run ``action`` once the sandbox has seen ``after`` more API requests, inline in the sandbox's
    request counter, before that request is served: the request that reaches the count already meets
    the action's effect, however fast or loaded the machine (a thread woken by the count could lose
    the race against a short read). ``action`` must not call the sandbox over HTTP.
    """

    def __init__(self, sb: EshopboxSandbox, after: int, action: Callable[[], Any]) -> None:
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        counter = sb.stats_counter
        original = counter.begin
        self._restore = lambda: setattr(counter, "begin", original)

        def begin(route: str) -> None:
            original(route)
            with self._lock:
                if not self._stopped and not self.fired.is_set() and counter.snapshot()["requests"] >= after:
                    action()
                    self.fired.set()

        counter.begin = begin  # type: ignore[method-assign]

    def stop(self) -> bool:
        """Stop watching; True if the action ran."""
        with self._lock:
            self._stopped = True
        self._restore()
        return self.fired.is_set()


@dataclass
class Cell:
    """One run of the matrix."""

    fault: str
    operator: str
    expected: str  # "exact", "fail" or "either"
    outcome: str = "?"  # "exact", "failed clean", or "VIOLATION: ..."
    rows_expected: int = 0
    rows_written: int = 0
    lost: int = 0
    doubled: int = 0
    injected: str = ""
    seconds: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Matrix:
    """Collects cells; renders them as a fixed-width table."""

    HEADER = ("fault", "operator", "expected", "outcome", "rows exp", "written", "lost", "doubled", "s")

    def __init__(self) -> None:
        self.cells: list[Cell] = []

    def add(self, cell: Cell) -> Cell:
        self.cells.append(cell)
        return cell

    def render(self) -> str:
        rows = [self.HEADER] + [
            (
                c.fault,
                c.operator,
                c.expected,
                c.outcome,
                str(c.rows_expected),
                str(c.rows_written),
                str(c.lost),
                str(c.doubled),
                f"{c.seconds:.1f}",
            )
            for c in self.cells
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.HEADER))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [
            f"  {c.fault} x {c.operator}: injected {c.injected or 'nothing'}"
            + (f"; {c.note}" if c.note else "")
            for c in self.cells
        ]
        return "\n".join(["FAULT MATRIX", *lines, "", "faults injected / notes:", *notes, ""])


@pytest.fixture(scope="module")
def matrix(session_dir: Path) -> Iterator[Matrix]:
    """The module's results; printed (visible with ``pytest -s``) and written to the session dir."""
    collected = Matrix()
    yield collected
    if collected.cells:
        text = collected.render()
        path = session_dir / "fault_matrix.txt"
        path.write_text(text)
        print("\n" + text + f"(also written to {path})")
