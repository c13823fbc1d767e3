"""Two-level access-token cache: a process dict plus a host-wide 0600 file store under flock.

Threads, coroutines and processes asking for the same key wait for one in-flight exchange
(single-flight), so a worker and the triggerer mint one token per lifetime. Only the access
token, its expiry and the key are stored; never the client secret or refresh token.

The host-wide level is only an optimisation and never the reason a call fails: any OSError from
its directory, lock or file (read-only, full, foreign, symlinked, not a regular file...) turns it
off for this process and directory (retried every few minutes) with one warning, and the
process level carries on alone.
A token that was invalidated is never read back, even from a file that could not be removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from airflow_provider_eshopbox import api

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "ESHOPBOX_TOKEN_CACHE_DIR"
_ASYNC_LOCK_POLL = 0.01
_MAX_FILE_BYTES = 64 * 1024  # a real token file is < 4 KiB; a hostile one is never read whole
_MAX_REVOKED = 256  # digests of invalidated tokens remembered per process
_RETRY_BROKEN_DIR = 600.0  # s until a failed store directory is tried again (a disk gets freed)


@dataclass(frozen=True)
class CachedToken:
    """An access token and when to stop using it (wall-clock epoch seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_at: float

    @classmethod
    def from_lifetime(cls, access_token: str, expires_in: float, now: float) -> CachedToken:
        """Token minted at ``now`` that lives ``expires_in`` s, retired ``refresh_skew`` s early."""
        return cls(access_token, now + expires_in, now + expires_in - api.refresh_skew(expires_in))

    def usable(self, now: float) -> bool:
        """Still inside its lifetime minus skew."""
        return now < self.refresh_at


def default_cache_dir() -> Path:
    """``$ESHOPBOX_TOKEN_CACHE_DIR``, else ``$XDG_RUNTIME_DIR/...``, else ``<tmp>/...-<uid>``."""
    if override := os.environ.get(CACHE_DIR_ENV):
        return Path(override)
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "airflow-provider-eshopbox"
    try:
        tmp = tempfile.gettempdir()
    except OSError:  # no writable temp dir at all: the store fails later and falls back
        tmp = "/tmp"
    return Path(tmp) / f"airflow-provider-eshopbox-{os.getuid()}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _close(fd: int) -> None:
    """Close a lock or read descriptor; an error here must not replace the caller's result."""
    with contextlib.suppress(OSError):
        os.close(fd)


def _regular(fd: int, path: Path) -> os.stat_result:
    """``fstat`` of ``fd``; OSError unless it is a regular file (not a directory, FIFO, device)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return st


def _parse(raw: bytes, key: str) -> CachedToken | None:
    """The token in a file's bytes, or None if they are not a well-formed entry for ``key``."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        access = data["access_token"]
        expires_at, refresh_at = float(data["expires_at"]), float(data["refresh_at"])
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
        return None
    if not isinstance(access, str) or not access or not math.isfinite(expires_at + refresh_at):
        return None
    return CachedToken(access, expires_at, refresh_at)


class FileTokenStore:
    """Host-wide store: one 0600 JSON file per key in a private 0700 directory, flock-guarded.

    Any method may raise OSError when the directory, lock or file is unusable; TokenCache turns
    that into a fallback to its process level.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_cache_dir()

    def _ensure_dir(self) -> Path:
        d = self.directory
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(f"token cache dir {d} is not a directory owned by this user")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(d, 0o700)
        return d

    def _paths(self, key: str) -> tuple[Path, Path]:
        digest = _digest(key)[:40]
        d = self._ensure_dir()
        return d / f"{digest}.json", d / f"{digest}.lock"

    def _open_lock(self, key: str) -> int:
        path = self._paths(key)[1]
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            _regular(fd, path)
        except OSError:
            _close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the key's exclusive flock (blocking)."""
        fd = self._open_lock(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            _close(fd)  # closing the descriptor releases the flock

    @contextlib.asynccontextmanager
    async def alocked(self, key: str) -> AsyncIterator[None]:
        """Hold the key's flock, waiting for it in a thread so the event loop keeps running."""
        fd = self._open_lock(key)
        waiter = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiter)
        except BaseException:
            waiter.add_done_callback(lambda _: _close(fd))  # release once the thread gets it
            raise
        try:
            yield
        finally:
            _close(fd)

    def read(self, key: str) -> CachedToken | None:
        """The stored token, or None if absent, garbage, oversized or not private. Call under the lock.

        OSError if the file cannot be opened or read (a symlink, directory, FIFO, I/O error).
        """
        path = self._paths(key)[0]
        try:  # O_NONBLOCK: opening a FIFO planted here must not hang the task
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        try:
            st = _regular(fd, path)
            if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
                log.warning("Ignoring Eshopbox token cache file with unsafe owner/mode: %s", path)
                return None
            raw = os.read(fd, _MAX_FILE_BYTES + 1)
        finally:
            _close(fd)
        return _parse(raw, key) if len(raw) <= _MAX_FILE_BYTES else None

    def write(self, key: str, token: CachedToken) -> None:
        """Atomically replace the stored token (tmp file 0600 + os.replace). Call under the lock."""
        path = self._paths(key)[0]
        payload = json.dumps(
            {
                "key": key,
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "refresh_at": token.refresh_at,
            }
        ).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tok-", suffix=".tmp")
        try:
            try:
                os.fchmod(fd, 0o600)
                if os.write(fd, payload) != len(payload):  # a short write means the disk is full
                    raise OSError(errno.ENOSPC, "short write", tmp)
                os.fsync(fd)
            finally:
                os.close(fd)  # once only: a second close could hit a descriptor reused by a thread
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete_if(self, key: str, access_token: str) -> None:
        """Remove the stored token only if it is still ``access_token``. Call under the lock."""
        current = self.read(key)
        if current is not None and current.access_token == access_token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._paths(key)[0])


