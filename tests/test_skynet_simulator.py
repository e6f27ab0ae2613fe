"""Contract tests of the Skynet Parts simulator on its own.

Expected behaviour comes from the vendor document (seeds/000) and docs/vendors.md section 1;
where the vendor is silent, the test docstring says the behaviour is the simulator's own choice.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.sandbox import Faults, ManualClock, Sandbox
from parts_mcp.sandbox._faults import SimulatorTransport
from parts_mcp.sandbox.skynet import CATALOG, SANDBOX_API_KEY, SkynetSimulator

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


def _client(sandbox: Sandbox, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    vendor = sandbox.vendors()["skynet"]
    return httpx2.AsyncClient(
        transport=vendor.transport,
        base_url=vendor.base_url,
        headers=AUTH if headers is None else headers,
    )


async def _part_ids(client: httpx2.AsyncClient, *part_numbers: str) -> dict[str, str]:
    response = await client.post("/catalog", json={"part_numbers": list(part_numbers)})
    assert response.status_code == 200
    return {part["part_number"]: part["part_id"] for part in response.json()["found_parts"]}


async def _order(
    client: httpx2.AsyncClient, key: str | None, items: list[dict[str, Any]], po_number: str = "ACME-PO-4471"
) -> httpx2.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/orders", json={"items": items, "po_number": po_number}, headers=headers)


def _error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False
    return body["error"]


# -- catalog ----------------------------------------------------------------------------------


def test_catalog_seeds_the_vendor_examples_and_discounts_most_parts() -> None:
    """The docs' found example is in the catalog and its not_found example is not."""
    numbers = {part.part_number for part in CATALOG}
    assert len(CATALOG) >= 20
    assert {"MS21042L3", "AN960C10", "MS20995C32", "NAS1149F0363P"} <= numbers
    assert "AN3-5A" not in numbers
    assert all(part.b2b_price <= part.list_price for part in CATALOG)
    assert sum(part.b2b_price < part.list_price for part in CATALOG) > len(CATALOG) // 2
    assert any(part.status != "ACTIVE" and part.stock == 0 for part in CATALOG)


@pytest.mark.asyncio
async def test_lookup_by_number_returns_documented_shape_and_echoes_not_found() -> None:
    async with _client(Sandbox()) as client:
        response = await client.post("/catalog", json={"part_numbers": ["ms21042l3", "AN3-5A"]})

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["not_found"] == ["AN3-5A"]
    assert body["summary"] == {"total_requested": 2, "found": 1, "not_found": 1}
    [part] = body["found_parts"]
    part_id = part.pop("part_id")
    assert part_id.startswith("skynet_part_")
    assert len(part_id) - len("skynet_part_") == 100
    assert part == {
        "part_number": "MS21042L3",
        "title": "Nut, Self-Locking, Reduced Hex, 10-32 UNJF, Cad Plated (Pack of 25)",
        "vendor": "Cascade Aero Fasteners",
        "available_stock": 87,
        "price": {"amount": "12.40", "currency": "USD"},
        "status": "ACTIVE",
    }


@pytest.mark.asyncio
async def test_lookup_by_name_matches_title_substrings_and_returns_each_part_once() -> None:
    async with _client(Sandbox()) as client:
        response = await client.post(
            "/catalog",
            json={"part_numbers": ["MS20995C32"], "part_names": ["SAFETY WIRE", "lockwire", "flux capacitor"]},
        )

    body = response.json()
    assert [part["part_number"] for part in body["found_parts"]] == ["MS20995C32", "MS20995C20"]
    assert body["not_found"] == ["flux capacitor"]
    assert body["summary"] == {"total_requested": 4, "found": 3, "not_found": 1}


