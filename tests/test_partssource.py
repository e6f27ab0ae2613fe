"""PartsSource through the SDK Client against its simulator: quotes, idempotent orders, look-ups.

Expectations come from the vendor document (seeds/003) and docs/vendors.md section 4: Cognito token
plus x-api-key, priceOptionIds as 30-day quotes whose price an order repeats exactly, the replay
cache (2xx and 5xx stored 24 h under the Idempotency-Key, 4xx not), order search by PO / status /
date. The simulator's records are the ground truth.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp import Client

from parts_mcp.sandbox import Sandbox
from parts_mcp.sandbox.partssource import SANDBOX_API_KEY, SANDBOX_CLIENT_SECRET, PartsSourceSimulator
from parts_mcp.vendors import vendor_settings
from parts_mcp.vendors.base import (
    OrderQuery,
    VendorAuthError,
    VendorBadResponse,
    VendorConflict,
    VendorInvalidRequest,
    VendorNotFound,
    VendorRateLimited,
    VendorUnavailable,
)
from parts_mcp.vendors.partssource import PartsSourceClient, PartsSourceSettings, create

from conftest import Respelled, World, confirm_and_place, error_text, structured

VENDOR = "partssource"


def sim(world: World) -> PartsSourceSimulator:
    return world.sandbox.partssource


def posts(world: World) -> list[Any]:
    return [r for r in sim(world).requests if r.method == "POST" and r.path == "/orders"]


def token_requests(world: World) -> list[Any]:
    return [r for r in sim(world).requests if r.path == "/oauth2/token"]


async def lookup(client: Client, *queries: str) -> dict[str, Any]:
    return structured(await client.call_tool("lookup_parts", {"query": list(queries), "vendors": [VENDOR]}))


async def option(client: Client, part_number: str, price_option_id: str | None = None, **where: str) -> dict[str, Any]:
    """The looked-up Part for one price option, picked by its quote (priceOptionId) or by words in its name."""
    parts = [p for p in (await lookup(client, part_number))["parts"] if p["part_number"] == part_number]
    if price_option_id is not None:
        return next(p for p in parts if quoted_as(p) == price_option_id)
    return next(p for p in parts if all(v in p["name"] for v in where.values()))


def quoted_as(part: dict[str, Any]) -> str:
    """The priceOptionId a Part was quoted under, as its notes tell the human (its part_id names the option)."""
    return next(m[1] for note in part["notes"] if (m := re.search(r"\(priceOptionId ([^)]+)\)", note)))


def order_args(po: str, part_id: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"vendor": VENDOR, "po_number": po, "items": [{"part_id": part_id, "quantity": quantity}], **extra}


@pytest.mark.asyncio
async def test_token_is_fetched_once_and_refreshed_after_it_expires(world: World) -> None:
    """One Cognito token serves every call; once it expires (simulator clock) the next call gets a new one."""
    async with Client(world.server) as client:
        await lookup(client, "M3001A")
        await lookup(client, "LNC-10")
        structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "10001"}))
        assert len(token_requests(world)) == 1

        world.clock.advance(timedelta(hours=2))
        found = await lookup(client, "M3538A")
        assert found["parts"] and found["vendor_errors"] == []
    assert len(token_requests(world)) == 2
    assert sim(world).token_fetches == 2
    # The expired token was refused once (401), then the same call went through with the new one.
    statuses = [r.status for r in sim(world).requests if r.path != "/oauth2/token"]
    assert statuses.count(401) == 1
    # Basic client authentication: the secret travels in the header, never in the recorded body.
    assert all(SANDBOX_CLIENT_SECRET not in str(r.body) for r in token_requests(world))


@pytest.mark.asyncio
async def test_lookup_shows_each_price_option_as_a_quoted_part(world: World) -> None:
    start = world.clock.now()
    async with Client(world.server) as client:
        found = await lookup(client, "M3001A", "no-such-part-xyz")
    assert found["not_found"] == ["no-such-part-xyz"]
    parts = {quoted_as(p): p for p in found["parts"]}
    assert len(parts) == len({p["part_id"] for p in found["parts"]}) == 4  # the documents' two, an exchange, a repair
    refurbished, new = parts["OPT-ABC123-XYZ"], parts["OPT-DEF456-UVW"]
    assert refurbished["unit_price"] == {"amount": "1250.00", "currency": "USD"}
    assert new["unit_price"] == {"amount": "2500.00", "currency": "USD"}
    for part in parts.values():
        assert part["vendor"] == VENDOR and part["part_number"] == "M3001A"
        assert part["price_basis"] == "quote"
        # Quotes are valid 30 days from when PartsSource issued them (the sandbox's start).
        expires = datetime.fromisoformat(part["expires_at"])
        assert expires == (start + timedelta(days=30)).replace(microsecond=0)
    assert "Refurbished" in refurbished["name"] and "Buy" in refurbished["name"]
    assert any("warranty: 12 Months" in note for note in refurbished["notes"])
    assert any("New OEM" in note and "24 Months" in note for note in new["notes"])
    exchange = next(p for p in parts.values() if "Exchange" in p["name"])
    assert any("core" in note for note in exchange["notes"])
    repair = next(p for p in parts.values() if "Flat Rate Repair" in p["name"])
    assert any("quantity 1" in note and "serialNumber" in note for note in repair["notes"])


@pytest.mark.asyncio
async def test_preview_confirm_and_place_sends_the_idempotency_key_and_account_ids(world: World) -> None:
    async with Client(world.server) as client:
        part = await option(client, "M3001A", "OPT-ABC123-XYZ")
        args = order_args("PO-PS-1001", part["part_id"], 2, notes="Deliver to biomed, 3rd floor")
        preview = structured(await client.call_tool("place_order", args))
        assert preview["status"] == "confirmation_required"
        shown = preview["preview"]
        assert shown["total"] == {"amount": "2500.00", "currency": "USD"}
        assert shown["price_basis"] == "quote"
        assert shown["options"] == {"shipping_method": "GROUND"}
        assert set(shown["excludes"]) == {"shipping", "tax"}
        assert posts(world) == []  # a preview writes nothing

        placed = await confirm_and_place(client, args)
    assert placed["status"] == "placed" and placed["replayed"] is False
    order = placed["order"]
    assert order["status"] == "ordered" and order["vendor_status"] == "Pending"
    assert order["po_number"] == "PO-PS-1001"
    assert order["total"] == {"amount": "2500.00", "currency": "USD"}
    assert placed["warnings"] == []

    [post] = posts(world)
    key = placed["idempotency_key"]
    assert post.idempotency_key == key and str(uuid.UUID(key)) == key
    body = post.body
    assert body["requesterId"] == 10001 and body["userId"] == 10001 and body["facilityId"] == 20001
    assert body["shippingAddressId"] == 30001 and body["billingAddressId"] == 30002
    assert body["shippingMethod"] == "GROUND"
    assert body["poNumber"] == "PO-PS-1001"
    assert body["notes"] == "Deliver to biomed, 3rd floor"
    assert body["quoteItems"] == [
        {"priceOptionId": "OPT-ABC123-XYZ", "productId": "CAT-456", "quantity": 2, "price": 1250.0}
    ]
    [truth] = sim(world).created_orders
    assert str(truth["orderId"]) == order["order_id"] and truth["idempotencyKey"] == key


@pytest.mark.asyncio
async def test_shipping_method_option_and_unknown_options(world: World) -> None:
    async with Client(world.server) as client:
        part = await option(client, "M1191BL", "OPT-001")
        text = error_text(
            await client.call_tool("place_order", order_args("PO-PS-1002", part["part_id"], options={"rush": True}))
        )
        assert "options.rush" in text and "shipping_method" in text
        placed = await confirm_and_place(
            client, order_args("PO-PS-1002", part["part_id"], options={"shipping_method": "NEXT_DAY_AIR"})
        )
    assert placed["status"] == "placed"
    [post] = posts(world)
    assert post.body["shippingMethod"] == "NEXT_DAY_AIR"


@pytest.mark.asyncio
async def test_quote_price_changed_after_the_preview_is_refused_and_nothing_is_ordered(world: World) -> None:
    """The order must carry the quote's price exactly: a re-priced quote needs a new preview and confirmation."""
    async with Client(world.server) as client:
        part = await option(client, "M3001A", "OPT-ABC123-XYZ")
        args = order_args("PO-PS-2001", part["part_id"])
        preview = structured(await client.call_tool("place_order", args))
        sim(world).set_price("OPT-ABC123-XYZ", "1300.00")
        result = await client.call_tool(
            "place_order",
            {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "1250.00 USD"},
        )
        assert "TOKEN_CONTENT_CHANGED" in error_text(result)
        assert posts(world) == [] and sim(world).created_orders == []

        again = structured(await client.call_tool("place_order", args))
        assert again["preview"]["total"] == {"amount": "1300.00", "currency": "USD"}
        placed = await confirm_and_place(client, args)
    assert placed["order"]["total"] == {"amount": "1300.00", "currency": "USD"}
    assert len(sim(world).created_orders) == 1


