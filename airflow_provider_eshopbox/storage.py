"""Atomic, idempotent JSON Lines output to any ``ObjectStoragePath`` (shared by the *ToStorage operators).

Rows are first spooled to a local temporary file (so memory stays flat however many rows arrive),
de-duplicated on a key keeping the newest version, sorted, and written to a hidden temporary object
beside the destination, which is moved into place only after the last row. A failed or killed run
therefore leaves nothing at the destination, and a re-run of the same input writes the same bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.parallel_gzip import ParallelGzip

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_GZIP_SUFFIXES = (".gz", ".gzip")
_WRITE_CHUNK = 1 << 20
_RUN_SLACK = 4  # read a run of rows as one span while the span is at most this many times their size
# One encoder for every row (json.dumps builds a new one per call when given options).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


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

    ``key`` names the row's identity (``orderItemID``), ``version`` orders versions of one row
    (``updatedAt``), ``sort_key`` orders the output. Memory holds one small index entry per row.
    """

    def __init__(
        self,
        *,
        key: Callable[[dict[str, Any]], str],
        version: Callable[[dict[str, Any]], Any],
        sort_key: Callable[[dict[str, Any]], Any],
    ) -> None:
        self._key = key
        self._version = version
        self._sort_key = sort_key
        self._file = tempfile.TemporaryFile(prefix="eshopbox-spool-")  # noqa: SIM115 - closed in close()
        # key -> (version, sort key, offset, length, batch) of the newest version seen
        self._index: dict[str, tuple[Any, Any, int, int, int]] = {}
        self._end = 0  # spool size (tracked: seeking to the end would flush the write buffer)
        self._batches = 0  # rows written by one ``extend`` are contiguous: write_to reads them at once
        self.received = 0
        self.superseded = 0

    def add(self, row: dict[str, Any], text: bytes | None = None) -> None:
        """Spool one row; an older version of an already-spooled key is dropped from the output.

        ``text`` is the row's JSON as the API sent it (UTF-8): written as is (no re-encoding) when
        it fits on one line.
        """
        self.extend(((row, text),))

    def extend(self, rows: Iterable[tuple[dict[str, Any], bytes | None]]) -> None:
        """``add`` for each ``(row, text)``, with one write for all of them (a page at a time).

        All or nothing: the index changes only after the batch is written, so a row that fails
        (a missing key, say) leaves the spool as it was.
        """
        key_of, version_of, sort_key_of, index = self._key, self._version, self._sort_key, self._index
        batch: dict[str, tuple[Any, Any, int, int]] = {}  # this batch's newest versions, offsets relative
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
            if text is None or b"\n" in text or b"\r" in text:
                text = _encode(row).encode()
            line = text + b"\n"
            lines.append(line)
            batch[key] = (version, sort_key_of(row), size, len(line))
            size += len(line)
        self._file.write(b"".join(lines))
        number = self._batches
        for key, (version, sort_key, offset, length) in batch.items():
            index[key] = (version, sort_key, self._end + offset, length, number)
        self._end += size
        self._batches += 1
        self.received += received
        self.superseded += superseded

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> set[str]:
        return set(self._index)

    def write_to(self, destination: ObjectStoragePath) -> int:
        """Write the de-duplicated rows, sorted, atomically to ``destination``; return the row count."""
        entries = sorted(self._index.values(), key=lambda entry: entry[1])
        self._file.flush()
        descriptor = self._file.fileno()
        with atomic_open(destination) as out:  # a .gz destination compresses on its own threads
            chunk: list[bytes] = []
            size = 0
            # Rows next to each other in the output mostly came in one page (one batch, contiguous
            # on disk): one read per such run, not per row. pread, not mmap: mapped pages would
            # count against the task's memory (RSS).
            for _batch, run in itertools.groupby(entries, key=lambda entry: entry[4]):
                rows = [(offset, length) for _version, _sort, offset, length, _ in run]
                low = min(offset for offset, _ in rows)
                high = max(offset + length for offset, length in rows)
                if len(rows) > 1 and high - low <= _RUN_SLACK * sum(length for _, length in rows):
                    block = os.pread(descriptor, high - low, low)
                    chunk.extend(block[offset - low : offset - low + length] for offset, length in rows)
                else:  # scattered rows of a batch: reading the whole span would read mostly others
                    chunk.extend(os.pread(descriptor, length, offset) for offset, length in rows)
                size += high - low
                if size >= _WRITE_CHUNK:  # few large writes: each write through fsspec costs
                    out.write(b"".join(chunk))
                    chunk, size = [], 0
            out.write(b"".join(chunk))
        return len(entries)

    def close(self) -> None:
        self._file.close()
        self._index.clear()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