@pytest.mark.asyncio
async def test_lookup_of_nothing_but_unknown_parts_is_still_a_success() -> None:
    async with _client(Sandbox()) as client:
        response = await client.post("/catalog", json={"part_numbers": ["AN3-5A"]})

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert response.json()["found_parts"] == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "part_numbers"),
        ({"part_numbers": [], "part_names": []}, "part_numbers"),
        ({"part_numbers": "MS21042L3"}, "part_numbers"),
        ({"part_numbers": ["MS21042L3", 7]}, "part_numbers[1]"),
        ({"part_names": [" "]}, "part_names[0]"),
        ([], "body"),
    ],
)
async def test_lookup_validation_failures_name_the_field(body: Any, field: str) -> None:
    async with _client(Sandbox()) as client:
        response = await client.post("/catalog", json=body)

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "VALIDATION_FAILED"
    assert field in error["message"]
    assert error["details"] == {"field": field}


@pytest.mark.asyncio
async def test_lookup_accepts_50_entries_in_total_and_refuses_51() -> None:
    numbers = [f"PN-{i}" for i in range(30)]
    names = [f"name {i}" for i in range(20)]
    async with _client(Sandbox()) as client:
        at_limit = await client.post("/catalog", json={"part_numbers": numbers, "part_names": names})
        over_limit = await client.post("/catalog", json={"part_numbers": numbers, "part_names": [*names, "one more"]})

    assert at_limit.status_code == 200
    assert at_limit.json()["summary"]["total_requested"] == 50
    assert over_limit.status_code == 400
    assert _error(over_limit)["code"] == "VALIDATION_FAILED"


@pytest.mark.asyncio
async def test_lookup_body_must_be_json() -> None:
    async with _client(Sandbox()) as client:
        wrong_type = await client.post(
            "/catalog", content=b"part_numbers=MS21042L3", headers={"Content-Type": "text/plain"}
        )
        broken = await client.post("/catalog", content=b"{", headers={"Content-Type": "application/json"})

    assert (wrong_type.status_code, _error(wrong_type)["code"]) == (400, "VALIDATION_FAILED")
    assert (broken.status_code, _error(broken)["code"]) == (400, "VALIDATION_FAILED")


@pytest.mark.asyncio
async def test_armed_upstream_error_fails_one_lookup_with_502() -> None:
    sandbox = Sandbox()
    sandbox.skynet.faults.arm("upstream_error")
    async with _client(sandbox) as client:
        failed = await client.post("/catalog", json={"part_numbers": ["MS21042L3"]})
        retried = await client.post("/catalog", json={"part_numbers": ["MS21042L3"]})

    assert failed.status_code == 502
    assert _error(failed)["code"] == "UPSTREAM_ERROR"
    assert retried.status_code == 200


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": SANDBOX_API_KEY},
        {"Authorization": "Bearer pk_live_abc"},
        {"Authorization": "Basic c2tfbGl2ZV9hYmM="},
        {"Authorization": "Bearer sk_live_" + "x" * 42},
    ],
    ids=["missing", "no-scheme", "wrong-prefix", "wrong-scheme", "unknown"],
)
@pytest.mark.parametrize("path", ["/catalog", "/orders"])
async def test_missing_malformed_or_unknown_key_is_invalid_api_key(headers: dict[str, str], path: str) -> None:
    async with _client(Sandbox(), headers) as client:
        response = await client.post(path, json={"part_numbers": ["MS21042L3"]})

    assert response.status_code == 401
    assert _error(response)["code"] == "INVALID_API_KEY"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/catalog", "/orders"])
