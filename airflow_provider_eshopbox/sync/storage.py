"""Atomic, idempotent JSON Lines output to any ``ObjectStoragePath`` (shared by the *ToStorage operators).

Rows are first spooled to a local temporary file (so memory stays flat however many rows arrive),
de-duplicated on a key keeping the newest version, sorted, and written to a hidden temporary object
beside the destination, which is moved into place only after the last row. A failed or killed run
therefore leaves nothing at the destination, and a re-run of the same input writes the same bytes.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import operator
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.parallel_gzip import Deflated, ParallelGzip, deflate_section

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_GZIP_SUFFIXES = (".gz", ".gzip")
_WRITE_CHUNK = 1 << 20
_RUN_SLACK = 4  # read a run of rows as one span while the span is at most this many times their size
# One encoder for every row (json.dumps builds a new one per call when given options).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def fits_one_line(text: bytes | None) -> TypeGuard[bytes]:
    """Whether a row's text as sent can be a JSON Lines line as it is (pretty-printed JSON cannot)."""
    return text is not None and b"\n" not in text and b"\r" not in text


def one_line(row: Any, text: bytes | None) -> bytes:
    """A row's JSON Lines line (without the newline): its text as sent, re-encoded only if it had
    none or spanned lines."""
    return text if fits_one_line(text) else _encode(row).encode()


def resolve_destination(value: Any, *, field: str = "destination") -> ObjectStoragePath:
    """Turn a templated string or path into an ``ObjectStoragePath``, failing early on what cannot work."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io.fs import has_fs

    if isinstance(value, ObjectStoragePath):
        path, text = value, str(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if "://" not in text:
            raise EshopboxConfigError(
                f"{field}={value!r} has no scheme: use a URL such as file:///data/orders.jsonl.gz or s3://bucket/key",
                field=field,
            )
        path = None
    else:
        raise EshopboxConfigError(
            f"{field} must be an object-storage URL or ObjectStoragePath, got {value!r}", field=field
        )
    scheme = text.split("://", 1)[0] if path is None else (path.protocol or "file")
    if not has_fs(scheme):
        raise EshopboxConfigError(
            f"{field}={text!r}: no filesystem is registered for scheme {scheme!r}; use file:// or install "
            "the provider that serves it (e.g. apache-airflow-providers-amazon for s3://)",
            field=field,
        )
    if text.endswith("/"):
        raise EshopboxConfigError(f"{field}={text!r} must name a file, not a directory", field=field)
    if path is None:
        path = ObjectStoragePath(text)
    return path


def is_gzip(path: ObjectStoragePath) -> bool:
    """Whether the destination is written gzip-compressed (decided by its suffix)."""
    return path.name.endswith(_GZIP_SUFFIXES)


@contextlib.contextmanager
def atomic_open(destination: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """Yield a binary writer to a temporary object beside ``destination``; move it into place on success."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.parent / f".{destination.name}.tmp-{uuid.uuid4().hex}"
    try:
        with temporary.open("wb") as raw:
            if is_gzip(destination):
                with ParallelGzip(raw) as zipped:
                    yield zipped  # type: ignore[misc]
            else:
                yield raw
        temporary.rename(destination)
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink()
        raise