@pytest.mark.asyncio
async def test_withdrawn_quote_is_refused_naming_the_part_id(world: World) -> None:
    async with Client(world.server) as client:
        part = await option(client, "M3001A", "OPT-DEF456-UVW")
        sim(world).withdraw("OPT-DEF456-UVW")
        text = error_text(await client.call_tool("place_order", order_args("PO-PS-2002", part["part_id"])))
    assert "items[0].part_id" in text and "no longer offered or has expired" in text
    assert posts(world) == []


@pytest.mark.asyncio
async def test_after_its_quote_expires_a_part_id_orders_the_options_new_quote_at_the_same_price(world: World) -> None:
    """The part_id names the option: once its 30-day quote lapses, the option's new quote (same price) is ordered."""
    async with Client(world.server) as client:
        part = await option(client, "M3001A", "OPT-ABC123-XYZ")
        world.clock.advance(timedelta(days=31))
        fresh = await option(client, "M3001A", condition="Refurbished, Buy")
        assert fresh["part_id"] == part["part_id"] and quoted_as(fresh) != "OPT-ABC123-XYZ"
        assert datetime.fromisoformat(fresh["expires_at"]) > world.clock.now() + timedelta(days=29)
        placed = await confirm_and_place(client, order_args("PO-PS-2003", part["part_id"]))
    assert placed["status"] == "placed"
    [truth] = sim(world).created_orders
    [line] = truth["lineItems"]
    assert (line["priceOptionId"], line["price"]) == (quoted_as(fresh), 1250.0)


