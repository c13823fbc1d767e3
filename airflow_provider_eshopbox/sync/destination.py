"""Where a sync's output goes: the destination checked before any read, written atomically, left clean.

A file is written to a hidden temporary object beside the destination, ``.<name>.tmp-<32 hex>``,
moved into place only after the last byte. A reader never sees a partial object at the
destination's name:

- local disk (``file://``): the move is ``os.replace`` within one directory, an atomic rename; a
  reader sees the previous file or the new one, whole.
- object stores (``s3://``, ``gs://``, ...): fsspec's move is a copy of the completed temporary,
  then its deletion. A copy of a completed object is not partial: S3 and GCS show a new object only
  once it is whole, so the destination name holds the previous object or the new one. (For other
  stores, check that their copy behaves the same.) Readers that list the prefix see the temporary
  while it exists: glob on the suffix (``*.jsonl.gz``), which a temporary's ``.tmp-<hex>`` never
  matches (DuckDB's ``*`` does match names that start with ``.``).

A run removes its own temporary on any error, and aborts its multipart upload instead of
completing it. SIGTERM is not an error by itself on Airflow 3.3: the task runner calls ``on_kill``,
which raises into the running ``execute`` (``sync/stopping.py``), so a stopped task cleans up the
same way. A run killed with SIGKILL, or a lost machine, cannot: the next write to the same
destination removes that destination's temporaries unchanged for STALE_TEMPORARY_SECONDS (a live
writer's keeps changing, and on object stores appears only when complete) and, on S3, aborts their
incomplete multipart uploads begun that long ago (invisible to a listing, billed until aborted; a
bucket lifecycle rule, ``AbortIncompleteMultipartUpload``, is the backstop). Destination problems
(a directory, a parent that is a file, an unwritable place, a name too long for its temporary, a
relative ``file://`` URL, an ``s3://`` URL without credentials) are found by
``resolve_destination`` and ``check_writable`` before any read; the probe ``check_writable``
writes is deleted in a ``finally``.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import posixpath
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from airflow_provider_eshopbox.exceptions import EshopboxConfigError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

#: A destination's temporary unchanged for this long was left by a killed run: the next write removes it.
STALE_TEMPORARY_SECONDS = 3600.0
_NAME_MAX = 255  # bytes in a file name on local file systems (ext4, xfs, apfs)
_GZIP_SUFFIXES = (".gz", ".gzip")
#: zlib's fastest strategy with its best ratio: of JSON order rows, 0.086 s a 17.8 MB window against
#: 0.190 s at zlib's default 6 (the most of the sorted write's CPU), for a file 21% larger.
GZIP_LEVEL = 3


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
    _check_credentials(path, text, field)
    is_dir = False
    with contextlib.suppress(Exception):  # an unreachable store is reported by the read or the write
        is_dir = path.is_dir()
    if is_dir:
        raise EshopboxConfigError(
            f"{field}={text!r} is an existing directory: name a file in it, e.g. {text}/orders.jsonl.gz",
            field=field,
        )
    return path


_MAKE_ATTEMPTS = 5  # tries of a file whose new directory another task's write probe removed
_T = TypeVar("_T")


def _in_its_directory(path: ObjectStoragePath, create: Callable[[], _T]) -> _T:
    """``create()`` a file at ``path``, making its directory first, and again if another task's write
    probe made or removed it meanwhile (a backfill's runs starting in one new ``dt=`` partition)."""
    for attempt in range(_MAKE_ATTEMPTS):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return create()
        except (FileNotFoundError, FileExistsError):
            if attempt == _MAKE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


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
            # One stat per ancestor, never exists() then is_dir(): a sibling task's probe makes and
            # removes directories in between (a backfill's runs starting in one new dt= partition).
            try:
                mode = ancestor.stat().st_mode
            except (FileNotFoundError, NotADirectoryError):  # a file further up is found there
                created.append(ancestor)  # not there (yet): the probe makes it, deepest first
                continue
            if stat.S_ISDIR(mode):
                break
            raise EshopboxConfigError(
                f"{field}={text!r}: its parent {ancestor} is a file, not a directory", field=field
            )
    probe = destination.parent / _temporary_name(destination, uuid.uuid4().hex)
    try:
        _in_its_directory(probe, lambda: probe.write_bytes(b""))
    except Exception as error:
        raise EshopboxConfigError(
            f"{field}={text!r} cannot be written here: {error}; choose a place this worker can write",
            field=field,
        ) from None
    finally:  # even when the write failed half-way or the task is being stopped
        with contextlib.suppress(Exception):
            probe.unlink()
        for directory in created:
            with contextlib.suppress(OSError):
                directory.rmdir()


def _check_credentials(path: ObjectStoragePath, text: str, field: str) -> None:
    """An ``s3://`` path whose filesystem found no credentials would write anonymously and fail late
    with a message that does not say where credentials come from: say it now."""
    if not _is_s3(path) or not getattr(path.fs, "anon", False):
        return
    bucket_key = text.split("://", 1)[1].split("@", 1)[-1]
    where = (
        f"the connection {path.conn_id!r} has none"
        if path.conn_id
        else "the URL names no AWS connection and this worker has no default credentials"
    )
    raise EshopboxConfigError(
        f"{field}={text!r}: no AWS credentials ({where}); name the Airflow connection in the URL, "
        f"e.g. s3://aws_default@{bucket_key}, or pass ObjectStoragePath({text!r}, conn_id='aws_default')",
        field=field,
    )


def _is_s3(path: ObjectStoragePath) -> bool:
    return path.protocol in ("s3", "s3a", "s3n")


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
        try:
            entries = destination.fs.ls(destination.parent.path, detail=True)
        except FileNotFoundError:  # an object store's "directory" with no objects (yet) in it
            entries = []
        for entry in entries:
            name = posixpath.basename(entry["name"].rstrip("/"))
            modified = _modified_at(entry)
            if name.startswith(prefix) and entry.get("type") == "file" and modified and modified < cutoff:
                destination.fs.rm_file(entry["name"])
                removed.append(name)
        if _is_s3(destination):  # an upload killed before its first object exists has only this trace
            removed += _abort_stale_uploads(destination, prefix, cutoff)
    except Exception as error:  # never fail a write over another run's leftovers
        log.warning("Could not remove stale temporaries of %s: %s", destination, error)
    if removed:
        log.warning("Removed temporaries of %s left by killed runs: %s", destination, ", ".join(removed))
    return removed


@contextlib.contextmanager
def atomic_open(destination: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """Yield a binary writer to a temporary object beside ``destination``; move it into place on success.

    A ``.gz`` destination gets one standard gzip member with no time or name in its header, so the
    same rows always give the same bytes. On any error (a failed part, a stopped task) the upload is
    aborted, not completed: no partial object, no multipart upload left to bill.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(destination)
    temporary = destination.parent / _temporary_name(destination, uuid.uuid4().hex)
    try:
        raw = _in_its_directory(temporary, lambda: temporary.open("wb"))
        try:
            if is_gzip(destination):
                with gzip.GzipFile(
                    filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0
                ) as zipped:
                    yield zipped  # type: ignore[misc]
            else:
                yield raw
            raw.close()  # an object store's upload completes here
        except BaseException:
            _discard(raw)
            raise
        local = _local_path(destination)
        if local is not None:
            os.replace(temporary.path, local)  # atomic; fails on a directory rather than moving into it
        else:
            temporary.rename(destination)  # copy, then delete the temporary
    except BaseException:
        with contextlib.suppress(Exception):
            temporary.unlink()
        raise


def _discard(raw: IO[bytes]) -> None:
    """Close a temporary's writer without completing it: an fsspec buffered file (S3, GCS, Azure)
    aborts its multipart or resumable upload; a local file is closed (and then removed)."""
    from fsspec.spec import AbstractBufferedFile

    file = getattr(raw, "_obj", raw)  # ObjectStoragePath.open wraps the fsspec file (lineage tracking)
    if isinstance(file, AbstractBufferedFile):
        try:
            file.discard()
        except Exception as error:  # the sweep of the next run (or a lifecycle rule) is the backstop
            log.warning("Could not abort the upload of %s: %s", file.path, error)
        file.closed = True  # close() would complete the upload
    else:
        with contextlib.suppress(Exception):
            raw.close()


def _abort_stale_uploads(destination: ObjectStoragePath, prefix: str, cutoff: float) -> list[str]:
    """Abort the incomplete multipart uploads of ``destination``'s temporaries begun before ``cutoff``
    (a run killed mid-upload leaves one: invisible to a listing, billed until aborted)."""
    fs = destination.fs
    bucket, _, parent = destination.parent.path.partition("/")
    key_prefix = f"{parent}/{prefix}" if parent else prefix
    aborted, page = [], {}
    while True:
        listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key_prefix, **page)
        for upload in listing.get("Uploads", []):
            if upload["Initiated"].timestamp() < cutoff:
                fs.call_s3(
                    "abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted.append(f"{posixpath.basename(upload['Key'])} (incomplete upload)")
        if not listing.get("IsTruncated"):
            return aborted
        page = {"KeyMarker": listing["NextKeyMarker"], "UploadIdMarker": listing["NextUploadIdMarker"]}
