"""Read every row of an ``updatedAt`` window exactly, from a search endpoint that cannot be paged deeply.

The orders list is an Algolia-style search: unordered, offset-paged, capped in how many hits one
query can reach, and offset paging over a live result skips rows when others leave it mid-read.

Settled time (older than ``settle_ms``: rows can only leave it) is read in slices several pages
deep, each below the hit cap, and proven afterwards at the cost of about one request for the whole
read (``_prove``): a slice whose pages were full, distinct and ended with ``hasNext`` false holds
every row that stayed in it, unless one of the rows read left during the read; such a row was
updated, so it is among the rows updated since the read began (minus the settle time), which one
query lists. A slice sharing a row with that list, or whose pages showed a shift, is read again
(in halves, proven again; then in one-page slices). Recent time, where rows may still be joining,
is read as before: slices that each fit ONE page (a single request is a consistent snapshot);
only a one-millisecond slice, which cannot be split, is paged, and then proven complete by
re-reading (see ``_read_one_millisecond``).

How slices are sized (the speed part; exactness never depends on it):
1. Page 1 of the whole window either holds everything (done) or is a random sample of its rows
   (``api.ORDERS_SEARCH_ORDER_UNRELATED_TO_TIME``). Of a settled window, the cap's last page
   follows: a window below the cap is then read whole, as a deep slice; else the two make the
   sample, 200 rows, spread into a smooth shape of where rows lie (``SampleShape``): over
   a window of two days or more, by the time of day (each point counts for its bin of every day);
   points sharing a millisecond are a burst's and stay on it.
2. The window is cut into a few regions of equal sample mass. Each region is crawled front to
   back by one worker at a time (an idle one takes it over once a deep slice is counted, while
   that slice's pages below are read), each slice sized to hold a target: most of a page (recent
   time), or as much of the hit cap as the error of the estimate allows (settled time, ``_deep_fill``). The
   estimate is the window's scale (rows per sample point, over every slice counted so far) times
   the slice's sample mass, moved a little by the region's own last counts.
3. Before any slice is counted, regions start from a ladder of scale guesses; a settled one reads
   its slice's page at the cap first, so a guess off either way costs one request; so settled
   regions calibrate one at a time, and the first count of a page or more (known once its last
   page is found, before the pages below are read) sizes every other slice.
4. A deep slice's count is found first (``_read_deep``): a probe page a little short of where the
   expected rows end, then up until ``hasNext`` is false; only then go the pages below together.
5. A slice that overflows is re-cut at the sample rank that holds its target if it held just
   over its capacity (a guess that grows fourfold with each overflow in a row); one whose sample is
   crowded on one millisecond is read up to it, while that millisecond and what follows it
   become regions of their own for other workers.
6. A worker that runs out of region steals the back half of the largest remaining one, if that
   is expected to hold two targets or more.
7. Workers: ``max_concurrency``, or half as many over a settled window (a deep slice sends its
   pages together, so fewer, fuller slices keep the requests in flight); under a told rate, as
   many as keep the limiter busy at the sample's shortest round trip (``paced_workers``).

Every request is booked in ``SliceStats.spent`` under what it turned out to be (``REQUEST_KINDS``);
``python -m bench.slicing`` and ``python -m bench.orders_sync`` print where they went.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import marshal
import math
import tempfile
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_provider_eshopbox.api import ORDERS_LIST, ORDERS_SEARCH_SETTLE_MS
from airflow_provider_eshopbox.concurrency import run_all
from airflow_provider_eshopbox.exceptions import (
    EshopboxApiError,
    EshopboxContractError,
    EshopboxIncompleteReadError,
)
from airflow_provider_eshopbox.sync.sample_shape import SampleShape

Row = Any  # one hit as ``fetch`` returns it: only ``timestamp`` and ``row_id`` look inside
Page = tuple[list[Row], bool]  # a reply: its hits, and hasNext
#: ``fetch(start_ms, end_ms, page) -> (hits, has_next)`` for rows with start_ms <= updatedAt < end_ms.
FetchPage = Callable[[int, int, int], Awaitable[tuple[list[Row], bool]]]

_SCALE_LADDER = (1.0, 8.0, 64.0, 512.0, 4096.0, 32768.0)
_MAX_STABILITY_PASSES = 8
#: Queries whose pages' signatures are kept for the repeated-page guard, the most recently read: a
#: query's pages are read together (at most max_concurrency slices at once), so memory stays flat in
#: rows (every page's signature until the read's end was about 250 bytes a page: 14 MB at 5M rows).
_PAGE_SIG_QUERIES = 1024
_OBSERVATIONS = 4  # recent (rows, sample mass) pairs a region's density is measured over
# More come from stealing once the density is measured, so small windows stay cheap: each region
# pays a calibration probe and a partly filled last page (2,000 rows: 28 requests with 2, 34 with 4).
_INITIAL_REGIONS = 2
_CROWD_SHARE = 0.1  # a sample this concentrated on one millisecond marks a burst to read on its own
# After an overflow the slice is assumed to have held just over a page; each further overflow in a
# row multiplies that guess, so a badly underestimated density is found in a few steps, not many.
_OVERFLOW_GROWTH = 4.0
# Most of the hit cap a settled slice is sized for (less while the scale is uncertain, _deep_fill):
# the fuller, the fewer partial last pages; an overflow costs the pages from the probe to the cap.
_DEEP_FILL = 0.85
# Share of the cap a settled slice sized by a ladder guess is sized for: its cap page is read first,
# so a guess too low costs one request, and one that fits counts several pages' worth of rows.
_CALIBRATION_FILL = 0.5
_SAFETY_SIGMAS = 2.0  # a deep slice's expected count is this many relative errors below the cap
# A deep slice's count is looked for first on the page its expected rows, less this share, end on.
_PROBE_MARGIN = 0.3
# Slices read at once in settled time, per request allowed in flight: a deep slice sends the pages
# below its count together, so half as many slices keep the requests in flight, in fewer and fuller
# slices (bench.slicing: 1.18 requests per page instead of 1.22; the same time in bench.orders_sync).
_DEEP_WORKERS = 0.5
# Rows counted before the scale is trusted (a slice of 2 rows, cut short by a burst, would size
# the next ones from noise); until then slices stay sized by guesses, one calibrating at a time.
_CALIBRATED_ROWS = 100
_FOREVER = 2**53  # end of the "updated since" query: no updatedAt reaches it
# A slice whose count is this many standard deviations (sqrt of the expected count) off the region's
# density marks a change in the data's rate: older observations are dropped rather than averaged in.
_CHANGE_SIGMAS = 2.5
# Pages of a settled window read at the start, besides the cap's last page (see _read_whole): with
# it, a sample of 200 rows. More points size slices better (a slice's expected count is off by
# 1/sqrt of the sample points in it), but each page costs a request whose rows are not kept: 2 of
# 20 pages at 2,000 rows; over 5 seeds, bench.slicing at 20,000 rows was as good with 1 as with 3.
_SAMPLE_PAGES = 1
# A region's own slices move its density away from the window's scale, which weighs as much as
# one slice's worth of rows at it times this (a slice of the region is noisier than the scale).
_PRIOR_SLICES = 0.25
# Requests sent by the unit of work that set it (and the tasks it started), for SliceStats.spent.
_METER: ContextVar[list[int] | None] = ContextVar("_METER", default=None)


@contextlib.contextmanager
def _metering() -> Iterator[list[int]]:
    """Count the requests sent inside the block, its child tasks' included: ``box[0]``."""
    box = [0]
    token = _METER.set(box)
    try:
        yield box
    finally:
        _METER.reset(token)


