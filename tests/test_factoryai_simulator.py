"""Contract tests of the Factory AI simulator on its own, over raw HTTP.

Expected behaviour comes from the vendor document (seeds/001) and docs/vendors.md section 2;
where the vendor is silent, the test docstring says the behaviour is the simulator's own choice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from parts_mcp.sandbox import ManualClock, Sandbox
from parts_mcp.sandbox._faults import SimulatorTransport
from parts_mcp.sandbox.factoryai import APPROVAL_LIMIT, PARTS, SANDBOX_API_KEY, STATUSES, FactoryAISimulator

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


def _client(sim: FactoryAISimulator, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=SimulatorTransport(sim.app), base_url="http://f7i.test", headers=AUTH if headers is None else headers
    )


def _future(sim: FactoryAISimulator, days: int = 5) -> str:
    return (datetime.fromtimestamp(sim.clock(), UTC) + timedelta(days=days)).strftime("%Y-%m-%dT00:00:00Z")


def _documented_create(sim: FactoryAISimulator) -> dict[str, Any]:
    """The vendor's create example, with its delivery date moved into the simulator's future."""
    return {
        "supplierId": "supplier-002",
        "priority": "urgent",
        "requestedDeliveryDate": _future(sim),
        "items": [
            {
                "partId": "part-002",
                "quantity": 5,
                "unitCost": 285.00,
                "notes": "Digital multimeters for maintenance team",
            },
            {"partId": "part-003", "quantity": 10, "unitCost": 12.50, "notes": "Replacement filters"},
        ],
        "shippingAddress": {
            "name": "Factory AI Warehouse",
            "address1": "123 Industrial Way",
            "city": "Manufacturing City",
            "state": "CA",
            "postalCode": "90210",
            "country": "USA",
        },
        "notes": "Urgent order for scheduled maintenance",
        "requiresApproval": True,
        "justification": "Required for critical equipment maintenance scheduled next week",
    }


# -- seed data ----------------------------------------------------------------------------------------


async def test_seed_is_deterministic_and_covers_every_status_and_several_suppliers() -> None:
    one, two = FactoryAISimulator(), FactoryAISimulator()
    assert [one.order(i) for i in one.order_ids()] == [two.order(i) for i in two.order_ids()]
    orders = [one.order(i) for i in one.order_ids()]
    assert len(orders) >= 150
    statuses = Counter(o["status"] for o in orders)
    assert set(STATUSES) <= set(statuses) and min(statuses[s] for s in STATUSES) >= 8
    assert len({o["supplierId"] for o in orders}) >= 3
    assert len(PARTS) >= 25 and {"SKF-6204", "FLUKE-175", "FILTER-001"} <= {p.part_number for p in PARTS}
    for order in orders:
        totals = order["totals"]
        assert round(totals["subtotal"] * 0.08, 2) == pytest.approx(totals["tax"])
        assert totals["total"] == pytest.approx(totals["subtotal"] + totals["tax"] + totals["shipping"])


async def test_the_documented_get_example_is_seeded_verbatim() -> None:
    async with _client(FactoryAISimulator()) as client:
        response = await client.get("/part-orders/po-001")
    assert response.status_code == 200
    body = response.json()
    assert body["orderNumber"] == "PO-2024-001" and body["status"] == "received"
    assert body["totals"] == {"subtotal": 1887.50, "tax": 151.00, "shipping": 25.00, "total": 2063.50}
    assert body["items"] == [
        {
            "partId": "part-001",
            "partNumber": "SKF-6204",
            "partName": "Ball Bearing 6204",
            "quantity": 25,
            "receivedQuantity": 25,
            "unitCost": 75.50,
            "totalCost": 1887.50,
            "status": "received",
        }
    ]
    assert [h["status"] for h in body["statusHistory"]] == ["draft", "pending_approval", "approved", "sent", "received"]
    assert body["trackingNumber"] == "1Z999AA1234567890" and body["invoiceNumber"] == "INV-2024-001"
    assert body["supplierContact"]["contactPerson"] == "Bob Smith" and body["paymentTerms"] == "Net 30"
    assert body["attachments"][0]["filename"] == "purchase_order.pdf"


# -- auth and errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": SANDBOX_API_KEY}])
async def test_missing_or_wrong_key_is_401_in_the_generic_shape(headers: dict[str, str]) -> None:
    async with _client(FactoryAISimulator(), headers) as client:
        response = await client.get("/parts")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "code", "timestamp"} and body["code"] == "UNAUTHORIZED"


async def test_unknown_order_is_404_with_its_id() -> None:
    async with _client(FactoryAISimulator()) as client:
        response = await client.get("/part-orders/po-999")
    assert response.status_code == 404
    assert response.json() == {"error": "Part order not found", "orderId": "po-999"}


# -- parts and inventory ------------------------------------------------------------------------------


async def test_parts_are_a_bare_array_with_the_documented_fields_and_filters() -> None:
    async with _client(FactoryAISimulator()) as client:
        found = (await client.get("/parts", params={"search": "skf-6204"})).json()
        in_stock = (await client.get("/parts", params={"inStock": "false"})).json()
        critical = (await client.get("/parts", params={"critical": "true", "limit": 3, "offset": 1})).json()
        one = (await client.get("/parts/part-002")).json()
        bad = await client.get("/parts", params={"inStock": "maybe"})
    assert isinstance(found, list)
    [part] = found
    assert part["partId"] == "part-001" and part["cost"] == 75.50 and part["unit"] == "each"
    assert {"partNumber", "name", "description", "manufacturer", "tenantId", "site", "componentIds"} <= set(part)
    assert {p["partNumber"] for p in in_stock} >= {"SKF-6305-2RS", "ENC-HS35R-1024"}
    assert len(critical) == 3
    assert one["partNumber"] == "FLUKE-175"
    assert bad.status_code == 400 and "inStock" in bad.json()["details"]


async def test_inventory_is_a_bare_array_with_part_details() -> None:
    async with _client(FactoryAISimulator()) as client:
        [record] = (await client.get("/inventory", params={"search": "SKF-6204"})).json()
        out = (await client.get("/inventory", params={"outOfStock": "true"})).json()
        at_site = (await client.get("/inventory/part-001", params={"site": "main-facility"})).json()
        elsewhere = (await client.get("/inventory/part-001", params={"site": "north-plant"})).json()
    assert record["quantity"] == 15 and record["minStockLevel"] == 5 and record["maxStockLevel"] == 50
    assert record["partDetails"] == {
        "partNumber": "SKF-6204",
        "name": "Ball Bearing 6204",
        "unit": "each",
        "cost": 75.5,
    }
    assert out and all(r["quantity"] == 0 for r in out)
    assert at_site["exists"] is True and elsewhere["exists"] is False


# -- listing ------------------------------------------------------------------------------------------


async def test_list_paginates_with_the_documented_envelope() -> None:
    sim = FactoryAISimulator()
    async with _client(sim) as client:
        first = (await client.get("/part-orders")).json()
        seen: list[str] = []
        offset = 0
        while True:
            page = (await client.get("/part-orders", params={"limit": 37, "offset": offset})).json()
            seen += [o["id"] for o in page["partOrders"]]
            if not page["pagination"]["hasMore"]:
                break
            offset += 37
    assert first["pagination"] == {"total": len(sim.order_ids()), "limit": 20, "offset": 0, "hasMore": True}
    assert len(seen) == len(set(seen)) == len(sim.order_ids())
    created = [sim.order(i)["createdAt"] for i in seen]
    assert created == sorted(created, reverse=True)  # undocumented: newest first


async def test_list_filters_by_status_supplier_dates_and_urgency() -> None:
    sim = FactoryAISimulator()
    async with _client(sim) as client:
        shipped = (await client.get("/part-orders", params={"status": "shipped", "limit": 100})).json()
        supplier = (await client.get("/part-orders", params={"supplier": "supplier-003", "limit": 100})).json()
        window = (
            await client.get(
                "/part-orders",
                params={"createdAfter": "2024-10-01T09:00:00Z", "createdBefore": "2024-10-16T00:00:00Z"},
            )
        ).json()
        urgent = (await client.get("/part-orders", params={"urgent": "true", "limit": 100})).json()
        bad = await client.get("/part-orders", params={"status": "lost"})
    assert {o["status"] for o in shipped["partOrders"]} == {"shipped"}
    assert shipped["pagination"]["total"] == len(sim.order_ids("shipped"))
    assert {o["supplierName"] for o in supplier["partOrders"]} == {"Midwest Bearing & Transmission"}
    # Undocumented: both bounds are strict, so po-001 (created exactly at createdAfter) is left out.
    assert [o["id"] for o in window["partOrders"]] == ["po-002"]
    assert {o["priority"] for o in urgent["partOrders"]} <= {"urgent", "critical"}
    assert bad.status_code == 400 and "status" in bad.json()["details"]


@pytest.mark.parametrize(("term", "field"), [("PO-2024-002", "orderNumber"), ("pump", "notes"),
                                              ("lakeside safety", "supplierName")])  # fmt: skip
async def test_search_matches_order_number_notes_and_supplier_name(term: str, field: str) -> None:
    async with _client(FactoryAISimulator()) as client:
        page = (await client.get("/part-orders", params={"search": term, "limit": 100})).json()
    assert page["partOrders"]
    assert all(term.casefold() in (o[field] or "").casefold() for o in page["partOrders"])


# -- creating -----------------------------------------------------------------------------------------


async def test_create_reproduces_the_documented_example_totals() -> None:
    """8% tax and supplier-002's flat 15.00 shipping: subtotal 1550, tax 124, total 1689 as documented."""
    sim = FactoryAISimulator()
    async with _client(sim) as client:
        response = await client.post("/part-orders", json=_documented_create(sim))
    assert response.status_code == 201  # undocumented: the vendor shows only the body
    body = response.json()
    assert body["status"] == "draft" and body["orderNumber"].startswith("PO-")
    assert body["totals"] == {"subtotal": 1550.00, "tax": 124.00, "shipping": 15.00, "total": 1689.00}
    assert body["supplierName"] == "Test Equipment Direct" and body["approvalRequired"] is True
    assert [i["totalCost"] for i in body["items"]] == [1425.00, 125.00]
    [truth] = sim.orders
    assert truth["id"] == body["id"] and truth["justification"].startswith("Required for critical")


