"""Parts a model can find (issue 7, section 4): names in any form, and near misses for what nobody has.

Everything is proven through the SDK Client: lookup_parts for names and suggestions, list_vendors
for how each vendor searches.
Every expected part is a seeded simulator part; the simulators search as their documents say.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from parts_mcp.orders.service import MAX_LOOKED_AGAIN, MAX_SUGGESTIONS

from conftest import World, structured

pytestmark = pytest.mark.asyncio


async def look(world: World, query: list[str], vendors: list[str] | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"query": query, **({"vendors": vendors} if vendors else {})}
    async with Client(world.server) as client:
        return structured(await client.call_tool("lookup_parts", args))


async def search_helps(client: Client) -> dict[str, str]:
    listed = structured(await client.call_tool("list_vendors", {}))
    return {v["vendor"]: v["search"] for v in listed["vendors"]}


async def found_numbers(world: World, query: str, vendor: str) -> set[str]:
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": [query], "vendors": [vendor]}))
    assert found["not_found"] == [] and found["vendor_errors"] == []
    return {p["part_number"] for p in found["parts"]}


def catalog_calls(world: World) -> list[Any]:
    return [r for r in world.sandbox.skynet.requests if r.path == "/catalog"]


# ------------------------------------------------------------------------------ names in any form


@pytest.mark.parametrize(
    ("vendor", "queries", "expected"),
    [
        # Shopmonkey leaves matching to the client; its inventory says "Brake Pad Set".
        ("shopmonkey", ["brake pads", "pad brake", "Pads, brake"], {"17D1210CH", "17D1367CH"}),
        # Factory AI's search matches text: "ball bearings" is in no record, "bearing" is.
        ("factoryai", ["ball bearings", "bearings ball"], {"SKF-6204", "SKF-6205", "SKF-6305-2RS"}),
        # Skynet's titles read "Washer, Flat, ...".
        ("skynet", ["flat washers", "washers flat"], {"AN960C10", "AN960C416", "NAS1149F0363P", "AN970-3"}),
        # PartsSource's keyword search: "batteries" is in no description, "battery" is.
        ("partssource", ["batteries", "lithium ion batteries"], {"M3538A", "2066772-001"}),
    ],
)
async def test_a_name_matches_across_plural_and_word_order(
    world: World, vendor: str, queries: list[str], expected: set[str]
) -> None:
    for query in queries:
        assert expected <= await found_numbers(world, query, vendor), query


async def test_parts_found_by_a_name_variant_are_orderable_like_any_other(world: World) -> None:
    """A part the second look found is a full offer: price, stock and a part_id that previews."""
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["flat washers"], "vendors": ["skynet"]}))
        washer = next(p for p in found["parts"] if p["part_number"] == "AN960C10")
        assert washer["unit_price"] == {"amount": "6.85", "currency": "USD"} and washer["available_quantity"] == 240
        preview = structured(
            await client.call_tool(
                "place_order",
                {
                    "vendor": "skynet",
                    "po_number": "PO-FIND-1",
                    "items": [{"part_id": washer["part_id"], "quantity": 2}],
                },
            )
        )
    assert preview["status"] == "confirmation_required"
    assert preview["preview"]["total"] == {"amount": "13.70", "currency": "USD"}


async def test_a_name_keyloop_cannot_search_stays_not_found_without_a_search(world: World) -> None:
    """Keyloop's search takes part codes only: a name costs no search call there, in either round."""
    found = await look(world, ["brake pads"], ["keyloop"])
    assert found["parts"] == [] and found["not_found"] == ["brake pads"] and found["suggestions"] == []
    assert not [r for r in world.sandbox.keyloop.requests if r.path.endswith("/parts")]


# --------------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("query", "vendor", "nearest"),
    [
        ("AN960C10L", "skynet", "AN960C10"),  # a stray suffix, at a vendor that matches numbers exactly
        ("AN3-5A", "skynet", "AN3-6A"),  # Skynet's own not_found example: the next size up exists
        ("MS21042L5", "skynet", "MS21042L4"),
        ("SKF-6206", "factoryai", "SKF-6204"),  # a text search, asked with the number's first two thirds
        ("M1191BX", "partssource", "M1191BL"),
        ("1K0698151B", "keyloop", "V1K0698151A"),  # exact part codes: the neighbouring index letter
        ("17D1210CX", "shopmonkey", "17D1210CH"),  # the whole inventory is read anyway: no extra call
    ],
)
async def test_a_part_number_nobody_has_suggests_the_nearest_one_the_vendor_has(
    world: World, query: str, vendor: str, nearest: str
) -> None:
    found = await look(world, [query], [vendor])
    assert found["parts"] == [] and found["not_found"] == [query]
    best = found["suggestions"][0]
    assert (best["query"], best["vendor"], best["part_number"]) == (query, vendor, nearest)
    assert best["name"] and 0.6 <= best["similarity"] < 1
    assert len(found["suggestions"]) <= MAX_SUGGESTIONS


