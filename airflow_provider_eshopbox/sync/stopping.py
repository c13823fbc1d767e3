"""``on_kill`` for every Eshopbox operator: a SIGTERM stops the read and removes the temporary.

Airflow 3.3's task runner does not turn SIGTERM into an error: its handler calls the operator's
``on_kill`` (in the main thread, between two bytecodes of whatever ``execute`` was doing) and, if
that returns, the task goes on to the end, or until the supervisor's SIGKILL. So ``on_kill`` raises
``EshopboxTaskStopped`` there: the read unwinds (``asyncio.run`` cancels the requests in flight),
and ``destination.atomic_open`` aborts the upload and removes the temporary on the way out.

A raise that lands inside the event loop's own transport code is not ours to keep: asyncio turns it
into a lost connection (httpx then reports a ReadError, which a retry loop handles). So ``on_kill``
also cancels every task of a loop running on that thread, and ``execute`` ends in
``EshopboxTaskStopped`` whatever it was unwinding with once a stop was asked.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any


class EshopboxStopOnKillMixin:
    """Stop a running ``execute`` from ``on_kill`` (mix in before ``BaseOperator``)."""

    _executing_thread: int | None = None
    _stop_asked = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute):
            cls.execute = _tracking(execute)  # type: ignore[method-assign]

    def on_kill(self) -> None:
        """Stop ``execute`` when called on the thread running it (the task runner's SIGTERM handler);
        otherwise there is nothing to stop: ``execute`` has already cleaned up and ended."""
        if self._executing_thread != threading.get_ident():
            return
        self._executing_thread = None  # once: a second SIGTERM must not interrupt the clean-up
        self._stop_asked = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.call_soon_threadsafe(_cancel_all, loop)
        raise _stopped(self)


def _stopped(operator: Any) -> BaseException:
    from airflow_provider_eshopbox.exceptions import EshopboxTaskStopped

    return EshopboxTaskStopped(
        f"{getattr(operator, 'task_id', 'the task')} was asked to stop (SIGTERM): the read was stopped "
        "and its unfinished output removed, so each destination holds what it held before "
        "(or this run's complete file, if it had just been moved into place); re-run the task"
    )


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


def _tracking(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` that records the thread running it while it runs, for ``on_kill``, and ends in
    ``EshopboxTaskStopped`` once a stop was asked, whatever it unwound with."""
    from airflow_provider_eshopbox.exceptions import EshopboxTaskStopped

    @functools.wraps(execute)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._executing_thread = threading.get_ident()
        self._stop_asked = False
        try:
            result = execute(self, *args, **kwargs)
        except EshopboxTaskStopped:
            raise
        except BaseException as exc:
            if self._stop_asked:
                raise _stopped(self) from exc
            raise
        finally:
            self._executing_thread = None
        if self._stop_asked:
            raise _stopped(self)
        return result

    return wrapper