async def test_create_refuses_bad_data_with_details_per_field() -> None:
    sim = FactoryAISimulator()
    body = {**_documented_create(sim), "requestedDeliveryDate": "2020-01-01T00:00:00Z", "items": []}
    async with _client(sim) as client:
        response = await client.post("/part-orders", json=body)
        unknown = await client.post(
            "/part-orders", json={"supplierId": "supplier-9", "items": [{"partId": "part-999", "quantity": 0}]}
        )
    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid order data",
        "details": {
            "requestedDeliveryDate": "Delivery date cannot be in the past",
            "items": "At least one item is required",
        },
    }
    details = unknown.json()["details"]
    assert set(details) == {"supplierId", "items[0].partId", "items[0].quantity"}
    assert sim.orders == []


async def test_orders_above_the_approval_limit_need_requires_approval() -> None:
    """Simulator's choice: 403 {error, reason} above APPROVAL_LIMIT unless requiresApproval is set."""
    sim = FactoryAISimulator()
    big = {"supplierId": "supplier-002", "items": [{"partId": "part-002", "quantity": 40, "unitCost": 285.0}]}
    assert APPROVAL_LIMIT < 40 * 285
    async with _client(sim) as client:
        refused = await client.post("/part-orders", json=big)
        allowed = await client.post(
            "/part-orders", json={**big, "requiresApproval": True, "justification": "Lab refit"}
        )
    assert refused.status_code == 403
    assert refused.json()["error"] == "Insufficient permissions" and "requiresApproval" in refused.json()["reason"]
    assert allowed.status_code == 201
    assert [o["id"] for o in sim.orders] == [allowed.json()["id"]]


