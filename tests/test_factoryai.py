"""Factory AI through the SDK Client: look-up, guarded placement, get, list, and the vendor's failures.

Expectations come from the Factory AI part-orders document (seeds/001), docs/vendors.md section 2
and ARCHITECTURE.md. The simulator's records are the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp import Client

from parts_mcp.domain import OrderItem, OrderStatus
from parts_mcp.sandbox.factoryai import SANDBOX_API_KEY, STATUSES
from parts_mcp.vendors.base import OrderQuery, OrderRequest, VendorBadResponse, VendorInvalidRequest
from parts_mcp.vendors.factoryai import FactoryAIClient, po_note, split_po_note

from conftest import Respelled, World, confirm_and_place, error_text, structured

pytestmark = pytest.mark.asyncio

VENDOR = "factoryai"


def _posts(world: World) -> list[Any]:
    return [r for r in world.sandbox.factoryai.requests if r.method == "POST" and r.path == "/part-orders"]


async def _ids(client: Client, *numbers: str) -> dict[str, str]:
    found = structured(await client.call_tool("lookup_parts", {"query": list(numbers), "vendors": [VENDOR]}))
    return {p["part_number"]: p["part_id"] for p in found["parts"]}


_ADDRESS = {"name": "Dock 4", "address1": "1 Plant Rd", "city": "Springfield", "state": "CA", "postal_code": "90210",
            "country": "USA"}  # fmt: skip


def _future(days: int = 14) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


# -- look-up --------------------------------------------------------------------------------------


async def test_lookup_joins_parts_with_plant_stock_at_stored_cost(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(
            await client.call_tool(
                "lookup_parts", {"query": ["SKF-6204", "fluke-175", "NOPE-12345"], "vendors": [VENDOR]}
            )
        )
    assert found["not_found"] == ["NOPE-12345"]
    by_number = {p["part_number"]: p for p in found["parts"]}
    assert set(by_number) == {"SKF-6204", "FLUKE-175"}
    bearing = by_number["SKF-6204"]
    # The documented example: part-001 at a stored cost of 75.50 (a JSON float) with 15 on hand.
    assert bearing["part_id"] == "part-001"
    assert bearing["unit_price"] == {"amount": "75.50", "currency": "USD"}
    assert bearing["price_basis"] == "estimate"
    assert bearing["available_quantity"] == 15
    assert bearing["manufacturer"] == "SKF"
    assert any("stored cost" in note for note in bearing["notes"])
    assert by_number["FLUKE-175"]["unit_price"] == {"amount": "285.00", "currency": "USD"}
    paths = {r.path for r in world.sandbox.factoryai.requests}
    assert paths == {"/parts", "/inventory"}


async def test_lookup_by_name_returns_every_match_with_its_stock(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["ball bearing"], "vendors": [VENDOR]}))
    stock = {p["part_number"]: p["available_quantity"] for p in found["parts"]}
    assert {"SKF-6204", "SKF-6205", "SKF-6305-2RS"} <= set(stock)
    assert stock["SKF-6305-2RS"] == 0  # out of stock at the plant, still orderable from a supplier


# -- preview and placement ---------------------------------------------------------------------------


async def test_preview_prices_at_stored_cost_and_excludes_tax_and_shipping(world: World) -> None:
    async with Client(world.server) as client:
        ids = await _ids(client, "SKF-6204")
        preview = structured(
            await client.call_tool(
                "place_order",
                {"vendor": VENDOR, "po_number": "ACME-F-1000", "items": [{"part_id": ids["SKF-6204"], "quantity": 25}]},
            )
        )
    assert preview["status"] == "confirmation_required"
    shown = preview["preview"]
    assert shown["price_basis"] == "estimate"
    assert shown["total"] == shown["subtotal"] == {"amount": "1887.50", "currency": "USD"}
    assert shown["excludes"] == ["tax", "shipping"]
    assert any("tax and shipping" in caveat for caveat in shown["caveats"])
    # The defaults from config are resolved into the preview, so the human sees them before confirming.
    assert shown["options"] == {
        "supplier_id": "supplier-001",
        "priority": "normal",
        "requires_approval": False,
        "shipping_address": {
            "name": "Factory AI Warehouse",
            "address1": "123 Industrial Way",
            "city": "Manufacturing City",
            "state": "CA",
            "postal_code": "90210",
            "country": "USA",
        },
    }
    assert world.sandbox.factoryai.orders == [] and _posts(world) == []


async def test_confirmed_order_carries_the_po_and_reports_factory_ais_totals(world: World) -> None:
    delivery = _future()
    args = {
        "vendor": VENDOR,
        "po_number": "ACME-F-1001",
        "items": [{"part_id": "part-001", "quantity": 25}],
        "notes": "pump maintenance",
        "options": {"priority": "high", "requested_delivery_date": delivery},
    }
    async with Client(world.server) as client:
        await _ids(client, "SKF-6204")
        placed = await confirm_and_place(client, args)
        assert placed["status"] == "placed" and placed["replayed"] is False
        order = placed["order"]
        assert order["po_number"] == "ACME-F-1001"
        assert order["status"] == "draft" and order["vendor_status"] == "draft"
        # Factory AI adds 8% tax and the supplier's flat shipping when it creates the order.
        assert order["subtotal"] == {"amount": "1887.50", "currency": "USD"}
        assert order["tax"] == {"amount": "151.00", "currency": "USD"}
        assert order["shipping"] == {"amount": "25.00", "currency": "USD"}
        assert order["total"] == {"amount": "2063.50", "currency": "USD"}
        assert order["notes"] == "pump maintenance"

        got = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": order["order_id"]}))[
            "order"
        ]
        assert got["po_number"] == "ACME-F-1001" and got["source"] == "vendor"
        assert got["details"]["order_number"].startswith("PO-")
        assert got["details"]["priority"] == "high"
        assert [h["status"] for h in got["details"]["status_history"]] == ["draft"]

    [truth] = world.sandbox.factoryai.orders
    assert truth["id"] == order["order_id"]
    assert truth["notes"] == "PO ACME-F-1001 | pump maintenance"
    assert truth["supplierId"] == "supplier-001" and truth["priority"] == "high"
    assert truth["requestedDeliveryDate"] == f"{delivery}T00:00:00Z"
    [post] = _posts(world)
    assert post.body["items"] == [{"partId": "part-001", "quantity": 25, "unitCost": 75.5}]
    assert post.body["shippingAddress"]["postalCode"] == "90210"
    assert post.body["requiresApproval"] is False


async def test_same_po_again_returns_the_order_without_a_second_post(world: World) -> None:
    args = {"vendor": VENDOR, "po_number": "ACME-F-1002", "items": [{"part_id": "FILTER-001", "quantity": 10}]}
    async with Client(world.server) as client:
        first = await confirm_and_place(client, args)
        again = structured(await client.call_tool("place_order", args))
    assert again["status"] == "placed" and again["replayed"] is True
    assert again["order"]["order_id"] == first["order"]["order_id"]
    assert len(world.sandbox.factoryai.orders) == 1 and len(_posts(world)) == 1


async def test_a_cost_change_after_the_preview_needs_a_new_preview(world: World) -> None:
    args = {"vendor": VENDOR, "po_number": "ACME-F-1003", "items": [{"part_id": "part-001", "quantity": 2}]}
    async with Client(world.server) as client:
        await _ids(client, "SKF-6204")
        preview = structured(await client.call_tool("place_order", args))
        world.sandbox.factoryai.set_cost("SKF-6204", "79.00")
        text = error_text(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "151.00 USD"},
            )
        )
    assert "TOKEN_CONTENT_CHANGED" in text
    assert world.sandbox.factoryai.orders == []


async def test_a_part_deleted_after_the_look_up_is_refused_by_the_preview(world: World) -> None:
    async with Client(world.server) as client:
        await _ids(client, "FLUKE-175", "SKF-6204")
        world.sandbox.factoryai.remove_part("FLUKE-175")
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    "vendor": VENDOR,
                    "po_number": "ACME-F-1004",
                    "items": [{"part_id": "part-001", "quantity": 1}, {"part_id": "part-002", "quantity": 1}],
                },
            )
        )
    assert "items[1].part_id" in text and "FLUKE-175" in text and "look it up again" in text
    assert _posts(world) == []


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ({"priority": "asap"}, "options.priority", "low, normal, high, urgent, critical"),
        ({"requested_delivery_date": "2020-01-31"}, "options.requested_delivery_date", "in the past"),
        ({"requested_delivery_date": "next week"}, "options.requested_delivery_date", "ISO date"),
        ({"requires_approval": True}, "options.justification", "required"),
        ({"requires_approval": "yes"}, "options.requires_approval", "true or false"),
        ({"supplier_id": ""}, "options.supplier_id", "supplier"),
        ({"shipping_address": "dock 4"}, "options.shipping_address", "postal_code"),
        ({"shipping_address": {"name": "Dock 4"}}, "options.shipping_address.address1", "required"),
        ({"shipping_address": {**_ADDRESS, "zip": "90210"}}, "options.shipping_address.zip", "remove zip"),
        ({"colour": "red"}, "options.colour", "accepted: supplier_id, priority"),
    ],
)
async def test_bad_options_are_refused_naming_the_field(
    world: World, options: dict[str, Any], field: str, says: str
) -> None:
    async with Client(world.server) as client:
        await _ids(client, "SKF-6204")
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    "vendor": VENDOR,
                    "po_number": "ACME-F-2000",
                    "items": [{"part_id": "part-001", "quantity": 1}],
                    "options": options,
                },
            )
        )
    assert field in text and says in text
    assert world.sandbox.factoryai.orders == [] and _posts(world) == []


async def test_a_supplier_is_required_when_none_is_configured(world: World) -> None:
    """Without a default supplier the preview refuses, naming options.supplier_id (client level, no tool)."""
    vendor = world.sandbox.vendors()[VENDOR]
    async with httpx2.AsyncClient(transport=vendor.transport) as http:
        client = FactoryAIClient(VENDOR, base_url=vendor.base_url, api_key=SANDBOX_API_KEY, http=http)
        found = await client.lookup(["SKF-6204"])
        request = OrderRequest(VENDOR, "ACME-F-2001", (OrderItem(part_id="part-001", quantity=1),))
        with pytest.raises(VendorInvalidRequest) as refused:
            await client.preview(request, {"part-001": found.parts[0]})
    assert refused.value.field == "options.supplier_id"


async def test_an_order_above_the_approval_limit_is_refused_by_policy_then_placed_with_approval(world: World) -> None:
    """Factory AI answers 403 {error, reason}: a policy refusal, not bad credentials; nothing was ordered."""
    args: dict[str, Any] = {
        "vendor": VENDOR,
        "po_number": "ACME-F-3000",
        "items": [{"part_id": "part-002", "quantity": 40}],
    }
    async with Client(world.server) as client:
        await _ids(client, "FLUKE-175")
        text = error_text(await client.call_tool("place_order", {**args, **await _confirmation(client, args)}))
        assert "VENDOR_CONFLICT" in text and "not a credentials problem" in text
        assert "options.requires_approval" in text and "VENDOR_AUTH" not in text
        assert world.sandbox.factoryai.orders == []

        # Nothing was ordered, so the PO is free for the same items flagged for approval.
        approved = {**args, "options": {"requires_approval": True, "justification": "Calibration lab refit"}}
        placed = await confirm_and_place(client, approved)
    assert placed["status"] == "placed"
    assert placed["order"]["details"]["requires_approval"] is True
    [truth] = world.sandbox.factoryai.orders
    assert truth["requiresApproval"] is True and truth["justification"] == "Calibration lab refit"
    assert [r.status for r in _posts(world)] == [403, 201]


async def _confirmation(client: Client, args: dict[str, Any]) -> dict[str, str]:
    preview = structured(await client.call_tool("place_order", args))
    total = preview["preview"]["total"]
    return {"confirmation_token": preview["confirmation_token"], "confirmed_total": f"{total['amount']} USD"}


async def test_an_unknown_supplier_is_refused_with_the_field_from_the_details(world: World) -> None:
    """400 {error, details{field: msg}}: the vendor's field is named as the tool argument it came from."""
    args = {
        "vendor": VENDOR,
        "po_number": "ACME-F-3001",
        "items": [{"part_id": "part-003", "quantity": 1}],
        "options": {"supplier_id": "supplier-999"},
    }
    async with Client(world.server) as client:
        await _ids(client, "FILTER-001")
        text = error_text(await client.call_tool("place_order", {**args, **await _confirmation(client, args)}))
    assert "[VENDOR_REJECTED] options.supplier_id:" in text and "supplier-999 not found" in text
    assert "Nothing was ordered" in text
    assert world.sandbox.factoryai.orders == []


