"""One error style (issue 7, section 3): every refusal reads `[CODE] field: what is wrong. What to do next.`

That includes arguments the SDK rejects before any of our code runs. `conftest.error_text` checks
the shape for every error test in the suite; these tests pin the cases the SDK used to word itself,
and the advice each refusal gives.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from conftest import World, confirm_and_place, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("args", "code", "field", "says"),
    [
        (
            {"vendor": "skynet", "items": [{"part_id": "MS21042L3", "quantity": 1}]},
            "MISSING_ARGUMENT",
            "po_number",
            "PO",
        ),
        (
            {"vendor": "skynet", "po_number": "PO-E-1", "items": [{"part_id": "MS21042L3", "quantity": 0}]},
            "INVALID_ARGUMENT",
            "items[0].quantity",
            "greater than or equal to 1",
        ),
        (
            {"vendor": "skynet", "po_number": "PO-E-1", "items": [{"part_id": "MS21042L3", "quantity": True}]},
            "INVALID_ARGUMENT",
            "items[0].quantity",
            "whole number, not true/false",
        ),
        (
            {"vendor": "skynet", "po_number": "PO-E-1", "items": "MS21042L3"},
            "INVALID_ARGUMENT",
            "items",
            "list",
        ),
        (
            {"vendor": "skynet", "po_number": "PO-E-1", "items": [{"part_id": "MS21042L3", "quantity": 1}], "qty": 1},
            "UNKNOWN_ARGUMENT",
            "qty",
            "Valid arguments: confirmation_token, confirmed_total, items, notes, options, po_number, vendor",
        ),
    ],
)
async def test_arguments_the_sdk_refuses_read_like_ours(
    world: World, args: dict[str, Any], code: str, field: str, says: str
) -> None:
    async with Client(world.server) as client:
        text = error_text(await client.call_tool("place_order", args))
    assert text.startswith(f"[{code}] {field}: ") and says in text
    assert "again" in text  # what to do next
    assert world.skynet_orders == []


async def test_a_boolean_limit_and_an_unknown_tool_are_refused_by_name(world: World) -> None:
    async with Client(world.server) as client:
        limit = error_text(await client.call_tool("list_purchase_orders", {"limit": True}))
        tool = error_text(await client.call_tool("place_orders", {}))
    assert limit.startswith("[INVALID_ARGUMENT] limit: ")
    assert tool.startswith("[UNKNOWN_TOOL] name: ") and "place_order" in tool


async def test_confirmed_total_without_a_token_says_a_token_is_needed(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-E-2", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        text = error_text(await client.call_tool("place_order", {**args, "confirmed_total": "12.40 USD"}))
    assert text.startswith("[TOKEN_REQUIRED] confirmed_total: ") and "confirmation_token" in text
    assert world.skynet_orders == []


async def test_a_token_for_another_order_says_what_to_do(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        item = [{"part_id": ids["MS21042L3"], "quantity": 1}]
        other = structured(
            await client.call_tool("place_order", {"vendor": "skynet", "po_number": "PO-E-3", "items": item})
        )
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    "vendor": "skynet",
                    "po_number": "PO-E-4",
                    "items": item,
                    "confirmation_token": other["confirmation_token"],
                    "confirmed_total": "12.40 USD",
                },
            )
        )
    assert text.startswith("[TOKEN_MISMATCH] confirmation_token: ")
    assert "call place_order without confirmation_token for a new preview" in text
    assert world.skynet_orders == []


async def test_reads_never_say_nothing_was_ordered(world: World) -> None:
    world.sandbox.factoryai.faults.arm("server_error", 3)  # every attempt of one call (more trip the retry budget)
    async with Client(world.server) as client:
        failed = error_text(await client.call_tool("get_order", {"vendor": "factoryai", "order_id": "po-001"}))
        missing = error_text(await client.call_tool("get_order", {"vendor": "factoryai", "order_id": "po-999"}))
    assert failed.startswith("[VENDOR_UNAVAILABLE] vendor: ") and "Try again" in failed
    assert missing.startswith("[NOT_FOUND] order_id: ")
    assert "ordered" not in failed + missing


async def test_a_po_number_given_as_order_id_finds_that_pos_order(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-E-5", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        placed = await confirm_and_place(client, args)
        by_po = await client.call_tool("get_order", {"vendor": "skynet", "order_id": "po-e-5"})
    assert structured(by_po)["order"]["order_id"] == placed["order"]["order_id"]
    assert "is a PO number, not an order id" in by_po.content[0].text  # type: ignore[union-attr]


async def test_a_po_already_used_at_another_vendor_is_named_in_the_preview(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        placed = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "HGR-2291", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
        fa = await part_ids(client, "SKF-6204", vendor="factoryai")
        preview = await client.call_tool(
            "place_order",
            {"vendor": "factoryai", "po_number": "hgr-2291", "items": [{"part_id": fa["SKF-6204"], "quantity": 1}]},
        )
    warning = f"PO hgr-2291 is also order {placed['order']['order_id']} at skynet"
    assert any(warning in w for w in structured(preview)["warnings"])
    assert warning in preview.content[0].text  # type: ignore[union-attr]
