"""Run the benchmarks, print their tables and a summary, and rewrite the README's figures from them.

Every figure in the README's Performance section sits in a block between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``: the command of a row of ``BLOCKS``, the machine and date of the run, the
noise to expect, and the bench's printed output as it was printed, so a reviewer re-running the
command compares the same rows. A bench prints its key numbers as ``headline: LABEL = VALUE`` lines
(``headline``); the summary table gathers them.

    python -m bench.report [--write README.md] [--only rss,tokens] [--with-slow] [--note TEXT]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HEADLINE = re.compile(r"^headline: (?P<label>.+?) = (?P<value>.+)$", re.MULTILINE)
BLOCK = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n", re.DOTALL)
COMMAND = re.compile(r"^Command: `python (?P<args>-m bench\.[^`]*)`", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A README figure block: the bench command (after ``python``) and the noise between runs."""

    args: tuple[str, ...]
    noise: str
    in_make_bench: bool = True  # run by ``python -m bench``; the others only for the README
    slow: bool = False  # only with --with-slow (tens of minutes)

    @property
    def module(self) -> str:
        return self.args[1]

    @property
    def command(self) -> str:
        return shlex.join(("python", *self.args))


BLOCKS: dict[str, Block] = {
    "orders_sync": Block(
        ("-m", "bench.orders_sync"),
        "requests within a few per window from run to run (slices in flight race); seconds and CPU per "
        "request by 20% or more on a shared machine; under a limit the time follows the requests",
    ),
    "orders_sync-300ms": Block(
        ("-m", "bench.orders_sync", "--latency-ms", "300", "--limits", "10"),
        "as orders_sync; the ratios to the floor within about 0.1",
        in_make_bench=False,
    ),
    "slicing": Block(
        ("-m", "bench.slicing", "--rows", "20000", "--seeds", "7,8,9,10,11,12", "--rate", "50"),
        "a few requests per seed (fixed seeds and an in-memory search: only the simulated timing varies)",
    ),
    "load": Block(
        ("-m", "bench.load", "--rps", "0", "--server-rps", "12"),
        "429s and requests within a few dozen from run to run; wall time by 30% on a shared machine",
    ),
    "rss": Block(
        ("-m", "bench.rss", "--rows", "1000000", "--format", "jsonl,parquet"),
        "peak RSS within about 5 MB from run to run on one machine, but by up to 15 MB between machines "
        "of this kind (the same code gave JSONL +27 to +29 and Parquet +54 to +58 MB on one, +14 and +41 "
        "to +44 on the next); seconds by 30% or more on a shared machine; requests within a few dozen; "
        "rows, temp disk and output exact for the seed",
    ),
    "rss-5m": Block(
        ("-m", "bench.rss", "--rows", "5000000"),
        "as rss",
        in_make_bench=False,
        slow=True,
    ),
    "tokens": Block(
        ("-m", "bench.tokens"),
        "none in the exchange counts; times by 30% or more on a shared machine",
    ),
    "imports": Block(
        ("-m", "bench.imports"),
        "a few ms from run to run; more under load",
    ),
}


def headline(label: str, value: str) -> None:
    """Print one of a bench's key numbers where the summary table finds it."""
    print(f"headline: {label} = {value}", flush=True)


@dataclass
class Result:
    """One bench run: what it printed (stdout only), its exit status and how long it took."""

    name: str
    output: str
    code: int
    seconds: float
    when: datetime

    def headlines(self) -> list[tuple[str, str]]:
        """The ``headline:`` lines printed, or else the cells ``READ_FROM_TABLES`` names."""
        printed = [(m["label"], m["value"]) for m in HEADLINE.finditer(self.output)]
        if printed:
            return printed
        return [
            (label, find(self.output) or "(not in the output)")
            for label, find in READ_FROM_TABLES.get(self.name, [])
        ]