# -- lost answers and failures -------------------------------------------------------------------------


async def test_answer_dropped_after_commit_is_found_by_po_without_a_second_post(world: World) -> None:
    world.sandbox.factoryai.faults.arm("drop_after_commit")
    async with Client(world.server) as client:
        await _ids(client, "SKF-6204")
        placed = await confirm_and_place(
            client, {"vendor": VENDOR, "po_number": "ACME-F-4000", "items": [{"part_id": "part-001", "quantity": 3}]}
        )
    assert placed["status"] == "placed"
    [truth] = world.sandbox.factoryai.orders
    assert placed["order"]["order_id"] == truth["id"] and placed["order"]["po_number"] == "ACME-F-4000"
    assert [r.dropped for r in _posts(world)] == [True]  # found by search, never sent twice
    searches = [r for r in world.sandbox.factoryai.requests if r.method == "GET" and r.path == "/part-orders"]
    assert searches


async def test_a_po_that_is_a_prefix_of_another_is_not_mistaken_for_it(world: World) -> None:
    """Reconciliation matches the PO exactly: ACME-F-40 must not resolve to an order for ACME-F-401."""
    async with Client(world.server) as client:
        await confirm_and_place(
            client, {"vendor": VENDOR, "po_number": "ACME-F-401", "items": [{"part_id": "FILTER-001", "quantity": 1}]}
        )
        world.sandbox.factoryai.faults.arm("order_failed")
        unknown = await confirm_and_place(
            client, {"vendor": VENDOR, "po_number": "ACME-F-40", "items": [{"part_id": "FILTER-001", "quantity": 2}]}
        )
    assert unknown["status"] == "outcome_unknown"
    assert [o["notes"] for o in world.sandbox.factoryai.orders] == ["PO ACME-F-401"]


