"""Human confirmation by form elicitation, on both protocol eras, and the confirmation modes.

ARCHITECTURE.md guard rail 2: with a client that can show forms the server asks the human
directly (vendor, PO, every line, total); decline or cancel writes nothing; `elicit` never places
without a human.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitRequestFormParams, ElicitResult

from parts_mcp.sandbox.skynet import CATALOG

from conftest import World, error_text, part_ids, structured


def part(number: str) -> Any:
    return next(p for p in CATALOG if p.part_number == number)


pytestmark = pytest.mark.asyncio

MODES = ["modern", "legacy"]


class Human:
    """Answers every form with `action` (and `place_order`), and remembers what it was shown."""

    def __init__(self, action: str = "accept", place: bool = True) -> None:
        self.action, self.place = action, place
        self.shown: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.shown.append(params.message)
        content = {"place_order": self.place} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


def client(world: World, human: Human | None, mode: str) -> Client:
    kwargs: dict[str, Any] = {"elicitation_callback": human} if human else {}
    return Client(world.server, mode="legacy" if mode == "legacy" else "auto", **kwargs)


@pytest.fixture
def auto_world(tmp_path: Any) -> World:
    return World(tmp_path, confirmation="auto")


@pytest.mark.parametrize("mode", MODES)
async def test_accepting_the_form_places_exactly_the_order_shown(auto_world: World, mode: str) -> None:
    human = Human("accept")
    async with client(auto_world, human, mode) as c:
        ids = await part_ids(c, "MS21042L3", "AN960C10")
        result = structured(
            await c.call_tool(
                "place_order",
                {
                    "vendor": "skynet",
                    "po_number": "PO-E1",
                    "notes": "dock 4",
                    "items": [
                        {"part_id": ids["MS21042L3"], "quantity": 2},
                        {"part_id": ids["AN960C10"], "quantity": 100},
                    ],
                },
            )
        )
    assert result["status"] == "placed"
    [message] = human.shown
    [truth] = auto_world.skynet_orders
    list_total = sum(Decimal(p.list_price) * q for p, q in ((part("MS21042L3"), 2), (part("AN960C10"), 100)))
    for expected in (
        "Skynet Parts",
        "PO-E1",
        "2 x «MS21042L3»",
        "100 x «AN960C10»",
        "dock 4",
        f"Total: {list_total:.2f} USD (list prices; an upper bound",
    ):
        assert expected in message
    assert {(i["part_number"], i["quantity"]) for i in truth["items"]} == {("MS21042L3", 2), ("AN960C10", 100)}
    recorded = [e for e in await auto_world.ledger.audit_log() if e.event == "intent_recorded"]
    assert recorded[0].detail["confirmed_by"].startswith("elicitation:")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("action", "place"), [("decline", False), ("cancel", False), ("accept", False)])
async def test_declining_cancelling_or_unticking_writes_nothing(
    auto_world: World, mode: str, action: str, place: bool
) -> None:
    async with client(auto_world, Human(action, place), mode) as c:
        ids = await part_ids(c, "MS21042L3")
        text = error_text(
            await c.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-E2", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
            )
        )
        assert "DECLINED" in text
    assert auto_world.skynet_orders == []
    assert await auto_world.ledger.get("skynet", "PO-E2") is None
    [declined] = [e for e in await auto_world.ledger.audit_log() if e.event == "human_declined"]
    assert (declined.vendor, declined.po_number, declined.detail["action"]) == ("skynet", "PO-E2", action)


@pytest.mark.parametrize("mode", MODES)
async def test_auto_mode_without_elicitation_asks_a_person_out_of_band(auto_world: World, mode: str) -> None:
    async with client(auto_world, None, mode) as c:
        ids = await part_ids(c, "MS21042L3")
        result = structured(
            await c.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-E3", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
            )
        )
    assert result["status"] == "awaiting_approval" and "confirmation_token" not in result
    assert auto_world.skynet_orders == []


@pytest.mark.parametrize("mode", MODES)
async def test_elicit_mode_refuses_a_client_that_cannot_show_forms(tmp_path: Any, mode: str) -> None:
    world = World(tmp_path, confirmation="elicit")
    async with client(world, None, mode) as c:
        ids = await part_ids(c, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-E4", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        assert "HUMAN_CONFIRMATION_REQUIRED" in error_text(await c.call_tool("place_order", args))
        # A token is no way around it: elicit mode issues none and accepts none.
        forged = {**args, "confirmation_token": "x.y", "confirmed_total": "12.40 USD"}
        assert "HUMAN_CONFIRMATION_REQUIRED" in error_text(await c.call_tool("place_order", forged))
    assert world.skynet_orders == []


@pytest.mark.parametrize("mode", MODES)
async def test_token_mode_never_asks_even_a_client_that_could(world: World, mode: str) -> None:
    human = Human("accept")
    async with client(world, human, mode) as c:
        ids = await part_ids(c, "MS21042L3")
        result = structured(
            await c.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-E5", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
            )
        )
    assert result["status"] == "confirmation_required"
    assert human.shown == []


@pytest.mark.parametrize("mode", MODES)
async def test_repeating_a_placed_po_does_not_ask_again(auto_world: World, mode: str) -> None:
    human = Human("accept")
    async with client(auto_world, human, mode) as c:
        ids = await part_ids(c, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-E6", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        first = structured(await c.call_tool("place_order", args))
        again = structured(await c.call_tool("place_order", args))
    assert again["replayed"] is True and again["order"]["order_id"] == first["order"]["order_id"]
    assert len(human.shown) == 1
    assert len(auto_world.skynet_orders) == 1


async def test_read_only_mode_hides_place_order(tmp_path: Any) -> None:
    world = World(tmp_path, read_only=True)
    async with Client(world.server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {"lookup_parts", "get_order", "list_purchase_orders", "list_vendors"}
        result = await c.call_tool("place_order", {"vendor": "skynet", "po_number": "PO-R1", "items": []})
        assert result.is_error
        vendors = structured(await c.call_tool("list_vendors", {}))
        assert vendors["guard"]["read_only"] is True
    assert world.skynet_orders == []


async def test_the_form_says_what_the_total_leaves_out(auto_world: World) -> None:
    """Factory AI adds tax and shipping itself: the human is told before accepting."""
    human = Human("accept")
    async with client(auto_world, human, "modern") as c:
        ids = await part_ids(c, "SKF-6204", vendor="factoryai")
        placed = structured(
            await c.call_tool(
                "place_order",
                {"vendor": "factoryai", "po_number": "PO-E7", "items": [{"part_id": ids["SKF-6204"], "quantity": 2}]},
            )
        )
    [message] = human.shown
    assert "Not included: tax, shipping" in message and "estimate prices" in message
    assert placed["status"] == "placed"
    assert not any(w.startswith("ATTENTION") for w in placed["warnings"])
    assert any("added tax, shipping" in w for w in placed["warnings"])
