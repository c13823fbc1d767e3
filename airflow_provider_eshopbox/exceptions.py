"""Typed errors of the Eshopbox provider; messages name the field/endpoint, never a secret."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTerminated


class EshopboxError(Exception):
    """Base class of every error this provider raises."""


class EshopboxConfigError(EshopboxError, AirflowFailException):
    """A connection or argument is invalid; raised before any network call. Retrying cannot fix a
    typo, so the task fails at once (``AirflowFailException``)."""

    def __init__(self, message: str, *, field: str | None = None, conn_id: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.conn_id = conn_id


class EshopboxAuthError(EshopboxError):
    """Credentials were rejected or the token endpoint replied with something unusable."""


class EshopboxCredentialsRejectedError(EshopboxAuthError, AirflowFailException):
    """The token endpoint refused the connection's credentials (``invalid_client``, ``invalid_grant``,
    HTTP 400/401/403): the same credentials will be refused on every retry, so no retry is made."""


class EshopboxApiError(EshopboxError):
    """The API answered with an error (or not at all); carries status, endpoint and server message."""

    def __init__(self, status: int | None, endpoint: str, message: str, *, details: Any = None) -> None:
        self.status = status
        self.endpoint = endpoint
        self.message = message
        self.details = details  # parsed error body (server data, never request headers)
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{endpoint}: {where}: {message}")


class EshopboxAmbiguousWriteError(EshopboxApiError):
    """A non-idempotent request may or may not have been applied (timeout, 5xx, dropped connection)."""


class EshopboxRejectedWriteError(EshopboxApiError):
    """Eshopbox answered a write with 2xx but said it failed (``{"status": "FAILED", ...}``), and a GET
    confirmed nothing was stored: a verdict on the request, like a 4xx."""


class EshopboxIncompleteReadError(EshopboxError):
    """A window could not be read exactly (rows beyond the search cap, or never stable); nothing written."""


class EshopboxDataError(EshopboxError, AirflowFailException):
    """A row's value does not fit the column its stream declares (schemas.py) in a typed format: the
    same rows fail the same way on a retry, so the task fails at once; nothing is written."""


class EshopboxDeadlineError(EshopboxError):
    """The caller's deadline (a sensor's timeout, say) passed before Eshopbox answered."""


class EshopboxContractError(EshopboxError, AirflowFailException):
    """The server broke an ``api.py`` ASSUMPTION (paging, filters, envelope, keys): no retry can heal it,
    so the task fails at once (``AirflowFailException``) and nothing is written at the destination.

    ``endpoint`` is the route, ``assumption`` the name of the ASSUMPTION in ``api.py`` (e.g.
    ``ORDERS_WINDOW_FILTER``), ``seen`` what the server did, in words a user can check.
    """

    def __init__(self, endpoint: str, assumption: str, seen: str, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        self.assumption = assumption
        self.seen = seen
        self.hint = hint
        probe = " Run `python -m airflow_provider_eshopbox.probe` against this workspace."
        tail = f" {hint}" if hint else probe
        super().__init__(
            f"{endpoint}: the server does not behave as api.py assumes ({assumption}): {seen}. "
            f"Nothing was written.{tail}"
        )


class EshopboxTaskStopped(AirflowTaskTerminated):
    """Airflow asked the task to stop (SIGTERM, hence ``on_kill``) while it ran. A BaseException, like
    Airflow's own ``AirflowTaskTerminated``, so that no ``except Exception`` on the way (a retry loop)
    can swallow it; the task fails at once and cleans up as it unwinds."""
