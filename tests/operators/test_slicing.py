"""WindowReader against the sandbox over real HTTP: exact reads of capped, unordered, moving results."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxIncompleteReadError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sync.slicing import WindowReader


@pytest.fixture
def small_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(order_items=3000, seed=5) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
        yield sb


def _reader(
    fetch, on_rows, concurrency: int, deep: bool = False, paced_by: float | None = None
) -> WindowReader:
    """The reader as the orders sync sets it up (dict rows, 100-row pages, the 1,000-hit cap); by
    default in one-page slices, the mode of recent time and of re-reads (deep: see test_deep_*)."""
    return WindowReader(
        fetch,
        timestamp=api.order_row_updated_at,
        row_id=api.order_row_id,
        per_page=100,
        hit_cap=1000,
        max_concurrency=concurrency,
        on_rows=on_rows,
        deep=deep,
        paced_by=paced_by,
    )


def _read(sb: EshopboxSandbox, start: int, end: int, on_fetch=None, concurrency: int = 4, deep: bool = False):
    """Run a WindowReader over real HTTP; return (rows delivered, stats, fetch log)."""
    hook = EshopboxHook()
    rows: list[dict] = []
    calls: list[tuple[int, int, int]] = []

    async def fetch(lo: int, hi: int, page: int):
        calls.append((lo, hi, page))
        result = await hook.afetch_orders_page(api.orders_window_filter(lo, hi), page=page, per_page=100)
        if on_fetch is not None:
            on_fetch(lo, hi, page, result.hits)
        return result.hits, result.has_next

    async def main():
        reader = _reader(fetch, rows.extend, concurrency, deep)
        try:
            return await reader.read(start, end)
        finally:
            await hook.aclose()

    return rows, asyncio.run(main()), calls


def _burst(sb: EshopboxSandbox) -> tuple[int, int]:
    """The largest crowd of rows sharing one updatedAt (the generator makes one of at least 150)."""
    (ms, size), *_ = Counter(r["updatedAt"] for r in sb.truth_order_rows()).most_common(1)
    return ms, size


def test_a_whole_store_read_is_exact_and_never_pages_a_splittable_slice(
    small_sandbox: EshopboxSandbox,
) -> None:
    sb = small_sandbox
    _, size = _burst(sb)
    assert size > 100
    rows, stats, calls = _read(sb, 0, 2**42)
    ids = [api.order_row_id(r) for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == sb.truth_order_item_ids()
    # Only one-millisecond slices are ever asked for a page beyond the first.
    assert {hi - lo for lo, hi, page in calls if page > 1} == {1}
    assert stats.requests == len(calls)


def test_a_row_leaving_a_burst_before_its_last_page_is_read_needs_no_second_pass(
    small_sandbox: EshopboxSandbox,
) -> None:
    sb = small_sandbox
    ms, size = _burst(sb)
    moved: list[str] = []

    def on_fetch(lo: int, hi: int, page: int, hits: list[dict]) -> None:
        # Right after page 1 of the burst is served, one of its rows is updated: it leaves this
        # millisecond and every later page shifts by one.
        if (lo, hi, page) == (ms, ms + 1, 1) and not moved:
            moved.append(api.order_row_id(hits[0]))
            sb.update_order_rows(moved)

    rows, _, calls = _read(sb, ms, ms + 1, on_fetch)

    ids = [api.order_row_id(r) for r in rows]
    assert len(ids) == len(set(ids)) == size - 1
    assert set(ids) == sb.truth_order_item_ids(ms, ms + 1)
    assert moved[0] not in ids
    pages = -(-(size - 1) // 100)
    # Page 1, probes up to the last page, then pages 1..k-1 once each: the count on the last page
    # already reflects the move, so the proof holds at the first try.
    assert calls[-(pages - 1) :] == [(ms, ms + 1, page) for page in range(1, pages)]
    assert [page for _, _, page in calls].count(1) == 2


def test_a_row_leaving_a_burst_after_its_last_page_is_read_is_caught_and_read_again(
    small_sandbox: EshopboxSandbox,
) -> None:
    sb = small_sandbox
    ms, size = _burst(sb)
    pages = -(-size // 100)
    first: list[str] = []
    moved: list[str] = []

    def on_fetch(lo: int, hi: int, page: int, hits: list[dict]) -> None:
        if (lo, hi, page) == (ms, ms + 1, 1) and not first:
            first.extend(api.order_row_id(hit) for hit in hits)
        # Once the last page has been counted, a row of page 1 leaves: the re-read pages shift,
        # page k-1 now repeats page k's first row, and the pass must not be trusted.
        if (lo, hi, page) == (ms, ms + 1, pages) and not moved:
            moved.append(first[0])
            sb.update_order_rows(moved)

    rows, _, calls = _read(sb, ms, ms + 1, on_fetch)

    ids = [api.order_row_id(r) for r in rows]
    assert len(ids) == len(set(ids)) == size - 1
    assert set(ids) == sb.truth_order_item_ids(ms, ms + 1)
    assert moved == [first[0]] and moved[0] not in ids
    assert [page for _, _, page in calls].count(1) >= 3  # served, re-read (failed), read again


class _RankedBurst:
    """One millisecond's rows in a fixed hit order, served 100 a page, with hooks between replies."""

    def __init__(self, ms: int, size: int) -> None:
        self.ms = ms
        self.ranked = [f"r{i:03d}" for i in range(size)]
        self.served: list[int] = []  # page numbers, in the order they were answered

    def page(self, page: int) -> tuple[list[dict], bool]:
        self.served.append(page)
        hits = [{"orderItemID": i, "updatedAt": self.ms} for i in self.ranked[(page - 1) * 100 : page * 100]]
        return hits, len(self.ranked) > page * 100


