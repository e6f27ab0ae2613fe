"""Simulator of Shopmonkey's public REST API v3: purchase orders (list, get, delete) and inventory parts.

Follows the vendor document (seeds/004) and docs/vendors.md section 5. Where the documents leave
a detail open, the choice made here is marked "undocumented" so a reader can tell it from fact.

What the documents establish and the simulator does: bearer API keys; the envelope
``{success, data, meta?: {hasMore, total}}``; errors as ``{success: false, code, message,
documentation_url?, data?}``; ``limit`` silently clamped to 100 with ``skip`` paging; money as
integer cents with no currency; purchase orders with embedded ``parts``, ``tires``, ``fees`` and
``vendor``; no way to create a purchase order (POs are made in Shopmonkey's web app). The seeded
data mixes the schema's spellings (``fulfilledDate``, ``totalCostCents``, integer ``number``) with
the older ones the seed's own examples show (``fullfiledDate``, ``totalPriceCents``, ``number`` as
a string, a flat ``items`` list), because a client meets both.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parts_mcp.sandbox._entry import Simulated
from parts_mcp.sandbox._faults import Faults, RecordedRequest, RecordingMiddleware, admin_routes

__all__ = [
    "FAULT_NAMES",
    "INVENTORY",
    "MAX_LIMIT",
    "SANDBOX_API_KEY",
    "STATUSES",
    "InventoryPart",
    "ShopmonkeySimulator",
]

# Undocumented: the format of Shopmonkey API keys (they are long opaque bearer tokens).
SANDBOX_API_KEY: Final = "sm_sbx_" + "2e9b7c4a0f1d6e83b5a7"

MAX_LIMIT: Final = 100  # observed by integrators: larger limits are clamped silently
DEFAULT_LIMIT: Final = 20  # undocumented: the page size when no limit is sent
STATUSES: Final = ("Draft", "Ordered", "Received", "Fulfilled", "Cancelled")
PROVIDERS: Final = ("PartsTech", "Nexpart", "Epicor", "Worldpac", "ATD", "RepairLink")
FAULT_NAMES: Final = frozenset({"rate_limit", "server_error"})
PURCHASE_ORDER_COUNT: Final = 160
SEED: Final = 20240604
COMPANY_ID: Final = "sandbox-company-0001"
LOCATION_ID: Final = "sandbox-location-0001"
_DOCS = "https://shopmonkey.dev/overview"
# Purchase orders are dated from here, so the seeded data is the same on every run.
_EPOCH: Final = datetime(2025, 1, 6, 8, 0, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class InventoryPart:
    """One seeded inventory part: the shop's own stock record, with its stored costs in cents."""

    id: str
    number: str
    name: str
    wholesale_cost_cents: int | None
    retail_cost_cents: int
    quantity: int
    bin_location: str
    deleted: bool = False


def _inv(
    n: int, number: str, name: str, wholesale: int | None, retail: int, qty: int, deleted: bool = False
) -> InventoryPart:
    return InventoryPart(f"invpart_{n:04d}", number, name, wholesale, retail, qty, f"A{n % 7 + 1}-{n % 4 + 1}", deleted)


