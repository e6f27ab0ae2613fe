"""Keyloop through the SDK Client against the Keyloop simulator: tokens, look-up, 201/202 orders, statuses.

Expectations come from Keyloop's parts-orders document (seeds/002) and docs/vendors.md section 3;
the simulator's records (orders, requests, issued tokens) are the ground truth.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from parts_mcp.domain import OrderStatus
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox.keyloop import SANDBOX_CLIENT_SECRET, SANDBOX_CUSTOMER_ID, KeyloopSimulator
from parts_mcp.server.app import build_server
from parts_mcp.vendors.base import VendorBadResponse, VendorInvalidRequest
from parts_mcp.vendors.keyloop import KeyloopClient

from conftest import World, confirm_and_place, error_text, structured

pytestmark = pytest.mark.asyncio

KEY_REFERENCE = {"KEYNUMBER": "AO339223X/2926"}


def sim(world: World) -> KeyloopSimulator:
    return world.sandbox.keyloop


def posts(world: World) -> list[Any]:
    return [r for r in sim(world).requests if r.method == "POST" and r.path.endswith("/parts-orders")]


async def lookup(client: Client, *queries: str) -> dict[str, Any]:
    return structured(await client.call_tool("lookup_parts", {"query": list(queries), "vendors": ["keyloop"]}))


def texts(*results: Any) -> str:
    return "\n".join(getattr(block, "text", "") for result in results for block in result.content)


# ------------------------------------------------------------------------------------------- tokens


async def test_token_is_fetched_once_cached_and_refreshed_once_after_expiry(world: World) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        first = await client.call_tool("lookup_parts", {"query": ["S7654321"], "vendors": ["keyloop"]})
        second = await client.call_tool("lookup_parts", {"query": ["1K0698151A"], "vendors": ["keyloop"]})
        assert len(keyloop.tokens_issued) == 1  # cached across calls

        world.clock.advance(timedelta(seconds=keyloop.token_ttl + 1))
        results: list[Any] = []

        async def one(query: str) -> None:
            results.append(await client.call_tool("lookup_parts", {"query": [query], "vendors": ["keyloop"]}))

        async with anyio.create_task_group() as group:
            for query in ("S7654321", "5E0698451", "8W0698151AB", "04C115561J"):
                group.start_soon(one, query)

    # The expired token was refused, and exactly one new token served every concurrent call.
    assert len(keyloop.tokens_issued) == 2
    assert any(r.status == 401 for r in keyloop.requests)
    assert all(structured(r)["parts"] and structured(r)["vendor_errors"] == [] for r in results)
    shown = texts(first, second, *results)
    assert all(token not in shown for token in keyloop.tokens_issued)
    assert SANDBOX_CLIENT_SECRET not in shown


async def test_refused_credentials_are_an_auth_error_not_a_crash(world: World) -> None:
    sim(world).client_secret = "rotated-at-keyloop"
    async with Client(world.server) as client:
        found = await lookup(client, "S7654321")
    [failure] = found["vendor_errors"]
    assert failure["vendor"] == "keyloop" and failure["code"] == "TOKEN_REFUSED"
    assert SANDBOX_CLIENT_SECRET not in failure["message"]


# ------------------------------------------------------------------------------------------- look-up


async def test_lookup_shows_the_customers_order_price_and_the_notes(world: World) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        found = await lookup(client, "S7654321", "1K0 698 151 A", "V3C0945095", "XX999")
    by_id = {p["part_id"]: p for p in found["parts"]}
    assert found["not_found"] == ["XX999"]

    key = by_id["S7654321"]  # the seed's part: brand S + part code 7654321
    assert key["unit_price"] == {"amount": "100.00", "currency": "EUR"}
    assert key["price_basis"] == "contract" and key["orderable"] is True
    assert key["available_quantity"] == keyloop.stock["S7654321"]
    notes = " ".join(key["notes"])
    assert "KEYNUMBER" in notes and "options.vehicle_references" in notes
    assert "List price: 100.00 EUR net (120.00 EUR incl. 20% tax)" in notes
    assert "Lead time: 3 day(s)" in notes and "Back-order allowed" in notes

    pads = by_id["V1K0698151A"]  # found by part code alone, spaces as dealers print them
    stk = keyloop.part("V1K0698151A").order_price("STK")
    assert Decimal(pads["unit_price"]["amount"]) == stk < keyloop.part("V1K0698151A").list_price
    assert pads["manufacturer"] == "Volkswagen"
    assert "STK (Stock Order)" in " ".join(pads["notes"]) and "VOR" in " ".join(pads["notes"])

    blocked = by_id["V3C0945095"]
    assert blocked["orderable"] is False and blocked["vendor_status"] == "SALES_BLOCKED"
    assert "V3C0945095AA" in " ".join(blocked["notes"])


async def test_surcharge_is_noted_and_excluded_from_the_total(world: World) -> None:
    async with Client(world.server) as client:
        found = await lookup(client, "V000915105DH")
        [battery] = found["parts"]
        assert "Surcharge: 7.50 EUR net" in " ".join(battery["notes"])
        preview = structured(
            await client.call_tool(
                "place_order",
                {"vendor": "keyloop", "po_number": "PO-KL-BATT", "items": [{"part_id": "V000915105DH", "quantity": 1}]},
            )
        )
    assert any("surcharge" in e for e in preview["preview"]["excludes"])


# ------------------------------------------------------------------------------------------ placing


async def test_place_with_201_sends_the_documented_body_and_keeps_net_tax_gross_exact(world: World) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        await lookup(client, "S7654321")
        args = {
            "vendor": "keyloop",
            "po_number": "PO-KL-1001",
            "items": [{"part_id": "S7654321", "quantity": 3}],
            "options": {"vehicle_references": KEY_REFERENCE},
        }
        preview = structured(await client.call_tool("place_order", args))["preview"]
        assert preview["price_basis"] == "contract"
        assert preview["subtotal"] == {"amount": "300.00", "currency": "EUR"}
        assert preview["total"] == {"amount": "360.00", "currency": "EUR"}  # gross: net + 20% tax
        assert "60.00 EUR tax" in preview["caveats"][0]
        assert keyloop.orders == []  # a preview writes nothing
        placed = await confirm_and_place(client, args)

    assert placed["status"] == "placed" and placed["warnings"] == []
    order = placed["order"]
    assert order["subtotal"] == {"amount": "300.00", "currency": "EUR"}
    assert order["tax"] == {"amount": "60.00", "currency": "EUR"}
    assert order["total"] == {"amount": "360.00", "currency": "EUR"}
    assert order["status"] == "acknowledged" and order["vendor_status"] == "CONFIRMED"
    assert [line["vendor_status"] for line in order["lines"]] == ["RESERVED"]
    [truth] = keyloop.orders
    assert str(truth["partsOrderId"]) == order["order_id"]
    [post] = posts(world)
    assert post.status == 201
    assert post.body["customerId"] == SANDBOX_CUSTOMER_ID
    assert post.body["orderType"] == "STK" and post.body["orderReference"] == "PO-KL-1001"
    assert post.body["orderContact"]["name"] == "Cate ContactPerson"
    assert "alternateDeliveryAddress" not in post.body
    assert post.body["parts"] == [
        {
            "part": {"partId": "S7654321", "brandCode": "S", "partCode": "7654321"},
            "quantity": 3,
            "mandatoryVehicleReferences": [{"type": "KEYNUMBER", "value": "AO339223X/2926"}],
        }
    ]
    assert post.idempotency_key is None  # Keyloop has none


async def test_alternate_delivery_address_and_contact_options_are_sent(world: World) -> None:
    async with Client(world.server) as client:
        await lookup(client, "5E0698451")
        placed = await confirm_and_place(
            client,
            {
                "vendor": "keyloop",
                "po_number": "PO-KL-1002",
                "items": [{"part_id": "S5E0698451", "quantity": 2}],
                "options": {
                    "contact": {"name": "Max Mechanic", "email": "max@example.com"},
                    "delivery_address": {
                        "street_name": "Narrow street 4",
                        "postal_code": "0123",
                        "city": "Smalltown",
                        "country_code": "gb",
                    },
                },
            },
        )
    [post] = posts(world)
    assert post.body["alternateDeliveryAddress"] == {
        "streetName": "Narrow street 4",
        "postalCode": "0123",  # a string: a leading zero survives
        "city": "Smalltown",
        "countryCode": "GB",
    }
    assert post.body["orderContact"] == {"name": "Max Mechanic", "email": "max@example.com"}
    assert placed["order"]["details"]["delivery_address"]["city"] == "Smalltown"


async def test_place_with_202_polls_the_order_until_it_is_readable(world: World) -> None:
    keyloop = sim(world)
    keyloop.async_reads = 2
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A", "03L115562")
        placed = await confirm_and_place(
            client,
            {
                "vendor": "keyloop",
                "po_number": "PO-KL-2001",
                "items": [{"part_id": "V1K0698151A", "quantity": 4}, {"part_id": "V03L115562", "quantity": 1}],
                "options": {"order_type": "VOR"},  # the simulator accepts VOR orders asynchronously
            },
        )
    assert placed["status"] == "placed"
    order = placed["order"]
    [truth] = keyloop.orders
    assert order["order_id"] == str(truth["partsOrderId"]) and order["po_number"] == "PO-KL-2001"
    assert [line["part_id"] for line in order["lines"]] == ["V1K0698151A", "V03L115562"]  # `parts` as an array
    vor = keyloop.part("V1K0698151A").order_price("VOR")
    assert Decimal(order["lines"][0]["unit_price"]["amount"]) == vor
    calls = [(r.method, r.status) for r in keyloop.requests if "/parts-orders" in r.path]
    assert calls == [("POST", 202), ("GET", 404), ("GET", 404), ("GET", 200)]


async def test_202_never_readable_is_outcome_unknown_and_never_resent(world: World) -> None:
    keyloop = sim(world)
    keyloop.async_reads = 50
    async with Client(world.server) as client:
        await lookup(client, "5E3955427")
        args = {
            "vendor": "keyloop",
            "po_number": "PO-KL-2002",
            "items": [{"part_id": "S5E3955427", "quantity": 1}],
            "options": {"order_type": "VOR"},
        }
        unknown = await confirm_and_place(client, args)
        assert unknown["status"] == "outcome_unknown"
        [truth] = keyloop.orders
        assert str(truth["partsOrderId"]) in " ".join(unknown["warnings"])  # the id to check later
        again = structured(await client.call_tool("place_order", args))
        assert again["status"] == "outcome_unknown"
    assert len(posts(world)) == 1


async def test_mandatory_vehicle_references_are_refused_before_any_write_naming_them(world: World) -> None:
    async with Client(world.server) as client:
        await lookup(client, "S7654321", "4M0959754T", "1K0698151A")
        items = [
            {"part_id": "S7654321", "quantity": 1},
            {"part_id": "A4M0959754T", "quantity": 1},
            {"part_id": "V1K0698151A", "quantity": 1},
        ]
        base = {"vendor": "keyloop", "po_number": "PO-KL-3001", "items": items}
        text = error_text(await client.call_tool("place_order", base))
        assert "options.vehicle_references" in text
        assert "S7654321 needs KEYNUMBER" in text and "A4M0959754T needs VIN, KEYNUMBER" in text
        assert "V1K0698151A" not in text  # brake pads need no reference

        partial = {**base, "options": {"vehicle_references": {"VIN": "WAUZZZF40MA000001"}}}
        text = error_text(await client.call_tool("place_order", partial))
        assert "S7654321 needs KEYNUMBER" in text and "A4M0959754T needs KEYNUMBER" in text
        assert "needs VIN" not in text
        assert posts(world) == []

        given = {
            **base,
            "options": {
                "vehicle_references": {
                    "S7654321": {"KEYNUMBER": "AO339223X/2926"},
                    "A4M0959754T": [
                        {"type": "VIN", "value": "WAUZZZF40MA000001"},
                        {"type": "keynumber", "value": "K-4471"},
                    ],
                }
            },
        }
        placed = await confirm_and_place(client, given)
    assert placed["status"] == "placed"
    [post] = posts(world)
    sent = {line["part"]["partId"]: line.get("mandatoryVehicleReferences") for line in post.body["parts"]}
    assert sent == {
        "S7654321": [{"type": "KEYNUMBER", "value": "AO339223X/2926"}],
        "A4M0959754T": [
            {"type": "VIN", "value": "WAUZZZF40MA000001"},
            {"type": "KEYNUMBER", "value": "K-4471"},
        ],
        "V1K0698151A": None,
    }


@pytest.mark.parametrize("order_type", ["XYZ", "URGENT", "", 5])
async def test_an_order_type_outside_the_five_is_refused_naming_them(world: World, order_type: Any) -> None:
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A")
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    "vendor": "keyloop",
                    "po_number": "PO-KL-4001",
                    "items": [{"part_id": "V1K0698151A", "quantity": 1}],
                    "options": {"order_type": order_type},
                },
            )
        )
    assert "options.order_type" in text
    assert all(t in text for t in ("EMG", "VOR", "STK", "DPO", "COL"))
    assert posts(world) == []


async def test_order_type_picks_its_own_price_and_is_shown_in_the_preview(world: World) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A")
        result = await client.call_tool(
            "place_order",
            {
                "vendor": "keyloop",
                "po_number": "PO-KL-4002",
                "items": [{"part_id": "V1K0698151A", "quantity": 2}],
                "options": {"order_type": "emg"},
            },
        )
    preview = structured(result)["preview"]
    assert preview["options"]["order_type"] == "EMG"
    assert "  order_type: «EMG»" in texts(result)  # what the human confirms
    emg = keyloop.part("V1K0698151A").order_price("EMG")
    assert Decimal(preview["lines"][0]["unit_price"]["amount"]) == emg


async def test_unknown_options_and_notes_are_refused(world: World) -> None:
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A")
        base = {"vendor": "keyloop", "po_number": "PO-KL-4003", "items": [{"part_id": "V1K0698151A", "quantity": 1}]}
        text = error_text(await client.call_tool("place_order", {**base, "options": {"priority": "high"}}))
        assert "options.priority" in text and "order_type" in text
        text = error_text(await client.call_tool("place_order", {**base, "notes": "leave at the back door"}))
        assert "notes" in text
    assert posts(world) == []


async def test_a_dealer_refusal_names_the_field_and_frees_the_po(world: World) -> None:
    """Not back-orderable and out of stock: Keyloop answers 400 in its envelope; nothing was ordered."""
    async with Client(world.server) as client:
        await lookup(client, "5FF698151")
        args = {"vendor": "keyloop", "po_number": "PO-KL-4004", "items": [{"part_id": "C5FF698151", "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        assert any("cannot be back-ordered" in c for c in preview["preview"]["caveats"])
        text = error_text(
            await client.call_tool(
                "place_order",
                {
                    **args,
                    "confirmation_token": preview["confirmation_token"],
                    "confirmed_total": f"{preview['preview']['total']['amount']} EUR",
                },
            )
        )
    assert "items[0].quantity" in text and "cannot be back-ordered" in text and "correlationId" in text
    assert sim(world).orders == []


# --------------------------------------------------------------------------------------- get_order


async def place_simple(client: Client, po_number: str, *, quantity: int = 2) -> dict[str, Any]:
    await lookup(client, "1K0698151A")
    placed = await confirm_and_place(
        client,
        {"vendor": "keyloop", "po_number": po_number, "items": [{"part_id": "V1K0698151A", "quantity": quantity}]},
    )
    assert placed["status"] == "placed"
    return placed["order"]


async def test_get_order_of_a_retained_order_and_of_one_the_dealer_no_longer_keeps(world: World) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        order = await place_simple(client, "PO-KL-5001")
        keyloop.set_line_statuses(order["order_id"], "INVOICED")
        world.clock.advance(timedelta(seconds=keyloop.retention - 3600))
        got = structured(await client.call_tool("get_order", {"vendor": "keyloop", "order_id": order["order_id"]}))
        assert got["order"]["status"] == "completed" and got["order"]["vendor_status"] == "CLOSED"
        assert got["order"]["source"] == "vendor" and got["order"]["total"] == order["total"]

        world.clock.advance(timedelta(hours=2))
        # Gone from Keyloop's API: this server placed it, so its ledger still answers, and says so.
        kept = structured(await client.call_tool("get_order", {"vendor": "keyloop", "order_id": order["order_id"]}))
    assert kept["order"]["source"] == "ledger" and "no longer" in kept["order"]["details"]["vendor_note"]
    assert kept["order"]["order_id"] == order["order_id"]
    assert len(keyloop.orders) == 1  # gone from the API, not from the dealer's history


async def test_get_order_of_an_expired_order_this_server_did_not_place_says_it_is_no_longer_retained(
    world: World,
) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        order = await place_simple(client, "PO-KL-5002")
        keyloop.set_line_statuses(order["order_id"], "INVOICED")
    # Another server with its own (empty) ledger, on the same simulators: it never placed this order.
    other = build_server(world.settings, sandbox=world.sandbox, ledger=SQLiteLedger(":memory:"), clock=world.clock.now)
    world.clock.advance(timedelta(seconds=keyloop.retention + 3600))
    async with Client(other) as client:
        text = error_text(await client.call_tool("get_order", {"vendor": "keyloop", "order_id": order["order_id"]}))
    assert "NOT_FOUND" in text and "no longer be retained" in text


async def test_get_order_of_an_unknown_id_is_not_found(world: World) -> None:
    async with Client(world.server) as client:
        text = error_text(await client.call_tool("get_order", {"vendor": "keyloop", "order_id": "999"}))
    assert "NOT_FOUND" in text and "'999'" in text


@pytest.mark.parametrize(
    ("lines", "vendor_status", "status"),
    [
        (("OPEN",), "CREATED", "ordered"),
        (("RESERVED",), "CONFIRMED", "acknowledged"),
        (("ISSUED",), "INPROGRESS", "in_progress"),
        (("BACKORDER",), "INPROGRESS", "in_progress"),
        (("PACKED",), "INPROGRESS", "in_progress"),
        (("INTRANSIT",), "SHIPPED", "shipped"),
        (("DELIVERED",), "SHIPPED", "shipped"),
        (("INVOICED",), "CLOSED", "completed"),
        (("CANCELLED",), "CLOSED", "cancelled"),
        (("INVOICED", "CANCELLED"), "CLOSED", "completed"),
        (("DELIVERED", "BACKORDER"), "SHIPPED", "shipped"),
    ],
)
async def test_order_and_line_statuses_map_with_the_raw_ones_kept(
    world: World, lines: tuple[str, ...], vendor_status: str, status: str
) -> None:
    keyloop = sim(world)
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A", "03L115562")
        placed = await confirm_and_place(
            client,
            {
                "vendor": "keyloop",
                "po_number": "PO-KL-6001",
                "items": [{"part_id": "V1K0698151A", "quantity": 1}, {"part_id": "V03L115562", "quantity": 1}][
                    : len(lines)
                ],
            },
        )
        keyloop.set_line_statuses(placed["order"]["order_id"], *lines)
        got = structured(
            await client.call_tool("get_order", {"vendor": "keyloop", "order_id": placed["order"]["order_id"]})
        )["order"]
    assert got["vendor_status"] == vendor_status and got["status"] == status
    assert tuple(line["vendor_status"] for line in got["lines"]) == lines


# ------------------------------------------------------------------------------- lost answers, list


async def test_lost_answer_is_outcome_unknown_with_dms_steps_and_never_resent(world: World) -> None:
    keyloop = sim(world)
    keyloop.faults.arm("drop_after_commit")
    async with Client(world.server) as client:
        await lookup(client, "1K0698151A")
        args = {"vendor": "keyloop", "po_number": "PO-KL-7001", "items": [{"part_id": "V1K0698151A", "quantity": 2}]}
        unknown = await confirm_and_place(client, args)
        assert unknown["status"] == "outcome_unknown"
        assert "DMS" in unknown["next_steps"] and "PO-KL-7001" in unknown["next_steps"]
        assert "orderReference 'PO-KL-7001'" in " ".join(unknown["warnings"])
        again = await client.call_tool("place_order", args)
        assert structured(again)["status"] == "outcome_unknown"
        assert "PO-KL-7001" in texts(again)
    assert len(keyloop.orders) == 1
    [post] = posts(world)
    assert post.dropped


async def test_list_purchase_orders_shows_the_ledgers_keyloop_orders(world: World) -> None:
    async with Client(world.server) as client:
        first = await place_simple(client, "PO-KL-8001")
        world.clock.advance(timedelta(minutes=5))
        second = await place_simple(client, "PO-KL-8002", quantity=1)
        listed = structured(await client.call_tool("list_purchase_orders", {"vendor": "keyloop"}))
    assert [o["order_id"] for o in listed["orders"]] == [second["order_id"], first["order_id"]]
    assert {o["source"] for o in listed["orders"]} == {"ledger"}
    assert any("Keyloop" in note and "ledger" in note for note in listed["notes"])
    assert not [r for r in sim(world).requests if r.method == "GET" and r.path.endswith("/parts-orders")]


async def test_list_vendors_declares_what_keyloop_cannot_do(world: World) -> None:
    async with Client(world.server) as client:
        result = await client.call_tool("list_vendors", {})
    info = next(v for v in structured(result)["vendors"] if v["vendor"] == "keyloop")
    assert info["capabilities"] == {
        "lookup": True,
        "quote": False,
        "place": True,
        "get": True,
        "list": False,
        "idempotency_key": False,
        "find_by_po": False,
        "replays_failures": False,
        "ephemeral_part_ids": False,
        "cancel": False,
    }


# ------------------------------------------------------------------- answers in every shape allowed
# The simulator answers exactly as the documents show; these answers use the spellings the documents
# leave open (vendors.md section 3: numbers as strings, a null beside its other spelling, bare lists,
# `parts` as one object), so a fake Keyloop serves them to the client's own methods.

FAKE_HOST = "http://keyloop.fake"


def fake_keyloop(answers: dict[str, tuple[int, Any]]) -> KeyloopClient:
    """A client whose Keyloop answers each API path (after /{enterprise}/{store}/v1) as given."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/client_credential/accesstoken":
            token = {"access_token": "fake", "token_type": "BearerToken", "expires_in": "3599"}
            return httpx2.Response(200, json=token)
        status, body = answers[request.url.path.removeprefix("/acme/s1/v1")]
        return httpx2.Response(status, json=body)

    return KeyloopClient(
        "keyloop",
        base_url=FAKE_HOST,
        enterprise_id="acme",
        store_id="s1",
        client_id="id",
        client_secret="secret",
        customer_id="c-1",
        http=httpx2.AsyncClient(transport=httpx2.MockTransport(answer), base_url=FAKE_HOST),
    )