@pytest.mark.asyncio
async def test_notes_longer_than_200_characters_are_refused_naming_the_limit(world: World) -> None:
    async with Client(world.server) as client:
        part = await option(client, "M1191BL", "OPT-001")
        text = error_text(
            await client.call_tool("place_order", order_args("PO-PS-3001", part["part_id"], notes="x" * 201))
        )
        assert "notes" in text and "200" in text
        ok = structured(
            await client.call_tool("place_order", order_args("PO-PS-3001", part["part_id"], notes="y" * 200))
        )
        assert ok["status"] == "confirmation_required"
    assert posts(world) == []


@pytest.mark.asyncio
async def test_flat_rate_repair_needs_quantity_one_and_its_required_fields(world: World) -> None:
    async with Client(world.server) as client:
        repair = await option(client, "M3001A", condition="Flat Rate Repair")
        pid = repair["part_id"]
        text = error_text(await client.call_tool("place_order", order_args("PO-PS-4001", pid, 2)))
        assert "items[0].quantity" in text and "must be 1" in text
        text = error_text(await client.call_tool("place_order", order_args("PO-PS-4001", pid, 1)))
        assert "options.required_fields" in text and "serialNumber" in text and "repairReason" in text
        fields = {"repairReason": "No SpO2 reading", "serialNumber": "DE12345678"}
        placed = await confirm_and_place(
            client, order_args("PO-PS-4001", pid, 1, options={"required_fields": {pid: fields}})
        )
    assert placed["status"] == "placed"
    [post] = posts(world)
    assert post.body["quoteItems"][0]["requiredFields"] == fields
    [truth] = sim(world).created_orders
    assert truth["lineItems"][0]["requiredFields"] == fields


@pytest.mark.asyncio
async def test_vendor_4xx_orders_nothing_and_a_corrected_order_goes_through(world: World) -> None:
    """A 422 is not stored under the key: fixing the order and sending it again places it once."""
    async with Client(world.server) as client:
        part = await option(client, "M1191BL", "OPT-001")
        args = order_args("PO-PS-5001", part["part_id"], options={"use_shipping_account": True})
        preview = structured(await client.call_tool("place_order", args))
        text = error_text(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "100.00 USD"},
            )
        )
        assert "options.use_shipping_account" in text and "Nothing was ordered" in text
        assert sim(world).created_orders == []
        placed = await confirm_and_place(client, order_args("PO-PS-5001", part["part_id"]))
    assert placed["status"] == "placed"
    assert [r.status for r in posts(world)] == [422, 200]
    assert len(sim(world).created_orders) == 1