# fmt: off
INVENTORY: Final[tuple[InventoryPart, ...]] = (
    _inv(1, "17D1210CH", "Ceramic Front Disc Brake Pad Set", 4289, 7499, 6),
    _inv(2, "17D1367CH", "Ceramic Rear Disc Brake Pad Set", 3875, 6799, 4),
    _inv(3, "18A2324", "Front Disc Brake Rotor, Vented", 5612, 9899, 8),
    _inv(4, "18A2325", "Rear Disc Brake Rotor, Solid", 4420, 7999, 2),
    _inv(5, "PF63E", "Engine Oil Filter", 649, 1299, 48),
    _inv(6, "A3144C", "Engine Air Filter", 1537, 2899, 12),
    _inv(7, "CF10285", "Cabin Air Filter", 1299, 2599, 10),
    _inv(8, "ILKAR7B11", "Iridium Spark Plug", 1045, 1899, 32),
    _inv(9, "K060882", "Serpentine Belt, 6-Rib", 3190, 5699, 5),
    _inv(10, "EXP-5W30-5QT", "Full Synthetic Motor Oil 5W-30, 5 qt", 2799, 4499, 24),
    _inv(11, "H6-AGM", "Battery, Group 48 AGM, 760 CCA", 17850, 26999, 3),
    _inv(12, "TH6611", "Engine Coolant Thermostat with Housing", 2866, 5499, 4),
    _inv(13, "AW9431", "Engine Water Pump", 6473, 11999, 2),
    _inv(14, "13592", "Alternator, Remanufactured, 150 A", 15420, 27999, 1),
    _inv(15, "17738", "Starter Motor, Remanufactured", 12875, 22999, 1),
    _inv(16, "UF-413", "Ignition Coil", 4150, 7699, 6),
    _inv(17, "234-4668", "Oxygen Sensor, Upstream", 5599, 9999, 3),
    _inv(18, "513196", "Front Wheel Hub and Bearing Assembly", 8910, 15999, 2),
    _inv(19, "K80230", "Front Sway Bar End Link", 2185, 4299, 6),
    _inv(20, "K80996", "Front Lower Ball Joint", 3340, 6299, 4),
    _inv(21, "ES3493", "Outer Tie Rod End", 2475, 4799, 4),
    _inv(22, "BF-DOT3-32", "Brake Fluid DOT 3, 32 oz", 899, 1699, 18),
    _inv(23, "22357", "Upper Radiator Hose", 2210, 4199, 3),
    _inv(24, "G7315", "Fuel Filter", 1780, 3399, 5),
    _inv(25, "H11LL", "Headlight Bulb H11, Long Life", 1395, 2699, 10),
    _inv(26, "ATF-MV-1QT", "Multi-Vehicle Automatic Transmission Fluid, 1 qt", 745, 1399, 36),
    _inv(27, "AF-5050-1G", "Antifreeze Coolant 50/50 Prediluted, 1 gal", 1399, 2499, 14),
    _inv(28, "172330", "Front Strut and Coil Spring Assembly", 13250, 23999, 2),
    _inv(29, "VS50762R", "Valve Cover Gasket Set", 3125, 5999, 3),
    _inv(30, "66-3401", "Front Left CV Axle Assembly", 7865, 13999, 0),
    # No wholesale cost recorded: only the retail price is known.
    _inv(31, "WB-22", "Wiper Blade, Beam, 22 in", None, 2199, 20),
    # Deleted parts stay in the data (Shopmonkey soft-deletes) but a client must not offer them.
    _inv(32, "PF48E", "Engine Oil Filter (superseded)", 612, 1199, 0, deleted=True),
)
# fmt: on

_TIRES: Final = (
    ("MIC-46577", "Michelin Defender2 225/65R17 102H", 16999),
    ("BFG-10329", "BFGoodrich All-Terrain T/A KO2 265/70R17 121S", 23450),
    ("GY-748653", "Goodyear Assurance WeatherReady 215/55R17 94V", 15275),
    ("BRI-008712", "Bridgestone Blizzak WS90 205/55R16 91H", 13980),
)
_VENDORS: Final = (
    ("vendor_worldpac", "Worldpac"),
    ("vendor_napa", "NAPA Auto Parts"),
    ("vendor_oreilly", "O'Reilly Auto Parts"),
    ("vendor_autozone", "AutoZone Commercial"),
    ("vendor_atd", "American Tire Distributors"),
    ("vendor_carquest", "Carquest Auto Parts"),
)
# Undocumented: fee names and `kind` values; the schema says only that fees have them.
_FEES: Final = (("Shipping", "Shipping", 1295), ("Core Charge", "CoreCharge", 4500), ("Hazmat Fee", None, 850))
_TIRE_DISPOSAL: Final = ("Tire Disposal Fee", None, 350)
_CUSTOMERS: Final = ("Dana Whitfield", "Luis Ortega", "Priya Raman", "Marcus Bell", "Hannah Kim", "Tom Reyes")


