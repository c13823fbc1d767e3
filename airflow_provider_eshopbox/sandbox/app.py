"""Starlette routes emulating the three Eshopbox hosts under one origin, plus ``/__sandbox__`` control.

Layout (docs/ARCHITECTURE.md): ``/auth`` token host, ``/ws/{workspace}`` workspace host (ProxyHost
header), ``/wms`` WMS host. Every API request goes through ``_serve``: counted, fault-planned,
authenticated by the handler, and never answered with a traceback.

ASSUMPTIONS (undocumented upstream, see api doc §8):
* orders/erp: ``page`` 1-based, ``page=0`` -> 200 ``{"hasNext": false}`` (no hits, as [T2] saw), ``per_page``
  default 25 / max ``per_page_max``; only the first ``hit_cap`` hits of a query are reachable.
* inventoryListing paging: ``page`` (1-based) + ``perPage`` (default 25, max ``inventory_per_page_max``);
  ESINs in sorted order; a page with fewer than ``perPage`` ESINs is the last (an exact multiple ends
  with an empty ``{}`` page). Each value carries ``sku`` next to the documented keys. ``updatedOn``
  bounds are UTC and inclusive on both sides.
* create order: items need ``sku``; shippingAddress needs customerName, addressLine1, postalCode,
  contactPhone, email; unknown SKUs are accepted. Success is 200 with the §3.2 shape.
* cancel order: unknown ``customerOrderNumber`` -> 422 "The selected ... is invalid."; items are
  matched by orderItemID, lineItemSequenceNumber, itemID or sku; cancelling twice succeeds again.
* token endpoint: missing fields -> 401 invalid_request, bad client -> 401 invalid_client, bad refresh
  token -> 401 invalid_grant, unparseable body -> 400 invalid_request, other grant -> 400.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import responses as R
from .auth import TokenRegistry
from .clock import SandboxClock
from .data import BUCKETS, fmt_ts, to_ms
from .faults import FaultConfig, FaultPlan
from .filters import FilterError, ParsedFilter, parse_filters
from .quirks import QuirkConfig
from .stats import SandboxStats
from .store import SandboxStore
from .streams import stream_routes
from .tls import LOOPBACK_NAMES

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]

Handler = Callable[[Request, FaultPlan], Awaitable[Response]]
_INT_RE = re.compile(r"-?\d+")
_TS_FMT = "%Y-%m-%d %H:%M:%S"
_MISSING = object()
_CREATE_REQUIRED = (
    "externalChannelID",
    "customerOrderNumber",
    "isCOD",
    "paymentType",
    "taxAmount",
    "subtotal",
    "orderTotal",
    "balanceDue",
    "thirdPartyShipping",
    "shippingAddress",
    "billingAddress",
    "items",
)
ORDER_ACTIONS = {"ship": "shipped", "deliver": "delivered", "cancel": "cancelled"}
_ADDRESS_REQUIRED = ("customerName", "addressLine1", "postalCode", "contactPhone", "email")
_CANCEL_REQUIRED = ("externalChannelID", "customerOrderNumber", "reason", "items")


def _blank(value: Any) -> bool:
    """Laravel's ``required``: missing, null, empty string or empty list/object fails."""
    return value is None or value is _MISSING or (isinstance(value, (str, list, dict)) and not value)


def _required(msg_field: str) -> str:
    return f"The {msg_field} field is required."


