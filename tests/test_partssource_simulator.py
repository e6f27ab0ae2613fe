"""Contract tests of the PartsSource simulator on its own, over HTTP through the in-process transport.

Expected behaviour comes from the vendor document (seeds/003) and docs/vendors.md section 4; where
the documents are silent, the test docstring says the behaviour is the simulator's own choice.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from parts_mcp.sandbox import ManualClock, Sandbox
from parts_mcp.sandbox.partssource import (
    READ_ONLY_CLIENT_ID,
    READ_SCOPE,
    SANDBOX_API_KEY,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    WRITE_SCOPE,
    PartsSourceSimulator,
)

pytestmark = pytest.mark.asyncio

ACCOUNT = {
    "requesterId": 10001,
    "userId": 10001,
    "facilityId": 20001,
    "shippingAddressId": 30001,
    "billingAddressId": 30002,
    "shippingMethod": "GROUND",
}


class Api:
    """A raw HTTP client on the sandboxed simulator, with a token fetched the documented way."""

    def __init__(self, sandbox: Sandbox, http: httpx2.AsyncClient) -> None:
        self.sandbox = sandbox
        self.http = http
        self.token: str | None = None

    @property
    def sim(self) -> PartsSourceSimulator:
        return self.sandbox.partssource

    async def fetch_token(self, client_id: str = SANDBOX_CLIENT_ID, **form: str) -> httpx2.Response:
        basic = base64.b64encode(f"{client_id}:{SANDBOX_CLIENT_SECRET}".encode()).decode()
        return await self.http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", **form},
            headers={"Authorization": f"Basic {basic}"},
        )

    async def headers(self) -> dict[str, str]:
        if self.token is None:
            self.token = (await self.fetch_token()).json()["access_token"]
        return {"Authorization": f"Bearer {self.token}", "x-api-key": SANDBOX_API_KEY}

    async def get(self, path: str, **params: Any) -> httpx2.Response:
        return await self.http.get(path, params=params, headers=await self.headers())

    async def post(self, path: str, body: Any, **headers: str) -> httpx2.Response:
        return await self.http.post(path, json=body, headers={**await self.headers(), **headers})

    async def order(self, key: str, **changes: Any) -> httpx2.Response:
        body = {**ACCOUNT, "poNumber": "PO-SIM-1", "quoteItems": [quote_item()], **changes}
        return await self.post("/orders", body, **{"Idempotency-Key": key})

    async def search(self, q: str, **params: Any) -> httpx2.Response:
        return await self.get("/orders/search", q=q, **params)


def quote_item(option: str = "OPT-ABC123-XYZ", product: str = "CAT-456", quantity: int = 1, price: float = 1250.0):
    return {"priceOptionId": option, "productId": product, "quantity": quantity, "price": price}


def key() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def api(clock: ManualClock) -> AsyncIterator[Api]:
    sandbox = Sandbox(clock=clock.now)
    vendor = sandbox.vendors()["partssource"]
    async with httpx2.AsyncClient(transport=vendor.transport, base_url=vendor.base_url) as http:
        yield Api(sandbox, http)


def data(response: httpx2.Response) -> Any:
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["correlationId"] and body["timestamp"]
    return body["data"]


def problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """An RFC 7807 error as the documents describe it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["service"] == "customer-api"
    assert {"type", "title", "detail", "instance", "correlationId", "errors", "timestamp"} <= set(body)
    return body


# -- token endpoint and gateway -----------------------------------------------------------------


