"""The host-wide token cache on a read-only, full, foreign or booby-trapped directory (issue 13/5).

Whatever the directory does, a call gets a token: the cache falls back to the process level with
one warning per process and directory, and a revoked token is never read back. Tests run as root,
which mode bits alone never stop, so read-only and full file systems are simulated by failing the
syscalls the store makes on paths under the directory.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_eshopbox.hooks import token_cache
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import CACHE_DIR_ENV, CachedToken, FileTokenStore, TokenCache

from .conftest import AUTH_URL, FAST, TOKEN_PREFIX, TokenMinter
from .test_tokens import ORDERS, PAGE, _run_processes

KEY = "conn:hostile"
T0 = 1_700_000_000.0
PLANTED = f"{TOKEN_PREFIX}planted"
WRITES = ("open_write", "unlink", "replace", "mkdir", "chmod")  # what a read-only mount refuses


class Clock:
    """A settable wall clock for TokenCache."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Minter:
    """``mint`` for TokenCache.aget: a new token per call, counted."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or Clock()
        self.count = 0

    async def __call__(self) -> CachedToken:
        await asyncio.sleep(0)
        self.count += 1
        return CachedToken.from_lifetime(f"{TOKEN_PREFIX}minted-{self.count}", 3600, self.clock())


def paths(store: FileTokenStore) -> tuple[Path, Path]:
    """The (token file, lock file) of KEY."""
    return store._paths(KEY)


def entry(access_token: str = PLANTED, expires_at: float = T0 + 3600, key: str = KEY) -> bytes:
    """The bytes of a well-formed token file."""
    return json.dumps({"key": key, "access_token": access_token, "expires_at": expires_at,
                       "refresh_at": expires_at - 120}).encode()  # fmt: skip


def plant(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` with ``mode``, as another process (or user) might have."""
    path.write_bytes(data)
    os.chmod(path, mode)


