"""The Keyloop simulator on its own, and the Keyloop client against it and against the seed's examples.

The simulator must answer as Keyloop documents (seeds/002, vendors.md section 3); the client must
read every shape the documents allow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import httpx2
import pytest
import pytest_asyncio

from parts_mcp.domain import OrderItem, OrderStatus
from parts_mcp.sandbox import ManualClock
from parts_mcp.sandbox._faults import SimulatorTransport
from parts_mcp.sandbox.keyloop import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_ENTERPRISE_ID,
    SANDBOX_SETTINGS,
    SANDBOX_STORE_ID,
    TOKEN_PATH,
    KeyloopSimulator,
)
from parts_mcp.vendors import vendor_settings
from parts_mcp.vendors.base import OrderRequest, VendorInvalidRequest, VendorNotFound
from parts_mcp.vendors.keyloop import (
    LINE_STATUSES,
    ORDER_STATUSES,
    KeyloopClient,
    KeyloopSettings,
    api_urls,
)
from parts_mcp.vendors.wire.keyloop import order_prices, reference_types

HOST = "http://keyloop.test"
API = f"/{SANDBOX_ENTERPRISE_ID}/{SANDBOX_STORE_ID}/v1"

# The seed's 201 example, verbatim in shape: `parts` is one object, prices are JSON numbers.
SEED_ORDER: dict[str, Any] = {
    "partsOrderId": 123445677,
    "partsOrderDateTime": "2019-07-21T17:32:28.000Z",
    "orderStatus": "CONFIRMED",
    "customer": {"customerId": "00000000-0000-0000-0000-000000000000", "familyName": "OrderPerson"},
    "orderType": "VOR",
    "orderReference": "Parts for Golf XN06 TTY",
    "deliveryAddress": {"streetName": "Narrow street", "postalCode": 123456, "city": "Smalltown", "countryCode": "GB"},
    "parts": {
        "orderLineId": "00000000-0000-0000-0000-000000000000",
        "partId": "S7654321",
        "quantity": 10,
        "unitOfMeasure": {"unit": "PIECE", "value": 1},
        "unitOfSale": 1,
        "partsOrderLineStatus": "RESERVED",
        "mandatoryVehicleReference": {"type": "KEYNUMBER", "value": "AO339223X/2926"},
        "listPrice": {"netValue": 100, "grossValue": 120, "taxValue": 20, "taxRate": 20, "currencyCode": "EUR"},
        "orderPrice": {"netValue": 100, "grossValue": 120, "taxValue": 20, "taxRate": 20, "currencyCode": "EUR"},
    },
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_750_000_000.0)


@pytest.fixture
def simulator(clock: ManualClock) -> KeyloopSimulator:
    return KeyloopSimulator(clock=clock.now)


@pytest_asyncio.fixture
async def http(simulator: KeyloopSimulator) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=SimulatorTransport(simulator.app), base_url=HOST) as client:
        yield client


def make_client(http: httpx2.AsyncClient, clock: ManualClock | None = None, **kw: Any) -> KeyloopClient:
    return KeyloopClient(
        "keyloop",
        base_url=HOST,
        enterprise_id=SANDBOX_ENTERPRISE_ID,
        store_id=SANDBOX_STORE_ID,
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        customer_id=SANDBOX_CUSTOMER_ID,
        http=http,
        **({"clock": clock.now} if clock else {}),
        **kw,
    )


async def token(http: httpx2.AsyncClient) -> str:
    form = {"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
    response = await http.post(TOKEN_PATH, data=form)
    assert response.status_code == 200
    return response.json()["access_token"]


# ---------------------------------------------------------------------------------------- simulator


@pytest.mark.asyncio
async def test_token_endpoint_answers_like_apigee(http: httpx2.AsyncClient, simulator: KeyloopSimulator) -> None:
    form = {"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
    body = (await http.post(TOKEN_PATH, data=form)).json()
    assert body["token_type"] == "BearerToken" and body["status"] == "approved"
    assert body["expires_in"] == str(int(simulator.token_ttl))  # a string, as Apigee sends it
    assert simulator.tokens_issued == [body["access_token"]]

    wrong = await http.post(TOKEN_PATH, data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["ErrorCode"] == "invalid_client"
    grant = await http.post(TOKEN_PATH, data={**form, "grant_type": "password"})
    assert grant.status_code == 400
    assert len(simulator.tokens_issued) == 1


@pytest.mark.asyncio
async def test_api_errors_use_the_documented_envelope_and_tokens_expire_by_the_clock(
    http: httpx2.AsyncClient, simulator: KeyloopSimulator, clock: ManualClock
) -> None:
    missing = await http.get(f"{API}/parts/brands")
    assert missing.status_code == 401
    assert set(missing.json()) == {"correlationId", "message", "details", "links"}

    bearer = {"Authorization": f"Bearer {await token(http)}"}
    assert (await http.get(f"{API}/parts/brands", headers=bearer)).status_code == 200
    clock.advance(simulator.token_ttl)
    expired = await http.get(f"{API}/parts/brands", headers=bearer)
    assert expired.status_code == 401 and expired.json()["details"][0]["issue"] == "Access token expired"

    other_store = await http.get(f"/{SANDBOX_ENTERPRISE_ID}/store-99/v1/parts/brands", headers=bearer)
    assert other_store.status_code == 401  # the expired token is checked first
    bearer = {"Authorization": f"Bearer {await token(http)}"}
    other_store = await http.get(f"/{SANDBOX_ENTERPRISE_ID}/store-99/v1/parts/brands", headers=bearer)
    assert other_store.status_code == 404 and "correlationId" in other_store.json()


@pytest.mark.asyncio
async def test_order_validation_follows_the_seed(http: httpx2.AsyncClient, simulator: KeyloopSimulator) -> None:
    bearer = {"Authorization": f"Bearer {await token(http)}"}
    line = {"part": {"partId": "S7654321"}, "quantity": 1}
    base = {"customerId": SANDBOX_CUSTOMER_ID, "orderType": "STK", "orderReference": "PO-1", "parts": [line]}

    async def refused(body: dict[str, Any]) -> str:
        response = await http.post(f"{API}/parts-orders", json=body, headers=bearer)
        assert response.status_code == 400, response.text
        return response.json()["details"][0]["field"]

    assert await refused(base) == "parts[0].mandatoryVehicleReferences"
    assert await refused({**base, "customerId": "00000000-0000-0000-0000-000000000000"}) == "customerId"
    assert await refused({**base, "orderType": "XYZ"}) == "orderType"
    assert await refused({**base, "orderReference": ""}) == "orderReference"
    assert simulator.orders == []

    referenced = {**line, "mandatoryVehicleReferences": [{"type": "KEYNUMBER", "value": "AO339223X/2926"}]}
    created = await http.post(f"{API}/parts-orders", json={**base, "parts": [referenced]}, headers=bearer)
    assert created.status_code == 201
    body = created.json()
    assert isinstance(body["parts"], dict)  # one line: an object, as in the seed's example
    assert body["parts"]["mandatoryVehicleReference"] == {"type": "KEYNUMBER", "value": "AO339223X/2926"}
    assert body["parts"]["orderPrice"] == {
        "netValue": 100,
        "grossValue": 120,
        "taxValue": 20,
        "taxRate": 20,
        "currencyCode": "EUR",
    }


@pytest.mark.asyncio
async def test_catalog_is_seeded_with_the_documents_parts_and_more(simulator: KeyloopSimulator) -> None:
    from parts_mcp.sandbox.keyloop import CATALOG

    assert simulator.part("s7654321").mandatory_references == ("KEYNUMBER",)
    assert len(CATALOG) >= 21 and len({p.part_id for p in CATALOG}) == len(CATALOG)


# ------------------------------------------------------------------------------------------- client


@pytest.mark.asyncio
async def test_client_refreshes_the_token_shortly_before_expiry_without_a_401(
    http: httpx2.AsyncClient, simulator: KeyloopSimulator, clock: ManualClock
) -> None:
    client = make_client(http, clock)
    await client.lookup(["S7654321"])
    clock.advance(simulator.token_ttl - 30)  # inside the client's refresh margin, before the token expires
    await client.lookup(["1K0698151A"])
    assert len(simulator.tokens_issued) == 2
    assert not [r for r in simulator.requests if r.status == 401]


@pytest.mark.asyncio
async def test_one_token_fetch_for_many_concurrent_calls(http: httpx2.AsyncClient, simulator: KeyloopSimulator) -> None:
    client = make_client(http)
    async with anyio.create_task_group() as group:
        for query in ("S7654321", "1K0698151A", "5E0698451", "8W0698151AB", "04C115561J"):
            group.start_soon(client.lookup, [query])
    assert len(simulator.tokens_issued) == 1  # the simulator saw one token request: the ground truth


@pytest.mark.asyncio
async def test_search_that_insists_on_a_brand_is_asked_brand_by_brand(
    http: httpx2.AsyncClient, clock: ManualClock
) -> None:
    strict = KeyloopSimulator(clock=clock.now, search_requires_brand=True)
    async with httpx2.AsyncClient(transport=SimulatorTransport(strict.app), base_url=HOST) as strict_http:
        found = await make_client(strict_http).lookup(["1K0698151A", "S7654321"])
    assert sorted(p.part_id for p in found.parts) == ["S7654321", "V1K0698151A"]
    assert found.not_found == []


@pytest.mark.asyncio
async def test_the_seeds_order_reads_exactly_with_parts_as_one_object(http: httpx2.AsyncClient) -> None:
    order = make_client(http)._order(SEED_ORDER, None)
    assert order.order_id == "123445677" and order.po_number == "Parts for Golf XN06 TTY"
    assert order.status is OrderStatus.ACKNOWLEDGED and order.vendor_status == "CONFIRMED"
    [line] = order.lines
    assert line.quantity == 10 and line.vendor_status == "RESERVED"
    assert line.unit_price is not None and line.unit_price.amount == Decimal("100")
    assert order.subtotal is not None and order.subtotal.amount == Decimal("1000.00")
    assert order.tax is not None and order.tax.amount == Decimal("200.00")
    assert order.total is not None and str(order.total) == "1200.00 EUR"
    assert order.details["delivery_address"]["postalCode"] == "123456"


@pytest.mark.asyncio
async def test_statuses_cover_the_five_order_and_nine_line_statuses(http: httpx2.AsyncClient) -> None:
    client = make_client(http)
    assert {s: client.map_status(s) for s in ORDER_STATUSES} == {
        "CREATED": OrderStatus.ORDERED,
        "CONFIRMED": OrderStatus.ACKNOWLEDGED,
        "INPROGRESS": OrderStatus.IN_PROGRESS,
        "SHIPPED": OrderStatus.SHIPPED,
        "CLOSED": OrderStatus.COMPLETED,
    }
    assert client.map_status("closed") is OrderStatus.COMPLETED
    assert client.map_status("SOMETHING_NEW") is OrderStatus.UNKNOWN
    assert set(LINE_STATUSES) == {
        "OPEN",
        "RESERVED",
        "ISSUED",
        "BACKORDER",
        "PACKED",
        "INTRANSIT",
        "DELIVERED",
        "CANCELLED",
        "INVOICED",
    }
    # No orderStatus in the answer: derived from the lines as the seed defines it.
    lines = [{**SEED_ORDER["parts"], "partsOrderLineStatus": "INTRANSIT"}, SEED_ORDER["parts"]]
    order = client._order({**SEED_ORDER, "orderStatus": None, "parts": lines}, None)
    assert order.vendor_status == "SHIPPED" and order.status is OrderStatus.SHIPPED
    cancelled = {**SEED_ORDER["parts"], "partsOrderLineStatus": "CANCELLED"}
    order = client._order({**SEED_ORDER, "orderStatus": "CLOSED", "parts": [cancelled]}, None)
    assert order.status is OrderStatus.CANCELLED and order.total is None


@pytest.mark.asyncio
async def test_the_seeds_400_envelope_maps_to_an_invalid_request_naming_our_field(
    http: httpx2.AsyncClient,
) -> None:
    envelope = {
        "correlationId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "message": "Invalid request",
        "details": [{"field": "orderType", "value": "XYZ", "issue": "The value 'XYZ' is not valid."}],
        "links": [{"method": "GET", "rel": "self", "href": "string", "title": "string"}],
    }
    error = make_client(http)._map_error(httpx2.Response(400, json=envelope), envelope)
    assert isinstance(error, VendorInvalidRequest) and error.field == "options.order_type"
    assert "The value 'XYZ' is not valid." in error.message and "3fa85f64" in error.message
    assert isinstance(make_client(http)._map_error(httpx2.Response(404), None), VendorNotFound)


def test_price_availability_shapes_are_read_tolerantly() -> None:
    price = {"netValue": 10.5, "grossValue": 12.6, "taxValue": 2.1, "taxRate": 20, "currencyCode": "EUR"}
    listed = order_prices([{"orderType": "STK", "orderPrice": price}])
    single = order_prices({"orderType": "stk", "orderPrice": price})
    mapped = order_prices({"STK": price})
    assert listed.keys() == single.keys() == mapped.keys() == {"STK"}
    assert str(listed["STK"].net) == "10.50 EUR" and str(listed["STK"].gross) == "12.60 EUR"
    no_gross = order_prices({"STK": {"netValue": 10, "taxValue": 2, "currencyCode": "EUR"}})
    assert str(no_gross["STK"].gross) == "12.00 EUR"
    assert reference_types([{"type": "VIN"}, {"type": "keynumber"}]) == ("VIN", "KEYNUMBER")
    assert reference_types("VIN, KEYNUMBER") == ("VIN", "KEYNUMBER")
    assert reference_types(["VIN"]) == ("VIN",) and reference_types(None) == ()


def test_base_url_is_the_host_root_and_the_servers_template_is_tolerated() -> None:
    assert api_urls("https://api.eu.keyloop.io/", "acme", "s1") == (
        "https://api.eu.keyloop.io",
        "https://api.eu.keyloop.io/acme/s1/v1",
    )
    # The seed's "computed URL" pasted whole is accepted without doubling the API path.
    assert api_urls("https://api.eu-stage.keyloop.io/acme/s1/v1", "acme", "s1")[1] == (
        "https://api.eu-stage.keyloop.io/acme/s1/v1"
    )
    with pytest.raises(ValueError, match="host root"):
        api_urls("https://api.eu.keyloop.io/other/s2/v1", "acme", "s1")


def test_settings_validate_and_keep_secrets_secret() -> None:
    settings = vendor_settings({**SANDBOX_SETTINGS, "base_url": HOST})
    assert isinstance(settings, KeyloopSettings)
    assert settings.order_type == "STK" and SANDBOX_CLIENT_SECRET not in repr(settings)
    with pytest.raises(ValueError, match="order_type"):
        vendor_settings({**SANDBOX_SETTINGS, "order_type": "XYZ"})
    with pytest.raises(ValueError, match="enterprise_id"):
        vendor_settings({**SANDBOX_SETTINGS, "enterprise_id": "a/b"})
    with pytest.raises(ValueError, match="contact"):
        vendor_settings({**SANDBOX_SETTINGS, "contact": {}})


@pytest.mark.asyncio
async def test_without_order_prices_the_preview_falls_back_to_list_prices_and_says_so(clock: ManualClock) -> None:
    bare = KeyloopSimulator(clock=clock.now, order_types=())
    async with httpx2.AsyncClient(transport=SimulatorTransport(bare.app), base_url=HOST) as bare_http:
        client = make_client(bare_http)
        found = await client.lookup(["1K0698151A"])
        [part] = found.parts
        assert part.price_basis == "list" and part.unit_price is not None
        request = OrderRequest(
            vendor="keyloop", po_number="PO-1", items=(OrderItem(part_id=part.part_id, quantity=2),), options={}
        )
        preview = await client.preview(request, {part.part_id: part})
    assert preview.price_basis == "list" and preview.subtotal.amount == Decimal("124.80")
    assert any("list prices are shown" in c for c in preview.caveats)