@pytest.mark.asyncio
async def test_server_error_is_looked_up_by_po_and_a_new_key_places_exactly_one_order(world: World) -> None:
    """PartsSource stores a 5xx under its key for 24 h: resending that key only repeats it.

    The documented way out: look the order up by PO number, and only if it is absent send again with a
    new key. The simulator did not create the order, so in the end there must be exactly one.
    """
    sim(world).faults.arm("server_error")
    async with Client(world.server) as client:
        part = await option(client, "M1191BL", "OPT-001")
        args = order_args("PO-PS-6001", part["part_id"], 3)
        result = await confirm_and_place(client, args)
        for _ in range(3):
            if result["status"] == "placed":
                break
            assert result["status"] == "outcome_unknown"
            result = structured(await client.call_tool("place_order", args))
    assert result["status"] == "placed"
    assert len(sim(world).created_orders) == 1

    calls = [r for r in sim(world).requests if r.path in ("/orders", "/orders/search")]
    order_posts = [r for r in calls if r.method == "POST"]
    assert order_posts[0].status == 500 and order_posts[-1].status == 200
    failed_key = order_posts[0].idempotency_key
    assert order_posts[-1].idempotency_key != failed_key
    # The failed key is never sent again: its stored 500 would only come back.
    assert [r.idempotency_key for r in order_posts].count(failed_key) == 1
    # The order was looked up by PO before the new key was used.
    first_new = calls.index(order_posts[-1])
    assert any(r.path == "/orders/search" for r in calls[calls.index(order_posts[0]) : first_new])
    assert result["idempotency_key"] == order_posts[-1].idempotency_key


@pytest.mark.asyncio
async def test_answer_lost_after_commit_is_retried_with_the_same_key_into_one_order(world: World) -> None:
    sim(world).faults.arm("drop_after_commit")
    async with Client(world.server) as client:
        part = await option(client, "M1191BL", "OPT-001")
        placed = await confirm_and_place(client, order_args("PO-PS-7001", part["part_id"]))
    assert placed["status"] == "placed"
    [truth] = sim(world).created_orders
    assert placed["order"]["order_id"] == str(truth["orderId"])
    assert [r.idempotency_key for r in posts(world)] == [placed["idempotency_key"]] * 2


@pytest.mark.asyncio
async def test_rate_limits_are_waited_out_and_reported_when_they_persist(world: World) -> None:
    async with Client(world.server) as client:
        sim(world).faults.arm("rate_limit")
        found = await lookup(client, "LNC-10")
        assert found["parts"] and found["vendor_errors"] == []

        part = await option(client, "M1191BL", "OPT-001")
        args = order_args("PO-PS-8001", part["part_id"])
        preview = structured(await client.call_tool("place_order", args))
        sim(world).faults.arm("rate_limit_order")
        placed = structured(
            await client.call_tool(
                "place_order",
                {**args, "confirmation_token": preview["confirmation_token"], "confirmed_total": "100.00 USD"},
            )
        )
        assert placed["status"] == "placed"
        assert [r.status for r in posts(world)] == [429, 200]  # a 429 is not stored: same key, one order
        assert len({r.idempotency_key for r in posts(world)}) == 1

        sim(world).faults.arm("rate_limit", 5)
        found = await lookup(client, "M3538A")
    [failure] = found["vendor_errors"]
    assert failure["vendor"] == VENDOR and failure["code"] == "HTTP_429"
    assert len(sim(world).created_orders) == 1


@pytest.mark.asyncio
async def test_wrong_api_key_is_an_auth_error_that_shows_no_secret(world: World) -> None:
    sim(world).api_keys = frozenset({"some-other-key"})
    async with Client(world.server) as client:
        found = await lookup(client, "M1191BL")
    [failure] = found["vendor_errors"]
    assert "x-api-key" in failure["message"]
    assert SANDBOX_API_KEY not in failure["message"] and SANDBOX_CLIENT_SECRET not in failure["message"]