async def test_lookup_reads_bare_lists_numbers_as_strings_and_a_null_spelling() -> None:
    price = {"netValue": "58.4", "grossValue": "70.08", "taxRate": "20", "currencyCode": None, "currency": "EUR"}
    client = fake_keyloop(
        {
            "/parts/brands": (200, [{"brandCode": "V", "description": "Volkswagen"}, "junk", {"brandCode": 7}]),
            "/parts": (200, [{"partId": "V1K0698151A", "brandCode": "V", "partCode": "1K0698151A"}]),
            "/parts/V1K0698151A/price-availability": (
                200,
                {
                    "orderPrices": {"STK": price},
                    "listPrice": "n/a",
                    "availableStock": "4",
                    "leadTimeInDays": "2",
                    "isAvailableForBackOrder": "maybe",
                    "mandatoryVehicleReferences": "VIN",
                },
            ),
        }
    )
    [part] = (await client.lookup(["V1K0698151A"])).parts
    assert part.unit_price is not None and str(part.unit_price) == "58.40 EUR"
    assert part.manufacturer == "Volkswagen" and part.available_quantity == 4
    notes = " ".join(part.notes)
    assert "70.08 EUR incl. 20% tax" in notes and "Lead time: 2 day(s)" in notes
    assert "vehicle references VIN" in notes
    assert "List price" not in notes and "back-order" not in notes.lower()  # unreadable, so not claimed


