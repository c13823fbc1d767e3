"""Idempotent output (shared by the *ToStorage operators): rows spooled, de-duplicated, sorted.

Rows are spooled to a local temporary file (so memory stays flat however many rows arrive),
de-duplicated on a key keeping the newest version, sorted, and written in the operator's format
(``sync/formats.py``) through ``destination.atomic_open``, which shows nothing at the destination's
name until the last row. A re-run of the same input writes the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from airflow_provider_eshopbox.sync.destination import atomic_open

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_eshopbox.sync.formats import RowWriter

#: Index entries held in memory before they are sorted and spilled to a run file: about 200 bytes
#: each (orders), so 3.3 MB (65,536 of the older 330-byte entries held 21 MB, the most of the task's
#: peak RSS; bench.rss: 16,384 peaked 2.5 MB below 24,576 at 1M rows). 1M rows make 61 runs, merged
#: in one pass (MERGE_FAN_IN); a window of up to 16,384 rows is sorted in memory, without runs.
RUN_ENTRIES = 16_384
_RUN_BATCH = 256  # entries per pickled batch of a run file
#: Runs merged at once: more are first merged on disk in groups, so a merge holds at most this many
#: batches in memory however many rows there are (at 5M rows, 76 runs at once took about 20 MB more).
#: 64 batches of 256 entries are the memory of 16 of 1,024, and 1M rows (61 runs) merge in one pass.
MERGE_FAN_IN = 64
_LENGTH_BITS = 32  # a place is a line's offset in the spool, shifted, and its length: one int, not two
# One encoder for every row (json.dumps builds a new one per call when given options).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def fits_one_line(text: bytes | None) -> TypeGuard[bytes]:
    """Whether a row's text as sent can be a JSON Lines line as it is (pretty-printed JSON cannot)."""
    return text is not None and b"\n" not in text and b"\r" not in text


def one_line(row: Any, text: bytes | None) -> bytes:
    """A row's JSON Lines line (without the newline): its text as sent, re-encoded only if it had
    none or spanned lines."""
    return text if fits_one_line(text) else _encode(row).encode()


