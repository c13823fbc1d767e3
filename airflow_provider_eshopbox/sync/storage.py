"""Atomic, idempotent output to any ``ObjectStoragePath`` (shared by the *ToStorage operators).

Rows are spooled to a local temporary file (so memory stays flat however many rows arrive),
de-duplicated on a key keeping the newest version, sorted, and written to a hidden temporary
object beside the destination, ``.<name>.tmp-<32 hex>``, in the operator's format
(``sync/formats.py``), which is moved into place only after the last row. A re-run of the same
input writes the same bytes. A reader never sees a partial object at the destination's name:

- local disk (``file://``): the move is ``os.replace`` within one directory, an atomic rename; a
  reader sees the previous file or the new one, whole.
- object stores (``s3://``, ``gs://``, ...): fsspec's move is a copy of the completed temporary,
  then its deletion. A copy of a completed object is not partial: S3 and GCS show a new object only
  once it is whole, so the destination name holds the previous object or the new one. (For other
  stores, check that their copy behaves the same.) Readers that list the prefix see the temporary
  while it exists: skip names that start with ``.``.

A run removes its own temporary on any error (Airflow turns SIGTERM into one). A run killed with
SIGKILL, or a lost machine, cannot: the next write to the same destination removes that
destination's temporaries unchanged for STALE_TEMPORARY_SECONDS (a live writer's keeps changing,
and on object stores appears only when complete). Destination problems (a directory, a parent that
is a file, an unwritable place, a name too long for its temporary, a relative ``file://`` URL) are
found by ``resolve_destination`` and ``check_writable`` before any read.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import itertools
import json
import logging
import operator
import os
import pickle
import posixpath
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from airflow_provider_eshopbox.exceptions import EshopboxConfigError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_eshopbox.sync.formats import RowWriter

log = logging.getLogger(__name__)

#: A destination's temporary unchanged for this long was left by a killed run: the next write removes it.
STALE_TEMPORARY_SECONDS = 3600.0
_NAME_MAX = 255  # bytes in a file name on local file systems (ext4, xfs, apfs)
_GZIP_SUFFIXES = (".gz", ".gzip")
#: Index entries held in memory before they are sorted and spilled to a run file (about 20 MB).
RUN_ENTRIES = 65_536
_RUN_BATCH = 1024  # entries per pickled batch of a run file
#: Runs merged at once: more are first merged on disk in groups, so a merge holds at most this many
#: batches in memory however many rows there are (at 5M rows, 76 runs at once took about 20 MB more).
MERGE_FAN_IN = 16
_GZIP_LEVEL = 6  # zlib's default: level 9 costs far more CPU for a few percent
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
        if scheme == "file" and not text.startswith("file:///"):  # fsspec reads the host as a cwd path
            host, _, rest = text[len("file://") :].partition("/")
            raise EshopboxConfigError(
                f"{field}={text!r} names host {host!r}, not a local path: a file:// URL needs an "
                f"absolute path after two slashes, e.g. file:///{host}/{rest}",
                field=field,
            )
        path = ObjectStoragePath(text)
    is_dir = False
    with contextlib.suppress(Exception):  # an unreachable store is reported by the read or the write
        is_dir = path.is_dir()
    if is_dir:
        raise EshopboxConfigError(
            f"{field}={text!r} is an existing directory: name a file in it, e.g. {text}/orders.jsonl.gz",
            field=field,
        )
    return path


def check_writable(destination: ObjectStoragePath, *, field: str = "destination") -> None:
    """Fail now, before any read, if the final write could not succeed.

    Writes and removes an empty temporary where the real one will go; directories created for it
    are removed again.
    """
    text, created = str(destination), []
    local = _local_path(destination)
    if local is not None:
        length = len(_temporary_name(destination, "0" * 32).encode())
        if length > _NAME_MAX:
            raise EshopboxConfigError(
                f"{field}={text!r}: the name is too long: its temporary .{destination.name}.tmp-<32 hex> "
                f"would be {length} bytes, over the {_NAME_MAX}-byte limit of a file name; shorten the "
                f"name by {length - _NAME_MAX} bytes or more",
                field=field,
            )
        for ancestor in local.parents:
            if ancestor.exists():
                if not ancestor.is_dir():
                    raise EshopboxConfigError(
                        f"{field}={text!r}: its parent {ancestor} is a file, not a directory", field=field
                    )
                break
            created.append(ancestor)  # deepest first
    probe = destination.parent / _temporary_name(destination, uuid.uuid4().hex)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except Exception as error:
        raise EshopboxConfigError(
            f"{field}={text!r} cannot be written here: {error}; choose a place this worker can write",
            field=field,
        ) from None
    finally:
        for directory in created:
            with contextlib.suppress(OSError):
                directory.rmdir()


def is_gzip(path: ObjectStoragePath) -> bool:
    """Whether the destination is written gzip-compressed (decided by its suffix)."""
    return path.name.endswith(_GZIP_SUFFIXES)


def _local_path(path: ObjectStoragePath) -> Path | None:
    return Path(path.path) if path.protocol in ("file", "local") else None


def _temporary_name(destination: ObjectStoragePath, tag: str) -> str:
    return f".{destination.name}.tmp-{tag}"


def _modified_at(entry: Mapping[str, Any]) -> float | None:
    """Last change (epoch s) of an fsspec listing entry, whatever the store calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated"):
        value = entry.get(key)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def remove_stale_temporaries(destination: ObjectStoragePath) -> list[str]:
    """Remove the temporaries of ``destination`` left by runs killed while writing; return their names."""
    prefix, cutoff, removed = _temporary_name(destination, ""), time.time() - STALE_TEMPORARY_SECONDS, []
    try:
        entries = destination.fs.ls(destination.parent.path, detail=True)
        for entry in entries:
            name = posixpath.basename(entry["name"].rstrip("/"))
            modified = _modified_at(entry)
            if name.startswith(prefix) and entry.get("type") == "file" and modified and modified < cutoff:
                destination.fs.rm_file(entry["name"])
                removed.append(name)
    except Exception as error:  # never fail a write over another run's leftovers
        log.warning("Could not remove stale temporaries of %s: %s", destination, error)
    if removed:
        log.warning("Removed temporaries of %s left by killed runs: %s", destination, ", ".join(removed))
    return removed