@pytest.mark.parametrize(
    ("size", "leave"),
    [
        # the rows page 1 just gave and page 3's 50 leave: page 2 comes back empty
        (250, lambda ranked: ranked[:100] + ranked[200:]),
        # one row of page 1 and the one row on page 3 leave: page 2 comes back one short
        (201, lambda ranked: [ranked[5], ranked[200]]),
    ],
)
def test_rows_leaving_between_two_re_reads_leave_a_short_page_and_are_caught(size: int, leave) -> None:
    """Re-reads are served in any order: rows leaving between two of them can slide untouched rows
    from the later page onto the earlier one, already read, without a row appearing twice. Only
    the later page coming back short says so."""
    burst = _RankedBurst(7_000, size)
    page_one_reread = asyncio.Event()
    moved: list[str] = []

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        last_seen = 3 in burst.served
        if last_seen and page == 2 and not moved:
            await page_one_reread.wait()
            moved.extend(leave(burst.ranked))
            burst.ranked = [i for i in burst.ranked if i not in moved]
        reply = burst.page(page)
        if last_seen and page == 1:
            page_one_reread.set()
        return reply

    delivered: list[dict] = []
    asyncio.run(_reader(fetch, delivered.extend, 4).read(burst.ms, burst.ms + 1))
    assert moved
    assert sorted(row["orderItemID"] for row in delivered) == burst.ranked


def test_a_recent_burst_gaining_a_row_while_read_is_read_again() -> None:
    """A millisecond younger than the search's settle time may still gain rows (an index catching
    up): a row joining at the front once the last page is counted shifts every page, and the
    pass alone would lose the row pushed off page 2. Two passes must agree first."""
    burst = _RankedBurst(int(time.time() * 1000), 250)

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        reply = burst.page(page)
        if page == 3 and "late" not in burst.ranked:
            burst.ranked.insert(0, "late")
        return reply

    delivered: list[dict] = []
    asyncio.run(_reader(fetch, delivered.extend, 4).read(burst.ms, burst.ms + 1))
    assert sorted(row["orderItemID"] for row in delivered) == sorted(burst.ranked)
    assert len(delivered) == 251