async def test_revoked_key_is_key_revoked(path: str) -> None:
    revoked = "sk_live_revoked_" + "r" * 34
    simulator = SkynetSimulator(revoked_keys=[revoked])
    transport = SimulatorTransport(simulator.app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://skynet.test") as client:
        response = await client.post(path, json={}, headers={"Authorization": f"Bearer {revoked}"})

    assert response.status_code == 401
    assert _error(response)["code"] == "KEY_REVOKED"


def test_keys_that_could_never_authenticate_are_refused_up_front() -> None:
    with pytest.raises(ValueError):
        SkynetSimulator(api_keys=["not-a-skynet-key"])


# -- orders -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_order_is_a_201_draft_priced_at_the_b2b_price() -> None:
    sandbox = Sandbox(clock=ManualClock(start=1_767_225_600.0).now)  # 2026-01-01T00:00:00Z
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3", "MS20995C32")
        response = await client.post(
            "/orders",
            json={
                "items": [
                    {"part_id": ids["MS21042L3"], "quantity": 10},
                    {"part_id": ids["MS20995C32"], "quantity": 2},
                ],
                "po_number": "ACME-PO-4471",
                "notes": "Deliver to hangar 3",
            },
            headers={"Idempotency-Key": "ACME-PO-4471-2026-01-01"},
        )

    assert response.status_code == 201
    order = response.json()["order"]
    order_id = order.pop("order_id")
    assert order_id.startswith("skynet_order_")
    # 12.40 less 12% is 10.912, which rounds to 10.91; safety wire carries no discount.
    assert order == {
        "status": "draft",
        "po_number": "ACME-PO-4471",
        "line_items": [
            {
                "part_number": "MS21042L3",
                "title": "Nut, Self-Locking, Reduced Hex, 10-32 UNJF, Cad Plated (Pack of 25)",
                "quantity": 10,
                "unit_price": {"amount": "10.91", "currency": "USD"},
                "line_total": {"amount": "109.10", "currency": "USD"},
            },
            {
                "part_number": "MS20995C32",
                "title": "Safety Wire, Lockwire, 0.032 in, CRES, 1 lb Spool",
                "quantity": 2,
                "unit_price": {"amount": "38.50", "currency": "USD"},
                "line_total": {"amount": "77.00", "currency": "USD"},
            },
        ],
        "total": {"amount": "186.10", "currency": "USD"},
        "created_at": "2026-01-01T00:00:00Z",
    }
    [record] = sandbox.skynet.orders
    assert record["order_id"] == order_id
    assert record["idempotency_key"] == "ACME-PO-4471-2026-01-01"
    assert record["notes"] == "Deliver to hangar 3"
    assert [(item["part_number"], item["quantity"]) for item in record["items"]] == [
        ("MS21042L3", 10),
        ("MS20995C32", 2),
    ]
    assert sandbox.skynet.stock["MS21042L3"] == 77
    assert sandbox.skynet.stock["MS20995C32"] == 40


@pytest.mark.asyncio
async def test_every_amount_is_exact_to_the_cent() -> None:
    """Simulator's own pricing: the B2B price is list less a whole-percent discount, rounded half up."""
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        ids = await _part_ids(client, *(part.part_number for part in CATALOG if part.stock >= 3))
        items = [{"part_id": part_id, "quantity": 3} for part_id in ids.values()]
        response = await _order(client, "all-parts", items)

    order = response.json()["order"]
    prices = {part.part_number: part.b2b_price for part in CATALOG}
    for line in order["line_items"]:
        assert Decimal(line["unit_price"]["amount"]) == prices[line["part_number"]]
        assert Decimal(line["line_total"]["amount"]) == prices[line["part_number"]] * 3
    assert Decimal(order["total"]["amount"]) == sum(
        Decimal(line["line_total"]["amount"]) for line in order["line_items"]
    )


@pytest.mark.asyncio
async def test_order_without_idempotency_key_is_refused() -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        response = await _order(client, None, [{"part_id": ids["MS21042L3"], "quantity": 1}])

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "VALIDATION_FAILED"
    assert "Idempotency-Key" in error["message"]
    assert sandbox.skynet.orders == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"po_number": "PO-1"}, "items"),
        ({"items": [], "po_number": "PO-1"}, "items"),
        ({"items": "MS21042L3", "po_number": "PO-1"}, "items"),
        ({"items": ["MS21042L3"], "po_number": "PO-1"}, "items[0]"),
        ({"items": [{"quantity": 1}], "po_number": "PO-1"}, "items[0].part_id"),
        ({"items": [{"part_id": "P"}], "po_number": "PO-1"}, "items[0].quantity"),
        ({"items": [{"part_id": "P", "quantity": 0}], "po_number": "PO-1"}, "items[0].quantity"),
        (
            {"items": [{"part_id": "P", "quantity": 1}, {"part_id": "P", "quantity": -2}], "po_number": "PO-1"},
            "items[1].quantity",
        ),
        ({"items": [{"part_id": "P", "quantity": "2"}], "po_number": "PO-1"}, "items[0].quantity"),
        ({"items": [{"part_id": "P", "quantity": 1.5}], "po_number": "PO-1"}, "items[0].quantity"),
        ({"items": [{"part_id": "P", "quantity": True}], "po_number": "PO-1"}, "items[0].quantity"),
        ({"items": [{"part_id": "P", "quantity": 1}]}, "po_number"),
        ({"items": [{"part_id": "P", "quantity": 1}], "po_number": ""}, "po_number"),
        ({"items": [{"part_id": "P", "quantity": 1}], "po_number": 4471}, "po_number"),
        ({"items": [{"part_id": "P", "quantity": 1}], "po_number": "PO-1", "notes": 5}, "notes"),
    ],
)
async def test_order_validation_failures_name_the_field(body: dict[str, Any], field: str) -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        response = await client.post("/orders", json=body, headers={"Idempotency-Key": "k"})

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "VALIDATION_FAILED"
    assert error["message"].startswith(field)
    assert error["details"] == {"field": field}
    assert sandbox.skynet.orders == []


