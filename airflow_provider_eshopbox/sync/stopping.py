"""``on_kill`` for every Eshopbox operator: a SIGTERM stops the read and removes the temporary.

Airflow 3.3's task runner does not turn SIGTERM into an error: its handler calls the operator's
``on_kill`` (in the main thread, between two bytecodes of whatever ``execute`` was doing) and, if
that returns, the task goes on to the end, or until the supervisor's SIGKILL. So ``on_kill`` raises
``EshopboxTaskStopped`` there: the read unwinds (``asyncio.run`` cancels the requests in flight),
and ``destination.atomic_open`` aborts the upload and removes the temporary on the way out.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


class EshopboxStopOnKillMixin:
    """Stop a running ``execute`` from ``on_kill`` (mix in before ``BaseOperator``)."""

    _executing_thread: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute):
            cls.execute = _tracking(execute)  # type: ignore[method-assign]

    def on_kill(self) -> None:
        """Raise into ``execute`` when called on the thread running it (the task runner's SIGTERM
        handler); otherwise there is nothing to stop: ``execute`` has already cleaned up and ended."""
        from airflow_provider_eshopbox.exceptions import EshopboxTaskStopped

        if self._executing_thread == threading.get_ident():
            self._executing_thread = None  # once: a second SIGTERM must not interrupt the clean-up
            raise EshopboxTaskStopped(
                f"{getattr(self, 'task_id', 'the task')} was asked to stop (SIGTERM): the read was stopped "
                "and its unfinished output removed, so each destination holds what it held before "
                "(or this run's complete file, if it had just been moved into place); re-run the task"
            )


def _tracking(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` that records the thread running it while it runs, for ``on_kill``."""

    @functools.wraps(execute)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._executing_thread = threading.get_ident()
        try:
            return execute(self, *args, **kwargs)
        finally:
            self._executing_thread = None

    return wrapper
