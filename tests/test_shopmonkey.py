"""Shopmonkey through the SDK Client, against the Shopmonkey simulator on the embedded sandbox.

Expectations come from the vendor document (seeds/004), docs/vendors.md section 5 and the tool
contract in ARCHITECTURE.md. The simulator's seeded purchase orders and inventory are the ground
truth: every expected amount is computed here from their integer cents.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client

from parts_mcp.sandbox.shopmonkey import INVENTORY, PURCHASE_ORDER_COUNT

from conftest import World, error_text, structured

pytestmark = pytest.mark.asyncio

VENDOR = "shopmonkey"


def usd(cents: int) -> dict[str, str]:
    return {"amount": str(Decimal(cents).scaleb(-2)), "currency": "USD"}


def seeded(world: World, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first seeded purchase order that fits `predicate` (the seed guarantees one exists)."""
    found = next((po for po in world.sandbox.shopmonkey.purchase_orders if predicate(po)), None)
    assert found is not None, "the seeded data lacks a purchase order the test needs"
    return found


def total_cents(po: dict[str, Any]) -> int:
    return po["totalCostCents"] if "totalCostCents" in po else po["totalPriceCents"]


async def get_order(client: Client, order_id: str) -> dict[str, Any]:
    return structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": order_id}))["order"]


def list_calls(world: World) -> int:
    return sum(1 for r in world.sandbox.shopmonkey.requests if r.method == "GET" and r.path == "/purchase_order")


# ------------------------------------------------------------------------------------------- look-up


async def test_lookup_by_part_number_gives_the_stored_cost_in_exact_dollars(world: World) -> None:
    pads = next(p for p in INVENTORY if p.number == "17D1210CH")
    assert pads.wholesale_cost_cents is not None
    async with Client(world.server) as client:
        found = structured(
            await client.call_tool("lookup_parts", {"query": ["17d-1210ch", "AN3-5A"], "vendors": [VENDOR]})
        )
    [part] = found["parts"]
    assert part["vendor"] == VENDOR and part["part_id"] == pads.id
    assert part["part_number"] == "17D1210CH" and part["name"] == pads.name
    assert part["unit_price"] == usd(pads.wholesale_cost_cents) == {"amount": "42.89", "currency": "USD"}
    # The shop's own stored cost, not a supplier quote: an estimate, and nothing is orderable through the API.
    assert part["price_basis"] == "estimate"
    assert part["available_quantity"] == pads.quantity
    assert part["orderable"] is False
    assert any("74.99" in note for note in part["notes"])  # the retail price, for comparison
    assert found["not_found"] == ["AN3-5A"]


async def test_lookup_by_name_matches_every_word_and_skips_deleted_parts(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(
            await client.call_tool("lookup_parts", {"query": ["brake pad", "oil filter", "wiper"], "vendors": [VENDOR]})
        )
    by_number = {p["part_number"]: p for p in found["parts"]}
    # "oil filter" does not find the ignition coil ("oil" starts no word there) nor the deleted PF48E.
    assert set(by_number) == {"17D1210CH", "17D1367CH", "PF63E", "WB-22"}
    assert by_number["17D1367CH"]["unit_price"] == {"amount": "38.75", "currency": "USD"}
    # No wholesale cost stored: the retail price stands in, labelled as such.
    assert by_number["WB-22"]["unit_price"] == {"amount": "21.99", "currency": "USD"}
    assert by_number["WB-22"]["price_basis"] == "list"
    assert found["not_found"] == []


# --------------------------------------------------------------------------------------------- orders


async def test_get_order_reads_parts_tires_fees_and_vendor_with_totals_from_cents(world: World) -> None:
    po = seeded(
        world,
        lambda p: bool(p.get("parts") and p.get("tires") and p.get("fees")) and "totalCostCents" in p,
    )
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])

    assert order["order_id"] == po["id"] and order["po_number"] == str(po["number"])
    assert order["source"] == "vendor" and order["currency"] == "USD"
    lines = po["parts"] + po["tires"]
    assert [line["part_number"] for line in order["lines"]] == [line["number"] for line in lines]
    for got, raw in zip(order["lines"], lines, strict=True):
        assert got["quantity"] == raw["quantity"]
        assert got["unit_price"] == usd(raw["costCents"])
        assert got["line_total"] == usd(raw["costCents"] * raw["quantity"])
        assert got["received_quantity"] == raw["receivedQuantity"]
    assert order["lines"][0]["part_id"] == po["parts"][0]["inventoryPartId"]
    # Fees are charges, not parts: listed in details, inside the vendor's total, outside the lines' subtotal.
    fees = order["details"]["fees"]
    assert [f["name"] for f in fees] == [f["name"] for f in po["fees"]]
    assert [f["amount"] for f in fees] == [usd(f["amountCents"]) for f in po["fees"]]
    fee_cents = sum(f["amountCents"] for f in po["fees"])
    assert order["details"]["fees_total"] == usd(fee_cents)
    assert order["subtotal"] == usd(sum(line["costCents"] * line["quantity"] for line in lines))
    assert order["total"] == usd(po["totalCostCents"]) == usd(total_cents(po))
    assert order["total"]["amount"] == str(Decimal(order["subtotal"]["amount"]) + Decimal(fee_cents).scaleb(-2))
    assert order["details"]["vendor_name"] == po["vendor"]["name"]