@pytest.mark.asyncio
async def test_unknown_part_token_is_invalid_part_token_listing_the_bad_ids() -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        items = [{"part_id": ids["MS21042L3"], "quantity": 1}, {"part_id": "skynet_part_forged", "quantity": 1}]
        response = await _order(client, "k", items)

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "INVALID_PART_TOKEN"
    assert error["details"] == {"part_ids": ["skynet_part_forged"]}
    assert sandbox.skynet.orders == []


@pytest.mark.asyncio
async def test_part_token_expires_after_its_ttl() -> None:
    """The docs say to look parts up again if not ordered within about an hour."""
    clock = ManualClock()
    sandbox = Sandbox(clock=clock.now)
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3", "AN960C10")
        clock.advance(3599)
        fresh = await _order(client, "in-time", [{"part_id": ids["MS21042L3"], "quantity": 1}])
        clock.advance(1)
        expired = await _order(client, "too-late", [{"part_id": ids["AN960C10"], "quantity": 1}])

    assert fresh.status_code == 201
    assert expired.status_code == 400
    assert _error(expired)["code"] == "INVALID_PART_TOKEN"
    assert len(sandbox.skynet.orders) == 1


@pytest.mark.asyncio
async def test_same_key_and_body_replays_the_original_order() -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        items = [{"part_id": ids["MS21042L3"], "quantity": 5}]
        first = await _order(client, "PO-1-2026-01-01", items)
        # Same body with its keys in another order: still the same body.
        again = await client.post(
            "/orders",
            content=b'{"po_number": "ACME-PO-4471", "items": [{"quantity": 5, "part_id": "%s"}]}'
            % ids["MS21042L3"].encode(),
            headers={"Idempotency-Key": "PO-1-2026-01-01", "Content-Type": "application/json"},
        )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(sandbox.skynet.orders) == 1
    assert sandbox.skynet.stock["MS21042L3"] == 82


@pytest.mark.asyncio
async def test_same_key_with_a_different_body_is_idempotency_conflict() -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        first = await _order(client, "PO-1", [{"part_id": ids["MS21042L3"], "quantity": 5}])
        conflict = await _order(client, "PO-1", [{"part_id": ids["MS21042L3"], "quantity": 6}])

    assert first.status_code == 201
    assert conflict.status_code == 409
    assert _error(conflict)["code"] == "IDEMPOTENCY_CONFLICT"
    assert len(sandbox.skynet.orders) == 1
    assert sandbox.skynet.stock["MS21042L3"] == 82


