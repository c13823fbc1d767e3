"""Checks of operator arguments that several operators share; each raises before any network call."""

from __future__ import annotations

from typing import Any

from airflow_provider_eshopbox.exceptions import EshopboxConfigError

MAX_CONCURRENCY_LIMIT = 64


def check_max_concurrency(value: Any) -> int:
    """``max_concurrency`` as an int from 1 to MAX_CONCURRENCY_LIMIT, or a clear error."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise EshopboxConfigError(
            f"max_concurrency must be an integer from 1 to {MAX_CONCURRENCY_LIMIT}, got {value!r}",
            field="max_concurrency",
        )
    return value


def check_choice(value: Any, choices: tuple[str, ...], field: str) -> str:
    """``value`` if it is one of ``choices``, else an error naming the field and the choices."""
    if value not in choices:
        raise EshopboxConfigError(f"{field} must be one of {', '.join(choices)}, got {value!r}", field=field)
    return value


def pace(max_concurrency: int, max_requests_per_second: float | None) -> str:
    """The limits a sync runs under, for its start line: the connection's rate limit when one is set
    (it, not the concurrency, then bounds the pace), and the requests allowed in flight."""
    if max_requests_per_second:
        return (
            f"at most {max_requests_per_second:g} requests/s (the connection's Max requests per second), "
            f"up to {max_concurrency} in flight"
        )
    return f"up to {max_concurrency} requests in flight, at the rate the server allows (no limit set)"