@contextlib.contextmanager
def atomic_open(destination: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """Yield a binary writer to a temporary object beside ``destination``; move it into place on success.

    A ``.gz`` destination gets one standard gzip member with no time or name in its header, so the
    same rows always give the same bytes.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    temporary = destination.parent / _temporary_name(destination, uuid.uuid4().hex)
    try:
        with temporary.open("wb") as raw:
            if is_gzip(destination):
                with gzip.GzipFile(
                    filename="", mode="wb", compresslevel=_GZIP_LEVEL, fileobj=raw, mtime=0
                ) as zipped:
                    yield zipped  # type: ignore[misc]
            else:
                yield raw
        local = _local_path(destination)
        if local is not None:
            os.replace(temporary.path, local)  # atomic; fails on a directory rather than moving into it
        else:
            temporary.rename(destination)  # copy, then delete the temporary
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink()
        raise


class RowSpool:
    """Collect JSON rows on local disk, keeping for each key only the newest version.

    A row is whatever the caller's functions read (a dict, or a tuple of the fields that matter):
    ``key`` names the row's identity (``orderItemID``), ``version`` orders versions of one row
    (``updatedAt``; of equal versions the first spooled wins), ``sort_key`` orders the output. The
    line written is the text given with the row, or the row as JSON if there is none.

    Memory stays flat however many rows arrive: lines go to a spool file, and each row's small
    index entry (key, version, sort key, offset) waits in memory only until ``run_entries`` of them
    are gathered; they are then sorted by key and spilled to a run file. ``write_to`` merges the
    runs, keeps the newest version of each key, sorts the survivors by ``sort_key`` the same way
    (runs, then a merge) and copies their lines out. ``disk_bytes`` is the most temporary disk used.
    """

    def __init__(
        self,
        *,
        key: Callable[[Any], str],
        version: Callable[[Any], Any],
        sort_key: Callable[[Any], Any],
        run_entries: int = RUN_ENTRIES,
    ) -> None:
        if run_entries < 1:
            raise ValueError("run_entries must be positive")
        self._key = key
        self._version = version
        self._sort_key = sort_key
        self._run_entries = run_entries
        self._file = tempfile.TemporaryFile(prefix="eshopbox-spool-")  # noqa: SIM115 - closed in close()
        # (key, version, sequence, sort key, offset, length): sequence keeps the first of equal versions
        self._pending: list[tuple[Any, Any, int, Any, int, int]] = []
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
        batch: dict[str, tuple[Any, Any, int, Any, int, int]] = {}  # this batch's newest versions
        lines: list[bytes] = []
        size = received = 0
        sequence = self.received
        for row, text in rows:
            key = key_of(row)
            version = version_of(row)
            received += 1
            previous = batch.get(key)
            if previous is not None and previous[1] >= version:
                continue
            line = one_line(row, text) + b"\n"
            lines.append(line)
            batch[key] = (key, version, sequence + received, sort_key_of(row), self._end + size, len(line))
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
        """Sort the pending entries by (key, version, sequence) into a new run file."""
        self._pending.sort(key=_by_key)
        self._runs.append(_Run.write(self._pending))
        self._pending = []

    def __len__(self) -> int:
        """Rows in the output: exact after ``write_to``; before it, a key re-read in another batch
        counts once per batch (progress lines only)."""
        return self._written if self._written is not None else self.received - self.superseded

    def _newest(self) -> Iterator[tuple[Any, int, int]]:
        """(sort key, offset, length) of the newest version of each key, in key order."""
        if self._runs:
            if self._pending:
                self._spill()
            entries: Iterable[tuple[Any, Any, int, Any, int, int]] = self._merge(self._runs, _by_key)
        else:
            self._pending.sort(key=_by_key)
            entries = self._pending
        best = None
        for entry in entries:
            if best is None or entry[0] != best[0]:
                if best is not None:
                    yield best[3], best[4], best[5]
                best = entry
            elif entry[1] > best[1]:  # a newer version (an equal one arrived later: the first stays)
                best = entry
        if best is not None:
            yield best[3], best[4], best[5]

    def _sorted(self) -> Iterator[tuple[Any, int, int]]:
        """The newest versions in output order, through sorted runs when they do not fit memory."""
        runs: list[_Run] = []
        chunk: list[tuple[Any, int, int]] = []
        try:
            for item in self._newest():
                chunk.append(item)
                if len(chunk) >= self._run_entries:
                    chunk.sort(key=_by_sort_key)
                    runs.append(_Run.write(chunk))
                    chunk = []
                    self._note_disk_with(runs)
            self._drop_runs()  # the key-ordered runs are consumed: free their disk
            chunk.sort(key=_by_sort_key)
            if not runs:
                yield from chunk
                return
            runs.append(_Run.write(chunk))
            self._note_disk_with(runs)
            del chunk
            yield from self._merge(runs, _by_sort_key)
        finally:
            for run in runs:
                run.close()

    def _merge(self, runs: list[_Run], key: Callable[[Any], Any]) -> Iterator[Any]:
        """The entries of sorted ``runs`` in one order, merged at most ``MERGE_FAN_IN`` at a time.

        ``runs`` is updated in place (groups replaced by their merge), so its owner still closes all.
        """
        while len(runs) > MERGE_FAN_IN:
            group = runs[:MERGE_FAN_IN]
            merged = _Run.write(heapq.merge(*(run.read() for run in group), key=key))
            runs.append(merged)
            self._note_disk_with(runs)
            del runs[:MERGE_FAN_IN]
            for run in group:
                run.close()
        return heapq.merge(*(run.read() for run in runs), key=key)

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
        for _sort_key, offset, length in self._sorted():
            yield os.pread(descriptor, length, offset)

    def close(self) -> None:
        self._file.close()
        self._drop_runs()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _by_key(entry: tuple[Any, Any, int, Any, int, int]) -> tuple[Any, Any, int]:
    return entry[0], entry[1], entry[2]


_by_sort_key = operator.itemgetter(0, 1)  # then the offset: ties keep spool order


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
