"""Two-level access-token cache: a process dict plus a host-wide 0600 file store under flock.

Threads, coroutines and processes asking for the same key wait for one in-flight exchange
(single-flight), so a worker and the triggerer mint one token per lifetime. Only the access
token, its expiry and the key are stored; never the client secret or refresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
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
    return Path(tempfile.gettempdir()) / f"airflow-provider-eshopbox-{os.getuid()}"


class FileTokenStore:
    """Host-wide store: one 0600 JSON file per key in a private 0700 directory, flock-guarded."""

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
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        d = self._ensure_dir()
        return d / f"{digest}.json", d / f"{digest}.lock"

    def _open_lock(self, key: str) -> int:
        return os.open(self._paths(key)[1], os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the key's exclusive flock (blocking)."""
        fd = self._open_lock(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @contextlib.asynccontextmanager
    async def alocked(self, key: str) -> AsyncIterator[None]:
        """Hold the key's flock, waiting for it in a thread so the event loop keeps running."""
        fd = self._open_lock(key)
        waiter = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiter)
        except BaseException:
            waiter.add_done_callback(lambda _: os.close(fd))  # release once the thread gets it
            raise
        try:
            yield
        finally:
            os.close(fd)

    def read(self, key: str) -> CachedToken | None:
        """The stored token for ``key``, or None if absent/corrupt/foreign. Call under the lock."""
        path = self._paths(key)[0]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
                log.warning("Ignoring Eshopbox token cache file with unsafe owner/mode: %s", path)
                return None
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = json.loads(fh.read())
            if data.get("key") != key:
                return None
            return CachedToken(
                str(data["access_token"]), float(data["expires_at"]), float(data["refresh_at"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            os.close(fd)

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
            os.fchmod(fd, 0o600)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
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
    _guard: ClassVar[threading.Lock] = threading.Lock()
    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _loop_locks: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, store: FileTokenStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        if store is not None:
            try:
                store._ensure_dir()
            except OSError as exc:  # unsafe or unwritable dir: fall back to the process level
                log.warning("Eshopbox shared token cache disabled (%s); caching per process", exc)
                self.store = None

    @classmethod
    def clear_process_cache(cls) -> None:
        """Forget every token held by this process (tests, or after editing credentials)."""
        with cls._guard:
            cls._memory.clear()

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

    def _from_store(self, key: str) -> CachedToken | None:
        assert self.store is not None
        token = self.store.read(key)
        if token is not None and token.usable(self.clock()):
            self._memory[key] = token
            return token
        return None

    def _remember(self, key: str, token: CachedToken) -> CachedToken:
        if self.store is not None:
            try:
                self.store.write(key, token)
            except OSError as exc:  # the shared level is an optimisation; never fail a call on it
                log.warning("Could not write the Eshopbox token cache file: %s", exc)
        self._memory[key] = token
        return token

    def get(self, key: str, mint: Callable[[], CachedToken]) -> CachedToken:
        """A usable token for ``key``; at most one ``mint`` runs at a time per key on this host."""
        if token := self._fresh(key):
            return token
        with self._thread_lock(key):
            if token := self._fresh(key):
                return token
            if self.store is None:
                return self._remember(key, mint())
            with self.store.locked(key):
                return self._from_store(key) or self._remember(key, mint())

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
                if self.store is None:
                    return self._remember(key, await mint())
                async with self.store.alocked(key):
                    return self._from_store(key) or self._remember(key, await mint())
            finally:
                thread_lock.release()

    def invalidate(self, key: str, access_token: str) -> None:
        """Drop ``access_token`` everywhere, but keep a newer token another caller already stored."""
        with self._guard:
            current = self._memory.get(key)
            if current is not None and current.access_token == access_token:
                del self._memory[key]
        if self.store is not None:
            try:
                with self.store.locked(key):
                    self.store.delete_if(key, access_token)
            except OSError as exc:
                log.warning("Could not update the Eshopbox token cache file: %s", exc)

    async def ainvalidate(self, key: str, access_token: str) -> None:
        """Async ``invalidate`` (file work in a thread)."""
        await asyncio.to_thread(self.invalidate, key, access_token)