@pytest.mark.parametrize(
    ("variant", "predicate"),
    [
        ("fulfilledDate", lambda p: p.get("fulfilledDate") is not None),
        ("fullfiledDate (older spelling)", lambda p: p.get("fullfiledDate") is not None),
        ("totalPriceCents (older name)", lambda p: "totalPriceCents" in p),
        ("number as a string", lambda p: isinstance(p["number"], str)),
        ("flat items[] (the seed's example)", lambda p: "items" in p),
    ],
)
async def test_get_order_reads_both_spellings(
    world: World, variant: str, predicate: Callable[[dict[str, Any]], bool]
) -> None:
    po = seeded(world, predicate)
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])
    assert order["po_number"] == str(int(po["number"]))
    assert order["total"] == usd(total_cents(po))
    fulfilled = po.get("fulfilledDate") or po.get("fullfiledDate")
    if fulfilled:
        assert order["status"] == "completed"
        assert order["details"]["fulfilled_at"].startswith(fulfilled[:19])
    else:
        assert "fulfilled_at" not in order["details"]
    lines = po.get("items") or po["parts"] + po["tires"]
    assert [line["unit_price"] for line in order["lines"]] == [usd(line["costCents"]) for line in lines]


@pytest.mark.parametrize(
    ("vendor_status", "status"),
    [
        ("Draft", "draft"),
        ("Ordered", "ordered"),
        ("Received", "received"),
        ("Fulfilled", "completed"),
        ("Cancelled", "cancelled"),
    ],
)
async def test_each_shopmonkey_status_maps_and_the_raw_status_is_kept(
    world: World, vendor_status: str, status: str
) -> None:
    po = seeded(world, lambda p: p["status"] == vendor_status)
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])
    assert order["status"] == status and order["vendor_status"] == vendor_status


async def test_an_unknown_status_is_unknown_with_the_raw_status_kept(world: World) -> None:
    po = world.sandbox.shopmonkey.purchase_orders[10]
    po["status"] = "OnHold"  # a status the documents do not list
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])
    assert order["status"] == "unknown" and order["vendor_status"] == "OnHold"


async def test_get_order_for_an_unknown_id_is_not_found(world: World) -> None:
    async with Client(world.server) as client:
        text = error_text(
            await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "ffffffffffffffffffffffff"})
        )
    assert "NOT_FOUND" in text and "Shopmonkey" in text
    assert "list_purchase_orders" in text  # the id is Shopmonkey's, not the PO number: say where to find it


async def test_a_429_with_retry_after_on_a_read_is_retried(world: World) -> None:
    po = world.sandbox.shopmonkey.purchase_orders[0]
    world.sandbox.shopmonkey.faults.arm("rate_limit")
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])
    assert order["order_id"] == po["id"]
    calls = [r.status for r in world.sandbox.shopmonkey.requests if r.path == f"/purchase_order/{po['id']}"]
    assert calls == [429, 200]


