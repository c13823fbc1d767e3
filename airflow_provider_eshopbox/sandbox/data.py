"""Seeded, deterministic generator of sandbox data: order-item rows, orders, products and stock.

Same arguments -> byte-identical data. Rows follow api doc §3.1/§9; timestamps follow a daily
(IST-shaped) seasonality and include bulk-update bursts where 50-250 rows share ONE ``updatedAt`` ms,
so clients must cope with rows that cannot be separated by time.

Size: ``orders`` orders with 1-4 items each (about 2.5 rows per order); or pass ``order_items`` to get
exactly that many rows (orders are generated until the row count is reached; the last one is cut).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc
DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_DAYS = 7
WAREHOUSES = ("DEL01", "BLR01", "BOM01", "CCU01")
BUCKETS = ("sellable", "nonSellable", "inwardInProcess", "outwardInProcess")
EXTERNAL_CHANNEL_ID = "CH0001"
DAY_MS = 86_400_000

# Order volume by UTC hour: Indian shoppers peak late morning and evening IST (UTC+5:30).
_HOUR_WEIGHTS = (
    4, 5, 6, 7, 8, 9, 9, 9, 8, 8, 9, 11, 13, 14, 14, 12, 9, 6, 3, 2, 1, 1, 2, 3,
)  # fmt: skip
_STATUSES = (
    ("new", 10), ("processing", 12), ("ready to ship", 12), ("shipped", 25),
    ("delivered", 30), ("cancelled", 8), ("sidelined", 3),
)  # fmt: skip
_STATUS_NAMES = tuple(s for s, _ in _STATUSES)
_STATUS_CUM = tuple(itertools.accumulate(w for _, w in _STATUSES))
# A few rows carry the UI's Title Case spelling (api doc §3.5: no formal enum; case varies in the wild).
_TITLE_CASE = {
    "new": "New", "processing": "Processing", "ready to ship": "Ready to Ship",
    "shipped": "Shipped", "delivered": "Delivered", "cancelled": "Canceled",
}  # fmt: skip
_TRANSACTION = {
    "new": "Open", "processing": "Open", "ready to ship": "Open", "sidelined": "Open",
    "shipped": "Invoiced", "delivered": "Invoiced", "cancelled": "Void",
}  # fmt: skip
_FIRST = (
    "Asha",
    "Rahul",
    "Priya",
    "Vikram",
    "Neha",
    "Arjun",
    "Kavya",
    "Rohan",
    "Ananya",
    "Imran",
    "Divya",
    "Sanjay",
    "Meera",
    "Karan",
    "Pooja",
    "Aditya",
    "Sneha",
    "Farhan",
    "Lakshmi",
    "Manoj",
)
_LAST = (
    "Rao",
    "Sharma",
    "Iyer",
    "Singh",
    "Patel",
    "Khan",
    "Nair",
    "Gupta",
    "Reddy",
    "Das",
    "Mehta",
    "Joshi",
    "Menon",
    "Chopra",
    "Banerjee",
    "Kulkarni",
)
_CITIES = (
    ("New Delhi", "Delhi", "110"), ("Mumbai", "Maharashtra", "400"), ("Pune", "Maharashtra", "411"),
    ("Bengaluru", "Karnataka", "560"), ("Chennai", "Tamil Nadu", "600"), ("Hyderabad", "Telangana", "500"),
    ("Kolkata", "West Bengal", "700"), ("Jaipur", "Rajasthan", "302"), ("Lucknow", "Uttar Pradesh", "226"),
    ("Ahmedabad", "Gujarat", "380"), ("Kochi", "Kerala", "682"), ("Indore", "Madhya Pradesh", "452"),
)  # fmt: skip
_STREETS = ("MG Road", "Park Street", "Linking Road", "Anna Salai", "Brigade Road", "Civil Lines")
_PRODUCT_KINDS = (
    ("TSHIRT", "Tee", "APL", "Apparel", "610910", 180.0, (299, 1299)),
    ("KURTA", "Kurta", "APL", "Apparel", "620442", 320.0, (599, 2499)),
    ("JEANS", "Jeans", "APL", "Apparel", "620342", 550.0, (999, 3499)),
    ("SNEAKER", "Sneakers", "FTW", "Footwear", "640411", 800.0, (1499, 5999)),
    ("MUG", "Mug", "HOM", "Home", "691200", 350.0, (199, 799)),
    ("BOTTLE", "Bottle", "HOM", "Home", "732393", 250.0, (249, 999)),
)
_COLOURS = (("BLU", "Blue"), ("RED", "Red"), ("BLK", "Black"), ("WHT", "White"), ("GRN", "Green"))
_SIZES = ("S", "M", "L", "XL")


def to_ms(value: datetime | int | float) -> int:
    """Epoch milliseconds from a datetime (naive = UTC) or a number already in epoch ms."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return int(value)


