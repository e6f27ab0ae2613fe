"""lookup_parts at the round-trip limit, seen at the simulators: how many requests each vendor's look-up
sends one after another, how many at once, and what a vendor that never answers costs.

The simulators answer after a small latency so that requests sent together overlap; `Traffic.depth`
is then the longest chain of requests each sent after the previous one was answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from parts_mcp.config import Settings
from parts_mcp.vendors import factoryai

from conftest import World, structured

pytestmark = pytest.mark.asyncio

LATENCY = 0.05
# A part number each vendor has, and the calls its look-up must wait for: the search, then (Keyloop)
# its price-availability or (PartsSource) its product detail. Factory AI's stock goes with its search.
CHAINS = {
    "skynet": ("MS21042L3", 1, 1),
    "factoryai": ("SKF-6204", 2, 1),
    "shopmonkey": ("PF63E", 1, 1),
    "keyloop": ("1K0698151A", 2, 2),
    "partssource": ("M3538A", 2, 2),
}


def _traffic(world: World, vendor: str) -> Any:
    return getattr(world.sandbox, vendor).faults.traffic


@pytest.mark.parametrize("vendor", list(CHAINS))
async def test_each_vendor_makes_only_its_dependent_round_trips(world: World, vendor: str) -> None:
    query, requests, depth = CHAINS[vendor]
    getattr(world.sandbox, vendor).faults.latency = LATENCY
    args = {"query": [query], "vendors": [vendor]}
    async with Client(world.server) as client:
        await client.call_tool("lookup_parts", args)  # tokens and Keyloop's brands: fetched once, then cached
        _traffic(world, vendor).clear()
        found = structured(await client.call_tool("lookup_parts", args))
    assert found["vendor_errors"] == [] and found["not_found"] == []
    assert {p["vendor"] for p in found["parts"]} == {vendor}
    traffic = _traffic(world, vendor)
    assert (len(traffic.spans), traffic.depth) == (requests, depth)


async def test_the_first_look_up_fetches_the_token_beside_nothing_it_could_wait_for(world: World) -> None:
    """Keyloop's code search needs no brand list: it goes as soon as the token is there, beside the brands."""
    world.sandbox.keyloop.faults.latency = LATENCY
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["1K0698151A"], "vendors": ["keyloop"]}))
    assert found["parts"] and found["vendor_errors"] == []
    traffic = world.sandbox.keyloop.faults.traffic
    # token, brands, search, price-availability: four requests, three deep.
    assert (len(traffic.spans), traffic.depth) == (4, 3)


async def test_many_queries_stay_within_the_vendors_concurrency_cap(world: World) -> None:
    queries = ["SKF-6204", "FILTER-001", "HYD-FLT-937", *(f"NOPE-{i:03d}" for i in range(9))]
    world.sandbox.factoryai.faults.latency = LATENCY
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": queries, "vendors": ["factoryai"]}))
    assert found["vendor_errors"] == []
    traffic = world.sandbox.factoryai.faults.traffic
    # Every part number's search and its stock (24 requests), never more than the cap at once.
    assert len(traffic.spans) >= 2 * len(queries)
    assert traffic.most_in_flight == factoryai.CONCURRENCY


async def test_a_hung_vendor_is_named_beside_everyone_elses_results_at_the_deadline(tmp_path: Any) -> None:
    world = World(tmp_path, lookup_deadline=0.3)
    world.sandbox.partssource.faults.latency = 3600.0  # answers nothing within any deadline
    queries = ["MS21042L3", "SKF-6204", "M3538A"]
    async with Client(world.server) as client:
        result = await client.call_tool("lookup_parts", {"query": queries})
    found = structured(result)
    [late] = found["vendor_errors"]
    assert (late["vendor"], late["code"], late["retryable"]) == ("partssource", "TIMEOUT", True)
    assert "within 0.3s" in late["message"] and "Ask partssource again" in late["message"]
    assert {"skynet", "factoryai"} <= {p["vendor"] for p in found["parts"]}
    text = result.content[0].text  # type: ignore[union-attr]
    assert "partssource failed: [TIMEOUT]" in text and "MS21042L3" in text


async def test_a_chat_waits_eight_seconds_at_most_by_default() -> None:
    assert Settings().lookup_deadline == 8.0
