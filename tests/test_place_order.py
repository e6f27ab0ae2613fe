"""place_order through the SDK Client against the Skynet simulator: the guard rails, end to end.

Expectations come from ARCHITECTURE.md "Guard rails" and "Ledger", and from Skynet's order
document (idempotency, error codes). The simulator's record of orders is the ground truth.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mcp import Client

from conftest import World, confirm_and_place, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio


async def test_lookup_preview_confirm_get_list_runs_end_to_end(world: World) -> None:
    """The whole flow a model runs: look up, preview, confirm the exact total, then read the order back."""
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3", "AN3-5A"]}))
        assert found["not_found"] == ["AN3-5A"]
        assert found["sandbox"] is True
        part = next(p for p in found["parts"] if p["part_number"] == "MS21042L3")
        assert part["unit_price"] == {"amount": "12.40", "currency": "USD"}
        assert part["price_basis"] == "list"

        args = {
            "vendor": "skynet",
            "po_number": "ACME-PO-4471",
            "items": [{"part_id": part["part_id"], "quantity": 10}],
        }
        preview = structured(await client.call_tool("place_order", args))
        assert preview["status"] == "confirmation_required"
        assert preview["preview"]["total"] == {"amount": "124.00", "currency": "USD"}
        assert preview["preview"]["total_is_upper_bound"] is True
        assert world.skynet_orders == []  # a preview writes nothing

        placed = structured(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "124.00 USD"},
            )
        )
        assert placed["status"] == "placed"
        assert placed["replayed"] is False
        order = placed["order"]
        assert order["status"] == "draft" and order["vendor_status"] == "draft"
        assert order["po_number"] == "ACME-PO-4471"
        # Skynet bills the account's B2B price, below the list price the user confirmed as an upper bound.
        assert float(order["total"]["amount"]) < 124
        assert placed["warnings"] == []
        [truth] = world.skynet_orders
        assert truth["order_id"] == order["order_id"]
        assert truth["idempotency_key"] == placed["idempotency_key"]

        got = structured(await client.call_tool("get_order", {"vendor": "skynet", "order_id": order["order_id"]}))
        assert got["order"]["source"] == "ledger"
        assert got["order"]["total"] == order["total"]

        listed = structured(await client.call_tool("list_purchase_orders", {"vendor": "skynet"}))
        assert [o["order_id"] for o in listed["orders"]] == [order["order_id"]]
        assert listed["next_cursor"] is None


@pytest.mark.parametrize(
    ("po_number", "code"),
    [
        ("", "PO_REQUIRED"),
        ("   ", "PO_REQUIRED"),
        ("PO 12", "PO_MALFORMED"),
        ("x", "PO_MALFORMED"),
        ("PO-1;DROP TABLE", "PO_MALFORMED"),
    ],
)
async def test_missing_or_malformed_po_number_is_refused_naming_the_field(
    world: World, po_number: str, code: str
) -> None:
    """Guard rail 1: no order without a valid PO number; nothing is previewed or written."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        result = await client.call_tool(
            "place_order",
            {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
        text = error_text(result)
        assert code in text and "po_number" in text
    assert world.skynet_orders == []
    assert [r for r in world.sandbox.skynet.requests if r.path == "/orders"] == []


async def test_po_number_argument_is_required_by_the_schema(world: World) -> None:
    async with Client(world.server) as client:
        result = await client.call_tool("place_order", {"vendor": "skynet", "items": [{"part_id": "x", "quantity": 1}]})
        assert "po_number" in error_text(result)
    assert world.skynet_orders == []


async def test_wrong_confirmed_total_places_nothing(world: World) -> None:
    """The second call must carry exactly the previewed total."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2001", "items": [{"part_id": ids["MS21042L3"], "quantity": 2}]}
        preview = structured(await client.call_tool("place_order", args))
        for wrong in ("24.79 USD", "24.80 EUR", "twenty-four", "24.80"):
            result = await client.call_tool(
                "place_order", {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": wrong}
            )
            assert "confirmed_total" in error_text(result)
        # The token was not spent by the refusals: the right total still works, and 24.8 equals 24.80.
        placed = structured(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "USD 24.8"},
            )
        )
        assert placed["status"] == "placed"
    assert len(world.skynet_orders) == 1


async def test_token_without_confirmed_total_is_refused(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2002", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        result = await client.call_tool("place_order", {**args, "confirmation_token": preview["confirmation_token"]})
        assert "TOTAL_REQUIRED" in error_text(result)
    assert world.skynet_orders == []


async def test_token_reused_with_a_changed_quantity_is_refused(world: World) -> None:
    """A token is bound to the exact content: a different quantity needs a new preview."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2003", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        changed = {**args, "items": [{"part_id": ids["MS21042L3"], "quantity": 50}]}
        result = await client.call_tool(
            "place_order",
            {**changed, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"},
        )
        assert "TOKEN_CONTENT_CHANGED" in error_text(result)
        other_po = {**args, "po_number": "PO-2004"}
        result = await client.call_tool(
            "place_order",
            {**other_po, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"},
        )
        assert "TOKEN_MISMATCH" in error_text(result)
    assert world.skynet_orders == []


async def test_forged_token_is_refused(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2005", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        body, _, signature = preview["confirmation_token"].partition(".")
        for forged in (f"{body}.{signature[:-2]}xx", "confirmed", f"{body[:-3]}abc.{signature}"):
            result = await client.call_tool(
                "place_order", {**args, "confirmation_token": forged, "confirmed_total": "12.40 USD"}
            )
            assert "TOKEN_INVALID" in error_text(result)
    assert world.skynet_orders == []


async def test_expired_token_is_refused(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2006", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        world.clock.advance(timedelta(minutes=11))  # guard.token_ttl_seconds defaults to 600
        result = await client.call_tool(
            "place_order", {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"}
        )
        assert "TOKEN_EXPIRED" in error_text(result)
    assert world.skynet_orders == []


async def test_price_rise_after_preview_needs_a_new_preview(world: World) -> None:
    """A price that rose since the preview invalidates the confirmation."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-2007", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        world.sandbox.skynet.set_price("MS21042L3", "13.10")
        result = await client.call_tool(
            "place_order", {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"}
        )
        assert "TOKEN_CONTENT_CHANGED" in error_text(result)
    assert world.skynet_orders == []


async def test_same_po_same_content_returns_the_existing_order(world: World) -> None:
    """A retried or double-clicked call is answered from the ledger: one order at the vendor."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-3001", "items": [{"part_id": ids["MS21042L3"], "quantity": 4}]}
        first = await confirm_and_place(client, args)
        again = structured(await client.call_tool("place_order", args))
        assert again["status"] == "placed" and again["replayed"] is True
        assert again["order"]["order_id"] == first["order"]["order_id"]
        assert again["idempotency_key"] == first["idempotency_key"]
    async with Client(world.server) as client:  # a new connection (a restarted client) too
        again = structured(await client.call_tool("place_order", args))
        assert again["replayed"] is True
    assert len(world.skynet_orders) == 1


async def test_same_token_replayed_after_placing_returns_the_same_order(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-3002", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        confirm = {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"}
        first = structured(await client.call_tool("place_order", confirm))
        second = structured(await client.call_tool("place_order", confirm))
        assert second["replayed"] is True and second["order"]["order_id"] == first["order"]["order_id"]
    assert len(world.skynet_orders) == 1


async def test_same_po_with_different_content_is_refused_naming_the_po(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3", "AN960C10")
        args = {"vendor": "skynet", "po_number": "PO-3003", "items": [{"part_id": ids["MS21042L3"], "quantity": 4}]}
        await confirm_and_place(client, args)
        for changed in (
            {**args, "items": [{"part_id": ids["MS21042L3"], "quantity": 5}]},
            {**args, "items": [{"part_id": ids["AN960C10"], "quantity": 4}]},
            {**args, "notes": "rush"},
        ):
            text = error_text(await client.call_tool("place_order", changed))
            assert "PO_CONFLICT" in text and "PO-3003" in text
    assert len(world.skynet_orders) == 1


async def test_order_failed_is_retried_with_the_same_key_and_places_one_order(world: World) -> None:
    """ORDER_FAILED means not placed, safe to retry: the retry carries the same Idempotency-Key."""
    world.sandbox.skynet.faults.arm("order_failed", 2)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        placed = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-4001", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
    posts = [r for r in world.sandbox.skynet.requests if r.path == "/orders"]
    assert [r.status for r in posts] == [502, 502, 201]
    assert {r.idempotency_key for r in posts} == {placed["idempotency_key"]}
    assert len(world.skynet_orders) == 1


async def test_order_failed_beyond_the_budget_rejects_and_a_later_call_places(world: World) -> None:
    world.sandbox.skynet.faults.arm("order_failed", 3)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-4002", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        text = error_text(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "12.40 USD"},
            )
        )
        assert "ORDER_FAILED" in text and "Nothing was ordered" in text
        assert world.skynet_orders == []
        placed = await confirm_and_place(client, args)  # nothing was ordered, so the PO is free again
        assert placed["status"] == "placed"
    assert len(world.skynet_orders) == 1


async def test_response_dropped_after_commit_is_retried_into_the_same_order(world: World) -> None:
    """Skynet committed, the answer was lost: the retry with the same key gets the original order back."""
    world.sandbox.skynet.faults.arm("drop_after_commit")
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        placed = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-5001", "items": [{"part_id": ids["MS21042L3"], "quantity": 3}]},
        )
    [truth] = world.skynet_orders
    assert placed["order"]["order_id"] == truth["order_id"]
    assert len([r for r in world.sandbox.skynet.requests if r.path == "/orders"]) == 2


async def test_outcome_unknown_then_repeat_call_finds_the_one_order(world: World) -> None:
    """Every attempt's answer lost: the tool says outcome_unknown; repeating it resolves to the one order."""
    world.sandbox.skynet.faults.arm("drop_after_commit", 3)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-5002", "items": [{"part_id": ids["MS21042L3"], "quantity": 3}]}
        unknown = await confirm_and_place(client, args)
        assert unknown["status"] == "outcome_unknown"
        assert "same idempotency key" in unknown["next_steps"]
        assert len(world.skynet_orders) == 1
        again = structured(await client.call_tool("place_order", args))
        assert again["status"] == "placed"
        assert again["idempotency_key"] == unknown["idempotency_key"]
        # Skynet cannot say whether it replayed; the result says the answer is to a resend with the same key.
        assert any("same idempotency key" in w for w in again["warnings"])
    [truth] = world.skynet_orders
    assert again["order"]["order_id"] == truth["order_id"]


async def test_insufficient_inventory_lists_the_short_items_and_orders_nothing(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L08")
        args = {"vendor": "skynet", "po_number": "PO-6001", "items": [{"part_id": ids["MS21042L08"], "quantity": 9}]}
        preview = structured(await client.call_tool("place_order", args))
        assert any("in stock" in caveat for caveat in preview["preview"]["caveats"])
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    **args,
                    "confirmation_token": preview["confirmation_token"],
                    "confirmed_total": "{amount} {currency}".format(**preview["preview"]["total"]),
                },
            )
        )
        assert "INSUFFICIENT_INVENTORY" in text and "MS21042L08" in text and "available 5" in text
        # Nothing was ordered under that PO, so a smaller order may use it.
        placed = await confirm_and_place(client, {**args, "items": [{"part_id": ids["MS21042L08"], "quantity": 5}]})
        assert placed["status"] == "placed"
    assert len(world.skynet_orders) == 1


async def test_expired_part_tokens_are_refreshed_by_the_preview(world: World) -> None:
    """Skynet part_ids expire after an hour; the preview re-reads the catalog, so the order still goes through."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        world.clock.advance(timedelta(hours=2))
        placed = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-6002", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
    assert placed["status"] == "placed"
    assert len(world.skynet_orders) == 1


async def test_unknown_part_id_asks_for_a_lookup_and_a_part_number_is_forgiven(world: World) -> None:
    async with Client(world.server) as client:
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    "vendor": "skynet",
                    "po_number": "PO-6003",
                    "items": [{"part_id": "skynet_part_bogus", "quantity": 1}],
                },
            )
        )
        assert "items[0].part_id" in text and "lookup_parts" in text
        preview = structured(
            await client.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-6003", "items": [{"part_id": "MS21042L3", "quantity": 1}]},
            )
        )
        assert preview["preview"]["lines"][0]["part_number"] == "MS21042L3"


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([{"part_id": "MS21042L3", "quantity": 0}], "quantity"),
        ([{"part_id": "MS21042L3", "quantity": -1}], "quantity"),
        ([{"part_id": "MS21042L3", "quantity": 1.5}], "quantity"),
        ([{"part_id": "MS21042L3", "quantity": "ten"}], "quantity"),
        ([{"part_id": "MS21042L3", "quantity": 1, "discount": 100}], "discount"),
        ([{"part_id": "MS21042L3", "quantity": 1}, {"part_id": "MS21042L3", "quantity": 2}], "items[1].part_id"),
    ],
)
async def test_bad_items_are_refused_naming_the_field(world: World, items: list[Any], field: str) -> None:
    async with Client(world.server) as client:
        result = await client.call_tool("place_order", {"vendor": "skynet", "po_number": "PO-7001", "items": items})
        assert field in error_text(result)
    assert world.skynet_orders == []


async def test_order_over_the_limit_is_refused_before_any_preview(tmp_path: Any) -> None:
    world = World(tmp_path, confirmation="token", max_order_total="100.00")
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        result = await client.call_tool(
            "place_order",
            {"vendor": "skynet", "po_number": "PO-7002", "items": [{"part_id": ids["MS21042L3"], "quantity": 9}]},
        )
        text = error_text(result)
        assert "OVER_LIMIT" in text and "100.00" in text
    assert world.skynet_orders == []


async def test_options_are_refused_for_skynet(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        result = await client.call_tool(
            "place_order",
            {
                "vendor": "skynet",
                "po_number": "PO-7003",
                "items": [{"part_id": ids["MS21042L3"], "quantity": 1}],
                "options": {"priority": "urgent"},
            },
        )
        assert "options" in error_text(result)


async def test_unknown_vendor_is_named(world: World) -> None:
    async with Client(world.server) as client:
        text = error_text(
            await client.call_tool(
                "place_order", {"vendor": "acme", "po_number": "PO-7004", "items": [{"part_id": "x", "quantity": 1}]}
            )
        )
        assert "acme" in text and "skynet" in text


async def test_audit_log_records_every_decision_and_write(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-8001", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        await confirm_and_place(client, args)
        await client.call_tool("place_order", args)
    events = [e.event for e in await world.ledger.audit_log()]
    assert events == ["previewed", "intent_recorded", "intent_sent", "intent_placed", "replayed"]
    recorded = next(e for e in await world.ledger.audit_log() if e.event == "intent_recorded")
    assert recorded.detail["confirmed_total"] == "12.40 USD"
    assert recorded.actor  # who: the client's declared name


async def test_daily_spend_limit_per_vendor_counts_the_days_orders(tmp_path: Any) -> None:
    world = World(tmp_path, confirmation="token", max_daily_total_per_vendor="30.00")
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        item = {"part_id": ids["MS21042L3"], "quantity": 2}
        placed = await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-D1", "items": [item]})
        assert placed["status"] == "placed"
        text = error_text(
            await client.call_tool("place_order", {"vendor": "skynet", "po_number": "PO-D2", "items": [item]})
        )
    assert "OVER_DAILY_LIMIT" in text and "30.00" in text
    assert len(world.skynet_orders) == 1


async def test_vendors_outside_the_order_allow_list_stay_read_only(tmp_path: Any) -> None:
    world = World(tmp_path, confirmation="token", order_vendors=["skynet"])
    async with Client(world.server) as client:
        ids = await part_ids(client, "SKF-6204", vendor="factoryai")
        text = error_text(
            await client.call_tool(
                "place_order",
                {"vendor": "factoryai", "po_number": "PO-A1", "items": [{"part_id": ids["SKF-6204"], "quantity": 1}]},
            )
        )
        assert "VENDOR_NOT_ALLOWED" in text and "vendor" in text
        listed = structured(await client.call_tool("list_purchase_orders", {"vendor": "factoryai", "limit": 1}))
        assert listed["orders"]
    assert world.sandbox.factoryai.orders == []
