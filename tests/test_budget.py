"""The daily budget per vendor rolls over at UTC midnight by the server's one clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mcp import Client

from conftest import BOTH_STORES, World, confirm_and_place, error_text, part_ids

# The ledger's guarantees hold on both stores: each test runs on SQLite and on a real PostgreSQL.
pytestmark = [pytest.mark.asyncio, BOTH_STORES]


async def test_the_daily_budget_rolls_over_at_utc_midnight(tmp_path: Any) -> None:
    world = World(tmp_path, confirmation="token", max_daily_total_per_vendor="50.00")
    now = world.clock.now()
    evening = now.replace(hour=23, minute=50, second=0, microsecond=0)
    world.clock.advance((evening if evening > now else evening + timedelta(days=1)) - now)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        item = [{"part_id": ids["MS21042L3"], "quantity": 3}]  # 37.20 USD at list price
        first = await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-DAY-1", "items": item})
        assert first["status"] == "placed"
        late = error_text(
            await client.call_tool("place_order", {"vendor": "skynet", "po_number": "PO-DAY-2", "items": item})
        )
        assert late.startswith("[OVER_DAILY_LIMIT] items: ")
        world.clock.advance(timedelta(minutes=11))  # 00:01 UTC: a new day, a new budget
        second = await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-DAY-2", "items": item})
    assert second["status"] == "placed"
    assert len(world.skynet_orders) == 2