class RowSpool:
    """Collect JSON rows on local disk, keeping for each key only the newest version.

    A row is whatever the caller's functions read (a dict, or a tuple of the fields that matter):
    ``key`` names the row's identity (``orderItemID``), ``version`` orders versions of one row
    (``updatedAt``), ``sort_key`` orders the output. The line written is the text given with the
    row, or the row as JSON if there is none. Memory holds one small index entry per row.

    ``section`` (optional) cuts the output into consecutive parts, in the order of ``sort_key``
    (an hour of ``updatedAt``, say). With ``deflate_ahead``, a section the caller ``seal``s is
    gzip-compressed on a thread while rows still arrive, so a large .gz write is mostly done when
    the last row comes; the file's bytes are the same either way.
    """

    def __init__(
        self,
        *,
        key: Callable[[Any], str],
        version: Callable[[Any], Any],
        sort_key: Callable[[Any], Any],
        section: Callable[[Any], int] | None = None,
        deflate_ahead: bool = False,
    ) -> None:
        self._key = key
        self._version = version
        self._sort_key = sort_key
        self._section = section
        self._file = tempfile.TemporaryFile(prefix="eshopbox-spool-")  # noqa: SIM115 - closed in close()
        # key -> (version, sort key, offset, length, batch, section) of the newest version seen
        self._index: dict[str, tuple[Any, Any, int, int, int, int]] = {}
        self._end = 0  # spool size (tracked: seeking to the end would flush the write buffer)
        self._batches = 0  # rows written by one ``extend`` are contiguous: write_to reads them at once
        self._members: dict[int, list[str]] = collections.defaultdict(list)  # keys a section ever had
        self._ahead: dict[int, Future[tuple[int, int, int, int]]] = {}  # sealed, valid while unchanged
        self._sealed: collections.deque[int] = collections.deque()  # sealed, waiting for the thread
        self._deflating: collections.deque[Future[Any]] = collections.deque()  # on the thread, in order
        self._deflater = ThreadPoolExecutor(1, "eshopbox-deflate-ahead") if deflate_ahead else None
        # deflated sections wait on disk too, not in memory: (offset, length, crc, size) each
        self._deflated = tempfile.TemporaryFile(prefix="eshopbox-deflated-") if deflate_ahead else None  # noqa: SIM115
        self._deflated_end = 0
        self.received = 0
        self.superseded = 0

    def add(self, row: Any, text: bytes | None = None) -> None:
        """Spool one row; an older version of an already-spooled key is dropped from the output.

        ``text`` is the row's JSON as the API sent it (UTF-8): written as is (no re-encoding) when
        it fits on one line.
        """
        self.extend(((row, text),))

    def extend(self, rows: Iterable[tuple[Any, bytes | None]]) -> None:
        """``add`` for each ``(row, text)``, with one write for all of them (a page at a time).

        All or nothing: the index changes only after the batch is written, so a row that fails
        (a missing key, say) leaves the spool as it was.
        """
        key_of, version_of, sort_key_of, index = self._key, self._version, self._sort_key, self._index
        section_of = self._section
        # this batch's newest versions, offsets relative
        batch: dict[str, tuple[Any, Any, int, int, int]] = {}
        lines: list[bytes] = []
        size = received = superseded = 0
        for row, text in rows:
            key = key_of(row)
            version = version_of(row)
            received += 1
            previous = batch.get(key) or index.get(key)
            if previous is not None:
                superseded += 1
                if previous[0] >= version:
                    continue
            line = one_line(row, text) + b"\n"
            lines.append(line)
            section = section_of(row) if section_of is not None else 0
            batch[key] = (version, sort_key_of(row), size, len(line), section)
            size += len(line)
        self._file.write(b"".join(lines))
        number, ahead, members = self._batches, self._ahead, self._members
        for key, (version, sort_key, offset, length, section) in batch.items():
            previous = index.get(key)
            if previous is not None and ahead:
                ahead.pop(previous[5], None)  # that section lost a row: deflated ahead in vain
            index[key] = (version, sort_key, self._end + offset, length, number, section)
            members[section].append(key)
            if ahead:
                ahead.pop(section, None)
        self._end += size
        self._batches += 1
        self.received += received
        self.superseded += superseded
        if self._sealed:
            self._deflate_sealed()

    def seal(self, section: int) -> None:
        """Say no more rows will come for ``section``: with ``deflate_ahead``, compress it now.

        A row that comes anyway only costs the early work: the section is written afresh.
        """
        if self._deflater is not None and section not in self._ahead:
            self._sealed.append(section)
            self._deflate_sealed()

    def _deflate_sealed(self) -> None:
        """Hand sealed sections to the thread, a couple at a time (each is held in memory till done)."""
        deflating = self._deflating
        while deflating and deflating[0].done():
            deflating.popleft()
        while self._sealed and len(deflating) < 2:
            section = self._sealed.popleft()
            index = self._index
            rows = {key: index[key] for key in self._members.get(section, ()) if index[key][5] == section}
            self._file.flush()  # the thread reads these rows from the file: they must be in it
            assert self._deflater is not None
            future = self._deflater.submit(
                self._deflate_to_disk, sorted(rows.values(), key=operator.itemgetter(1))
            )
            self._ahead[section] = future
            deflating.append(future)

    def _deflate_to_disk(self, entries: list[tuple[Any, ...]]) -> tuple[int, int, int, int]:
        """(On the thread) read a section's rows, deflate them, keep the result in the deflated file."""
        deflated = deflate_section(b"".join(self._read_flushed(entries)))
        assert self._deflated is not None
        offset = self._deflated_end
        self._deflated_end += len(deflated.data)
        os.pwrite(self._deflated.fileno(), deflated.data, offset)
        return offset, len(deflated.data), deflated.crc, deflated.size

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> set[str]:
        return set(self._index)

    def write_to(self, destination: ObjectStoragePath) -> int:
        """Write the de-duplicated rows, sorted, atomically to ``destination``; return the row count."""
        # By sort key, then (stable) by section: keys taken as they are, no tuple built per row.
        entries = sorted(self._index.values(), key=operator.itemgetter(1))
        entries.sort(key=operator.itemgetter(5))
        with atomic_open(destination) as out:  # a .gz destination compresses on its own threads
            zipped = out if isinstance(out, ParallelGzip) else None
            for section, rows in itertools.groupby(entries, key=lambda entry: entry[5]):
                ahead = self._ahead.get(section) if zipped is not None else None
                if ahead is not None and self._deflated is not None:
                    offset, length, crc, size = ahead.result()
                    data = os.pread(self._deflated.fileno(), length, offset)
                    zipped.write_deflated(Deflated(data, crc, size))  # type: ignore[union-attr]
                    continue
                chunk: list[bytes] = []
                size = 0
                for block in self._read(rows):
                    chunk.append(block)
                    size += len(block)
                    if size >= _WRITE_CHUNK:  # few large writes: each write through fsspec costs
                        out.write(b"".join(chunk))
                        chunk, size = [], 0
                out.write(b"".join(chunk))
                if zipped is not None:
                    zipped.end_section()
        return len(entries)

    def _read(self, entries: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
        """The spooled lines of ``entries``, in their order.

        Rows next to each other in the output mostly came in one page (one batch, contiguous on
        disk): one read per such run, not per row. pread, not mmap: mapped pages would count
        against the task's memory (RSS).
        """
        self._file.flush()
        return self._read_flushed(entries)

    def _read_flushed(self, entries: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
        """``_read`` of rows already flushed to the file (safe on another thread: pread only)."""
        descriptor = self._file.fileno()
        for _batch, run in itertools.groupby(entries, key=lambda entry: entry[4]):
            rows = [(entry[2], entry[3]) for entry in run]
            low = min(offset for offset, _ in rows)
            high = max(offset + length for offset, length in rows)
            if len(rows) > 1 and high - low <= _RUN_SLACK * sum(length for _, length in rows):
                block = os.pread(descriptor, high - low, low)
                yield from (block[offset - low : offset - low + length] for offset, length in rows)
            else:  # scattered rows of a batch: reading the whole span would read mostly others
                yield from (os.pread(descriptor, length, offset) for offset, length in rows)

    def close(self) -> None:
        if self._deflater is not None:
            self._deflater.shutdown(cancel_futures=True)
        if self._deflated is not None:
            self._deflated.close()
        self._ahead.clear()
        self._file.close()
        self._index.clear()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