#: What a request turned out to be, for ``SliceStats.spent`` (the benchmarks print the breakdown).
REQUEST_KINDS = {
    "whole": "the whole window fit its page 1",
    "sample": "the first pages of the whole window, a sample for planning (their rows are not kept)",
    "calibration": "a one-page slice sized by a guessed scale, that fit (a deep one counts as deep)",
    "one-page": "a one-page slice (recent time, or a read with deep=False), that fit",
    "deep": "a non-empty page of a deep slice that ended below the cap",
    "probe-empty": "the first page read of a deep slice, that came back empty (its rows ended below it)",
    "overflow": "a one-page slice that held more than a page: cut again",
    "deep-overflow": "the pages of a deep slice that reached the hit cap: cut again",
    "one-ms": "paging (and proving) a slice of one millisecond",
    "proof": "the query for rows updated since the read began",
    "guards": "the contract checks (issue 22): page 0 once per token and host, the empty-window cross-check",
    "re-read": "reading a deep slice again (halves, then one-page slices) after its proof failed",
}


def paced_workers(max_workers: int, rate: float, round_trip: float) -> int:
    """Slices to read at once when a limiter holds requests to ``rate``/s: enough to keep it busy
    at ``round_trip`` s a request (Little's law), at least one, at most ``max_workers``.

    More buys nothing there, and fewer slices in flight let each one's count size the next
    (bench.orders_sync, 10/s told, against 8 slices at once: 20,000 rows 229 requests and 23.5 s
    instead of 234 and 23.9 s at 50 ms, 228 and 26.0 s instead of 233 and 25.8 s at 300 ms; 2,000
    rows the same 25 requests and time, which the limiter's one-second windows set).
    """
    return max(1, min(max_workers, math.ceil(rate * round_trip)))


@dataclass
class SliceStats:
    """What reading a window cost; the operator's manifest and progress lines quote these."""

    requests: int = 0
    slices: int = 0
    overflows: int = 0
    paged_slices: int = 0
    deep_slices: int = 0  # settled slices read several pages deep
    reread_slices: int = 0  # ...read again because a row read in them left during the read
    rows: int = 0
    window_ms: int = 0  # the window being read, and how much of it is delivered (for progress lines)
    covered_ms: int = 0
    # Where the requests went, by what they turned out to be (see REQUEST_KINDS), and the rows they
    # delivered: requests - rows / per_page of a kind is what it cost beyond the pages its rows fill.
    spent: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        """Time spent reading (so far, or in all once the read is over)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def done(self) -> str:
        """The share of the window read, e.g. ``"42%"``."""
        return f"{100 * self.covered_ms // max(1, self.window_ms)}%"


@dataclass(frozen=True, slots=True)
class _ProofIds:
    """Where a deep slice's ids sit in ``WindowReader._proof_file`` (marshalled), and how many."""

    offset: int
    size: int
    count: int


@dataclass
class _Region:
    """A part of the window ``[cursor, end)`` still to be read, crawled by one worker at a time."""

    cursor: int
    end: int
    density: float | None = None  # rows per unit of sample mass (SampleShape): a guess, then measured
    busy_until: int | None = None  # end of the slice in flight, if any
    owned: bool = False
    guessed: bool = False  # density is still a ladder guess, not a measurement
    deep: bool = False  # settled: slices may hold several pages (see _read_deep)
    next_widths: list[int] = field(default_factory=list)  # set after an overflow, from its sample
    observed: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=_OBSERVATIONS))
    overflows: int = 0  # consecutive overflows: each one means the density is further off

    @property
    def remaining(self) -> int:
        return self.end - self.cursor


@dataclass(frozen=True)
class ReadContract:
    """What a read checks of every reply (issue 22), named after the ``api.py`` ASSUMPTIONs it guards.

    ``reference``: a few rows of an unfiltered first page, for the empty-window cross-check
    (``WindowReader._cross_check_empty``); None leaves that check out. ``zero_page``: ask page 0
    (``WindowReader._check_first_page``): a 1-based server answers it empty; unless
    ``zero_page_known`` says it was already asked of this server under the read's token (the
    operator's ``EshopboxHook.aorders_first_page_known``). ``zero_page_passed``: told when it was.
    """

    endpoint: str = ORDERS_LIST.label
    window: str = "ORDERS_WINDOW_FILTER"
    paging: str = "ORDERS_PARAM_PAGE"
    page_size: str = "ORDERS_PER_PAGE_MAX"
    first_page: str = "ORDERS_FIRST_PAGE"
    budget_floor: int = 256
    reference: Callable[[], Awaitable[list[Any]]] | None = None
    zero_page: bool = True
    zero_page_known: Callable[[], Awaitable[bool]] | None = None
    zero_page_passed: Callable[[], Awaitable[None]] | None = None