async def test_a_500_on_create_is_unknown_then_a_repeat_searches_and_places_once(world: World) -> None:
    """A 500 leaves the outcome unknown (no idempotency key); the repeat finds nothing by PO, then sends."""
    world.sandbox.factoryai.faults.arm("order_failed")
    args = {"vendor": VENDOR, "po_number": "ACME-F-4001", "items": [{"part_id": "FILTER-001", "quantity": 4}]}
    async with Client(world.server) as client:
        unknown = await confirm_and_place(client, args)
        assert unknown["status"] == "outcome_unknown"
        assert world.sandbox.factoryai.orders == []
        again = structured(await client.call_tool("place_order", args))
    assert again["status"] == "placed"
    [truth] = world.sandbox.factoryai.orders
    assert again["order"]["order_id"] == truth["id"]
    assert [r.status for r in _posts(world)] == [500, 201]


async def test_rate_limited_lookup_is_retried(world: World) -> None:
    world.sandbox.factoryai.faults.arm("rate_limit", 2)
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["SKF-6204"], "vendors": [VENDOR]}))
    assert found["vendor_errors"] == [] and [p["part_number"] for p in found["parts"]] == ["SKF-6204"]
    statuses = [(r.path, r.status) for r in world.sandbox.factoryai.requests]
    # The part's search and its stock are asked for together: each rate-limited call is retried.
    assert sorted(statuses) == [("/inventory", 200), ("/inventory", 429), ("/parts", 200), ("/parts", 429)]