async def test_an_order_with_string_numbers_and_one_part_object_reads_exactly() -> None:
    order = {
        "partsOrderId": "98765",
        "orderStatus": None,
        "orderReference": "PO-KL-9001",
        "parts": {
            "partId": "V1K0698151A",
            "quantity": "2",
            "partsOrderLineStatus": "reserved",
            "orderPrice": {"netValue": "58.4", "taxValue": "11.68", "currencyCode": "EUR"},
        },
    }
    got = await fake_keyloop({"/parts-orders/98765": (200, order)}).get_order("98765")
    assert got.order_id == "98765" and got.po_number == "PO-KL-9001"
    assert got.vendor_status == "CONFIRMED" and got.status is OrderStatus.ACKNOWLEDGED  # derived from the line
    [line] = got.lines
    assert line.quantity == 2 and line.vendor_status == "RESERVED"
    assert (str(got.subtotal), str(got.tax), str(got.total)) == ("116.80 EUR", "23.36 EUR", "140.16 EUR")


async def test_an_answer_that_is_no_order_and_an_error_without_a_details_list_are_clear_errors() -> None:
    client = fake_keyloop(
        {
            "/parts-orders/1": (200, ["not", "an", "order"]),
            "/parts-orders/2": (400, {"message": "Invalid request", "details": 5, "correlationId": "c0ffee"}),
        }
    )
    with pytest.raises(VendorBadResponse):
        await client.get_order("1")
    with pytest.raises(VendorInvalidRequest, match=r"Invalid request \[Keyloop correlationId c0ffee\]"):
        await client.get_order("2")