@pytest.mark.asyncio
async def test_get_order_maps_every_status_and_keeps_the_raw_one(world: World) -> None:
    expected = {"10001": ("completed", "Completed"), "10002": ("in_progress", "EOrdered")}
    expected |= {"10003": ("in_progress", "Research"), "10004": ("ordered", "Pending")}
    async with Client(world.server) as client:
        for order_id, (status, raw) in expected.items():
            order = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": order_id}))["order"]
            assert (order["status"], order["vendor_status"]) == (status, raw)
            assert order["source"] == "vendor" and order["lines"]
        first = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "10001"}))["order"]
        assert first["po_number"] == "PO-456"
        assert first["total"] == {"amount": "692.00", "currency": "USD"}

        sim(world).set_status(10004, "Completed")
        order = structured(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "10004"}))["order"]
        assert order["status"] == "completed"

        assert "NOT_FOUND" in error_text(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "99999"}))
        # Another organisation's order: PartsSource answers 403 across tenants.
        assert "VENDOR_AUTH" in error_text(await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "10006"}))
        # A PO number given as order_id is recognised: the answer is that PO's order, and says so.
        by_po = await client.call_tool("get_order", {"vendor": VENDOR, "order_id": "PO-456"})
        assert structured(by_po)["order"]["po_number"] == "PO-456"
        assert "is a PO number, not an order id" in by_po.content[0].text  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_list_purchase_orders_by_status_po_and_dates(world: World) -> None:
    async with Client(world.server) as client:

        async def listed(**filters: Any) -> list[str]:
            result = structured(await client.call_tool("list_purchase_orders", {"vendor": VENDOR, **filters}))
            assert result["vendor_errors"] == []
            return [o["order_id"] for o in result["orders"]]

        # The default window is the last 365 days: 10005 is older, 10006 belongs to another organisation.
        assert await listed() == ["10004", "10003", "10002", "10001"]
        assert await listed(status="in_progress") == ["10003", "10002"]
        assert await listed(status="completed") == ["10001"]
        assert await listed(status="ordered") == ["10004"]
        assert await listed(status="cancelled") == []
        # A PO number needs no date range, so old orders are found by it.
        assert await listed(po_number="po-2024-0911") == ["10005"]
        assert await listed(po_number="PO-456") == ["10001"]
        assert await listed(po_number="NETWORK-7781") == []
        now = world.clock.now()
        window = {"created_after": (now - timedelta(days=30)).isoformat(), "created_before": now.isoformat()}
        assert await listed(**window) == ["10004", "10003", "10002"]
        old = {
            "created_after": (now - timedelta(days=500)).isoformat(),
            "created_before": (now - timedelta(days=100)).isoformat(),
        }
        assert await listed(**old) == ["10001", "10005"]


@pytest.mark.asyncio
async def test_list_pages_through_partssource_results(world: World) -> None:
    """GET search endpoints return at most 100 a page: the client follows hasMore."""
    for n in range(130):
        sim(world).add_order(f"HIST-{n:04d}", "Completed", days_ago=30 + n / 10)
    async with Client(world.server) as client:
        args = {"vendor": VENDOR, "status": "completed", "limit": 100}
        first = structured(await client.call_tool("list_purchase_orders", args))
        searches = [r for r in sim(world).requests if r.path == "/orders/search"]
        assert len(searches) == 2  # 131 matches: two vendor pages of at most 100
        second = structured(await client.call_tool("list_purchase_orders", {**args, "cursor": first["next_cursor"]}))
    ids = [o["order_id"] for o in first["orders"] + second["orders"]]
    assert len(ids) == len(set(ids)) == 131  # the 130 plus seeded 10001, no repeats
    assert second["next_cursor"] is None


@pytest.mark.asyncio
async def test_list_vendors_declares_partssource_capabilities(world: World) -> None:
    async with Client(world.server) as client:
        result = structured(await client.call_tool("list_vendors", {}))
    [info] = [v for v in result["vendors"] if v["vendor"] == VENDOR]
    capabilities = info["capabilities"]
    assert capabilities["idempotency_key"] and capabilities["find_by_po"] and capabilities["replays_failures"]
    assert capabilities["quote"] and capabilities["get"] and capabilities["list"]


# -- error mapping, one response at a time (no server needed) -------------------------------------


def _client() -> PartsSourceClient:
    settings = vendor_settings(Sandbox().vendors()[VENDOR].settings)
    assert isinstance(settings, PartsSourceSettings)
    return create(VENDOR, settings, httpx2.AsyncClient())


