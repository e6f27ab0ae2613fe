"""list_purchase_orders: the merged, newest-first listing and its cursor.

Property (issue 3): paging with any page sizes visits every order exactly once, in the same order
as one big listing: no duplicates, no gaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from conftest import World, confirm_and_place, error_text, part_ids, structured


@pytest.fixture(scope="module")
def listed_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A sandbox with every simulator's seeded orders plus a few orders this server placed (in the ledger)."""
    world = World(tmp_path_factory.mktemp("list"), confirmation="token")

    async def place_some() -> None:
        async with Client(world.server) as client:
            ids = await part_ids(client, "MS21042L3")
            for i in range(7):
                await confirm_and_place(
                    client,
                    {
                        "vendor": "skynet",
                        "po_number": f"PO-L{i}",
                        "items": [{"part_id": ids["MS21042L3"], "quantity": 1}],
                    },
                )
                world.clock.advance(timedelta(minutes=1))

    anyio.run(place_some)
    yield world
    world.ledger.close()


async def all_pages(client: Client, sizes: list[int], **filters: Any) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    cursor = None
    for turn in range(10_000):
        args = {**filters, "limit": sizes[turn % len(sizes)], **({"cursor": cursor} if cursor else {})}
        page = structured(await client.call_tool("list_purchase_orders", args))
        seen += [(o["vendor"], o["order_id"]) for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5))
def test_paging_with_any_page_sizes_visits_every_order_once(listed_world: World, sizes: list[int]) -> None:
    async def check() -> None:
        async with Client(listed_world.server) as client:
            whole = await all_pages(client, [100])
            paged = await all_pages(client, sizes)
        assert paged == whole
        assert len(set(whole)) == len(whole)

    anyio.run(check)


def test_orders_are_newest_first_and_ledger_orders_are_marked(listed_world: World) -> None:
    async def check() -> None:
        async with Client(listed_world.server) as client:
            page = structured(await client.call_tool("list_purchase_orders", {"vendor": "skynet", "limit": 100}))
        orders = page["orders"]
        assert [o["po_number"] for o in orders] == [f"PO-L{i}" for i in reversed(range(7))]
        assert {o["source"] for o in orders} == {"ledger"}
        assert any("ledger" in note for note in page["notes"])

    anyio.run(check)


def test_filters_apply_to_every_source(listed_world: World) -> None:
    async def check() -> None:
        async with Client(listed_world.server) as client:
            by_po = structured(await client.call_tool("list_purchase_orders", {"po_number": "po-l3"}))
            assert [o["po_number"] for o in by_po["orders"]] == ["PO-L3"]
            drafts = structured(await client.call_tool("list_purchase_orders", {"status": "draft", "limit": 100}))
            assert drafts["orders"] and {o["status"] for o in drafts["orders"]} == {"draft"}
            newest = structured(await client.call_tool("list_purchase_orders", {"vendor": "skynet", "limit": 1}))
            after = newest["orders"][0]["created_at"]
            since = structured(
                await client.call_tool("list_purchase_orders", {"vendor": "skynet", "created_after": after})
            )
            assert [o["po_number"] for o in since["orders"]] == ["PO-L6"]  # created_after is inclusive
            before = structured(
                await client.call_tool(
                    "list_purchase_orders", {"vendor": "skynet", "created_before": after, "limit": 100}
                )
            )
            assert [o["po_number"] for o in before["orders"]] == [f"PO-L{i}" for i in reversed(range(6))]

    anyio.run(check)


def test_a_cursor_only_resumes_the_listing_it_came_from(listed_world: World) -> None:
    async def check() -> None:
        async with Client(listed_world.server) as client:
            first = structured(await client.call_tool("list_purchase_orders", {"vendor": "skynet", "limit": 2}))
            other = await client.call_tool(
                "list_purchase_orders",
                {"vendor": "skynet", "status": "draft", "limit": 2, "cursor": first["next_cursor"]},
            )
            assert "cursor" in error_text(other)
            garbage = await client.call_tool("list_purchase_orders", {"cursor": "not-a-cursor"})
            assert "cursor" in error_text(garbage)

    anyio.run(check)
