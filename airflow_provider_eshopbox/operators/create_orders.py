"""EshopboxCreateOrdersOperator: push channel orders to Eshopbox, idempotently, with a rejects file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_eshopbox.lineage import EshopboxLineageMixin
from airflow_provider_eshopbox.sync.stopping import EshopboxStopOnKillMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook


@dataclass
class _Outcome:
    created: int = 0
    existing: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "existing": self.existing,
            "rejected": len(self.rejects),
            "ambiguous": len(self.ambiguous),
        }

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.existing} already existed, "
            f"{len(self.rejects)} rejected, {len(self.ambiguous)} ambiguous"
        )


class EshopboxCreateOrdersOperator(EshopboxStopOnKillMixin, EshopboxLineageMixin, BaseOperator):
    """Create every order of ``source`` in Eshopbox; a row that cannot be created goes to ``rejects``.

    Every order is first checked locally against the documented required fields (see
    ``order_validation``); a bad row is rejected with its reasons and never sent. The valid orders are
    posted ``max_concurrency`` at a time within the connection's rate limit. Creation is idempotent
    (the hook resolves a duplicate 422 or an unknown outcome with a GET of the customerOrderNumber),
    so an order that already exists counts as ``existing`` and a re-run of the same input creates
    nothing new. An order the API refuses (after retries) is rejected with the server's message.

    A ``customerOrderNumber`` that appears more than once in the input is claimed by its first
    occurrence; every later row with that number is rejected (``duplicate customerOrderNumber``),
    whether or not the first one is valid, since it is not clear which version is meant. Numbers that
    differ only in case, spacing, invisible characters or Unicode form ("SHOP-1", "shop-1") are
    look-alikes: *every* row of such a group is rejected and none is sent, because whether Eshopbox
    compares numbers exactly is not documented, and sending more than one could create one order
    twice while sending one would be a guess at which spelling is right. A number with leading or
    trailing whitespace or control characters is rejected too.

    **Ambiguous orders.** When Eshopbox cannot say whether an order exists (a create had an unknown
    outcome, or said "already taken", and GET kept answering 404 for as long as the hook re-checked:
    ``EshopboxAmbiguousWriteError``), the order is neither created, existing nor rejected: it is
    written to ``ambiguous`` and counted as ``ambiguous``. Do not re-key such orders by hand (that
    could create them twice); re-run the task, which is safe because creation is idempotent. Any
    ambiguous order fails the task (after every order was processed and both files were written)
    with a retryable error: a success must mean every valid order is confirmed in Eshopbox, and
    Airflow's own retries then usually resolve them.

    ``rejects`` and ``ambiguous`` are always written (empty when there is nothing), atomically, as
    JSON Lines sorted by row: ``{"row": <0-based index of the order in the input>,
    "customerOrderNumber": ..., "reasons": [...], "order": <the row as read>}``. ``source`` is read
    as UTF-8 JSON Lines: lines end at ``\\n`` (``\\r\\n`` is tolerated; U+2028 and other Unicode
    separators are text), a leading UTF-8 BOM is ignored, and blank lines are skipped and do not count
    as rows. The task fails (AirflowFailException) when more than ``max_rejected`` rows were rejected,
    after both files are written and every valid order was pushed. When the task fails for rejects or
    ambiguous orders, the manifest is still pushed to XCom.

    XCom (``return_value``): ``{"created", "existing", "rejected", "ambiguous", "rejects_path",
    "ambiguous_path"}``.

    :param source: JSON Lines URL or ``ObjectStoragePath`` (``.gz`` suffix: gzip), or a list of order
        dicts. Templated.
    :param rejects: object-storage URL or ``ObjectStoragePath`` of the rejects file. Templated.
    :param ambiguous: where to write the ambiguous orders; default: beside ``rejects``, named
        ``<rejects name>.ambiguous.<suffixes>`` (``rejects.jsonl.gz`` -> ``rejects.ambiguous.jsonl.gz``).
        Templated. ``source``, ``rejects`` and ``ambiguous`` must be three different files.
    :param max_rejected: rejected rows tolerated before the task fails (int or digit string). Templated.
    :param max_concurrency: create requests in flight at once (1-64).
    :param eshopbox_conn_id: the Eshopbox connection. Templated (e.g. ``"{{ params.conn_id }}"``).
    """

    template_fields: Sequence[str] = (
        "source",
        "rejects",
        "ambiguous",
        "max_rejected",
        "eshopbox_conn_id",
    )
    ui_color = "#fff4e8"

    def __init__(
        self,
        *,
        source: str | ObjectStoragePath | list[dict[str, Any]],
        rejects: str | ObjectStoragePath,
        ambiguous: str | ObjectStoragePath | None = None,
        max_rejected: int | str = 0,
        max_concurrency: int = 8,
        eshopbox_conn_id: str = "eshopbox_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.rejects = rejects
        self.ambiguous = ambiguous
        self.max_rejected = max_rejected
        self.max_concurrency = max_concurrency
        self.eshopbox_conn_id = eshopbox_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from airflow_provider_eshopbox.exceptions import EshopboxError
        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
        from airflow_provider_eshopbox.sync.arguments import check_max_concurrency, pace
        from airflow_provider_eshopbox.sync.outlets import attach_to_outlet_events

        # Everything local is checked before the first request.
        max_rejected = _non_negative_int(self.max_rejected, "max_rejected")
        check_max_concurrency(self.max_concurrency)
        source_path, rejects_path, ambiguous_path = self._resolve_paths()
        rows = list(self.source) if source_path is None else _read_source(source_path)
        hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        config = hook.get_config()

        started = time.monotonic()
        outcome = _Outcome()
        to_create = _check_rows(rows, config.external_channel_id, outcome)
        self.log.info(
            "%d orders read from the source: %d pass local validation, %d rejected before any request; "
            "pushing %s",
            len(rows),
            len(to_create),
            len(outcome.rejects),
            pace(self.max_concurrency, config.max_requests_per_second),
        )
        asyncio.run(self._push(hook, to_create, outcome))

        _write_entries(rejects_path, outcome.rejects)
        _write_entries(ambiguous_path, outcome.ambiguous)
        manifest = {
            **outcome.counts(),
            "rejects_path": str(rejects_path),
            "ambiguous_path": str(ambiguous_path),
        }
        self.log.info(
            "Orders: %s (rejects in %s, ambiguous in %s) in %.1f s",
            outcome.summary(),
            rejects_path,
            ambiguous_path,
            time.monotonic() - started,
        )
        unconfirmed = (
            f"{len(outcome.ambiguous)} of {len(to_create)} valid orders could not be confirmed by Eshopbox "
            "and may or may not exist; "
            f"they are listed in {ambiguous_path}. Do not re-key them by hand (that could create them "
            "twice): re-run this task, which is safe because creation is idempotent (an existing "
            "order is never created again)"
        )
        if len(outcome.rejects) > max_rejected:
            _push_manifest(context, manifest)
            raise AirflowFailException(
                f"{len(outcome.rejects)} of {len(rows)} orders were rejected (max_rejected={max_rejected}); "
                f"{outcome.summary()}; reasons are in {rejects_path}"
                + (f". {unconfirmed}" if outcome.ambiguous else "")
            )
        if outcome.ambiguous:
            # Retryable on purpose: Airflow's own retries re-run the push once Eshopbox has caught up.
            _push_manifest(context, manifest)
            raise EshopboxError(f"{unconfirmed}. {outcome.summary()}")
        attach_to_outlet_events(self, context, manifest)
        return manifest

    def _resolve_paths(self) -> tuple[ObjectStoragePath | None, ObjectStoragePath, ObjectStoragePath]:
        """``source`` (None for a list of orders), ``rejects`` and ``ambiguous``: three different files."""
        from airflow_provider_eshopbox.sync.destination import check_writable, resolve_destination

        rejects_path = resolve_destination(self.rejects, field="rejects")
        if self.ambiguous is None or (isinstance(self.ambiguous, str) and not self.ambiguous.strip()):
            ambiguous_path = _beside(rejects_path, "ambiguous")
        else:
            ambiguous_path = resolve_destination(self.ambiguous, field="ambiguous")
        source_path = (
            None
            if isinstance(self.source, (list, tuple))
            else resolve_destination(self.source, field="source")
        )
        _refuse_aliases(
            [
                ("source", source_path),
                ("rejects", rejects_path),
                ("ambiguous" if self.ambiguous else "ambiguous (derived from rejects)", ambiguous_path),
            ]
        )
        check_writable(rejects_path, field="rejects")
        check_writable(ambiguous_path, field="ambiguous")
        return source_path, rejects_path, ambiguous_path

    async def _push(
        self, hook: EshopboxHook, orders: list[tuple[int, dict[str, Any]]], outcome: _Outcome
    ) -> None:
        import asyncio

        from airflow_provider_eshopbox.concurrency import run_all
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
                    if _is_ambiguous(exc):
                        # Eshopbox cannot say whether it exists: neither a reject nor a reason to stop.
                        self.log.warning(
                            "Order %r may or may not exist in Eshopbox (%s); listed as ambiguous",
                            order["customerOrderNumber"],
                            exc,
                        )
                        outcome.ambiguous.append(
                            _reject(
                                index, order, [f"Eshopbox could not confirm whether this order exists: {exc}"]
                            )
                        )
                    elif not _is_refusal(exc):
                        # Retries ran out on an outage (5xx, 429, no answer): a verdict on Eshopbox, not
                        # on this order. Stop the whole push instead of rejecting every valid order.
                        raise
                    else:
                        # The hook retried and resolved ambiguity already: this order was not created.
                        self.log.warning(
                            "Order %r rejected by Eshopbox: %s", order["customerOrderNumber"], exc
                        )
                        outcome.rejects.append(_reject(index, order, [_api_reason(exc)]))
                else:
                    if result.status == "created":
                        outcome.created += 1
                    else:
                        outcome.existing += 1
            done += 1
            progress.update(done, **outcome.counts())

        try:
            if orders:
                # The first outage cancels the other pushes (an order cut mid-POST is resolved by GET
                # on the re-run, never created twice).
                try:
                    await run_all(push_one(index, order) for index, order in orders)
                except EshopboxApiError as first:
                    raise EshopboxApiError(
                        first.status,
                        first.endpoint,
                        f"{first.message}; push stopped with {outcome.created} created, "
                        f"{outcome.existing} existing and {len(outcome.ambiguous)} unconfirmed of "
                        f"{len(orders)} valid orders, no rejects or ambiguous file written; re-run to "
                        "resume (creation is idempotent)",
                        details=first.details,
                    ) from first
        finally:
            await hook.aclose()
        progress.update(done, force=True, **outcome.counts())


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
    """A 4xx verdict on the order itself (not a timeout, a rate limit, or a server or network failure),
    or a 2xx that said it failed and a GET confirmed (``EshopboxRejectedWriteError``)."""
    from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxRejectedWriteError

    if isinstance(exc, EshopboxRejectedWriteError):
        return True
    status = exc.status if isinstance(exc, EshopboxApiError) else None
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _api_reason(exc: Exception) -> str:
    from airflow_provider_eshopbox.exceptions import EshopboxApiError

    if isinstance(exc, EshopboxApiError):
        status = f"HTTP {exc.status}" if exc.status is not None else "no response"
        return f"Eshopbox refused the order ({status}): {exc.message}"
    return str(exc)


def _is_ambiguous(exc: Exception) -> bool:
    """Eshopbox cannot say whether the order exists: the hook's ``EshopboxAmbiguousWriteError``, or a
    "customerOrderNumber already taken" 422 that no GET could confirm (never a refusal of the order)."""
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.exceptions import EshopboxAmbiguousWriteError, EshopboxApiError

    if isinstance(exc, EshopboxAmbiguousWriteError):
        return True
    return any(
        isinstance(error, EshopboxApiError) and api.is_duplicate_order_error(error.status, error.details)
        for error in (exc, exc.__cause__)
    )


def _check_rows(
    rows: list[Any], default_channel: str | None, outcome: _Outcome
) -> list[tuple[int, dict[str, Any]]]:
    """The rows to send; every other row goes to ``outcome.rejects`` with its reasons."""
    from airflow_provider_eshopbox.order_validation import lookalike_key, order_number, validate_order

    numbers = [order_number(order) for order in rows]
    groups: dict[str, list[int]] = {}
    for index, number in enumerate(numbers):
        if number is not None:
            groups.setdefault(lookalike_key(number), []).append(index)
    to_create: list[tuple[int, dict[str, Any]]] = []
    for index, order in enumerate(rows):
        reasons = (
            [order.reason]
            if isinstance(order, _Unparseable)
            else validate_order(order, default_external_channel_id=default_channel)
        )
        number = numbers[index]
        if number is not None:
            group = groups[lookalike_key(number)]
            if len({numbers[i] for i in group}) > 1:
                others = [f"{numbers[i]!r} (row {i})" for i in group if i != index]
                shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                reasons.append(
                    f"customerOrderNumber {number!r} differs only in case, spacing or Unicode form from "
                    f"{shown} in this input; Eshopbox may take them for one order, so none of them is "
                    "sent: keep one row, or make the numbers really distinct"
                )
            elif group[0] != index:
                reasons.append(
                    f"duplicate customerOrderNumber {number!r} in this input (first at row {group[0]})"
                )
        if reasons:
            outcome.rejects.append(_reject(index, order, reasons))
        else:
            to_create.append((index, order))
    return to_create


def _entry_line(entry: dict[str, Any]) -> bytes:
    """One rejects/ambiguous line; an order holding what JSON cannot (NaN, a datetime, an unpaired
    surrogate: possible in a list source) is written as its repr instead of failing the task."""
    import json

    try:
        text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8") + b"\n"
    except (TypeError, ValueError):
        safe = dict(entry, order=repr(entry["order"]))
        return json.dumps(safe, separators=(",", ":"), default=repr).encode("ascii") + b"\n"


def _write_entries(path: ObjectStoragePath, entries: list[dict[str, Any]]) -> None:
    """Write ``entries`` sorted by row, atomically, as JSON Lines (gzip by suffix)."""
    from airflow_provider_eshopbox.sync.destination import atomic_open

    with atomic_open(path) as out:
        for entry in sorted(entries, key=lambda item: item["row"]):
            out.write(_entry_line(entry))


def _push_manifest(context: Context, manifest: dict[str, Any]) -> None:
    """Leave the manifest in XCom when the task is about to fail (a returned value would be lost)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None:
        ti.xcom_push(key="return_value", value=manifest)