async def test_a_name_nothing_fully_matches_suggests_parts_with_most_of_its_words(world: World) -> None:
    found = await look(world, ["brake pad kit"], ["shopmonkey"])
    assert found["not_found"] == ["brake pad kit"]
    assert {s["part_number"] for s in found["suggestions"]} == {"17D1210CH", "17D1367CH"}


async def test_suggestions_are_few_best_first_and_only_for_queries_nobody_found(world: World) -> None:
    found = await look(world, ["MS21042L3", "AN960C10L", "brake kit"])
    assert found["not_found"] == ["AN960C10L", "brake kit"]
    by_query: dict[str, list[dict[str, Any]]] = {}
    for suggestion in found["suggestions"]:
        by_query.setdefault(suggestion["query"], []).append(suggestion)
    assert list(by_query) == ["AN960C10L", "brake kit"]  # in not_found's order; none for the part found
    # Five Shopmonkey brake parts share "brake": only the best few are offered.
    assert all(len(s) <= MAX_SUGGESTIONS for s in by_query.values()) and len(by_query["brake kit"]) == MAX_SUGGESTIONS
    for suggestions in by_query.values():
        scores = [s["similarity"] for s in suggestions]
        assert scores == sorted(scores, reverse=True)
    assert by_query["AN960C10L"][0]["part_number"] == "AN960C10"


# ------------------------------------------------------------------------------------- its cost


async def test_the_second_look_is_one_more_catalog_call_at_skynet(world: World) -> None:
    """Near numbers and name words for every miss go in one call, within Skynet's 50 entries."""
    found = await look(world, ["MS21042L3", "AN960C10L", "AN3-5A", "MS21042L5", "flat washers"], ["skynet"])
    assert {"MS21042L3", "AN960C10"} <= {p["part_number"] for p in found["parts"]}
    assert found["not_found"] == ["AN960C10L", "AN3-5A", "MS21042L5"]
    calls = catalog_calls(world)
    assert len(calls) == 2
    assert all(len(c.body.get("part_numbers", [])) + len(c.body.get("part_names", [])) <= 50 for c in calls)


async def test_a_bulk_check_of_many_unknown_numbers_gets_no_second_look(world: World) -> None:
    queries = [f"NAS{9000 + i}X" for i in range(MAX_LOOKED_AGAIN + 1)]
    found = await look(world, queries, ["skynet"])
    assert found["not_found"] == queries and found["suggestions"] == []
    assert len(catalog_calls(world)) == 1


async def test_a_slow_second_look_costs_only_its_extras(tmp_path: Any) -> None:
    """Both rounds share the vendor's deadline: a second round that cannot finish in it is dropped, the
    first round's answer stands, and the vendor is not reported as failed."""
    world = World(tmp_path, lookup_deadline=1.9)
    world.sandbox.skynet.faults.latency = 1.0  # the first round fits (0.9 s to spare under load); a second cannot
    found = await look(world, ["MS21042L3", "AN960C10L"], ["skynet"])
    assert [p["part_number"] for p in found["parts"]] == ["MS21042L3"]
    assert found["not_found"] == ["AN960C10L"]
    assert found["vendor_errors"] == [] and found["suggestions"] == []


async def test_a_failing_second_look_costs_only_its_extras(world: World) -> None:
    """Factory AI answers the first round, then rate-limits past the retries: the first answer stands."""
    factoryai = world.sandbox.factoryai
    factoryai.rate_limit = 1  # one request per window: the look-up's second call is refused
    found = await look(world, ["SKF-6206"], ["factoryai"])
    assert found["not_found"] == ["SKF-6206"] and found["vendor_errors"] == [] and found["suggestions"] == []
    statuses = [r.status for r in factoryai.requests]
    assert statuses[0] == 200 and 429 in statuses


# --------------------------------------------------------------------------------- search_help


async def test_every_vendor_says_how_it_searches(world: World) -> None:
    async with Client(world.server) as client:
        helps = await search_helps(client)
        shown = (await client.call_tool("list_vendors", {})).content[0].text  # type: ignore[union-attr]
    assert all(0 < len(text) <= 300 for text in helps.values())
    assert "part number" in helps["skynet"] and "exact part codes" in helps["keyloop"]
    assert "keywords" in helps["partssource"] and "own parts catalog" in helps["factoryai"]
    assert "inventory" in helps["shopmonkey"]
    assert all(text in shown for text in helps.values())


async def test_keyloop_names_the_dealers_brands_once_it_knows_them(world: World) -> None:
    async with Client(world.server) as client:
        assert "Volkswagen" not in (await search_helps(client))["keyloop"]
        await client.call_tool("lookup_parts", {"query": ["V1K0698151A"], "vendors": ["keyloop"]})
        helps = await search_helps(client)
    assert "Volkswagen (V)" in helps["keyloop"] and "Audi (A)" in helps["keyloop"]