async def test_rate_limit_beyond_the_retry_budget_surfaces_as_rate_limited(world: World) -> None:
    world.sandbox.factoryai.faults.arm("rate_limit", 3)
    async with Client(world.server) as client:
        result = await client.call_tool("lookup_parts", {"query": ["SKF-6204"], "vendors": [VENDOR]})
    found = structured(result)
    [failure] = found["vendor_errors"]
    assert failure["vendor"] == VENDOR and failure["code"] == "RATE_LIMIT_EXCEEDED" and failure["retryable"]
    assert "rate limiting" in failure["message"]
    # The vendor's Retry-After reaches the model: in the structured entry and in the text it reads.
    assert failure["retry_after"] > 0
    assert f"Try again in {failure['retry_after']:g}s." in result.content[0].text  # type: ignore[union-attr]
    assert found["parts"] == [] and found["not_found"] == []


async def test_a_server_error_on_a_read_is_retried(world: World) -> None:
    world.sandbox.factoryai.faults.arm("server_error")
    async with Client(world.server) as client:
        got = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "po-001"}))
    assert got["order"]["order_id"] == "po-001"
    assert [r.status for r in world.sandbox.factoryai.requests] == [500, 200]


async def test_a_rejected_key_is_an_auth_error_from_the_generic_error_shape(world: World) -> None:
    """401 {error, code, timestamp} (the overview's shape); the key itself never appears."""
    world.sandbox.factoryai.api_keys.clear()
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["SKF-6204"], "vendors": [VENDOR]}))
        text = error_text(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "po-001"}))
    [failure] = found["vendor_errors"]
    assert failure["code"] == "UNAUTHORIZED" and "API key" in failure["message"] and not failure["retryable"]
    assert "VENDOR_AUTH" in text and SANDBOX_API_KEY not in text + failure["message"]
    # Never retried: one 401 for each request sent (the look-up asks for a number's stock with its search).
    assert [r.status for r in world.sandbox.factoryai.requests] == [401, 401, 401]


