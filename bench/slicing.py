"""How many requests the slicer spends, against two lower bounds, on the orders benchmark's data.

The orders search returns no count and no order, and a slice must fit one page, so requests beyond
the ideal (rows / 100) are the price of not knowing where the rows are. This runs the real
``WindowReader`` on an in-memory copy of the sandbox's search (same data generator, same random
hit order, same hit cap, a small simulated latency; no HTTP, so it is fast and CPU noise does not
move it) and compares it with:

- **oracle**: every timestamp known in advance; greedy slices of at most one page, bursts paged and
  re-checked as the reader must. No reader can do better.
- **exact rate**: the same ``WindowReader``, told how many rows (bursts aside) every stretch of time
  holds instead of estimating it. What remains is the cost of bursts and partial last pages.
- **one-page**: the same reader with ``deep=False``: every slice fits one page (the read before
  settled slices were read several pages deep).

    python -m bench.slicing [--rows 50000] [--seeds 7,8,9] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import math
import statistics
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.sandbox.data import generate
from airflow_provider_eshopbox.sync.slicing import REQUEST_KINDS, SliceStats, WindowReader, _Region

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 7
HOUR_MS = 3_600_000
LATENCY_S = 0.005
_BURST = 20  # rows at one millisecond from which a millisecond counts as a burst, not the rate


class MemorySearch:
    """The sandbox's orders search in memory: filter by time, random stable order, hit cap, pages.

    ``rate`` > 0: request starts are spaced ``1 / rate`` s apart, as a client limiter does.
    """

    def __init__(self, rows: list[dict[str, Any]], seed: int, rate: float = 0) -> None:
        self._rate = rate
        self._next_start = 0.0

        def rank(item_id: str) -> bytes:
            return hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()

        self._index = sorted((row["updatedAt"], rank(row["orderItemID"]), row["orderItemID"]) for row in rows)
        self._stamps = [stamp for stamp, _, _ in self._index]

    async def fetch(self, start_ms: int, end_ms: int, page: int) -> tuple[list[dict[str, Any]], bool]:
        if self._rate:
            now = asyncio.get_running_loop().time()
            start = max(now, self._next_start)
            self._next_start = start + 1 / self._rate
            await asyncio.sleep(start - now)
        await asyncio.sleep(LATENCY_S)
        lo, hi = bisect.bisect_left(self._stamps, start_ms), bisect.bisect_left(self._stamps, end_ms)
        reachable = sorted(self._index[lo:hi], key=lambda entry: entry[1])[: api.ORDERS_HIT_CAP]
        per_page = api.ORDERS_PER_PAGE_MAX
        hits = [
            {"updatedAt": s, "orderItemID": i}
            for s, _, i in reachable[(page - 1) * per_page : page * per_page]
        ]
        return hits, len(reachable) > page * per_page


def oracle_requests(stamps: list[int]) -> int:
    """Requests of a reader that knows every timestamp: greedy one-page slices, bursts paged."""
    per_page = api.ORDERS_PER_PAGE_MAX
    requests, held = 0, 0
    for _stamp, count in sorted(Counter(stamps).items()):
        if count > per_page:  # its own millisecond: k pages, then pages 1..k-1 again
            requests += bool(held)
            held = 0
            pages = count // per_page + 1
            requests += 2 * pages - 1
        elif held + count > per_page:
            requests, held = requests + 1, count
        else:
            held += count
    return requests + bool(held)


class ExactRateReader(WindowReader):
    """A WindowReader told how many rows (bursts excluded) any stretch holds instead of estimating it."""

    def __init__(self, *args: Any, stamps: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        counts = Counter(stamps)
        self._calm = sorted(s for s in stamps if counts[s] < _BURST)

    def _rows_in(self, region: _Region, lo: int, hi: int) -> float:
        return bisect.bisect_left(self._calm, hi) - bisect.bisect_left(self._calm, lo)


def read(
    reader_class: type[WindowReader], search: MemorySearch, concurrency: int, **extra: Any
) -> SliceStats:
    start_ms = int(START.timestamp() * 1000)
    seen: list[str] = []
    reader = reader_class(
        search.fetch,
        timestamp=api.order_row_updated_at,
        row_id=api.order_row_id,
        per_page=api.ORDERS_PER_PAGE_MAX,
        hit_cap=api.ORDERS_HIT_CAP,
        max_concurrency=concurrency,
        on_rows=lambda hits: seen.extend(api.order_row_id(hit) for hit in hits),
        **extra,
    )
    stats = asyncio.run(reader.read(start_ms, start_ms + DAYS * 24 * HOUR_MS))
    if len(set(seen)) != len(search._index):  # a slice read again delivers its rows again
        raise SystemExit(f"{reader_class.__name__} read {len(seen)} rows, {len(set(seen))} distinct")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, default=0, help="requests/s the search is paced to (0: none), as a limiter does"
    )
    args = parser.parse_args()
    paced = f", paced to {args.rate:g} requests/s" if args.rate else ""
    print(
        f"Slicer requests, {args.rows} rows over {DAYS} days, max_concurrency={args.concurrency}, "
        f"in-memory search ({LATENCY_S * 1000:.0f} ms simulated latency{paced})"
    )
    print(
        f"{'seed':>5}{'ideal':>7}{'oracle':>8}{'exact rate':>12}{'one-page':>9}{'slicer':>8}{'overflows':>10}"
        f"{'deep':>6}{'paged ms':>9}"
    )
    ratios = []
    spent: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        data = generate(workspace="acme", orders=0, seed=seed, order_items=args.rows, start=START, days=DAYS)
        stamps = [row["updatedAt"] for row in data.rows]
        search = MemorySearch(data.rows, seed, args.rate)
        # Paced, every reader is told the rate, as the operator is told max_requests_per_second.
        paced = {"paced_by": args.rate} if args.rate else {}
        exact = read(ExactRateReader, search, args.concurrency, stamps=stamps, **paced)
        slicer = read(WindowReader, search, args.concurrency, **paced)
        one_page = read(WindowReader, search, args.concurrency, deep=False, **paced)
        ideal = math.ceil(args.rows / api.ORDERS_PER_PAGE_MAX)
        ratios.append(slicer.requests / ideal)
        spent.update(slicer.spent)
        held.update(slicer.held)
        print(
            f"{seed:>5}{ideal:>7}{oracle_requests(stamps):>8}{exact.requests:>12}{one_page.requests:>9}"
            f"{slicer.requests:>8}{slicer.overflows:>10}{slicer.deep_slices:>6}{slicer.paged_slices:>9}"
        )
    print(f"slicer requests / ideal, median: {statistics.median(ratios):.2f}")
    print_breakdown(spent, held, len(ratios))


def print_breakdown(spent: Counter[str], held: Counter[str], runs: int) -> None:
    """The slicer's requests by kind (slicing.REQUEST_KINDS), per run, and what each cost beyond the
    pages its rows fill (a re-read: all of it)."""
    print(f"\nslicer requests by kind, mean of {runs} runs")
    print(f"{'kind':<13}{'requests':>9}{'rows':>8}{'waste':>7}  what")
    per_page = api.ORDERS_PER_PAGE_MAX
    for kind, what in REQUEST_KINDS.items():
        if spent[kind]:
            waste = spent[kind] if kind == "re-read" else spent[kind] - held[kind] / per_page
            print(
                f"{kind:<13}{spent[kind] / runs:>9.1f}{held[kind] / runs:>8.0f}{waste / runs:>7.1f}  {what}"
            )


if __name__ == "__main__":
    main()
