"""`parts-mcp intents`: the operator's way out of an unknown outcome at a vendor that cannot be searched."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from parts_mcp.orders.states import IllegalTransition, IntentState

from conftest import World, confirm_and_place, structured

pytestmark = pytest.mark.asyncio


async def lost_keyloop_order(world: World, po_number: str) -> dict[str, Any]:
    """A Keyloop order whose answer was lost: Keyloop has no key and no search, so the outcome stays unknown."""
    world.sandbox.keyloop.faults.arm("drop_after_commit")
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["1K0698151A"], "vendors": ["keyloop"]}))
        part_id = found["parts"][0]["part_id"]
        args = {"vendor": "keyloop", "po_number": po_number, "items": [{"part_id": part_id, "quantity": 1}]}
        unknown = await confirm_and_place(client, args)
    assert unknown["status"] == "outcome_unknown"
    return args


async def run_cli(tmp_path: Path, *argv: str) -> tuple[int, str]:
    """`parts-mcp intents ...` as an operator runs it, against the ledger the test server writes."""
    config = tmp_path / "ops.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n')
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "parts_mcp", "intents", "--config", str(config), *argv], check=False
        )
    return done.returncode, done.stdout.decode()


async def test_an_operator_records_the_order_found_in_the_dms(world: World, tmp_path: Path) -> None:
    args = await lost_keyloop_order(world, "PO-OPS-1")
    code, listed = await run_cli(tmp_path, "list")
    assert code == 0
    assert "keyloop\tPO-OPS-1\tunknown" in listed
    [truth] = world.sandbox.keyloop.orders
    order_id = str(truth.get("partsOrderId") or truth.get("order_id") or truth.get("id"))
    assert (await run_cli(tmp_path, "placed", "keyloop", "PO-OPS-1", "--order-id", order_id))[0] == 0
    async with Client(world.server) as client:
        again = structured(await client.call_tool("place_order", args))
    assert again["status"] == "placed" and again["replayed"] is True
    assert again["order"]["order_id"] == order_id
    assert len(world.sandbox.keyloop.orders) == 1
    events = [(e.event, e.actor.split(":")[0]) for e in await world.ledger.audit_log()]
    assert ("intent_placed", "operator") in events


async def test_an_operator_frees_the_po_when_the_dms_has_no_such_order(world: World, tmp_path: Path) -> None:
    args = await lost_keyloop_order(world, "PO-OPS-2")
    world.sandbox.keyloop.orders.clear()  # as if the DMS had never committed it
    assert (await run_cli(tmp_path, "not-placed", "keyloop", "PO-OPS-2"))[0] == 0
    async with Client(world.server) as client:
        fresh = structured(await client.call_tool("place_order", args))
    assert fresh["status"] == "confirmation_required"  # a new order needs a new confirmation
    assert (await run_cli(tmp_path, "not-placed", "keyloop", "PO-OPS-2"))[0] == 1  # nothing unsettled any more


async def test_an_operator_cannot_settle_an_intent_a_server_process_holds(world: World, tmp_path: Path) -> None:
    """The operator takes the intent's lease like any server: never while a live process is sending it."""
    await lost_keyloop_order(world, "PO-OPS-3")
    intent = await world.ledger.get("keyloop", "PO-OPS-3")
    assert intent is not None
    assert await world.ledger.lease(intent.id, "parts-mcp-test-holder", 600) is not None  # a process mid-send
    code, _ = await run_cli(tmp_path, "not-placed", "keyloop", "PO-OPS-3")
    still = await world.ledger.get("keyloop", "PO-OPS-3")
    assert code == 1 and still is not None and still.state is intent.state


async def test_the_ledger_refuses_a_transition_the_state_table_does_not_allow(world: World) -> None:
    args = await lost_keyloop_order(world, "PO-OPS-4")
    intent = await world.ledger.get("keyloop", args["po_number"])
    assert intent is not None
    await world.ledger.transition(intent.id, IntentState.REJECTED, actor="test")
    with pytest.raises(IllegalTransition):
        await world.ledger.transition(intent.id, IntentState.PLACED, actor="test")  # rejected is final
    with pytest.raises(IllegalTransition):
        await world.ledger.transition(intent.id, IntentState.SENT, actor="test")
