"""PartsSource quotes as the vendor issues them (issue 9, point 2), through the SDK Client.

The documents call a priceOptionId "a quote valid 30 days" and leave open whether `/catalog/detail`
repeats it. Every test here runs under both readings of the simulator: ids kept (its default) and
ids re-issued on every detail call (`reissue_quotes`), where each earlier id stays orderable at its
price for its 30 days. What must hold either way: the part_id from lookup_parts names the option
(product, condition, purchase choice, warranty, vendor), stays usable, and is ordered at the price
the human confirmed; only a withdrawn option or a changed price sends the user back. The
simulator's records are the ground truth, and no output carries a sandbox secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from test_confirmation import Human
from test_part_ids import confirmed, new_process  # noqa: F401 - new_process is a fixture used here
from test_partssource_simulator import Api, data, key, quote_item

from parts_mcp.sandbox import ManualClock, Sandbox
from parts_mcp.sandbox.partssource import (
    QUOTE_TTL_SECONDS,
    SANDBOX_API_KEY,
    SANDBOX_CLIENT_SECRET,
    PartsSourceSimulator,
)

from conftest import World, error_text, structured

pytestmark = pytest.mark.asyncio

VENDOR = "partssource"
READINGS = {"ids_kept": False, "ids_reissued": True}
SECRETS = (SANDBOX_API_KEY, SANDBOX_CLIENT_SECRET)
TOKEN_SECRET = "partssource-quotes-test-token-secret-0001"
# M3001A's first offer: the documents' own refurbished option, 1250.00 under OPT-ABC123-XYZ.
NUMBER, OFFER, PRODUCT, PRICE = "M3001A", 0, "CAT-456", 1250.0


@pytest.fixture(params=list(READINGS))
def reading(request: pytest.FixtureRequest) -> str:
    return request.param


def _world(tmp_path: Path, reading: str, **guard: Any) -> World:
    world = World(tmp_path, token_secret=TOKEN_SECRET, **guard)
    world.sandbox.partssource.reissue_quotes = READINGS[reading]
    return world


@pytest.fixture
def world(tmp_path: Path, reading: str) -> Iterator[World]:
    w = _world(tmp_path, reading, confirmation="token")
    yield w
    w.ledger.close()


class Session:
    """One MCP client's calls, every answer kept so the whole conversation can be scanned for secrets."""

    def __init__(self, client: Client, seen: list[str]) -> None:
        self.client, self.seen = client, seen

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        result = await self.client.call_tool(tool, args)
        self.seen.append(result.model_dump_json())
        return result

    async def option(self) -> dict[str, Any]:
        """The looked-up part for the refurbished, bought M3001A."""
        found = structured(await self.call("lookup_parts", {"query": [NUMBER], "vendors": [VENDOR]}))
        return next(p for p in found["parts"] if "(Refurbished, Buy)" in p["name"])

    async def preview(self, args: dict[str, Any]) -> dict[str, Any]:
        preview = structured(await self.call("place_order", args))
        assert preview["status"] == "confirmation_required"
        return preview

    async def confirm(self, args: dict[str, Any], preview: dict[str, Any]) -> CallToolResult:
        return await self.call("place_order", confirmed(args, preview))


def order_args(po: str, part: dict[str, Any]) -> dict[str, Any]:
    return {"vendor": VENDOR, "po_number": po, "items": [{"part_id": part["part_id"], "quantity": 1}]}


def sim(world: World) -> PartsSourceSimulator:
    return world.sandbox.partssource


def quote_shown(part: dict[str, Any]) -> str:
    """The priceOptionId the human was shown for a looked-up part (its notes name the quote)."""
    [note] = [n for n in part["notes"] if "(priceOptionId " in n]
    return note.split("(priceOptionId ", 1)[1].split(")", 1)[0]


def current_quote(world: World) -> str:
    """The newest priceOptionId PartsSource issued for the option under test."""
    return sim(world).issued(NUMBER, OFFER)[-1]


def ordered(world: World) -> list[tuple[str, int, str, float]]:
    """Per created order line: (product, offer index, priceOptionId, price), from the vendor's own records."""
    lines = [line for order in sim(world).created_orders for line in order["lineItems"]]
    return [
        (line["productId"], sim(world).quote(line["priceOptionId"]).offer_index, line["priceOptionId"], line["price"])
        for line in lines
    ]


