"""A confirmation only a person can give (issue 10): the modes by client kinds, and where a request stands.

A person is reached by the approvers' webhook (a receiver on loopback); the model's client sees every
result. The simulator's record of orders is the ground truth.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from parts_mcp.config import ApprovalSettings, load
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server

from approvers import Human, Receiver
from conftest import BOTH_STORES, World, error_text, part_ids, serve, structured

# The ledger's guarantees hold on both stores: each test runs on SQLite and on a real PostgreSQL.
pytestmark = [pytest.mark.asyncio, BOTH_STORES]


def world_for(tmp_path: Path, hook: str, **guard: Any) -> World:
    world = World(tmp_path, **guard)
    approvals = ApprovalSettings(open_browser=False, webhook_url=SecretStr(f"{hook}/hook"))
    return world.reconfigured(approvals=approvals)


async def order(client: Client, po: str, quantity: int = 2) -> CallToolResult:
    ids = await part_ids(client, "MS21042L3")
    items = [{"part_id": ids["MS21042L3"], "quantity": quantity}]
    return await client.call_tool("place_order", {"vendor": "skynet", "po_number": po, "items": items})


def everything(result: CallToolResult) -> str:
    return result.model_dump_json()


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize(
    ("mode", "forms", "expected"),
    [
        ("auto", False, "awaiting_approval"),
        ("auto", True, "placed"),  # the form is the person's confirmation
        ("approval", False, "awaiting_approval"),
        ("approval", True, "awaiting_approval"),  # always out of band, even where forms exist
        ("token", False, "confirmation_required"),
        ("token", True, "confirmation_required"),
    ],
)
async def test_each_mode_with_each_client_kind(tmp_path: Path, era: str, mode: str, forms: bool, expected: str) -> None:
    approvers, human = Receiver(), Human()
    with serve(approvers.app) as hook:
        world = world_for(tmp_path, hook, confirmation=mode)
        kwargs: dict[str, Any] = {"elicitation_callback": human} if forms else {}
        async with Client(world.server, mode="legacy" if era == "legacy" else "auto", **kwargs) as client:
            result = structured(await order(client, "PO-M-1"))
            vendors = (await client.call_tool("list_vendors", {})).content[0].text  # type: ignore[union-attr]
    assert result["status"] == expected
    assert human.forms == (1 if expected == "placed" else 0)
    assert len(world.skynet_orders) == (1 if expected == "placed" else 0)
    assert len(approvers.links) == (1 if expected == "awaiting_approval" else 0)
    if mode == "token":
        assert "THE ASSISTANT CONFIRMS, NOT A PERSON" in vendors
    world.ledger.close()


async def test_nothing_the_model_receives_can_approve_and_the_person_places_it_once(tmp_path: Path) -> None:
    approvers = Receiver()
    with serve(approvers.app) as hook:
        world = world_for(tmp_path, hook, confirmation="approval")
        async with Client(world.server) as client:
            first = await order(client, "PO-A-1")
            waiting = structured(first)
            text = first.content[0].text  # type: ignore[union-attr]
            assert text.startswith("status: awaiting_approval (WAITING FOR A PERSON: nothing has been ordered yet")
            assert f"approval_id: {waiting['approval_id']}" in text and "the approvers' webhook" in text
            secret = parse_qs(urlsplit(approvers.links[0]).query)["k"][0]
            # The model holds the approval id, never the link: neither it nor a token approves anything.
            tokens = await client.call_tool(
                "place_order",
                {
                    "vendor": "skynet",
                    "po_number": "PO-A-1",
                    "items": [{"part_id": (await part_ids(client, "MS21042L3"))["MS21042L3"], "quantity": 2}],
                    "confirmation_token": waiting["approval_id"],
                    "confirmed_total": "24.80 USD",
                },
            )
            again = structured(await order(client, "PO-A-1"))
            not_yet = error_text(await client.call_tool("get_order", {"vendor": "skynet", "order_id": "PO-A-1"}))
            listed = structured(await client.call_tool("list_purchase_orders", {"po_number": "PO-A-1"}))
            assert world.skynet_orders == []
            placed = await approvers.decide("approve")
            done = structured(await order(client, "PO-A-1"))
            got = structured(await client.call_tool("get_order", {"vendor": "skynet", "order_id": "PO-A-1"}))
    for result in (first, tokens):
        assert secret not in everything(result) and "/approvals/" not in everything(result)
    assert structured(tokens)["status"] == "awaiting_approval"  # a token is no approval
    assert again["status"] == "awaiting_approval" and again["approval_id"] == waiting["approval_id"]
    assert not_yet.startswith("[NO_ORDER_YET] order_id: PO PO-A-1 at skynet is awaiting a person's approval")
    assert any("awaiting a person's approval" in note for note in listed["notes"])
    assert placed.status_code == 200
    assert done["status"] == "placed" and done["replayed"] is True
    assert got["order"]["order_id"] == done["order"]["order_id"]
    assert len(world.skynet_orders) == 1 and len(approvers.links) == 1
    decisions = [e for e in await world.ledger.audit_log() if e.event == "approval_approved"]
    assert decisions and decisions[0].actor.startswith("approval page") and decisions[0].detail["total"]
    world.ledger.close()


async def test_a_declined_request_orders_nothing_and_stays_declined(tmp_path: Path) -> None:
    approvers = Receiver()
    with serve(approvers.app) as hook:
        world = world_for(tmp_path, hook, confirmation="approval")
        async with Client(world.server) as client:
            await order(client, "PO-D-1")
            declined = await approvers.decide("decline")
            again = error_text(await order(client, "PO-D-1"))
            listed = structured(await client.call_tool("list_purchase_orders", {"po_number": "PO-D-1"}))
            changed = structured(await order(client, "PO-D-1", quantity=3))  # a changed order may be asked anew
    assert declined.status_code == 200
    assert again.startswith("[DECLINED] confirmation: the person asked to approve PO 'PO-D-1' declined it")
    assert any("was declined" in note for note in listed["notes"])
    assert changed["status"] == "awaiting_approval"
    assert world.skynet_orders == [] and len(approvers.links) == 2
    world.ledger.close()


async def test_an_expired_request_orders_nothing_and_a_new_call_sends_a_new_one(tmp_path: Path) -> None:
    approvers = Receiver()
    with serve(approvers.app) as hook:
        world = world_for(tmp_path, hook, confirmation="approval", approval_ttl_seconds=600)
        async with Client(world.server) as client:
            await order(client, "PO-X-1")
            stale = approvers.links[0]
            world.clock.advance(timedelta(seconds=601))
            lapsed = error_text(await order(client, "PO-X-1"))
            async with httpx2.AsyncClient() as http:
                late = await http.get(stale)
            refused = await approvers.decide("approve", stale)
            renewed = structured(await order(client, "PO-X-1"))
            await approvers.decide("approve")
            placed = structured(await order(client, "PO-X-1"))
    assert lapsed.startswith("[APPROVAL_EXPIRED] po_number: the approval request for PO 'PO-X-1' expired")
    assert late.status_code == 410 and refused.status_code >= 400
    assert renewed["status"] == "awaiting_approval"
    assert any("expired without a decision" in w for w in renewed.get("warnings", []))
    assert placed["status"] == "placed" and len(world.skynet_orders) == 1
    world.ledger.close()


async def test_with_no_channel_to_a_person_the_order_is_refused_never_left_to_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox()
    monkeypatch.setenv("SKYNET_TEST_KEY", sandbox.vendors()["skynet"].settings["api_key"])
    with serve(sandbox.asgi_app()) as base:
        config = tmp_path / "parts-mcp.toml"
        config.write_text(
            "[approvals]\nopen_browser = false\n\n"  # a server with no browser, no webhook, no public page
            f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n\n'
            f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{base}/skynet/api/b2b"\napi_key = "${{SKYNET_TEST_KEY}}"\n'
        )
        server = build_server(load(config))
        async with Client(server) as client:
            refused = error_text(await order(client, "PO-NONE-1"))
            listed = structured(await client.call_tool("list_purchase_orders", {"po_number": "PO-NONE-1"}))
    assert refused.startswith("[HUMAN_APPROVAL_UNAVAILABLE] confirmation: this server needs a person to approve")
    assert "webhook_url" in refused and "Nothing was ordered" in refused
    # Nothing recorded, nothing held: the PO is not awaiting anyone.
    assert listed["orders"] == [] and not any("PO-NONE-1" in note for note in listed.get("notes", []))
    assert sandbox.skynet.orders == []


async def test_a_config_can_run_the_sandbox_under_its_own_guard(tmp_path: Path) -> None:
    config = tmp_path / "try.toml"
    config.write_text(
        '[server]\nsandbox = true\n\n[guard]\nconfirmation = "token"\n\n[approvals]\nopen_browser = false\n'
    )
    settings = load(config)
    assert settings.sandbox and settings.guard.confirmation == "token"
    async with Client(build_server(settings)) as client:
        preview = structured(await order(client, "PO-TRY-1"))
        vendors = (await client.call_tool("list_vendors", {})).content[0].text  # type: ignore[union-attr]
    assert preview["status"] == "confirmation_required" and preview["sandbox"] is True
    assert "(sandbox: simulated)" in vendors and "THE ASSISTANT CONFIRMS, NOT A PERSON" in vendors
