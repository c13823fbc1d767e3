"""Access-token cache: a process dict, a host-wide 0600 file store under flock and, opt-in
(``token_cache=deployment``), a deployment-wide Airflow Variable every worker and pod can reach.

Threads, coroutines and processes asking for the same key wait for one in-flight exchange
(single-flight), so a worker and the triggerer mint one token per lifetime. Across hosts the
single flight is best effort, with no lock service: a short lease written to the Variable and
read back (see ``DeploymentTokenStore``). Only the access token, its expiry and the key (or a
fingerprint of it) are stored; never the client secret or refresh token.

The shared levels are only an optimisation and never the reason a call fails: any OSError from
its directory, lock or file (read-only, full, foreign, symlinked, not a regular file...) turns it
off for this process and directory (retried every few minutes) with one warning, and the
process level carries on alone.
The Variable level fails the same way: any error reaching it turns it off for a while, with one
warning. A token that was invalidated is never read back, even from a file that could not be removed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import random
import re
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.hooks.rate_control import VariableBackend

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "ESHOPBOX_TOKEN_CACHE_DIR"
_ASYNC_LOCK_POLL = 0.01
_MAX_FILE_BYTES = 64 * 1024  # a real token file is < 4 KiB; a hostile one is never read whole
_MAX_REVOKED = 256  # digests of invalidated tokens remembered per process
_RETRY_BROKEN_DIR = 600.0  # s until a failed store directory is tried again (a disk gets freed)
#: Deployment level: the Variable's name starts with this (it contains "token", so Airflow masks its
#: value by key name in the UI, the API and task logs).
VARIABLE_PREFIX = "eshopbox_access_token__"
_LEASE_S = 20.0  # a host minting for the deployment; others wait for its token this long at most
_LEASE_SETTLE_S = 0.3  # ...after writing a lease, read it back this much later (+ jitter): last writer mints
_LEASE_POLL_S = 0.25  # how often a waiting host reads the Variable again
_SEAL_INFO = b"eshopbox-provider/deployment-token-seal/v1\0"
_FINGERPRINT_INFO = b"eshopbox-provider/deployment-token-fingerprint/v1\0"


MAX_LIFETIME_S = 30 * 86400.0  # no cached token is believed to live longer than this


@dataclass(frozen=True)
class CachedToken:
    """An access token and when to stop using it (wall-clock epoch seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_at: float

    @classmethod
    def from_lifetime(cls, access_token: str, expires_in: float, now: float) -> CachedToken:
        """Token minted at ``now`` that lives ``expires_in`` s, retired ``refresh_skew`` s early."""
        expires_in = min(expires_in, MAX_LIFETIME_S)
        return cls(access_token, now + expires_in, now + expires_in - api.refresh_skew(expires_in))

    def usable(self, now: float) -> bool:
        """Still inside its lifetime minus skew, and with stamps this code could have written: a
        cached entry that claims to live past ``MAX_LIFETIME_S`` from now (absurd, or left by a wall
        clock that stepped back) is exchanged afresh rather than trusted until the server says 401."""
        return now < self.refresh_at <= self.expires_at <= now + MAX_LIFETIME_S


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
        raw = self._read_private(self._paths(key)[0])
        return _parse(raw, key) if raw is not None else None

    @staticmethod
    def _read_private(path: Path) -> bytes | None:
        """The bytes of ``path``, or None if absent, oversized or not private (OSError as ``read``)."""
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
        return raw if len(raw) <= _MAX_FILE_BYTES else None

    def write(self, key: str, token: CachedToken) -> None:
        """Atomically replace the stored token (tmp file 0600 + os.replace). Call under the lock."""
        payload = json.dumps(
            {
                "key": key,
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "refresh_at": token.refresh_at,
            }
        ).encode()
        self._replace(self._paths(key)[0], payload)

    @staticmethod
    def _replace(path: Path, payload: bytes) -> None:
        """Atomically make ``payload`` the content of ``path``, a 0600 file."""
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

    def _fact_path(self, key: str, fact: str) -> Path:
        return self._ensure_dir() / f"{_digest(key + chr(0) + fact)[:40]}.fact"

    def fact_token(self, key: str, fact: str) -> str | None:
        """The digest of the token ``fact`` was last recorded under (``record_fact``), if any."""
        raw = self._read_private(self._fact_path(key, fact))
        return raw.decode("ascii", "replace") if raw else None

    def record_fact(self, key: str, fact: str, token_digest: str) -> None:
        """Note that ``fact`` held while the token of digest ``token_digest`` was in use."""
        self._replace(self._fact_path(key, fact), token_digest.encode())

    def delete_if(self, key: str, access_token: str) -> None:
        """Remove the stored token only if it is still ``access_token``. Call under the lock."""
        current = self.read(key)
        if current is not None and current.access_token == access_token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._paths(key)[0])


