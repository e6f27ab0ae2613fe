"""lookup_parts through the SDK Client: batching, not-found, retries, and partial results."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from conftest import World, error_text, structured

pytestmark = pytest.mark.asyncio


async def test_names_and_numbers_are_both_looked_up(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(
            await client.call_tool("lookup_parts", {"query": ["ms21042l3", "nut, self-locking"], "vendors": ["skynet"]})
        )
    numbers = {p["part_number"] for p in found["parts"]}
    assert "MS21042L3" in numbers and len(numbers) > 1
    assert found["not_found"] == []
    # List prices, and part_ids that are part numbers: nothing here expires.
    assert all(p["price_basis"] == "list" and p.get("expires_at") is None for p in found["parts"])


async def test_more_than_fifty_queries_are_batched_within_skynets_limit(world: World) -> None:
    """Skynet takes at most 50 entries a call; 120 queries take three calls and lose nothing."""
    queries = ["MS21042L3", *[f"NAS{1000 + i}X" for i in range(119)]]
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": queries, "vendors": ["skynet"]}))
    catalog_calls = [r for r in world.sandbox.skynet.requests if r.path == "/catalog"]
    assert len(catalog_calls) == 3
    assert all(len(r.body.get("part_numbers", [])) + len(r.body.get("part_names", [])) <= 50 for r in catalog_calls)
    assert len(found["not_found"]) == 119 and [p["part_number"] for p in found["parts"]] == ["MS21042L3"]


async def test_an_upstream_error_is_retried(world: World) -> None:
    world.sandbox.skynet.faults.arm("upstream_error")
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
    assert found["vendor_errors"] == [] and found["parts"]
    assert [r.status for r in world.sandbox.skynet.requests if r.path == "/catalog"] == [502, 200]


async def test_a_vendor_failing_past_its_retry_budget_is_reported_not_raised(world: World) -> None:
    world.sandbox.skynet.faults.arm("upstream_error", 3)
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]}))
    [failure] = found["vendor_errors"]
    assert failure["vendor"] == "skynet" and failure["code"] == "UPSTREAM_ERROR" and failure["retryable"]
    assert found["parts"] == [] and found["not_found"] == []  # nobody answered, so nothing is "not found"


async def test_a_slow_vendor_times_out_within_the_deadline(tmp_path: Any) -> None:
    world = World(tmp_path, lookup_deadline=0.2)
    world.sandbox.skynet.faults.latency = 5.0
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]}))
    assert [e["code"] for e in found["vendor_errors"]] == ["TIMEOUT"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"query": []}, "query"),
        ({"query": [""]}, "query"),
        ({"query": ["x" * 121]}, "query"),
        ({"query": "MS21042L3"}, "query"),
        ({"query": ["MS21042L3"], "vendors": ["nope"]}, "vendors"),
    ],
)
async def test_bad_queries_are_refused_naming_the_field(world: World, args: dict[str, Any], field: str) -> None:
    async with Client(world.server) as client:
        assert field in error_text(await client.call_tool("lookup_parts", args))
    assert world.sandbox.skynet.requests == []


async def test_vendor_text_is_sanitized_before_the_model_sees_it(world: World) -> None:
    """Vendor text is untrusted: bidi overrides and invisible characters are stripped."""
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3\u202e\u200b"]}))
    assert [p["part_number"] for p in found["parts"]] == ["MS21042L3"]


async def test_without_vendors_every_vendor_that_can_look_up_is_asked(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3", "SKF-6204"]}))
    vendors = {p["vendor"] for p in found["parts"]}
    assert {"skynet", "factoryai"} <= vendors
    assert found["not_found"] == [] and found["vendor_errors"] == []


@pytest.mark.parametrize("slow", ["skynet", "factoryai", "shopmonkey", "keyloop", "partssource"])
async def test_one_slow_vendor_yields_its_error_and_everyone_elses_results(tmp_path: Any, slow: str) -> None:
    """Issue 3: each vendor under its own deadline; one slow vendor does not hold the others back."""
    world = World(tmp_path, lookup_deadline=0.5)
    getattr(world.sandbox, slow).faults.latency = 30.0
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3", "SKF-6204"]}))
    assert [(e["vendor"], e["code"]) for e in found["vendor_errors"]] == [(slow, "TIMEOUT")]
    answered = {p["vendor"] for p in found["parts"]}
    assert slow not in answered
    assert answered >= {"skynet", "factoryai"} - {slow}


async def test_one_failing_vendor_yields_its_error_and_everyone_elses_results(world: World) -> None:
    world.sandbox.skynet.faults.arm("upstream_error", 3)
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3", "SKF-6204"]}))
    assert [(e["vendor"], e["code"]) for e in found["vendor_errors"]] == [("skynet", "UPSTREAM_ERROR")]
    assert "factoryai" in {p["vendor"] for p in found["parts"]}
    # not_found speaks for the vendors that answered; vendor_errors says who could not.
    assert found["not_found"] == ["MS21042L3"]