async def test_token_endpoint_issues_expiring_bearer_tokens(api: Api, clock: ManualClock) -> None:
    response = await api.fetch_token()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2  # JWT-shaped
    form = await api.http.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
        },
    )
    assert form.status_code == 200  # client_secret_post works too

    assert (await api.get("/orders/10001")).status_code == 200
    clock.advance(3600)
    assert "expired" in problem(await api.get("/orders/10001"), 401)["detail"]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "other/scope"}, 400, "invalid_scope"),
    ],
)
async def test_token_endpoint_refuses_bad_grants(api: Api, form: dict[str, str], status: int, error: str) -> None:
    basic = base64.b64encode(f"{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}".encode()).decode()
    response = await api.http.post("/oauth2/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == status and response.json() == {"error": error}


async def test_wrong_client_secret_is_invalid_client(api: Api) -> None:
    basic = base64.b64encode(f"{SANDBOX_CLIENT_ID}:wrong".encode()).decode()
    response = await api.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 401 and response.json() == {"error": "invalid_client"}


async def test_every_call_needs_the_api_key_and_a_bearer_token(api: Api) -> None:
    headers = await api.headers()
    no_key = await api.http.get("/orders/10001", headers={"Authorization": headers["Authorization"]})
    assert "x-api-key" in problem(no_key, 403)["detail"]
    no_token = await api.http.get("/orders/10001", headers={"x-api-key": SANDBOX_API_KEY})
    problem(no_token, 401)


async def test_a_read_only_token_cannot_order(api: Api) -> None:
    token = (await api.fetch_token(READ_ONLY_CLIENT_ID)).json()["access_token"]
    api.token = token
    assert (await api.get("/orders/10001")).status_code == 200
    assert WRITE_SCOPE in problem(await api.order(key()), 403)["detail"]
    # Asking for fewer scopes than the client has narrows the token.
    api.token = (await api.fetch_token(scope=READ_SCOPE)).json()["access_token"]
    problem(await api.order(key()), 403)


async def test_rate_limit_headers_on_every_answer_and_429_when_exceeded(api: Api, clock: ManualClock) -> None:
    ok = await api.get("/orders/10001")
    assert ok.headers["X-RateLimit-Limit"] == "1000"
    assert int(ok.headers["X-RateLimit-Remaining"]) < 1000
    assert int(ok.headers["X-RateLimit-Reset"]) > clock.now()
    api.sim.faults.arm("rate_limit")
    limited = await api.get("/orders/10001")
    problem(limited, 429)
    assert limited.headers["Retry-After"] == "2" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert (await api.get("/orders/10001")).status_code == 200


# -- catalog ------------------------------------------------------------------------------------


async def test_catalog_search_and_detail_give_price_options(api: Api) -> None:
    found = data(await api.post("/catalog/search", {"keywords": "M3001A"}))
    assert found["pagination"] == {"total": 1, "limit": 50, "offset": 0, "hasMore": False}
    [product] = found["items"]
    assert product["productId"] == "CAT-456" and product["manufacturer"] == "Philips Healthcare"
    detail = data(await api.get("/catalog/detail", productId="CAT-456", requesterId=10001))
    options = {o["priceOptionId"]: o for o in detail["options"]}
    assert options["OPT-ABC123-XYZ"] | {"expiresAt": None, "vendorName": None} == {
        "priceOptionId": "OPT-ABC123-XYZ",
        "price": 1250.0,
        "condition": "Refurbished",
        "warranty": "12 Months",
        "purchaseChoice": "Buy",
        "expiresAt": None,
        "vendorName": None,
    }
    assert options["OPT-DEF456-UVW"]["price"] == 2500.0 and options["OPT-DEF456-UVW"]["condition"] == "New OEM"
    assert {o["purchaseChoice"] for o in options.values()} == {"Buy", "Exchange", "Outright"}
    repair = next(o for o in options.values() if "Flat Rate Repair" in o["condition"])
    assert [f["name"] for f in repair["requiredFields"]] == ["repairReason", "serialNumber"]


async def test_catalog_has_many_medical_parts_and_paginates(api: Api) -> None:
    page = data(await api.post("/catalog/search", {"filters": {"manufacturerId": 26799}, "pagination": {"limit": 2}}))
    assert page["pagination"]["total"] >= 4 and page["pagination"]["hasMore"] is True and len(page["items"]) == 2
    pumps = data(await api.post("/catalog/search", {"keywords": "infusion pump"}))["items"]
    assert {p["partNumber"] for p in pumps} >= {"35083", "TC10004657"}
    assert len(api.sim.product("C5-1").offers) == 4
    everything = data(await api.post("/catalog/search", {"keywords": " ", "filters": {"partNumber": ""}}))
    assert everything["pagination"]["total"] >= 25


async def test_catalog_errors(api: Api) -> None:
    problem(await api.post("/catalog/search", {}), 400)
    assert "requesterId" in str(problem(await api.get("/catalog/detail", productId="CAT-456"), 400)["errors"])
    problem(await api.get("/catalog/detail", productId="CAT-404", requesterId=10001), 404)
    problem(await api.get("/catalog/detail", productId="CAT-456", requesterId=50001), 403)


async def test_quotes_expire_after_30_days_and_are_reissued(api: Api, clock: ManualClock) -> None:
    clock.advance(30 * 86400)
    api.token = None  # the old token expired too
    detail = data(await api.get("/catalog/detail", productId="CAT-456", requesterId=10001))
    ids = {o["priceOptionId"] for o in detail["options"]}
    assert "OPT-ABC123-XYZ" not in ids and len(ids) == 4
    refused = await api.order(key())
    assert refused.status_code == 422 and "expired" in str(refused.json()["errors"])


# -- POST /orders and the replay cache -----------------------------------------------------------


async def test_order_is_created_and_replayed_for_the_same_key(api: Api) -> None:
    k = key()
    first = await api.order(k, notes="Loading dock B")
    assert first.status_code == 200
    order = data(first)
    assert order["status"] == "Pending" and order["poNumber"] == "PO-SIM-1" and order["total"] == 1250.0
    again = await api.order(k, notes="Loading dock B")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["X-Idempotency-Replayed"] == "true"
    assert len(api.sim.created_orders) == 1
    conflict = await api.order(k, notes="Another body")
    problem(conflict, 409)
    assert len(api.sim.created_orders) == 1


async def test_4xx_is_not_stored_so_the_fixed_body_goes_through_with_the_same_key(api: Api) -> None:
    k = key()
    problem(await api.order(k, notes="n" * 201), 400)
    fixed = await api.order(k, notes="short")
    assert fixed.status_code == 200 and "X-Idempotency-Replayed" not in fixed.headers
    assert len(api.sim.created_orders) == 1


async def test_5xx_is_stored_under_its_key_for_24_hours(api: Api, clock: ManualClock) -> None:
    api.sim.faults.arm("server_error")
    k = key()
    failed = await api.order(k)
    problem(failed, 500)
    replayed = await api.order(k)
    assert replayed.status_code == 500 and replayed.headers["X-Idempotency-Replayed"] == "true"
    assert api.sim.created_orders == []
    assert (await api.order(key())).status_code == 200  # a new key is a new attempt
    clock.advance(24 * 3600)
    api.token = None
    assert (await api.order(k)).status_code == 200  # the stored 500 has gone with the key
    assert len(api.sim.created_orders) == 2


@pytest.mark.parametrize(
    ("changes", "status", "where"),
    [
        ({"quoteItems": [quote_item(price=1249.99)]}, 422, "quoteItems[0].price"),
        ({"quoteItems": [quote_item(product="CAT-123")]}, 422, "quoteItems[0].productId"),
        ({"quoteItems": [quote_item(option="OPT-NOPE")]}, 422, "quoteItems[0].priceOptionId"),
        ({"quoteItems": []}, 400, "quoteItems"),
        ({"notes": "x" * 201}, 400, "notes"),
        ({"shippingMethod": ""}, 400, "shippingMethod"),
        ({"facilityId": 0}, 400, "facilityId"),
        ({"shippingAddressId": 30009}, 422, "shippingAddressId"),
        ({"useShippingAccount": True}, 422, "useShippingAccount"),
    ],
)
async def test_order_validation(api: Api, changes: dict[str, Any], status: int, where: str) -> None:
    response = await api.order(key(), **changes)
    assert response.status_code == status
    body = response.json()
    if status == 422:  # business rules come in the controller envelope
        assert body["success"] is False and body["correlationId"]
    assert any(e.startswith(where) for e in body["errors"]), body["errors"]
    assert api.sim.created_orders == []


async def test_flat_rate_repairs_are_one_per_line_with_required_fields(api: Api) -> None:
    detail = data(await api.get("/catalog/detail", productId="CAT-456", requesterId=10001))
    repair = next(o for o in detail["options"] if "Flat Rate Repair" in o["condition"])
    item = quote_item(repair["priceOptionId"], price=repair["price"], quantity=2)
    errors = problem(await api.order(key(), quoteItems=[item]), 400)["errors"]
    assert "quoteItems[0].quantity: must be 1 for a flat rate repair; send one line item per repair" in errors
    assert any("requiredFields.serialNumber" in e for e in errors)
    fields = {"repairReason": "Cracked housing", "serialNumber": "SN-1"}
    ok = await api.order(key(), quoteItems=[{**item, "quantity": 1, "requiredFields": fields}])
    assert ok.status_code == 200 and data(ok)["lineItems"][0]["requiredFields"] == fields


async def test_idempotency_key_is_required_and_a_uuid(api: Api) -> None:
    problem(await api.post("/orders", {**ACCOUNT, "quoteItems": [quote_item()]}), 400)
    assert "UUID" in str(problem(await api.order("not-a-uuid"), 400)["errors"])


async def test_drop_after_commit_keeps_the_order(api: Api) -> None:
    api.sim.faults.arm("drop_after_commit")
    k = key()
    with pytest.raises(httpx2.TransportError):
        await api.order(k)
    assert len(api.sim.created_orders) == 1
    assert data(await api.order(k))["orderId"] == api.sim.created_orders[0]["orderId"]


# -- order look-up and search ---------------------------------------------------------------------


async def test_get_order_and_tenant_isolation(api: Api) -> None:
    order = data(await api.get("/orders/10001"))
    assert order["poNumber"] == "PO-456" and order["lineItems"][0]["lineId"] == 789012
    assert problem(await api.get("/orders/12345"), 404)["detail"] == "No order found with ID: 12345"
    problem(await api.get("/orders/10006"), 403)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('poNumber:"po-456"', [10001]),
        ('poNumber~"PO-"', [10003, 10001, 10005]),
        ("orderId IN [10001, 10002]", [10002, 10001]),
        ("lineId:789012", [10001]),
        (
            'companyId:20001 AND createdDate>="2000-01-01" AND createdDate<="2999-01-01"',
            [10004, 10003, 10002, 10001, 10005],
        ),
        ('companyId:20001 AND createdDate>"2000-01-01" AND createdDate<"2999-01-01" AND status:"pending"', [10004]),
        (
            'rootCompanyId:20000 AND createdDate>="2000-01-01" AND createdDate<"2999-01-01" AND -status:Completed',
            [10004, 10003, 10002],
        ),
        (
            'companyId:20001 AND createdDate>="2000-01-01" AND createdDate<"2999-01-01" '
            'AND status IN ["Research", "EOrdered"]',
            [10003, 10002],
        ),
        ('poNumber~"PO-" AND partNumber~"MOT"', [10003]),
        ('orderId IN [10001, 10002, 10003] AND lineItemDescription~"pump"', [10002]),
        ('poNumber:"NETWORK-7781"', []),  # another tenant's order is invisible
    ],
)
async def test_order_search_query_language(api: Api, q: str, expected: list[int]) -> None:
    page = data(await api.search(q))
    assert [o["orderId"] for o in page["items"]] == expected


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ('status:"Pending"', "Either orderId, poNumber, or lineId must be specified"),
        ('companyId:20001 AND createdDate>="2026-01-01"', "bounded createdDate range"),
        ('colour:"red"', "Valid fields: orderId, companyId"),
        ('poNumber~"PO"', "at least 3 characters"),
        ("orderId>10001", "operator '>' cannot be used with Token field 'orderId'"),
        ('poNumber:"PO-456" OR orderId:1', "expected AND"),
        ('createdDate>="yesterday" AND orderId:1', "not an ISO 8601 date"),
    ],
)
async def test_order_search_refusals(api: Api, q: str, message: str) -> None:
    assert message in str(problem(await api.search(q), 400)["errors"])


