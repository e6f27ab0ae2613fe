"""Money and trust (issue 9, findings 1, 3 and 4): never billed above what the human approved, one
budget per vendor account, and the same items under a new PO never silent.

Each test counts the simulator's orders: the vendor's record is the ground truth.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitRequestFormParams, ElicitResult

from parts_mcp.config import ConfigError, load

from conftest import World, confirm_and_place, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio

ERAS = ["modern", "legacy"]


class Human:
    """Accepts every form; `during_first` runs while the first form is open (the world moves on)."""

    def __init__(self, during_first: Any = None) -> None:
        self.shown: list[str] = []
        self._during_first = during_first

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.shown.append(params.message)
        if len(self.shown) == 1 and self._during_first is not None:
            self._during_first()
        return ElicitResult(action="accept", content={"place_order": True})


def form_client(world: World, human: Human, era: str) -> Client:
    return Client(world.server, mode="legacy" if era == "legacy" else "auto", elicitation_callback=human)


def total_in(message: str) -> Decimal:
    line = next(line for line in message.splitlines() if line.startswith("Total: "))
    return Decimal(line.split()[1])


# -- 1. never above the approval ---------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_a_price_that_rose_while_the_form_was_open_is_asked_again_never_sent(tmp_path: Path, era: str) -> None:
    world = World(tmp_path, confirmation="auto")
    human = Human(during_first=lambda: world.sandbox.skynet.set_price("AN960C10", "99.00"))
    async with form_client(world, human, era) as client:
        ids = await part_ids(client, "AN960C10")
        args = {"vendor": "skynet", "po_number": "PO-RISE-1", "items": [{"part_id": ids["AN960C10"], "quantity": 10}]}
        first = await client.call_tool("place_order", args)
        if first.is_error:  # the price moved after the human approved: refused, nothing sent
            assert error_text(first).startswith("[PRICE_CHANGED] items: The price of AN960C10 went up")
            assert "nothing was ordered" in error_text(first)
            assert world.skynet_orders == []
            second = structured(await client.call_tool("place_order", args))
        else:
            second = structured(first)
    approved = [total_in(message) for message in human.shown]
    assert approved[0] < approved[-1] == Decimal("990.00")  # the human saw the new price before it was sent
    assert second["status"] == "placed"
    [order] = world.skynet_orders
    assert Decimal(order["total"]["amount"]) <= approved[-1]


async def test_a_price_that_fell_since_the_form_is_sent_at_the_lower_price(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="auto")
    human = Human(during_first=lambda: world.sandbox.skynet.set_price("AN960C10", "0.50"))
    async with form_client(world, human, "legacy") as client:
        ids = await part_ids(client, "AN960C10")
        args = {"vendor": "skynet", "po_number": "PO-FALL-1", "items": [{"part_id": ids["AN960C10"], "quantity": 10}]}
        placed = structured(await client.call_tool("place_order", args))
    assert placed["status"] == "placed" and len(human.shown) == 1
    [order] = world.skynet_orders
    assert Decimal(order["total"]["amount"]) <= Decimal("5.00") < total_in(human.shown[0])


async def test_factoryai_tax_and_shipping_are_bounded_in_the_preview_and_billed_within_it(world: World) -> None:
    args = {"vendor": "factoryai", "po_number": "PO-FAI-1", "items": [{"part_id": "part-001", "quantity": 10}]}
    async with Client(world.server) as client:
        preview = await client.call_tool("place_order", args)
        shown = structured(preview)["preview"]
        # 755.00 + 10% + 50.00 flat (guard.added_charges_*): the most the approval lets Factory AI bill.
        assert shown["approval_limit"] == {"amount": "880.50", "currency": "USD"}
        assert "Approving allows a bill of up to 880.50 USD" in preview.content[0].text  # type: ignore[union-attr]
        placed = await confirm_and_place(client, args)
    assert placed["status"] == "placed"
    assert placed["order"]["total"] == {"amount": "840.40", "currency": "USD"}  # 755.00 + 8% tax + 25.00 shipping
    [truth] = world.sandbox.factoryai.orders
    assert truth["status"] == "draft"


async def test_factoryai_billing_above_the_approval_is_cancelled_and_said_loudly(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token", added_charges_percent=0, added_charges_flat=0)
    args = {"vendor": "factoryai", "po_number": "PO-FAI-2", "items": [{"part_id": "part-001", "quantity": 10}]}
    async with Client(world.server) as client:
        result = await confirm_and_place(client, args)
        again = await client.call_tool("place_order", args)
    assert result["status"] == "billed_above_approval" and result["cancelled"] is True
    assert result["approved_limit"] == {"amount": "755.00", "currency": "USD"}
    assert result["order"]["status"] == "cancelled"
    assert "billed 840.40 USD" in result["next_steps"] and "cancelled that order" in result["next_steps"]
    # The vendor's record: one order, cancelled; asking again replays the same loud outcome, never "placed".
    [truth] = world.sandbox.factoryai.orders
    assert truth["status"] == "cancelled"
    text = again.content[0].text  # type: ignore[union-attr]
    assert text.startswith("status: billed_above_approval (ATTENTION: the vendor billed MORE than the 755.00 USD")
    assert "this server CANCELLED it" in text
    assert len(world.sandbox.factoryai.orders) == 1


async def test_a_vendor_billing_above_its_list_price_is_reported_not_placed(world: World) -> None:
    world.sandbox.skynet.set_discount("MS21042L3", "-100000")  # a hostile B2B price: 1,000x the list price
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-SKY-9", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        result = await confirm_and_place(client, args)
    assert result["status"] == "billed_above_approval" and result["cancelled"] is False
    assert "could not cancel it" in result["next_steps"] and "Do not order again" in result["next_steps"]
    assert len(world.skynet_orders) == 1


async def test_caps_count_what_may_be_billed_not_the_subtotal(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token", max_order_total=Decimal("800.00"))
    args = {"vendor": "factoryai", "po_number": "PO-CAP-1", "items": [{"part_id": "part-001", "quantity": 10}]}
    async with Client(world.server) as client:
        refused = error_text(await client.call_tool("place_order", args))
    # A 755.00 subtotal under an 800.00 cap, but Factory AI may bill up to 880.50 for it.
    assert refused.startswith("[OVER_LIMIT] items: The order's bill of up to 880.50 USD")
    assert world.sandbox.factoryai.orders == []


async def test_the_daily_cap_counts_the_bill_once_known(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token", max_daily_total_per_vendor=Decimal("1000.00"))
    async with Client(world.server) as client:
        first = await confirm_and_place(
            client, {"vendor": "factoryai", "po_number": "PO-DAY-1", "items": [{"part_id": "part-001", "quantity": 5}]}
        )
        # Billed 377.50 + 30.20 tax + 25.00 shipping = 432.70, which is what today's budget now holds.
        assert first["order"]["total"]["amount"] == "432.70"
        since = world.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        assert await world.ledger.spent("factoryai", since, "USD") == Decimal("432.70")
        # 432.70 + (377.50 * 1.1 + 50.00 = 465.25) = 897.95 fits.
        second = await confirm_and_place(
            client, {"vendor": "factoryai", "po_number": "PO-DAY-2", "items": [{"part_id": "part-001", "quantity": 5}]}
        )
        assert second["status"] == "placed"
        third = error_text(
            await client.call_tool(
                "place_order",
                {"vendor": "factoryai", "po_number": "PO-DAY-3", "items": [{"part_id": "part-003", "quantity": 8}]},
            )
        )
    # 100.00 more (up to 160.00 billed) fits beside two 377.50 subtotals, not beside two 432.70 bills.
    assert third.startswith("[OVER_DAILY_LIMIT] items: ")
    assert len(world.sandbox.factoryai.orders) == 2


# -- 3. one account, one budget, one PO namespace ----------------------------------------------


SKYNET = '[vendors.{name}]\nkind = "skynet"\nbase_url = "{url}"\napi_key = "{key}"\n'
KEYLOOP = (
    '[vendors.{name}]\nkind = "keyloop"\nbase_url = "https://api.eu.keyloop.io"\nenterprise_id = "acme"\n'
    'store_id = "{store}"\nclient_id = "{client}"\nclient_secret = "s3cret-value"\ncustomer_id = "c-1"\n'
)


def config(tmp_path: Path, *sections: str) -> Path:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "l.sqlite3"}"\n\n' + "\n".join(sections))
    return path


async def test_two_sections_for_one_vendor_account_are_refused_naming_both(tmp_path: Path) -> None:
    url = "https://api.skynetparts.com/api/b2b"
    same_key = config(
        tmp_path,
        SKYNET.format(name="skynet", url=url, key="sk-live-0123456789"),
        SKYNET.format(name="skynet_again", url=url + "/", key="sk-live-0123456789"),
    )
    with pytest.raises(ConfigError) as refused:
        load(same_key)
    assert "vendors.skynet and vendors.skynet_again reach the same skynet account (same base_url and api_key)" in (
        str(refused.value)
    )
    assert "sk-live-0123456789" not in str(refused.value)
    same_store = config(
        tmp_path,
        KEYLOOP.format(name="kl_a", store="store-01", client="app-1"),
        KEYLOOP.format(name="kl_b", store="store-01", client="app-2"),
    )
    with pytest.raises(ConfigError) as refused_store:
        load(same_store)
    assert "vendors.kl_a and vendors.kl_b reach the same keyloop account" in str(refused_store.value)


async def test_two_accounts_of_one_kind_are_two_sections(tmp_path: Path) -> None:
    url = "https://api.skynetparts.com/api/b2b"
    settings = load(
        config(
            tmp_path,
            SKYNET.format(name="east", url=url, key="sk-live-east-000000"),
            SKYNET.format(name="west", url=url, key="sk-live-west-000000"),
            KEYLOOP.format(name="kl_a", store="store-01", client="app-1"),
            KEYLOOP.format(name="kl_b", store="store-02", client="app-1"),  # one app, two dealer stores
        )
    )
    assert set(settings.vendors) == {"east", "west", "kl_a", "kl_b"}


# -- 4. the same items under another PO --------------------------------------------------------


async def test_the_same_items_under_a_new_po_are_named_in_the_preview_the_form_and_the_approval(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, confirmation="auto")
    items = [{"part_id": "part-001", "quantity": 4}, {"part_id": "part-003", "quantity": 20}]
    human = Human()
    async with form_client(world, human, "legacy") as with_forms:
        placed = structured(
            await with_forms.call_tool("place_order", {"vendor": "factoryai", "po_number": "PO-DUP-1", "items": items})
        )
        await with_forms.call_tool("place_order", {"vendor": "factoryai", "po_number": "PO-DUP-2", "items": items})
    [warning] = [line for line in human.shown[1].splitlines() if "POSSIBLE DUPLICATE" in line]
    assert "the same items (4 x SKF-6204, 20 x FILTER-001) were ordered" in warning
    assert "under PO PO-DUP-1 on " in warning and placed["order"]["order_id"] in warning
    # Not a block: the human saw it and approved, so the second order exists.
    assert len(world.sandbox.factoryai.orders) == 2
    async with Client(world.server) as model_only:  # no forms: a person approves out of band
        waiting = structured(
            await model_only.call_tool(
                "place_order", {"vendor": "factoryai", "po_number": "PO-DUP-3", "items": list(reversed(items))}
            )
        )
    assert waiting["status"] == "awaiting_approval"
    assert sum("POSSIBLE DUPLICATE" in w and "PO-DUP-1" in w for w in waiting["warnings"]) == 1


async def test_the_duplicate_window_closes(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token", duplicate_window_hours=24)
    items = [{"part_id": "part-001", "quantity": 4}]
    async with Client(world.server) as client:
        await confirm_and_place(client, {"vendor": "factoryai", "po_number": "PO-WIN-1", "items": items})
        soon = structured(
            await client.call_tool("place_order", {"vendor": "factoryai", "po_number": "PO-WIN-2", "items": items})
        )
        world.clock.advance(timedelta(hours=25))
        later = structured(
            await client.call_tool("place_order", {"vendor": "factoryai", "po_number": "PO-WIN-3", "items": items})
        )
        other = structured(
            await client.call_tool(
                "place_order",
                {"vendor": "factoryai", "po_number": "PO-WIN-4", "items": [{"part_id": "part-001", "quantity": 5}]},
            )
        )
    assert any("PO-WIN-1" in w for w in soon["warnings"])
    assert not any("DUPLICATE" in w for w in later.get("warnings", []) + other.get("warnings", []))