def _response(status: int, method: str, path: str, body: Any = None, **headers: str) -> httpx2.Response:
    request = httpx2.Request(method, "http://partssource.sandbox.invalid/customer/api" + path)
    return httpx2.Response(status, json=body, headers=headers, request=request)


def test_a_5xx_on_post_orders_may_have_committed_and_is_not_retried_under_its_key() -> None:
    error = _client()._map_error(_response(500, "POST", "/orders", {"title": "Internal Server Error"}), None)
    assert isinstance(error, VendorUnavailable)
    assert error.maybe_committed and not error.not_processed and not error.retryable
    assert "by PO number" in error.message
    read = _client()._map_error(_response(503, "GET", "/orders/10001"), None)
    assert isinstance(read, VendorUnavailable) and read.not_processed and read.retryable


def test_rate_limit_wait_comes_from_retry_after_else_from_the_reset_time() -> None:
    client = _client()
    error = client._map_error(_response(429, "GET", "/orders/search", **{"Retry-After": "7"}), None)
    assert isinstance(error, VendorRateLimited) and error.retry_after == 7
    reset = str(int(time.time()) + 30)
    error = client._map_error(_response(429, "GET", "/orders/search", **{"X-RateLimit-Reset": reset}), None)
    assert isinstance(error, VendorRateLimited) and error.retry_after is not None and 25 < error.retry_after <= 30


def test_both_error_envelopes_name_the_field() -> None:
    client = _client()
    problem = {
        "type": "https://api.partssource.com/errors/validation-error",
        "title": "Bad Request",
        "status": 400,
        "detail": "One or more validation errors occurred.",
        "errors": ["quoteItems[1].quantity: must be an integer between 1 and 99999"],
    }
    error = client._map_error(_response(400, "POST", "/orders"), problem)
    assert isinstance(error, VendorInvalidRequest) and error.field == "items[1].quantity"
    controller = {"success": False, "errors": ["quoteItems[0].price: 1300.0 does not match the quoted price"]}
    error = client._map_error(_response(422, "POST", "/orders"), controller)
    assert isinstance(error, VendorInvalidRequest) and error.field == "items[0].part_id"
    assert "Look the part up again" in error.message
    config = {"success": False, "errors": ["shippingAddressId: 30009 is not a shipping address on your profile"]}
    error = client._map_error(_response(422, "POST", "/orders"), config)
    assert "vendors.partssource.shipping_address_id" in error.message
    # ASP.NET-style validation problems list errors by field.
    error = client._map_error(_response(400, "POST", "/orders"), {"errors": {"Notes": ["too long"]}})
    assert isinstance(error, VendorInvalidRequest) and error.field == "notes"


def test_auth_not_found_and_conflicts() -> None:
    client = _client()
    assert isinstance(
        client._map_error(_response(401, "GET", "/orders/1"), {"message": "Unauthorized"}), VendorAuthError
    )
    assert isinstance(client._map_error(_response(403, "GET", "/orders/1"), {"message": "Forbidden"}), VendorAuthError)
    assert isinstance(client._map_error(_response(404, "GET", "/orders/1"), None), VendorNotFound)
    in_flight = client._map_error(_response(409, "POST", "/orders"), {"detail": "still being processed"})
    assert isinstance(in_flight, VendorConflict) and in_flight.maybe_committed and in_flight.retryable
    reused = client._map_error(_response(409, "POST", "/orders"), {"detail": "already used with a different body"})
    assert isinstance(reused, VendorConflict) and reused.maybe_committed and not reused.retryable


# -- answers in the other shapes the documents leave open read as the simulator's do --------------


async def _both(world: World, respell: Callable[[str, Any], Any], call: Callable[[PartsSourceClient], Any]) -> Any:
    """`call` against the simulator as it is, then as re-spelled: (plain answer, re-spelled answer, changed paths)."""
    vendor = world.sandbox.vendors()[VENDOR]
    settings = vendor_settings(vendor.settings)
    assert isinstance(settings, PartsSourceSettings)
    respelled = Respelled(world.sandbox.vendors()[VENDOR], respell)
    answers = []
    for transport in (vendor.transport, respelled):
        async with httpx2.AsyncClient(transport=transport) as http:
            answers.append(await call(create(VENDOR, settings, http)))
    return answers[0], answers[1], respelled.changed