def test_a_failing_re_read_cancels_the_others_in_flight() -> None:
    burst = _RankedBurst(7_000, 350)
    cancelled: list[int] = []

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        if 4 in burst.served and page == 3:
            raise RuntimeError("boom")
        if 4 in burst.served and page in (1, 2):
            try:
                await asyncio.sleep(10)  # answered long after page 3 failed
            except asyncio.CancelledError:
                cancelled.append(page)
                raise
        return burst.page(page)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            await _reader(fetch, [].extend, 4).read(burst.ms, burst.ms + 1)
        assert sorted(cancelled) == [1, 2]  # already, not when the event loop shuts down

    asyncio.run(main())


def test_a_failed_page_zero_check_cancels_the_sample_in_flight() -> None:
    """The page-0 guard runs beside the window's first page; when it fails, that page's request is
    cancelled before the error is raised, not left running (asyncio.gather left it going)."""
    from airflow_provider_eshopbox.exceptions import EshopboxContractError
    from airflow_provider_eshopbox.sync.slicing import ReadContract

    cancelled: list[int] = []
    row = {"orderItemID": "r0", "updatedAt": 1_500}

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        if page == 0:  # a server numbering pages from 0 serves hits there
            return [row], False
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(page)
            raise
        return [row], False

    async def main() -> None:
        reader = _reader(fetch, [].extend, 4, deep=True)
        reader._contract = ReadContract()
        with pytest.raises(EshopboxContractError, match="ORDERS_FIRST_PAGE"):
            await reader.read(1_000, 2_000)
        assert cancelled == [1]  # already, not when the event loop shuts down

    asyncio.run(main())


def test_a_page_as_large_as_the_hit_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="per_page=1000 must be below hit_cap=1000"):
        WindowReader(
            asyncio.sleep,  # never called
            timestamp=api.order_row_updated_at,
            row_id=api.order_row_id,
            per_page=1000,
            hit_cap=1000,
            max_concurrency=1,
            on_rows=print,
        )


@pytest.mark.parametrize("seed", range(40))
def test_rows_leaving_a_burst_at_any_moment_never_cost_an_untouched_row(seed: int) -> None:
    """Whenever rows leave a burst while it is paged (each fetch may move a few out, as updates
    do), every row that never moved is delivered, once, and nothing that was never there."""
    import random

    rng = random.Random(seed)
    ms = 5_000
    present = {f"r{i}": rng.random() for i in range(rng.randint(101, 420))}  # id -> fixed hit rank
    original = set(present)
    moves_left = rng.randint(1, 12)  # fetches that move rows, then the burst settles

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        await asyncio.sleep(rng.random() / 1000)  # replies in any order
        ranked = sorted(present, key=present.__getitem__)
        hits = [{"orderItemID": i, "updatedAt": ms} for i in ranked[(page - 1) * 100 : page * 100]]
        has_next = len(ranked) > page * 100
        nonlocal moves_left
        if moves_left and rng.random() < 0.5:  # after serving, some rows are updated and leave
            moves_left -= 1
            many = rng.random() < 0.2  # now and then a bulk update moves more than a page
            for gone in rng.sample(sorted(present), len(present) // 2 if many else rng.randint(1, 3)):
                del present[gone]
        return hits, has_next

    delivered: list[dict] = []
    asyncio.run(_reader(fetch, delivered.extend, rng.choice([1, 4])).read(ms, ms + 1))
    ids = [row["orderItemID"] for row in delivered]
    assert len(ids) == len(set(ids))
    assert set(present) <= set(ids) <= original


def test_more_rows_at_one_millisecond_than_the_search_can_reach_is_an_error(
    small_sandbox: EshopboxSandbox,
) -> None:
    sb = small_sandbox
    ms, _ = _burst(sb)
    others = sorted(sb.truth_order_item_ids(ms + 1, None))[:1000]
    sb.update_order_rows(others, updated_at=ms)
    with pytest.raises(EshopboxIncompleteReadError, match=f"rows share updatedAt={ms}"):
        _read(sb, ms, ms + 1)


@pytest.mark.parametrize("seed", range(12))
def test_bursts_anywhere_are_read_exactly_once_whatever_the_concurrency(seed: int) -> None:
    """Bursts (many rows at one millisecond) at a window's first and last millisecond and inside
    it: a burst is carved out as its own region and what follows it as another. In memory, so
    many layouts run fast; the order of hits is a fixed shuffle, as the sandbox's is."""
    import random

    rng = random.Random(seed)
    start, end = 1_000_000, 1_000_000 + rng.choice([50_000, 3_000_000])
    stamps = [rng.randrange(start, end) for _ in range(rng.randint(200, 2500))]
    for burst_at in rng.sample([start, end - 1, rng.randrange(start, end), rng.randrange(start, end)], 3):
        stamps += [burst_at] * rng.randint(101, 350)
        stamps += [ms for ms in (burst_at - 1, burst_at + 1) if start <= ms < end] * 3  # its neighbours
    rows = [{"orderItemID": f"r{i}", "updatedAt": stamp} for i, stamp in enumerate(stamps)]
    rng.shuffle(rows)
    ordered = sorted(rows, key=lambda row: row["updatedAt"])
    times = [row["updatedAt"] for row in ordered]

    in_flight = [0, 0]  # now, most ever

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0)
        in_flight[0] -= 1
        import bisect

        hits = ordered[bisect.bisect_left(times, lo) : bisect.bisect_left(times, hi)]
        hits = sorted(hits, key=lambda row: zlib.crc32(f"{seed}:{row['orderItemID']}".encode()))[:1000]
        return hits[(page - 1) * 100 : page * 100], len(hits) > page * 100

    for concurrency in (1, 4, 16):
        delivered: list[dict] = []
        in_flight[1] = 0
        stats = asyncio.run(_reader(fetch, delivered.extend, concurrency).read(start, end))
        ids = [row["orderItemID"] for row in delivered]
        assert len(ids) == len(set(ids)) == len(rows), concurrency
        assert in_flight[1] <= concurrency  # bursts' probes and re-reads included
        assert stats.paged_slices == sum(1 for count in Counter(stamps).values() if count > 100)