async def test_a_read_only_key_is_refused_as_a_permissions_problem(world: World) -> None:
    """403 in the generic shape (no reason) is about the key's permissions, unlike the approval-limit 403."""
    sim = world.sandbox.factoryai
    sim.api_keys.discard(SANDBOX_API_KEY)
    sim.read_only_keys.add(SANDBOX_API_KEY)
    args = {"vendor": VENDOR, "po_number": "ACME-F-4002", "items": [{"part_id": "FILTER-001", "quantity": 1}]}
    async with Client(world.server) as client:
        text = error_text(await client.call_tool("place_order", {**args, **await _confirmation(client, args)}))
    assert "VENDOR_AUTH" in text and "read-only" in text
    assert sim.orders == []


# -- get and list ----------------------------------------------------------------------------------------

_EXPECTED = {
    "draft": OrderStatus.DRAFT,
    "pending_approval": OrderStatus.PENDING_APPROVAL,
    "approved": OrderStatus.APPROVED,
    "sent": OrderStatus.ORDERED,
    "acknowledged": OrderStatus.ACKNOWLEDGED,
    "in_progress": OrderStatus.IN_PROGRESS,
    "shipped": OrderStatus.SHIPPED,
    "partially_received": OrderStatus.PARTIALLY_RECEIVED,
    "received": OrderStatus.RECEIVED,
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "pending": OrderStatus.PENDING_APPROVAL,  # the list example's value, missing from the enum
}


async def test_every_documented_status_is_mapped() -> None:
    assert set(_EXPECTED) == {*STATUSES, "pending"}