def _option_respelled(option: dict[str, Any]) -> dict[str, Any]:
    """Other spellings, a decimal-string price, required fields as bare names and a null the client must skip."""
    spelled = {k: v for k, v in option.items() if k not in ("priceOptionId", "price", "purchaseChoice")}
    spelled |= {"priceOptionID": option["priceOptionId"], "priceOptionId": None, "unitPrice": str(option["price"])}
    spelled |= {"purchaseType": option["purchaseChoice"], "quantityAvailable": "3"}
    if "requiredFields" in option:
        spelled["requiredFields"] = [field["name"] for field in option["requiredFields"]]
    return spelled


@pytest.mark.asyncio
async def test_catalog_answers_in_other_spellings_and_with_junk_entries_read_as_before(world: World) -> None:
    def respell(path: str, body: Any) -> Any:
        if path == "/catalog/search":  # a bare list, with entries nobody could use
            return {**body, "data": [*body["data"]["items"], "junk", 7, {"description": "no product id"}]}
        if path == "/catalog/detail":
            data = body["data"]
            options = [_option_respelled(o) for o in data["options"]] + ["junk", {"condition": "no option id"}]
            product = {k: v for k, v in data.items() if k not in ("productId", "partNumber", "options")}
            product |= {"id": data["productId"], "oemPartNumber": data["partNumber"], "partNumber": None}
            return {**body, "data": {**product, "options": options}}
        return body

    plain, respelled, changed = await _both(world, respell, lambda client: client.lookup(["M3001A", "LNC-10"]))
    assert {"/catalog/search", "/catalog/detail"} <= set(changed)
    # The one value added on purpose: a stock count, as a digit string.
    expected = [part.model_copy(update={"available_quantity": 3}) for part in plain.parts]
    assert respelled.parts == expected and respelled.not_found == plain.not_found == [] and len(expected) == 6
    repair = next(p for p in respelled.parts if "Flat Rate Repair" in p.name)
    assert any("repairReason" in note and "serialNumber" in note for note in repair.notes)


@pytest.mark.asyncio
async def test_order_answers_in_other_spellings_read_as_before(world: World) -> None:
    def order(raw: dict[str, Any]) -> dict[str, Any]:
        lines = [{**line, "price": str(line["price"]), "quantity": str(line["quantity"])} for line in raw["lineItems"]]
        spelled = {k: v for k, v in raw.items() if k not in ("orderId", "lineItems", "total")}
        return spelled | {"orderId": str(raw["orderId"]), "lines": lines, "orderTotal": str(raw["total"])}

    def respell(path: str, body: Any) -> Any:
        if path == "/orders/search":  # results under another name; hits without an id are skipped
            page = body["data"]
            hits = [order(o) for o in page["items"]] + [{"status": "Pending"}, 7]
            return {**body, "data": {"results": hits, "pagination": page["pagination"]}}
        if path.startswith("/orders/"):  # no wrapper at all
            return order(body["data"])
        return body

    plain, respelled, changed = await _both(world, respell, lambda client: client.get_order("10004"))
    assert changed == ["/orders/10004"] and respelled == plain and str(plain.total) == "914.00 USD"
    plain, respelled, changed = await _both(world, respell, lambda client: client.list_orders(OrderQuery(), 50))
    assert changed == ["/orders/search"] and respelled == plain and len(plain) == 4


@pytest.mark.asyncio
async def test_answers_that_cannot_be_read_are_bad_responses_that_show_no_secret(world: World) -> None:
    def respell(path: str, body: Any) -> Any:
        if path == "/orders/10001":  # the wrapper, reporting a failure with a 200
            return {"success": False, "data": None, "errors": ["Order service unavailable"], "correlationId": "c-1"}
        if path == "/orders/10002":
            return {**body, "data": ["not", "an", "order"]}
        if path == "/orders/10003":
            return {**body, "data": {k: v for k, v in body["data"].items() if k != "orderId"}}
        return body

    failures = []
    for order_id in ("10001", "10002", "10003"):
        with pytest.raises(VendorBadResponse) as refused:
            await _both(world, respell, lambda client, order_id=order_id: client.get_order(order_id))
        failures.append(str(refused.value))
    assert "Order service unavailable" in failures[0]
    assert "could not be read" in failures[1] and "orderId" in failures[2]
    assert all(SANDBOX_API_KEY not in f and SANDBOX_CLIENT_SECRET not in f for f in failures)
