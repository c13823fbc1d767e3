"""The sync face of the async hook: coroutines run on one private event-loop thread per process.

The hook is written once, async; its sync methods hand their coroutine to this loop and wait. One
long-lived loop (not ``asyncio.run`` per call) keeps HTTP connections pooled between calls.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_guard = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def _private_loop() -> asyncio.AbstractEventLoop:
    """The process's private loop, started on first use (and again in a forked child)."""
    global _loop, _pid
    with _guard:
        if _loop is None or _pid != os.getpid():
            _loop, _pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="eshopbox-hook-loop", daemon=True).start()
        return _loop


def on_private_loop() -> bool:
    """Whether the running coroutine runs on the private loop (not on a caller's, e.g. a triggerer's)."""
    try:
        return asyncio.get_running_loop() is _loop and _pid == os.getpid()
    except RuntimeError:
        return False


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the private loop and return its result; interrupting the wait cancels it."""
    future = asyncio.run_coroutine_threadsafe(coro, _private_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # e.g. the task was killed while waiting: stop the request too
        raise


def run_private(coro: Coroutine[Any, Any, None]) -> None:
    """Run a clean-up coroutine on the private loop if it was started in this process; else drop it."""
    if _loop is None or _pid != os.getpid() or on_private_loop():
        coro.close()
        return
    run_sync(coro)


async def arun_private(coro: Coroutine[Any, Any, None]) -> None:
    """``run_private`` for a caller on another event loop: waits without blocking that loop."""
    if _loop is None or _pid != os.getpid() or on_private_loop():
        coro.close()
        return
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, _loop))
