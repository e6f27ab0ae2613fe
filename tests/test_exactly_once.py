"""Exactly-once under the faults that could sneak a second order through (review findings).

Ground truth is each simulator's record of the orders it created; `replayed` is never taken as proof.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import ManualClock
from parts_mcp.server.app import build_server
from parts_mcp.vendors.base import breaker_clock

from conftest import BOTH_STORES, World, confirm_and_place, part_ids, structured

# The ledger's guarantees hold on both stores: each test runs on SQLite and on a real PostgreSQL.
pytestmark = [pytest.mark.asyncio, BOTH_STORES]


def order_posts(world: World, vendor: str, path: str) -> list[Any]:
    return [r for r in getattr(world.sandbox, vendor).requests if r.method == "POST" and r.path == path]


async def test_factoryai_failed_search_after_a_lost_answer_never_resends(world: World) -> None:
    """Factory AI has no idempotency key: only a search that worked may allow a resend."""
    factoryai = world.sandbox.factoryai
    factoryai.faults.arm("drop_after_commit")
    factoryai.faults.arm("search_error", 10)
    breaker = ManualClock()
    breaker_clock.set(breaker.now)  # the failed searches open Factory AI's circuit (tests/test_circuit.py)
    async with Client(world.server) as client:
        ids = await part_ids(client, "SKF-6204", vendor="factoryai")
        args = {"vendor": "factoryai", "po_number": "PO-X-1", "items": [{"part_id": ids["SKF-6204"], "quantity": 2}]}
        first = await confirm_and_place(client, args)
        assert first["status"] == "outcome_unknown"
        again = structured(await client.call_tool("place_order", args))
        assert again["status"] == "outcome_unknown"
        assert len(order_posts(world, "factoryai", "/part-orders")) == 1
        factoryai.faults.clear()
        breaker.advance(60)
        found = structured(await client.call_tool("place_order", args))
    assert found["status"] == "placed" and found["replayed"] is True
    [truth] = factoryai.orders
    assert found["order"]["order_id"] == truth["id"]
    assert len(order_posts(world, "factoryai", "/part-orders")) == 1


async def test_partssource_failed_search_after_a_lost_answer_keeps_the_key(world: World) -> None:
    """A lost answer is not a stored 5xx: the same key (which replays the order) is the only safe resend."""
    partssource = world.sandbox.partssource
    breaker = ManualClock()
    breaker_clock.set(breaker.now)  # the failed searches open PartsSource's circuit (tests/test_circuit.py)
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["M1191BL"], "vendors": ["partssource"]}))
        part_id = found["parts"][0]["part_id"]
        args = {"vendor": "partssource", "po_number": "PO-X-2", "items": [{"part_id": part_id, "quantity": 1}]}
        partssource.faults.arm("drop_after_commit", 3)
        partssource.faults.arm("search_error", 10)
        first = await confirm_and_place(client, args)
        assert first["status"] == "outcome_unknown"
        again = structured(await client.call_tool("place_order", args))
        assert again["status"] == "outcome_unknown"
        partssource.faults.clear()
        breaker.advance(60)
        done = structured(await client.call_tool("place_order", args))
    assert done["status"] == "placed"
    assert len(partssource.created_orders) == 1
    assert {r.idempotency_key for r in order_posts(world, "partssource", "/orders")} == {first["idempotency_key"]}


class LostThenThrottled(httpx2.AsyncBaseTransport):
    """Around the real simulator: the first order POST lands but its answer is lost; then the vendor says 429."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner, self.posts = inner, 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path.endswith("/orders"):
            self.posts += 1
            if self.posts == 1:
                await self.inner.handle_async_request(request)
                raise httpx2.RemoteProtocolError("server disconnected", request=request)
            return httpx2.Response(429, headers={"Retry-After": "0"}, json={"success": False}, request=request)
        return await self.inner.handle_async_request(request)