# -- updating -----------------------------------------------------------------------------------------


async def test_update_upserts_items_and_edits_stop_once_sent() -> None:
    sim = FactoryAISimulator()
    async with _client(sim) as client:
        created = (await client.post("/part-orders", json=_documented_create(sim))).json()
        order_id = created["id"]
        update = {
            "priority": "high",
            "requestedDeliveryDate": _future(sim, 3),
            "notes": "Updated delivery date due to urgent maintenance requirement",
            "items": [{"partId": "part-002", "quantity": 8, "unitCost": 280.00, "notes": "Increased quantity"}],
        }
        updated = (await client.put(f"/part-orders/{order_id}", json=update)).json()
        # The documented approver example, then send it to the supplier.
        approved = await client.put(
            f"/part-orders/{order_id}/status",
            json={
                "status": "approved",
                "notes": "Approved for urgent maintenance requirement",
                "approvedBy": "user-002",
            },
        )
        sent = await client.put(f"/part-orders/{order_id}/status", json={"status": "sent"})
        locked = await client.put(f"/part-orders/{order_id}", json={"priority": "low"})
        backwards = await client.put(f"/part-orders/{order_id}/status", json={"status": "draft"})
    # The documented arithmetic: the untouched FILTER-001 line stays, 2240 + 125 = 2365, tax 189.20.
    assert updated["totals"]["subtotal"] == 2365.00 and updated["totals"]["tax"] == 189.20
    assert [i["partId"] for i in updated["items"]] == ["part-002"]
    assert approved.status_code == 200 and approved.json()["approvedByName"] == "Sarah Wilson"
    assert [h["status"] for h in approved.json()["statusHistory"]] == ["draft", "approved"]
    assert sent.status_code == 200
    assert locked.status_code == 409
    assert locked.json() == {"error": "Cannot update order", "reason": "Order has already been sent to supplier"}
    assert backwards.status_code == 409 and "reason" in backwards.json()
    assert sim.orders[0]["status"] == "sent"