@pytest.mark.parametrize(("raw", "normalized"), list(_EXPECTED.items()))
async def test_get_order_maps_each_status_and_keeps_the_vendors(
    world: World, raw: str, normalized: OrderStatus
) -> None:
    order_id = world.sandbox.factoryai.order_ids(raw)[0]
    async with Client(world.server) as client:
        order = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": order_id}))["order"]
    assert order["status"] == normalized.value and order["vendor_status"] == raw
    assert order["total"]["currency"] == "USD" and order["lines"]
    assert order["details"]["status_history"][-1]["status"] == raw


async def test_get_order_shows_the_documented_example_with_its_history_and_receipts(world: World) -> None:
    async with Client(world.server) as client:
        order = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "po-001"}))["order"]
    assert order["po_number"] == "PO-2024-001"  # no PO of ours in its notes: Factory AI's order number
    assert order["status"] == "received" and order["total"] == {"amount": "2063.50", "currency": "USD"}
    [line] = order["lines"]
    assert line == {
        "part_id": "part-001",
        "part_number": "SKF-6204",
        "name": "Ball Bearing 6204",
        "quantity": 25,
        "unit_price": {"amount": "75.50", "currency": "USD"},
        "line_total": {"amount": "1887.50", "currency": "USD"},
        "vendor_status": "received",
        "received_quantity": 25,
    }
    details = order["details"]
    assert details["tracking_number"] == "1Z999AA1234567890" and details["invoice_number"] == "INV-2024-001"
    assert [h["status"] for h in details["status_history"]] == [
        "draft",
        "pending_approval",
        "approved",
        "sent",
        "received",
    ]
    assert details["shipping_address"]["postal_code"] == "90210"


async def test_get_order_of_an_unknown_id_is_not_found(world: World) -> None:
    async with Client(world.server) as client:
        text = error_text(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "po-999"}))
    assert "NOT_FOUND" in text and "po-999" in text