class TokenCache:
    """Process-level (class-wide) token dict in front of an optional host-wide FileTokenStore."""

    _memory: ClassVar[dict[str, CachedToken]] = {}
    _revoked: ClassVar[dict[str, None]] = {}  # digests of invalidated tokens, oldest first
    _broken: ClassVar[dict[Path, float]] = {}  # failed store directory -> when to try it again
    _warned: ClassVar[set[Path]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()
    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _loop_locks: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, store: FileTokenStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    @classmethod
    def clear_process_cache(cls) -> None:
        """Forget every token, revocation and broken store directory known to this process
        (tests, or after editing credentials or fixing the directory)."""
        with cls._guard:
            cls._memory.clear()
            cls._revoked.clear()
            cls._broken.clear()
            cls._warned.clear()

    def _fresh(self, key: str) -> CachedToken | None:
        token = self._memory.get(key)
        return token if token is not None and token.usable(self.clock()) else None

    def _thread_lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._thread_locks.setdefault(key, threading.Lock())

    def _loop_lock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    # --- the host-wide level: every OSError from it ends in _disable, never in the caller ------
    def _shared(self) -> FileTokenStore | None:
        store = self.store
        if store is None or self.clock() < self._broken.get(store.directory, -math.inf):
            return None
        return store

    def _disable(self, exc: OSError) -> None:
        """Use only the process level for this directory for a while; warn once per process."""
        assert self.store is not None
        directory = self.store.directory
        with self._guard:
            self._broken[directory] = self.clock() + _RETRY_BROKEN_DIR
            if directory in self._warned:
                return
            self._warned.add(directory)
        log.warning(
            "Eshopbox token cache directory %s cannot be used (%s); caching tokens per process, "
            "so every task process mints its own. Set %s to a writable private directory, or "
            "token_cache=process on the connection.",
            directory,
            exc,
            CACHE_DIR_ENV,
        )

    def _lock(self, stack: contextlib.ExitStack, key: str) -> bool:
        """Enter the key's file lock on ``stack``; False if the host-wide level is unusable."""
        if (store := self._shared()) is None:
            return False
        try:
            stack.enter_context(store.locked(key))
        except OSError as exc:
            self._disable(exc)
            return False
        return True

    async def _alock(self, stack: contextlib.AsyncExitStack, key: str) -> bool:
        """Async ``_lock``."""
        if (store := self._shared()) is None:
            return False
        try:
            await stack.enter_async_context(store.alocked(key))
        except OSError as exc:
            self._disable(exc)
            return False
        return True

    def _load(self, key: str) -> CachedToken | None:
        """The usable, never-invalidated token in the file (call holding its lock), else None."""
        if (store := self._shared()) is None:
            return None
        try:
            token = store.read(key)
        except OSError as exc:
            self._disable(exc)
            return None
        if token is None or not token.usable(self.clock()):
            return None
        with self._guard:
            if _digest(token.access_token) in self._revoked:  # a stale file we could not remove
                return None
            self._memory[key] = token
        return token

    def _keep(self, key: str, token: CachedToken, locked: bool) -> CachedToken:
        """Hold a freshly minted token in this process, and in the file if we hold its lock."""
        if locked and (store := self._shared()) is not None:
            try:
                store.write(key, token)
            except OSError as exc:
                self._disable(exc)
        with self._guard:
            self._revoked.pop(_digest(token.access_token), None)  # the server just vouched for it
            self._memory[key] = token
        return token

    def get(self, key: str, mint: Callable[[], CachedToken]) -> CachedToken:
        """A usable token for ``key``; at most one ``mint`` runs at a time per key on this host."""
        if token := self._fresh(key):
            return token
        with self._thread_lock(key):
            if token := self._fresh(key):
                return token
            with contextlib.ExitStack() as stack:
                locked = self._lock(stack, key)
                if locked and (token := self._load(key)):
                    return token
                return self._keep(key, mint(), locked)

    async def aget(self, key: str, mint: Callable[[], Awaitable[CachedToken]]) -> CachedToken:
        """Async ``get``: coroutines queue on an asyncio.Lock, threads and processes on the others."""
        if token := self._fresh(key):
            return token
        async with self._loop_lock(key):
            if token := self._fresh(key):
                return token
            thread_lock = self._thread_lock(key)
            while not thread_lock.acquire(blocking=False):  # cancel-safe; contended only by threads
                await asyncio.sleep(_ASYNC_LOCK_POLL)
            try:
                if token := self._fresh(key):
                    return token
                async with contextlib.AsyncExitStack() as stack:
                    locked = await self._alock(stack, key)
                    if locked and (token := self._load(key)):
                        return token
                    return self._keep(key, await mint(), locked)
            finally:
                thread_lock.release()

    def invalidate(self, key: str, access_token: str) -> None:
        """Drop ``access_token`` everywhere, but keep a newer token another caller already stored.

        Its digest is remembered, so a file that cannot be removed is never read back.
        """
        with self._guard:
            self._revoked[_digest(access_token)] = None
            while len(self._revoked) > _MAX_REVOKED:
                del self._revoked[next(iter(self._revoked))]
            current = self._memory.get(key)
            if current is not None and current.access_token == access_token:
                del self._memory[key]
        if (store := self._shared()) is None:
            return
        try:
            with store.locked(key):
                store.delete_if(key, access_token)
        except OSError as exc:
            self._disable(exc)

    async def ainvalidate(self, key: str, access_token: str) -> None:
        """Async ``invalidate`` (file work in a thread)."""
        await asyncio.to_thread(self.invalidate, key, access_token)
