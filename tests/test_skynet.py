"""Skynet's answers in the shapes its documents leave open, read through the tools.

The simulator answers one way (201, `total`, `created_at`, decimal strings); the documents do not
name the order's total and timestamp fields, and the catalog may carry entries we cannot use. Here
the real simulator's answers are rewritten into those other shapes on the way back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from mcp import Client

from parts_mcp.server.app import build_server

from conftest import World, confirm_and_place, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio

Reshape = Callable[[Any], Any]


class Reshaped(httpx2.AsyncBaseTransport):
    """Around the real simulator: the JSON answers of one path rewritten (and answered with `status`, if given)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, path: str, reshape: Reshape, status: int | None = None):
        self.inner, self.path, self.reshape, self.status = inner, path, reshape, status

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith(self.path):
            return response
        body = json.loads(await response.aread())
        return httpx2.Response(self.status or response.status_code, json=self.reshape(body), request=request)


def reshaped_server(world: World, path: str, reshape: Reshape, status: int | None = None) -> Any:
    skynet = world.sandbox.vendors()["skynet"]
    world.sandbox._transports["skynet"] = Reshaped(skynet.transport, path, reshape, status)
    return build_server(world.settings, sandbox=world.sandbox, ledger=world.ledger, clock=world.clock.now)


def as_number(money: dict[str, Any]) -> dict[str, Any]:
    return {**money, "amount": float(money["amount"])}


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def numbers_and_other_names(body: dict[str, Any]) -> dict[str, Any]:
    order = dict(body["order"])
    order["grand_total"] = as_number(order.pop("total"))
    order["createdAt"] = epoch_ms(order.pop("created_at"))
    # Lines without totals: the order's total can only come from grand_total.
    order["line_items"] = [
        {
            "part_number": line["part_number"],
            "quantity": str(line["quantity"]),
            "unit_price": as_number(line["unit_price"]),
        }
        for line in order["line_items"]
    ]
    return {**body, "order": order}


def no_total(body: dict[str, Any]) -> dict[str, Any]:
    order = dict(body["order"])
    del order["total"]
    order["timestamp"] = order.pop("created_at")
    return {**body, "order": order}


def null_total_then_another_name(body: dict[str, Any]) -> dict[str, Any]:
    order = dict(body["order"])
    order["order_total"], order["total"] = order["total"], None
    order["line_items"] = [{**line, "line_total": None} for line in order["line_items"]]
    return {**body, "order": order}


@pytest.mark.parametrize(
    ("reshape", "status"),
    [
        pytest.param(numbers_and_other_names, 200, id="grand_total-as-json-numbers-epoch-createdAt-200"),
        pytest.param(no_total, None, id="no-total-the-lines-add-up"),
        pytest.param(null_total_then_another_name, None, id="null-total-then-order_total"),
    ],
)
async def test_the_order_answers_total_and_time_are_read_under_any_documented_spelling(
    world: World, reshape: Reshape, status: int | None
) -> None:
    async with Client(reshaped_server(world, "/orders", reshape, status)) as client:
        ids = await part_ids(client, "MS21042L3", "AN960C10")
        items = [{"part_id": ids["MS21042L3"], "quantity": 2}, {"part_id": ids["AN960C10"], "quantity": 3}]
        placed = await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-W-1", "items": items})
    [truth] = world.skynet_orders
    assert placed["status"] == "placed"
    order = placed["order"]
    assert order["order_id"] == truth["order_id"]
    assert Decimal(order["total"]["amount"]) == Decimal(truth["total"]["amount"])
    assert order["total"]["currency"] == truth["total"]["currency"] == "USD"
    assert order["created_at"] == truth["created_at"]
    assert [(line["part_number"], line["quantity"]) for line in order["lines"]] == [("MS21042L3", 2), ("AN960C10", 3)]
    assert [Decimal(line["unit_price"]["amount"]) for line in order["lines"]] == [
        Decimal(item["unit_price"]["amount"]) for item in truth["items"]
    ]


async def test_an_order_answer_without_an_order_id_leaves_the_outcome_unknown(world: World) -> None:
    """The order was written, so an answer we cannot read must never say that nothing was ordered."""

    def without_id(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "order": {k: v for k, v in body["order"].items() if k != "order_id"}}

    async with Client(reshaped_server(world, "/orders", without_id)) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-W-2", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        result = await confirm_and_place(client, args)
    assert result["status"] == "outcome_unknown"
    assert len(world.skynet_orders) == 1


async def test_catalog_entries_that_cannot_be_read_cost_only_themselves(world: World) -> None:
    def with_junk(body: dict[str, Any]) -> dict[str, Any]:
        [part, *rest] = body["found_parts"]
        odd = {**part, "available_stock": str(part["available_stock"]), "price": {"amount": "n/a", "currency": "USD"}}
        junk = [5, "skynet_part_x", None, {"part_number": "NO-TOKEN"}, {"part_id": "skynet_part_y", "part_number": ""}]
        return {**body, "found_parts": [odd, *junk, *rest], "not_found": [*body["not_found"], 7, None]}

    async with Client(reshaped_server(world, "/catalog", with_junk)) as client:
        found = structured(
            await client.call_tool("lookup_parts", {"query": ["MS21042L3", "AN3-5A"], "vendors": ["skynet"]})
        )
    [part] = found["parts"]
    assert part["part_number"] == "MS21042L3"
    assert part["available_quantity"] == world.sandbox.skynet.stock["MS21042L3"]
    assert "unit_price" not in part  # unreadable: no price rather than a wrong one
    assert found["not_found"] == ["AN3-5A"]


async def test_short_stock_given_as_a_part_to_available_map_is_still_listed(world: World) -> None:
    """INSUFFICIENT_INVENTORY's details have no documented shape: a {part number: available} map is read too."""

    def as_map(body: dict[str, Any]) -> dict[str, Any]:
        error = body.get("error")
        if not error or error.get("code") != "INSUFFICIENT_INVENTORY":
            return body
        short = {item["part_number"]: item["available"] for item in error["details"]["items"]}
        return {**body, "error": {**error, "details": short}}

    async with Client(reshaped_server(world, "/orders", as_map)) as client:
        ids = await part_ids(client, "MS21042L08")
        args = {"vendor": "skynet", "po_number": "PO-W-3", "items": [{"part_id": ids["MS21042L08"], "quantity": 9}]}
        preview = structured(await client.call_tool("place_order", args))
        total = preview["preview"]["total"]
        refused = await client.call_tool(
            "place_order",
            {
                **args,
                "confirmation_token": preview["confirmation_token"],
                "confirmed_total": f"{total['amount']} {total['currency']}",
            },
        )
    text = error_text(refused)
    assert "INSUFFICIENT_INVENTORY" in text and "MS21042L08" in text and "available 5" in text
    assert world.skynet_orders == []
