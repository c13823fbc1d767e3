"""Sandbox shipments, tracking, returns and the product list: seeded data, routes and ground truth.

The data are derived, deterministically, from the seeded orders (one shipment for most orders, an
RTO return for shipments that came back, customer returns for some delivered ones). Lists follow
the ASSUMPTIONs of ``api.py``: ordered by ``id`` (products: by ``esin``) ascending, new rows join at
the end, nothing is deleted. Shipments use the Laravel paginator envelope ([T1]); returns and
products the generic §6 one (``total`` a string, as in the sample). Return rows carry the keys of the
documented "Get a Return" sample; one return is served where that page says (WMS host,
``api/return-shipment/{customerReturnNumber}``) without the list's own keys (``LIST_ONLY_KEYS``).

``changes_while_paging(updates=n, inserts=m)``: before each list page is cut, ``n`` rows of that
list change (status, ``updated_at`` = sandbox now) and ``m`` new rows join it, as ``mutate`` does to
orders. Ground truth: ``truth_shipments``, ``truth_returns``, ``truth_products`` on the sandbox.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import responses as R
from .data import DAY_MS, WAREHOUSES, Product, fmt_iso, fmt_ts, to_ms

if TYPE_CHECKING:
    from .app import SandboxApp
    from .faults import FaultPlan

# Courier -> share of shipments and RTO probability: a mart has something to compare.
COURIERS = (("Delhivery", 30, 0.07), ("BlueDart", 20, 0.03), ("Ecom Express", 20, 0.12),
            ("Xpressbees", 15, 0.09), ("Shadowfax", 15, 0.16))  # fmt: skip
_FORWARD_STAGES = ("created", "packed", "dispatched", "intransit", "out_for_delivery", "delivered")
_RTO_STAGES = ("rto_created", "rto_intransit", "rto_delivered")
_CUSTOMER_RETURN_STAGES = ("approved", "pickup_pending", "picked_up", "delivered_warehouse", "complete")
_RETURN_REASONS = ("Size issue", "Damaged", "Not as described", "Changed mind")
_CITIES = ("New Delhi", "Mumbai", "Bengaluru", "Pune", "Kolkata", "Chennai")
TIME_FIELD = "updated_at"
LIST_ROUTES = ("shipments_list", "returns_list", "products_list")
# Keys of a returns-list row that the documented "Get a Return" sample does not show (api.py
# RETURN_LIST_ONLY_FIELDS): the get route leaves them out.
LIST_ONLY_KEYS = frozenset({"id", "returnType", "externalShipmentID", "return_request_date", "created_at",
                            "updated_at"})  # fmt: skip
ROUTE_NAMES = ("shipments_list", "tracking", "returns_list", "return_get", "products_list")


@dataclass
class _Changes:
    updates: int = 0
    inserts: int = 0
    routes: frozenset[str] = frozenset(LIST_ROUTES)


class StreamStore:
    """Shipments (by id), tracking (by AWB), returns (by id) over the sandbox's orders and products."""

    def __init__(self, sb: Any) -> None:
        self.sb = sb
        self.lock: threading.RLock = sb.store.lock
        self.rng = random.Random(f"{sb.seed}:streams")
        self.shipments: dict[int, dict[str, Any]] = {}
        self.returns: dict[int, dict[str, Any]] = {}
        self.tracking: dict[str, dict[str, Any]] = {}
        self.changes = _Changes()
        self._changes_seq = 0
        self._generate()

    # ------------------------------------------------------------------ data
    def _generate(self) -> None:
        store = self.sb.store
        with self.lock:
            orders = sorted(store.orders.values(), key=lambda o: (o.created_ms, o.customer_order_number))
            returns: list[dict[str, Any]] = []
            for info in orders:
                if self.rng.random() < 0.8:
                    shipment = self._new_shipment(info.customer_order_number, info.created_ms)
                    returns.extend(self._returns_of(shipment))
            for row in sorted(returns, key=lambda r: (r["created_at"], r["customerReturnNumber"])):
                self._add_return(row)

    def _new_shipment(self, con: str, order_ms: int, *, now_ms: int | None = None) -> dict[str, Any]:
        rng = self.rng
        shipment_id = 500_001 + len(self.shipments)
        courier = rng.choices([c[0] for c in COURIERS], weights=[c[1] for c in COURIERS])[0]
        rto_rate = {c[0]: c[2] for c in COURIERS}[courier]
        created = now_ms if now_ms is not None else order_ms + rng.randrange(3_600_000, 8 * 3_600_000)
        created = created // 1000 * 1000
        if now_ms is not None:
            stages: tuple[str, ...] = ("created",)
        elif rng.random() < rto_rate:
            stages = (*_FORWARD_STAGES[:4], "failed_delivery", *_RTO_STAGES[: rng.randint(1, 3)])
        else:
            stages = _FORWARD_STAGES[: rng.choice((4, 5, 6, 6, 6))]
        log: dict[str, str] = {}
        when = created
        for stage in stages:
            log[stage] = fmt_ts(when)
            when += rng.randrange(2 * 3_600_000, 20 * 3_600_000) // 1000 * 1000
        last = to_ms_ts(log[stages[-1]])
        tracking_id = f"AWB{self.sb.seed % 100:02d}{shipment_id:08d}"
        row = {
            "id": shipment_id,
            "customerOrderNumber": con,
            "externalShipmentID": f"SHP-{shipment_id}",
            "externalWarehouseID": WAREHOUSES[shipment_id % len(WAREHOUSES)],
            "externalChannelID": "CH0001",
            "invoiceNumber": f"INV-{shipment_id}",
            "label_url": f"https://labels.example.com/{tracking_id}.pdf",
            "trackingID": tracking_id,
            "courierName": courier,
            "status": stages[-1],
            "status_log": log,
            "status_updated_at": fmt_ts(last),
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(last),
        }
        self.shipments[shipment_id] = row
        self._track(row)
        return row

    def _track(self, shipment: dict[str, Any]) -> None:
        log = shipment["status_log"]
        rto = any(stage.startswith("rto") for stage in log)
        created = to_ms_ts(shipment["created_at"])
        self.tracking[shipment["trackingID"]] = {
            "journeyType": "RTO" if rto else "FORWARD",
            "customerOrderNumber": shipment["customerOrderNumber"],
            "trackingId": shipment["trackingID"],
            "currentStatus": shipment["status"].upper(),
            "dateTime": shipment["status_updated_at"],
            "expectedDeliveryDate": fmt_ts(created + 4 * DAY_MS),
            "courierPartnerName": shipment["courierName"],
            "statusLogList": [
                {"status": stage.upper(), "dateTime": at, "location": _CITIES[i % len(_CITIES)]}
                for i, (stage, at) in enumerate(log.items())
            ],
        }

    def _returns_of(self, shipment: dict[str, Any]) -> list[dict[str, Any]]:
        rng, log = self.rng, shipment["status_log"]
        if "rto_created" in log:
            stages = [s for s in _RTO_STAGES if s in log]
            kind, tracking, pickup = "RTO", shipment["trackingID"], "rto"
            created = to_ms_ts(log["rto_created"])
            reason = "Undelivered: customer not reachable"
        elif shipment["status"] == "delivered" and rng.random() < 0.1:
            stages = list(_CUSTOMER_RETURN_STAGES[: rng.randint(1, 5)])
            kind, tracking, pickup = "CUSTOMER_RETURN", f"R{shipment['trackingID']}", "reverse"
            created = to_ms_ts(log["delivered"]) + rng.randrange(DAY_MS, 5 * DAY_MS) // 1000 * 1000
            reason = rng.choice(_RETURN_REASONS)
        else:
            return []
        updated = created + (len(stages) - 1) * rng.randrange(3_600_000, DAY_MS) // 1000 * 1000
        status_log = {stage: fmt_ts(created + i * (updated - created) // max(1, len(stages) - 1))
               for i, stage in enumerate(stages)}  # fmt: skip
        con = shipment["customerOrderNumber"]
        info = self.sb.store.orders.get(con)
        return [
            {
                "externalChannelID": shipment["externalChannelID"],
                "customerReturnNumber": f"RET-{con}-{kind[0]}",
                "customerOrderNumber": con,
                "order_id": info.id if info else None,
                "pickupType": pickup,
                "status": stages[-1],
                "refundAmount": 0 if kind == "RTO" else round(rng.randrange(299, 3000, 50) - 1.0, 2),
                "trackingID": tracking,
                "courierName": shipment["courierName"],
                "isCOD": "1" if rng.random() < 0.35 else "0",
                "latest_status": stages[-1],
                "status_updated_at": fmt_ts(updated),
                "status_log": status_log,
                "items": self._return_items(con, reason),
                # not in the documented "Get a Return" sample: the list's own keys (see return_get)
                "returnType": kind,
                "externalShipmentID": shipment["externalShipmentID"],
                "return_request_date": fmt_ts(created),
                "created_at": fmt_ts(created),
                "updated_at": fmt_ts(updated),
            }
        ]

    def _return_items(self, con: str, reason: str) -> list[dict[str, Any]]:
        """The documented item keys of a return, from the order's item rows."""
        store = self.sb.store
        info = store.orders.get(con)
        items = [store.rows[i] for i in (info.item_ids if info else []) if i in store.rows]
        return [
            {
                "lineItemSequenceNumber": row.get("lineItemSequenceNumber", n),
                "orderItemID": str(row.get("orderItemID")),
                "itemID": str(row.get("sku")),
                "productName": row.get("productName"),
                "quantity": 1,
                "returnReason": reason,
            }
            for n, row in enumerate(items, start=1)
        ] or [{"lineItemSequenceNumber": 1, "orderItemID": None, "itemID": "UNKNOWN", "productName": None,
               "quantity": 1, "returnReason": reason}]  # fmt: skip

    def _add_return(self, row: dict[str, Any]) -> None:
        return_id = 700_001 + len(self.returns)
        self.returns[return_id] = {"id": return_id, **row}

    # -------------------------------------------------------- list contents
    def listed(self, route: str) -> list[dict[str, Any]]:
        """The rows of an unfiltered list in its order (id ascending; products by ESIN)."""
        if route == "shipments_list":
            return [self.shipments[k] for k in sorted(self.shipments)]
        if route == "returns_list":
            return [self.returns[k] for k in sorted(self.returns)]
        products = sorted(self.sb.store.products, key=lambda p: p.esin)
        return [p.to_api() for p in products]

    # ------------------------------------------------------ mid-read changes
    def change_before_page(self, route: str) -> int:
        """Apply the configured changes to ``route``'s list (under the lock); returns how many."""
        changes = self.changes
        if route not in changes.routes or not (changes.updates or changes.inserts):
            return 0
        self._changes_seq += 1
        picker = random.Random(f"{self.sb.seed}:{route}:{self._changes_seq}")
        now = self.sb.clock.now_ms() // 1000 * 1000
        if route == "shipments_list":
            for key in picker.sample(sorted(self.shipments), min(changes.updates, len(self.shipments))):
                row = self.shipments[key]
                row["status_log"] = {**row["status_log"], "intransit": fmt_ts(now)}
                row.update(status="intransit", status_updated_at=fmt_ts(now), updated_at=fmt_ts(now))
                self._track(row)
            cons = sorted(self.sb.store.orders)
            for _ in range(changes.inserts):
                self._new_shipment(picker.choice(cons), now, now_ms=now)
        elif route == "returns_list":
            for key in picker.sample(sorted(self.returns), min(changes.updates, len(self.returns))):
                row = self.returns[key]
                row["status_log"] = {**row["status_log"], "complete": fmt_ts(now)}
                row.update(status="complete", latest_status="complete", status_updated_at=fmt_ts(now))
                row["updated_at"] = fmt_ts(now)
            for _ in range(changes.inserts):
                shipment = self.shipments[picker.choice(sorted(self.shipments))]
                con = shipment["customerOrderNumber"]
                stamp = fmt_ts(now)
                self._add_return(
                    {
                        "externalChannelID": shipment["externalChannelID"],
                        "customerReturnNumber": f"RET-{con}-N{len(self.returns)}",
                        "customerOrderNumber": con,
                        "order_id": None,
                        "pickupType": "reverse",
                        "status": "approved",
                        "refundAmount": 499.0,
                        "trackingID": f"R{shipment['trackingID']}-{len(self.returns)}",
                        "courierName": shipment["courierName"],
                        "isCOD": "0",
                        "latest_status": "approved",
                        "status_updated_at": stamp,
                        "status_log": {"approved": stamp},
                        "items": self._return_items(con, "Changed mind"),
                        "returnType": "CUSTOMER_RETURN",
                        "externalShipmentID": shipment["externalShipmentID"],
                        "return_request_date": stamp,
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                )
        else:
            store = self.sb.store
            for product in picker.sample(store.products, min(changes.updates, len(store.products))):
                product.price += 10.0
                product.updated_ms = now
            for _ in range(changes.inserts):
                idx = len(store.products) + 1
                product = Product(
                    sku=f"NEW-{idx}", esin=f"ESN{idx:07d}N", parent_esin=f"ESN{idx:07d}P",
                    name=f"New product {idx}", vertical="HOM", vertical_name="Home", hsn="691200",
                    weight=100.0, mrp=650.0, price=499.0, created_ms=now, updated_ms=now,
                )  # fmt: skip
                store.products.append(product)
                store.products_by_sku[product.sku] = product
                store.products_by_esin[product.esin] = product
        return changes.updates + changes.inserts


def to_ms_ts(stamp: str) -> int:
    """Epoch ms of a ``YYYY-MM-DD HH:MM:SS`` UTC stamp."""
    from datetime import datetime, timezone

    return to_ms(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc))


def streams_of(sb: Any) -> StreamStore:
    """The sandbox's stream data, made on first use (from the orders as they are then)."""
    with sb.store.lock:
        existing = sb.__dict__.get("_stream_store")
        if existing is None:
            existing = sb.__dict__["_stream_store"] = StreamStore(sb)
        return existing


def _in(stamp_ms: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or stamp_ms >= lo) and (hi is None or stamp_ms < hi)


class StreamsSandboxMixin:
    """Ground truth and state edits of the streams, for ``EshopboxSandbox``."""

    def truth_shipment_rows(self, start: Any = None, end: Any = None) -> list[dict[str, Any]]:
        """Shipments (copies) with start <= updated_at < end (datetimes or epoch ms; None = open)."""
        lo, hi = _bounds(start, end)
        data = streams_of(self)
        with data.lock:
            return [
                copy.deepcopy(row)
                for row in data.listed("shipments_list")
                if _in(to_ms_ts(row[TIME_FIELD]), lo, hi)
            ]

    def truth_shipments(self, start: Any = None, end: Any = None) -> set[int]:
        """Shipment ids with start <= updated_at < end."""
        return {row["id"] for row in self.truth_shipment_rows(start, end)}

    def tracking_details(self, tracking_id: str) -> dict[str, Any] | None:
        """The tracking reply entry of one AWB (a copy), or None."""
        data = streams_of(self)
        with data.lock:
            found = data.tracking.get(tracking_id)
            return copy.deepcopy(found) if found is not None else None

    def truth_return_rows(self, start: Any = None, end: Any = None) -> list[dict[str, Any]]:
        """Returns (copies) with start <= updated_at < end."""
        lo, hi = _bounds(start, end)
        data = streams_of(self)
        with data.lock:
            return [
                copy.deepcopy(row)
                for row in data.listed("returns_list")
                if _in(to_ms_ts(row[TIME_FIELD]), lo, hi)
            ]

    def truth_return_got(self, number: str) -> dict[str, Any]:
        """The return ``number`` as the get route serves it (the documented shape, a copy)."""
        data = streams_of(self)
        with data.lock:
            row = next(r for r in data.returns.values() if r["customerReturnNumber"] == number)
            return {k: copy.deepcopy(v) for k, v in row.items() if k not in LIST_ONLY_KEYS}

    def truth_returns(self, start: Any = None, end: Any = None) -> set[str]:
        """customerReturnNumbers with start <= updated_at < end."""
        return {row["customerReturnNumber"] for row in self.truth_return_rows(start, end)}

    def truth_products(self) -> set[str]:
        """Every ESIN of the catalogue, now."""
        data = streams_of(self)
        with data.lock:
            return {row["esin"] for row in data.listed("products_list")}

    def changes_while_paging(
        self, *, updates: int = 0, inserts: int = 0, routes: Iterable[str] = LIST_ROUTES
    ) -> None:
        """Before each page of the given lists: ``updates`` rows change (``updated_at`` = now) and
        ``inserts`` rows join. ``changes_while_paging()`` switches it off."""
        chosen = frozenset(routes)
        if chosen - set(LIST_ROUTES) or updates < 0 or inserts < 0:
            raise ValueError(f"routes must be among {LIST_ROUTES}, counts >= 0")
        data = streams_of(self)
        with data.lock:
            data.changes = _Changes(int(updates), int(inserts), chosen)


def _bounds(start: Any, end: Any) -> tuple[int | None, int | None]:
    return (None if start is None else to_ms(start), None if end is None else to_ms(end))


# ------------------------------------------------------------------------------------------ routes
def _page_args(request: Request, per_page_name: str, first: int) -> tuple[int, int] | Response:
    q = request.query_params
    try:
        page = int(q.get("page") or first)
        per_page = int(q.get(per_page_name) or 25)
    except ValueError:
        return R.bad_request(f"page and {per_page_name} must be integers")
    if page < first or not 1 <= per_page <= 100:
        return R.bad_request(f"page must be >= {first} and {per_page_name} between 1 and 100")
    return page, per_page


def stream_routes(h: SandboxApp) -> list[Route]:
    """The routes of this module; they must come before ``/wms/api/order/{con}`` (which would match)."""
    sb = h.sb

    def listing(route: str, envelope: Callable[..., dict[str, Any]], per_page_name: str, on_ws: bool):
        async def handler(request: Request, plan: FaultPlan) -> Response:
            denied = h._workspace(request) if on_ws else h._auth(request)
            if denied is not None:
                return denied
            quirks = sb.quirks
            args = _page_args(request, per_page_name, quirks.first_page())
            if isinstance(args, Response):
                return args
            page, per_page = args
            data = streams_of(sb)
            with data.lock:
                if data.change_before_page(route):
                    sb.stats_counter.fault("stream_change")
                rows = data.listed(route)
                status = request.query_params.get("status")
                if route == "shipments_list" and status:
                    rows = [r for r in rows if r["status"] == status]
                ids = request.query_params.get("ids")
                if route == "products_list" and ids and not quirks.on("ignore_ids"):
                    wanted = [i for i in ids.split(",") if i]
                    if len(wanted) > 100:
                        return R.bad_request(f"ids takes at most 100 SKUs, got {len(wanted)}")
                    rows = [r for r in rows if r["sku"] in set(wanted)]
                cut = quirks.cut(page, per_page)  # an echoed page size stays the one asked for
                body = envelope(request, page, per_page, cut.rows(rows), len(rows))
                text = json.dumps(body, separators=(",", ":"))
            return R.raw_json_response(text.encode())

        return handler

    def laravel(request: Request, page: int, per_page: int, rows: list[Any], total: int) -> dict[str, Any]:
        last = max(1, -(-total // per_page))
        base = str(request.url.remove_query_params("page"))
        joiner = "&" if "?" in base else "?"
        return {
            "current_page": page,
            "data": rows,
            "from": (page - 1) * per_page + 1 if rows else None,
            "last_page": last,
            "next_page_url": f"{base}{joiner}page={page + 1}" if page < last else None,
            "per_page": per_page,
            "prev_page_url": f"{base}{joiner}page={page - 1}" if page > 1 else None,
            "to": (page - 1) * per_page + len(rows) if rows else None,
            "total": total,
        }

    def generic(request: Request, page: int, per_page: int, rows: list[Any], total: int) -> dict[str, Any]:
        return {"page": page, "perPage": per_page, "total": str(total), "data": rows}

    async def tracking(request: Request, plan: FaultPlan) -> Response:
        denied = h._auth(request)
        if denied is not None:
            return denied
        ids = [i.strip() for i in (request.query_params.get("trackingIds") or "").split(",") if i.strip()]
        if not ids:
            return R.bad_request("trackingIds is required")
        if len(ids) > 50:
            return R.bad_request(f"trackingIds takes at most 50 ids, got {len(ids)}")
        data = streams_of(sb)
        with data.lock:
            found = [copy.deepcopy(data.tracking[i]) for i in ids if i in data.tracking]
        return R.json_response({"Status": "SUCCESS", "trackingDetails": found})

    async def return_get(request: Request, plan: FaultPlan) -> Response:
        """The documented "Get a Return" (WMS host, by customerReturnNumber), in the documented row shape."""
        denied = h._auth(request)
        if denied is not None:
            return denied
        number = request.path_params["number"]
        data = streams_of(sb)
        with data.lock:
            found = next((r for r in data.returns.values() if r["customerReturnNumber"] == number), None)
            if found is not None and sb.quirks.on("ignore_ids"):  # answers with some other return
                found = next((r for r in data.returns.values() if r is not found), found)
            if found is None:
                return R.not_found()
            return R.json_response({k: copy.deepcopy(v) for k, v in found.items() if k not in LIST_ONLY_KEYS})

    ws = "/ws/{workspace}"
    return [
        Route(
            "/wms/api/order/shipment",
            h.api("shipments_list", listing("shipments_list", laravel, "per_page", False)),
            methods=["GET"],
        ),
        Route("/wms/api/v1/shipping/trackingDetails", h.api("tracking", tracking), methods=["GET"]),
        Route(
            f"{ws}/api/v1/returns",
            h.api("returns_list", listing("returns_list", generic, "perPage", True)),
            methods=["GET"],
        ),
        Route("/wms/api/return-shipment/{number}", h.api("return_get", return_get), methods=["GET"]),
        Route(
            f"{ws}/product-engine/api/v1/products",
            h.api("products_list", listing("products_list", generic, "perPage", True)),
            methods=["GET"],
        ),
    ]


__all__ = ["ROUTE_NAMES", "StreamStore", "StreamsSandboxMixin", "fmt_iso", "stream_routes", "streams_of"]