_SUFFIXES = (".gz", ".gzip", ".jsonl", ".ndjson", ".json", ".txt")


def _beside(path: ObjectStoragePath, tag: str) -> ObjectStoragePath:
    """``dir/rejects.jsonl.gz`` -> ``dir/rejects.<tag>.jsonl.gz``: a sibling file keeping the suffixes."""
    stem, suffixes = path.name, ""
    while stem.lower().endswith(_SUFFIXES) and "." in stem[1:]:
        cut = stem.rindex(".")
        stem, suffixes = stem[:cut], stem[cut:] + suffixes
    return path.parent / f"{stem}.{tag}{suffixes}"


def _location(path: ObjectStoragePath) -> tuple[str, str]:
    """What identifies the object ``path`` names: the protocol and its normalised (local: real) path."""
    import os
    import posixpath

    protocol = path.protocol or "file"
    if protocol in ("file", "local"):
        return "file", os.path.normcase(os.path.realpath(path.path))
    return protocol, posixpath.normpath(path.path.lstrip("/"))


def _refuse_aliases(paths: list[tuple[str, ObjectStoragePath | None]]) -> None:
    """Fail when two of the file arguments name one file (an output would overwrite the input or another)."""
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    seen: dict[tuple[str, str], tuple[str, ObjectStoragePath]] = {}
    for name, path in paths:
        if path is None:
            continue
        key = _location(path)
        if key in seen:
            other, other_path = seen[key]
            raise EshopboxConfigError(
                f"{name}={str(path)!r} is the same file as {other}={str(other_path)!r}: "
                f"writing {name} would overwrite it; give {name} a path of its own",
                field=name.split()[0],
            )
        seen[key] = (name, path)


