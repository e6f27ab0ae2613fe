"""Who ordered (issue 11): every order names its person, and each person has a daily limit across vendors.

Over stdio the person is the local user (or `[server] principal`); over HTTP it is the bearer token's
(tests/test_auth.py). The simulators' records are the ground truth.
"""

from __future__ import annotations

import getpass
from decimal import Decimal
from pathlib import Path

import pytest
from mcp import Client

from parts_mcp.config import ServerSettings

from conftest import BOTH_STORES, World, confirm_and_place, error_text, part_ids, structured

# The ledger's guarantees hold on both stores: each test runs on SQLite and on a real PostgreSQL.
pytestmark = [pytest.mark.asyncio, BOTH_STORES]


def as_person(world: World, name: str | None) -> World:
    return world.reconfigured(server=ServerSettings(principal=name))


async def test_over_stdio_orders_are_placed_by_the_local_user_and_say_so(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-WHO-1", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        placed = await confirm_and_place(client, args)
        again = await client.call_tool("place_order", args)
    assert placed["placed_by"] == getpass.getuser()
    assert f"placed by: {getpass.getuser()}" in again.content[0].text  # type: ignore[union-attr]
    recorded = [e for e in await world.ledger.audit_log() if e.event == "intent_recorded"]
    assert recorded[0].actor.startswith(f"{getpass.getuser()} via ")


async def test_each_person_has_a_daily_limit_across_vendors(tmp_path: Path) -> None:
    alice = as_person(World(tmp_path, confirmation="token", max_daily_total_per_principal=Decimal("900.00")), "alice")
    async with Client(alice.server) as client:
        first = await confirm_and_place(
            client, {"vendor": "factoryai", "po_number": "PO-P-1", "items": [{"part_id": "part-001", "quantity": 5}]}
        )
        ids = await part_ids(client, "AN960C10")
        # 432.70 billed at Factory AI; 100 x 6.85 = 685.00 more at Skynet would take alice to 1,117.70.
        refused = error_text(
            await client.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-P-2", "items": [{"part_id": ids["AN960C10"], "quantity": 100}]},
            )
        )
    assert first["placed_by"] == "alice"
    assert refused.startswith("[OVER_PRINCIPAL_DAILY_LIMIT] items: This order (up to 685.00 USD) would take alice's")
    assert alice.skynet_orders == [] and len(alice.sandbox.factoryai.orders) == 1
    bob = as_person(alice, "bob")  # the same ledger and day, another person: their own limit
    async with Client(bob.server) as client:
        ids = await part_ids(client, "AN960C10")
        placed = await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-P-3", "items": [{"part_id": ids["AN960C10"], "quantity": 100}]},
        )
    assert placed["status"] == "placed" and placed["placed_by"] == "bob"
    assert len(bob.skynet_orders) == 1
    alice.ledger.close()


async def test_the_limit_holds_at_confirmation_even_when_each_preview_fitted(tmp_path: Path) -> None:
    world = as_person(World(tmp_path, confirmation="token", max_daily_total_per_principal=Decimal("500.00")), "carol")
    async with Client(world.server) as client:
        args = {"vendor": "factoryai", "po_number": "PO-C-1", "items": [{"part_id": "part-001", "quantity": 3}]}
        other = {"vendor": "factoryai", "po_number": "PO-C-2", "items": [{"part_id": "part-002", "quantity": 1}]}
        first = structured(await client.call_tool("place_order", args))
        second = structured(await client.call_tool("place_order", other))  # both previews fit alone
        await confirm_and_place(client, args)
        total = second["preview"]["total"]
        late = error_text(
            await client.call_tool(
                "place_order",
                {
                    **other,
                    "confirmation_token": second["confirmation_token"],
                    "confirmed_total": f"{total['amount']} {total['currency']}",
                },
            )
        )
    assert first["status"] == second["status"] == "confirmation_required"
    assert late.startswith("[OVER_PRINCIPAL_DAILY_LIMIT] items: ")
    assert len(world.sandbox.factoryai.orders) == 1
    world.ledger.close()
