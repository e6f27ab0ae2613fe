"""A model that reads only text content (most chat clients show it nothing else) can do everything.

The client here never looks at structured_content: it finds part_ids, tokens, totals, order ids
and cursors in the text, as a model would, and completes lookup -> preview -> confirm -> get ->
page to the end at every vendor that supports each step. A second check walks the structured
content of each result and finds every field a model acts on in the text as well.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from conftest import World

pytestmark = pytest.mark.asyncio

# vendor -> a part number its sandbox catalog has, orderable without options
ORDERABLE = {"skynet": "MS21042L3", "factoryai": "SKF-6204", "keyloop": "1K0698151A", "partssource": "M3538A"}


def text(result: CallToolResult) -> str:
    assert result.content, "a result with no text"
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def read(client: Client, tool: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(tool, args)
    assert not result.is_error, text(result)
    return text(result)


def found(pattern: str, haystack: str) -> str:
    match = re.search(pattern, haystack)
    assert match, f"{pattern!r} not in:\n{haystack}"
    return match.group(1)


async def order_by_text(client: Client, vendor: str, po: str) -> str:
    """lookup -> preview -> confirm, reading text only; the order id the text names."""
    looked_up = await read(client, "lookup_parts", {"query": [ORDERABLE[vendor]], "vendors": [vendor]})
    part_id = found(r"part_id=(\S+?)(?: \(|$|\n)", looked_up)
    args = {"vendor": vendor, "po_number": po, "items": [{"part_id": part_id, "quantity": 2}]}
    preview = await read(client, "place_order", args)
    assert "nothing has been ordered yet" in preview
    token = found(r"confirmation_token: (\S+)", preview)
    total = found(r'confirmed_total="([^"]+)"', preview)
    placed = await read(client, "place_order", {**args, "confirmation_token": token, "confirmed_total": total})
    assert "PLACED now" in placed
    return found(rf"{vendor} order (\S+), PO «{re.escape(po)}»", placed)


@pytest.mark.parametrize("vendor", sorted(ORDERABLE))
async def test_a_text_only_client_orders_gets_and_lists(tmp_path: Any, vendor: str) -> None:
    world = World(tmp_path, confirmation="token")
    po = f"PO-TXT-{vendor}"
    async with Client(world.server) as client:
        order_id = await order_by_text(client, vendor, po)
        got = await read(client, "get_order", {"vendor": vendor, "order_id": order_id})
        assert f"order {order_id}, PO «{po}»" in got and "status: " in got
        listed = await read(client, "list_purchase_orders", {"vendor": vendor, "po_number": po})
        assert f"order {order_id} PO «{po}»" in listed


@pytest.mark.parametrize("vendor", ["skynet", "factoryai", "keyloop", "partssource", "shopmonkey"])
async def test_a_text_only_client_pages_through_every_order(tmp_path: Any, vendor: str) -> None:
    world = World(tmp_path, confirmation="token")
    async with Client(world.server) as client:
        if vendor in ORDERABLE:
            await order_by_text(client, vendor, f"PO-PAGE-{vendor}")
        seen: list[str] = []
        args: dict[str, Any] = {"vendor": vendor, "limit": 7}
        for _ in range(200):
            page = await read(client, "list_purchase_orders", args)
            seen += re.findall(rf"^- \S+ {vendor} order (\S+) PO ", page, flags=re.MULTILINE)
            if "this is the last page" in page:
                break
            args["cursor"] = found(r'cursor="([^"]+)"', page)
        else:
            pytest.fail("paging did not end")
        everything = (
            await client.call_tool("list_purchase_orders", {"vendor": vendor, "limit": 100})
        ).structured_content
    assert everything is not None
    assert len(seen) == len(set(seen)) > 0
    if len(everything["orders"]) < 100:
        assert set(seen) == {o["order_id"] for o in everything["orders"]}


# Fields a model acts on: wherever they occur in structured content, their value is in the text too.
ACTIONABLE = {
    "part_id",
    "order_id",
    "po_number",
    "confirmation_token",
    "next_cursor",
    "idempotency_key",
    "status",
    "vendor_status",
    "available_quantity",
    "next_steps",
    "code",
    "query",
    "part_number",
}


def facts(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        # A preview's lines carry the vendor's own order tokens; the model confirms with its own part_ids.
        # details: the vendor's extras (tracking, history) are shown, a long history only by its latest entry.
        return [f for k, v in value.items() if k not in ("preview", "details") for f in facts(v, k)] + (  # type: ignore[misc]
            [f for f in facts(value["preview"], "preview") if f[0] != "part_id"] if "preview" in value else []
        )
    if isinstance(value, list):
        if key in ("warnings", "not_found", "notes", "excludes", "caveats"):
            return [(key, str(v)) for v in value]  # type: ignore[misc]
        return [f for v in value for f in facts(v, key)]  # type: ignore[misc]
    if key == "orderable" and value is False:
        return [(key, "NOT ORDERABLE")]
    if isinstance(value, bool):
        return []  # capability flags: list_vendors words them
    if key in ("amount",) or (key in ACTIONABLE and value not in (None, "")):
        return [(key, str(value))]
    if key in ("expires_at", "created_at") and value:
        return [(key, str(value)[:16])]
    return []


def assert_in_text(result: CallToolResult) -> None:
    shown = text(result)
    assert result.structured_content is not None
    missing = [
        (k, v) for k, v in facts(result.structured_content) if v not in shown and v.replace("T", " ") not in shown
    ]
    assert not missing, f"in structured content but not in the text: {missing}\n{shown}"


async def test_every_fact_a_model_acts_on_is_in_the_text(tmp_path: Any) -> None:
    world = World(tmp_path, confirmation="token")
    async with Client(world.server) as client:
        assert_in_text(
            await client.call_tool("lookup_parts", {"query": [*ORDERABLE.values(), "PF63E", "AN960C10L", "NOPE-1"]})
        )
        looked_up = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        part_id = looked_up.structured_content["parts"][0]["part_id"]  # type: ignore[index]
        args = {"vendor": "skynet", "po_number": "PO-FACTS-1", "items": [{"part_id": part_id, "quantity": 3}]}
        preview = await client.call_tool("place_order", args)
        assert_in_text(preview)
        confirm = preview.structured_content or {}
        total = confirm["preview"]["total"]
        placed = await client.call_tool(
            "place_order",
            {
                **args,
                "confirmation_token": confirm["confirmation_token"],
                "confirmed_total": f"{total['amount']} {total['currency']}",
            },
        )
        assert_in_text(placed)
        assert_in_text(await client.call_tool("place_order", args))  # the replay
        order_id = (placed.structured_content or {})["order"]["order_id"]
        assert_in_text(await client.call_tool("get_order", {"vendor": "skynet", "order_id": order_id}))
        assert_in_text(await client.call_tool("get_order", {"vendor": "factoryai", "order_id": "po-001"}))
        assert_in_text(await client.call_tool("list_purchase_orders", {"limit": 20}))
        assert_in_text(await client.call_tool("list_purchase_orders", {"status": "open", "limit": 5}))
        assert_in_text(await client.call_tool("list_vendors", {}))
