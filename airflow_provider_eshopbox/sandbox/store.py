"""Thread-safe, indexed in-memory store behind the sandbox routes and the ground-truth queries.

Rows are indexed by ``updatedAt`` (a sorted list of ``(updatedAt, orderItemID)`` + bisect), so a time
window costs O(log n + k). Query results come back in a stable pseudo-random order (hash of objectID
with the seed; it does not correlate with time) and are cached per (filter, cap) until the next mutation.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .data import BUCKETS, OrderInfo, Product, SeedData, fmt_ts, status_transaction
from .filters import ParsedFilter

_CACHE_SIZE = 128


@dataclass
class CreatedOrder:
    """Outcome of an API order creation: the assigned order info and its row ids."""

    info: OrderInfo
    item_ids: list[str]


class SandboxStore:
    """Order-item rows, orders, products and stock, with the indexes and caches the routes need."""

    def __init__(self, seed_data: SeedData, *, seed: int) -> None:
        self.lock = threading.RLock()
        self._seed = seed
        self.rows: dict[str, dict[str, Any]] = {}
        self._order_key: dict[str, int] = {}
        for row in seed_data.rows:
            self.rows[row["orderItemID"]] = row
            self._order_key[row["orderItemID"]] = self._hash(row["objectID"])
        self._index: list[tuple[int, str]] = sorted((r["updatedAt"], k) for k, r in self.rows.items())
        self.orders: dict[str, OrderInfo] = seed_data.orders
        self.products: list[Product] = seed_data.products
        self.products_by_sku: dict[str, Product] = {p.sku: p for p in self.products}
        self.products_by_esin: dict[str, Product] = {p.esin: p for p in self.products}
        self.stock = seed_data.stock
        self.stock_updated_ms = seed_data.stock_updated_ms
        self.esins_sorted: list[str] = sorted(self.stock)
        self.created_counts: dict[str, int] = {}
        self.version = 0
        self._cache: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
        self._encoded: dict[str, bytes] = {}  # row id -> its compact JSON, until the next change
        self._next_order_id = 90000 + len(self.orders)

    def _hash(self, object_id: str) -> int:
        digest = hashlib.blake2b(f"{self._seed}:{object_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    # ----------------------------------------------------------------- queries
    def query(self, flt: ParsedFilter, cap: int) -> list[str]:
        """Ids of matching rows in the stable unordered order, at most ``cap`` (the deep-paging cap)."""
        key = (*flt.cache_key(), cap)
        with self.lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            ids = self._candidates(flt)
            ranked = heapq.nsmallest(cap, ids, key=self._order_key.__getitem__)
            self._cache[key] = ranked
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            return ranked

    def _candidates(self, flt: ParsedFilter) -> list[str]:
        if flt.empty_range:
            return []
        lo = 0 if flt.time_lo is None else bisect.bisect_left(self._index, (flt.time_lo, ""))
        hi = len(self._index) if flt.time_hi is None else bisect.bisect_left(self._index, (flt.time_hi, ""))
        window = self._index[lo:hi]
        if not flt.equals:
            return [k for _, k in window]
        rows = self.rows
        return [k for _, k in window if flt.matches_equals(rows[k])]

    def ids_between(self, start_ms: int | None, end_ms: int | None) -> list[str]:
        """Row ids with start <= updatedAt < end, in updatedAt order (ground truth)."""
        with self.lock:
            lo = 0 if start_ms is None else bisect.bisect_left(self._index, (start_ms, ""))
            hi = len(self._index) if end_ms is None else bisect.bisect_left(self._index, (end_ms, ""))
            return [k for _, k in self._index[lo:hi]]

    # --------------------------------------------------------------- mutations
    def _touch(self) -> None:
        self.version += 1
        self._cache.clear()
        self._encoded.clear()

    def encoded_row(self, item_id: str) -> bytes:
        """A row as compact JSON, cached: serving a page costs a join, not an encode (benchmarks)."""
        data = self._encoded.get(item_id)
        if data is None:
            data = json.dumps(self.rows[item_id], separators=(",", ":"), ensure_ascii=False).encode()
            self._encoded[item_id] = data
        return data

    def _reindex(self, item_id: str, old: int, new: int) -> None:
        pos = bisect.bisect_left(self._index, (old, item_id))
        if pos < len(self._index) and self._index[pos] == (old, item_id):
            del self._index[pos]
        bisect.insort(self._index, (new, item_id))

    def update_rows(self, item_ids: Iterable[str], changes: Mapping[str, Any], updated_at: int) -> int:
        """Apply ``changes`` (dotted keys allowed; nested dicts copied on write) and set updatedAt."""
        count = 0
        with self.lock:
            for item_id in item_ids:
                row = self.rows.get(item_id)
                if row is None:
                    raise KeyError(f"unknown orderItemID {item_id!r}")
                for path, value in changes.items():
                    _set_path(row, path, value)
                old = row["updatedAt"]
                row["updatedAt"] = updated_at
                self._reindex(item_id, old, updated_at)
                count += 1
            self._touch()
        return count

    def set_status(self, item_ids: Iterable[str], status: str, updated_at: int) -> None:
        """Move rows to ``status`` (and the matching transactionStatus) with a new updatedAt."""
        changes: dict[str, Any] = {"orderStatus": status}
        transaction = status_transaction(status)
        if transaction is not None:
            changes["transactionStatus"] = transaction
        self.update_rows(item_ids, changes, updated_at)

    def add_order(self, body: Mapping[str, Any], workspace: str, now_ms: int) -> CreatedOrder:
        """Store an order created through the API; its items become rows with updatedAt = now."""
        with self.lock:
            order_id = self._next_order_id
            self._next_order_id += 1
            con = str(body["customerOrderNumber"])
            ship = body.get("shippingAddress") or {}
            customer = {
                "shippingCustomerName": ship.get("customerName"),
                "shippingContactPhone": ship.get("contactPhone"),
                "shippingEmail": ship.get("email"),
                "shippingCity": ship.get("city"),
                "shippingState": ship.get("state"),
                "shippingPostalCode": ship.get("postalCode"),
            }
            is_cod = str(body.get("isCOD", "0")) in ("1", "true", "True")
            details = {
                "isCod": "1" if is_cod else "0",
                "orderDate": body.get("orderDate") or fmt_ts(now_ms),
                "paymentType": body.get("paymentType"),
                "externalChannelID": body.get("externalChannelID"),
                "shipMethod": body.get("shipMethod") or "Standard",
                "orderTotal": body.get("orderTotal"),
            }
            erp = {"eshopboxId": f"EB{order_id + 800000}"}
            ids: list[str] = []
            for seq, item in enumerate(body["items"], start=1):
                item_id = str(item.get("orderItemID") or f"{order_id}-{seq}")
                sku = str(item.get("sku"))
                product = self.products_by_sku.get(sku)
                row = {
                    "objectID": f"{workspace}-{item_id}",
                    "account": workspace,
                    "erpDetails": erp,
                    "customerOrderNumber": con,
                    "vendorOrderNumber": body.get("vendorOrderNumber") or con,
                    "serialNumber": f"SN{order_id}{seq:02d}",
                    "orderItemID": item_id,
                    "lineItemSequenceNumber": item.get("lineItemSequenceNumber") or seq,
                    "orderStatus": "new",
                    "returnStatus": None,
                    "transactionStatus": "Open",
                    "inventoryItemCode": sku,
                    "sku": sku,
                    "esin": product.esin if product else None,
                    "productName": item.get("productName") or (product.name if product else sku),
                    "quantity": item.get("quantity", 1),
                    "customerPrice": item.get("customerPrice", product.price if product else 0),
                    "onHold": 1 if body.get("onHold") in (True, 1, "1") else 0,
                    "thirdPartyShipping": "1" if body.get("thirdPartyShipping") in (True, 1, "1") else "0",
                    "customerDetails": customer,
                    "orderDetails": details,
                    "updatedAt": now_ms,
                }
                self.rows[item_id] = row
                self._order_key[item_id] = self._hash(row["objectID"])
                bisect.insort(self._index, (now_ms, item_id))
                ids.append(item_id)
            info = OrderInfo(
                id=order_id,
                customer_order_number=con,
                item_ids=ids,
                created_ms=now_ms,
                address_line1=str(ship.get("addressLine1") or ""),
                created_body=dict(body),
            )
            self.orders[con] = info
            self.created_counts[con] = self.created_counts.get(con, 0) + 1
            self._touch()
            return CreatedOrder(info, ids)

    def set_stock(self, esin: str, warehouse: str, buckets: Mapping[str, int], now_ms: int) -> None:
        """Set some buckets for one (ESIN, warehouse); bumps the ESIN's updatedOn to now (whole s)."""
        unknown = set(buckets) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown stock buckets {sorted(unknown)}; expected {BUCKETS}")
        with self.lock:
            per_wh = self.stock[esin]
            current = per_wh.setdefault(warehouse, dict.fromkeys(BUCKETS, 0))
            current.update({k: int(v) for k, v in buckets.items()})
            self.stock[esin] = dict(sorted(per_wh.items()))
            self.stock_updated_ms[esin] = now_ms // 1000 * 1000

    def resolve_esin(self, esin_or_sku: str) -> str:
        """Accept an ESIN or a SKU and return the ESIN; KeyError when neither is known."""
        if esin_or_sku in self.stock:
            return esin_or_sku
        product = self.products_by_sku.get(esin_or_sku)
        if product is None:
            raise KeyError(f"unknown ESIN or SKU {esin_or_sku!r}")
        return product.esin


def _set_path(row: dict[str, Any], path: str, value: Any) -> None:
    """Set a (dotted) key; nested dicts are shared between an order's items, so copy before writing."""
    head, _, rest = path.partition(".")
    if not rest:
        if isinstance(value, Mapping) and isinstance(row.get(head), dict):
            row[head] = {**row[head], **value}
        else:
            row[head] = value
        return
    child = dict(row.get(head) or {})
    _set_path(child, rest, value)
    row[head] = child