@pytest.mark.asyncio
async def test_insufficient_inventory_lists_short_items_and_creates_nothing() -> None:
    """The docs say the response lists which items; the details shape is the simulator's choice."""
    sandbox = Sandbox()
    sandbox.skynet.set_stock("AN960C10", 4)
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3", "AN960C10", "AN310-3")
        items = [
            {"part_id": ids["MS21042L3"], "quantity": 87},
            {"part_id": ids["AN960C10"], "quantity": 3},
            {"part_id": ids["AN960C10"], "quantity": 2},  # with the line above, one more than in stock
            {"part_id": ids["AN310-3"], "quantity": 1},  # discontinued, none left
        ]
        response = await _order(client, "k", items)

    assert response.status_code == 409
    error = _error(response)
    assert error["code"] == "INSUFFICIENT_INVENTORY"
    assert error["details"] == {
        "items": [
            {"part_id": ids["AN960C10"], "part_number": "AN960C10", "requested": 5, "available": 4},
            {"part_id": ids["AN310-3"], "part_number": "AN310-3", "requested": 1, "available": 0},
        ]
    }
    assert sandbox.skynet.orders == []
    assert sandbox.skynet.stock["MS21042L3"] == 87


@pytest.mark.asyncio
async def test_order_failed_creates_nothing_and_is_not_remembered_under_the_key() -> None:
    """ORDER_FAILED is documented as safe to retry, so a retry with the same key must place the order."""
    sandbox = Sandbox()
    sandbox.skynet.faults.arm("order_failed")
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        items = [{"part_id": ids["MS21042L3"], "quantity": 1}]
        failed = await _order(client, "k", items)
        assert sandbox.skynet.orders == []
        retried = await _order(client, "k", items)

    assert failed.status_code == 502
    assert _error(failed)["code"] == "ORDER_FAILED"
    assert retried.status_code == 201
    assert len(sandbox.skynet.orders) == 1


@pytest.mark.asyncio
async def test_drop_after_commit_places_the_order_but_the_client_sees_a_transport_error() -> None:
    sandbox = Sandbox()
    sandbox.skynet.faults.arm("drop_after_commit")
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        items = [{"part_id": ids["MS21042L3"], "quantity": 2}]
        with pytest.raises(httpx2.RemoteProtocolError):
            await _order(client, "k", items)
        [record] = sandbox.skynet.orders
        assert sandbox.skynet.stock["MS21042L3"] == 85
        retried = await _order(client, "k", items)

    assert retried.status_code == 201
    assert retried.json()["order"]["order_id"] == record["order_id"]
    assert len(sandbox.skynet.orders) == 1
    assert sandbox.skynet.stock["MS21042L3"] == 85
    assert [(r.path, r.status, r.dropped) for r in sandbox.skynet.requests] == [
        ("/catalog", 200, False),
        ("/orders", 201, True),
        ("/orders", 201, False),
    ]


@pytest.mark.asyncio
async def test_validation_comes_before_idempotency_replay() -> None:
    """The order of checks is: auth, validation, part tokens, idempotency, faults, stock."""
    sandbox = Sandbox()
    sandbox.skynet.faults.arm("order_failed")
    async with _client(sandbox) as client:
        ids = await _part_ids(client, "MS21042L3")
        invalid = await _order(client, "k", [{"part_id": ids["MS21042L3"], "quantity": 0}])
        bad_token = await _order(client, "k", [{"part_id": "skynet_part_nope", "quantity": 1}])
        failed = await _order(client, "k", [{"part_id": ids["MS21042L3"], "quantity": 1}])

    assert [_error(r)["code"] for r in (invalid, bad_token, failed)] == [
        "VALIDATION_FAILED",
        "INVALID_PART_TOKEN",
        "ORDER_FAILED",
    ]


@pytest.mark.asyncio
async def test_latency_delays_but_still_answers() -> None:
    sandbox = Sandbox()
    sandbox.skynet.faults.latency = 0.001
    async with _client(sandbox) as client:
        response = await client.post("/catalog", json={"part_numbers": ["MS21042L3"]})

    assert response.status_code == 200


