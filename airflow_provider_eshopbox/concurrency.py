"""Coroutines run together, all or nothing: the first failure cancels the rest before it is raised.

``asyncio.gather`` does not cancel: when one coroutine fails, the others go on. On the hook's
long-lived private loop (``hooks/_loop.py``) they outlive the task's failure, still sending
requests and handing rows to a spool being closed. ``run_all`` waits in an ``asyncio.TaskGroup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

_T = TypeVar("_T")


async def run_all(coroutines: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Their results in order. When one fails, the others are cancelled (and have ended) before its
    error is raised as itself (the first, if several failed), not as an exception group."""
    failed: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as errors:
        failed = errors.exceptions[0]
    if failed is not None:
        raise failed
    return [task.result() for task in tasks]