class TaskSdkVariables:
    """Airflow Variables through the Task SDK: reachable from every worker, pod and the triggerer
    (through their supervisor and the Execution API), Fernet-encrypted at rest when the deployment
    has a Fernet key. Raises outside a task or triggerer (the cache then falls back to its host level)."""

    def get(self, name: str) -> str | None:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
        return value if isinstance(value, str) else None

    def set(self, name: str, value: str, description: str) -> None:
        from airflow.sdk import Variable

        Variable.set(name, value, description=description)

    def delete(self, name: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(name)


def variable_name(prefix: str, key: str) -> str:
    """A Variable key for a cache key ``<conn_id>:<sha256>``: the conn id made safe, no secret digest."""
    conn_id = key.rsplit(":", 1)[0]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", conn_id)[:120]
    if safe != conn_id:  # two conn ids that differ only in unsafe characters stay apart
        safe += "_" + hashlib.sha256(conn_id.encode()).hexdigest()[:8]
    return prefix + safe


def _derive(info: bytes, key: str) -> bytes:
    return hashlib.sha256(info + key.encode()).digest()


@dataclass
class _Record:
    """The deployment record of one connection: the sealed token, and a host's minting lease."""

    fingerprint: str
    sealed: str | None = None
    lease_owner: str | None = None
    lease_until: float = 0.0

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "fp": self.fingerprint,
                "sealed": self.sealed,
                "lease": [self.lease_owner, self.lease_until],
            }
        )

    @classmethod
    def loads(cls, text: str | None, fingerprint: str) -> _Record | None:
        """The record for ``fingerprint``; None if absent, malformed or another credential's."""
        if not text or len(text) > _MAX_FILE_BYTES:
            return None
        try:
            data = json.loads(text)
            owner, until = data["lease"]
            if data.get("fp") != fingerprint:
                return None
            sealed = data.get("sealed")
            return cls(
                fingerprint,
                sealed if isinstance(sealed, str) else None,
                owner if isinstance(owner, str) else None,
                float(until),
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            return None


class DeploymentTokenStore:
    """The deployment level: one Airflow Variable per connection, in front of the host's file store.

    The Variable holds the access token sealed (Fernet: AES-128-CBC + HMAC-SHA256) with a key
    derived from the cache key, itself a digest of the connection's client secret and refresh
    token: reading the Variable yields nothing usable without the Connection, and editing the
    credentials makes the old record unreadable. Neither credential is ever written.

    Single flight across hosts without a lock service: a host that finds no usable token writes a
    lease (its id, valid ``_LEASE_S``), reads the record back a moment later and mints only if its
    own lease survived (the last writer wins); the others poll until the token appears or the lease
    lapses. Hosts that all write their lease within the settle time of each other still mint once;
    at worst a few mint when many start cold in the same instant, never one per task.
    """

    def __init__(
        self,
        host: FileTokenStore | None = None,
        variables: VariableBackend | None = None,
    ) -> None:
        self.host = host
        self.variables = variables or TaskSdkVariables()
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{random.getrandbits(32):08x}"

    @staticmethod
    def name(key: str) -> str:
        return variable_name(VARIABLE_PREFIX, key)

    @staticmethod
    def _fingerprint(key: str) -> str:
        return _derive(_FINGERPRINT_INFO, key).hex()[:32]

    @staticmethod
    def _fernet(key: str) -> Any:
        from cryptography.fernet import Fernet

        return Fernet(base64.urlsafe_b64encode(_derive(_SEAL_INFO, key)))

    def _seal(self, key: str, token: CachedToken) -> str:
        payload = json.dumps([token.access_token, token.expires_at, token.refresh_at]).encode()
        return self._fernet(key).encrypt(payload).decode()

    def _unseal(self, key: str, sealed: str | None) -> CachedToken | None:
        from cryptography.fernet import InvalidToken

        if sealed is None:
            return None
        try:
            access, expires_at, refresh_at = json.loads(self._fernet(key).decrypt(sealed.encode()))
            token = CachedToken(str(access), float(expires_at), float(refresh_at))
        except (InvalidToken, ValueError, TypeError):
            return None
        return token if token.access_token and math.isfinite(token.expires_at + token.refresh_at) else None

    def read(self, key: str) -> tuple[_Record | None, CachedToken | None]:
        record = _Record.loads(self.variables.get(self.name(key)), self._fingerprint(key))
        return record, self._unseal(key, record.sealed) if record else None

    def _write(self, key: str, record: _Record) -> None:
        self.variables.set(
            self.name(key),
            record.dumps(),
            "Eshopbox access token shared by every worker (sealed with the connection's credentials). "
            "Delete it to make the next task exchange a new one.",
        )

    def claim(self, key: str, now: float) -> None:
        """Write this host's minting lease (the token field cleared)."""
        self._write(key, _Record(self._fingerprint(key), None, self.owner, now + _LEASE_S))

    def release(self, key: str) -> None:
        """Clear the record (after this host's exchange failed)."""
        self._write(key, _Record(self._fingerprint(key)))

    def publish(self, key: str, token: CachedToken) -> None:
        """Store a freshly minted token for every host (and end the lease)."""
        self._write(key, _Record(self._fingerprint(key), self._seal(key, token)))

    def settle_time(self) -> float:
        return _LEASE_SETTLE_S * (1 + random.random())

    def delete_if(self, key: str, access_token: str) -> None:
        """Remove the record if it still holds ``access_token`` (a newer token is kept)."""
        _record, token = self.read(key)
        if token is not None and token.access_token == access_token:
            self.variables.delete(self.name(key))


class TokenCache:
    """Process-level (class-wide) token dict in front of an optional host-wide FileTokenStore and,
    given a DeploymentTokenStore, a deployment-wide Variable behind that."""

    _memory: ClassVar[dict[str, CachedToken]] = {}
    _revoked: ClassVar[dict[str, None]] = {}  # digests of invalidated tokens, oldest first
    _facts: ClassVar[dict[tuple[str, str], str]] = {}  # (key, fact) -> digest of the token it held under
    _broken: ClassVar[dict[Path | str, float]] = {}  # failed store directory/Variable -> when to retry
    _warned: ClassVar[set[Path | str]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()
    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _loop_locks: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(
        self,
        store: FileTokenStore | DeploymentTokenStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployment = store if isinstance(store, DeploymentTokenStore) else None
        self.store = store.host if isinstance(store, DeploymentTokenStore) else store
        self.clock = clock

    @classmethod
    def clear_process_cache(cls) -> None:
        """Forget every token, revocation and broken store directory known to this process
        (tests, or after editing credentials or fixing the directory)."""
        with cls._guard:
            cls._memory.clear()
            cls._revoked.clear()
            cls._facts.clear()
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

    async def _alock(self, stack: contextlib.AsyncExitStack, key: str) -> bool:
        """Enter the key's file lock on ``stack``; False if the host-wide level is unusable."""
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

    def knows(self, key: str, token: CachedToken, fact: str) -> bool:
        """Whether ``fact`` was recorded (``learn``) in this process or on this host while ``token``
        was the key's token: what a token's lifetime need check only once (a new token checks again)."""
        digest = _digest(token.access_token)
        if self._facts.get((key, fact)) == digest:
            return True
        if (store := self._shared()) is None:
            return False
        try:
            known = store.fact_token(key, fact) == digest
        except OSError:  # only an optimisation: the caller checks again
            return False
        if known:
            self._facts[(key, fact)] = digest
        return known

    def learn(self, key: str, token: CachedToken, fact: str) -> None:
        """Record that ``fact`` holds while ``token`` lives, here and (if it can) for the host."""
        digest = _digest(token.access_token)
        self._facts[(key, fact)] = digest
        if (store := self._shared()) is not None:
            with contextlib.suppress(OSError):
                store.record_fact(key, fact, digest)

    async def aget(self, key: str, mint: Callable[[], Awaitable[CachedToken]]) -> CachedToken:
        """A usable token for ``key``; at most one ``mint`` runs at a time per key on this host: coroutines
        queue on an asyncio.Lock, threads (other loops) and processes on the others."""
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
                    return self._keep(key, await self._avia_deployment(key, mint), locked)
            finally:
                thread_lock.release()

    async def ainvalidate(self, key: str, access_token: str) -> None:
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
        async with contextlib.AsyncExitStack() as stack:
            if await self._alock(stack, key) and (store := self._shared()) is not None:
                try:
                    store.delete_if(key, access_token)
                except OSError as exc:
                    self._disable(exc)
        if (deployment := self._deployment()) is not None:
            try:
                await asyncio.to_thread(deployment.delete_if, key, access_token)
            except Exception as exc:
                self._disable_deployment(deployment, key, exc)

    # --- the deployment level: every error from it ends in _disable_deployment, never in the caller
    def _deployment(self) -> DeploymentTokenStore | None:
        deployment = self.deployment
        if deployment is None or self.clock() < self._broken.get(f"variable:{id(deployment)}", -math.inf):
            return None
        return deployment

    def _disable_deployment(self, deployment: DeploymentTokenStore, key: str, exc: BaseException) -> None:
        """Use only the host and process levels for a while; warn once per process."""
        name = deployment.name(key)
        with self._guard:
            self._broken[f"variable:{id(deployment)}"] = self.clock() + _RETRY_BROKEN_DIR
            if name in self._warned:
                return
            self._warned.add(name)
        log.warning(
            "The deployment-wide Eshopbox token cache (Variable %s) cannot be used (%s: %s); caching "
            "tokens per host only. It needs the Task SDK (a task or the triggerer).",
            name,
            type(exc).__name__,
            str(exc)[:200],
        )

    async def _avia_deployment(self, key: str, mint: Callable[[], Awaitable[CachedToken]]) -> CachedToken:
        """A token from the deployment Variable, or minted once for every host and published there
        (Variable calls in a thread: a triggerer's comms need that). The cross-host protocol: read
        the record; a usable token ends it; a live lease of ours means we mint, another's means we
        poll; no lease means we write ours and read back after the settle time (last writer mints)."""
        if (deployment := self._deployment()) is None:
            return await mint()
        give_up = self.clock() + 2 * _LEASE_S
        try:
            while True:
                record, token = await asyncio.to_thread(deployment.read, key)
                now = self.clock()
                if token and token.usable(now) and _digest(token.access_token) not in self._revoked:
                    return token
                leased = record.lease_until - now if record and record.lease_owner else 0.0
                if now >= give_up or (leased > 0 and record and record.lease_owner == deployment.owner):
                    break
                if leased > 0:
                    await asyncio.sleep(min(_LEASE_POLL_S, leased))
                    continue
                await asyncio.to_thread(deployment.claim, key, now)
                await asyncio.sleep(deployment.settle_time())
        except Exception as exc:  # the Variable cannot be reached: this host mints alone
            self._disable_deployment(deployment, key, exc)
            return await mint()
        try:
            token = await mint()
        except BaseException:
            await asyncio.to_thread(self._release, deployment, key)
            raise
        return await asyncio.to_thread(self._publish, deployment, key, token)

    def _release(self, deployment: DeploymentTokenStore, key: str) -> None:
        """End our lease after a failed exchange, so that other hosts try at once (best effort)."""
        with contextlib.suppress(Exception):
            deployment.release(key)

    def _publish(self, deployment: DeploymentTokenStore, key: str, token: CachedToken) -> CachedToken:
        try:
            deployment.publish(key, token)
        except Exception as exc:
            self._disable_deployment(deployment, key, exc)
        return token