def _non_negative_int(value: Any, name: str) -> int:
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise EshopboxConfigError(f"{name} must be a non-negative integer, got {value!r}", field=name)


_BOM = b"\xef\xbb\xbf"


def _source_error(path: ObjectStoragePath, problem: str) -> Exception:
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    return EshopboxConfigError(f"source={str(path)!r} {problem}", field="source")


def _read_bytes(path: ObjectStoragePath) -> bytes:
    """The source's bytes, gunzipped when its name ends in .gz; unreadable input as EshopboxConfigError."""
    import gzip
    import zlib

    from airflow_provider_eshopbox.sync.destination import is_gzip

    if path.is_dir():
        raise _source_error(
            path, "is a directory: name the JSON Lines file inside it (e.g. .../orders.jsonl)"
        )
    if not path.exists():
        raise _source_error(path, "does not exist")
    try:
        with path.open("rb") as raw:
            data = raw.read()
    except IsADirectoryError:
        raise _source_error(
            path, "is a directory: name the JSON Lines file inside it (e.g. .../orders.jsonl)"
        ) from None
    except PermissionError as exc:
        raise _source_error(path, f"cannot be read ({exc.strerror}): check its permissions") from None
    if not is_gzip(path):
        return data
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _source_error(
            path,
            f"ends in .gz but is not a complete gzip file ({type(exc).__name__}: {exc}): compress it with "
            "gzip, or drop the .gz suffix if it is plain JSON Lines",
        ) from None