class RowSpool:
    """Collect JSON rows on local disk, keeping for each key only the newest version.

    A row is whatever the caller's functions read (a dict, or a tuple of the fields that matter):
    ``key`` names the row's identity (``orderItemID``), ``version`` orders versions of one row
    (``updatedAt``; of equal versions the first spooled wins), ``sort_key`` orders the output (none:
    by version, then key, as orders are, with no sort key held per row). The line written is the
    text given with the row, or the row as JSON if there is none.

    Memory stays flat however many rows arrive: lines go to a spool file, and each row's small
    index entry (key, version, place, sort key) waits in memory only until ``run_entries`` of them
    are gathered; they are then sorted by key and spilled to a run file. ``write_to`` merges the
    runs, keeps the newest version of each key, sorts the survivors by ``sort_key`` the same way
    (runs, then a merge) and copies their lines out. ``disk_bytes`` is the most temporary disk used.
    """

    def __init__(
        self,
        *,
        key: Callable[[Any], str],
        version: Callable[[Any], Any],
        sort_key: Callable[[Any], Any] | None = None,
        run_entries: int = RUN_ENTRIES,
    ) -> None:
        if run_entries < 1:
            raise ValueError("run_entries must be positive")
        self._key = key
        self._version = version
        self._sort_key = sort_key
        self._run_entries = run_entries
        self._file = tempfile.TemporaryFile(prefix="eshopbox-spool-")  # noqa: SIM115 - closed in close()
        # (key, version, place[, sort key]): the place (offset << 32 | length) rises with arrival, so
        # it also keeps the first of equal versions first, and no sort key is compared
        self._pending: list[tuple[Any, ...]] = []
        self._runs: list[_Run] = []
        self._end = 0  # spool size (tracked: seeking to the end would flush the write buffer)
        self._written: int | None = None  # distinct rows, once write_to has merged them
        self.received = 0
        self.superseded = 0  # rows dropped for a newer (or equal, earlier) version; final after write_to
        self.disk_bytes = 0  # peak temporary disk use: spool plus run files

    def add(self, row: Any, text: bytes | None = None) -> None:
        """Spool one row; an older version of an already-spooled key is dropped from the output.

        ``text`` is the row's JSON as the API sent it (UTF-8): written as is (no re-encoding) when
        it fits on one line.
        """
        self.extend(((row, text),))

    def extend(self, rows: Iterable[tuple[Any, bytes | None]]) -> None:
        """``add`` for each ``(row, text)``, with one write for all of them (a page at a time).

        All or nothing: nothing is kept of a batch in which a row fails (a missing key, say).
        """
        key_of, version_of, sort_key_of = self._key, self._version, self._sort_key
        batch: dict[str, tuple[Any, ...]] = {}  # this batch's newest versions
        lines: list[bytes] = []
        size = received = 0
        for row, text in rows:
            key = key_of(row)
            version = version_of(row)
            received += 1
            previous = batch.get(key)
            if previous is not None and previous[1] >= version:
                continue
            line = one_line(row, text) + b"\n"
            if len(line) >> _LENGTH_BITS:  # it would spill into the place's offset: refuse, not corrupt
                raise ValueError(f"a row of {len(line):,} bytes is too long to spool (key {key!r})")
            lines.append(line)
            place = (self._end + size) << _LENGTH_BITS | len(line)
            batch[key] = (
                (key, version, place) if sort_key_of is None else (key, version, place, sort_key_of(row))
            )
            size += len(line)
        self._file.write(b"".join(lines))
        self._end += size
        self.received += received
        self.superseded += received - len(batch)
        self._pending.extend(batch.values())
        self._written = None
        if len(self._pending) >= self._run_entries:
            self._spill()
        self._note_disk()

    def _note_disk(self) -> None:
        self.disk_bytes = max(self.disk_bytes, self._end + sum(run.size for run in self._runs))

    def _spill(self) -> None:
        """Sort the pending entries by (key, version, place) into a new run file."""
        self._pending.sort()  # by (key, version, place): the place is unique, so no key function
        self._runs.append(_Run.write(self._pending))
        self._pending = []

    def __len__(self) -> int:
        """Rows in the output: exact after ``write_to``; before it, a key re-read in another batch
        counts once per batch (progress lines only)."""
        return self._written if self._written is not None else self.received - self.superseded

    def _newest(self) -> Iterator[tuple[Any, ...]]:
        """(sort key, place) of the newest version of each key, in key order; (version, key, place)
        when the output is by version."""
        if self._runs:
            if self._pending:
                self._spill()
            entries: Iterable[tuple[Any, ...]] = self._merge(self._runs)
        else:
            self._pending.sort()
            entries = self._pending
        # the output's order: (version, key, place), or (sort key, place); places are unique
        out = operator.itemgetter(1, 0, 2) if self._sort_key is None else operator.itemgetter(3, 2)
        best = None
        for entry in entries:
            if best is None or entry[0] != best[0]:
                if best is not None:
                    yield out(best)
                best = entry
            elif entry[1] > best[1]:  # a newer version (an equal one arrived later: the first stays)
                best = entry
        if best is not None:
            yield out(best)

    def _sorted(self) -> Iterator[tuple[Any, ...]]:
        """The newest versions in output order, through sorted runs when they do not fit memory."""
        runs: list[_Run] = []
        chunk: list[tuple[Any, ...]] = []
        try:
            for item in self._newest():
                chunk.append(item)
                if len(chunk) >= self._run_entries:
                    chunk.sort()  # by (sort key, place): places are unique, ties keep spool order
                    runs.append(_Run.write(chunk))
                    chunk = []
                    self._note_disk_with(runs)
            self._drop_runs()  # the key-ordered runs are consumed: free their disk
            chunk.sort()
            if not runs:
                yield from chunk
                return
            runs.append(_Run.write(chunk))
            self._note_disk_with(runs)
            del chunk
            yield from self._merge(runs)
        finally:
            for run in runs:
                run.close()

    def _merge(self, runs: list[_Run]) -> Iterator[Any]:
        """The entries of sorted ``runs`` in their natural order, merged at most ``MERGE_FAN_IN`` at a time
        (tuples whose order is decided before a unique field: no key function, so no key objects).

        ``runs`` is updated in place (groups replaced by their merge), so its owner still closes all.
        """
        while len(runs) > MERGE_FAN_IN:
            group = runs[:MERGE_FAN_IN]
            merged = _Run.write(heapq.merge(*(run.read() for run in group)))
            runs.append(merged)
            self._note_disk_with(runs)
            del runs[:MERGE_FAN_IN]
            for run in group:
                run.close()
        return heapq.merge(*(run.read() for run in runs))

    def _note_disk_with(self, extra: list[_Run]) -> None:
        counted = {id(run): run.size for run in (*self._runs, *extra)}
        self.disk_bytes = max(self.disk_bytes, self._end + sum(counted.values()))

    def _drop_runs(self) -> None:
        for run in self._runs:
            run.close()
        self._runs = []
        self._pending = []

    def write_to(self, destination: ObjectStoragePath, writer: RowWriter | None = None) -> int:
        """Write the de-duplicated rows, sorted, atomically to ``destination``; return the row count.

        ``writer`` is the format (``sync/formats.py``; default JSON Lines, the lines as spooled). Call
        it once: it consumes the index. Nothing appears at ``destination`` if the writer fails.
        """
        from airflow_provider_eshopbox.sync.formats import JsonLinesWriter

        with atomic_open(destination) as out:
            count = (writer or JsonLinesWriter()).write(self._lines(), out)
        self._written = count
        self.superseded = self.received - count
        return count

    def _lines(self) -> Iterator[bytes]:
        """The newest version of each row's line, in output order. Read back with pread, not mmap:
        mapped pages would count against the task's memory."""
        self._file.flush()
        descriptor = self._file.fileno()
        mask = (1 << _LENGTH_BITS) - 1
        for item in self._sorted():
            place = item[-1]
            yield os.pread(descriptor, place & mask, place >> _LENGTH_BITS)

    def close(self) -> None:
        self._file.close()
        self._drop_runs()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Run:
    """A sorted run of index entries in a temporary file: pickled batches, read back a batch at a time."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.size = size

    @classmethod
    def write(cls, entries: Iterable[Any]) -> _Run:
        file = tempfile.TemporaryFile(prefix="eshopbox-spool-run-")  # noqa: SIM115 - closed in close()
        entries = iter(entries)
        try:
            while batch := list(itertools.islice(entries, _RUN_BATCH)):
                pickle.dump(batch, file, protocol=pickle.HIGHEST_PROTOCOL)
            size = file.tell()
            file.flush()
        except BaseException:
            file.close()
            raise
        return cls(file, size)

    def read(self) -> Iterator[Any]:
        """The entries in order; each run is read by one reader at a time."""
        self.file.seek(0)
        while True:
            try:
                batch = pickle.load(self.file)
            except EOFError:
                return
            yield from batch

    def close(self) -> None:
        self.file.close()