class _MovingSearch:
    """The orders search in memory: rows by updatedAt, in a fixed hit order, capped at ``cap`` hits;
    ``move`` updates rows as Eshopbox does (updatedAt = now), so they leave their time range."""

    def __init__(self, stamps: list[int], seed: int, cap: int = 1000) -> None:
        self.cap = cap
        self.at = {f"r{i}": stamp for i, stamp in enumerate(stamps)}
        # A fixed hit order per row, the same in every process (hash() of a str is salted per process).
        self.rank = {row: zlib.crc32(f"{seed}:{row}".encode()) for row in self.at}
        self.calls: list[tuple[int, int, int]] = []
        self.after_reply = lambda lo, hi, page, hits: None

    def move(self, rows: list[str]) -> None:
        for row in rows:
            self.at[row] = int(time.time() * 1000)

    async def fetch(self, lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        await asyncio.sleep(0)
        self.calls.append((lo, hi, page))
        inside = (r for r, t in self.at.items() if lo <= t < hi)
        ranked = sorted(inside, key=self.rank.__getitem__)[: self.cap]
        hits = [{"orderItemID": r, "updatedAt": self.at[r]} for r in ranked[(page - 1) * 100 : page * 100]]
        self.after_reply(lo, hi, page, hits)
        return hits, len(ranked) > page * 100


def _layout(seed: int) -> tuple[int, int, list[int]]:
    """A settled window of a few thousand rows, with a burst of a few hundred at one millisecond."""
    import random

    rng = random.Random(seed)
    start, end = 1_000_000, 4_000_000
    stamps = [rng.randrange(start, end) for _ in range(rng.randint(1500, 4000))]
    stamps += [rng.randrange(start, end)] * rng.randint(101, 400)
    return start, end, stamps


def _deep_read(search: _MovingSearch, start: int, end: int, concurrency: int = 4):
    delivered: list[dict] = []
    stats = asyncio.run(_reader(search.fetch, delivered.extend, concurrency, deep=True).read(start, end))
    ids = [row["orderItemID"] for row in delivered]
    assert sum(stats.spent.values()) == stats.requests == len(search.calls)  # every request booked once
    return ids, stats


def test_deep_slices_cost_one_query_of_proof_when_nothing_moves() -> None:
    start, end, stamps = _layout(1)
    search = _MovingSearch(stamps, 1)
    ids, stats = _deep_read(search, start, end)
    assert sorted(ids) == sorted(search.at)
    assert stats.deep_slices > 0 and stats.reread_slices == 0
    assert any(page > 1 and hi - lo > 1 for lo, hi, page in search.calls)  # slices paged, not just bursts
    assert [lo for lo, hi, _ in search.calls if hi > end] == [
        pytest.approx(time.time() * 1000 - 300_000, abs=60_000)
    ]
    assert stats.requests == len(search.calls)


def test_a_row_leaving_a_deep_slice_mid_read_has_the_slice_read_again() -> None:
    """A row of page 1 leaves once page 2 is served: every later row shifts up a place and one
    crosses onto page 1, already read. The rows updated since the read began name it.

    The slice is one whose last page (fewer than 100 hits) was already seen, so it stays below
    the cap and is delivered, whatever order its pages are read in."""
    start, end, stamps = _layout(2)
    search = _MovingSearch(stamps, 2)
    original = dict(search.at)
    first: dict[tuple[int, int], list[str]] = {}
    ended: set[tuple[int, int]] = set()
    moved: list[str] = []

    def after_reply(lo: int, hi: int, page: int, hits: list[dict]) -> None:
        if hi > end or hi - lo == 1:
            return
        if page == 1:
            first[(lo, hi)] = [hit["orderItemID"] for hit in hits]
        elif len(hits) < 100:
            ended.add((lo, hi))
        if page == 2 and (lo, hi) in first and (lo, hi) in ended and not moved:
            moved.append(first[(lo, hi)][0])
            search.move(moved)

    search.after_reply = after_reply
    ids, stats = _deep_read(search, start, end)
    assert moved and stats.reread_slices >= 1
    untouched = set(original) - set(moved)
    assert untouched <= set(ids) <= set(original)


@pytest.mark.parametrize("seed", range(30))
def test_deep_reads_never_lose_an_untouched_row_whenever_rows_move(seed: int) -> None:
    """Rows of the range being read are updated at any moment (each reply may move a few):
    every row that never moved is delivered, and nothing that was never in the window (a slice
    read again delivers its rows again: the operator's spool keeps one of each)."""
    import random

    rng = random.Random(seed)
    start, end, stamps = _layout(seed)
    search = _MovingSearch(stamps, seed)
    original = dict(search.at)
    moves_left = [rng.randint(1, 10)]

    def after_reply(lo: int, hi: int, page: int, hits: list[dict]) -> None:
        inside = sorted(r for r, t in search.at.items() if lo <= t < hi and hi <= end)
        if inside and moves_left[0] and rng.random() < 0.3:
            moves_left[0] -= 1
            search.move(rng.sample(inside, min(len(inside), rng.randint(1, 3))))

    search.after_reply = after_reply
    ids, _ = _deep_read(search, start, end, rng.choice([1, 4, 16]))
    untouched = {r for r, t in original.items() if search.at[r] == t}
    assert untouched <= set(ids) <= set(original)


def test_when_the_rows_updated_since_cannot_all_be_listed_every_deep_slice_is_read_again() -> None:
    start, end, stamps = _layout(3)
    now = int(time.time() * 1000)
    search = _MovingSearch(stamps + [now - 1000] * 1000, 3)  # a busy shop: 1,000 updates just now
    ids, stats = _deep_read(search, start, end)
    assert stats.deep_slices > 0 and stats.reread_slices == stats.deep_slices
    assert set(ids) == {r for r, t in search.at.items() if t < end}


@pytest.mark.parametrize("rows", [150, 650, 950])
def test_a_settled_window_below_the_cap_is_read_whole_at_a_page_and_a_proof_over_its_pages(
    rows: int,
) -> None:
    """Page 1, then the cap's page: a window below the cap is one deep slice, its count known from
    the cap's page (or the climb from page 1 when that page is empty); no page is read twice."""
    import random

    rng = random.Random(rows)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(rows)], rows)
    ids, stats = _deep_read(search, start, end)
    assert sorted(ids) == sorted(search.at)
    pages = -(-rows // 100)
    cap_page = 0 if rows > 900 else 1  # read for its count; empty unless the window holds over 900
    assert stats.requests == pages + cap_page + 1  # + the proof
    assert stats.reread_slices == 0 and stats.spent["sample"] == 0


def test_a_deep_slice_ending_on_a_full_page_is_read_again_in_halves_not_in_one_page_slices() -> None:
    """600 rows: page 6 is full and says no more, which looks like a cap of 600 (api.
    ORDERS_SEARCH_CAP_ON_A_PAGE). The slice is read again as two deep halves and proven again."""
    import random

    rng = random.Random(6)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(600)], 6)
    ids, stats = _deep_read(search, start, end)
    assert set(ids) == set(search.at)
    assert stats.reread_slices == 1
    # The halves: 3-4 pages each and a second proof; one-page slices of 80 rows would take 8 or more.
    assert stats.spent["re-read"] <= 10
    assert stats.deep_slices == 3