def inject(monkeypatch: pytest.MonkeyPatch, directory: Path, err: int, *ops: str) -> None:
    """Fail the store's syscalls on paths under ``directory`` with ``err``.

    ops: open_write (open for writing or creating), create (open that creates a file),
    unlink, replace, mkdir, chmod, write (a full disk), short_write (a partial write).
    """
    root = os.path.abspath(directory)

    def under(path: Any) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(root + os.sep)

    def refuse(path: Any) -> None:
        raise OSError(err, os.strerror(err), os.fspath(path))

    def fd_under(fd: int) -> bool:
        try:
            return under(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False

    real_open, real_write = os.open, os.write

    def fake_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        creates = flags & os.O_CREAT and not os.path.lexists(path)
        if under(path) and (("open_write" in ops and writes) or ("create" in ops and creates)):
            refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_write(fd: int, data: Any) -> int:
        if ("write" in ops or "short_write" in ops) and fd_under(fd):
            if "write" in ops:
                refuse(f"/proc/self/fd/{fd}")
            return real_write(fd, bytes(data)[:5])
        return real_write(fd, data)

    def path_op(real: Callable[..., Any], op: str) -> Callable[..., Any]:
        def fake(*args: Any, **kwargs: Any) -> Any:
            if op in ops and any(under(a) for a in args if isinstance(a, (str, os.PathLike))):
                refuse(args[0])
            return real(*args, **kwargs)

        return fake

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    for name in ("unlink", "replace", "mkdir", "chmod"):
        monkeypatch.setattr(os, name, path_op(getattr(os, name), name))


def disable_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The fall-back warnings the token cache logged."""
    ours = (r for r in caplog.records if r.name == token_cache.__name__ and r.levelno == logging.WARNING)
    return [m for m in (r.getMessage() for r in ours) if CACHE_DIR_ENV in m]


def finish(call: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """Run ``call()`` on a loop in a thread and fail, instead of hanging the suite (a blocking
    syscall would stop a loop's own timeout), if it does not return."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(call())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the token cache hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- hostile directories: each is applied after the cache exists, as a directory can change ----
def read_only(d: Path, mp: pytest.MonkeyPatch) -> None:
    inject(mp, d, errno.EROFS, *WRITES)


def lock_is_a_directory(d: Path, mp: pytest.MonkeyPatch) -> None:
    paths(FileTokenStore(d))[1].mkdir()


def lock_is_a_symlink(d: Path, mp: pytest.MonkeyPatch) -> None:
    paths(FileTokenStore(d))[1].symlink_to(d.parent / "lock-target")


def file_is_a_symlink(d: Path, mp: pytest.MonkeyPatch) -> None:
    plant(d.parent / "planted.json", entry())
    paths(FileTokenStore(d))[0].symlink_to(d.parent / "planted.json")


def file_is_a_directory(d: Path, mp: pytest.MonkeyPatch) -> None:
    paths(FileTokenStore(d))[0].mkdir(mode=0o700)


def file_is_a_fifo(d: Path, mp: pytest.MonkeyPatch) -> None:
    os.mkfifo(paths(FileTokenStore(d))[0], 0o600)


def inodes_exhausted(d: Path, mp: pytest.MonkeyPatch) -> None:
    inject(mp, d, errno.ENOSPC, "create", "mkdir")


def disk_full(d: Path, mp: pytest.MonkeyPatch) -> None:
    inject(mp, d, errno.ENOSPC, "write")


def short_write(d: Path, mp: pytest.MonkeyPatch) -> None:
    inject(mp, d, errno.ENOSPC, "short_write")


def dir_owned_by_another_user(d: Path, mp: pytest.MonkeyPatch) -> None:
    os.chown(d, 54321, 54321)


def dir_is_a_symlink(d: Path, mp: pytest.MonkeyPatch) -> None:
    d.rename(d.parent / "real-dir")
    d.symlink_to(d.parent / "real-dir")


HOSTILE = [read_only, lock_is_a_directory, lock_is_a_symlink, file_is_a_symlink, file_is_a_directory,
           file_is_a_fifo, inodes_exhausted, disk_full, short_write, dir_owned_by_another_user,
           dir_is_a_symlink]  # fmt: skip


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    """An existing private cache directory; a reader hung on a FIFO in it is released at the end."""
    d = tmp_path / "hostile"
    FileTokenStore(d)._ensure_dir()
    yield d
    for fifo in (p for p in d.glob("*.json") if stat.S_ISFIFO(p.lstat().st_mode)):
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))  # opens both ends: a blocked open() returns


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda f: f.__name__)
def test_a_hostile_directory_never_fails_a_call(hostile, cache_dir, monkeypatch, caplog):
    clock = Clock()
    mint = Minter(clock)
    cache, other = TokenCache(FileTokenStore(cache_dir), clock), TokenCache(FileTokenStore(cache_dir), clock)
    hostile(cache_dir, monkeypatch)

    first = finish(lambda: cache.aget(KEY, mint))
    assert (first.access_token, mint.count) == (f"{TOKEN_PREFIX}minted-1", 1)
    assert finish(lambda: other.aget(KEY, mint)) == first  # the process level still works
    finish(lambda: other.ainvalidate(KEY, first.access_token))
    second = finish(lambda: cache.aget(KEY, mint))
    assert (second.access_token, mint.count) == (f"{TOKEN_PREFIX}minted-2", 2)

    assert not list(cache_dir.parent.glob("lock-target*"))  # a symlinked lock is not followed
    assert not [p for p in cache_dir.rglob("*.json") if p.is_file() and not p.is_symlink()]  # no torn file
    (warning,) = disable_warnings(caplog)  # once per process and directory, naming both fixes
    assert str(cache_dir) in warning and "token_cache=process" in warning


@pytest.mark.parametrize("hostile", [read_only, lock_is_a_directory, file_is_a_symlink, dir_is_a_symlink],
                         ids=lambda f: f.__name__)  # fmt: skip
async def test_async_path_falls_back_too(hostile, cache_dir, monkeypatch, caplog):
    mint = Minter()
    cache = TokenCache(FileTokenStore(cache_dir), mint.clock)
    hostile(cache_dir, monkeypatch)
    tokens = await asyncio.gather(*(cache.aget(KEY, mint) for _ in range(10)))
    assert {t.access_token for t in tokens} == {f"{TOKEN_PREFIX}minted-1"} and mint.count == 1
    await cache.ainvalidate(KEY, tokens[0].access_token)
    assert (await cache.aget(KEY, mint)).access_token == f"{TOKEN_PREFIX}minted-2"
    assert len(disable_warnings(caplog)) == 1


def test_threads_still_single_flight_on_a_broken_directory(cache_dir, monkeypatch):
    lock_is_a_directory(cache_dir, monkeypatch)
    cache = TokenCache(FileTokenStore(cache_dir))
    started, minting = threading.Barrier(8), threading.Condition()
    mints: list[int] = []

    async def mint() -> CachedToken:  # each thread runs its own loop: blocking here holds only that one
        with minting:  # a second concurrent mint would wake this wait at once
            mints.append(1)
            minting.notify_all()
            assert not minting.wait_for(lambda: len(mints) > 1, timeout=0.3)
        return CachedToken.from_lifetime(f"{TOKEN_PREFIX}single", 3600, cache.clock())

    def worker() -> str:
        started.wait(timeout=30)
        return asyncio.run(cache.aget(KEY, mint)).access_token

    async def threads() -> list[str]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: worker(), range(8)))

    tokens = finish(threads)
    assert set(tokens) == {f"{TOKEN_PREFIX}single"} and len(mints) == 1