async def test_order_search_cross_tenant_company_is_forbidden(api: Api) -> None:
    problem(await api.search('companyId:88001 AND createdDate>="2000-01-01" AND createdDate<"2999-01-01"'), 403)


async def test_order_search_paginates_with_normalised_limits(api: Api) -> None:
    for n in range(120):
        api.sim.add_order(f"BULK-{n:03d}", days_ago=1 + n / 100)
    q = 'poNumber~"BULK-"'
    first = data(await api.search(q, limit=500))
    assert first["pagination"] == {"total": 120, "limit": 100, "offset": 0, "hasMore": True}
    rest = data(await api.search(q, limit=100, offset=100))
    assert rest["pagination"]["hasMore"] is False and len(rest["items"]) == 20
    default = data(await api.search(q, limit=-5, offset=-10))
    assert default["pagination"]["limit"] == 50 and default["pagination"]["offset"] == 0


async def test_manufacturer_search_matches_the_documents_example(api: Api) -> None:
    page = data(await api.get("/manufacturers/search", q='name~"philips"', limit=20))
    assert page["items"] == [{"manufacturerId": 26799, "name": "Philips Healthcare"}]
    assert page["pagination"] == {"total": 1, "limit": 20, "offset": 0, "hasMore": False}


async def test_users_lookup_gives_the_ids_an_order_needs(api: Api) -> None:
    profile = data(await api.get("/users/lookup", userId=10001))
    assert profile["contactId"] == 10001
    assert {c["id"] for c in profile["companies"]} >= {20001}
    assert {a["id"] for a in profile["shippingAddresses"]} >= {30001}


async def test_sandbox_index_points_the_token_url_at_the_simulator() -> None:
    sandbox = Sandbox()
    transport = httpx2.ASGITransport(app=sandbox.asgi_app())
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as http:
        index = (await http.get("/")).json()["vendors"]["partssource"]
        assert index["base_url"] == "http://127.0.0.1:9/partssource/customer/api"
        assert index["token_url"] == index["base_url"] + "/oauth2/token"
        token = await http.post(
            index["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": index["client_id"],
                "client_secret": index["client_secret"],
            },
        )
        assert token.status_code == 200