async def test_rate_limiting_that_outlasts_the_retries_says_when_to_try_again(world: World) -> None:
    world.sandbox.shopmonkey.faults.arm("rate_limit", times=10)
    async with Client(world.server) as client:
        text = error_text(
            await client.call_tool(
                "get_order", {"vendor": VENDOR, "order_id": world.sandbox.shopmonkey.purchase_orders[0]["id"]}
            )
        )
    assert "RATE_LIMITED" in text and "1s" in text


async def test_a_server_error_on_a_read_is_retried(world: World) -> None:
    world.sandbox.shopmonkey.faults.arm("server_error")
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["PF63E"], "vendors": [VENDOR]}))
    assert [p["part_number"] for p in found["parts"]] == ["PF63E"]
    assert [r.status for r in world.sandbox.shopmonkey.requests] == [500, 200]


# ------------------------------------------------------------------------------------------ placement


async def test_place_order_is_not_supported_and_says_what_to_do_instead(world: World) -> None:
    before = [po["id"] for po in world.sandbox.shopmonkey.purchase_orders]
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["PF63E"], "vendors": [VENDOR]}))
        args = {
            "vendor": VENDOR,
            "po_number": "SHOP-PO-1001",
            "items": [{"part_id": found["parts"][0]["part_id"], "quantity": 6}],
        }
        first = await client.call_tool("place_order", args)
        confirmed = await client.call_tool(
            "place_order", {**args, "confirmation_token": "forged", "confirmed_total": "38.94 USD"}
        )
    for result in (first, confirmed):
        text = error_text(result)
        assert "NOT_SUPPORTED" in text
        assert "cannot create purchase orders" in text
        assert "web app" in text and "get_order" in text and "list_purchase_orders" in text
        assert "confirmation_required" not in text
    # Nothing was attempted at Shopmonkey, and no purchase order appeared.
    assert {r.method for r in world.sandbox.shopmonkey.requests} == {"POST"}
    assert {r.path for r in world.sandbox.shopmonkey.requests} == {"/inventory_part/search"}
    assert [po["id"] for po in world.sandbox.shopmonkey.purchase_orders] == before


async def test_list_vendors_shows_shopmonkey_cannot_place(world: World) -> None:
    async with Client(world.server) as client:
        vendors = structured(await client.call_tool("list_vendors", {}))
    [info] = [v for v in vendors["vendors"] if v["vendor"] == VENDOR]
    assert info["kind"] == "shopmonkey" and info["name"] == "Shopmonkey" and info["sandbox"] is True
    caps = info["capabilities"]
    assert caps["place"] is False
    assert caps["lookup"] is True and caps["get"] is True and caps["list"] is True
    assert caps["idempotency_key"] is False


# ------------------------------------------------------------------------------------------- listing


async def test_list_pages_past_the_100_cap_newest_first_with_every_purchase_order_once(world: World) -> None:
    seeded_pos = {po["id"]: po for po in world.sandbox.shopmonkey.purchase_orders}
    assert len(seeded_pos) == PURCHASE_ORDER_COUNT > 100
    async with Client(world.server) as client:
        first = structured(await client.call_tool("list_purchase_orders", {"vendor": VENDOR, "limit": 100}))
        assert len(first["orders"]) == 100 and first["next_cursor"]
        second = structured(
            await client.call_tool(
                "list_purchase_orders", {"vendor": VENDOR, "limit": 100, "cursor": first["next_cursor"]}
            )
        )
    assert second["next_cursor"] is None
    orders = first["orders"] + second["orders"]
    assert [o["order_id"] for o in orders] == sorted(seeded_pos, key=lambda i: seeded_pos[i]["createdDate"])[::-1]
    for summary in orders:
        po = seeded_pos[summary["order_id"]]
        assert summary["vendor"] == VENDOR
        assert summary["po_number"] == str(int(po["number"]))
        assert summary["vendor_status"] == po["status"]
        assert summary["total"] == usd(total_cents(po))
    # The API hands out at most 100 per call: more than 100 orders took more than one call.
    assert list_calls(world) >= 2


