"""Simulator of Keyloop's Parts Orders API and its Apigee token endpoint, served from the host root.

Follows the vendor document (seeds/002) and docs/vendors.md section 3. The seed documents only
``POST /parts-orders`` (201 with the full order, 202 with the id only, 400 in the error envelope)
and ``GET /parts-orders/{partsOrderId}`` (404 in the same envelope; orders are not retained
forever). The token endpoint, brands, parts search and price-availability follow vendors.md, which
had them from third-party code. Choices the documents leave open are marked "undocumented".

Paths: ``POST /oauth/client_credential/accesstoken`` at the host root; the API under
``/{enterpriseId}/{storeId}/v1``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NoReturn
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parts_mcp.sandbox._entry import Simulated
from parts_mcp.sandbox._faults import (
    DroppedConnectionResponse,
    Faults,
    RecordedRequest,
    RecordingMiddleware,
    admin_routes,
)

__all__ = [
    "CATALOG",
    "FAULT_NAMES",
    "LINE_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TYPES",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_CUSTOMER_ID",
    "SANDBOX_ENTERPRISE_ID",
    "SANDBOX_SETTINGS",
    "SANDBOX_STORE_ID",
    "TOKEN_PATH",
    "CatalogPart",
    "KeyloopSimulator",
]

SANDBOX_CLIENT_ID: Final = "sbx-kl-client-8e2a4f6c1d93"
SANDBOX_CLIENT_SECRET: Final = "sbx-kl-secret-" + "b71e0c5a9f3d2e64"
SANDBOX_ENTERPRISE_ID: Final = "sandbox-motors"
SANDBOX_STORE_ID: Final = "store-01"
SANDBOX_CUSTOMER_ID: Final = "3f1c2a9e-7b4d-4c8e-9a51-2d6f0b8e4c17"
SANDBOX_COMPANY_ID: Final = "8d2e6f10-4a7b-4e3c-b1d9-5c0a7e9f2b64"
TOKEN_PATH: Final = "/oauth/client_credential/accesstoken"  # noqa: S105 - a path, not a secret
# The [vendors.keyloop] config section for this simulator, minus base_url (the host root it is served at).
SANDBOX_SETTINGS: Final[dict[str, Any]] = {
    "kind": "keyloop",
    "enterprise_id": SANDBOX_ENTERPRISE_ID,
    "store_id": SANDBOX_STORE_ID,
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
    "customer_id": SANDBOX_CUSTOMER_ID,
    "order_type": "STK",
    "contact": {"name": "Cate ContactPerson", "phone": "+43 662 123456", "company_name": "Alpine Autowerkstatt GmbH"},
}

ORDER_TYPES: Final = ("EMG", "VOR", "STK", "DPO", "COL")
ORDER_STATUSES: Final = ("CREATED", "CONFIRMED", "INPROGRESS", "SHIPPED", "CLOSED")
LINE_STATUSES: Final = (
    "OPEN",
    "RESERVED",
    "ISSUED",
    "BACKORDER",
    "PACKED",
    "INTRANSIT",
    "DELIVERED",
    "CANCELLED",
    "INVOICED",
)
FAULT_NAMES: Final = frozenset({"server_error", "drop_after_commit", "accept_async", "token_server_error"})

CURRENCY: Final = "EUR"
TAX_RATE: Final = Decimal(20)  # the seed's example rate; also Austria's standard VAT, where EUR fits
FIRST_ORDER_ID: Final = 123445678  # the seed's example id is 123445677: integers counting up
_CENT = Decimal("0.01")
_PAGE_SIZE_MAX = 100

# How much of a part's stock-order discount each order type gets (undocumented: the seed only says
# orderType communicates urgency; urgent orders plausibly earn less discount than stock orders).
_DISCOUNT_SHARE: Final = {
    "STK": Decimal(1),
    "DPO": Decimal("0.8"),
    "COL": Decimal("0.8"),
    "VOR": Decimal("0.5"),
    "EMG": Decimal(0),
}

BRANDS: Final = {"V": "Volkswagen", "A": "Audi", "S": "ŠKODA", "T": "SEAT", "C": "CUPRA"}


@dataclass(frozen=True)
class CatalogPart:
    """One part the dealer sells. Prices are per unit, net of tax."""

    brand_code: str
    part_code: str
    description: str
    list_price: Decimal
    stock: int
    discount_percent: Decimal = Decimal(0)  # the sandbox customer's discount on stock orders
    lead_time_days: int = 1
    back_order: bool = True
    sales_blocked: str | None = None  # why, when the part may not be sold
    mandatory_references: tuple[str, ...] = ()
    surcharge: Decimal = Decimal(0)  # e.g. an exchange-unit or battery deposit
    superseded_by: str | None = None  # partId of the replacement

    @property
    def part_id(self) -> str:
        # The seed's example pairs partId "S7654321" with brandCode "S" and partCode 7654321.
        return self.brand_code + self.part_code

    def order_price(self, order_type: str) -> Decimal:
        discount = self.discount_percent * _DISCOUNT_SHARE[order_type]
        return (self.list_price * (100 - discount) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


def _p(
    brand: str,
    code: str,
    description: str,
    price: str,
    stock: int,
    discount: int = 0,
    **extra: Any,
) -> CatalogPart:
    return CatalogPart(brand, code, description, Decimal(price), stock, Decimal(discount), **extra)


# S7654321 is the seed's example part (list = order price 100 net for a VOR order, with a KEYNUMBER
# reference), so it is a key that must be cut to the vehicle's key number, at no discount.
# fmt: off
CATALOG: Final[tuple[CatalogPart, ...]] = (
    _p("S", "7654321", "Remote key, folding, 3 buttons (cut to key number)", "100", 6,
       mandatory_references=("KEYNUMBER",), lead_time_days=3),
    _p("V", "1K0698151A", "Brake pad set, front axle", "62.40", 24, 22),
    _p("V", "5Q0615301F", "Brake disc, front, 312 x 25 mm, vented", "78.90", 10, 22),
    _p("V", "5Q0698451P", "Brake pad set, rear axle", "48.60", 18, 22),
    _p("V", "03L115562", "Oil filter element", "11.85", 60, 25),
    _p("V", "04E115561H", "Oil filter, 1.0/1.4 TSI", "9.60", 45, 25),
    _p("V", "5Q0129620D", "Air filter element", "24.30", 20, 25),
    _p("V", "5Q0819653", "Dust and pollen filter (cabin filter)", "19.75", 32, 25),
    _p("V", "04E905612C", "Spark plug, long life", "14.20", 48, 20),
    _p("V", "5G1955425A", "Wiper blade set, front, aero", "34.50", 14, 18),
    _p("V", "5Q0413031GK", "Shock absorber, front axle", "142.00", 4, 15),
    _p("V", "5Q0598611", "Wheel bearing with hub, rear", "96.40", 6, 15),
    _p("V", "04L121011L", "Water pump with housing", "185.60", 2, 15, lead_time_days=2),
    _p("V", "G013A8JM1", "Coolant G13, concentrate, 1.5 l", "18.90", 40, 20),
    _p("V", "5G1941005D", "Headlight, LED, left", "612.00", 0, 10, lead_time_days=5),
    _p("V", "000915105DH", "Battery, 12 V 68 Ah AGM, start/stop", "185.00", 5, 12, surcharge=Decimal("7.50")),
    _p("V", "5Q0959435", "Immobiliser control unit (coded to the vehicle)", "238.00", 1, 0,
       mandatory_references=("VIN",), back_order=True, lead_time_days=4),
    _p("V", "3C0945095", "Tail light, outer, left", "154.00", 0, 10, back_order=False,
       sales_blocked="Superseded: order 3C0945095AA", superseded_by="V3C0945095AA"),
    _p("V", "3C0945095AA", "Tail light, outer, left (LED)", "168.00", 3, 10),
    _p("A", "8W0698151AB", "Brake pad set, front axle (A4/A5)", "118.70", 8, 20),
    _p("A", "06L115562B", "Oil filter element", "13.40", 30, 25),
    _p("A", "06K911023M", "Starter motor, exchange unit", "395.00", 2, 10, surcharge=Decimal("120.00")),
    _p("A", "4M0959754T", "Remote key, comfort (programmed to the vehicle)", "289.00", 3, 0,
       mandatory_references=("VIN", "KEYNUMBER"), lead_time_days=5),
    _p("S", "5E0698451", "Brake pad set, rear axle (Octavia)", "48.20", 12, 22),
    _p("S", "5E3955427", "Wiper blade, rear", "27.90", 9, 18),
    _p("S", "04C115561J", "Oil filter, 1.0 TSI", "10.95", 35, 25),
    _p("T", "5F0615301", "Brake disc, front, 288 mm", "71.30", 7, 22),
    _p("C", "5FF698151", "Brake pad set, front, performance", "164.50", 0, 15, back_order=False,
       lead_time_days=0),
)
# fmt: on


@dataclass
class _OrderState:
    reads_until_visible: int  # GETs still answered 404 after a 202
    closed_at: float | None = None


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    family_name: str
    given_name: str
    title: str
    invoice_address: dict[str, Any]
    company: dict[str, Any] = field(default_factory=dict)


SANDBOX_CUSTOMER: Final = _Customer(
    SANDBOX_CUSTOMER_ID,
    "OrderPerson",
    "Ollie",
    "Mr.",
    {"streetName": "Industriestraße 12", "postalCode": "5020", "city": "Salzburg", "countryCode": "AT"},
    {"companyId": SANDBOX_COMPANY_ID, "name": "Alpine Autowerkstatt GmbH"},
)


class _ApiError(Exception):
    """An answer in Keyloop's error envelope; raised anywhere in a handler, rendered by the app."""

    def __init__(self, status: int, message: str, details: Iterable[tuple[str, Any, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)


def _invalid(field_name: str, value: Any, issue: str) -> NoReturn:
    raise _ApiError(400, "Invalid request", [(field_name, value, issue)])


def _number(amount: Decimal) -> int | float:
    # The seed shows prices as JSON numbers (100, 120); a float's shortest repr is the exact decimal.
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _price(net: Decimal) -> dict[str, Any]:
    tax = (net * TAX_RATE / 100).quantize(_CENT, rounding=ROUND_HALF_UP)
    return {
        "netValue": _number(net),
        "grossValue": _number(net + tax),
        "taxValue": _number(tax),
        "taxRate": _number(TAX_RATE),
        "currencyCode": CURRENCY,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def derive_order_status(line_statuses: Iterable[str]) -> str:
    """The order status from its lines, by the seed's definitions (most advanced wins)."""
    statuses = set(line_statuses)
    if statuses and statuses <= {"INVOICED", "CANCELLED"}:
        return "CLOSED"
    if statuses & {"INTRANSIT", "DELIVERED"}:
        return "SHIPPED"
    if statuses & {"ISSUED", "BACKORDER", "PACKED"}:
        return "INPROGRESS"
    if "RESERVED" in statuses:
        return "CONFIRMED"
    return "CREATED"


class KeyloopSimulator:
    """Stateful Keyloop Parts Orders API. Serve ``app`` at a host root.

    Orders: 201 with the full order, except 202 with only ``partsOrderId`` for order types in
    ``async_order_types`` (default VOR) or after ``faults.arm("accept_async")``; such an order answers
    404 to its first ``async_reads`` GETs. A CLOSED order disappears ``retention`` seconds after
    it closed (by ``clock``). Faults: ``server_error`` answers the next API call 500 (nothing
    written); ``drop_after_commit`` creates the next order, then drops the connection;
    ``token_server_error`` fails the next token request with 503; ``accept_async`` answers the next
    order 202. ``search_requires_brand`` makes the parts search refuse a request without brandCode
    (400), as a stricter store might.
    """

    def __init__(
        self,
        *,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 1800.0,
        enterprise_id: str = SANDBOX_ENTERPRISE_ID,
        store_id: str = SANDBOX_STORE_ID,
        order_types: Iterable[str] = ORDER_TYPES,
        async_order_types: Iterable[str] = ("VOR",),
        async_reads: int = 1,
        retention: float = 90 * 86_400.0,
        require_order_reference: bool = True,
        search_requires_brand: bool = False,
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self.token_ttl = token_ttl
        self.enterprise_id = enterprise_id
        self.store_id = store_id
        self.order_types = tuple(order_types)
        self.async_order_types = frozenset(async_order_types)
        self.async_reads = async_reads
        self.retention = retention
        self.require_order_reference = require_order_reference
        self.search_requires_brand = search_requires_brand
        self.faults = Faults(names=FAULT_NAMES)
        self.orders: list[dict[str, Any]] = []  # ground truth: every order the DMS created, as it holds it
        self.requests: list[RecordedRequest] = []
        self.tokens_issued: list[str] = []
        self.customers = {SANDBOX_CUSTOMER.customer_id: SANDBOX_CUSTOMER}
        self.stock: dict[str, int] = {part.part_id: part.stock for part in CATALOG}
        self._parts = {part.part_id.casefold(): part for part in CATALOG}
        self._tokens: dict[str, float] = {}  # access token -> expiry (clock seconds)
        self._state: dict[str, _OrderState] = {}
        self._next_id = FIRST_ORDER_ID
        api = "/{enterprise_id}/{store_id}/v1"
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route(f"{api}/parts/brands", self._brands, methods=["GET"]),
                Route(f"{api}/parts", self._search, methods=["GET"]),
                Route(f"{api}/parts/{{part_id}}/price-availability", self._price_availability, methods=["GET"]),
                Route(f"{api}/parts-orders", self._create_order, methods=["POST"]),
                Route(f"{api}/parts-orders/{{order_id}}", self._get_order, methods=["GET"]),
                *admin_routes(self.faults, lambda: self.orders),
            ],
            middleware=[Middleware(RecordingMiddleware, log=self.requests)],
            exception_handlers={_ApiError: self._render_api_error, HTTPException: self._render_http_error},
        )

    # -- test controls ----------------------------------------------------------------------------

    def part(self, part_id: str) -> CatalogPart:
        """The catalog entry for ``part_id`` (case-insensitive).

        Raises:
            KeyError: no such part.
        """
        return self._parts[part_id.casefold()]

    def set_part(self, part_id: str, **changes: Any) -> None:
        """Change a catalog part's fields, e.g. ``list_price=Decimal("70")`` or ``sales_blocked="Recall"``."""
        part = self.part(part_id)
        self._parts[part_id.casefold()] = replace(part, **changes)

    def set_line_statuses(self, order_id: int | str, *statuses: str) -> dict[str, Any]:
        """Move an order's lines on (one status for all, or one per line); the order status follows.

        Raises:
            KeyError: no such order.
            ValueError: an unknown status, or a count that is neither 1 nor the number of lines.
        """
        order = self._order(order_id)
        if order is None:
            raise KeyError(order_id)
        lines = order["parts"]
        if len(statuses) not in (1, len(lines)):
            raise ValueError(f"give 1 or {len(lines)} statuses")
        for status in statuses:
            if status not in LINE_STATUSES:
                raise ValueError(f"unknown line status {status!r}")
        chosen = statuses if len(statuses) == len(lines) else statuses * len(lines)
        for line, status in zip(lines, chosen, strict=True):
            line["partsOrderLineStatus"] = status
        self._restatus(order)
        return order

    def expire_tokens(self) -> None:
        """Make every issued access token expire now (as a revocation at Apigee would)."""
        now = self.clock()
        self._tokens = dict.fromkeys(self._tokens, now)

    # -- rendering --------------------------------------------------------------------------------

    @staticmethod
    def _envelope(request: Request, status: int, message: str, details: Iterable[tuple[str, Any, str]]) -> Response:
        return JSONResponse(
            {
                "correlationId": str(uuid.uuid4()),
                "message": message,
                "details": [{"field": f, "value": v, "issue": i} for f, v, i in details],
                "links": [{"method": request.method, "rel": "self", "href": request.url.path, "title": message}],
            },
            status_code=status,
        )

    def _render_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return self._envelope(request, exc.status, exc.message, exc.details)

    def _render_http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # Undocumented: Keyloop's answer for a path or method it does not serve; kept in its envelope.
        message = "Method not allowed" if exc.status_code == 405 else "Resource not found"
        return self._envelope(request, exc.status_code, message, [("path", request.url.path, message)])

    # -- token endpoint ---------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        await self.faults.delay()
        if self.faults.take("token_server_error"):
            return JSONResponse({"ErrorCode": "service_unavailable", "Error": "Service unavailable"}, status_code=503)
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            # Apigee accepts the credentials as HTTP Basic too.
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                client_id = client_secret = None
        # Apigee's own error shape for the token endpoint, not the API envelope.
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"ErrorCode": "invalid_request", "Error": f"Unsupported grant type : {form.get('grant_type')}"},
                status_code=400,
            )
        if (
            client_id != self.client_id
            or not client_secret
            or not secrets.compare_digest(client_secret, self.client_secret)
        ):
            return JSONResponse({"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}, status_code=401)
        token = secrets.token_urlsafe(21)
        now = self.clock()
        self._tokens[token] = now + self.token_ttl
        self.tokens_issued.append(token)
        return JSONResponse(
            {
                "refresh_token_expires_in": "0",
                "api_product_list": "[Parts Orders]",
                "api_product_list_json": ["Parts Orders"],
                "organization_name": "keyloop",
                "token_type": "BearerToken",
                "issued_at": str(int(now * 1000)),
                "client_id": self.client_id,
                "access_token": token,
                "application_name": "parts-mcp-sandbox",
                "scope": "",
                "expires_in": str(int(self.token_ttl)),  # Apigee sends it as a string
                "refresh_count": "0",
                "status": "approved",
            }
        )

    # -- API plumbing -----------------------------------------------------------------------------

    async def _enter(self, request: Request) -> None:
        """Authenticate, check the enterprise and store, apply latency and server faults."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        expires = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None:
            raise _ApiError(401, "Unauthorized", [("Authorization", None, "Invalid access token")])
        if self.clock() >= expires:
            raise _ApiError(401, "Unauthorized", [("Authorization", None, "Access token expired")])
        params = request.path_params
        if params.get("enterprise_id") != self.enterprise_id or params.get("store_id") != self.store_id:
            raise _ApiError(
                404,
                "Resource not found",
                [("enterpriseId/storeId", f"{params.get('enterprise_id')}/{params.get('store_id')}", "Unknown store")],
            )
        await self.faults.delay()
        if self.faults.take("server_error"):
            raise _ApiError(500, "Internal server error", [])

    # -- brands, search, price-availability -------------------------------------------------------

    async def _brands(self, request: Request) -> Response:
        await self._enter(request)
        brands = [{"brandCode": code, "description": name} for code, name in BRANDS.items()]
        return JSONResponse({"brands": brands, "totalItems": len(brands), "totalPages": 1})

    async def _search(self, request: Request) -> Response:
        await self._enter(request)
        query = request.query_params
        part_code = (query.get("partCode") or "").replace(" ", "").casefold()
        brand_code = (query.get("brandCode") or "").strip().casefold()
        if not part_code:
            _invalid("partCode", query.get("partCode"), "partCode is required")
        if self.search_requires_brand and not brand_code:
            # Undocumented either way: the third-party client always sends a brand; some stores may insist.
            _invalid("brandCode", None, "brandCode is required")
        page = _positive_int(query.get("page"), "page", 1)
        page_size = min(_positive_int(query.get("pageSize"), "pageSize", 20), _PAGE_SIZE_MAX)
        # Undocumented: exact part-code match, the brand optional; nothing found is 200 with no parts.
        matches = [
            part
            for part in self._parts.values()
            if part.part_code.casefold() == part_code and (not brand_code or part.brand_code.casefold() == brand_code)
        ]
        total_pages = max(1, -(-len(matches) // page_size))
        chosen = matches[(page - 1) * page_size : page * page_size]
        return JSONResponse(
            {
                "parts": [self._part_json(part) for part in chosen],
                "totalItems": len(matches),
                "totalPages": total_pages,
                "links": [{"method": "GET", "rel": "self", "href": str(request.url.path), "title": "Parts"}],
            }
        )

    def _part_json(self, part: CatalogPart) -> dict[str, Any]:
        body: dict[str, Any] = {
            "partId": part.part_id,
            "partCode": part.part_code,
            "brandCode": part.brand_code,
            "description": part.description,
        }
        if part.superseded_by:
            replacement = self._parts.get(part.superseded_by.casefold())
            body["alternativeParts"] = {
                "supersessionDate": "2023-03-01T00:00:00.000Z",
                "alternativeType": "SUPERSESSION",
                "parts": [self._part_json(replacement)] if replacement else [],
            }
        return body

    async def _price_availability(self, request: Request) -> Response:
        await self._enter(request)
        part = self._parts.get(request.path_params["part_id"].casefold())
        if part is None:
            raise _ApiError(404, "Resource not found", [("partId", request.path_params["part_id"], "Part not found")])
        return JSONResponse(
            {
                "partId": part.part_id,
                "brandCode": part.brand_code,
                "partCode": part.part_code,
                "listPrice": _price(part.list_price),
                "surcharge": _price(part.surcharge),
                "availableStock": self.stock[part.part_id],
                "salesBlocked": part.sales_blocked is not None,
                "salesBlockedDescription": part.sales_blocked,
                "isAvailableForBackOrder": part.back_order,
                "leadTimeInDays": part.lead_time_days,
                # Undocumented shape: the reference types an order line must carry.
                "mandatoryVehicleReferences": [{"type": t} for t in part.mandatory_references],
                # Undocumented shape: the customer's unit price per order type the dealer offers.
                "orderPrices": [{"orderType": t, "orderPrice": _price(part.order_price(t))} for t in self.order_types],
            }
        )

    # -- parts orders -----------------------------------------------------------------------------

    async def _create_order(self, request: Request) -> Response:
        await self._enter(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            _invalid("Content-Type", media_type, "Content-Type must be application/json")
        try:
            body = json.loads(await request.body())
        except ValueError:
            _invalid("body", None, "The body is not valid JSON")
        if not isinstance(body, dict):
            _invalid("body", None, "The body must be a JSON object")

        customer = self.customers.get(str(body.get("customerId") or ""))
        if customer is None:
            # "Orders can only be created for existing customers."
            _invalid("customerId", body.get("customerId"), "Customer not found")
        order_type = body.get("orderType")
        if order_type not in ORDER_TYPES:
            _invalid("orderType", order_type, f"The value '{order_type}' is not valid.")
        if order_type not in self.order_types:
            _invalid("orderType", order_type, f"This dealer does not accept {order_type} orders")
        reference = body.get("orderReference")
        if reference is not None and not isinstance(reference, str):
            _invalid("orderReference", reference, "orderReference must be a string")
        if self.require_order_reference and not (reference or "").strip():
            _invalid("orderReference", reference, "This dealer requires an orderReference")
        contact = _object_or_none(body, "orderContact")
        address = _object_or_none(body, "alternateDeliveryAddress")
        if address is not None:
            for name in ("streetName", "postalCode", "city", "countryCode"):
                if address.get(name) in (None, ""):
                    _invalid(f"alternateDeliveryAddress.{name}", address.get(name), f"{name} is required")
        lines = self._validate_lines(body.get("parts"))

        order_id = self._next_id
        self._next_id += 1
        order_lines: list[dict[str, Any]] = []
        for part, quantity, references in lines:
            in_stock = self.stock[part.part_id]
            status = "RESERVED" if in_stock >= quantity else "BACKORDER"
            if status == "RESERVED":
                self.stock[part.part_id] -= quantity
            order_lines.append(
                {
                    "orderLineId": str(uuid.uuid4()),
                    "partId": part.part_id,
                    "quantity": quantity,
                    "unitOfMeasure": {"unit": "PIECE", "value": 1},
                    "unitOfSale": 1,
                    "partsOrderLineStatus": status,
                    "mandatoryVehicleReferences": references,
                    "listPrice": _price(part.list_price),
                    "orderPrice": _price(part.order_price(order_type)),
                }
            )
        order: dict[str, Any] = {
            "partsOrderId": order_id,
            "partsOrderDateTime": _iso(self.clock()),
            "orderStatus": derive_order_status(line["partsOrderLineStatus"] for line in order_lines),
            "customer": {
                "customerId": customer.customer_id,
                "familyName": customer.family_name,
                "givenName": customer.given_name,
                "titleCommon": customer.title,
            },
            "company": dict(customer.company),
            "orderContact": contact,
            "deliveryAddress": address or dict(customer.invoice_address),
            "orderType": order_type,
            "orderReference": reference,
            "parts": order_lines,
        }
        if body.get("companyId"):
            order["company"] = {**order["company"], "companyId": body["companyId"]}
        accepted_async = order_type in self.async_order_types or self.faults.take("accept_async")
        self._state[str(order_id)] = _OrderState(reads_until_visible=self.async_reads if accepted_async else 0)
        self.orders.append(order)

        response = (
            JSONResponse({"partsOrderId": order_id}, status_code=202)
            if accepted_async
            else JSONResponse(self._wire(order), status_code=201)
        )
        if self.faults.take("drop_after_commit"):
            return DroppedConnectionResponse(response)
        return response

    def _validate_lines(self, raw: Any) -> list[tuple[CatalogPart, int, list[dict[str, str]]]]:
        if not isinstance(raw, list) or not raw:
            _invalid("parts", raw, "parts must be a non-empty array")
        lines: list[tuple[CatalogPart, int, list[dict[str, str]]]] = []
        for index, line in enumerate(raw):
            where = f"parts[{index}]"
            if not isinstance(line, dict):
                _invalid(where, line, "Each part line must be an object")
            ident = line.get("part")
            if not isinstance(ident, dict):
                _invalid(f"{where}.part", ident, "part is required")
            part_id = ident.get("partId")
            if not part_id and ident.get("brandCode") is not None and ident.get("partCode") is not None:
                part_id = f"{ident['brandCode']}{ident['partCode']}"
            part = self._parts.get(str(part_id or "").casefold())
            if part is None:
                _invalid(f"{where}.part.partId", part_id, "Part not found")
            quantity = line.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                _invalid(f"{where}.quantity", quantity, "quantity must be a positive integer")
            if part.sales_blocked is not None:
                _invalid(f"{where}.part.partId", part.part_id, f"The part is blocked for sale: {part.sales_blocked}")
            references = self._references(line.get("mandatoryVehicleReferences"), where)
            given = {r["type"] for r in references}
            for wanted in part.mandatory_references:
                if wanted not in given:
                    _invalid(
                        f"{where}.mandatoryVehicleReferences",
                        None,
                        f"The vehicle reference {wanted} is mandatory for part {part.part_id}",
                    )
            if self.stock[part.part_id] < quantity and not part.back_order:
                _invalid(
                    f"{where}.quantity",
                    quantity,
                    f"Only {self.stock[part.part_id]} available and part {part.part_id} cannot be back-ordered",
                )
            lines.append((part, quantity, references))
        return lines

    @staticmethod
    def _references(raw: Any, where: str) -> list[dict[str, str]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            _invalid(f"{where}.mandatoryVehicleReferences", raw, "mandatoryVehicleReferences must be an array")
        references: list[dict[str, str]] = []
        for index, entry in enumerate(raw):
            at = f"{where}.mandatoryVehicleReferences[{index}]"
            if not isinstance(entry, dict):
                _invalid(at, entry, "Each reference must be an object with type and value")
            kind, value = entry.get("type"), entry.get("value")
            if not isinstance(kind, str) or not kind or not isinstance(value, str) or not value.strip():
                _invalid(at, value, "type and value are required")
            references.append({"type": kind, "value": value})
        return references

    async def _get_order(self, request: Request) -> Response:
        await self._enter(request)
        order_id = request.path_params["order_id"]
        order = self._order(order_id)
        state = self._state.get(str(order.get("partsOrderId"))) if order else None
        if order is None or state is None:
            raise _ApiError(404, "Resource not found", [("partsOrderId", order_id, "Parts order not found")])
        if state.reads_until_visible > 0:
            # Undocumented: an order accepted with 202 is not readable until the DMS has processed it.
            state.reads_until_visible -= 1
            raise _ApiError(404, "Resource not found", [("partsOrderId", order_id, "Parts order not found")])
        if state.closed_at is not None and self.clock() >= state.closed_at + self.retention:
            # "Parts orders are not retained indefinitely."
            raise _ApiError(404, "Resource not found", [("partsOrderId", order_id, "Parts order not found")])
        return JSONResponse(self._wire(order))

    def _order(self, order_id: int | str) -> dict[str, Any] | None:
        return next((o for o in self.orders if str(o["partsOrderId"]) == str(order_id).strip()), None)

    def _restatus(self, order: dict[str, Any]) -> None:
        status = derive_order_status(line["partsOrderLineStatus"] for line in order["parts"])
        order["orderStatus"] = status
        state = self._state[str(order["partsOrderId"])]
        if status == "CLOSED" and state.closed_at is None:
            state.closed_at = self.clock()
        elif status != "CLOSED":
            state.closed_at = None

    @staticmethod
    def _wire(order: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in order.items() if v is not None}
        lines = []
        for line in order["parts"]:
            wire = {k: v for k, v in line.items() if k != "mandatoryVehicleReferences"}
            references = line["mandatoryVehicleReferences"]
            # The seed's response names it singular, with one object.
            if len(references) == 1:
                wire["mandatoryVehicleReference"] = references[0]
            elif references:
                wire["mandatoryVehicleReference"] = references
            lines.append(wire)
        # The seed's response shows `parts` as one object (the request has an array): one line is
        # answered that way, several as an array.
        body["parts"] = lines[0] if len(lines) == 1 else lines
        return body


def _positive_int(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        _invalid(name, raw, f"{name} must be a positive integer")
    return int(raw)


def _object_or_none(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        _invalid(name, value, f"{name} must be an object")
    return value


# Keyloop's base_url is the host root: the token endpoint and the API share it.
SIMULATED = Simulated("", KeyloopSimulator, SANDBOX_SETTINGS)