def test_a_deep_slice_ending_on_a_full_page_is_proven_once_a_reply_went_past_that_page() -> None:
    """Rows come 100 to a millisecond, so every slice ends on a full page with hasNext false, which
    alone looks like a server cap (api.ORDERS_SEARCH_CAP_ON_A_PAGE). The window's sample read its
    cap's page full: the cap is beyond every such page, and no slice is read again."""
    start, end = 1_000_000, 4_000_000
    stamps = [ms for ms in range(start + 7_919, end, 200_000) for _ in range(100)]
    assert len(stamps) == 1500
    search = _MovingSearch(stamps, 9)
    ids, stats = _deep_read(search, start, end)
    assert sorted(ids) == sorted(search.at)
    assert stats.deep_slices > 0
    assert stats.reread_slices == 0 and "re-read" not in stats.spent


class _Watched:
    """A fetch whose request ``n`` (counted from 0) takes ``delay(n)`` s, keeping the most slices
    (distinct time ranges) and requests ever in flight at once."""

    def __init__(self, fetch: Callable[[int, int, int], Awaitable[tuple[list[dict], bool]]], delay) -> None:
        self._fetch, self._delay = fetch, delay
        self._in_flight: Counter[tuple[int, int]] = Counter()
        self.sent = self.most_slices = self.most_requests = 0

    async def fetch(self, lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        delay, self.sent = self._delay(self.sent), self.sent + 1
        self._in_flight[lo, hi] += 1
        self.most_slices = max(self.most_slices, len(+self._in_flight))
        self.most_requests = max(self.most_requests, self._in_flight.total())
        try:
            await asyncio.sleep(delay)
            return await self._fetch(lo, hi, page)
        finally:
            self._in_flight[lo, hi] -= 1


def test_settled_time_is_read_by_half_as_many_slices_at_once_as_requests_in_flight() -> None:
    """A deep slice sends the pages below its count together, so 8 slices at once keep more than 8
    requests in flight, up to 16 (fewer, fuller slices: fewer half-empty last pages)."""
    import random

    rng = random.Random(4)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(12_000)], 4)
    watched = _Watched(search.fetch, lambda n: 0.005)
    delivered: list[dict] = []
    asyncio.run(_reader(watched.fetch, delivered.extend, 16, deep=True).read(start, end))
    assert sorted(row["orderItemID"] for row in delivered) == sorted(search.at)
    assert watched.most_slices == 8 and 8 < watched.most_requests <= 16