async def test_list_filters_by_status_and_po_number(world: World) -> None:
    cancelled = {po["id"] for po in world.sandbox.shopmonkey.purchase_orders if po["status"] == "Cancelled"}
    legacy = seeded(world, lambda p: isinstance(p["number"], str))
    async with Client(world.server) as client:
        listed = structured(
            await client.call_tool("list_purchase_orders", {"vendor": VENDOR, "status": "cancelled", "limit": 100})
        )
        by_po = structured(
            await client.call_tool("list_purchase_orders", {"vendor": VENDOR, "po_number": legacy["number"]})
        )
    assert {o["order_id"] for o in listed["orders"]} == cancelled
    assert {o["status"] for o in listed["orders"]} == {"cancelled"}
    assert [o["order_id"] for o in by_po["orders"]] == [legacy["id"]]


# ------------------------------------------------------------------------- shapes the documents leave open


async def test_get_order_reads_the_older_spelling_when_the_schemas_is_null_and_numbers_given_as_text(
    world: World,
) -> None:
    po = seeded(world, lambda p: p["status"] == "Fulfilled" and bool(p.get("parts")) and "totalCostCents" in p)
    total, fulfilled = po["totalCostCents"], po.get("fulfilledDate") or po["fullfiledDate"]
    # The schema's names present but null, the older generated models' names carrying the values.
    po.update(totalCostCents=None, totalPriceCents=str(total), fulfilledDate=None, fullfiledDate=fulfilled)
    po["number"] = float(int(po["number"]))  # 1042.0 is still PO 1042
    first = po["parts"][0]
    first.update(costCents=str(first["costCents"]), quantity="2.5", receivedQuantity=1.5)
    # Missing or non-array lists are empty; entries that are not objects are skipped.
    po.update(tires=None, fees="none", parts=[*po["parts"], "not an object"])
    async with Client(world.server) as client:
        order = await get_order(client, po["id"])

    assert order["po_number"] == str(int(po["number"]))
    assert order["total"] == usd(total)
    assert order["status"] == "completed" and order["details"]["fulfilled_at"].startswith(fulfilled[:19])
    assert [line["part_number"] for line in order["lines"]] == [line["number"] for line in po["parts"][:-1]]
    line = order["lines"][0]
    unit = Decimal(first["costCents"]).scaleb(-2)
    assert line["unit_price"] == usd(int(first["costCents"]))
    # Fluids come by the quart: the exact fraction prices the line, the quantity shows rounded.
    assert line["line_total"] == {"amount": str((unit * Decimal("2.5")).quantize(Decimal("0.01"))), "currency": "USD"}
    assert line["quantity"] == 3
    assert line.get("received_quantity") is None  # 1.5 is no whole count of units
    assert "fees" not in order["details"]


async def test_lookup_reads_stock_from_either_field_and_cents_given_as_text(world: World) -> None:
    inventory = {record["number"]: record for record in world.sandbox.shopmonkey.inventory}
    pads, oil = inventory["17D1210CH"], inventory["PF63E"]
    pads.update(availableQuantity=None, quantity=7, wholesaleCostCents=str(pads["wholesaleCostCents"]))
    oil["availableQuantity"] = 2.5  # a fraction on hand is no whole count of units
    async with Client(world.server) as client:
        found = structured(
            await client.call_tool("lookup_parts", {"query": ["17D1210CH", "PF63E"], "vendors": [VENDOR]})
        )
    by_number = {p["part_number"]: p for p in found["parts"]}
    assert by_number["17D1210CH"]["available_quantity"] == 7
    assert by_number["17D1210CH"]["unit_price"] == usd(int(pads["wholesaleCostCents"]))
    assert by_number["PF63E"].get("available_quantity") is None


async def test_an_answer_that_does_not_fit_the_documents_is_refused_not_guessed(world: World) -> None:
    po = world.sandbox.shopmonkey.purchase_orders[0]
    po["parts"][0]["costCents"] = "call us"
    async with Client(world.server) as client:
        result = await client.call_tool("get_order", {"vendor": VENDOR, "order_id": po["id"]})
    # Not error_text: a VendorBadResponse carries no code of its own yet, so its "[CODE]" is the class name.
    assert result.is_error
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    assert "could not be read" in text and "costCents" in text
    assert "call us" not in text  # the vendor's value is not echoed, only where it was
