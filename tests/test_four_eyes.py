"""Four-eyes (issue 11): an order above guard.approval_required_above needs a second signed-in person.

The server runs as the team deployment does (OAuth-protected HTTP, a real token issuer on loopback)
on the sandbox vendors; each person is a token. The simulator's record of orders is the ground truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestFormParams, ElicitResult

from parts_mcp.cli import http_app
from parts_mcp.config import ApprovalSettings, AuthSettings, ServerSettings

from conftest import BOTH_STORES, World, error_text, serve, structured
from issuer import Issuer

# The ledger's guarantees hold on both stores: each test runs on SQLite and on a real PostgreSQL.
pytestmark = [pytest.mark.asyncio, BOTH_STORES]

AUDIENCE = "https://parts.test/mcp"
ALICE = {"sub": "user-alice", "email": "alice@example.com", "scope": "parts:read orders:write"}
BOB = {"sub": "user-bob", "email": "bob@example.com", "scope": "parts:read orders:approve"}
CAROL = {"sub": "user-carol", "email": "carol@example.com", "scope": "parts:read orders:write"}


class Approver:
    """A person answering the form their own client shows them."""

    def __init__(self, decision: str) -> None:
        self.decision = decision
        self.shown: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.shown.append(params.message)
        if "place_order" in params.requested_schema.get("properties", {}):  # their own order's form
            return ElicitResult(action="accept", content={"place_order": True})
        return ElicitResult(action="accept", content={"decision": self.decision})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    found = Issuer()
    with serve(found.app()) as base:
        found.base, found.audience = base, AUDIENCE
        yield found


@pytest.fixture
def team(tmp_path: Path, issuer: Issuer) -> Iterator[tuple[World, str]]:
    """The team deployment on the sandbox: four-eyes above 100.00; yields the world and the server's URL."""
    world = World(tmp_path, confirmation="auto", approval_required_above=Decimal("100.00"))
    auth = AuthSettings(
        issuer=issuer.issuer,
        audience=AUDIENCE,
        jwks_url=issuer.jwks_url,
        name_claim="email",
        allowed_hosts=["parts.test"],
    )
    world.reconfigured(
        server=ServerSettings(transport="http", auth=auth), approvals=ApprovalSettings(open_browser=False)
    )
    with serve(http_app(world.server, world.settings)) as base:
        yield world, base
    world.ledger.close()


@asynccontextmanager
async def as_person(base: str, token: str, approver: Approver | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}", "Host": "parts.test"}
    kwargs: dict[str, Any] = {"elicitation_callback": approver} if approver else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), **kwargs) as client,
    ):
        yield client


async def big_order(client: Client, po: str) -> CallToolResult:
    # 100 x AN960C10 at 6.85 list: 685.00, above the four-eyes limit.
    found = structured(await client.call_tool("lookup_parts", {"query": ["AN960C10"], "vendors": ["skynet"]}))
    part = found["parts"][0]["part_id"]
    return await client.call_tool(
        "place_order", {"vendor": "skynet", "po_number": po, "items": [{"part_id": part, "quantity": 100}]}
    )