def test_settled_regions_wait_for_the_first_count_instead_of_each_probing_on_a_guess() -> None:
    """Before any slice is counted, a settled region's slice is sized by a guess and checked on its
    cap's page, a request lost when the guess is off either way; so only the first region calibrates,
    and the others start once its count is known (bench.slicing: fewer requests at 1,500-5,000 rows)."""
    import random

    rng = random.Random(7)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(3_000)], 7)
    sent: list[tuple[int, int, int]] = []
    counted_at: list[int] = []  # how many requests had been sent when the first slice was counted

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        sent.append((lo, hi, page))
        hits, has_next = await search.fetch(lo, hi, page)
        if (lo, hi) != (start, end) and hits and not has_next and not counted_at:
            counted_at.append(len(sent))
        return hits, has_next

    delivered: list[dict] = []
    asyncio.run(_reader(fetch, delivered.extend, 16, deep=True).read(start, end))
    assert sorted(row["orderItemID"] for row in delivered) == sorted(search.at)
    before = [(lo, hi) for lo, hi, _ in sent[: counted_at[0]] if (lo, hi) != (start, end)]
    assert before and {lo for lo, _ in before} == {start}  # the first region's slices alone
    assert len({lo for lo, _, _ in sent}) > 2  # ...then the others, in parallel