async def test_a_revoked_token_in_a_file_that_cannot_be_removed_is_never_read_back(
    cache_dir, monkeypatch, caplog
):
    clock = Clock()
    mint = Minter(clock)
    cache = TokenCache(FileTokenStore(cache_dir), clock)
    stale = await cache.aget(KEY, mint)  # written to the file while the directory was writable
    TokenCache.clear_process_cache()  # a new task process ...
    inject(monkeypatch, cache_dir, errno.EACCES, "create", "unlink", "replace")  # ... on a 0500 dir

    assert await cache.aget(KEY, mint) == stale and mint.count == 1  # read from the file
    await cache.ainvalidate(KEY, stale.access_token)  # the server said 401; the file stays
    fresh = await cache.aget(KEY, mint)
    assert fresh != stale and mint.count == 2
    await cache.ainvalidate(KEY, fresh.access_token)  # revoked again; the directory is tried again later
    clock.now += 3600 - 121  # the stale file still looks usable
    again = await cache.aget(KEY, mint)
    assert again.access_token not in {stale.access_token, fresh.access_token} and mint.count == 3
    assert len(disable_warnings(caplog)) == 1


def test_revoke_with_a_read_only_cache_dir_does_not_fail_the_next_task(monkeypatch, tmp_path):
    revoked: set[str] = set()
    minter = TokenMinter()

    def orders(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"message": "Expired token"}) if token in revoked else \
            httpx.Response(200, json=PAGE)  # fmt: skip

    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=minter)
        mock.get(ORDERS).mock(side_effect=orders)
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")  # task 1 stores its token
        revoked.update(t.access_token for t in TokenCache._memory.values())  # server-side revoke
        TokenCache.clear_process_cache()  # task 2, a new process, on a now read-only directory
        inject(monkeypatch, tmp_path / "tokens", errno.EACCES, "create", "unlink", "replace", "mkdir")
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")  # must not raise
    assert minter.count == 2


def test_a_lock_directory_does_not_fail_8_processes(live, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    key = EshopboxHook().get_config().cache_key
    store = FileTokenStore(tmp_path / "shared")
    store._paths(key)[1].mkdir()
    _run_processes(live.connection_json(), store.directory)  # asserts every process exits 0
    assert live.exchanges() == 8  # each fell back to its own process cache


GARBAGE = {
    "not an object": b"[]",
    "nested too deep": b"[" * 60_000,
    "truncated": entry()[:-3],
    "not utf-8": b"\xff\xfe" + entry(),
    "another key": entry(key="conn:other"),
    "infinite expiry": entry(expires_at=float("inf")),
    "empty token": entry(access_token=""),
    "oversized": entry() + b" " * (1 << 20),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
async def test_a_garbage_token_file_is_replaced_not_used(data, cache_dir, caplog):
    store = FileTokenStore(cache_dir)
    plant(paths(store)[0], data)
    mint = Minter()
    cache = TokenCache(store, mint.clock)
    token = await cache.aget(KEY, mint)
    assert token.access_token == f"{TOKEN_PREFIX}minted-1" and mint.count == 1
    assert store.read(KEY) == token  # the shared level still works
    assert not disable_warnings(caplog)


@pytest.mark.parametrize(("uid", "mode"), [(54321, 0o600), (os.getuid(), 0o644)], ids=["foreign", "0644"])
async def test_a_foreign_or_readable_token_file_is_ignored_and_replaced(uid, mode, cache_dir):
    store = FileTokenStore(cache_dir)
    plant(paths(store)[0], entry(), mode)
    os.chown(paths(store)[0], uid, uid)
    mint = Minter()
    assert (await TokenCache(store, mint.clock).aget(KEY, mint)).access_token != PLANTED
    assert store.read(KEY).access_token == f"{TOKEN_PREFIX}minted-1"


def test_no_usable_temp_dir_does_not_fail_the_store(monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)

    def no_temp_dir() -> str:
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")

    with monkeypatch.context() as patched:  # undone at once: pytest itself needs a temp dir
        patched.setattr(tempfile, "gettempdir", no_temp_dir)
        store = FileTokenStore()
    assert store.directory.name == f"airflow-provider-eshopbox-{os.getuid()}"