async def test_a_later_429_does_not_hide_that_the_first_attempt_may_have_landed(world: World) -> None:
    """Attempt 1 committed (answer lost), attempts 2-3 were throttled: the outcome is unknown, not rejected."""
    skynet = world.sandbox.vendors()["skynet"]
    wrapped = LostThenThrottled(skynet.transport)
    world.sandbox._transports["skynet"] = wrapped
    server = build_server(world.settings, sandbox=world.sandbox, ledger=world.ledger, clock=world.clock.now)
    async with Client(server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-X-3", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        result = await confirm_and_place(client, args)
    assert result["status"] == "outcome_unknown"
    intent = await world.ledger.get("skynet", "PO-X-3")
    assert intent is not None and intent.state.value == "unknown"
    assert len(world.skynet_orders) == 1


async def test_skynet_idempotency_conflict_is_never_reported_as_nothing_ordered(world: World, tmp_path: Any) -> None:
    """A second server with its own ledger sends the same order under the same key but other part tokens."""
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-X-4", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        await confirm_and_place(client, args)
    other = build_server(world.settings, sandbox=world.sandbox, ledger=SQLiteLedger(tmp_path / "other.sqlite3"))
    async with Client(other) as client:
        ids = await part_ids(client, "MS21042L3")
        again = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-X-4", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
    assert again["status"] == "outcome_unknown"
    assert len(world.skynet_orders) == 1


async def test_an_intent_another_process_is_driving_is_left_alone(world: World, tmp_path: Any) -> None:
    """Two server processes share the default ledger: a live lease means hands off, no second send."""
    factoryai = world.sandbox.factoryai
    factoryai.faults.arm("drop_after_commit")
    factoryai.faults.arm("search_error", 10)
    async with Client(world.server) as client:
        ids = await part_ids(client, "SKF-6204", vendor="factoryai")
        args = {"vendor": "factoryai", "po_number": "PO-X-5", "items": [{"part_id": ids["SKF-6204"], "quantity": 1}]}
        assert (await confirm_and_place(client, args))["status"] == "outcome_unknown"
    factoryai.faults.clear()
    intent = await world.ledger.get("factoryai", "PO-X-5")
    assert intent is not None
    assert await world.ledger.lease(intent.id, "another-process", 300)
    async with Client(world.server) as client:
        busy = structured(await client.call_tool("place_order", args))
    assert busy["status"] == "outcome_unknown" and "Another parts-mcp process" in busy["warnings"][0]
    await world.ledger.release(intent.id, "another-process")
    async with Client(world.server) as client:
        done = structured(await client.call_tool("place_order", args))
    assert done["status"] == "placed"
    assert len(factoryai.orders) == 1 and len(order_posts(world, "factoryai", "/part-orders")) == 1


async def test_the_same_skynet_order_looked_up_again_is_still_the_same_order(world: World) -> None:
    """Skynet issues a new part token per look-up (each preview carries its own): a repeat after a fresh
    look-up is a replay, not a conflict."""
    async with Client(world.server) as client:
        first_ids = await part_ids(client, "MS21042L3")
        args = {
            "vendor": "skynet",
            "po_number": "PO-X-6",
            "items": [{"part_id": first_ids["MS21042L3"], "quantity": 2}],
        }
        placed = await confirm_and_place(client, args)
        fresh = await part_ids(client, "MS21042L3")
        assert fresh["MS21042L3"] == first_ids["MS21042L3"]  # our part_id is the part number, not the token
        again = structured(
            await client.call_tool("place_order", {**args, "items": [{"part_id": fresh["MS21042L3"], "quantity": 2}]})
        )
    assert again["status"] == "placed" and again["replayed"] is True
    assert again["order"]["order_id"] == placed["order"]["order_id"]
    assert len(world.skynet_orders) == 1


async def test_a_non_ascii_confirmation_token_is_refused_naming_the_field(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-X-7", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        body, _, _ = preview["confirmation_token"].partition(".")
        result = await client.call_tool(
            "place_order", {**args, "confirmation_token": f"{body}.ünïcødé", "confirmed_total": "12.40 USD"}
        )
    assert result.is_error and "TOKEN_INVALID" in result.content[0].text  # type: ignore[union-attr]
    assert world.skynet_orders == []


@pytest.mark.parametrize("vendor", ["skynet", "factoryai", "keyloop", "partssource"])
async def test_twenty_identical_confirmations_at_once_make_one_order(world: World, vendor: str) -> None:
    """A double (or twenty-fold) click: the same confirmed call arriving concurrently places one order."""
    number = {"skynet": "MS21042L3", "factoryai": "SKF-6204", "keyloop": "1K0698151A", "partssource": "M1191BL"}[vendor]
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": [number], "vendors": [vendor]}))
        part_id = found["parts"][0]["part_id"]
        args = {"vendor": vendor, "po_number": f"PO-C-{vendor}", "items": [{"part_id": part_id, "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        total = preview["preview"]["total"]
        confirm = {
            **args,
            "confirmation_token": preview["confirmation_token"],
            "confirmed_total": f"{total['amount']} {total['currency']}",
        }
        results: list[dict[str, Any]] = []

        async def click() -> None:
            results.append(structured(await client.call_tool("place_order", confirm)))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(click)
    assert {r["status"] for r in results} == {"placed"}
    assert len({r["order"]["order_id"] for r in results}) == 1
    assert sum(not r["replayed"] for r in results) == 1
    created = {
        "skynet": lambda: world.sandbox.skynet.orders,
        "factoryai": lambda: world.sandbox.factoryai.orders,
        "keyloop": lambda: world.sandbox.keyloop.orders,
        "partssource": lambda: world.sandbox.partssource.created_orders,
    }[vendor]()
    assert len(created) == 1


async def test_one_po_number_in_another_case_is_the_same_po(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        item = {"part_id": ids["MS21042L3"], "quantity": 1}
        placed = await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-Case-1", "items": [item]})
        again = structured(
            await client.call_tool("place_order", {"vendor": "skynet", "po_number": "po-case-1", "items": [item]})
        )
    assert again["replayed"] is True and again["order"]["order_id"] == placed["order"]["order_id"]
    assert len(world.skynet_orders) == 1


async def test_a_call_cancelled_mid_send_leaves_no_lease_behind(world: World, tmp_path: Any) -> None:
    """The client gives up while the vendor is still working: the next process may carry on at once."""
    world.sandbox.factoryai.faults.latency = 0.5
    async with Client(world.server) as client:
        ids = await part_ids(client, "SKF-6204", vendor="factoryai")
        args = {"vendor": "factoryai", "po_number": "PO-X-8", "items": [{"part_id": ids["SKF-6204"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        total = preview["preview"]["total"]
        with anyio.move_on_after(0.8):  # past the preview's read, inside the POST's wait
            await client.call_tool(
                "place_order",
                {
                    **args,
                    "confirmation_token": preview["confirmation_token"],
                    "confirmed_total": f"{total['amount']} {total['currency']}",
                },
            )
    world.sandbox.factoryai.faults.latency = 0.0
    other = build_server(world.settings, sandbox=world.sandbox, ledger=world.ledger, clock=world.clock.now)
    async with Client(other) as client:
        done = structured(await client.call_tool("place_order", args))
    assert "Another parts-mcp process" not in " ".join(done.get("warnings", []))
    assert len(world.sandbox.factoryai.orders) <= 1
