"""list_purchase_orders at scale (issue 12): each source gives one page's worth, a heap merges them.

The server talks to the simulators over real HTTP on 127.0.0.1, so the requests each vendor
received (limit, date bounds) are seen on the wire. Orders share creation times within and across
vendors, so page boundaries fall inside ties. Speed is measured in bench/listing.py, not here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from mcp import Client
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.config import Settings
from parts_mcp.domain import Money, Order, OrderLine, OrderStatus
from parts_mcp.orders.ledger import Intent
from parts_mcp.orders.states import IntentState
from parts_mcp.server.app import build_server

from conftest import BOTH_STORES, World, serve, structured

pytestmark = [pytest.mark.asyncio, BOTH_STORES]

SERVED = ("skynet", "keyloop", "factoryai", "shopmonkey")  # two answered by the ledger, two by their own lists
OPEN_STATUSES = {"completed", "cancelled", "rejected"}  # "open" is every status but these


class Wire:
    """Every request the simulators received: path and query, as on the wire."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, dict[str, list[str]]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["path"], parse_qs(scope["query_string"].decode())))
        await self.app(scope, receive, send)

    def lists(self, path: str) -> list[dict[str, list[str]]]:
        return [query for seen, query in self.seen if seen == path]


@asynccontextmanager
async def listing_server(world: World) -> AsyncIterator[tuple[Client, Wire]]:
    """A production server (no sandbox) on `world`'s ledger, its vendors the simulators over HTTP."""
    wire = Wire(world.sandbox.asgi_app())
    with serve(wire) as base:
        vendors = {key: v.settings for key, v in world.sandbox.vendors().items() if key in SERVED}
        on_wire = json.loads(json.dumps(vendors).replace("http://", "").replace(".sandbox.invalid", ""))
        served = {k: {**s, "base_url": f"{base}/{s['base_url']}"} for k, s in on_wire.items()}
        settings = Settings.model_validate({"vendors": served})
        async with Client(build_server(settings, ledger=world.ledger, clock=world.clock.now)) as client:
            yield client, wire


async def place_in_ledger(world: World, vendor: str, n: int, status: OrderStatus) -> None:
    """An order this server placed at a vendor that cannot list, recorded as placement records it."""
    created = world.clock.now().replace(microsecond=0)  # whole seconds, as Factory AI shows its own
    price = Money(amount=Decimal("3.50"), currency="USD")
    line = OrderLine.priced(part_id=None, part_number="MS21042L3", name="Nut", quantity=1, unit_price=price)
    order = Order(
        vendor=vendor,
        order_id=f"{vendor[:3].upper()}-{n:04d}",
        po_number=f"PO-S{n}",
        status=status,
        lines=[line],
        total=line.line_total,
        created_at=created,
    )
    intent = Intent(
        id=str(uuid.uuid4()),
        vendor=vendor,
        po_number=f"PO-S{n}",
        content_hash=uuid.uuid4().hex,
        attempt=1,
        idempotency_key=uuid.uuid4().hex,
        state=IntentState.PENDING,
        request={"items": [{"part_id": "p", "quantity": 1}], "notes": None, "options": {}},
        preview={},
        confirmed_total="3.50 USD",
        confirmed_by="test",
        created_at=created,
        updated_at=created,
    )
    await world.ledger.claim(intent, None, "test")
    await world.ledger.transition(intent.id, IntentState.SENT, actor="test")
    order_json = order.model_dump(mode="json")
    await world.ledger.transition(
        intent.id, IntentState.PLACED, actor="test", order_id=order.order_id, order=order_json
    )


async def fill(world: World, steps: int, *, ties: bool) -> str:
    """Orders at both ledger vendors and at Factory AI, newer than any the simulators hold; with `ties`,
    many share a second (the sort key's tie-break by vendor and id then decides), within a vendor and
    across vendors. Returns the time before the first (the simulators' own orders are older)."""
    world.clock.advance(timedelta(days=1))
    start = world.clock.now().replace(microsecond=0).isoformat()
    factoryai = world.sandbox.vendors()["factoryai"]
    headers = {"Authorization": f"Bearer {factoryai.settings['api_key']}"}
    async with httpx2.AsyncClient(transport=factoryai.transport, base_url=factoryai.base_url) as http:
        for step in range(steps):
            statuses = (OrderStatus.DRAFT, OrderStatus.ORDERED, OrderStatus.RECEIVED)
            await place_in_ledger(world, ("skynet", "keyloop")[step % 2], step, statuses[step % 3])
            for _ in range(1 + (ties and step % 4 == 0)):
                body = {"supplierId": "supplier-001", "items": [{"partId": "part-003", "quantity": 1}]}
                answer = await http.post("/part-orders", json=body, headers=headers)
                assert answer.status_code == 201, answer.text
            world.clock.advance(timedelta(seconds=0 if ties and step % 3 == 1 else 1))
    return start