def test_the_rest_of_a_region_goes_to_an_idle_worker_once_its_slice_is_counted() -> None:
    """A deep slice's count is known before its pages below are read; from then on the slice's end is
    where the next one starts, so an idle worker reads that one while they come (one round trip of
    the read's chain fewer per slice)."""
    import random

    rng = random.Random(3)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(3_000)], 3)
    sent: list[tuple[int, int, int]] = []
    counted: dict[tuple[int, int], int] = {}  # slice -> requests sent when its count came
    last_reply: dict[tuple[int, int], int] = {}  # ...and when its last reply came

    async def fetch(lo: int, hi: int, page: int) -> tuple[list[dict], bool]:
        sent.append((lo, hi, page))
        hits, has_next = await search.fetch(lo, hi, page)
        last_reply[lo, hi] = len(sent)
        if hits and not has_next and (page - 1) * 100 + len(hits) < 1000:
            counted.setdefault((lo, hi), len(sent))
        return hits, has_next

    delivered: list[dict] = []
    asyncio.run(_reader(fetch, delivered.extend, 8, deep=True).read(start, end))  # four workers
    assert sorted(row["orderItemID"] for row in delivered) == sorted(search.at)
    next_sent = {lo: len(sent) - i for i, (lo, _, _) in enumerate(reversed(sent))}  # first send from lo
    overlapped = [
        (lo, hi) for (lo, hi), at in counted.items() if at < next_sent.get(hi, 0) < last_reply[lo, hi]
    ]
    assert overlapped  # a next slice went out after a slice's count, before its last page below came


def test_a_told_rate_sizes_its_slices_in_flight_by_the_shortest_round_trip_not_the_first() -> None:
    """The window's first request also opens the connection (TLS and all): 250 ms here, 10 ms after.
    At 10 requests/s told, 10 ms keeps the limiter busy with one slice at a time (paced_workers);
    the first request's 250 ms would have read three at once."""
    import random

    rng = random.Random(5)
    start, end = 1_000_000, 4_000_000
    search = _MovingSearch([rng.randrange(start, end) for _ in range(3_000)], 5)
    watched = _Watched(search.fetch, lambda n: 0.25 if n == 0 else 0.01)
    delivered: list[dict] = []
    reader = _reader(watched.fetch, delivered.extend, 16, deep=True, paced_by=10.0)
    asyncio.run(reader.read(start, end))
    assert sorted(row["orderItemID"] for row in delivered) == sorted(search.at)
    assert watched.most_slices == 1


