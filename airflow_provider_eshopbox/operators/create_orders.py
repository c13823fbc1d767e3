"""EshopboxCreateOrdersOperator: push channel orders to Eshopbox, idempotently, with a rejects file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook


@dataclass
class _Outcome:
    created: int = 0
    existing: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)


class EshopboxCreateOrdersOperator(BaseOperator):
    """Create every order of ``source`` in Eshopbox; a row that cannot be created goes to ``rejects``.

    Every order is first checked locally against the documented required fields (see
    ``order_validation``); a bad row is rejected with its reasons and never sent. The valid orders are
    posted ``max_concurrency`` at a time within the connection's rate limit. Creation is idempotent
    (the hook resolves a duplicate 422 or an unknown outcome with a GET of the customerOrderNumber),
    so an order that already exists counts as ``existing`` and a re-run of the same input creates
    nothing new. An order the API refuses (after retries) is rejected with the server's message.

    A ``customerOrderNumber`` that appears more than once in the input is claimed by its first
    occurrence; every later row with that number is rejected (``duplicate customerOrderNumber``),
    whether or not the first one is valid, since it is not clear which version is meant.

    ``rejects`` is always written (empty when nothing was rejected), atomically, as JSON Lines sorted
    by row: ``{"row": <0-based index of the order in the input>, "customerOrderNumber": ...,
    "reasons": [...], "order": <the row as read>}``. Blank lines of a JSON Lines source are skipped
    and do not count as rows. The task fails (AirflowFailException) when more than ``max_rejected``
    rows were rejected, after the rejects file is written and every valid order was pushed.

    :param source: JSON Lines URL or ``ObjectStoragePath`` (``.gz`` suffix: gzip), or a list of order
        dicts. Templated.
    :param rejects: object-storage URL or ``ObjectStoragePath`` of the rejects file. Templated.
    :param max_rejected: rejected rows tolerated before the task fails (int or digit string). Templated.
    :param max_concurrency: create requests in flight at once (1-64).
    :param eshopbox_conn_id: the Eshopbox connection.
    """

    template_fields: Sequence[str] = ("source", "rejects", "max_rejected")
    ui_color = "#fff4e8"

    def __init__(
        self,
        *,
        source: str | ObjectStoragePath | list[dict[str, Any]],
        rejects: str | ObjectStoragePath,
        max_rejected: int | str = 0,
        max_concurrency: int = 8,
        eshopbox_conn_id: str = "eshopbox_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.rejects = rejects
        self.max_rejected = max_rejected
        self.max_concurrency = max_concurrency
        self.eshopbox_conn_id = eshopbox_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import json
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
        from airflow_provider_eshopbox.order_validation import order_number, validate_order
        from airflow_provider_eshopbox.sync.arguments import check_max_concurrency
        from airflow_provider_eshopbox.sync.outlets import attach_to_outlet_events
        from airflow_provider_eshopbox.sync.storage import atomic_open, resolve_destination

        # Everything local is checked before the first request.
        max_rejected = _non_negative_int(self.max_rejected, "max_rejected")
        check_max_concurrency(self.max_concurrency)
        rejects_path = resolve_destination(self.rejects, field="rejects")
        rows = _read_source(self.source)
        hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        config = hook.get_config()

        started = time.monotonic()
        outcome = _Outcome()
        to_create: list[tuple[int, dict[str, Any]]] = []
        first_row: dict[str, int] = {}
        for index, order in enumerate(rows):
            number = order_number(order)
            reasons = (
                [order.reason]
                if isinstance(order, _Unparseable)
                else validate_order(order, default_external_channel_id=config.external_channel_id)
            )
            if number is not None:
                if number in first_row:
                    first = first_row[number]
                    reasons.append(
                        f"duplicate customerOrderNumber {number!r} in this input (first at row {first})"
                    )
                else:
                    first_row[number] = index
            if reasons:
                outcome.rejects.append(_reject(index, order, reasons))
            else:
                to_create.append((index, order))
        self.log.info(
            "%d orders read from the source: %d pass local validation, %d rejected before any request; "
            "pushing with up to %d requests in flight",
            len(rows),
            len(to_create),
            len(outcome.rejects),
            self.max_concurrency,
        )
        asyncio.run(self._push(hook, to_create, outcome))

        outcome.rejects.sort(key=lambda entry: entry["row"])
        with atomic_open(rejects_path) as out:
            for entry in outcome.rejects:
                out.write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        manifest = {
            "created": outcome.created,
            "existing": outcome.existing,
            "rejected": len(outcome.rejects),
            "rejects_path": str(rejects_path),
        }
        self.log.info(
            "Orders: %d created, %d already existed, %d rejected (written to %s) in %.1f s",
            outcome.created,
            outcome.existing,
            len(outcome.rejects),
            rejects_path,
            time.monotonic() - started,
        )
        if len(outcome.rejects) > max_rejected:
            raise AirflowFailException(
                f"{len(outcome.rejects)} of {len(rows)} orders were rejected (max_rejected={max_rejected}); "
                f"{outcome.created} created, {outcome.existing} already existed; "
                f"reasons are in {rejects_path}"
            )
        attach_to_outlet_events(self, context, manifest)
        return manifest

    async def _push(
        self, hook: EshopboxHook, orders: list[tuple[int, dict[str, Any]]], outcome: _Outcome
    ) -> None:
        import asyncio

        from airflow_provider_eshopbox.exceptions import EshopboxApiError
        from airflow_provider_eshopbox.sync.progress import ProgressLog

        progress = ProgressLog(self.log, "orders pushed")
        gate = asyncio.Semaphore(self.max_concurrency)
        done = 0

        async def push_one(index: int, order: dict[str, Any]) -> None:
            nonlocal done
            async with gate:
                try:
                    result = await hook.acreate_order(order)
                except EshopboxApiError as exc:
                    if not _is_refusal(exc):
                        # Retries ran out on an outage (5xx, 429, no answer): a verdict on Eshopbox, not
                        # on this order. Stop the whole push instead of rejecting every valid order.
                        raise
                    # The hook retried and resolved ambiguity already: this order was not created.
                    self.log.warning("Order %r rejected by Eshopbox: %s", order["customerOrderNumber"], exc)
                    outcome.rejects.append(_reject(index, order, [_api_reason(exc)]))
                else:
                    if result.status == "created":
                        outcome.created += 1
                    else:
                        outcome.existing += 1
            done += 1
            progress.update(
                done,
                created=outcome.created,
                existing=outcome.existing,
                rejected=len(outcome.rejects),
            )

        try:
            if orders:
                tasks = [asyncio.ensure_future(push_one(index, order)) for index, order in orders]
                # The first outage cancels the other pushes (an order cut mid-POST is resolved by GET
                # on the re-run, never created twice).
                _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                failed = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
                if failed:
                    first = failed[0]
                    if not isinstance(first, EshopboxApiError):
                        raise first
                    raise EshopboxApiError(
                        first.status,
                        first.endpoint,
                        f"{first.message}; push stopped with {outcome.created} created and "
                        f"{outcome.existing} existing of {len(orders)} valid orders, no rejects file "
                        "written; re-run to resume (creation is idempotent)",
                        details=first.details,
                    ) from first
        finally:
            await hook.aclose()
        rejected = len(outcome.rejects)
        progress.update(
            done, force=True, created=outcome.created, existing=outcome.existing, rejected=rejected
        )


@dataclass(frozen=True)
class _Unparseable:
    """A source line that is not a JSON object; kept so it can be rejected with its text."""

    text: str
    reason: str


def _reject(index: int, order: Any, reasons: list[str]) -> dict[str, Any]:
    from airflow_provider_eshopbox.order_validation import order_number

    if isinstance(order, _Unparseable):
        return {"row": index, "customerOrderNumber": None, "reasons": reasons, "order": order.text}
    number = order.get("customerOrderNumber") if isinstance(order, dict) else None
    return {
        "row": index,
        "customerOrderNumber": order_number(order) or number,
        "reasons": reasons,
        "order": order,
    }


def _is_refusal(exc: Exception) -> bool:
    """A 4xx verdict on the order itself (not a timeout, a rate limit, or a server or network failure)."""
    from airflow_provider_eshopbox.exceptions import EshopboxApiError

    status = exc.status if isinstance(exc, EshopboxApiError) else None
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _api_reason(exc: Exception) -> str:
    from airflow_provider_eshopbox.exceptions import EshopboxApiError

    if isinstance(exc, EshopboxApiError):
        status = f"HTTP {exc.status}" if exc.status is not None else "no response"
        return f"Eshopbox refused the order ({status}): {exc.message}"
    return str(exc)


def _non_negative_int(value: Any, name: str) -> int:
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise EshopboxConfigError(f"{name} must be a non-negative integer, got {value!r}", field=name)


def _read_source(source: Any) -> list[Any]:
    """The input rows: a list of dicts as given, or the lines of a JSON Lines file (gzip by suffix)."""
    import gzip
    import json

    from airflow_provider_eshopbox.exceptions import EshopboxConfigError
    from airflow_provider_eshopbox.sync.storage import is_gzip, resolve_destination

    if isinstance(source, (list, tuple)):
        return list(source)
    path = resolve_destination(source, field="source")
    if not path.exists():
        raise EshopboxConfigError(f"source={str(path)!r} does not exist", field="source")
    with path.open("rb") as raw:
        data = gzip.decompress(raw.read()) if is_gzip(path) else raw.read()
    rows: list[Any] = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError as exc:
            rows.append(_Unparseable(line, f"line {number} is not valid JSON: {exc}"))
            continue
        if not isinstance(parsed, dict):
            rows.append(_Unparseable(line, f"line {number} is not a JSON object"))
            continue
        rows.append(parsed)
    return rows