async def test_a_second_person_approves_in_their_own_session_and_it_is_placed_once(
    team: tuple[World, str], issuer: Issuer
) -> None:
    world, base = team
    async with as_person(base, issuer.mint(**ALICE), Approver("approve")) as alice:  # alice's client shows forms
        asked = structured(await big_order(alice, "PO-4E-1"))
        own = error_text(await alice.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    assert asked["status"] == "awaiting_approval"
    assert "second person with the orders:approve permission" in asked["next_steps"]
    assert own.startswith("[INSUFFICIENT_SCOPE] approve_order: needs scope orders:approve")
    bob = Approver("approve")
    async with as_person(base, issuer.mint(**BOB), bob) as approver:
        decided = structured(await approver.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    assert decided["status"] == "placed" and len(world.skynet_orders) == 1
    assert "alice@example.com asks for this order" in bob.shown[0] and "685.00 USD" in bob.shown[0]
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        done = structured(await big_order(alice, "PO-4E-1"))
    assert done["status"] == "placed" and done["placed_by"] == "alice@example.com"
    assert done["approved_by"] == "bob@example.com (approve_order)"
    approvals = [e for e in await world.ledger.audit_log() if e.event == "approval_approved"]
    assert approvals[0].actor == "bob@example.com (approve_order)"
    assert len(world.skynet_orders) == 1


async def test_the_requester_cannot_approve_even_holding_orders_approve(
    team: tuple[World, str], issuer: Issuer
) -> None:
    world, base = team
    both = {**ALICE, "scope": "parts:read orders:write orders:approve"}
    async with as_person(base, issuer.mint(**both), Approver("approve")) as alice:
        asked = structured(await big_order(alice, "PO-4E-2"))
        refused = error_text(await alice.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    assert refused.startswith("[SAME_PERSON] approval_id: Its requester cannot approve this order")
    assert world.skynet_orders == []


async def test_an_approver_without_a_form_or_the_permission_decides_nothing(
    team: tuple[World, str], issuer: Issuer
) -> None:
    world, base = team
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        asked = structured(await big_order(alice, "PO-4E-3"))
    async with as_person(base, issuer.mint(**BOB)) as bobs_model_alone:  # no forms: no person in the loop
        no_form = error_text(await bobs_model_alone.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    async with as_person(base, issuer.mint(**CAROL), Approver("approve")) as carol:
        no_scope = error_text(await carol.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    assert no_form.startswith("[HUMAN_CONFIRMATION_REQUIRED] approval_id: ")
    assert no_scope.startswith("[INSUFFICIENT_SCOPE] approve_order: ")
    assert world.skynet_orders == []


async def test_a_declining_second_person_orders_nothing(team: tuple[World, str], issuer: Issuer) -> None:
    world, base = team
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        asked = structured(await big_order(alice, "PO-4E-4"))
    async with as_person(base, issuer.mint(**BOB), Approver("decline")) as bob:
        decided = structured(await bob.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
        again = error_text(await bob.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        declined = error_text(await big_order(alice, "PO-4E-4"))
    assert decided["status"] == "declined"
    assert again.startswith("[ALREADY_DECIDED] approval_id: ")
    assert declined.startswith("[DECLINED] confirmation: ")
    assert world.skynet_orders == []


async def test_small_orders_need_no_second_person(team: tuple[World, str], issuer: Issuer) -> None:
    world, base = team
    async with as_person(base, issuer.mint(**ALICE), Approver("approve")) as alice:
        found = structured(await alice.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]}))
        part = found["parts"][0]["part_id"]
        placed = structured(
            await alice.call_tool(
                "place_order", {"vendor": "skynet", "po_number": "PO-4E-5", "items": [{"part_id": part, "quantity": 1}]}
            )
        )
        rules = (await alice.call_tool("list_vendors", {})).content[0].text  # type: ignore[union-attr]
    assert placed["status"] == "placed" and placed["placed_by"] == "alice@example.com"
    assert "orders that may bill over 100.00 need a second person's approval" in rules
    assert len(world.skynet_orders) == 1


async def test_over_stdio_an_order_needing_a_second_person_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token", approval_required_above=Decimal("100.00"))
    async with Client(world.server) as client:
        found = structured(await client.call_tool("lookup_parts", {"query": ["AN960C10"], "vendors": ["skynet"]}))
        part = found["parts"][0]["part_id"]
        args = {"vendor": "skynet", "po_number": "PO-4E-6", "items": [{"part_id": part, "quantity": 100}]}
        asked = await client.call_tool("place_order", args)
        tools = {t.name for t in (await client.list_tools()).tools}
    # Over stdio the one local user is known, but nobody else: a second person cannot exist here.
    assert error_text(asked).startswith("[SECOND_APPROVER_UNAVAILABLE] items: orders that may bill more than 100.00")
    assert "approve_order" not in tools  # only where people sign in
    assert world.skynet_orders == []
    world.ledger.close()


async def test_a_price_change_renews_the_request_under_the_same_four_eyes_rule(
    team: tuple[World, str], issuer: Issuer
) -> None:
    world, base = team
    both = {**ALICE, "scope": "parts:read orders:write orders:approve"}
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        asked = structured(await big_order(alice, "PO-4E-7"))
    world.sandbox.skynet.set_price("AN960C10", "7.00")  # while bob has not decided yet
    async with as_person(base, issuer.mint(**BOB), Approver("approve")) as bob:
        changed = structured(await bob.call_tool("approve_order", {"approval_id": asked["approval_id"]}))
    assert changed["status"] == "changed" and world.skynet_orders == []
    async with as_person(base, issuer.mint(**ALICE)) as alice:
        waiting = structured(await big_order(alice, "PO-4E-7"))
    assert waiting["status"] == "awaiting_approval" and waiting["approval_id"] != asked["approval_id"]
    async with as_person(base, issuer.mint(**both), Approver("approve")) as alice_approving:
        own = error_text(await alice_approving.call_tool("approve_order", {"approval_id": waiting["approval_id"]}))
    assert own.startswith("[SAME_PERSON] approval_id: ")
    async with as_person(base, issuer.mint(**BOB), Approver("approve")) as bob:
        placed = structured(await bob.call_tool("approve_order", {"approval_id": waiting["approval_id"]}))
    assert placed["status"] == "placed" and len(world.skynet_orders) == 1
    assert Decimal(world.skynet_orders[0]["total"]["amount"]) <= Decimal("700.00")  # 100 x 7.00 at most