def posts(world: World) -> int:
    return sum(1 for r in sim(world).requests if r.method == "POST" and r.path == "/orders")


def assert_no_secret(world: World, seen: list[str], tmp_path: Path, logs: str) -> None:
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("ledger.sqlite3*"))
    for secret in SECRETS:
        assert all(secret not in answer for answer in seen)
        assert secret not in logs and secret.encode() not in stored


async def test_lookup_then_confirm_places_one_order_at_the_quoted_price(
    world: World, reading: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    async with Client(world.server) as client:
        session = Session(client, seen)
        part = await session.option()
        assert part["unit_price"] == {"amount": "1250.00", "currency": "USD"}
        args = order_args("PO-PSQ-1", part)
        placed = structured(await session.confirm(args, await session.preview(args)))
    assert placed["status"] == "placed" and placed["order"]["total"] == {"amount": "1250.00", "currency": "USD"}
    [(product, offer, quote, price)] = ordered(world)
    assert (product, offer, price) == (PRODUCT, OFFER, PRICE) and posts(world) == 1
    issued = sim(world).issued(NUMBER, OFFER)
    if READINGS[reading]:
        # One fresh id per detail call (look-up, preview, confirmation): the order carries the newest.
        assert len(issued) == 4 and quote == issued[-1] != quote_shown(part)
    else:
        assert issued == [quote] == [quote_shown(part)] == ["OPT-ABC123-XYZ"]
    assert_no_secret(world, seen, tmp_path, caplog.text)


async def test_ids_reissued_between_lookup_preview_and_confirm_still_order_the_option_seen(
    world: World, reading: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    async with Client(world.server) as client:
        session = Session(client, seen)
        part = await session.option()
        again = await session.option()  # a second look-up: under re-issue, a new quote for the same option
        assert again["part_id"] == part["part_id"]
        assert (quote_shown(again) != quote_shown(part)) is READINGS[reading]
        args = order_args("PO-PSQ-2", part)
        preview = await session.preview(args)
        [line] = preview["preview"]["lines"]
        assert line["unit_price"] == part["unit_price"] and line["part_id"].endswith(":" + current_quote(world))
        await session.option()  # and another between the preview and the confirmation
        placed = structured(await session.confirm(args, preview))
    assert placed["status"] == "placed"
    [(product, offer, quote, price)] = ordered(world)
    assert (product, offer, quote, price) == (PRODUCT, OFFER, current_quote(world), PRICE)
    # Every quote the human was shown is still one PartsSource would honour, at its price, for 30 days.
    for shown in (quote_shown(part), quote_shown(again)):
        assert not sim(world).quote(shown).withdrawn and float(sim(world).quote(shown).price) == PRICE
    assert_no_secret(world, seen, tmp_path, caplog.text)


@pytest.mark.parametrize("when", ["before_the_preview", "before_the_confirmation"])
async def test_a_withdrawn_option_is_refused_as_gone_and_nothing_is_ordered(
    world: World, reading: str, when: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    async with Client(world.server) as client:
        session = Session(client, seen)
        part = await session.option()
        args = order_args("PO-PSQ-3", part)
        preview = await session.preview(args) if when == "before_the_confirmation" else None
        sim(world).withdraw(current_quote(world))
        result = await (session.confirm(args, preview) if preview else session.call("place_order", args))
        text = error_text(result)
        # The look-up no longer offers it: the option is gone, not merely re-quoted.
        found = structured(await session.call("lookup_parts", {"query": [NUMBER], "vendors": [VENDOR]}))
    assert "items[0].part_id" in text and "no longer offered" in text and "Nothing was ordered" in text
    assert part["part_id"] not in {p["part_id"] for p in found["parts"]}
    assert sim(world).created_orders == [] and posts(world) == 0
    assert_no_secret(world, seen, tmp_path, caplog.text)


async def test_a_changed_price_asks_the_user_again_and_orders_nothing_until_confirmed(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    async with Client(world.server) as client:
        session = Session(client, seen)
        part = await session.option()
        args = order_args("PO-PSQ-4", part)
        preview = await session.preview(args)
        assert preview["preview"]["total"]["amount"] == "1250.00"
        sim(world).set_price(current_quote(world), "1300.00")
        text = error_text(await session.confirm(args, preview))
        assert "TOKEN_CONTENT_CHANGED" in text and "1300.00" in text
        assert sim(world).created_orders == [] and posts(world) == 0

        again = await session.preview(args)
        assert again["preview"]["total"] == {"amount": "1300.00", "currency": "USD"}
        assert any("now quotes 1300.00 USD" in c and "1250.00 USD" in c for c in again["preview"]["caveats"])
        assert sim(world).created_orders == []
        placed = structured(await session.confirm(args, again))
    assert placed["order"]["total"] == {"amount": "1300.00", "currency": "USD"}
    [(product, offer, _, price)] = ordered(world)
    assert (product, offer, price) == (PRODUCT, OFFER, 1300.0) and posts(world) == 1
    assert_no_secret(world, seen, tmp_path, caplog.text)


async def test_a_part_id_looked_up_in_one_process_orders_in_others_after_reissues(
    world: World,
    new_process: Callable[[], MCPServer],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    async with Client(world.server) as a:
        part = await Session(a, seen).option()
    args = order_args("PO-PSQ-5", part)
    async with Client(new_process()) as b:
        preview = await Session(b, seen).preview(args)
    assert preview["preview"]["total"] == {"amount": "1250.00", "currency": "USD"}
    async with Client(new_process()) as c:
        placed = structured(await Session(c, seen).confirm(args, preview))
    assert placed["status"] == "placed"
    assert ordered(world) == [(PRODUCT, OFFER, current_quote(world), PRICE)] and posts(world) == 1
    assert_no_secret(world, seen, tmp_path, caplog.text)


@pytest.mark.parametrize("mode", ["modern", "legacy"])
async def test_a_form_confirmation_orders_the_option_at_the_price_shown(
    tmp_path: Path, reading: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = _world(tmp_path, reading, confirmation="elicit")
    human, seen = Human("accept"), []
    try:
        async with Client(
            world.server, mode="legacy" if mode == "legacy" else "auto", elicitation_callback=human
        ) as client:
            session = Session(client, seen)
            part = await session.option()
            placed = structured(await session.call("place_order", order_args("PO-PSQ-6", part)))
    finally:
        world.ledger.close()
    assert placed["status"] == "placed" and any("1250.00 USD" in shown for shown in human.shown)
    assert ordered(world) == [(PRODUCT, OFFER, current_quote(world), PRICE)] and posts(world) == 1
    assert_no_secret(world, seen, tmp_path, caplog.text)


# -- the simulator under re-issue keeps its word on every quote it issued -------------------------------------


async def test_the_simulator_honours_every_quote_it_issued_for_30_days_at_its_price() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock.now)
    sandbox.partssource.reissue_quotes = True
    vendor = sandbox.vendors()[VENDOR]
    async with httpx2.AsyncClient(transport=vendor.transport, base_url=vendor.base_url) as http:
        api = Api(sandbox, http)

        async def quote() -> dict[str, Any]:
            detail = data(await api.get("/catalog/detail", productId=PRODUCT, requesterId=10001))
            return next(
                o for o in detail["options"] if o["condition"] == "Refurbished" and o["purchaseChoice"] == "Buy"
            )

        first, second = await quote(), await quote()
        assert first["priceOptionId"] != second["priceOptionId"] and first["price"] == second["price"] == PRICE
        sandbox.partssource.set_price(second["priceOptionId"], "1300.00")
        assert (await quote())["price"] == 1300.0
        # The first quote still orders at the price it quoted; the re-priced one only at its new price.
        kept = await api.order(key(), quoteItems=[quote_item(first["priceOptionId"], price=PRICE)])
        assert kept.status_code == 200, kept.text
        stale = await api.order(key(), quoteItems=[quote_item(second["priceOptionId"], price=PRICE)])
        assert stale.status_code == 422 and "does not match the quoted price" in stale.text
        clock.advance(QUOTE_TTL_SECONDS)
        api.token = None  # the token lapsed too
        expired = await api.order(key(), quoteItems=[quote_item(first["priceOptionId"], price=PRICE)])
        assert expired.status_code == 422 and "expired" in expired.text
    assert [line["price"] for o in sandbox.partssource.created_orders for line in o["lineItems"]] == [PRICE]