def fmt_ts(ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the WMS date format (api doc §3.2)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``, the product-engine date format (api doc §9)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class Product:
    """One catalogue entry (api doc §5); ``esin`` keys the stock table."""

    sku: str
    esin: str
    parent_esin: str
    name: str
    vertical: str
    vertical_name: str
    hsn: str
    weight: float
    mrp: float
    price: float
    created_ms: int
    updated_ms: int

    def to_api(self) -> dict[str, Any]:
        """The product-engine GET shape (api doc §9)."""
        return {
            "type": "BASE",
            "sku": self.sku,
            "esin": self.esin,
            "parentEsin": self.parent_esin,
            "brand": "Acme",
            "vertical": self.vertical,
            "verticalName": self.vertical_name,
            "description": f"{self.name} by Acme",
            "mrp": self.mrp,
            "unitPrice": self.price,
            "hsnCode": self.hsn,
            "taxCode": "GST5" if self.price < 1000 else "GST12",
            "weight": self.weight,
            "weightUnit": "g",
            "dimensionLength": 30.0,
            "dimensionWidth": 20.0,
            "dimensionHeight": 5.0,
            "dimensionUnit": "cm",
            "imageUrl": f"https://images.example.com/{self.sku.lower()}.jpg",
            "additionalNames": {"ean": None, "upc": None, "gtin": None, "others": [f"SELLER-{self.sku}"]},
            "status": "ACTIVE",
            "availableOn": [EXTERNAL_CHANNEL_ID],
            "createdAt": fmt_iso(self.created_ms),
            "updatedAt": fmt_iso(self.updated_ms),
        }


@dataclass
class OrderInfo:
    """Order-level facts not carried on the item rows; the §3.2 shape is assembled from this + rows."""

    id: int
    customer_order_number: str
    item_ids: list[str]
    created_ms: int
    address_line1: str
    created_body: dict[str, Any] | None = None  # the POST body, for orders created through the API
    cancellations: dict[str, tuple[str, str]] = field(default_factory=dict)  # item id -> (reason, time)


@dataclass
class SeedData:
    """Everything the generator produces; the store indexes it."""

    rows: list[dict[str, Any]]
    orders: dict[str, OrderInfo]
    products: list[Product]
    stock: dict[str, dict[str, dict[str, int]]]  # esin -> warehouse -> bucket -> qty
    stock_updated_ms: dict[str, int]  # esin -> updatedOn (whole seconds, in ms)


class _Timeline:
    """Seasonal timestamp sampler over [start, start + days)."""

    def __init__(self, rng: random.Random, start_ms: int, days: int) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.days = max(1, days)
        self.end_ms = start_ms + self.days * DAY_MS
        cum = 0
        self.cum: list[int] = []
        for w in _HOUR_WEIGHTS:
            cum += w
            self.cum.append(cum)

    def sample(self) -> int:
        day = self.rng.randrange(self.days)
        hour = bisect.bisect_right(self.cum, self.rng.random() * self.cum[-1])
        return self.start_ms + day * DAY_MS + hour * 3_600_000 + self.rng.randrange(3_600_000)


def generate(
    *,
    workspace: str,
    orders: int,
    seed: int,
    start: datetime | int = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    order_items: int | None = None,
    products: int | None = None,
) -> SeedData:
    """Build the seeded data set (see module docstring for sizing and time shape)."""
    rng = random.Random(seed)
    timeline = _Timeline(rng, to_ms(start), days)
    n_products = products if products is not None else max(12, min(500, orders // 20 + 12))
    catalogue = _make_products(rng, n_products, timeline)
    stock, stock_updated = _make_stock(rng, catalogue, timeline)

    rows: list[dict[str, Any]] = []
    order_map: dict[str, OrderInfo] = {}
    target_rows = order_items
    i = 0
    while (target_rows is None and i < orders) or (target_rows is not None and len(rows) < target_rows):
        n_items = rng.randint(1, 4)
        if target_rows is not None:
            n_items = min(n_items, target_rows - len(rows))
        info, items = _make_order(rng, workspace, i, n_items, catalogue, timeline)
        order_map[info.customer_order_number] = info
        rows.extend(items)
        i += 1
    _apply_bursts(rng, rows, timeline)
    return SeedData(rows, order_map, catalogue, stock, stock_updated)


def _make_products(rng: random.Random, n: int, timeline: _Timeline) -> list[Product]:
    out: list[Product] = []
    seen: set[str] = set()
    k = 0
    while len(out) < n:
        kind = _PRODUCT_KINDS[k % len(_PRODUCT_KINDS)]
        colour = _COLOURS[(k // len(_PRODUCT_KINDS)) % len(_COLOURS)]
        size = _SIZES[(k // (len(_PRODUCT_KINDS) * len(_COLOURS))) % len(_SIZES)]
        batch = k // (len(_PRODUCT_KINDS) * len(_COLOURS) * len(_SIZES))
        k += 1
        sku = f"{kind[0]}-{colour[0]}-{size}" + (f"-{batch}" if batch else "")
        if sku in seen:
            continue
        seen.add(sku)
        idx = len(out) + 1
        esin = f"ESN{idx:07d}{'ABCDEFGHJK'[idx % 10]}"
        low, high = kind[6]
        price = float(rng.randrange(low, high, 50) - 1 if high - low > 50 else low)
        created = timeline.start_ms - rng.randrange(30 * DAY_MS, 400 * DAY_MS)
        out.append(
            Product(
                sku=sku,
                esin=esin,
                parent_esin=f"ESN{idx:07d}P",
                name=f"{colour[1]} {kind[1]} {size}",
                vertical=kind[2],
                vertical_name=kind[3],
                hsn=kind[4],
                weight=kind[5],
                mrp=round(price * 1.3, 0),
                price=price,
                created_ms=created,
                updated_ms=created + rng.randrange(0, 20 * DAY_MS),
            )
        )
    return out


def _make_stock(
    rng: random.Random, catalogue: list[Product], timeline: _Timeline
) -> tuple[dict[str, dict[str, dict[str, int]]], dict[str, int]]:
    stock: dict[str, dict[str, dict[str, int]]] = {}
    updated: dict[str, int] = {}
    for product in catalogue:
        warehouses = rng.sample(WAREHOUSES, rng.randint(1, len(WAREHOUSES)))
        stock[product.esin] = {
            wh: {
                "sellable": rng.randint(0, 250),
                "nonSellable": rng.choice((0, 0, 0, 1, 2, 5)),
                "inwardInProcess": rng.choice((0, 0, 10, 25, 50)),
                "outwardInProcess": rng.randint(0, 12),
            }
            for wh in sorted(warehouses)
        }
        updated[product.esin] = timeline.sample() // 1000 * 1000  # whole seconds, like the filter
    return stock, updated


def _make_order(
    rng: random.Random,
    workspace: str,
    i: int,
    n_items: int,
    catalogue: list[Product],
    timeline: _Timeline,
) -> tuple[OrderInfo, list[dict[str, Any]]]:
    number = 100000 + i
    con = f"SHOP-{number}"
    created = timeline.sample()
    city, state, pin = rng.choice(_CITIES)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    cod = rng.random() < 0.35
    customer = {
        "shippingCustomerName": f"{first} {last}",
        "shippingContactPhone": f"9{rng.randrange(10**8, 10**9):09d}",
        "shippingEmail": f"{first.lower()}.{last.lower()}{number % 97}@example.com",
        "shippingCity": city,
        "shippingState": state,
        "shippingPostalCode": f"{pin}{rng.randrange(1, 100):03d}",
    }
    picks = [rng.choice(catalogue) for _ in range(n_items)]
    total = sum(p.price for p in picks)
    order_details = {
        "isCod": "1" if cod else "0",
        "orderDate": fmt_ts(created),
        "paymentType": "COD" if cod else "Prepaid",
        "externalChannelID": EXTERNAL_CHANNEL_ID,
        "shipMethod": rng.choice(("Standard", "Standard", "Express")),
        "orderTotal": total,
    }
    erp = {"eshopboxId": f"EB{number + 800000}"}
    on_hold = 1 if rng.random() < 0.03 else 0
    third_party = "1" if rng.random() < 0.1 else "0"
    items: list[dict[str, Any]] = []
    for seq, product in enumerate(picks, start=1):
        status = _STATUS_NAMES[bisect.bisect_right(_STATUS_CUM, rng.random() * _STATUS_CUM[-1])]
        return_status = None
        transaction = _TRANSACTION[status]
        if status == "delivered" and rng.random() < 0.08:
            return_status = rng.choice(("return_expected", "rto_delivered", "complete"))
            if return_status == "complete":
                transaction = "Refunded"
        if status in _TITLE_CASE and rng.random() < 0.04:
            status = _TITLE_CASE[status]
        updated = created + rng.randrange(0, min(6 * 3_600_000, timeline.end_ms - created))
        item_id = f"{number}-{seq}"
        items.append(
            {
                "objectID": f"{workspace}-{item_id}",
                "account": workspace,
                "erpDetails": erp,
                "customerOrderNumber": con,
                "vendorOrderNumber": f"#{number - 99000}",
                "serialNumber": f"SN{number}{seq:02d}",
                "orderItemID": item_id,
                "lineItemSequenceNumber": seq,
                "orderStatus": status,
                "returnStatus": return_status,
                "transactionStatus": transaction,
                "inventoryItemCode": product.sku,
                "sku": product.sku,
                "esin": product.esin,
                "productName": product.name,
                "quantity": 1,
                "customerPrice": product.price,
                "onHold": on_hold,
                "thirdPartyShipping": third_party,
                "customerDetails": customer,
                "orderDetails": order_details,
                "updatedAt": updated,
            }
        )
    info = OrderInfo(
        id=90000 + i,
        customer_order_number=con,
        item_ids=[row["orderItemID"] for row in items],
        created_ms=created,
        address_line1=f"{rng.randint(1, 250)} {rng.choice(_STREETS)}",
    )
    return info, items


def _apply_bursts(rng: random.Random, rows: list[dict[str, Any]], timeline: _Timeline) -> None:
    """Bulk status updates: 50-250 rows (first burst >= 150, above the max page) share one ms."""
    if len(rows) < 200:
        return
    n_bursts = max(1 if len(rows) < 1000 else 2, len(rows) // 2000)
    for b in range(n_bursts):
        size = min(rng.randint(150, 250) if b == 0 else rng.randint(50, 250), len(rows) // 4)
        ts = timeline.sample()
        status = rng.choice(("shipped", "ready to ship", "delivered"))
        for row in rng.sample(rows, size):
            row["updatedAt"] = ts
            row["orderStatus"] = status
            row["returnStatus"] = None
            row["transactionStatus"] = _TRANSACTION[status]


def row_schema_fields() -> frozenset[str]:
    """Every dotted leaf path a row can carry; the filters parser rejects anything else."""
    sample = _make_order(
        random.Random(0),
        "x",
        0,
        1,
        _make_products(random.Random(0), 1, _Timeline(random.Random(0), 0, 1)),
        _Timeline(random.Random(0), 0, 1),
    )[1][0]
    paths: set[str] = set()
    for key, value in sample.items():
        if isinstance(value, dict):
            paths.update(f"{key}.{sub}" for sub in value)
        else:
            paths.add(key)
    return frozenset(paths)


def status_transaction(status: str) -> str | None:
    """The transactionStatus a row gets when moved to ``status`` (None = leave unchanged)."""
    return _TRANSACTION.get(status.casefold())
