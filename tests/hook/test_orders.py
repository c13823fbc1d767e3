"""Paging, idempotent create, inventory and the API catalog helpers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

from .conftest import API, AUTH_URL, FAST, WMS, TokenMinter, conn_json

ORDER = {"customerOrderNumber": "SHOP-1", "externalChannelID": "CH1", "items": [{"sku": "A", "quantity": 1}]}
CREATE = f"{WMS}/api/order"
GET = f"{WMS}/api/order/SHOP-1"


class FakeWms:
    """respx side effects: a WMS that stores orders, optionally timing out after storing."""

    def __init__(self, post_faults: list[str]) -> None:
        self.orders: dict[str, dict] = {}
        self.post_faults = post_faults
        self.posts = 0
        self.created = 0

    def post(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        body = json.loads(request.content)
        fault = self.post_faults.pop(0) if self.post_faults else "ok"
        if fault == "timeout-before":
            raise httpx.ReadTimeout("no reply")
        if body["customerOrderNumber"] in self.orders:
            return httpx.Response(
                422, json={"customerOrderNumber": ["The customerOrderNumber has already been taken."]}
            )
        self.orders[body["customerOrderNumber"]] = {**body, "id": 1}
        self.created += 1
        if fault == "timeout-after":  # the server DID create it
            raise httpx.ReadTimeout("reply lost")
        if fault == "503-after":
            return httpx.Response(503, json={"message": "backend error"})
        return httpx.Response(200, json=self.orders[body["customerOrderNumber"]])

    def get(self, request: httpx.Request) -> httpx.Response:
        number = request.url.path.rsplit("/", 1)[-1]
        if number in self.orders:
            return httpx.Response(200, json=self.orders[number])
        return httpx.Response(404, json={"message": "Order not found"})


@pytest.fixture
def wms():
    def make(faults: list[str]) -> tuple[FakeWms, respx.MockRouter]:
        fake = FakeWms(faults)
        router = respx.mock(assert_all_called=False)
        router.start()
        router.post(AUTH_URL).mock(side_effect=TokenMinter())
        router.post(CREATE).mock(side_effect=fake.post)
        router.get(url__startswith=f"{WMS}/api/order/").mock(side_effect=fake.get)
        made.append(router)
        return fake, router

    made: list[respx.MockRouter] = []
    yield make
    for router in made:
        router.stop()


@pytest.mark.parametrize("fault", ["timeout-after", "503-after"])
def test_create_whose_reply_is_lost_is_resolved_by_get(wms, fault):
    fake, _ = wms([fault])
    result = EshopboxHook(retry_policy=FAST).create_order(ORDER)
    assert result.status == "created" and result.order["customerOrderNumber"] == "SHOP-1"
    assert fake.posts == 1 and fake.created == 1


async def test_async_create_not_sent_is_resent_after_get_confirms_absence(wms):
    fake, _ = wms(["timeout-before"])
    result = await EshopboxHook(retry_policy=FAST).acreate_order(ORDER)
    assert result.status == "created" and fake.posts == 2 and fake.created == 1


def test_duplicate_422_is_reported_as_existing(wms):
    fake, _ = wms([])
    hook = EshopboxHook(retry_policy=FAST)
    assert hook.create_order(ORDER).status == "created"
    again = hook.create_order(ORDER)
    assert again.status == "existing" and again.order["id"] == 1 and fake.created == 1


def test_create_fills_channel_from_connection(wms, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn_json(external_channel_id="CH9"))
    fake, _ = wms([])
    order = {k: v for k, v in ORDER.items() if k != "externalChannelID"}
    EshopboxHook(retry_policy=FAST).create_order(order)
    assert fake.orders["SHOP-1"]["externalChannelID"] == "CH9"


def test_order_pages_follow_has_next(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    hook = EshopboxHook(retry_policy=FAST)
    window = api.orders_window_filter(0, 2**42)
    pages = list(hook.iter_order_pages(window, per_page=10))
    assert [p.page for p in pages] == list(range(1, len(pages) + 1)) and not pages[-1].has_next
    assert all(p.has_next for p in pages[:-1])

    async def collect():
        return [p async for p in hook.aiter_order_pages(window, per_page=10)]

    import asyncio

    assert [p.hits for p in asyncio.run(collect())] == [p.hits for p in pages]
    assert hook.test_connection()[0]


def test_has_next_on_empty_page_is_an_error():
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=TokenMinter())
        mock.get(f"{API}/api/v1/orders/erp").respond(200, json={"hits": [], "hasNext": True})
        with pytest.raises(EshopboxApiError, match="unexpected response shape"):
            list(EshopboxHook(retry_policy=FAST).iter_order_pages("(f)"))


def test_order_rows_keep_their_json_text_as_sent_and_spool_writes_it_unchanged(tmp_path):
    """A sync writes each row as the API sent it; a multi-line row is written compact on one line."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_eshopbox.sync.storage import RowSpool

    one_line = '{ "orderItemID" : "1-1", "updatedAt" : 5, "price" : 1.50, "name" : "caf\\u00e9" }'
    multi_line = '{"orderItemID": "1-2",\n "updatedAt": 6}'
    body = '{"hasNext": false,\n "hits": [ ' + one_line + " ,\n" + multi_line + " ]}"
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=TokenMinter())
        mock.get(f"{API}/api/v1/orders/erp").respond(
            200, text=body, headers={"content-type": "application/json"}
        )
        page = EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")

    assert page.hits == json.loads(body)["hits"]
    assert page.hit_texts == [one_line.encode(), multi_line.encode()]
    destination = ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")
    with RowSpool(
        key=api.order_row_id, version=api.order_row_updated_at, sort_key=api.order_row_sort_key
    ) as spool:
        for row, text in zip(page.hits, page.hit_texts, strict=True):
            spool.add(row, text)
        spool.write_to(destination)
    assert (tmp_path / "rows.jsonl").read_text().splitlines() == [
        one_line,
        '{"orderItemID":"1-2","updatedAt":6}',
    ]