async def test_approving_above_the_approvers_limit_is_403() -> None:
    """The documented 403: the key's own user cannot approve orders above $1000."""
    sim = FactoryAISimulator()
    async with _client(sim) as client:
        created = (await client.post("/part-orders", json=_documented_create(sim))).json()
        response = await client.put(f"/part-orders/{created['id']}/status", json={"status": "approved"})
    assert response.status_code == 403
    assert response.json() == {"error": "Insufficient permissions", "reason": "User cannot approve orders above $1000"}


# -- faults ---------------------------------------------------------------------------------------------


async def test_server_error_and_rate_limit_faults_fire_once() -> None:
    sim = FactoryAISimulator()
    sim.faults.arm("server_error")
    sim.faults.arm("rate_limit")
    async with _client(sim) as client:
        limited = await client.get("/parts")
        failed = await client.get("/parts")
        fine = await client.get("/parts")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert failed.status_code == 500 and set(failed.json()) == {"error", "code", "timestamp"}
    assert fine.status_code == 200


async def test_a_burst_over_the_window_is_429_until_the_clock_moves_on() -> None:
    clock = ManualClock(1_800_000_000)
    sim = FactoryAISimulator(clock=clock.now, rate_limit=3, rate_window=60)
    async with _client(sim) as client:
        statuses = [(await client.get("/parts")).status_code for _ in range(4)]
        limited = await client.get("/parts")
        clock.advance(61)
        again = await client.get("/parts")
    assert statuses == [200, 200, 200, 429]
    assert limited.headers["retry-after"] == "60"
    assert again.status_code == 200


async def test_drop_after_commit_creates_the_order_and_loses_the_answer() -> None:
    sim = FactoryAISimulator()
    sim.faults.arm("drop_after_commit")
    async with _client(sim) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post("/part-orders", json=_documented_create(sim))
    assert len(sim.orders) == 1
    [request] = sim.requests
    assert request.dropped and request.status == 201


async def test_order_failed_writes_nothing() -> None:
    sim = FactoryAISimulator()
    sim.faults.arm("order_failed")
    async with _client(sim) as client:
        failed = await client.post("/part-orders", json=_documented_create(sim))
        placed = await client.post("/part-orders", json=_documented_create(sim))
    assert failed.status_code == 500 and placed.status_code == 201
    assert len(sim.orders) == 1


async def test_unknown_fault_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FactoryAISimulator().faults.arm("order_faild")


async def test_the_sandbox_mounts_it_under_prod_with_admin_routes() -> None:
    sandbox = Sandbox()
    vendor = sandbox.vendors()["factoryai"]
    assert vendor.base_url.endswith("/prod") and vendor.settings["supplier_id"] == "supplier-001"
    async with httpx2.AsyncClient(transport=vendor.transport, base_url=vendor.base_url, headers=AUTH) as client:
        created = (await client.post("/part-orders", json=_documented_create(sandbox.factoryai))).json()
        admin = (await client.get("/_sandbox/orders")).json()
    assert [o["id"] for o in admin["orders"]] == [created["id"]]