def _decode(path: ObjectStoragePath, data: bytes) -> str:
    """UTF-8 text of the source without a leading BOM; anything else as EshopboxConfigError."""
    try:
        return data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(_BOM) if data.startswith(_BOM) else 0)
        line = data.count(b"\n", 0, offset) + 1
        if data.startswith(b"\x1f\x8b"):
            hint = "it looks gzip-compressed: give it a .gz suffix"
        elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = "it looks UTF-16: re-export it as UTF-8"
        else:
            hint = "re-export it as UTF-8 (JSON Lines must be UTF-8)"
        raise _source_error(
            path, f"is not UTF-8 text (byte 0x{data[offset]:02x} on line {line}): {hint}"
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_source(path: ObjectStoragePath) -> list[Any]:
    """The rows of a JSON Lines file (gzip by suffix); a line that is not a JSON object is kept as
    ``_Unparseable`` so it can be rejected. Lines end at ``\\n`` only (``\\r\\n`` tolerated): the
    Unicode separators ``str.splitlines`` also breaks at are legal inside JSON strings."""
    import json

    text = _decode(path, _read_bytes(path))
    rows: list[Any] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip(" \t\r"):  # JSON's own whitespace; anything else is a line to reject
            continue
        try:
            parsed = json.loads(line, parse_constant=_no_constant)
        except ValueError as exc:
            rows.append(_Unparseable(line, f"line {number} is not valid JSON: {exc}"))
            continue
        if not isinstance(parsed, dict):
            rows.append(_Unparseable(line, f"line {number} is not a JSON object"))
            continue
        rows.append(parsed)
    return rows
