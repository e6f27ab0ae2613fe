"""Contract tests of the Shopmonkey simulator on its own (raw HTTP), and of the client's error mapping against it.

Expected behaviour comes from the vendor document (seeds/004) and docs/vendors.md section 5; where
the documents are silent, the test docstring says the behaviour is the simulator's own choice.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from parts_mcp.domain import OrderItem, OrderStatus
from parts_mcp.sandbox import ManualClock, Sandbox
from parts_mcp.sandbox._faults import SimulatorTransport
from parts_mcp.sandbox.shopmonkey import (
    INVENTORY,
    MAX_LIMIT,
    PURCHASE_ORDER_COUNT,
    SANDBOX_API_KEY,
    STATUSES,
    ShopmonkeySimulator,
)
from parts_mcp.vendors.base import (
    NotSupported,
    OrderQuery,
    OrderRequest,
    VendorAuthError,
    VendorInvalidRequest,
    VendorNotFound,
    VendorRateLimited,
)
from parts_mcp.vendors.shopmonkey import ShopmonkeyClient

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
BASE = "http://shopmonkey.test/v3"


def http(simulator: ShopmonkeySimulator, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    mounted = Starlette(routes=[Mount("/v3", app=simulator.app)])  # where the real API lives
    return httpx2.AsyncClient(
        transport=SimulatorTransport(mounted), base_url=BASE, headers=AUTH if headers is None else headers
    )


def client(transport: httpx2.AsyncClient, api_key: str = SANDBOX_API_KEY) -> ShopmonkeyClient:
    return ShopmonkeyClient("shopmonkey", base_url=BASE, api_key=api_key, http=transport)


def assert_error_shape(response: httpx2.Response, status: int) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status
    assert body["success"] is False and isinstance(body["code"], str) and isinstance(body["message"], str)
    return body


# -- seeded data ----------------------------------------------------------------------------------


def test_seeded_data_covers_every_status_and_both_spellings_deterministically() -> None:
    first, again = ShopmonkeySimulator(), ShopmonkeySimulator()
    pos = first.purchase_orders
    assert pos == again.purchase_orders  # a fixed seed: the same data every run
    assert len(pos) == PURCHASE_ORDER_COUNT >= 150
    assert set(Counter(po["status"] for po in pos)) == set(STATUSES)
    assert len({po["id"] for po in pos}) == len(pos)
    assert any(po.get("fullfiledDate") for po in pos) and any(po.get("fulfilledDate") for po in pos)
    assert any("totalPriceCents" in po for po in pos) and any("totalCostCents" in po for po in pos)
    assert any(isinstance(po["number"], str) for po in pos) and any(isinstance(po["number"], int) for po in pos)
    assert any("items" in po for po in pos)
    assert any(po.get("parts") and po.get("tires") and po.get("fees") for po in pos)
    assert all(po["vendor"]["name"] for po in pos)
    assert len(INVENTORY) >= 25


# -- envelope, paging, filters --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_clamps_limit_to_100_silently_and_pages_with_skip() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator) as c:
        first = (await c.get("/purchase_order", params={"limit": 500})).json()
        rest = (await c.get("/purchase_order", params={"limit": 500, "skip": 100})).json()
    assert first["success"] is True
    assert len(first["data"]) == MAX_LIMIT and first["meta"] == {"hasMore": True, "total": PURCHASE_ORDER_COUNT}
    assert len(rest["data"]) == PURCHASE_ORDER_COUNT - MAX_LIMIT and rest["meta"]["hasMore"] is False
    ids = [po["id"] for po in first["data"] + rest["data"]]
    assert sorted(ids) == sorted(po["id"] for po in simulator.purchase_orders)


@pytest.mark.asyncio
async def test_where_filters_by_status_and_ignores_mongo_operators() -> None:
    """Integrators report `where` takes bare gte/lte and silently drops `$gte`."""
    simulator = ShopmonkeySimulator()
    async with http(simulator) as c:
        drafts = (
            await c.get("/purchase_order", params={"limit": 100, "where": json.dumps({"status": "Draft"})})
        ).json()
        dropped = (
            await c.get(
                "/purchase_order", params={"limit": 1, "where": json.dumps({"createdDate": {"$gte": "2099-01-01"}})}
            )
        ).json()
        bad = await c.get("/purchase_order", params={"where": "{not json"})
    assert {po["status"] for po in drafts["data"]} == {"Draft"}
    assert drafts["meta"]["total"] == sum(po["status"] == "Draft" for po in simulator.purchase_orders)
    assert dropped["meta"]["total"] == PURCHASE_ORDER_COUNT
    body = assert_error_shape(bad, 400)
    assert "where" in body["message"]


@pytest.mark.asyncio
async def test_get_and_delete_a_purchase_order() -> None:
    simulator = ShopmonkeySimulator()
    po = simulator.purchase_orders[3]
    async with http(simulator) as c:
        got = (await c.get(f"/purchase_order/{po['id']}")).json()
        deleted = (await c.delete(f"/purchase_order/{po['id']}")).json()
        gone = await c.get(f"/purchase_order/{po['id']}")
    assert got == {"success": True, "data": po}
    assert deleted == {"success": True, "data": {"id": po["id"]}}
    assert_error_shape(gone, 404)
    assert len(simulator.purchase_orders) == PURCHASE_ORDER_COUNT - 1


@pytest.mark.asyncio
async def test_there_is_no_way_to_create_a_purchase_order() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator) as c:
        response = await c.post("/purchase_order", json={"status": "Draft"})
    assert not response.is_success
    assert_error_shape(response, 405)
    assert len(simulator.purchase_orders) == PURCHASE_ORDER_COUNT


@pytest.mark.asyncio
async def test_purchase_order_lines_embed_their_purchase_order() -> None:
    simulator = ShopmonkeySimulator()
    po = next(p for p in simulator.purchase_orders if p.get("tires"))
    async with http(simulator) as c:
        part = (await c.get(f"/purchase_order_part/{po['parts'][0]['id']}")).json()["data"]
        tire = (await c.get(f"/purchase_order_tire/{po['tires'][0]['id']}")).json()["data"]
    assert part["purchaseOrder"]["id"] == po["id"] == tire["purchaseOrder"]["id"]
    assert "parts" not in part["purchaseOrder"]


@pytest.mark.asyncio
async def test_inventory_search_pages_and_get_by_id() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator) as c:
        page = (await c.post("/inventory_part/search", json={"limit": 10, "skip": 5, "where": {}})).json()
        one = (await c.get(f"/inventory_part/{INVENTORY[0].id}")).json()
        bad = await c.post("/inventory_part/search", json={"limit": "ten"})
    assert [p["id"] for p in page["data"]] == [p.id for p in INVENTORY[5:15]]
    assert page["meta"] == {"hasMore": True, "total": len(INVENTORY)}
    assert one["data"]["wholesaleCostCents"] == INVENTORY[0].wholesale_cost_cents
    assert assert_error_shape(bad, 400)["data"] == {"field": "body/limit"}


# -- auth, faults, rate limits --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_missing_or_wrong_key_is_401() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator, headers={}) as c:
        missing = await c.get("/purchase_order")
    async with http(simulator, headers={"Authorization": "Bearer nope"}) as c:
        wrong = await c.get("/purchase_order")
    assert_error_shape(missing, 401)
    assert_error_shape(wrong, 401)


@pytest.mark.asyncio
async def test_faults_answer_429_with_retry_after_and_500() -> None:
    simulator = ShopmonkeySimulator()
    simulator.faults.arm("rate_limit")
    simulator.faults.arm("server_error")
    async with http(simulator) as c:
        limited = await c.get("/purchase_order")
        failed = await c.get("/purchase_order")
        fine = await c.get("/purchase_order")
    assert_error_shape(limited, 429)
    assert limited.headers["retry-after"] == "1"
    assert_error_shape(failed, 500)
    assert fine.status_code == 200


@pytest.mark.asyncio
async def test_a_burst_over_the_limit_is_429_until_the_window_passes() -> None:
    """Shopmonkey's limits are undocumented: the simulator's burst limit is its own choice."""
    clock = ManualClock(start=1_000_000.0)
    simulator = ShopmonkeySimulator(clock=clock.now, burst_limit=3, burst_window=10.0)
    async with http(simulator) as c:
        statuses = [(await c.get("/purchase_order")).status_code for _ in range(4)]
        limited = await c.get("/purchase_order")
        clock.advance(10)
        after = await c.get("/purchase_order")
    assert statuses == [200, 200, 200, 429]
    assert limited.headers["retry-after"] == "10"
    assert after.status_code == 200


# -- the client against the documented error shape ------------------------------------------------


@pytest.mark.asyncio
async def test_the_client_maps_documented_errors_to_typed_vendor_errors() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator, headers={}) as transport:
        sm = client(transport)
        with pytest.raises(VendorNotFound):
            await sm.get_order("ffffffffffffffffffffffff")
        with pytest.raises(VendorInvalidRequest) as invalid:
            await sm._http.request("GET", "/purchase_order", params={"limit": "many"}, retry=True)
        assert invalid.value.field == "limit"
        simulator.faults.arm("rate_limit", times=5)
        with pytest.raises(VendorRateLimited) as limited:
            await sm.list_orders(OrderQuery(), 10)
        assert limited.value.retry_after == 1
        simulator.faults.clear()
        wrong = client(transport, api_key="sm_wrong_key_123456")
        with pytest.raises(VendorAuthError) as auth:
            await wrong.lookup(["PF63E"])
        assert "sm_wrong_key_123456" not in auth.value.message


@pytest.mark.asyncio
async def test_the_client_refuses_to_place_with_advice_and_sends_nothing() -> None:
    simulator = ShopmonkeySimulator()
    async with http(simulator, headers={}) as transport:
        sm = client(transport)
        request = OrderRequest("shopmonkey", "PO-1", (OrderItem(part_id=INVENTORY[0].id, quantity=1),))
        with pytest.raises(NotSupported) as refused:
            await sm.preview(request, {})
    assert refused.value.capability == "place"
    assert "web app" in refused.value.message and "get_order" in refused.value.message
    assert simulator.requests == []


@pytest.mark.asyncio
async def test_the_client_filters_lists_on_the_server_where_it_can() -> None:
    sandbox = Sandbox()
    vendor = sandbox.vendors()["shopmonkey"]
    async with httpx2.AsyncClient(transport=vendor.transport) as transport:
        sm = ShopmonkeyClient("shopmonkey", base_url=vendor.base_url, api_key=SANDBOX_API_KEY, http=transport)
        cancelled = await sm.list_orders(OrderQuery(statuses=frozenset({OrderStatus.CANCELLED})), 1000)
        shipped = await sm.list_orders(OrderQuery(statuses=frozenset({OrderStatus.SHIPPED})), 1000)
    expected = {po["id"] for po in sandbox.shopmonkey.purchase_orders if po["status"] == "Cancelled"}
    assert {o.order_id for o in cancelled} == expected
    assert shipped == []  # no Shopmonkey status maps to shipped: not even asked
    assert len(sandbox.shopmonkey.requests) == 1