def table_cell(output: str, title: str, row: str, column: str) -> str | None:
    """A cell of a fixed-width table a bench printed: in the table under the line starting with
    ``title``, the row whose text starts with ``row``, the right-aligned column headed ``column``."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
    if start is None:
        return None
    at = next((i for i in range(start + 1, len(lines)) if column in lines[i]), None)
    if at is None:
        return None
    header = lines[at]
    end = header.index(column) + len(column)
    begin = len(header[: end - len(column)].rstrip())  # where the column to the left ends
    for line in lines[at + 1 :]:
        if not line.strip():
            return None  # the table ended
        if line.strip().startswith(row):
            return line[begin:end].strip() or None
    return None


def line_value(output: str, prefix: str) -> str | None:
    """What follows ``prefix`` on the first line starting with it."""
    return next(
        (line[len(prefix) :].strip() for line in output.splitlines() if line.startswith(prefix)), None
    )


_NO_LIMIT = "Orders sync, "
_LIMITED = "Orders sync under a server rate limit"
_OPERATOR = "EshopboxOrdersToStorageOperator"
# Headlines of the benches that print no headline: lines: cells of their printed tables (orders_sync
# prints its own since it checks bounds: its cells are read only from output older than that).
READ_FROM_TABLES: dict[str, list[tuple[str, Callable[[str], str | None]]]] = {
    "orders_sync": [
        ("no limit: requests per page", lambda out: table_cell(out, _NO_LIMIT, _OPERATOR, "req/page")),
        ("no limit: client CPU per request", lambda out: table_cell(out, _NO_LIMIT, _OPERATOR, "CPU/req")),
        ("no limit: vs hourly pager", lambda out: table_cell(out, _NO_LIMIT, _OPERATOR, "vs pager")),
        (
            "10/s, told: vs floor",
            lambda out: table_cell(out, _LIMITED, "10  operator, limit told", "vs floor"),
        ),
        (
            "10/s, not told: vs floor",
            lambda out: table_cell(out, _LIMITED, "10  operator, limit not told", "vs floor"),
        ),
    ],
    "slicing": [
        ("slicer requests / ideal, median", lambda out: line_value(out, "slicer requests / ideal, median:"))
    ],
}
READ_FROM_TABLES["orders_sync-300ms"] = READ_FROM_TABLES["orders_sync"][3:]


def run(name: str, block: Block) -> Result:
    """Run a bench in its own process, echoing its output as it comes."""
    when = datetime.now(timezone.utc)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, *block.args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    return Result(name, "".join(lines), code, time.monotonic() - began, when)


def machine() -> str:
    """Cores, CPU model and Python of this machine, as the blocks state them."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = f", {found[1].strip()}" if found else ""
    return f"{platform.machine()}, {os.cpu_count()} cores{model}, Python {platform.python_version()}"


def render(block: Block, result: Result, note: str) -> str:
    """The text between a block's markers."""
    status = "exit 0" if result.code == 0 else f"**exit {result.code}: a bound failed**"
    lines = [
        f"Command: `{block.command}`",
        f"Run {result.when:%Y-%m-%d %H:%M} UTC on {machine()}{f' ({note})' if note else ''}; "
        f"{status}, {result.seconds:.0f} s. Noise between runs: {block.noise}.",
        "",
        "```text",
        result.output.rstrip("\n"),
        "```",
    ]
    return "\n".join(lines) + "\n"


def rewrite(text: str, name: str, body: str) -> str:
    """``text`` with block ``name``'s body replaced; the markers must be there already."""
    start, end = f"<!-- bench:{name} -->\n", f"<!-- /bench:{name} -->\n"
    head, found, rest = text.partition(start)
    _, closed, tail = rest.partition(end)
    if not found or not closed:
        raise SystemExit(f"the README has no block {start.strip()} ... {end.strip()}")
    return head + start + body + end + tail


def blocks_in(text: str) -> dict[str, str]:
    """The bench blocks of a README: name -> body."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def summary(results: list[Result]) -> str:
    """One table of every bench's headline numbers and exit status."""
    rows = [("bench", "headline", "value")]
    for r in results:
        found = r.headlines() or [("(no headline printed)", "")]
        rows += [(r.name if i == 0 else "", label, value) for i, (label, value) in enumerate(found)]
        rows.append(("", "exit status", "0" if r.code == 0 else f"{r.code} (a bound failed)"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", metavar="README", help="rewrite this file's bench blocks from the runs")
    parser.add_argument("--only", help="comma-separated block names (default: all but the slow ones)")
    parser.add_argument(
        "--with-slow",
        action="store_true",
        help="also the slow blocks: " + ", ".join(name for name, b in BLOCKS.items() if b.slow),
    )
    parser.add_argument("--make-bench", action="store_true", help="only the blocks of make bench")
    parser.add_argument(
        "--note", default="", help="said of the machine in each block, e.g. 'loaded by other jobs'"
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(BLOCKS))
        if unknown:
            parser.error(f"--only: unknown blocks {unknown}; known: {', '.join(BLOCKS)}")
    else:
        names = [
            n
            for n, b in BLOCKS.items()
            if (args.with_slow or not b.slow) and (b.in_make_bench or not args.make_bench)
        ]
    readme = Path(args.write) if args.write else None
    if readme is not None:  # fail on a missing block before an hour of benchmarks, not after
        missing = [n for n in names if n not in blocks_in(readme.read_text())]
        if missing:
            parser.error(f"{readme} has no block for {missing}")
    results = []
    for name in names:
        print(f"\n===== {BLOCKS[name].command} =====", flush=True)
        result = run(name, BLOCKS[name])
        results.append(result)
        if readme is not None:  # each block as soon as its bench ends: a later failure keeps it
            readme.write_text(rewrite(readme.read_text(), name, render(BLOCKS[name], result, args.note)))
    print("\n===== summary =====")
    print(summary(results))
    failed = [r.name for r in results if r.code]
    if failed:
        print(f"\nbenchmarks with a broken bound or an error: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