def _parse_int(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not _INT_RE.fullmatch(raw.strip()):
        raise FilterError(f"{name} must be an integer, got {raw!r}")
    return int(raw)


def project(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Keep only the requested (dotted) keys, nested structure kept; ``objectID`` always included."""
    out: dict[str, Any] = {"objectID": row["objectID"]}
    for path in fields:
        parts = path.split(".")
        value: Any = row
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                value = _MISSING
                break
            value = value[part]
        if value is _MISSING:
            continue
        target = out
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = target[part] = {}
            target = nxt
        target[parts[-1]] = dict(value) if isinstance(value, dict) else value
    return out


def order_shape(store: SandboxStore, con: str) -> dict[str, Any] | None:
    """The §3.2 single-order object assembled from the order info and its current item rows."""
    with store.lock:
        info = store.orders.get(con)
        if info is None:
            return None
        rows = [store.rows[k] for k in info.item_ids if k in store.rows]
        first = rows[0] if rows else {}
        details = first.get("orderDetails", {})
        cust = first.get("customerDetails", {})
        body = info.created_body or {}
        subtotal = round(
            sum(float(r.get("customerPrice") or 0) * int(r.get("quantity") or 1) for r in rows), 2
        )
        body_items = body.get("items") or []
        items = []
        for idx, row in enumerate(rows):
            src = body_items[idx] if idx < len(body_items) and isinstance(body_items[idx], dict) else {}
            reason, when = info.cancellations.get(row["orderItemID"], (None, None))
            price = row.get("customerPrice") or 0
            qty = row.get("quantity") or 1
            items.append(
                {
                    "lineItemSequenceNumber": row.get("lineItemSequenceNumber"),
                    "orderItemID": row["orderItemID"],
                    "itemID": src.get("itemID") or _item_id(row),
                    "sku": row.get("sku"),
                    "productName": row.get("productName"),
                    "quantity": qty,
                    "customerPrice": price,
                    "discount": src.get("discount", 0),
                    "lineItemTotal": src.get("lineItemTotal", round(float(price) * int(qty), 2)),
                    "taxRate": src.get("taxRate", 0),
                    "taxAmount": src.get("taxAmount", 0),
                    "cancellationReason": reason,
                    "cancellationTime": when,
                    "productUrl": src.get("productUrl"),
                    "productImageUrl": src.get("productImageUrl"),
                }
            )
        shipping = body.get("shippingAddress") or {
            "customerName": cust.get("shippingCustomerName"),
            "addressLine1": info.address_line1,
            "addressLine2": "",
            "city": cust.get("shippingCity"),
            "state": cust.get("shippingState"),
            "postalCode": cust.get("shippingPostalCode"),
            "countryCode": "IN",
            "countryName": "India",
            "contactPhone": cust.get("shippingContactPhone"),
            "email": cust.get("shippingEmail"),
        }
        updated = max((r["updatedAt"] for r in rows), default=info.created_ms)
        is_cod = details.get("isCod", "0")
        return {
            "id": info.id,
            "externalChannelID": body.get("externalChannelID", details.get("externalChannelID")),
            "customerOrderNumber": con,
            "vendorOrderNumber": first.get("vendorOrderNumber"),
            "shipMethod": body.get("shipMethod", details.get("shipMethod")),
            "orderDate": body.get("orderDate") or details.get("orderDate"),
            "expectedShipDate": body.get("expectedShipDate") or fmt_ts(info.created_ms + 86_400_000),
            "promiseDeliveryDate": body.get("promiseDeliveryDate") or "0000-00-00 00:00:00",
            "isCOD": str(body.get("isCOD", is_cod)),
            "paymentType": body.get("paymentType", details.get("paymentType")),
            "taxAmount": body.get("taxAmount", 0),
            "shipChargeAmount": body.get("shipChargeAmount", 0),
            "subtotal": body.get("subtotal", subtotal),
            "orderTotal": body.get("orderTotal", subtotal),
            "balanceDue": body.get("balanceDue", subtotal if is_cod == "1" else 0),
            "thirdPartyShipping": first.get("thirdPartyShipping") == "1",
            "onHold": first.get("onHold") == 1,
            "created_at": fmt_ts(info.created_ms),
            "updated_at": fmt_ts(updated),
            "shippingAddress": shipping,
            "billingAddress": body.get("billingAddress") or dict(shipping),
            "items": items,
        }


class SandboxState(Protocol):
    """What the routes need from a sandbox (``EshopboxSandbox`` satisfies it), so this module does
    not import the facade: state objects and settings for the API routes, plus the facade's
    reads and edits for ``/__sandbox__`` control."""

    workspace: str
    seed: int
    hit_cap: int
    per_page_max: int
    inventory_per_page_max: int
    require_filters: bool
    known_fields: frozenset[str]
    store: SandboxStore
    tokens: TokenRegistry
    faults: FaultConfig
    quirks: QuirkConfig
    stats_counter: SandboxStats
    clock: SandboxClock
    tls: bool
    host: str
    control_token: str | None

    @property
    def origin(self) -> str: ...
    @property
    def auth_url(self) -> str: ...
    @property
    def api_url(self) -> str: ...
    @property
    def wms_url(self) -> str: ...
    @property
    def ca_bundle(self) -> str | None: ...
    @property
    def data_window(self) -> tuple[datetime, datetime]: ...
    def connection_json(self) -> str: ...
    def stats(self) -> dict[str, Any]: ...
    def reset_stats(self) -> None: ...
    def revoke_tokens(self) -> int: ...
    def truth_order_item_ids(self, start: int | None = None, end: int | None = None) -> set[str]: ...
    def truth_order_rows(self, start: int | None = None, end: int | None = None) -> list[dict[str, Any]]: ...
    def set_order_status(self, customer_order_number: str, status: str) -> list[str]: ...
    def set_stock(self, esin_or_sku: str, warehouse: str, **buckets: int) -> str: ...


class SandboxApp:
    """Route handlers bound to one sandbox's state."""

    def __init__(self, sb: SandboxState, stopping: threading.Event | None = None) -> None:
        self.sb = sb
        self.stopping = stopping or threading.Event()  # set when the server stops: ends drips

    # ------------------------------------------------------------ plumbing
    def api(self, route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: stats, faults, catch-all error envelope."""

        async def endpoint(request: Request) -> Response:
            sb = self.sb
            sb.stats_counter.begin(route)
            status: int | None = 500
            try:
                plan = sb.faults.plan(route)
                for kind in plan.kinds:
                    sb.stats_counter.fault(kind)
                if plan.latency_s:
                    await asyncio.sleep(plan.latency_s)
                if plan.action == "hang":
                    await asyncio.sleep(plan.hang_s)
                if plan.action == "drop":
                    status = None
                    return R.DropResponse()
                if plan.action == "status":
                    response = R.fault_status(plan.status, plan.retry_after)
                else:
                    try:
                        response = await handler(request, plan)
                    except Exception:
                        log.exception("eshopbox sandbox: unhandled error on %s", route)
                        response = R.envelope(500, "Internal Server Error", "backendError")
                    if plan.action == "store_then_fail" and response.status_code < 400:
                        response = R.envelope(500, "Backend Error", "backendError")
                    if sb.quirks.on("offset_times") and response.status_code == 200:
                        response = R.offset_times(response)
                    if sb.quirks.on("ist_times") and response.status_code == 200:
                        response = R.ist_times(response)
                if plan.echo_secrets and response.status_code >= 400:
                    sb.stats_counter.fault("echo_secrets")
                    response = R.echo_secrets(response, await _request_secrets(request))
                if plan.action == "truncate":
                    response = R.truncated(response)
                if sb.quirks.on("error_200") and response.status_code >= 400:
                    sb.stats_counter.fault("error_200")
                    response.status_code = 200
                # the sandbox's own clock (tests move it), as a real server's Date is its own
                response.headers["date"] = formatdate(sb.clock.now(), usegmt=True)
                status = response.status_code
                if plan.drip_bytes_per_s > 0:
                    response = R.DripResponse(
                        response,
                        plan.drip_bytes_per_s,
                        plan.drip_phase,
                        plan.drip_max_s,
                        self.stopping,
                        sb.stats_counter.dripping,
                    )
                return response
            finally:
                sb.stats_counter.end(status)

        return endpoint

    def _auth(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return R.message(401, "Unauthorized")
        state = self.sb.tokens.state(token.strip())
        if state == "unknown":
            return R.message(401, "Unauthorized")
        if state == "expired":
            return R.message(401, "Expired token")
        return None

    def _workspace(self, request: Request) -> Response | None:
        """Unknown slug -> 404; wrong ProxyHost -> 400; missing ProxyHost served but counted."""
        if request.path_params.get("workspace") != self.sb.workspace:
            return R.not_found()
        denied = self._auth(request)
        if denied is not None:
            return denied
        proxy = request.headers.get("proxyhost")
        if proxy is None:
            self.sb.stats_counter.missing_proxy_host()
        elif proxy.strip() != self.sb.workspace:
            return R.bad_request(f"ProxyHost header {proxy!r} does not match workspace {self.sb.workspace!r}")
        return None

    def control(self, handler: Endpoint) -> Endpoint:
        """Guard a ``/__sandbox__`` route against a web page in the user's browser: the ``Host`` must be
        the bound loopback name or address (no DNS rebinding), a POST must be ``application/json`` (no
        cross-site "simple" request without a preflight), and a sandbox bound off loopback wants its
        control token in ``X-Sandbox-Token``."""

        async def endpoint(request: Request) -> Response:
            refused = self._control_refusal(request)
            return refused if refused is not None else await handler(request)

        return endpoint

    def _control_refusal(self, request: Request) -> Response | None:
        token = self.sb.control_token
        if token is not None:
            if not hmac.compare_digest(request.headers.get("x-sandbox-token", ""), token):
                return R.message(403, "sandbox control needs the X-Sandbox-Token printed at start-up")
        else:
            name = urlsplit("//" + request.headers.get("host", "")).hostname or ""
            if name not in (*LOOPBACK_NAMES, self.sb.host):
                return R.message(403, f"sandbox control answers only Host {self.sb.host} or localhost")
        if request.method == "POST":
            kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind != "application/json":
                return R.message(415, "sandbox control POSTs must be Content-Type: application/json")
        return None

    async def _json_body(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return R.bad_request("Request body must be a JSON object")
        if not isinstance(body, dict):
            return R.bad_request("Request body must be a JSON object")
        return body

    # ---------------------------------------------------------------- token
    async def token(self, request: Request, plan: FaultPlan) -> Response:
        """Refresh-token grant; JSON or form-encoded body (api doc §1.2/§1.3)."""
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: dict[str, Any]
        try:
            if "json" in ctype or raw.lstrip().startswith(b"{"):
                parsed = json.loads(raw or b"{}")
                if not isinstance(parsed, dict):
                    raise ValueError("not an object")
                body = parsed
            else:
                body = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except (ValueError, UnicodeDecodeError):
            return R.json_response(
                {"error": "invalid_request", "error_description": "body must be JSON or form-encoded"}, 400
            )
        grant = body.get("grant_type")
        if grant is not None and grant != "refresh_token":
            return R.json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"grant_type {grant!r} not supported",
                },
                400,
            )
        wanted = ("grant_type", "client_id", "client_secret", "refresh_token")
        missing = [k for k in wanted if not body.get(k)]
        if missing:
            return R.json_response(
                {"error": "invalid_request", "error_description": f"missing {', '.join(missing)}"}, 401
            )
        tokens = self.sb.tokens
        if not tokens.check_client(str(body["client_id"]), str(body["client_secret"])):
            return R.json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"}, 401
            )
        if not tokens.check_refresh_token(str(body["refresh_token"])):
            return R.json_response(
                {"error": "invalid_grant", "error_description": "refresh token not recognised"}, 401
            )
        minted = tokens.mint()
        self.sb.stats_counter.token_minted()
        out: dict[str, Any] = {
            "access_token": minted.access_token,
            "id_token": minted.id_token,
            "scope": "openid profile offline_access",
            "expires_in": minted.expires_in,
            "token_type": "Bearer",
        }
        if minted.refresh_token is not None:
            out["refresh_token"] = minted.refresh_token
        return R.json_response(out)

    # --------------------------------------------------------------- orders
    async def orders_list(self, request: Request, plan: FaultPlan) -> Response:
        """``GET /api/v1/orders/erp``: one row per order item, filters/fields/page/per_page."""
        denied = self._workspace(request)
        if denied is not None:
            return denied
        sb = self.sb
        q = request.query_params
        try:
            page = _parse_int(q.get("page"), "page", 1)
            per_page = _parse_int(q.get("per_page"), "per_page", 25)
            if page < 0:
                raise FilterError(f"page must be >= {sb.quirks.first_page()}, got {page}")
            if per_page < 1:
                raise FilterError(f"per_page must be >= 1, got {per_page}")
            if per_page > sb.per_page_max:
                raise FilterError(f"per_page must be at most {sb.per_page_max}, got {per_page}")
            raw_filters = q.get("filters")
            if sb.require_filters and not (raw_filters or "").strip():
                raise FilterError("filters is required")
            flt = quirky_filter(sb.quirks, parse_filters(raw_filters, sb.known_fields))
        except FilterError as exc:
            if sb.quirks.on("bad_filter_200_empty"):
                return R.json_response({"hits": [], "hasNext": False})
            return R.bad_request(str(exc))
        fields = [f.strip() for f in (q.get("fields") or "").split(",") if f.strip()]
        if page < sb.quirks.first_page():  # page 0 of a 1-based server: what a live-checked client saw
            return R.json_response({"hasNext": False})
        store = sb.store
        with store.lock:
            ids = store.query(flt, sb.hit_cap)
            if plan.mutate_rows and ids:
                picker = random.Random(f"{sb.seed}:{store.version}:{len(ids)}")
                chosen = picker.sample(ids, min(plan.mutate_rows, len(ids)))
                store.update_rows(chosen, {}, sb.clock.now_ms())
                ids = store.query(flt, sb.hit_cap)
            cut = sb.quirks.cut(page, per_page)
            window = cut.rows(ids)
            has_next = cut.has_next(len(ids))
            if fields:
                hits = [project(store.rows[k], fields) for k in window]
            else:
                encoded = b",".join(store.encoded_row(k) for k in window)
        if fields:
            return R.json_response({"hits": hits, "hasNext": has_next})
        tail = b'],"hasNext":true}' if has_next else b'],"hasNext":false}'
        return R.raw_json_response(b'{"hits":[' + encoded + tail)

    async def order_get(self, request: Request, plan: FaultPlan) -> Response:
        """``GET /wms/api/order/{customerOrderNumber}`` (api doc §3.2)."""
        denied = self._auth(request)
        if denied is not None:
            return denied
        con = request.path_params["con"]
        if plan.order_get_lag_s > 0:
            store = self.sb.store
            with store.lock:
                info = store.orders.get(con)
                lagging = (
                    info is not None
                    and info.created_body is not None
                    and self.sb.clock.now_ms() - info.created_ms < plan.order_get_lag_s * 1000
                )
            if lagging:
                self.sb.stats_counter.fault("order_get_lag")
                return R.not_found()
        order = order_shape(self.sb.store, con)
        return R.not_found() if order is None else R.json_response(order)

    async def order_create(self, request: Request, plan: FaultPlan) -> Response:
        """``POST /wms/api/order`` (api doc §3.3): 422 field errors, duplicate 422, §3.2 on success."""
        denied = self._auth(request)
        if denied is not None:
            return denied
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        errors: dict[str, list[str]] = {}
        for name in _CREATE_REQUIRED:
            if _blank(body.get(name, _MISSING)):
                errors[name] = [_required(name)]
        ship = body.get("shippingAddress")
        if isinstance(ship, dict):
            for name in _ADDRESS_REQUIRED:
                if _blank(ship.get(name)):
                    errors[f"shippingAddress.{name}"] = [_required(f"shippingAddress.{name}")]
        elif "shippingAddress" not in errors:
            errors["shippingAddress"] = ["The shippingAddress must be an object."]
        items = body.get("items")
        if "items" not in errors and not isinstance(items, list):
            errors["items"] = ["The items must be an array."]
        store = self.sb.store
        seen_ids: set[str] = set()
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                errors[f"items.{i}"] = [f"The items.{i} must be an object."]
                continue
            if _blank(item.get("sku")):
                errors[f"items.{i}.sku"] = [_required(f"items.{i}.sku")]
            oid = item.get("orderItemID")
            if oid:
                if str(oid) in store.rows or str(oid) in seen_ids:
                    errors[f"items.{i}.orderItemID"] = [f"The items.{i}.orderItemID has already been taken."]
                seen_ids.add(str(oid))
        with store.lock:
            con = body.get("customerOrderNumber")
            if "customerOrderNumber" not in errors and str(con) in store.orders:
                errors["customerOrderNumber"] = ["The customerOrderNumber has already been taken."]
            if errors:
                return R.field_errors(errors)
            quirks = self.sb.quirks
            if quirks.on("create_200_failed"):  # as Eshopbox's sibling endpoints answer a failure
                sku = items[0].get("sku") if isinstance(items, list) and items else None
                return R.json_response({"status": "FAILED", "message": f"SKU {sku} not found", "code": 412})
            if quirks.on("create_other_order"):
                other = next((n for n in store.orders if n != str(con)), None)
                return R.json_response(order_shape(store, other) if other else {})
            store.add_order(body, self.sb.workspace, self.sb.clock.now_ms())
            order = order_shape(self.sb.store, str(con))
        return R.json_response(order)

    async def order_cancel(self, request: Request, plan: FaultPlan) -> Response:
        """``POST /wms/api/cancel-order`` (api doc §3.4)."""
        denied = self._auth(request)
        if denied is not None:
            return denied
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        errors: dict[str, list[str]] = {}
        for name in _CANCEL_REQUIRED:
            if _blank(body.get(name, _MISSING)):
                errors[name] = [_required(name)]
        if "items" not in errors and not isinstance(body.get("items"), list):
            errors["items"] = ["The items must be an array."]
        if errors:
            return R.field_errors(errors)
        con = str(body["customerOrderNumber"])
        store = self.sb.store
        with store.lock:
            info = store.orders.get(con)
            if info is None:
                invalid = "The selected customerOrderNumber is invalid."
                return R.field_errors({"customerOrderNumber": [invalid]})
            rows = [store.rows[k] for k in info.item_ids]
            chosen: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for i, item in enumerate(body["items"]):
                row = _match_item(rows, item) if isinstance(item, dict) else None
                if row is None:
                    errors[f"items.{i}"] = [f"The selected items.{i} is invalid."]
                else:
                    chosen.append((row, item))
            if errors:
                return R.field_errors(errors)
            now = self.sb.clock.now_ms()
            when = str(body.get("cancellationTime") or fmt_ts(now))
            reason = str(body["reason"])
            for row, _ in chosen:
                info.cancellations[row["orderItemID"]] = (reason, when)
            store.set_status([row["orderItemID"] for row, _ in chosen], "cancelled", now)
            result_items = [
                {
                    "lineItemSequenceNumber": row.get("lineItemSequenceNumber"),
                    "itemID": item.get("itemID") or _item_id(row),
                    "quantity": item.get("quantity", row.get("quantity", 1)),
                    "productName": row.get("productName"),
                    "remark": item.get("remark") or reason,
                }
                for row, item in chosen
            ]
        return R.json_response(
            {
                "status": "SUCCESS",
                "result": {
                    "customerOrderNumber": con,
                    "reason": reason,
                    "cancellationTime": when,
                    "items": result_items,
                },
            }
        )

    # ------------------------------------------------------------ catalogue
    async def product_get(self, request: Request, plan: FaultPlan) -> Response:
        """``GET /product-engine/api/v1/products/{sku}`` (api doc §5/§9)."""
        denied = self._workspace(request)
        if denied is not None:
            return denied
        product = self.sb.store.products_by_sku.get(request.path_params["sku"])
        return R.not_found() if product is None else R.json_response(product.to_api())

    async def inventory_list(self, request: Request, plan: FaultPlan) -> Response:
        """``GET /api/v2/inventoryListing``: ESIN-keyed stock, ``updatedOn`` range, page/perPage."""
        denied = self._workspace(request)
        if denied is not None:
            return denied
        sb = self.sb
        q = request.query_params
        try:
            page = _parse_int(q.get("page"), "page", 1)
            per_page = _parse_int(q.get("perPage"), "perPage", 25)
            if page < sb.quirks.first_page():
                raise FilterError(f"page must be >= {sb.quirks.first_page()}, got {page}")
            top = sb.inventory_per_page_max
            if not 1 <= per_page <= top:
                raise FilterError(f"perPage must be between 1 and {top}, got {per_page}")
            lo, hi = _parse_updated_on(q.get("updatedOn"))
        except FilterError as exc:
            if sb.quirks.on("bad_filter_200_empty"):
                return R.json_response({})
            return R.bad_request(str(exc))
        only = q.get("esin") or None  # the documented filter by product field (api doc §4.2)
        if sb.quirks.on("ignore_filters"):
            lo = hi = only = None
        elif sb.quirks.on("ignore_upper_bound"):
            hi = None
        store = sb.store
        out: dict[str, Any] = {}
        with store.lock:
            stamps = store.stock_updated_ms

            def matching() -> list[str]:
                return [
                    e
                    for e in store.esins_sorted
                    if (lo is None or stamps[e] >= lo)
                    and (hi is None or stamps[e] <= hi)
                    and (only is None or e == only)
                ]

            esins = matching()
            if plan.inventory_updates and esins:
                # like mutate on orders: matching ESINs change (updatedOn = now) before the page is cut
                picker = random.Random(plan.pick_seed)
                now = sb.clock.now_ms()
                for esin in picker.sample(esins, min(plan.inventory_updates, len(esins))):
                    wh = picker.choice(sorted(store.stock[esin]))
                    sellable = store.stock[esin][wh]["sellable"] + picker.randint(1, 9)
                    store.set_stock(esin, wh, {"sellable": sellable}, now)
                esins = matching()
            for esin in sb.quirks.cut(page, per_page, cap="inventory_per_page_cap").rows(esins):
                per_wh = store.stock[esin]
                totals = {b: sum(wh[b] for wh in per_wh.values()) for b in BUCKETS}
                out[esin] = {
                    "warehouseInventories": {wh: dict(b) for wh, b in per_wh.items()},
                    "inventories": totals,
                    "sku": store.products_by_esin[esin].sku,
                }
        return R.json_response(out)

    # -------------------------------------------------------------- control
    async def control_stats(self, request: Request) -> Response:
        """GET -> counters; DELETE -> reset."""
        if request.method == "DELETE":
            self.sb.reset_stats()
        return R.json_response(self.sb.stats())

    async def control_faults(self, request: Request) -> Response:
        """GET -> settings; POST JSON -> configure (+ script, rate_limit); DELETE -> clear."""
        if request.method == "POST":
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            try:
                self.sb.faults.apply(body)
            except (TypeError, ValueError, KeyError) as exc:
                return R.bad_request(f"faults: {exc}")
        elif request.method == "DELETE":
            self.sb.faults.clear()
        return R.json_response(self.sb.faults.snapshot())

    async def control_quirks(self, request: Request) -> Response:
        """GET -> active quirks; POST JSON -> replace them; DELETE -> clear (quirks.py)."""
        if request.method == "POST":
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            try:
                self.sb.quirks.apply(body)
            except ValueError as exc:
                return R.bad_request(f"quirks: {exc}")
        elif request.method == "DELETE":
            self.sb.quirks.clear()
        return R.json_response(self.sb.quirks.snapshot())

    async def control_truth(self, request: Request) -> Response:
        """Ground truth for [start, end): ids (sorted), or full rows with ``full=1``."""
        q = request.query_params
        try:
            start = _parse_when(q.get("start"))
            end = _parse_when(q.get("end"))
        except ValueError as exc:
            return R.bad_request(str(exc))
        if q.get("full") in ("1", "true"):
            rows = self.sb.truth_order_rows(start, end)
            return R.json_response({"count": len(rows), "rows": rows})
        ids = sorted(self.sb.truth_order_item_ids(start, end))
        return R.json_response({"count": len(ids), "orderItemIDs": ids})

    async def control_revoke(self, request: Request) -> Response:
        """Revoke every minted access token."""
        return R.json_response({"revoked": self.sb.revoke_tokens()})

    async def control_clock(self, request: Request) -> Response:
        """POST ``{"advance_s": n}`` moves sandbox time forward; GET reads it."""
        if request.method == "POST":
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            try:
                self.sb.clock.advance(float(body.get("advance_s", 0)))
            except (TypeError, ValueError) as exc:
                return R.bad_request(f"advance_s: {exc}")
        return R.json_response({"now_ms": self.sb.clock.now_ms()})

    async def control_order(self, request: Request) -> Response:
        """POST ``/__sandbox__/orders/{con}/{ship|deliver|cancel}``, or ``/status`` with
        ``{"status": ...}``: move every item of the order (updatedAt = now). 404 unknown order."""
        con, action = request.path_params["con"], request.path_params["action"]
        status = ORDER_ACTIONS.get(action)
        if action == "status":
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            status = body.get("status")
            if not isinstance(status, str) or not status.strip():
                return R.bad_request('status: send {"status": "<orderStatus>"}')
        if status is None:
            return R.not_found()
        try:
            ids = self.sb.set_order_status(con, status)
        except KeyError:
            return R.message(404, f"unknown customerOrderNumber {con!r}")
        store = self.sb.store
        with store.lock:
            updated = max(store.rows[i]["updatedAt"] for i in ids) if ids else None
        return R.json_response(
            {"customerOrderNumber": con, "orderStatus": status, "orderItemIDs": ids, "updatedAt": updated}
        )

    async def control_stock(self, request: Request) -> Response:
        """POST ``{"esin" (or "sku"), "warehouse", "sellable"?, "nonSellable"?, "inwardInProcess"?,
        "outwardInProcess"?}``: set those buckets, bump the ESIN's updatedOn; 404 unknown ESIN/SKU."""
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        key = body.get("esin") or body.get("sku")
        warehouse = body.get("warehouse")
        buckets = {k: v for k, v in body.items() if k not in ("esin", "sku", "warehouse")}
        if not key or not warehouse or not buckets:
            return R.bad_request("stock: send esin (or sku), warehouse and at least one bucket")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in buckets.values()):
            return R.bad_request("stock: bucket values must be integers")
        try:
            esin = self.sb.set_stock(str(key), str(warehouse), **buckets)
        except KeyError as exc:
            return R.message(404, str(exc.args[0]))
        except ValueError as exc:
            return R.bad_request(str(exc))
        store = self.sb.store
        with store.lock:
            return R.json_response(
                {
                    "esin": esin,
                    "sku": store.products_by_esin[esin].sku,
                    "warehouse": warehouse,
                    "updatedOn": store.stock_updated_ms[esin],
                    "stock": dict(store.stock[esin][str(warehouse)]),
                }
            )

    async def control_info(self, request: Request) -> Response:
        """Base URLs, TLS CA, the seeded data window and the connection JSON, for drivers in
        another process."""
        sb = self.sb
        return R.json_response(
            {
                "origin": sb.origin,
                "auth_url": sb.auth_url,
                "api_url": sb.api_url,
                "wms_url": sb.wms_url,
                "workspace": sb.workspace,
                "tls": sb.tls,
                "data_window": {
                    "start": sb.data_window[0].isoformat().replace("+00:00", "Z"),
                    "end": sb.data_window[1].isoformat().replace("+00:00", "Z"),
                    "start_ms": to_ms(sb.data_window[0]),
                    "end_ms": to_ms(sb.data_window[1]),
                },
                "ca_bundle": sb.ca_bundle,
                "connection": json.loads(sb.connection_json()),
            }
        )

    async def unknown(self, request: Request) -> Response:
        """Any other path: counted as route ``unknown``, 404 ``{"message": "Not Found"}``."""
        if request.url.path.startswith("/__sandbox__"):
            return R.not_found()
        self.sb.stats_counter.begin("unknown")
        self.sb.stats_counter.end(404)
        return R.not_found()


async def _request_secrets(request: Request) -> dict[str, str]:
    """The credentials a request carried (``-`` when absent), for the echo_secrets fault."""
    try:
        raw = await request.body()
    except Exception:
        raw = b""
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            body = parsed
    except (ValueError, UnicodeDecodeError):
        body = dict(parse_qsl(raw.decode(errors="replace")))
    _, _, token = request.headers.get("authorization", "").partition(" ")
    out = {k: str(body.get(k) or "-") for k in ("client_id", "client_secret", "refresh_token")}
    out["token"] = token.strip() or "-"
    return out


def _item_id(row: dict[str, Any]) -> str:
    esin = row.get("esin") or ""
    digits = "".join(ch for ch in esin if ch.isdigit())
    return f"VAR-{int(digits)}" if digits else f"VAR-{row.get('sku')}"


def _match_item(rows: list[dict[str, Any]], item: dict[str, Any]) -> dict[str, Any] | None:
    for key, row_key in (
        ("orderItemID", "orderItemID"),
        ("lineItemSequenceNumber", "lineItemSequenceNumber"),
        ("sku", "sku"),
    ):
        if item.get(key) not in (None, ""):
            for row in rows:
                if str(row.get(row_key)) == str(item[key]):
                    return row
            return None
    if item.get("itemID"):
        for row in rows:
            if _item_id(row) == str(item["itemID"]):
                return row
    return None


def quirky_filter(quirks: QuirkConfig, flt: ParsedFilter) -> ParsedFilter:
    """The filter as a quirky server applies it: ignored, without its upper bound, or not understood."""
    if quirks.on("bad_filter_200_empty") and any(c.op in (">=", ">", "<", "<=") for c in flt.conditions):
        raise FilterError("filters: comparisons are not understood")  # -> 200 + empty under this quirk
    if quirks.on("ignore_filters"):
        return ParsedFilter()
    if quirks.on("ignore_upper_bound"):
        return replace(flt, time_hi=None)
    return flt


def _parse_updated_on(raw: str | None) -> tuple[int | None, int | None]:
    """``"yyyy-MM-dd HH:mm:ss,yyyy-MM-dd HH:mm:ss"`` -> inclusive epoch-ms bounds (UTC, open if empty)."""
    if raw is None or raw == "":
        return None, None
    if raw.count(",") != 1:
        raise FilterError(f"updatedOn must be 'yyyy-MM-dd HH:mm:ss,yyyy-MM-dd HH:mm:ss', got {raw!r}")
    bounds: list[int | None] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            bounds.append(None)
            continue
        try:
            dt = datetime.strptime(part, _TS_FMT)
        except ValueError:
            raise FilterError(f"updatedOn: {part!r} is not 'yyyy-MM-dd HH:mm:ss'") from None
        bounds.append(to_ms(dt))
    return bounds[0], bounds[1]


def _parse_when(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if _INT_RE.fullmatch(raw):
        return int(raw)
    return to_ms(datetime.fromisoformat(raw.replace("Z", "+00:00")))


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return R.not_found()
    if status == 405:
        return R.message(405, "Method Not Allowed")
    return R.envelope(status, str(getattr(exc, "detail", "error")))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("eshopbox sandbox: unhandled %s on %s", type(exc).__name__, request.url.path)
    return R.envelope(500, "Internal Server Error", "backendError")


def build_app(sb: SandboxState, stopping: threading.Event | None = None) -> R.RawSendCapture:
    """The ASGI app for one sandbox (wrapped so drop faults can reach the socket);
    setting ``stopping`` ends running drip replies at once."""
    h = SandboxApp(sb, stopping)
    ws = "/ws/{workspace}"
    routes = [
        Route("/auth/api/v1/generateToken", h.api("token", h.token), methods=["POST"]),
        Route("/auth/oauth/token", h.api("token", h.token), methods=["POST"]),
        Route(f"{ws}/api/v1/orders/erp", h.api("orders_list", h.orders_list), methods=["GET"]),
        Route(
            f"{ws}/product-engine/api/v1/products/{{sku}}",
            h.api("product_get", h.product_get),
            methods=["GET"],
        ),
        Route(f"{ws}/api/v2/inventoryListing", h.api("inventory_list", h.inventory_list), methods=["GET"]),
        Route("/wms/api/order", h.api("order_create", h.order_create), methods=["POST"]),
        Route("/wms/api/cancel-order", h.api("order_cancel", h.order_cancel), methods=["POST"]),
        *stream_routes(h),  # before api/order/{con}, which would match api/order/shipment
        Route("/wms/api/order/{con}", h.api("order_get", h.order_get), methods=["GET"]),
        Route("/__sandbox__/stats", h.control(h.control_stats), methods=["GET", "DELETE"]),
        Route("/__sandbox__/faults", h.control(h.control_faults), methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox__/quirks", h.control(h.control_quirks), methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox__/truth/orders", h.control(h.control_truth), methods=["GET"]),
        Route("/__sandbox__/revoke", h.control(h.control_revoke), methods=["POST"]),
        Route("/__sandbox__/clock", h.control(h.control_clock), methods=["GET", "POST"]),
        Route("/__sandbox__/info", h.control(h.control_info), methods=["GET"]),
        Route("/__sandbox__/orders/{con}/{action}", h.control(h.control_order), methods=["POST"]),
        Route("/__sandbox__/stock", h.control(h.control_stock), methods=["POST"]),
        Route("/{path:path}", h.unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    return R.RawSendCapture(app)