def test_inventory_pages_stop_on_short_page_and_updated_on_format():
    pages = [{f"E{i}": {"inventories": {}} for i in range(3)}, {"E9": {"inventories": {}}}]
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=TokenMinter())
        route = mock.get(f"{API}/api/v2/inventoryListing").mock(
            # page 0 refused (a 1-based server), pages 1 and 2, and the empty page 3 that ends the
            # read: a short page is not believed to be the last (a server may cap perPage)
            side_effect=[httpx.Response(400, json={"error": {"message": "page must be >= 1"}})]
            + [httpx.Response(200, json=p) for p in [*pages, {}]]
        )
        start = datetime(2024, 6, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        got = list(EshopboxHook(retry_policy=FAST).iter_inventory_pages((start, None), per_page=3))
    assert got == pages
    assert [c.request.url.params["page"] for c in route.calls] == ["0", "1", "2", "3"]
    params = route.calls[1].request.url.params
    assert (
        params["updatedOn"] == "2024-06-01 00:00:00," and params["perPage"] == "3" and params["page"] == "1"
    )
    assert route.calls[1].request.headers["ProxyHost"] == "acme"


def test_get_order_404_is_none_and_sensor_helpers(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    hook = EshopboxHook(retry_policy=FAST)
    assert hook.get_order("NO-SUCH-ORDER") is None
    if hasattr(live, "sb"):  # the sandbox has products and inventory
        product = live.sb.products()[0]
        assert hook.get_product(product["sku"])["esin"] == product["esin"]
        assert hook.get_inventory(sku=product["sku"]) is not None
        assert hook.get_product("NO-SUCH-SKU") is None


def test_catalog_helpers():
    assert api.orders_window_filter(1000, 2000) == "(updatedAt >= 1000 AND updatedAt < 2000)"
    with pytest.raises(ValueError):
        api.orders_window_filter(2, 1)
    assert (
        api.format_updated_on(None, datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
        == ",2024-01-02 03:04:05"
    )
    assert api.inventory_is_last_page(2, 3) and not api.inventory_is_last_page(3, 3)
    assert api.orders_pages_within_cap(100) == 10
    assert all(not e.path.startswith("/") for e in api.ENDPOINTS)
    assert len({e.name for e in api.ENDPOINTS}) == len(api.ENDPOINTS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"errors": [{"message": "x"}], "code": 400, "message": "filters is required"}},
         "filters is required"),
        ({"message": "Expired token"}, "Expired token"),
        ({"customerOrderNumber": ["The customerOrderNumber has already been taken."]},
         "customerOrderNumber: The customerOrderNumber has already been taken."),
        ({"error": "invalid_grant", "error_description": "refresh token not recognised"},
         "invalid_grant: refresh token not recognised"),
        ("Not Found", "Not Found"),
        (None, ""),
    ],
)  # fmt: skip
def test_error_message_shapes(body, message):
    assert api.error_message(body) == message


def test_duplicate_detection():
    body = {"customerOrderNumber": ["The customerOrderNumber has already been taken."]}
    assert api.is_duplicate_order_error(422, body)
    assert not api.is_duplicate_order_error(400, body)
    assert not api.is_duplicate_order_error(422, {"items": ["required"]})


def test_page_zero_is_asked_once_per_server_and_token_on_a_host(sandbox_live, monkeypatch, tmp_path):
    """The page loops' page-0 check (api.ORDERS_FIRST_PAGE): once per token on the host, whichever
    hook or process asks; a new token asks again, and a server counting pages from 0 then fails it."""
    from airflow_provider_eshopbox.exceptions import EshopboxContractError
    from airflow_provider_eshopbox.hooks.token_cache import TokenCache

    live = sandbox_live
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    window = api.orders_window_filter(0, 2**42)

    def requests_of_a_page_loop() -> int:
        live.sb.reset_stats()
        pages = len(list(EshopboxHook(retry_policy=FAST).iter_order_pages(window, per_page=10)))
        return live.sb.stats()["by_route"]["orders_list"] - pages

    assert requests_of_a_page_loop() == 1  # page 0
    assert requests_of_a_page_loop() == 0  # another hook of this process
    TokenCache.clear_process_cache()
    assert requests_of_a_page_loop() == 0  # another process of the host: the token file's fact

    def new_token(name: str) -> None:  # as when the last one expired
        monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / name))
        TokenCache.clear_process_cache()

    new_token("second")
    assert requests_of_a_page_loop() == 1 and live.exchanges() == 1  # minted in that loop
    live.sb.quirks.configure(zero_indexed_pages=True)
    try:
        new_token("third")
        with pytest.raises(EshopboxContractError, match="ORDERS_FIRST_PAGE"):
            requests_of_a_page_loop()
    finally:
        live.sb.quirks.clear()
