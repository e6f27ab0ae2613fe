"""Regressions from the review of issue 7: each test is a failure a reviewer reproduced.

- A failure before anything is sent says nothing was ordered, in the `[CODE] field:` shape.
- A form answer the SDK cannot read is a clear refusal, not an internal error.
- A secret a vendor echoes never reaches the form or the text, not even cut to length.
- Options the vendors' own examples use (numbers, camelCase, references for every line and one line).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitRequestFormParams, ElicitResult, TextContent

from parts_mcp.sandbox.skynet import SANDBOX_API_KEY

from conftest import World, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio


def skynet_order(part_id: str, po: str = "PO-MEND-1") -> dict[str, Any]:
    return {"vendor": "skynet", "po_number": po, "items": [{"part_id": part_id, "quantity": 1}]}


async def test_a_vendor_failure_while_pricing_says_nothing_was_ordered(world: World) -> None:
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        world.sandbox.skynet.faults.arm("upstream_error", 3)
        text = error_text(await client.call_tool("place_order", skynet_order(ids["MS21042L3"])))
    assert text.startswith("[VENDOR_UNAVAILABLE] vendor: ")
    assert "Nothing was ordered." in text and "may exist" not in text and text.endswith("Try again in a minute.")
    assert world.skynet_orders == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_form_answer_that_cannot_be_read_orders_nothing(tmp_path: Any, mode: str) -> None:
    world = World(tmp_path, confirmation="auto")

    async def garbled(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"place_order": "maybe"})

    async with Client(world.server, mode=mode, elicitation_callback=garbled) as client:  # type: ignore[arg-type]
        ids = await part_ids(client, "MS21042L3")
        text = error_text(await client.call_tool("place_order", skynet_order(ids["MS21042L3"])))
    assert text.startswith("[CONFIRMATION_FAILED] confirmation: ") and "nothing was ordered" in text
    assert world.skynet_orders == []


@pytest.mark.parametrize("padding", [0, 100, 290])
async def test_a_key_a_vendor_echoes_reaches_neither_the_form_nor_the_text(tmp_path: Any, padding: int) -> None:
    world = World(tmp_path, confirmation="auto")
    parts = world.sandbox.skynet._parts  # the simulator's catalog: a careless vendor puts our key in a title
    parts["ms21042l3"] = replace(parts["ms21042l3"], title="x" * padding + f" echo {SANDBOX_API_KEY} end")
    shown: list[str] = []

    async def human(context: Any, params: ElicitRequestFormParams) -> ElicitResult:
        shown.append(params.message)
        return ElicitResult(action="decline")

    async with Client(world.server, elicitation_callback=human) as client:  # type: ignore[arg-type]
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        part_id = structured(found)["parts"][0]["part_id"]
        declined = await client.call_tool("place_order", skynet_order(part_id))
    everything = [
        *shown,
        str(found.structured_content),
        *(b.text for b in [*found.content, *declined.content] if isinstance(b, TextContent)),
    ]
    assert len(shown) == 1
    for text in everything:
        assert not any(SANDBOX_API_KEY[i : i + 12] in text for i in range(len(SANDBOX_API_KEY) - 11)), text


async def test_options_in_the_vendors_own_forms_still_work(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["1K0698151A"], "vendors": ["keyloop"]}))
        part_id = found["parts"][0]["part_id"]
        args = {
            "vendor": "keyloop",
            "po_number": "PO-MEND-KL",
            "items": [{"part_id": part_id, "quantity": 1}],
            "options": {
                "delivery_address": {
                    "streetName": "Narrow street",
                    "postalCode": 123456,
                    "city": "Smalltown",
                    "countryCode": "GB",
                },
                "contact": {"name": "Cate", "companyName": "Company Ltd."},
                "vehicle_references": [
                    {"type": "VIN", "value": "WVWZZZ1KZAW000001"},
                    {"type": "KEYNUMBER", "value": "AO339223X/2926", "part_id": part_id},
                ],
            },
        }
        preview = structured(await client.call_tool("place_order", args))
        twice = error_text(
            await client.call_tool(
                "place_order",
                {
                    **args,
                    "options": {"vehicle_references": [{"type": "VIN", "value": "A"}, {"type": "VIN", "value": "B"}]},
                },
            )
        )
    assert preview["status"] == "confirmation_required"
    assert "123456" in str(preview["preview"]["options"])
    assert twice.startswith("[INVALID_ARGUMENT] options: ") and "two values" in twice


async def test_a_partssource_preview_says_where_the_order_ships(world: World) -> None:
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["M3538A"], "vendors": ["partssource"]}))
        args = {
            "vendor": "partssource",
            "po_number": "PO-MEND-PS",
            "items": [{"part_id": found["parts"][0]["part_id"], "quantity": 1}],
        }
        preview = await client.call_tool("place_order", args)
    text = "".join(b.text for b in preview.content if isinstance(b, TextContent))
    assert "Ships to facility 20001's address 30001 and is billed to address 30002" in text
