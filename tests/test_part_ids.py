"""A part_id from lookup_parts works in any later call in any server process (issue 7, section 6).

LangChain's MCP adapter starts a fresh stdio process per tool call, and HTTP replicas share nothing:
no process may depend on having seen the look-up. Each server here has only its own memory (part
cache, vendor clients); they share the simulators and, where they place orders, the ledger file and
the token secret, as replicas do. A part_id carries no price: the vendor prices what it names. The
simulators' records are the ground truth of what was ordered.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.mcpserver import MCPServer

from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server
from parts_mcp.vendors.partssource import encode_part_id, option_key

from conftest import World, error_text, serve, structured

pytestmark = pytest.mark.asyncio

SECRET = "part-ids-test-token-secret-not-a-real-one-0001"
# The vendors that take orders, and a part number each. M1191BL has two PartsSource offers (new OEM
# 100.00, aftermarket 42.50): the cheaper is not the first, so only the id can say which one is meant.
OFFERS = {"skynet": "MS21042L3", "factoryai": "SKF-6204", "keyloop": "1K0698151A", "partssource": "M1191BL"}
URL_SAFE_ID = re.compile(r"[A-Za-z0-9._~%:-]{1,40}")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, confirmation="token", token_secret=SECRET)
    yield w
    w.ledger.close()


@pytest.fixture
def new_process(world: World, tmp_path: Path) -> Iterator[Callable[[], MCPServer]]:
    """Another server process: nothing in memory from the others, the same ledger file and simulators."""
    ledgers: list[SQLiteLedger] = []

    def start() -> MCPServer:
        ledgers.append(SQLiteLedger(tmp_path / "ledger.sqlite3", clock=world.clock.now))
        return build_server(world.settings, sandbox=world.sandbox, ledger=ledgers[-1], clock=world.clock.now)

    yield start
    for ledger in ledgers:
        ledger.close()


def cheapest(found: dict[str, Any], vendor: str) -> dict[str, Any]:
    # Keyloop's part number carries the brand code in front ("V1K0698151A").
    offers = [p for p in found["parts"] if p["vendor"] == vendor and OFFERS[vendor] in p["part_number"]]
    return min(offers, key=lambda p: Decimal(p["unit_price"]["amount"]))


def ordered(sandbox: Sandbox, vendor: str) -> list[tuple[str, int]]:
    """What the vendor's own records say was ordered: (the offer in part_id terms, quantity) per line."""
    if vendor == "skynet":
        return [(i["part_number"], i["quantity"]) for o in sandbox.skynet.orders for i in o["items"]]
    if vendor == "factoryai":
        return [(i["partId"], i["quantity"]) for o in sandbox.factoryai.orders for i in o["items"]]
    if vendor == "keyloop":
        return [(line["partId"], line["quantity"]) for o in sandbox.keyloop.orders for line in o["parts"]]
    # A PartsSource part_id names the option (its key), not the quote that happened to be ordered.
    return [
        (encode_part_id(line["productId"], _option_key(line)), line["quantity"])
        for o in sandbox.partssource.created_orders
        for line in o["lineItems"]
    ]


def _option_key(line: dict[str, Any]) -> str:
    return option_key(line["condition"], line["purchaseChoice"], line["warranty"], line["vendorName"])


def confirmed(args: dict[str, Any], preview: dict[str, Any]) -> dict[str, Any]:
    total = preview["preview"]["total"]
    return {
        **args,
        "confirmation_token": preview["confirmation_token"],
        "confirmed_total": f"{total['amount']} {total['currency']}",
    }


@pytest.mark.parametrize("vendor", list(OFFERS))
async def test_looked_up_in_one_process_previewed_in_another_placed_in_a_third(
    world: World, new_process: Callable[[], MCPServer], vendor: str
) -> None:
    async with Client(world.server) as a:
        found = structured(await a.call_tool("lookup_parts", {"query": [OFFERS[vendor]], "vendors": [vendor]}))
    part = cheapest(found, vendor)
    args = {"vendor": vendor, "po_number": f"PO-IDS-{vendor}", "items": [{"part_id": part["part_id"], "quantity": 2}]}
    async with Client(new_process()) as b:
        preview = structured(await b.call_tool("place_order", args))
    assert preview["status"] == "confirmation_required"
    [line] = preview["preview"]["lines"]
    assert (line["part_number"], line["unit_price"]) == (part["part_number"], part["unit_price"])
    async with Client(new_process()) as c:
        placed = structured(await c.call_tool("place_order", confirmed(args, preview)))
    assert placed["status"] == "placed"
    assert ordered(world.sandbox, vendor) == [(part["part_id"], 2)]


async def test_the_same_offer_has_the_same_short_url_safe_id_in_every_process(
    world: World, new_process: Callable[[], MCPServer]
) -> None:
    queries = {**OFFERS, "shopmonkey": "17D1210CH"}
    seen: list[dict[str, str]] = []
    for server in (world.server, new_process()):
        async with Client(server) as client:
            found = structured(await client.call_tool("lookup_parts", {"query": list(queries.values())}))
        seen.append({f"{p['vendor']} {p['part_number']} {p['name']}": p["part_id"] for p in found["parts"]})
    first, second = seen
    assert first == second
    assert {key.split()[0] for key in first} == set(queries)
    assert all(URL_SAFE_ID.fullmatch(part_id) for part_id in first.values()), first