def test_the_proof_list_ending_on_a_full_page_under_a_lower_server_cap_is_not_trusted() -> None:
    """A server capped at 300 hits: 250 settled rows, and 400 rows updated a second ago, which the
    proof's "updated since" list holds. A row of page 2 is updated right after page 2 is served,
    so a row of page 3 shifts onto page 2, unread. The moved row is now in the proof's list, but
    past its 300th place: the list ends on a full page that nothing showed to be short of the cap,
    so every deep slice is read again and no row is lost."""
    import random

    rng = random.Random(0)
    start, end = 1_000_000, 4_000_000
    now = int(time.time() * 1000)
    search = _MovingSearch([rng.randrange(start, end) for _ in range(250)] + [now - 1000] * 400, 0, cap=300)
    settled = {row for row, t in search.at.items() if t < end}
    moved: list[str] = []

    def after_reply(lo: int, hi: int, page: int, hits: list[dict]) -> None:
        if not moved and (lo, hi, page) == (start, end, 2):
            moved.append(hits[-1]["orderItemID"])
            search.move(moved)

    search.after_reply = after_reply
    ids, stats = _deep_read(search, start, end)
    updated = sorted((row for row, t in search.at.items() if t >= end), key=search.rank.__getitem__)
    assert updated.index(moved[0]) >= 300  # the proof's list cannot show it
    assert set(ids) >= settled - set(moved)
    assert stats.reread_slices == 1


def test_a_burst_ending_on_a_full_page_under_a_lower_server_cap_fails_naming_the_cap() -> None:
    """A server capped at 200 hits, and 230 rows sharing one millisecond: the burst's page 2 is
    full and says no more, and no query of the read ever reaches a hit past 200. The 30 rows past
    the cap cannot be read; the read says so instead of delivering 200 of 230."""
    import random

    rng = random.Random(2)
    start, end = 1_000_000, 4_000_000
    burst = rng.randrange(start, end)
    search = _MovingSearch([rng.randrange(start, end) for _ in range(500)] + [burst] * 230, 2, cap=200)
    with pytest.raises(
        EshopboxIncompleteReadError, match=f"stopped at 200 hits for updatedAt={burst}.*cap may be 200"
    ):
        _deep_read(search, start, end)


@pytest.mark.parametrize("inside", [True, False])
def test_a_burst_of_a_whole_number_of_pages_is_read_whole_when_the_cap_is_beyond_it(inside: bool) -> None:
    """200 rows sharing one millisecond end on a full page 2 with no more; the real cap (1,000) is
    beyond it, as a reply of the read shows (500 more rows in the window), or one request for
    page 3 of all rows does (the burst alone in the window, 500 rows before it)."""
    import random

    rng = random.Random(3)
    start, end = 1_000_000, 4_000_000
    burst = rng.randrange(start, end)
    others = [rng.randrange(start, end) if inside else rng.randrange(0, start) for _ in range(500)]
    search = _MovingSearch(others + [burst] * 200, 3)
    ids, _ = _deep_read(search, start, end)
    assert set(ids) == {row for row, t in search.at.items() if start <= t < end}


def test_page_signatures_are_kept_for_the_latest_queries_only():
    """The repeated-page guard keeps each query's page signatures while it is among the latest
    _PAGE_SIG_QUERIES read (memory flat in rows), and still fires within a query."""
    from airflow_provider_eshopbox.exceptions import EshopboxContractError
    from airflow_provider_eshopbox.sync import slicing
    from airflow_provider_eshopbox.sync.slicing import ReadContract

    async def never(*_: object) -> tuple[list, bool]:
        raise AssertionError("not fetched")

    reader = _reader(never, lambda rows: None, 4)
    reader._contract = ReadContract()
    reader.stats.requests = 1

    def page(start: int, size: int) -> list[dict]:
        return [{"orderItemID": f"{start}-{n}", "updatedAt": start} for n in range(size)]

    queries = slicing._PAGE_SIG_QUERIES + 500
    for query in range(queries):
        reader._check_reply(query * 100, query * 100 + 100, 1, page(query * 100, 3), False)
    assert len(reader._page_sigs) == slicing._PAGE_SIG_QUERIES
    assert (0, 100) not in reader._page_sigs and ((queries - 1) * 100, queries * 100) in reader._page_sigs
    reader._check_reply(0, 100, 1, page(0, 100), True)
    with pytest.raises(EshopboxContractError, match=r"pages 1 and 3 .* served the same 100 hits"):
        reader._check_reply(0, 100, 3, page(0, 100), True)