async def all_pages(client: Client, sizes: list[int], **filters: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    for turn in range(1000):
        args = {**filters, "limit": sizes[turn % len(sizes)], **({"cursor": cursor} if cursor else {})}
        page = structured(await client.call_tool("list_purchase_orders", args))
        assert not page.get("vendor_errors"), page
        seen += page["orders"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


def keys(orders: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["vendor"], o["order_id"]) for o in orders]


def sort_key(order: Mapping[str, Any]) -> tuple[datetime, str, str]:
    return (datetime.fromisoformat(order["created_at"]), order["vendor"], order["order_id"])


async def test_paging_across_the_ledger_and_listing_vendors_gives_every_order_once_in_order(world: World) -> None:
    start = await fill(world, 30, ties=True)
    async with listing_server(world) as (client, _):
        whole = await all_pages(client, [100])
        recent = [o for o in whole if o["created_at"] >= start]
        for sizes in ([1, 2], [3, 7, 4]):
            assert keys(await all_pages(client, sizes, created_after=start)) == keys(recent)
        assert keys(await all_pages(client, [20, 33])) == keys(whole)
    assert whole == sorted(whole, key=sort_key, reverse=True)
    assert len(set(keys(whole))) == len(whole)
    ledger = {(o["vendor"], o["order_id"]) for o in whole if o["source"] == "ledger"}
    assert len(ledger) == 30 and {v for v, _ in ledger} == {"skynet", "keyloop"}
    factoryai = {("factoryai", i) for i in world.sandbox.factoryai.order_ids()}
    shopmonkey = {("shopmonkey", r["id"]) for r in world.sandbox.shopmonkey.purchase_orders}
    assert set(keys(whole)) == ledger | factoryai | shopmonkey
    assert len(recent) == 30 + 38 and {o["vendor"] for o in recent} == {"skynet", "keyloop", "factoryai"}


async def test_a_listing_vendor_is_asked_for_one_page_after_the_cursor_not_for_everything(world: World) -> None:
    await fill(world, 40, ties=False)
    async with listing_server(world) as (client, wire):
        first = structured(await client.call_tool("list_purchase_orders", {"limit": 5}))
        wire.seen.clear()
        second = structured(
            await client.call_tool("list_purchase_orders", {"limit": 5, "cursor": first["next_cursor"]})
        )
    assert len(world.sandbox.factoryai.order_ids()) > 40
    factoryai = wire.lists("/factoryai/prod/part-orders")
    shopmonkey = wire.lists("/shopmonkey/v3/purchase_order")
    # One request each, for the page and one more order created no later than the cursor's order (and
    # that order itself, which the inclusive bound brings back, where it is the vendor's).
    last = first["orders"][-1]["vendor"]
    assert [q["limit"] for q in factoryai] == [[str(6 + (last == "factoryai"))]]
    assert [q["limit"] for q in shopmonkey] == [[str(6 + (last == "shopmonkey"))]]
    watermark = datetime.fromisoformat(first["orders"][-1]["created_at"])
    created_before = datetime.fromisoformat(factoryai[0]["createdBefore"][0])
    assert watermark < created_before <= watermark + timedelta(seconds=2)
    lte = json.loads(shopmonkey[0]["where"][0])["createdDate"]["lte"]
    assert watermark <= datetime.fromisoformat(lte) < watermark + timedelta(seconds=1)
    assert len(second["orders"]) == 5 and not set(keys(first["orders"])) & set(keys(second["orders"]))


def matching(order: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    created = datetime.fromisoformat(order["created_at"])
    status = filters.get("status")
    return (
        (status is None or (order["status"] not in OPEN_STATUSES if status == "open" else order["status"] == status))
        and ("vendor" not in filters or order["vendor"] == filters["vendor"])
        and ("po_number" not in filters or (order["po_number"] or "").casefold() == filters["po_number"].casefold())
        and ("created_after" not in filters or created >= datetime.fromisoformat(filters["created_after"]))
        and ("created_before" not in filters or created < datetime.fromisoformat(filters["created_before"]))
    )


async def test_filters_pushed_to_the_ledger_and_the_vendors_select_what_the_whole_listing_holds(world: World) -> None:
    start = await fill(world, 24, ties=True)
    async with listing_server(world) as (client, _):
        whole = await all_pages(client, [100])
        recent = sorted({o["created_at"] for o in whole if o["created_at"] >= start})
        middle, newest = recent[len(recent) // 2], recent[-3]
        cases: list[dict[str, Any]] = [
            {"status": "draft"},
            {"status": "open", "created_after": start},
            {"status": "ordered", "created_after": start},
            {"po_number": "po-s7"},
            {"vendor": "keyloop", "status": "received"},
            {"created_after": middle, "created_before": newest},
            {"created_before": middle, "created_after": start, "status": "draft"},
        ]
        for filters in cases:
            wanted = [o for o in whole if matching(o, filters)]
            assert 0 < len(wanted) < len(whole), filters  # every case selects something, and not everything
            assert keys(await all_pages(client, [3, 5], **filters)) == keys(wanted), filters