class WindowReader:
    """Reads ``[start_ms, end_ms)`` through ``fetch`` and hands each fitted slice's rows to ``on_rows``.

    ``max_concurrency`` slices are read at once (half as many when the whole window has settled,
    ``_DEEP_WORKERS``), at most ``max_concurrency`` requests in flight; or with ``paced_by`` (the
    requests/s a limiter holds ``fetch`` to, e.g. a told ``max_requests_per_second``) as few as
    keep that rate busy at the shortest round trip of the window's first requests
    (``paced_workers``).
    """

    def __init__(
        self,
        fetch: FetchPage,
        *,
        timestamp: Callable[[Row], int],
        row_id: Callable[[Row], str],
        per_page: int,
        hit_cap: int,
        max_concurrency: int,
        on_rows: Callable[[list[Row]], None],
        on_progress: Callable[[SliceStats], None] | None = None,
        target_fill: float = 0.8,
        settle_ms: int = ORDERS_SEARCH_SETTLE_MS,
        deep: bool = True,
        paced_by: float | None = None,
        contract: ReadContract | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if per_page >= hit_cap:
            raise ValueError(f"per_page={per_page} must be below hit_cap={hit_cap}, or no page says 'more'")
        self._fetch = fetch
        self._timestamp = timestamp
        self._row_id = row_id
        self._per_page = per_page
        self._hit_cap = hit_cap
        self._max_workers = self._workers = max_concurrency
        self._on_rows = on_rows
        self._on_progress = on_progress
        self._target = max(1.0, per_page * target_fill)
        self._regions: list[_Region] = []
        self._scale: float | None = None  # rows per root-sample point, once calibrated
        self._counted = [0.0, 0.0]  # rows and sample mass of every slice counted exactly
        self._shape = SampleShape(0, 1, [])  # set when the window is planned (_plan_regions)
        self._busy = 0  # workers crawling a region
        # Settled slices in flight sized by a ladder guess: while one is, no other settled region starts
        # on a guess of its own, as the first count sizes every slice (bench.slicing: 2,000 rows 1.30
        # requests per page instead of 1.35, 5,000 rows 1.23 instead of 1.32).
        self._calibrating = 0
        self._slots = asyncio.Semaphore(max_concurrency)  # requests in flight, bursts' re-reads included
        self._settle_ms = settle_ms
        self._deep = deep  # False: every slice fits one page, as in recent time (for comparison and tests)
        self._changed = asyncio.Condition()
        # Deep slices read: (start, end, ids read, rows on the last page); ids None if the pages
        # showed a shift, else where they sit in ``_proof_file`` (_ProofIds).
        self._unproven: list[tuple[int, int, _ProofIds | None, int]] = []
        # The ids of the deep slices read, off the heap until the read is proven (a set of every
        # id of a month held ~170 bytes a row, bench.rss); opened at the first deep slice.
        self._proof_file: IO[bytes] | None = None
        # The furthest hit any reply of this read has served, (page - 1) * per_page + hits: the
        # server's hit cap is at or above it (api.ORDERS_SEARCH_CAP_ON_A_PAGE).
        self._reached = 0
        self._rereading = False  # proving: every request is a re-read (SliceStats.spent)
        self._paced_by = paced_by  # requests/s a limiter holds the reads to (a told rate), if any
        # The shortest round trip so far, s: when slices are planned, of the sample's requests (page 1
        # alone for a window reaching into recent time). The first one also opens the connection
        # (TLS and all); later ones may wait for the limiter.
        self._round_trip: float | None = None
        self.stats = SliceStats()
        self._contract = contract  # None: replies are trusted (inventory's use, unit tests of slicing)
        # (start, end) -> {hash of a page's ids: its page}, for the _PAGE_SIG_QUERIES latest queries
        self._page_sigs: OrderedDict[tuple[int, int], dict[int, int]] = OrderedDict()

    async def read(self, start_ms: int, end_ms: int) -> SliceStats:
        """Read the whole window; raises on anything that would make the result inexact."""
        try:
            return await self._read(start_ms, end_ms)
        finally:
            if self._proof_file is not None:
                self._proof_file.close()
                self._proof_file = None

    async def _read(self, start_ms: int, end_ms: int) -> SliceStats:
        if end_ms <= start_ms:
            raise ValueError(f"empty window [{start_ms}, {end_ms})")
        self.stats.window_ms = end_ms - start_ms
        began = int(time.time() * 1000)
        settled = min(max(began - self._settle_ms, start_ms), end_ms) if self._deep else start_ms
        contract = self._contract
        with _metering() as box:
            if (
                contract
                and contract.zero_page
                and not (contract.zero_page_known and await contract.zero_page_known())
            ):
                sample, _ = await run_all(
                    (
                        self._read_whole(start_ms, end_ms, settled, box),
                        self._check_first_page(start_ms, end_ms),
                    )
                )
            else:
                sample = await self._read_whole(start_ms, end_ms, settled, box)
        if sample is not None:
            self.stats.overflows += 1
            self._regions = self._plan_regions(start_ms, end_ms, sample, settled)
            if self._paced_by is not None and self._round_trip is not None:
                self._workers = paced_workers(self._max_workers, self._paced_by, self._round_trip)
            elif all(region.deep for region in self._regions):
                self._workers = math.ceil(self._max_workers * _DEEP_WORKERS)
            await run_all(self._worker(i) for i in range(self._workers))
        if self._unproven:
            await self._prove(began - self._settle_ms)
        if self.stats.rows == 0 and self._contract is not None and self._contract.reference is not None:
            await self._cross_check_empty(start_ms, end_ms)
        self.stats.finished = time.monotonic()
        return self.stats

    async def _read_whole(self, start: int, end: int, settled: int, box: list[int]) -> list[Row] | None:
        """Read the window in one go if it fits; else return a sample of its rows to plan from.

        Page 1 first: all of a small window. Of a settled window, pages 2..``_SAMPLE_PAGES`` (if any) and the
        cap's last page then go out together. If that last page is not full, the window is below
        the cap and is read whole, as a deep slice (its count is then known: an empty last page
        costs that one request); else they are the sample, the more points the better slices are
        sized (each costs one request, once per read).
        """
        hits, has_next = await self._get(start, end, 1)
        if not has_next:
            self._spend("whole", 1, len(hits))
            self._deliver(hits, end - start)
            return None
        if end - start == 1:
            if end <= settled:
                rows = await self._read_burst(start, hits)
                self._deliver(rows, 1)
            else:
                rows = await self._read_one_millisecond(start, hits)
            self._spend("one-ms", box[0], len(rows))
            return None
        if end > settled:
            self._spend("sample", 1)
            return hits
        last_page = math.ceil(self._hit_cap / self._per_page)
        more = sorted({*range(2, _SAMPLE_PAGES + 1), last_page})
        pages = {
            1: (hits, True),
            **dict(zip(more, await run_all(self._get(start, end, p) for p in more), strict=True)),
        }
        rows, over, empty = await self._read_deep(start, end, last_page, pages)
        if over:
            self._spend("sample", box[0])
            return rows
        self._spend("probe-empty", empty)
        self._spend("whole", box[0] - empty, len(rows))
        self._deliver(rows, end - start)
        return None

    async def _prove(self, since: int) -> None:
        """Read again every deep slice a row may have been skipped in, until none is left.

        A deep slice's pages 1..n-1 came back full and distinct, and page n said ``hasNext`` false
        (``_read_deep``): at page n's reply the slice held at most the rows read. Each row read that
        is not among the rows updated since ``since`` was in the slice then too (settled rows only
        leave, by an update, ``api.ORDERS_SEARCH_ONE_PLACE``). If none of the rows read is, they
        are all the rows the slice held then, whatever order pages came in: every row that stayed
        in it was read. The list of rows updated since comes from one query, paged in full
        (``api.ORDERS_SEARCH_STABLE_ORDER``); past the hit cap (or a lower server cap: a full last
        page) it cannot be listed, and every deep slice is read again. So is one that ended on a
        full page, unless a reply of this read served a hit past that page: then the server's cap
        is not what ended it.

        The first time, slices are read again deep, each cut in two (most fail for a count that is
        a whole number of pages in a window below the cap, which halves seldom repeat), and proven
        by a second query; the second time, or when the first query hit the cap, in one-page
        slices, which need no proof.
        """
        for deep in (True, False):
            left = await self._updated_since(since)
            again = [
                (lo, hi, ids.count if ids else 0)
                for lo, hi, ids, last in self._unproven
                if left is None
                or ids is None
                or self._maybe_capped(ids.count, last)
                or (left and not left.isdisjoint(self._proof_load(ids)))
            ]
            self._unproven = []
            if not again:
                return
            self.stats.reread_slices += len(again)
            self._rereading = True
            deep = deep and left is not None
            pieces = _halves(again) if deep else again
            self._regions = [
                _Region(
                    lo,
                    hi,
                    deep=deep,
                    observed=deque([(count, self._shape.mass(lo, hi, deep))], _OBSERVATIONS),
                )
                for lo, hi, count in pieces
            ]
            await run_all(self._worker(i) for i in range(self._workers))
            if not self._unproven:
                return

    async def _updated_since(self, since: int) -> frozenset[str] | None:
        """Ids of every row with ``updatedAt >= since``, or None if a hit cap may hide some: the
        list reached ORDERS_HIT_CAP, or ended on a full page that no reply of the read went past
        (a lower server cap, api.ORDERS_SEARCH_CAP_ON_A_PAGE)."""
        ids: set[str] = set()
        last_page = math.ceil(self._hit_cap / self._per_page)
        for page in range(1, last_page + 1):
            hits, has_next = await self._get(since, _FOREVER, page)
            self._spend("proof", 1)
            ids.update(map(self._row_id, hits))
            if not has_next:
                listed = (page - 1) * self._per_page + len(hits)
                capped = listed >= self._hit_cap or self._maybe_capped(listed, len(hits))
                return None if capped else frozenset(ids)
        return None

    # -- planning -------------------------------------------------------------------------------

    def _plan_regions(self, start: int, end: int, sample: list[Row], settled: int) -> list[_Region]:
        """Cut the window into regions of equal sample mass; regions before ``settled`` are read deep."""
        stamps = sorted(min(max(self._timestamp(row), start), end - 1) for row in sample)
        self._shape = SampleShape(start, end, stamps)
        count = min(self._workers, _INITIAL_REGIONS, end - start)
        cuts = {stamps[(i * len(stamps)) // count] for i in range(1, count)} | {settled}
        bounds = [start, *sorted(cut for cut in cuts if start < cut < end), end]
        regions = []
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            region = _Region(cursor=lo, end=hi, deep=hi <= settled)
            if self._scale is None:
                # Uncalibrated: each region guesses a different scale, so that one of them fits first.
                region.density = _SCALE_LADDER[i % len(_SCALE_LADDER)]
                region.guessed = True
            regions.append(region)
        return regions

    def _density(self, region: _Region) -> float:
        """Rows per point of sample mass in ``region``: a ladder guess before anything is counted;
        then the window's scale, moved by what the region's own last slices held: the scale
        weighs as much as ``_PRIOR_SLICES`` of one slice's target rows counted at it."""
        rows = sum(r for r, _ in region.observed)
        mass = sum(m for _, m in region.observed)
        if region.guessed or self._scale is None:
            return region.density if region.density is not None else max(rows, 0.5) / max(mass, 1e-9)
        prior_rows = _PRIOR_SLICES * self._target_of(region)
        return (rows + prior_rows) / (mass + prior_rows / self._scale)

    def _rows_in(self, region: _Region, lo: int, hi: int) -> float:
        """How many rows ``[lo, hi)`` of ``region`` is expected to hold."""
        return self._density(region) * self._shape.mass(lo, hi, region.deep)

    def _target_of(self, region: _Region) -> float:
        """Rows the next slice of ``region`` is sized for: a page, or (settled, calibrated) as much of
        the cap as the estimate's error allows (see ``_deep_fill``)."""
        if not region.deep:
            return self._target
        if region.guessed or self._scale is None:
            return self._hit_cap * _CALIBRATION_FILL
        return max(self._target, self._hit_cap * self._deep_fill())

    def _deep_fill(self) -> float:
        """Share of the cap a deep slice is sized for: ``_SAFETY_SIGMAS`` relative errors below it.

        The error of an expected count is that of the scale (Poisson in the rows and the sample
        mass counted so far) and of the slice's own sample mass; a slice that overflows costs its
        pages from the probe to the cap, one a little short of the cap only a part of a page.
        """
        assert self._scale is not None
        rows, mass = self._counted
        # 1 / the points a full-size slice's estimate rests on
        own = self._scale / (self._hit_cap * _DEEP_FILL * math.sqrt(self._shape.folds))
        error = math.sqrt(1 / max(rows, 1.0) + 1 / max(mass, 1e-9) + own)
        return min(_DEEP_FILL, 1 / (1 + _SAFETY_SIGMAS * error))

    def _next_width(self, region: _Region) -> int:
        """The widest next slice expected to hold at most the region's target (at least 1 ms)."""
        target, lo = self._target_of(region), region.cursor
        low, high = 1, region.remaining
        while low < high:  # the expected rows grow with the width: bisect on it
            middle = (low + high + 1) // 2
            if self._rows_in(region, lo, lo + middle) <= target:
                low = middle
            else:
                high = middle - 1
        width = low
        if region.next_widths:
            width = min(width, region.next_widths.pop(0))
        return max(1, min(width, region.remaining))

    def _observe(self, region: _Region, rows: float, lo: int, hi: int, *, exact: bool = True) -> None:
        """Fold a count over ``[lo, hi)`` into the region's observations, and an exact one into the
        window's scale (rows per point of sample mass, over every slice counted so far).

        A count far from what the region's density predicted (a change of rate the sample did not
        show) drops the region's older observations; an overflow's lower bound (``exact=False``)
        only raises the region's density.
        """
        mass = self._shape.mass(lo, hi, region.deep)
        if exact:
            expected = self._density(region) * mass if not region.guessed else None
            self._counted[0] += rows
            self._counted[1] += mass
            if self._counted[0] >= _CALIBRATED_ROWS:
                self._scale = self._counted[0] / self._counted[1]
                for other in self._regions:
                    other.guessed = False
            if expected is not None and abs(rows - expected) > _CHANGE_SIGMAS * math.sqrt(max(expected, 1.0)):
                region.observed.clear()
        region.observed.append((rows, mass))

    # -- crawling -------------------------------------------------------------------------------

    def _claim(self) -> _Region | None:
        """An unowned region, else the back half of the largest owned one, else nothing left. A settled
        region waits while another calibrates (``_calibrating``): its guess would cost a request more."""
        for region in self._regions:
            if region.deep and self._calibrating and self._scale is None:
                continue
            if not region.owned and region.remaining > 0:
                region.owned = True
                return region
        best = max(
            (r for r in self._regions if r.owned and r.remaining > 0 and not r.guessed),
            key=lambda r: self._rows_in(r, r.busy_until or r.cursor, r.end),
            default=None,
        )
        if best is None:
            return None
        start = best.busy_until or best.cursor
        if self._rows_in(best, start, best.end) < 2 * self._target_of(best):
            return None
        middle = (start + best.end) // 2
        if middle <= start or middle >= best.end:
            return None
        thief = _Region(
            cursor=middle,
            end=best.end,
            density=best.density,
            observed=deque(best.observed, _OBSERVATIONS),
            guessed=best.guessed,
            owned=True,
            deep=best.deep,
        )
        best.end = middle
        self._regions.append(thief)
        return thief

    async def _worker(self, _index: int) -> None:
        """Crawl regions until none is left; idle workers wait for a chance to steal."""
        while True:
            region = self._claim()
            if region is None:
                if self._busy == 0:
                    return
                async with self._changed:
                    await self._changed.wait()
                continue
            self._busy += 1
            try:
                while region.remaining > 0 and await self._step(region):
                    await self._notify()
            finally:
                self._busy -= 1
                await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _step(self, region: _Region) -> bool:
        with _metering() as box:
            return await self._slice(region, box)

    async def _slice(self, region: _Region, box: list[int]) -> bool:
        """Read the next slice of ``region``; ``box[0]``: the requests it has sent so far. False: the
        rest of the region was handed to another worker once the slice was counted."""
        start = region.cursor
        deep = region.deep and self._target_of(region) > self._target
        width = self._next_width(region)
        guessed = region.guessed
        end = start + width
        region.busy_until = end
        empty = 0
        handed = False
        if deep:  # sized for several pages; a guess is checked on the cap's last page first
            last_page = math.ceil(self._hit_cap / self._per_page)
            probe = last_page if guessed else self._probe_page(self._rows_in(region, start, end))

            async def counted(rows: int) -> None:
                # The count sizes every other slice: observed now, not once the pages below are read;
                # and the rest of the region is free for an idle worker while they are.
                nonlocal handed
                self._observe(region, rows, start, end)
                if end < region.end:
                    region.cursor, region.busy_until, region.owned, region.overflows = end, None, False, 0
                    handed = True
                await self._notify()

            self._calibrating += guessed
            try:
                hits, has_next, empty = await self._read_deep(start, end, probe, {}, counted)
            finally:
                self._calibrating -= guessed
        else:
            hits, has_next = await self._get(start, end, 1)
            if has_next and width == 1 and region.deep:  # a burst in settled time: paged
                deep = True
                hits, has_next, empty = await self._read_deep(start, end, 2, {1: (hits, True)})
        if not has_next:
            self._spend("probe-empty", empty)
            kind = "deep" if deep else "calibration" if guessed else "one-page"
            self._spend("one-ms" if width == 1 else kind, box[0] - empty, len(hits))
            self._deliver(hits, end - start)
            if handed:  # the region is another worker's now
                return False
            region.busy_until, region.overflows = None, 0
            if width > 1 and not deep:
                self._observe(region, len(hits), start, end)
            region.cursor = end
            return True
        region.busy_until = None
        if width == 1:
            if deep:
                raise self._too_many(start)
            rows = await self._read_one_millisecond(start, hits)
            self._spend("one-ms", box[0], len(rows))
            region.cursor = end
            region.overflows = 0  # the overflow that led here was the burst, not a wrong rate
            return True
        self._spend("deep-overflow" if deep else "overflow", box[0])
        self.stats.overflows += 1
        self._recut(region, start, end, hits, self._hit_cap if deep else self._per_page)
        return True

    def _recut(self, region: _Region, start: int, end: int, sample: list[Row], capacity: int) -> None:
        """After an overflow, size the next slices from the sample and what is known of the density."""
        stamps = sorted(min(max(self._timestamp(row), start), end - 1) for row in sample)
        crowd, crowd_size = Counter(stamps).most_common(1)[0]
        if crowd_size >= _CROWD_SHARE * len(stamps):
            # A burst of rows sharing one millisecond: it is read alone (paged, then re-read), and
            # what follows it becomes a region of its own, so that idle workers take both while
            # this one reads up to it: a burst found late does not hold up the end of the read.
            # It says nothing about the density around it, so the estimate is left alone.
            old_end, region.end = region.end, crowd if crowd > start else start + 1
            pieces = [(crowd, crowd + 1)] if crowd > start else []
            if crowd + 1 < old_end:
                pieces.append((crowd + 1, old_end))
            for low, high in pieces:
                self._regions.append(
                    _Region(
                        cursor=low,
                        end=high,
                        density=region.density,
                        guessed=region.guessed,
                        observed=deque(region.observed, _OBSERVATIONS),
                        deep=region.deep,
                    )
                )
            return
        # The sample rank that would hold a target if the slice held ``assumed`` rows...
        assumed = capacity * 1.15 * _OVERFLOW_GROWTH**region.overflows
        region.overflows += 1
        target = min(self._target_of(region), capacity * _DEEP_FILL)
        rank = max(0, min(len(stamps) - 1, int(target * len(stamps) / assumed)))
        by_rank = max(1, stamps[rank] - start)
        # ...but it may hold far more: then the calibrated scale, or (before that) a steep cut, rules.
        region.next_widths = [by_rank]
        if region.guessed:  # before the scale is known, a steep cut: at least 8 pages' worth assumed
            floor = max(assumed, self._target * 8) / self._shape.mass(start, end, region.deep)
            region.density = max(region.density or 0.0, floor)
        else:
            self._observe(region, assumed, start, end, exact=False)

    async def _read_deep(
        self,
        start: int,
        end: int,
        probe: int,
        pages: dict[int, Page],
        counted: Callable[[int], Awaitable[None]] | None = None,
    ) -> tuple[list[Row], bool, int]:
        """A settled slice read several pages deep: ``(rows, False, empty)``, to be proven by
        ``_prove``, or ``(a sample of the rows, True, empty)`` if it reaches the hit cap and must be
        cut; ``empty``: probes that came back empty. ``pages``: those already read (page 1, say);
        ``counted``: told the count of a slice below the cap at once, before the pages below it.

        The count is found before the pages below it are read: page ``probe`` first (a little
        short of where the expected rows end); if it holds rows, the pages above it one at a time
        until one says ``hasNext`` false, if not, the pages from 1 up. Then the pages below that
        one go out together. So no page but an empty probe is read for nothing, and a slice that
        reaches the cap costs the pages from the probe to the cap, not all of them.
        """
        n = await self._climb(start, end, probe, pages)
        if n == probe > 1 and not pages[n][0]:
            n = await self._climb(start, end, 1, pages)
        empty = sum(1 for number, (hits, _) in pages.items() if not hits and number != n)
        last, more = pages[n]
        if more or (n - 1) * self._per_page + len(last) >= self._hit_cap:
            return [row for hits, _ in pages.values() for row in hits], True, empty
        if counted is not None:
            await counted((n - 1) * self._per_page + len(last))
        below = [number for number in range(1, n) if number not in pages]
        pages.update(
            zip(below, await run_all(self._get(start, end, number) for number in below), strict=True)
        )
        rows = [row for _, (hits, _) in sorted(pages.items()) for row in hits]
        if n > 1:  # one page is a snapshot: nothing to prove
            self._unproven.append((start, end, self._proof_ids(rows, pages, n), len(last)))
            self.stats.deep_slices += 1
        return rows, False, empty

    async def _climb(self, start: int, end: int, page: int, pages: dict[int, Page]) -> int:
        """The first page from ``page`` up that says ``hasNext`` false, or the cap's last page;
        each page not in ``pages`` is read into it."""
        last_page = math.ceil(self._hit_cap / self._per_page)
        while True:
            if page not in pages:
                pages[page] = await self._get(start, end, page)
            if not pages[page][1] or page >= last_page:
                return page
            page += 1

    def _proof_ids(self, rows: list[Row], pages: dict[int, Page], n: int) -> _ProofIds | None:
        """The ids a deep slice read, for ``_prove``, written to ``_proof_file``; None if its pages
        showed a shift.

        A shift: a short page before page n, a row after it or a row twice. (A full page n is
        judged in ``_prove``: it looks like a server cap lower than ORDERS_HIT_CAP, unless a reply
        served a hit beyond it, api.ORDERS_SEARCH_CAP_ON_A_PAGE.)
        """
        ids = frozenset(map(self._row_id, rows))
        intact = (
            len(ids) == len(rows)
            and all(len(pages[number][0]) == self._per_page for number in range(1, n))
            and not any(hits for number, (hits, _) in pages.items() if number > n)
        )
        if not intact:
            return None
        if self._proof_file is None:
            self._proof_file = tempfile.TemporaryFile(prefix="eshopbox-proof-")  # noqa: SIM115 closed by read
        blob = marshal.dumps(list(ids))
        offset = self._proof_file.seek(0, 2)
        self._proof_file.write(blob)
        return _ProofIds(offset, len(blob), len(ids))

    def _proof_load(self, ids: _ProofIds) -> list[str]:
        """The ids ``_proof_ids`` wrote."""
        assert self._proof_file is not None
        self._proof_file.seek(ids.offset)
        loaded: list[str] = marshal.loads(self._proof_file.read(ids.size))
        return loaded

    def _probe_page(self, expected: float) -> int:
        """The page a deep slice's count is looked for on first: where ``expected`` rows, less a
        margin for the estimate's error, would put the last page (an empty probe is the only waste)."""
        page = int(expected * (1 - _PROBE_MARGIN) // self._per_page) + 1
        return max(1, min(page, math.ceil(self._hit_cap / self._per_page)))

    async def _read_burst(self, ms: int, first_page: list[Row]) -> list[Row]:
        """A settled millisecond read deep; more rows than the hit cap reaches is an error."""
        rows, full, _ = await self._read_deep(ms, ms + 1, 2, {1: (first_page, True)})
        if full:
            raise self._too_many(ms)
        return rows

    def _too_many(self, ms: int) -> EshopboxIncompleteReadError:
        return EshopboxIncompleteReadError(
            f"{self._hit_cap} or more rows share updatedAt={ms}, the orders search's limit of "
            f"{self._hit_cap} reachable hits per query: they cannot all be read; nothing was written"
        )

    async def _read_one_millisecond(self, ms: int, first_page: list[Row]) -> list[Row]:
        """Page a slice that cannot be split, proving no row was skipped; ``first_page`` is its page 1.

        A millisecond older than ``settle_ms`` has settled (``api.ORDERS_SEARCH_SETTLE_MS``): rows
        can only leave it (an update moves them to now), so one pass of ``_pass`` is proof. A more
        recent one may still be gaining rows; it is read until two passes in a row agree.
        """
        self.stats.paged_slices += 1
        settled = ms < time.time() * 1000 - self._settle_ms
        agreed: frozenset[str] | None = None
        for _ in range(_MAX_STABILITY_PASSES):
            rows = await self._pass(ms, first_page)
            first_page = []
            if rows is None:
                continue
            ids = frozenset(self._row_id(row) for row in rows)
            if settled or ids == agreed:
                self._deliver(rows, 1)
                return rows
            agreed = ids
        raise EshopboxIncompleteReadError(
            f"rows with updatedAt={ms} kept changing over {_MAX_STABILITY_PASSES} reads; "
            "no file was written, retry the task"
        )

    async def _pass(self, ms: int, first_page: list[Row]) -> list[Row] | None:
        """Every row of a settled ``ms`` at one moment, or None if rows left while reading.

        Page ``k``, read with ``hasNext`` false, says the result then held at most
        ``per_page * (k-1) + len(page k)`` rows. Pages ``1..k-1`` read after that reply, each full
        and sharing no row with page ``k`` or each other, are ``per_page * (k-1)`` rows that were
        there then (rows only leave) and are not on page ``k``: with page ``k``, every row there
        was. Rows that left since were updated and belong to a later window. The re-reads go out
        together, so the proof costs one round trip, not ``k-1``. A full page ``k`` says so only if
        the server's cap is beyond it (``_maybe_capped``): if no reply has shown that, the page
        after it of all rows of every time is read to show it (one request; only a store of
        ``count`` rows or fewer leaves it unknown).
        """
        number, tail = await self._last_page(ms, first_page)
        count = (number - 1) * self._per_page + len(tail)
        if count >= self._hit_cap:
            raise self._too_many(ms)
        if self._maybe_capped(count, len(tail)):
            await self._get(0, _FOREVER, count // self._per_page + 1)
        if self._maybe_capped(count, len(tail)):
            raise EshopboxIncompleteReadError(
                f"the orders search stopped at {count} hits for updatedAt={ms}, a whole number of "
                f"pages, and no query of this read reached a hit past {count}: its hit cap may be "
                f"{count}, below the {self._hit_cap} this provider assumes (api.ORDERS_HIT_CAP), "
                "and rows past it cannot be read; nothing was written. Ask Eshopbox for the cap"
            )
        heads = await run_all(self._get(ms, ms + 1, page) for page in range(1, number))
        rows = [row for hits, _ in heads for row in hits] + tail
        full = all(len(hits) == self._per_page for hits, _ in heads)
        if full and len({self._row_id(row) for row in rows}) == len(rows):
            return rows
        return None

    def _maybe_capped(self, count: int, last: int) -> bool:
        """Whether a result that said ``hasNext`` false after ``count`` hits, ``last`` of them on its
        last page, may have been ended by a server cap lower than ORDERS_HIT_CAP: it ended on a full
        page, and no reply of this read served a hit past it (api.ORDERS_SEARCH_CAP_ON_A_PAGE)."""
        return last == self._per_page and count >= self._reached

    async def _last_page(self, ms: int, first_page: list[Row]) -> tuple[int, list[Row]]:
        """``(k, rows)`` of the first page of ``ms`` found with ``hasNext`` false.

        Pages are probed in order; while other workers sit idle, two at a time (a spare request
        costs nothing then, and a round trip saved shortens the end of the read). Past the hit
        cap, the cap's last page is returned full: the caller's count then says "too many".
        """
        last_page = math.ceil(self._hit_cap / self._per_page)
        page, hits = (2, first_page) if first_page else (1, [])
        while page <= last_page:
            batch = 2 if self._busy < self._workers else 1
            numbers = range(page, min(page + batch, last_page + 1))
            replies = await run_all(self._get(ms, ms + 1, number) for number in numbers)
            for number, (hits, has_next) in zip(numbers, replies, strict=True):
                if not has_next:
                    return number, hits
            page = numbers[-1] + 1
        return last_page, hits

    # -- guards (issue 22): every reply checked against what was asked ----------------------------

    def _broken(self, assumption: str, seen: str, hint: str | None = None) -> EshopboxContractError:
        assert self._contract is not None
        return EshopboxContractError(self._contract.endpoint, assumption, seen, hint=hint)

    async def _check_first_page(self, start: int, end: int) -> None:
        """guard: first_page_is_one. ``page=0`` (unless already asked of the server under the read's
        token, ``ReadContract.zero_page``): a 1-based server answers it empty (api.ORDERS_FIRST_PAGE);
        one that serves hits numbers pages from 0, and page 1 would skip them."""
        async with self._slots:
            self.stats.requests += 1
            hits, _ = await self._fetch(start, end, 0)
        self._spend("guards", 1)
        if hits:
            raise self._broken(
                self._contract.first_page if self._contract else "ORDERS_FIRST_PAGE",
                f"page=0 of updatedAt in [{start}, {end}) served {len(hits)} hits, so pages count from 0 "
                "and reading from page 1 would skip the first page",
            )
        if self._contract is not None and self._contract.zero_page_passed is not None:
            await self._contract.zero_page_passed()

    async def _cross_check_empty(self, start: int, end: int) -> None:
        """guard: cross_check_empty. The window came back empty: a row known to exist (the oldest of an
        unfiltered first page) must come back when asked for by its exact updatedAt with the same filter
        grammar, else the server does not honour the filter (a 200 + empty for a filter it misreads)."""
        assert self._contract is not None and self._contract.reference is not None
        self.stats.requests += 1
        known = await self._contract.reference()
        self._spend("guards", 1)
        if not known:
            return  # no row at all: nothing to cross-check with, and nothing to miss
        row = min(known, key=self._timestamp)
        ms, wanted = self._timestamp(row), self._row_id(row)
        hits, has_next = await self._get(ms, ms + 1, 1)
        self._spend("guards", 1)
        if wanted not in {self._row_id(hit) for hit in hits} and not has_next:
            # One more request tells a filter not honoured from pages counted from 0: page 0 of the
            # row's millisecond serves hits (a 1-based server answers page 0 empty).
            async with self._slots:
                self.stats.requests += 1
                zero, _ = await self._fetch(ms, ms + 1, 0)
            if zero:
                raise self._broken(
                    self._contract.first_page,
                    f"the window [{start}, {end}) came back empty on pages 0 and 1, but page=0 of the "
                    f"millisecond of a row that exists ({wanted!r}, updatedAt={ms}) serves hits while page "
                    "1 does not: pages count from 0",
                )
            raise self._broken(
                self._contract.window,
                f"the window [{start}, {end}) came back empty, and a row that exists ({wanted!r}, "
                f"updatedAt={ms}) was not returned for updatedAt in [{ms}, {ms + 1}) either: the filter "
                "is not honoured",
            )

    def _page_sigs_of(self, start: int, end: int) -> dict[int, int]:
        """The page signatures of one query, kept while it is among the latest read."""
        sigs = self._page_sigs.get((start, end))
        if sigs is None:
            sigs = self._page_sigs[(start, end)] = {}
            if len(self._page_sigs) > _PAGE_SIG_QUERIES:
                self._page_sigs.popitem(last=False)
        else:
            self._page_sigs.move_to_end((start, end))
        return sigs

    def _check_reply(self, start: int, end: int, page: int, hits: list[Row], has_next: bool) -> None:
        """guard: check_orders_reply. The hits lie in the slice asked for (ORDERS_WINDOW_FILTER), a page
        with hasNext is full (ORDERS_PER_PAGE_MAX), no page repeats its neighbour's ids
        (ORDERS_PARAM_PAGE), and the read stays within its request budget."""
        contract = self._contract
        assert contract is not None
        outside = [t for t in map(self._timestamp, hits) if not start <= t < end]
        if outside:
            raise self._broken(
                contract.window,
                f"{len(outside)} of {len(hits)} hits on page {page} have updatedAt outside [{start}, {end}) "
                f"(e.g. {outside[0]}): the server ignores the filter or a bound of it",
            )
        reached = (page - 1) * self._per_page + len(hits)
        if has_next and 0 < len(hits) < self._per_page and reached < self._hit_cap:
            raise self._broken(
                contract.page_size,
                f"page {page} of updatedAt in [{start}, {end}) served {len(hits)} hits with hasNext true "
                f"for per_page={self._per_page}: the server serves smaller pages than asked",
            )
        if hits:
            # Any two pages of one query, not only neighbours: the sample reads page 1 and the cap's.
            other = self._page_sigs_of(start, end).setdefault(hash(frozenset(map(self._row_id, hits))), page)
            if other != page:
                raise self._broken(
                    contract.paging,
                    f"pages {min(page, other)} and {max(page, other)} of updatedAt in [{start}, {end}) "
                    f"served the same {len(hits)} hits: the server ignores page",
                )
        budget = self._budget()
        if self.stats.requests > budget:
            raise self._broken(
                "ORDERS_HIT_CAP",
                f"{self.stats.requests} requests for {self.stats.rows} rows in {self.stats.slices} slices, "
                f"over this read's budget of {budget} (floor {contract.budget_floor} + 8 per page of rows "
                "delivered + 3 per slice + 24 per worker)",
            )

    def _budget(self) -> int:
        """guard: request_budget. What the replies so far promise: pages of rows delivered, slices, and
        room for every worker's slice in flight, plus a floor."""
        assert self._contract is not None
        pages = math.ceil(self.stats.rows / self._per_page)
        return self._contract.budget_floor + 8 * pages + 3 * self.stats.slices + 24 * self._max_workers

    # -- plumbing -------------------------------------------------------------------------------

    async def _get(self, start: int, end: int, page: int) -> tuple[list[Row], bool]:
        if (box := _METER.get()) is not None:
            box[0] += 1
        async with self._slots:
            self.stats.requests += 1
            sent = time.monotonic()
            hits, has_next = await self._fetch(start, end, page)
            if hits:
                self._reached = max(self._reached, (page - 1) * self._per_page + len(hits))
            trip = time.monotonic() - sent
            if self._round_trip is None or trip < self._round_trip:
                self._round_trip = trip
        if self._contract is not None:
            self._check_reply(start, end, page, hits, has_next)
        if has_next and not hits:  # nothing to slice or page by: the reply contradicts itself
            raise EshopboxApiError(
                200,
                ORDERS_LIST.label,
                f"hasNext true but no hits on page {page} of updatedAt in [{start}, {end}); nothing was "
                "written: retry the task, and report the reply to Eshopbox if it persists",
            )
        return hits, has_next

    def _spend(self, kind: str, requests: int, rows: int = 0) -> None:
        """Book ``requests`` (and the rows they delivered) under ``kind`` (see REQUEST_KINDS)."""
        kind = "re-read" if self._rereading else kind
        self.stats.spent[kind] += requests
        self.stats.held[kind] += rows

    def _deliver(self, rows: list[Row], span_ms: int) -> None:
        """Hand over every row of a slice: that part of the window (``span_ms`` long) is done."""
        self.stats.slices += 1
        self.stats.rows += len(rows)
        self.stats.covered_ms += span_ms
        self._on_rows(rows)
        if self._on_progress is not None:
            self._on_progress(self.stats)


def _halves(slices: list[tuple[int, int, int]]) -> list[tuple[int, int, float]]:
    """Each slice cut in two at its middle (one millisecond stays whole), with half its count each."""
    pieces: list[tuple[int, int, float]] = []
    for lo, hi, count in slices:
        middle = (lo + hi) // 2
        pieces += [(lo, middle, count / 2), (middle, hi, count / 2)] if middle > lo else [(lo, hi, count)]
    return pieces