async def test_a_part_number_edited_into_a_skynet_id_is_priced_as_that_part_by_skynet(
    world: World, new_process: Callable[[], MCPServer]
) -> None:
    async with Client(world.server) as a:
        found = structured(
            await a.call_tool("lookup_parts", {"query": ["MS21042L3", "AN960C10"], "vendors": ["skynet"]})
        )
    by_number = {p["part_number"]: p for p in found["parts"]}
    edited = by_number["MS21042L3"]["part_id"].replace("MS21042L3", "AN960C10")
    args = {"vendor": "skynet", "po_number": "PO-IDS-EDIT", "items": [{"part_id": edited, "quantity": 3}]}
    async with Client(new_process()) as b:
        preview = structured(await b.call_tool("place_order", args))
    [line] = preview["preview"]["lines"]
    assert line["part_number"] == "AN960C10"
    assert line["unit_price"] == by_number["AN960C10"]["unit_price"] != by_number["MS21042L3"]["unit_price"]


@pytest.mark.parametrize(
    ("vendor", "part_id"),
    [
        ("skynet", "MS99999Z9"),  # a part number Skynet does not have
        ("skynet", "skynet_part_from_another_process_0001"),  # an old-style token: only its own process knew it
        ("factoryai", "part-999"),
        ("keyloop", "V0000000000"),
        ("partssource", "CAT-456:OPT-001"),  # M1191BL's 100.00 quote claimed for M3001A (quoted 1250.00 and up)
        ("partssource", "CAT-123:OPT-DEF456-UVW"),  # M3001A's quote claimed for M1191BL
    ],
)
async def test_an_id_that_names_no_offer_is_refused_as_unknown_in_a_fresh_process(
    world: World, vendor: str, part_id: str
) -> None:
    async with Client(world.server) as client:
        text = error_text(
            await client.call_tool(
                "place_order",
                {"vendor": vendor, "po_number": "PO-IDS-NONE", "items": [{"part_id": part_id, "quantity": 1}]},
            )
        )
    assert "UNKNOWN_PART" in text and "items[0].part_id" in text and "lookup_parts" in text
    assert ordered(world.sandbox, vendor) == []


@pytest.mark.parametrize(
    ("vendor", "given", "number"), [("skynet", "ms21042l3", "MS21042L3"), ("factoryai", "SKF-6204", "SKF-6204")]
)
async def test_a_plain_part_number_as_part_id_still_works_in_a_fresh_process(
    world: World, vendor: str, given: str, number: str
) -> None:
    async with Client(world.server) as client:
        preview = structured(
            await client.call_tool(
                "place_order",
                {"vendor": vendor, "po_number": "PO-IDS-PLAIN", "items": [{"part_id": given, "quantity": 1}]},
            )
        )
    assert [line["part_number"] for line in preview["preview"]["lines"]] == [number]


# ------------------------------------------------------------------------------ real stdio processes

SECRET_KEYS = ("api_key", "client_id", "client_secret")


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, integers and booleans are written alike in JSON and TOML


def config_file(tmp_path: Path, index: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """A config for the vendors that take orders, at the loopback simulators; secrets as ${ENV} references."""
    env = {"PARTS_IDS_TOKEN_SECRET": SECRET}
    lines = [
        "[guard]",
        'confirmation = "token"',
        'token_secret = "${PARTS_IDS_TOKEN_SECRET}"',
        "[store]",
        f"path = {_toml(str(tmp_path / 'shared.sqlite3'))}",
    ]
    for vendor in OFFERS:
        lines.append(f"[vendors.{vendor}]")
        for key, value in index["vendors"][vendor].items():
            if key in ("base_path", "admin_path"):
                continue
            if key in SECRET_KEYS:
                name = f"PARTS_IDS_{vendor}_{key}".upper()
                env[name], value = str(value), f"${{{name}}}"
            lines.append(f"{key} = {_toml(value)}")
    path = tmp_path / "parts-mcp.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, env


async def test_stdio_processes_look_up_preview_and_place_one_step_each_on_every_vendor(tmp_path: Path) -> None:
    """Three `parts-mcp serve` processes in turn, as a per-call client runs them: A looks up, B previews, C places."""
    sandbox = Sandbox()
    with serve(sandbox.asgi_app()) as base:
        async with httpx2.AsyncClient() as http:
            index = (await http.get(base + "/")).json()
        path, env = config_file(tmp_path, index)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "parts_mcp", "serve", "--config", str(path)],
            env={**os.environ, **env},
            cwd=str(tmp_path),
        )

        async def in_a_new_process(name: str, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
            with (tmp_path / f"{name}.err").open("w") as errlog:
                async with Client(stdio_client(params, errlog=errlog)) as client:
                    return [structured(await client.call_tool(tool, args)) for tool, args in calls]

        [found] = await in_a_new_process("a", [("lookup_parts", {"query": list(OFFERS.values())})])
        parts = {vendor: cheapest(found, vendor) for vendor in OFFERS}
        orders = [
            {"vendor": v, "po_number": f"PO-STDIO-{v}", "items": [{"part_id": p["part_id"], "quantity": 2}]}
            for v, p in parts.items()
        ]
        previews = await in_a_new_process("b", [("place_order", args) for args in orders])
        assert [p["status"] for p in previews] == ["confirmation_required"] * len(OFFERS)
        placed = await in_a_new_process(
            "c", [("place_order", confirmed(args, p)) for args, p in zip(orders, previews, strict=True)]
        )
    assert [p["status"] for p in placed] == ["placed"] * len(OFFERS)
    for vendor, part in parts.items():
        assert ordered(sandbox, vendor) == [(part["part_id"], 2)]