async def test_list_filters_by_status_across_pages(world: World) -> None:
    shipped = set(world.sandbox.factoryai.order_ids("shipped"))
    async with Client(world.server) as client:
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            page = structured(
                await client.call_tool(
                    "list_purchase_orders",
                    {"vendor": VENDOR, "status": "shipped", "limit": 5, **({"cursor": cursor} if cursor else {})},
                )
            )
            assert {o["status"] for o in page["orders"]} <= {"shipped"}
            seen += [o["order_id"] for o in page["orders"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) and set(seen) == shipped


async def test_list_pending_approval_includes_the_legacy_pending_status(world: World) -> None:
    sim = world.sandbox.factoryai
    expected = set(sim.order_ids("pending_approval")) | set(sim.order_ids("pending"))
    async with Client(world.server) as client:
        page = structured(
            await client.call_tool(
                "list_purchase_orders", {"vendor": VENDOR, "status": "pending_approval", "limit": 100}
            )
        )
    assert {o["order_id"] for o in page["orders"]} == expected
    assert {o["vendor_status"] for o in page["orders"]} == {"pending_approval", "pending"}


async def test_list_finds_a_placed_order_by_po_and_date(world: World) -> None:
    async with Client(world.server) as client:
        placed = await confirm_and_place(
            client, {"vendor": VENDOR, "po_number": "ACME-F-5000", "items": [{"part_id": "FILTER-001", "quantity": 6}]}
        )
        by_po = structured(
            await client.call_tool("list_purchase_orders", {"vendor": VENDOR, "po_number": "ACME-F-5000"})
        )
        today = world.clock.now() - timedelta(minutes=1)
        recent = structured(
            await client.call_tool("list_purchase_orders", {"vendor": VENDOR, "created_after": today.isoformat()})
        )
        older = structured(
            await client.call_tool(
                "list_purchase_orders",
                {"vendor": VENDOR, "created_before": "2024-10-16T00:00:00Z", "limit": 100},
            )
        )
    [summary] = by_po["orders"]
    assert summary["order_id"] == placed["order"]["order_id"] and summary["po_number"] == "ACME-F-5000"
    assert summary["total"] == placed["order"]["total"]
    assert [o["order_id"] for o in recent["orders"]] == [placed["order"]["order_id"]]
    # The two documented examples are the only orders created before 16 October 2024.
    assert [o["order_id"] for o in older["orders"]] == ["po-002", "po-001"]


# -- the PO marker ---------------------------------------------------------------------------------------


async def test_the_po_marker_round_trips_and_matches_only_whole_po_numbers() -> None:
    assert split_po_note(po_note("ACME-1", None)) == ("ACME-1", None)
    assert split_po_note(po_note("ACME-1", "rush | fragile")) == ("ACME-1", "rush | fragile")
    assert split_po_note("PO ACME-12 | x")[0] != "ACME-1"
    assert split_po_note("Urgent order for pump maintenance") == (None, "Urgent order for pump maintenance")
    assert split_po_note("PO box 12 behind the plant") == (None, "PO box 12 behind the plant")
    assert split_po_note(None) == (None, None)


# -- what the documents leave open -------------------------------------------------------------------


async def _both(
    world: World, respell: Callable[[str, Any], Any], call: Callable[[FactoryAIClient], Any], *changed: str
) -> Any:
    """`call` against the simulator as it is and as re-spelled: (plain answer, re-spelled answer)."""
    vendor = world.sandbox.vendors()[VENDOR]
    respelled = Respelled(vendor, respell)
    answers = []
    for transport in (vendor.transport, respelled):
        async with httpx2.AsyncClient(transport=transport) as http:
            client = FactoryAIClient(VENDOR, base_url=vendor.base_url, api_key=SANDBOX_API_KEY, http=http)
            answers.append(await call(client))
    assert set(changed) <= set(respelled.changed)
    return answers


async def test_enveloped_arrays_string_numbers_and_unusable_rows_read_as_before(world: World) -> None:
    def respell(path: str, body: Any) -> Any:
        if path == "/parts":  # enveloped, cost as a decimal string, plus rows nobody could use
            return {"data": [{**r, "cost": str(r["cost"])} for r in body] + ["junk", {"partId": "part-x"}]}
        if path == "/inventory":
            return {"inventory": [{**r, "quantity": str(r["quantity"])} for r in body] + [None]}
        return body

    plain, respelled = await _both(
        world, respell, lambda client: client.lookup(["SKF-6204", "ball bearing"]), "/parts", "/inventory"
    )
    assert respelled == plain
    bearing = next(p for p in respelled.parts if p.part_number == "SKF-6204")
    assert str(bearing.unit_price) == "75.50 USD" and bearing.available_quantity == 15


async def test_a_bare_order_list_and_an_enveloped_order_with_string_totals_read_as_before(world: World) -> None:
    def respell(path: str, body: Any) -> Any:
        if path == "/part-orders":  # a bare array without pagination; rows without an id are skipped
            return [*body["partOrders"], {"status": "draft"}, 7]
        if path.startswith("/part-orders/"):
            totals = {k: str(v) for k, v in body["totals"].items()}
            return {"partOrder": {**body, "totals": totals}}
        return body

    plain, respelled = await _both(world, respell, lambda client: client.list_orders(OrderQuery(), 500), "/part-orders")
    assert respelled == plain and len(plain) > 2
    plain, respelled = await _both(world, respell, lambda client: client.get_order("po-001"), "/part-orders/po-001")
    assert respelled == plain and str(respelled.total) == "2063.50 USD"


async def test_an_order_answer_without_an_id_is_a_bad_response(world: World) -> None:
    def respell(path: str, body: Any) -> Any:
        return {"partOrder": {k: v for k, v in body.items() if k != "id"}} if path == "/part-orders/po-001" else body

    vendor = world.sandbox.vendors()[VENDOR]
    async with httpx2.AsyncClient(transport=Respelled(vendor, respell)) as http:
        client = FactoryAIClient(VENDOR, base_url=vendor.base_url, api_key=SANDBOX_API_KEY, http=http)
        with pytest.raises(VendorBadResponse) as refused:
            await client.get_order("po-001")
    assert SANDBOX_API_KEY not in str(refused.value)