class _ApiError(Exception):
    """An answer in Shopmonkey's error shape; raised anywhere in a handler, rendered by the app."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        documentation_url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data
        self.headers = dict(headers or {})
        self.documentation_url = documentation_url


def _error_response(exc: _ApiError) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "code": exc.code, "message": exc.message}
    if exc.documentation_url:
        body["documentation_url"] = exc.documentation_url
    if exc.data is not None:
        body["data"] = exc.data
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _invalid(field: str, message: str) -> NoReturn:
    # Undocumented: the code and the "<location>/<field> ..." wording (Fastify's validation style,
    # which the API's errors resemble); the field is repeated under data for clients.
    raise _ApiError(400, "VALIDATION_ERROR", f"{field} {message}", data={"field": field})


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        _invalid(f"querystring/{name}", "must be integer")
    if value < minimum:
        _invalid(f"querystring/{name}", f"must be >= {minimum}")
    return value


def _body_int(body: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        _invalid(f"body/{name}", "must be integer")
    if value < minimum:
        _invalid(f"body/{name}", f"must be >= {minimum}")
    return value


def _where_param(request: Request) -> dict[str, Any]:
    raw = request.query_params.get("where")
    if raw is None:
        return {}
    try:
        where = json.loads(raw)
    except ValueError:
        _invalid("querystring/where", "must be a JSON object")
    if not isinstance(where, dict):
        _invalid("querystring/where", "must be a JSON object")
    return where


_RANGE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gte": lambda value, bound: value >= bound,
    "lte": lambda value, bound: value <= bound,
    "gt": lambda value, bound: value > bound,
    "lt": lambda value, bound: value < bound,
}


def _matches(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """Equality on any field, and bare ``gte``/``lte`` ranges; Mongo-style ``$`` operators are dropped silently.

    Dropping ``$gte`` without an error is the behaviour integrators report; unknown fields match nothing.
    """
    for key, wanted in where.items():
        if key.startswith("$"):
            continue
        value = record.get(key)
        if isinstance(wanted, dict):
            for op, bound in wanted.items():
                check = _RANGE.get(op)
                if check is None:
                    continue
                if value is None or type(value) is not type(bound) or not check(value, bound):
                    return False
        elif isinstance(value, int | str) and isinstance(wanted, int | str) and not isinstance(wanted, bool):
            # `number` is an integer in the schema and a string in older records: compare as text.
            if str(value) != str(wanted):
                return False
        elif value != wanted:
            return False
    return True


def _page(items: list[dict[str, Any]], limit: int, skip: int) -> JSONResponse:
    limit = min(limit, MAX_LIMIT)
    page = items[skip : skip + limit]
    return JSONResponse(
        {"success": True, "data": page, "meta": {"hasMore": skip + len(page) < len(items), "total": len(items)}}
    )


# -------------------------------------------------------------------------------------- seeding


def _object_id(rng: random.Random, epoch: float) -> str:
    # Shaped like a MongoDB ObjectId (time first), so ordering by id is ordering by creation.
    return f"{int(epoch):08x}{rng.getrandbits(64):016x}"


def _line(
    rng: random.Random, po_id: str, created_epoch: float, ordinal: int, status: str, **fields: Any
) -> dict[str, Any]:
    quantity = fields.pop("quantity")
    if status in ("Received", "Fulfilled"):
        received = quantity
    elif status == "Ordered" and quantity > 1 and rng.random() < 0.3:
        received = quantity // 2  # a partial delivery
    else:
        received = 0
    return {
        "id": _object_id(rng, created_epoch),
        "companyId": COMPANY_ID,
        "locationId": LOCATION_ID,
        "purchaseOrderId": po_id,
        "createdDate": _iso(created_epoch),
        "updatedDate": None,
        "quantity": quantity,
        "receivedQuantity": received,
        "ordinal": ordinal,
        "status": status,
        **fields,
    }


def _seed_purchase_orders(parts: tuple[InventoryPart, ...]) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    stocked = [p for p in parts if not p.deleted]
    orders: list[dict[str, Any]] = []
    for index in range(PURCHASE_ORDER_COUNT):
        created_epoch = _EPOCH + index * 86_400 * 1.9 + rng.randint(0, 36_000)
        created = _iso(created_epoch)
        po_id = _object_id(rng, created_epoch)
        # The first five cover every status; the rest lean the way a busy shop's list does.
        status = STATUSES[index] if index < len(STATUSES) else rng.choices(STATUSES, weights=(2, 3, 3, 6, 1))[0]
        vendor_id, vendor_name = _VENDORS[rng.randrange(len(_VENDORS))]
        provider = rng.choice((None, None, *PROVIDERS))
        repair_order = rng.random() < 0.6

        part_lines = []
        for ordinal, part in enumerate(rng.sample(stocked, rng.randint(1, 4)), start=1):
            # What the shop paid this time: near, not always at, the stored wholesale cost.
            base = part.wholesale_cost_cents or part.retail_cost_cents * 6 // 10
            part_lines.append(
                _line(
                    rng, po_id, created_epoch, ordinal, status,
                    name=part.name, number=part.number, quantity=rng.choice((1, 1, 2, 2, 4, 6)),
                    costCents=base + rng.choice((0, 0, -150, 99, 240)), inventoryPartId=part.id,
                )
            )  # fmt: skip
        tire_lines = []
        if index % 3 == 0:
            number, name, cost = _TIRES[rng.randrange(len(_TIRES))]
            tire_lines.append(
                _line(
                    rng, po_id, created_epoch, len(part_lines) + 1, status,
                    name=name, number=number, quantity=rng.choice((2, 4)), costCents=cost, inventoryTireId=None,
                )
            )  # fmt: skip
        fee_specs = rng.sample(_FEES, rng.randint(0, 2)) + ([_TIRE_DISPOSAL] if tire_lines else [])
        fees = [
            {
                "id": _object_id(rng, created_epoch),
                "createdDate": created,
                "updatedDate": None,
                "companyId": COMPANY_ID,
                "locationId": LOCATION_ID,
                "purchaseOrderId": po_id,
                "amountCents": amount * (sum(t["quantity"] for t in tire_lines) if name == _TIRE_DISPOSAL[0] else 1),
                "name": name,
                "ordinal": ordinal,
                "purchaseOrderPartId": None,
                "kind": kind,
            }
            for ordinal, (name, kind, amount) in enumerate(fee_specs, start=1)
        ]
        total = sum(line["costCents"] * line["quantity"] for line in (*part_lines, *tire_lines)) + sum(
            fee["amountCents"] for fee in fees
        )

        ordered = created_epoch + 3_600 if status != "Draft" else None
        fulfilled = created_epoch + 3 * 86_400 if status == "Fulfilled" else None
        updated = fulfilled or (created_epoch + 2 * 86_400 if status in ("Received", "Cancelled") else ordered)
        number = 1001 + index
        record: dict[str, Any] = {
            "id": po_id,
            "companyId": COMPANY_ID,
            "locationId": LOCATION_ID,
            "meta": {"userId": "user_sandbox_0001", "sessionId": f"session_{index:04d}", "version": 1 + (index % 4)},
            # Older records carry `number` as a string, as the seed's examples do.
            "number": str(number) if index % 5 == 2 else number,
            "status": status,
            "invoiceNumber": f"INV-{48_200 + index}" if status in ("Received", "Fulfilled") else None,
            "orderId": f"order_{index:05d}" if repair_order else None,
            "note": rng.choice((None, None, "Deliver to bay 3", "Customer waiting; rush", "Call before shipping")),
            "provider": provider,
            "providerData": None,
            "createdDate": created,
            "updatedDate": _iso(updated) if updated else None,
            "orderedDate": _iso(ordered) if ordered else None,
            "vendorId": vendor_id,
            "vendor": {"name": vendor_name},
            "order": (
                {
                    "number": str(7000 + index),
                    "name": rng.choice(("Brake job", "Timing belt", "60k service", "Tire replacement")),
                    "coalescedName": f"#{7000 + index} {rng.choice(_CUSTOMERS)}",
                }
                if repair_order
                else None
            ),
        }
        # The schema's names, and the older spellings the seed's examples still show.
        record["totalPriceCents" if index % 4 == 1 else "totalCostCents"] = total
        record["fullfiledDate" if index % 3 == 0 else "fulfilledDate"] = _iso(fulfilled) if fulfilled else None
        if index % 25 == 7:
            # The seed's list example: one flat `items` list with a `type`, no parts/tires/fees.
            record["items"] = [
                {
                    "id": line["id"],
                    "companyId": COMPANY_ID,
                    "locationId": LOCATION_ID,
                    "purchaseOrderId": po_id,
                    "name": line["name"],
                    "type": "Tire" if "inventoryTireId" in line else "Part",
                    "quantity": line["quantity"],
                    "costCents": line["costCents"],
                    "shippingChargeCents": 0,
                    "coreChargesCents": 0,
                    "exciseTaxCents": 0,
                    "vendorId": vendor_id,
                    "lineItemId": None,
                    "inventoryItemId": line.get("inventoryPartId"),
                    "number": line["number"],
                    "status": None,
                    "note": None,
                    "imageUrl": None,
                    "createdDate": created,
                    "updatedDate": None,
                }
                for line in (*part_lines, *tire_lines)
            ]
            record["totalPriceCents" if index % 4 == 1 else "totalCostCents"] = sum(
                item["costCents"] * item["quantity"] for item in record["items"]
            )
        else:
            record.update(parts=part_lines, tires=tire_lines, fees=fees)
        orders.append(record)
    return orders


def _inventory_record(part: InventoryPart) -> dict[str, Any]:
    return {
        "id": part.id,
        "companyId": COMPANY_ID,
        "locationId": LOCATION_ID,
        "name": part.name,
        "number": part.number,
        "note": None,
        "categoryId": None,
        "brandId": None,
        "vendorId": None,
        "binLocation": part.bin_location,
        "quantity": part.quantity,
        "availableQuantity": part.quantity,
        "reservedQuantity": 0,
        "onEstimateQuantity": 0,
        "otherLocationsAvailableQuantity": 0,
        "minCriticalQuantity": 2,
        "maxCriticalQuantity": 20,
        "retailCostCents": part.retail_cost_cents,
        "wholesaleCostCents": part.wholesale_cost_cents,
        "taxable": True,
        "pricingMatrixId": None,
        "deleted": part.deleted,
        "deletedDate": _iso(_EPOCH) if part.deleted else None,
    }


# ------------------------------------------------------------------------------------ simulator


class ShopmonkeySimulator:
    """Stateful Shopmonkey v3 API. Serve ``app`` under any prefix (the real one is ``/v3``).

    Faults (arm on ``faults``): ``rate_limit`` answers the next API call 429 with ``Retry-After: 1``;
    ``server_error`` answers the next API call 500. With ``burst_limit`` set, more than that many
    calls within ``burst_window`` seconds of ``clock`` are answered 429 with the seconds until the
    window frees up (Shopmonkey's limits are undocumented). It is off by default: under a manual
    clock that never moves, any fixed limit would eventually fail a long test.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (SANDBOX_API_KEY,),
        clock: Callable[[], float] = time.time,
        burst_limit: int | None = None,
        burst_window: float = 60.0,
    ) -> None:
        self.api_keys = frozenset(k for k in api_keys if k)
        if not self.api_keys:
            raise ValueError("give at least one API key")
        if (burst_limit is not None and burst_limit < 1) or burst_window <= 0:
            raise ValueError("burst_limit and burst_window must be positive")
        self.clock = clock
        self.burst_limit = burst_limit
        self.burst_window = burst_window
        self.faults = Faults(names=FAULT_NAMES)
        self.requests: list[RecordedRequest] = []
        self.inventory: list[dict[str, Any]] = [_inventory_record(p) for p in INVENTORY]
        self.purchase_orders: list[dict[str, Any]] = _seed_purchase_orders(INVENTORY)
        self._recent: deque[float] = deque()
        self.app = Starlette(
            routes=[
                Route("/purchase_order", self._list_purchase_orders, methods=["GET"]),
                Route("/purchase_order/cart/order", self._cart_order, methods=["GET"]),
                Route("/purchase_order/cart/swap", self._cart_swap, methods=["GET"]),
                Route("/purchase_order/{id}", self._get_purchase_order, methods=["GET"]),
                Route("/purchase_order/{id}", self._delete_purchase_order, methods=["DELETE"]),
                Route("/purchase_order_part/{id}", self._get_line("parts"), methods=["GET"]),
                Route("/purchase_order_tire/{id}", self._get_line("tires"), methods=["GET"]),
                Route("/inventory_part/search", self._search_inventory, methods=["POST"]),
                Route("/inventory_part/{id}", self._get_inventory_part, methods=["GET"]),
                *admin_routes(self.faults, lambda: self.purchase_orders),
            ],
            middleware=[Middleware(RecordingMiddleware, log=self.requests)],
            exception_handlers={_ApiError: self._render_api_error, HTTPException: self._render_http_error},
        )

    def purchase_order(self, po_id: str) -> dict[str, Any]:
        """The stored record of one purchase order, exactly as the API serves it.

        Raises:
            KeyError: no such purchase order.
        """
        for record in self.purchase_orders:
            if record["id"] == po_id:
                return record
        raise KeyError(po_id)

    # -- rendering ------------------------------------------------------------------------------

    @staticmethod
    def _render_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return _error_response(exc)

    @staticmethod
    def _render_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # Undocumented: the answer for a path or method the API does not serve (e.g. POST
        # /purchase_order, which does not exist), kept in the documented error shape.
        if exc.status_code == 405:
            error = _ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported on {request.url.path}")
            error.headers.update(exc.headers or {})
            return _error_response(error)
        return _error_response(_ApiError(404, "NOT_FOUND", f"Route {request.method}:{request.url.path} not found"))

    # -- the checks every API call goes through -------------------------------------------------

    async def _admit(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self.api_keys:
            # Undocumented: the code value; the documents say only that a missing or bad key is 401.
            raise _ApiError(
                401, "UNAUTHORIZED", "Missing or invalid API key in the Authorization header", documentation_url=_DOCS
            )
        await self.faults.delay()
        now = self.clock()
        while self._recent and now - self._recent[0] >= self.burst_window:
            self._recent.popleft()
        if self.faults.take("rate_limit"):
            self._rate_limited(1)
        if self.burst_limit is not None:
            if len(self._recent) >= self.burst_limit:
                self._rate_limited(max(1, math.ceil(self.burst_window - (now - self._recent[0]))))
            self._recent.append(now)
        if self.faults.take("server_error"):
            raise _ApiError(500, "INTERNAL_SERVER_ERROR", "An unexpected error occurred")

    @staticmethod
    def _rate_limited(seconds: int) -> NoReturn:
        # Undocumented: rate limits, the code and the header; integrators retry 429 honouring Retry-After.
        raise _ApiError(
            429, "TOO_MANY_REQUESTS", "Rate limit exceeded, retry later", headers={"Retry-After": str(seconds)}
        )

    # -- purchase orders ------------------------------------------------------------------------

    async def _list_purchase_orders(self, request: Request) -> Response:
        await self._admit(request)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1)
        skip = _int_param(request, "skip", 0, 0)
        where = _where_param(request)
        ids = request.query_params.getlist("ids[]") or request.query_params.getlist("ids")
        records = [r for r in self.purchase_orders if (not ids or r["id"] in ids) and _matches(r, where)]
        # Undocumented: the default order (newest first). `orderby` is honoured only on id, as
        # integrators observed; any other value is ignored without an error.
        orderby = (request.query_params.get("orderby") or "").strip()
        if orderby in ("id", "id asc", "+id"):
            records.sort(key=lambda r: r["id"])
        elif orderby in ("-id", "id desc"):
            records.sort(key=lambda r: r["id"], reverse=True)
        else:
            records.sort(key=lambda r: r["createdDate"], reverse=True)
        return _page(records, limit, skip)

    async def _cart(self, request: Request, statuses: tuple[str, ...]) -> Response:
        await self._admit(request)
        # Inferred: the documents do not name the parameter that takes the repair order.
        order_id = request.query_params.get("orderId")
        if not order_id:
            _invalid("querystring/orderId", "is required")
        fields = ("id", "status", "provider", "fees", "parts", "tires", "vendor")
        data = [
            {k: r.get(k) for k in fields}
            for r in self.purchase_orders
            if r.get("orderId") == order_id and r.get("provider") and r["status"] in statuses
        ]
        return JSONResponse({"data": data, "success": True})

    async def _cart_order(self, request: Request) -> Response:
        return await self._cart(request, ("Draft",))

    async def _cart_swap(self, request: Request) -> Response:
        return await self._cart(request, ("Draft", "Ordered"))

    def _find(self, po_id: str) -> dict[str, Any]:
        try:
            return self.purchase_order(po_id)
        except KeyError:
            raise _ApiError(404, "NOT_FOUND", f"PurchaseOrder with id {po_id} not found") from None

    async def _get_purchase_order(self, request: Request) -> Response:
        await self._admit(request)
        return JSONResponse({"success": True, "data": self._find(request.path_params["id"])})

    async def _delete_purchase_order(self, request: Request) -> Response:
        await self._admit(request)
        record = self._find(request.path_params["id"])
        self.purchase_orders.remove(record)
        # vendors.md: the delete answers the deleted id (the seed's example shows only `success`).
        return JSONResponse({"success": True, "data": {"id": record["id"]}})

    def _get_line(self, kind: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            await self._admit(request)
            line_id = request.path_params["id"]
            for record in self.purchase_orders:
                for line in record.get(kind) or []:
                    if line["id"] == line_id:
                        parent = {k: v for k, v in record.items() if k not in ("parts", "tires", "fees", "items")}
                        return JSONResponse({"success": True, "data": {**line, "purchaseOrder": parent}})
            noun = "PurchaseOrderPart" if kind == "parts" else "PurchaseOrderTire"
            raise _ApiError(404, "NOT_FOUND", f"{noun} with id {line_id} not found")

        return handler

    # -- inventory ------------------------------------------------------------------------------

    async def _search_inventory(self, request: Request) -> Response:
        await self._admit(request)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            _invalid("body", "must be valid JSON")
        if not isinstance(body, dict):
            _invalid("body", "must be object")
        limit = _body_int(body, "limit", DEFAULT_LIMIT, 1)
        skip = _body_int(body, "skip", 0, 0)
        where = body.get("where", {})
        if not isinstance(where, dict):
            _invalid("body/where", "must be object")
        # There is no free-text search: callers page through the inventory and match names themselves.
        # `where.locationId` may be ignored by the real API; here every part is at the one location.
        where = {k: v for k, v in where.items() if k != "locationId"}
        records = [r for r in self.inventory if _matches(r, where)]
        return _page(records, limit, skip)

    async def _get_inventory_part(self, request: Request) -> Response:
        await self._admit(request)
        part_id = request.path_params["id"]
        for record in self.inventory:
            if record["id"] == part_id:
                return JSONResponse({"success": True, "data": record})
        raise _ApiError(404, "NOT_FOUND", f"InventoryPart with id {part_id} not found")


SIMULATED = Simulated("/v3", ShopmonkeySimulator, {"kind": "shopmonkey", "api_key": SANDBOX_API_KEY})