@pytest.mark.asyncio
async def test_requests_are_recorded_with_their_idempotency_key_and_body() -> None:
    sandbox = Sandbox()
    async with _client(sandbox) as client:
        await _order(client, "k-1", [{"part_id": "skynet_part_nope", "quantity": 1}], po_number="PO-9")
        await client.get("/_sandbox/orders")

    [recorded] = sandbox.skynet.requests
    assert (recorded.method, recorded.path, recorded.idempotency_key, recorded.status) == (
        "POST",
        "/orders",
        "k-1",
        400,
    )
    assert recorded.body == {"items": [{"part_id": "skynet_part_nope", "quantity": 1}], "po_number": "PO-9"}


# -- routes and admin -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_route_is_not_found_in_the_error_envelope() -> None:
    async with _client(Sandbox()) as client:
        missing = await client.post("/orders/skynet_order_1/cancel", json={})
        wrong_method = await client.get("/orders")

    assert missing.status_code == 404
    assert _error(missing)["code"] == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.asyncio
async def test_admin_routes_arm_faults_and_show_the_ground_truth() -> None:
    sandbox = Sandbox()
    async with _client(sandbox, headers={}) as client:
        armed = await client.post("/_sandbox/faults", json={"latency": 0.5, "arm": {"order_failed": 2}})
        cleared = await client.post("/_sandbox/faults", json={"clear": True, "arm": {"upstream_error": 1}})
        typo = await client.post("/_sandbox/faults", json={"arm": {"order_fail": 1}})
        orders = await client.get("/_sandbox/orders")

    assert armed.json() == {"latency": 0.5, "armed": {"order_failed": 2}}
    assert cleared.json() == {"latency": 0.0, "armed": {"upstream_error": 1}}
    assert typo.status_code == 400
    assert sandbox.skynet.faults.armed == {"upstream_error": 1}
    assert orders.json() == {"orders": []}


def test_faults_fire_as_many_times_as_armed() -> None:
    faults = Faults(names=frozenset({"boom"}))
    faults.arm("boom", 2)

    assert [faults.take("boom") for _ in range(3)] == [True, True, False]
    with pytest.raises(ValueError):
        faults.arm("bang")


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=100.0)
    clock.advance(3600)

    assert clock.now() == 3700.0


# -- served over real HTTP ---------------------------------------------------------------------


@contextmanager
def _serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port in a daemon thread; yields the base URL."""
    started = threading.Event()

    async def with_startup_signal(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                started.set()
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn does means a connection made between startup and accept() waits in
    # the backlog instead of being refused.
    sock.listen()
    config = uvicorn.Config(with_startup_signal, lifespan="on", http="h11", ws="none", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert started.wait(timeout=10), "uvicorn did not start"
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.asyncio
async def test_sandbox_served_over_loopback_http_looks_up_and_drops_connections() -> None:
    sandbox = Sandbox()
    with _serve(sandbox.asgi_app()) as root:
        async with httpx2.AsyncClient(base_url=root, trust_env=False, timeout=10) as client:
            index = (await client.get("/")).json()
            skynet = index["vendors"]["skynet"]
            client.base_url = httpx2.URL(skynet["base_url"])
            client.headers["Authorization"] = f"Bearer {skynet['api_key']}"

            lookup = await client.post("/catalog", json={"part_numbers": ["MS21042L3", "AN3-5A"]})
            part_id = lookup.json()["found_parts"][0]["part_id"]
            armed = await client.post("/_sandbox/faults", json={"arm": {"drop_after_commit": 1}})
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                await _order(client, "over-tcp", [{"part_id": part_id, "quantity": 1}])
            ground_truth = (await client.get("/_sandbox/orders")).json()

    assert skynet["base_url"] == f"{root}/skynet/api/b2b"
    assert skynet["api_key"] == SANDBOX_API_KEY
    assert lookup.status_code == 200
    assert lookup.json()["not_found"] == ["AN3-5A"]
    assert armed.status_code == 200
    [order] = ground_truth["orders"]
    assert order["idempotency_key"] == "over-tcp"
    assert sandbox.skynet.orders == ground_truth["orders"]
