"""Simulator of the PartsSource Customer API and its Cognito token endpoint.

Follows the vendor document (seeds/003) and docs/vendors.md section 4: client-credentials tokens
plus an API Gateway ``x-api-key`` on every call, catalog search and detail with price options
(each priceOptionId a quote valid 30 days whose price an order must repeat exactly), idempotent
``POST /orders`` (2xx and 5xx answers replayed for 24 h under their key, 4xx never stored), order
look-up and ``GET /orders/search`` with the search query language, offset pagination, the two
documented error envelopes and the rate-limit headers. Where the vendor leaves a detail open, the
choice made here is marked "undocumented" so a reader can tell it from fact.

Undocumented, and so switchable: whether ``/catalog/detail`` repeats a priceOptionId. The documents
only say a priceOptionId is "a quote valid 30 days" (their examples show one id per option). By
default an option keeps its id until the quote expires; with ``reissue_quotes`` set, every detail
call quotes every option under a fresh id, and each id issued before stays orderable, at the price
it quoted, for its own 30 days.

Serve ``app`` under the API prefix (the real one is ``/customer/api``). The token endpoint really
lives on another host (``auth.partssource.com/oauth2/token``); here it is the same app's
``/oauth2/token`` so one in-process transport reaches both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, NoReturn, TypeGuard

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parts_mcp.sandbox._entry import Simulated
from parts_mcp.sandbox._faults import (
    ADMIN_PREFIX,
    DroppedConnectionResponse,
    Faults,
    RecordedRequest,
    RecordingMiddleware,
    admin_routes,
)

__all__ = [
    "CATALOG",
    "FAULT_NAMES",
    "QUOTE_TTL_SECONDS",
    "READ_ONLY_CLIENT_ID",
    "READ_SCOPE",
    "SANDBOX_API_KEY",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_SETTINGS",
    "SANDBOX_TENANT",
    "TOKEN_PATH",
    "WRITE_SCOPE",
    "Offer",
    "PartsSourceSimulator",
    "Product",
    "Tenant",
]

# Shaped like the real things (a Cognito app client id is 26 lowercase letters and digits; an
# API Gateway key 40 characters) but plainly fake, so no secret scanner mistakes them.
SANDBOX_CLIENT_ID: Final = "5bx0c1ient9d2e7a4b60f1"
# No vendor name in it: any 12 letters of a secret are blanked, and "...t-partssource" is also a PO.
SANDBOX_CLIENT_SECRET: Final = "sbx-client-secret-7f3a0e91c4d2b8"  # noqa: S105 - a public sandbox value
SANDBOX_API_KEY: Final = "sbxApiGw6d1f0a9e3c7b25e8d4"
# A second app client that may only read: for scope tests.
READ_ONLY_CLIENT_ID: Final = "5andb0xpartss0urcereadon1y"

_RESOURCE_SERVER: Final = "default-m2m-resource-server-p2hkah"
READ_SCOPE: Final = f"{_RESOURCE_SERVER}/customer:read"
WRITE_SCOPE: Final = f"{_RESOURCE_SERVER}/customer:write"

TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path, not a secret
TOKEN_TTL_SECONDS: Final = 3600
QUOTE_TTL_SECONDS: Final = 30 * 24 * 3600
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600
NOTES_LIMIT: Final = 200
ID_LIMIT: Final = 99_999_999
RATE_LIMIT_PER_SECOND: Final = 1000
RATE_LIMIT_BURST: Final = 2000
RATE_LIMIT_RETRY_AFTER: Final = 2
# Undocumented: the header that marks a replayed answer (the docs name one but it was not captured).
REPLAYED_HEADER: Final = "X-Idempotency-Replayed"

# search_error: the next order searches fail with 503 (a failed search must never count as "no order").
FAULT_NAMES: Final = frozenset({"rate_limit", "rate_limit_order", "server_error", "drop_after_commit", "search_error"})

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CENT = Decimal("0.01")


# ------------------------------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class Offer:
    """One way to buy a product: what a priceOptionId quotes."""

    condition: str  # "New OEM" | "Refurbished" | "Aftermarket" | "... Flat Rate Repair"
    warranty: str
    purchase_choice: str  # "Buy" | "Exchange" | "Loan" | "Outright"
    price: Decimal
    vendor: str
    required_fields: tuple[str, ...] = ()  # flat-rate repairs: per line item, e.g. serialNumber
    price_option_id: str | None = None  # a fixed id for the documents' own examples

    @property
    def flat_rate_repair(self) -> bool:
        return "flat rate repair" in self.condition.casefold()


@dataclass(frozen=True)
class Product:
    product_id: str
    part_number: str
    description: str
    manufacturer: str
    manufacturer_id: int
    quantity_available: int
    offers: tuple[Offer, ...]


def _offer(
    condition: str, warranty: str, choice: str, price: str, vendor: str, *fields: str, fixed_id: str | None = None
) -> Offer:
    return Offer(condition, warranty, choice, Decimal(price), vendor, tuple(fields), fixed_id)


_PHILIPS = ("Philips Healthcare", 26799)  # the documents' own manufacturer example
_SIEMENS = ("Siemens Healthineers", 26804)
_GE = ("GE Healthcare", 26811)
_BAXTER = ("Baxter", 26817)
_BD = ("BD", 26822)
_MASIMO = ("Masimo", 26830)
_WELCH = ("Welch Allyn", 26836)
_STRYKER = ("Stryker", 26841)
_HILLROM = ("Hillrom", 26845)
_DRAGER = ("Draeger", 26852)
_MINDRAY = ("Mindray", 26858)
_NIHON = ("Nihon Kohden", 26861)
_ZOLL = ("ZOLL Medical", 26867)
_MEDTRONIC = ("Medtronic", 26873)
_STERIS = ("STERIS", 26879)
_OLYMPUS = ("Olympus", 26884)
_SPACELABS = ("Spacelabs Healthcare", 26890)
_FISHER = ("Fisher & Paykel Healthcare", 26895)

_OEM = "OEM Direct"
_TRI = "TriState Biomedical"
_MERIDIAN = "Meridian Imaging Repair"
_CASCADE = "Cascade Clinical Parts"
_SUMMIT = "Summit Patient Monitoring"
_FRR = ("repairReason", "serialNumber")
_FRR_ASSET = ("repairReason", "serialNumber", "assetId")


def _product(
    product_id: str, number: str, description: str, maker: tuple[str, int], stock: int, *offers: Offer
) -> Product:
    return Product(product_id, number, description, maker[0], maker[1], stock, offers)


# CAT-123 with OPT-001 at 100.00 is the idempotency page's order example; OPT-ABC123-XYZ (1250.00
# refurbished) and OPT-DEF456-UVW (2500.00 new) are the price-option-id page's. Part numbers
# containing "MOT" and descriptions containing "pump" serve the searchable-fields examples.
# fmt: off
CATALOG: Final[tuple[Product, ...]] = (
    _product("CAT-123", "M1191BL", "SpO2 Sensor, Reusable, Adult Finger Clip, 3 m", _PHILIPS, 42,
             _offer("New OEM", "12 Months", "Buy", "100.00", _OEM, fixed_id="OPT-001"),
             _offer("Aftermarket", "6 Months", "Buy", "42.50", _CASCADE)),
    _product("CAT-456", "M3001A", "IntelliVue Multi-Measurement Server (MMS) Module", _PHILIPS, 6,
             _offer("Refurbished", "12 Months", "Buy", "1250.00", _TRI, fixed_id="OPT-ABC123-XYZ"),
             _offer("New OEM", "24 Months", "Buy", "2500.00", _OEM, fixed_id="OPT-DEF456-UVW"),
             _offer("Refurbished", "12 Months", "Exchange", "875.00", _TRI),
             _offer("Aftermarket Flat Rate Repair", "6 Months", "Outright", "450.00", _SUMMIT, *_FRR)),
    _product("CAT-1001", "C5-1", "Ultrasound Transducer, Curved Array, 5-1 MHz, EPIQ/Affiniti", _PHILIPS, 3,
             _offer("New OEM", "12 Months", "Buy", "12450.00", _OEM),
             _offer("Refurbished", "12 Months", "Buy", "6950.00", _MERIDIAN),
             _offer("Refurbished", "12 Months", "Exchange", "4800.00", _MERIDIAN),
             _offer("Aftermarket Flat Rate Repair", "6 Months", "Outright", "2150.00", _MERIDIAN, *_FRR_ASSET)),
    _product("CAT-1002", "M3538A", "HeartStart MRx Lithium Ion Battery, 10.8 V", _PHILIPS, 25,
             _offer("New OEM", "12 Months", "Buy", "445.00", _OEM),
             _offer("Aftermarket", "12 Months", "Buy", "289.00", _CASCADE)),
    _product("CAT-1003", "989803148691", "IntelliVue 5-Lead ECG Trunk Cable, AAMI, 2.7 m", _PHILIPS, 31,
             _offer("New OEM", "6 Months", "Buy", "212.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "96.00", _CASCADE)),
    _product("CAT-1004", "08266955", "ACUSON 4V1c Phased Array Transducer", _SIEMENS, 2,
             _offer("Refurbished", "12 Months", "Buy", "7900.00", _MERIDIAN),
             _offer("Refurbished", "12 Months", "Exchange", "5400.00", _MERIDIAN),
             _offer("Aftermarket Flat Rate Repair", "6 Months", "Outright", "2650.00", _MERIDIAN, *_FRR)),
    _product("CAT-1005", "10590330", "Ysio X-ray Table Drive Motor Assembly (MOT-L2)", _SIEMENS, 1,
             _offer("Refurbished", "6 Months", "Buy", "3875.00", _TRI),
             _offer("Refurbished", "6 Months", "Exchange", "2990.00", _TRI)),
    _product("CAT-1006", "2021406-001", "ECG Trunk Cable, 10-Lead, Multi-Link, AHA", _GE, 18,
             _offer("New OEM", "6 Months", "Buy", "268.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "118.00", _CASCADE)),
    _product("CAT-1007", "2066772-001", "CARESCAPE Monitor B650 Lithium Ion Battery", _GE, 14,
             _offer("New OEM", "12 Months", "Buy", "389.00", _OEM),
             _offer("Aftermarket", "12 Months", "Buy", "215.00", _CASCADE)),
    _product("CAT-1008", "TS-F-D", "TruSignal SpO2 Sensor, Adult Finger, Reusable", _GE, 40,
             _offer("New OEM", "12 Months", "Buy", "186.00", _OEM),
             _offer("Refurbished", "6 Months", "Buy", "79.00", _TRI)),
    _product("CAT-1009", "MOT-5146", "Logiq E9 Trackball Motor Assembly", _GE, 4,
             _offer("Refurbished", "6 Months", "Buy", "640.00", _TRI),
             _offer("Refurbished", "6 Months", "Exchange", "410.00", _TRI)),
    _product("CAT-1010", "35083", "Sigma Spectrum Infusion Pump Battery Pack", _BAXTER, 57,
             _offer("New OEM", "12 Months", "Buy", "158.00", _OEM),
             _offer("Aftermarket", "12 Months", "Buy", "84.00", _CASCADE)),
    _product("CAT-1011", "TC10004657", "Alaris 8100 Infusion Pump Module Door Assembly", _BD, 9,
             _offer("New OEM", "12 Months", "Buy", "598.00", _OEM),
             _offer("Refurbished", "6 Months", "Buy", "329.00", _TRI),
             _offer("Refurbished", "6 Months", "Exchange", "245.00", _TRI),
             _offer("Aftermarket Flat Rate Repair", "90 Days", "Outright", "185.00", _SUMMIT, *_FRR)),
    _product("CAT-1012", "LNC-10", "LNCS Patient Cable, SpO2, 10 ft", _MASIMO, 36,
             _offer("New OEM", "6 Months", "Buy", "146.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "71.00", _CASCADE)),
    _product("CAT-1013", "02893-000", "SureTemp Plus Oral Temperature Probe and Well, 9 ft", _WELCH, 22,
             _offer("New OEM", "12 Months", "Buy", "112.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "54.00", _CASCADE)),
    _product("CAT-1014", "REUSE-11", "FlexiPort Reusable Blood Pressure Cuff, Adult", _WELCH, 80,
             _offer("New OEM", "12 Months", "Buy", "28.50", _OEM)),
    _product("CAT-1015", "0712-001-530", "Stretcher Caster, 8 in, Total Lock", _STRYKER, 16,
             _offer("New OEM", "12 Months", "Buy", "236.00", _OEM),
             _offer("Aftermarket", "12 Months", "Buy", "139.00", _CASCADE)),
    _product("CAT-1016", "MOT-3002-100", "Bed Actuator Motor, Head Section, InTouch", _STRYKER, 5,
             _offer("New OEM", "12 Months", "Buy", "1185.00", _OEM),
             _offer("Refurbished", "6 Months", "Exchange", "690.00", _TRI)),
    _product("CAT-1017", "P3200A01", "VersaCare Bed Pendant Control", _HILLROM, 11,
             _offer("New OEM", "12 Months", "Buy", "512.00", _OEM),
             _offer("Refurbished", "6 Months", "Exchange", "298.00", _TRI)),
    _product("CAT-1018", "6850645", "Oxygen Sensor Capsule, Evita / Savina / Oxylog", _DRAGER, 48,
             _offer("New OEM", "6 Months", "Buy", "189.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "97.00", _CASCADE)),
    _product("CAT-1019", "8410185", "Infinity ID Neonatal Flow Sensor (Pack of 5)", _DRAGER, 20,
             _offer("New OEM", "3 Months", "Buy", "265.00", _OEM)),
    _product("CAT-1020", "0010-30-42738", "SpO2 Extension Cable, 12-pin, 2.5 m", _MINDRAY, 27,
             _offer("New OEM", "6 Months", "Buy", "98.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "46.00", _CASCADE)),
    _product("CAT-1021", "BR-913P", "ECG Lead Wire Set, 3-Lead, Clip, IEC", _NIHON, 33,
             _offer("New OEM", "6 Months", "Buy", "134.00", _OEM)),
    _product("CAT-1022", "8019-0535-01", "SurePower II Rechargeable Battery Pack, X Series", _ZOLL, 12,
             _offer("New OEM", "24 Months", "Buy", "595.00", _OEM),
             _offer("Refurbished", "12 Months", "Buy", "349.00", _TRI)),
    _product("CAT-1023", "DS-100A", "Nellcor Durasensor Adult SpO2 Sensor, Reusable", _MEDTRONIC, 45,
             _offer("New OEM", "6 Months", "Buy", "174.00", _OEM),
             _offer("Refurbished", "6 Months", "Buy", "69.00", _TRI)),
    _product("CAT-1024", "P129360-075", "Amsco Sterilizer Door Gasket, 26 in", _STERIS, 7,
             _offer("New OEM", "6 Months", "Buy", "742.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "388.00", _CASCADE)),
    _product("CAT-1025", "MB-358", "Endoscope Biopsy Valve, Single Use (Box of 20)", _OLYMPUS, 60,
             _offer("New OEM", "None", "Buy", "96.00", _OEM)),
    _product("CAT-1026", "700-0028-00", "NIBP Hose, Adult/Pediatric, 3.6 m", _SPACELABS, 19,
             _offer("New OEM", "6 Months", "Buy", "88.00", _OEM),
             _offer("Aftermarket", "6 Months", "Buy", "39.00", _CASCADE)),
    _product("CAT-1027", "MR290", "Humidifier Chamber, Auto-Fill, Reusable", _FISHER, 24,
             _offer("New OEM", "3 Months", "Buy", "71.00", _OEM)),
    _product("CAT-1028", "M4735A", "HeartStart XL+ Defibrillator/Monitor", _PHILIPS, 2,
             _offer("Refurbished", "12 Months", "Buy", "8950.00", _TRI),
             _offer("Refurbished", "12 Months", "Loan", "650.00", _TRI)),
)
# fmt: on


@dataclass(frozen=True)
class Tenant:
    """A customer organisation: what one API client may see and order for."""

    name: str
    contact_id: int  # the requesterId
    user_ids: frozenset[int]
    company_ids: frozenset[int]  # facilities; the facilityId of an order is one of them
    root_company_id: int
    shipping_address_ids: frozenset[int]
    billing_address_ids: frozenset[int]
    has_shipping_account: bool = False


SANDBOX_TENANT: Final = Tenant(
    name="Sandbox General Hospital",
    contact_id=10001,
    user_ids=frozenset({10001, 10002}),
    company_ids=frozenset({20001, 20002}),
    root_company_id=20000,
    shipping_address_ids=frozenset({30001, 30003}),
    billing_address_ids=frozenset({30002}),
)
_OTHER_TENANT: Final = Tenant(
    name="Another Health System",
    contact_id=50001,
    user_ids=frozenset({50001}),
    company_ids=frozenset({88001}),
    root_company_id=88000,
    shipping_address_ids=frozenset({98001}),
    billing_address_ids=frozenset({98002}),
)


@dataclass(frozen=True)
class _AppClient:
    client_id: str
    secret: str
    scopes: frozenset[str]
    tenant: Tenant


@dataclass(frozen=True)
class _Token:
    client: _AppClient
    scopes: frozenset[str]
    expires_at: float


@dataclass
class Quote:
    """A priceOptionId: one offer's price, locked for 30 days from when it was issued."""

    price_option_id: str
    product_id: str
    offer_index: int  # which of the product's offers it quotes
    offer: Offer
    price: Decimal
    issued_at: float
    withdrawn: bool = False

    @property
    def expires_at(self) -> float:
        return self.issued_at + QUOTE_TTL_SECONDS


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    stored_at: float


@dataclass
class _OrderRecord:
    data: dict[str, Any]  # as the API shows it
    company_id: int
    root_company_id: int
    idempotency_key: str | None = None
    created_at: float = 0.0


# ------------------------------------------------------------------------------------------- errors


_PROBLEM_TYPES = {
    400: ("validation-error", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Resource Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    422: ("business-rule-violation", "Unprocessable Entity"),
    429: ("rate-limited", "Too Many Requests"),
    500: ("internal-error", "Internal Server Error"),
}


class _ApiError(Exception):
    """An error answer. ``controller`` picks the controller envelope over RFC 7807 problem details.

    Both shapes are documented: controller-level errors are ``{success: false, errors: [...]}``,
    errors from validation and middleware are problem details.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Sequence[str] = (),
        *,
        controller: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) or [detail]
        self.controller = controller
        self.headers = dict(headers or {})


def _invalid(*errors: str) -> NoReturn:
    raise _ApiError(400, "One or more validation errors occurred.", errors)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(amount: Decimal) -> float:
    # Money goes out as a JSON number in major units, as the documents show (price: 1250.00).
    return float(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        _invalid("Content-Type: must be application/json")
    try:
        body = json.loads(await request.body())
    except ValueError:
        _invalid("body: is not valid JSON")
    if not isinstance(body, dict):
        _invalid("body: must be a JSON object")
    return body


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return (path[len(root) :] or "/") if root and path.startswith(root) else path


# ------------------------------------------------------------------------------- query language


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # Token | String | Numeric | DateTime
    supports_in: bool = False
    always_substring: bool = False


@dataclass(frozen=True)
class _Clause:
    field: _Field
    op: str  # ":" "~" ">" "<" ">=" "<=" "IN"
    values: tuple[str, ...]
    negated: bool


_ORDER_FIELDS: Final = {
    f.name.casefold(): f
    for f in (
        _Field("orderId", "Token", supports_in=True),
        _Field("companyId", "Token", supports_in=True),
        _Field("rootCompanyId", "Token", supports_in=True),
        _Field("requesterId", "Token", supports_in=True),
        _Field("status", "Token", supports_in=True),
        _Field("createdDate", "DateTime"),
        _Field("poNumber", "String"),
        _Field("lineId", "Token"),
        _Field("partNumber", "String", always_substring=True),
        _Field("lineItemDescription", "String"),
    )
}
_MANUFACTURER_FIELDS: Final = {
    f.name.casefold(): f for f in (_Field("name", "String"), _Field("manufacturerId", "Numeric"))
}
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_CLAUSE = re.compile(
    rf"\s*(?P<neg>-)?(?P<field>[A-Za-z][A-Za-z0-9_]*)"
    rf"(?:\s*(?P<op>>=|<=|:|~|>|<)\s*(?P<value>{_QUOTED}|[^\s\"\[\]]+)|\s+IN\s*\[(?P<list>[^\]]*)\])\s*",
    re.IGNORECASE,
)
_AND = re.compile(r"AND\s+", re.IGNORECASE)
_LIST_VALUE = re.compile(rf"{_QUOTED}|[^,\s]+")
_OPERATORS_BY_KIND = {
    "Token": {":"},
    "String": {":", "~"},
    "Numeric": {":", ">", "<", ">=", "<="},
    "DateTime": {":", ">", "<", ">=", "<="},
}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_query(text: str, fields: Mapping[str, _Field]) -> list[_Clause]:
    """The clauses of a search query; 400 for bad syntax, an unknown field or a misused operator."""
    clauses: list[_Clause] = []
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            _invalid(f"q: invalid query syntax at position {position}")
        name = match["field"]
        spec = fields.get(name.casefold())
        if spec is None:
            valid = ", ".join(f.name for f in fields.values())
            _invalid(f"q: unknown search field '{name}'. Valid fields: {valid}")
        if match["list"] is not None:
            if not spec.supports_in:
                _invalid(f"q: field '{spec.name}' does not support IN")
            values = tuple(_unquote(v) for v in _LIST_VALUE.findall(match["list"]))
            if not values:
                _invalid(f"q: IN list for '{spec.name}' is empty")
            clause = _Clause(spec, "IN", values, bool(match["neg"]))
        else:
            op, value = match["op"], _unquote(match["value"])
            if op not in _OPERATORS_BY_KIND[spec.kind]:
                _invalid(f"q: operator '{op}' cannot be used with {spec.kind} field '{spec.name}'")
            if op == "~" and len(value) < 3:
                _invalid(f"q: substring search on '{spec.name}' needs at least 3 characters")
            if spec.kind == "DateTime":
                _parse_datetime(value, spec.name)
            if spec.kind == "Numeric":
                _parse_numeric(value, spec.name)
            clause = _Clause(spec, op, (value,), bool(match["neg"]))
        clauses.append(clause)
        position = match.end()
        if position >= len(text):
            return clauses
        joiner = _AND.match(text, position)
        if joiner is None:
            _invalid(f"q: expected AND at position {position}")
        position = joiner.end()


def _parse_datetime(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _invalid(f"q: '{value}' is not an ISO 8601 date for '{name}'")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_numeric(value: str, name: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        _invalid(f"q: '{value}' is not a number for '{name}'")
    if not number.is_finite():
        _invalid(f"q: '{value}' is not a number for '{name}'")
    return number


def _compare(op: str, left: Any, right: Any) -> bool:
    match op:
        case ">":
            return left > right
        case "<":
            return left < right
        case ">=":
            return left >= right
        case "<=":
            return left <= right
    return left == right


def _clause_matches(clause: _Clause, candidates: Iterable[Any]) -> bool:
    """Whether any of the record's values for the clause's field satisfies it (negation applied by the caller)."""
    spec = clause.field
    for candidate in candidates:
        if candidate is None:
            continue
        if spec.kind == "Token":
            if str(candidate).casefold() in {v.casefold() for v in clause.values}:
                return True
        elif spec.kind == "String":
            needle, text = clause.values[0].casefold(), str(candidate).casefold()
            if (needle in text) if (clause.op == "~" or spec.always_substring) else (needle == text):
                return True
        elif spec.kind == "Numeric":
            if _compare(clause.op, Decimal(str(candidate)), Decimal(clause.values[0])):
                return True
        elif spec.kind == "DateTime":
            moment = _parse_datetime(str(candidate), spec.name)
            bound = _parse_datetime(clause.values[0], spec.name)
            if clause.op == ":" and len(clause.values[0]) == 10:
                # A bare date matches the whole (UTC) day.
                if moment.date() == bound.date():
                    return True
            elif _compare(clause.op, moment, bound):
                return True
    return False


def _page_params(request: Request, *, default: int = 50, maximum: int = 100) -> tuple[int, int]:
    """limit and offset, silently normalised as the documents describe (out of range -> default or cap)."""

    def read(name: str) -> int | None:
        raw = request.query_params.get(name)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    limit, offset = read("limit"), read("offset")
    if limit is None or limit < 1:
        limit = default
    return min(limit, maximum), max(offset or 0, 0)


def _page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    chunk = items[offset : offset + limit]
    return {
        "items": chunk,
        "pagination": {
            "total": len(items),
            "limit": limit,
            "offset": offset,
            "hasMore": offset + len(chunk) < len(items),
        },
    }


# ------------------------------------------------------------------------------ rate-limit layer


class _RateLimits:
    """The API Gateway in front: rate-limit headers on every API answer, 429 beyond the burst or when armed."""

    def __init__(self, app: ASGIApp, *, simulator: PartsSourceSimulator) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        if path in (TOKEN_PATH, ADMIN_PREFIX) or path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        sim = self.simulator
        # One window for everyone: the documents count per client_id, and the sandbox has one writing client.
        now = sim.clock()
        second = math.floor(now)
        if second != sim._rate_window:
            sim._rate_window, sim._rate_count = second, 0
        sim._rate_count += 1
        ordering = scope["method"] == "POST" and path == "/orders"
        limited = sim.faults.take("rate_limit") or (ordering and sim.faults.take("rate_limit_order"))
        if limited or sim._rate_count > RATE_LIMIT_BURST:
            reset = second + RATE_LIMIT_RETRY_AFTER
            headers = {
                "Retry-After": str(RATE_LIMIT_RETRY_AFTER),
                "X-RateLimit-Limit": str(RATE_LIMIT_PER_SECOND),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            error = _ApiError(429, "Rate limit exceeded. Retry after the number of seconds in Retry-After.")
            response = sim._problem(error, scope.get("path", ""), headers)
            await response(scope, receive, send)
            return
        remaining = max(RATE_LIMIT_PER_SECOND - sim._rate_count, 0)
        extra = [
            (b"x-ratelimit-limit", str(RATE_LIMIT_PER_SECOND).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(second + 1).encode()),
        ]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


# ------------------------------------------------------------------------------------ simulator


class PartsSourceSimulator:
    """Stateful PartsSource Customer API plus its token endpoint. Serve ``app`` under the API prefix.

    Faults (arm on ``faults``): ``rate_limit`` answers the next API request 429 with Retry-After, and
    ``rate_limit_order`` the next ``POST /orders``;
    ``server_error`` fails the next new ``POST /orders`` with a 500 *and stores that 500 under its
    Idempotency-Key*, as the documents say, creating nothing; ``drop_after_commit`` creates the next
    order (or replays it) and drops the connection before the answer.

    ``reissue_quotes`` (a setting, default off): every ``/catalog/detail`` call issues fresh
    priceOptionIds; ids issued before stay orderable at their price until they expire.

    ``orders`` is the ground truth (seeded orders included; see ``created_orders``), ``requests``
    the log of every call, token requests included.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        catalog: Iterable[Product] = CATALOG,
        api_keys: Iterable[str] = (SANDBOX_API_KEY,),
        token_ttl: float = TOKEN_TTL_SECONDS,
        seed_orders: bool = True,
        reissue_quotes: bool = False,
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self.clock = clock
        self.token_ttl = token_ttl
        self.api_keys = frozenset(api_keys)
        self.reissue_quotes = reissue_quotes
        self.faults = Faults(names=FAULT_NAMES)
        self.requests: list[RecordedRequest] = []
        self.tenant = SANDBOX_TENANT
        self._clients = {
            c.client_id: c
            for c in (
                _AppClient(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, frozenset({READ_SCOPE, WRITE_SCOPE}), self.tenant),
                _AppClient(READ_ONLY_CLIENT_ID, SANDBOX_CLIENT_SECRET, frozenset({READ_SCOPE}), self.tenant),
            )
        }
        self._tokens: dict[str, _Token] = {}
        self.token_fetches = 0
        self._products = {p.product_id: p for p in catalog}
        self._quotes: dict[str, Quote] = {}
        # The live quote for each (product, offer index); replaced when it expires.
        self._current: dict[tuple[str, int], str] = {}
        now = clock()
        for product in self._products.values():
            for index, offer in enumerate(product.offers):
                self._issue(product.product_id, index, offer, now, offer.price_option_id)
        self._withdrawn_offers: set[tuple[str, int]] = set()
        # Keyed by (client_id, Idempotency-Key): keys are scoped to the API client.
        self._idempotency: dict[tuple[str, str], _Stored] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._records: list[_OrderRecord] = []
        self._next_order_id = 10101
        self._next_line_id = 790001
        self._rate_window = -1
        self._rate_count = 0
        if seed_orders:
            self._seed_orders()
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route("/users/lookup", self._user_lookup, methods=["GET"]),
                Route("/manufacturers/search", self._manufacturers, methods=["GET"]),
                Route("/catalog/search", self._catalog_search, methods=["POST"]),
                Route("/catalog/detail", self._catalog_detail, methods=["GET"]),
                Route("/orders", self._create_order, methods=["POST"]),
                Route("/orders/search", self._search_orders, methods=["GET"]),
                Route("/orders/{order_id}", self._get_order, methods=["GET"]),
                *admin_routes(self.faults, lambda: self.orders),
            ],
            middleware=[
                Middleware(RecordingMiddleware, log=self.requests),
                Middleware(_RateLimits, simulator=self),
            ],
            exception_handlers={_ApiError: self._render_api_error, HTTPException: self._render_http_error},
        )

    # -- test controls ---------------------------------------------------------------------------

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order the vendor holds, seeded ones included, with the Idempotency-Key that created it."""
        return [{**r.data, "idempotencyKey": r.idempotency_key} for r in self._records]

    @property
    def created_orders(self) -> list[dict[str, Any]]:
        """Orders created through ``POST /orders`` (not seeded)."""
        return [o for o in self.orders if o["idempotencyKey"] is not None]

    def product(self, part_number: str) -> Product:
        """The catalog product with this part number (case-insensitive).

        Raises:
            KeyError: no such product.
        """
        for product in self._products.values():
            if product.part_number.casefold() == part_number.casefold():
                return product
        raise KeyError(part_number)

    def quote(self, price_option_id: str) -> Quote:
        """The quote behind a priceOptionId.

        Raises:
            KeyError: never issued.
        """
        return self._quotes[price_option_id]

    def set_price(self, price_option_id: str, price: str) -> None:
        """Re-price a quote and its offer's future quotes, e.g. to model a vendor's correction.

        Other quotes already issued for the offer (``reissue_quotes``) keep the price they quoted.

        Raises:
            KeyError: the priceOptionId was never issued.
        """
        quote = self._quotes[price_option_id]
        quote.price = Decimal(price)
        product = self._products[quote.product_id]
        offers = list(product.offers)
        offers[quote.offer_index] = replace(offers[quote.offer_index], price=Decimal(price))
        quote.offer = offers[quote.offer_index]
        self._products[product.product_id] = replace(product, offers=tuple(offers))

    def withdraw(self, price_option_id: str) -> None:
        """The vendor stops offering this option: it leaves catalog detail, and no quote for it can be ordered.

        Raises:
            KeyError: the priceOptionId was never issued.
        """
        named = self._quotes[price_option_id]
        offer = (named.product_id, named.offer_index)
        self._withdrawn_offers.add(offer)
        for quote in self._quotes.values():
            if (quote.product_id, quote.offer_index) == offer:
                quote.withdrawn = True

    def issued(self, part_number: str, offer_index: int) -> list[str]:
        """Every priceOptionId issued for one offer of a product, oldest first.

        Raises:
            KeyError: no such product.
        """
        product_id = self.product(part_number).product_id
        return [
            q.price_option_id
            for q in sorted(self._quotes.values(), key=lambda q: q.issued_at)
            if (q.product_id, q.offer_index) == (product_id, offer_index)
        ]

    def set_status(self, order_id: int, status: str) -> None:
        """Move an order to another status (Pending, Research, EOrdered, Completed).

        Raises:
            KeyError: no such order.
        """
        record = next((r for r in self._records if r.data["orderId"] == order_id), None)
        if record is None:
            raise KeyError(order_id)
        record.data["status"] = status
        record.data["updatedDate"] = _iso(self.clock())

    # -- rendering -------------------------------------------------------------------------------

    def _envelope(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
        body = {
            "success": True,
            "data": data,
            "errors": [],
            "correlationId": str(uuid.uuid4()),
            "timestamp": _iso(self.clock()),
        }
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _problem(self, error: _ApiError, instance: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        slug, title = _PROBLEM_TYPES.get(error.status, ("error", "Error"))
        body = {
            "type": f"https://api.partssource.com/errors/{slug}",
            "title": title,
            "status": error.status,
            "detail": error.detail,
            "instance": instance,
            "correlationId": str(uuid.uuid4()),
            "errors": error.errors,
            "timestamp": _iso(self.clock()),
            "service": "customer-api",
        }
        return JSONResponse(
            body,
            status_code=error.status,
            headers={**error.headers, **(headers or {})},
            media_type="application/problem+json",
        )

    def _error_response(self, error: _ApiError, instance: str) -> JSONResponse:
        if error.controller:
            body = {
                "success": False,
                "errors": error.errors,
                "correlationId": str(uuid.uuid4()),
                "timestamp": _iso(self.clock()),
            }
            return JSONResponse(body, status_code=error.status, headers=error.headers)
        return self._problem(error, instance)

    def _render_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return self._error_response(exc, request.url.path)

    def _render_http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            error = _ApiError(405, f"{request.method} is not allowed on this resource", headers=exc.headers)
        else:
            error = _ApiError(404, f"No resource at {request.method} {request.url.path}")
        return self._problem(error, request.url.path)

    # -- token endpoint (Cognito) -------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        def oauth_error(code: str, status: int = 400) -> Response:
            return JSONResponse({"error": code}, status_code=status)

        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return oauth_error("invalid_request")
        form = await request.form()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return oauth_error("invalid_client", 401)
        client = self._clients.get(str(client_id or ""))
        if client is None or not secrets.compare_digest(str(secret or ""), client.secret):
            return oauth_error("invalid_client", 401 if scheme.lower() == "basic" else 400)
        if form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type")
        requested = str(form.get("scope") or "").split()
        if requested and not set(requested) <= client.scopes:
            return oauth_error("invalid_scope")
        scopes = frozenset(requested) or client.scopes
        now = self.clock()
        token = self._mint_token(client, scopes, now)
        self.token_fetches += 1
        return JSONResponse({"access_token": token, "expires_in": int(self.token_ttl), "token_type": "Bearer"})

    def _mint_token(self, client: _AppClient, scopes: frozenset[str], now: float) -> str:
        # Shaped like Cognito's RS256 JWT; the signature is random and only this simulator can check it.
        def b64(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()

        header = {"kid": "sandbox", "alg": "RS256"}
        payload = {
            "sub": client.client_id,
            "token_use": "access",
            "scope": " ".join(sorted(scopes)),
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_SANDBOX",
            "exp": int(now + self.token_ttl),
            "iat": int(now),
            "jti": str(uuid.uuid4()),
            "client_id": client.client_id,
        }
        token = f"{b64(header)}.{b64(payload)}.{secrets.token_urlsafe(64)}"
        self._tokens[token] = _Token(client, scopes, now + self.token_ttl)
        return token

    def _authenticate(self, request: Request, scope: str = READ_SCOPE) -> _AppClient:
        # The gateway checks the API key first, then the Cognito authorizer the token.
        api_key = request.headers.get("x-api-key", "")
        if not any(secrets.compare_digest(api_key, key) for key in self.api_keys):
            raise _ApiError(403, "Missing or invalid x-api-key header.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _ApiError(401, "Missing bearer token. Send 'Authorization: Bearer <access token>'.")
        info = self._tokens.get(token.strip())
        if info is None:
            raise _ApiError(401, "The access token is invalid.")
        if self.clock() >= info.expires_at:
            raise _ApiError(401, "The access token has expired.")
        if scope not in info.scopes:
            raise _ApiError(403, f"The access token lacks the required scope {scope}.")
        return info.client

    # -- users and manufacturers ---------------------------------------------------------------

    async def _user_lookup(self, request: Request) -> Response:
        client = self._authenticate(request)
        await self.faults.delay()
        tenant = client.tenant
        raw = request.query_params.get("userId")
        if raw is None or not raw.isdigit():
            _invalid("userId: is required and must be a number")
        if int(raw) not in tenant.user_ids:
            raise _ApiError(404, f"No user found with ID: {raw}")
        return self._envelope(
            {
                "userId": int(raw),
                "contactId": tenant.contact_id,
                "companies": [{"id": cid, "name": f"{tenant.name} ({cid})"} for cid in sorted(tenant.company_ids)],
                "shippingAddresses": [{"id": aid} for aid in sorted(tenant.shipping_address_ids)],
                "billingAddresses": [{"id": aid} for aid in sorted(tenant.billing_address_ids)],
            }
        )

    async def _manufacturers(self, request: Request) -> Response:
        self._authenticate(request)
        await self.faults.delay()
        query = request.query_params.get("q")
        if not query:
            _invalid("q: is required")
        clauses = parse_query(query, _MANUFACTURER_FIELDS)
        makers = sorted({(p.manufacturer_id, p.manufacturer) for p in self._products.values()}, key=lambda m: m[1])
        found = [
            {"manufacturerId": mid, "name": name}
            for mid, name in makers
            if all(_clause_matches(c, [name if c.field.name == "name" else mid]) != c.negated for c in clauses)
        ]
        limit, offset = _page_params(request)
        return self._envelope(_page(found, limit, offset))

    # -- catalog ------------------------------------------------------------------------------

    async def _catalog_search(self, request: Request) -> Response:
        self._authenticate(request)
        await self.faults.delay()
        body = await _json_object(request)
        keywords = body.get("keywords")
        filters = body.get("filters") or {}
        pagination = body.get("pagination") or {}
        if keywords is not None and not isinstance(keywords, str):
            _invalid("keywords: must be a string")
        if not isinstance(filters, dict):
            _invalid("filters: must be an object")
        if not isinstance(pagination, dict):
            _invalid("pagination: must be an object")
        unknown = set(filters) - {"manufacturerId", "manufacturer", "partNumber"}
        if unknown:
            _invalid(f"filters: unknown filter {sorted(unknown)[0]!r}; valid: manufacturerId, manufacturer, partNumber")
        text = (keywords or "").strip()
        if not text and not filters:
            _invalid("keywords: give keywords or at least one filter")

        def squash(value: str) -> str:
            return re.sub(r"[\s\-./]", "", value).casefold()

        terms = text.casefold().split()
        ranked: list[tuple[int, Product]] = []
        for product in self._products.values():
            if not self._live_offers(product):
                continue
            if "manufacturerId" in filters and product.manufacturer_id != filters["manufacturerId"]:
                continue
            if (
                "manufacturer" in filters
                and str(filters["manufacturer"]).casefold() not in product.manufacturer.casefold()
            ):
                continue
            if "partNumber" in filters and squash(str(filters["partNumber"])) not in squash(product.part_number):
                continue
            haystack = f"{product.part_number} {product.description} {product.manufacturer}".casefold()
            if text and squash(text) == squash(product.part_number):
                rank = 0
            elif text and squash(text) in squash(product.part_number):
                rank = 1
            elif all(term in haystack for term in terms):
                rank = 2
            else:
                continue
            ranked.append((rank, product))

        # Pagination as documented: limit 1..200 on the Customer API's catalog search, default 50.
        limit = pagination.get("limit")
        offset = pagination.get("offset")
        limit = 50 if not _is_int(limit) or limit < 1 else min(limit, 200)
        offset = 0 if not _is_int(offset) or offset < 0 else offset
        sort_by = pagination.get("sortBy")
        sort_keys: dict[str, Callable[[Product], Any]] = {
            "PartNumber": lambda p: p.part_number.casefold(),
            "Description": lambda p: p.description.casefold(),
            "Manufacturer": lambda p: p.manufacturer.casefold(),
            "Price": self._from_price,
            "QuantityAvailable": lambda p: p.quantity_available,
        }
        if sort_by in sort_keys:
            ranked.sort(key=lambda rp: sort_keys[sort_by](rp[1]), reverse=pagination.get("sortDir") == "Desc")
        else:
            ranked.sort(key=lambda rp: (rp[0], rp[1].part_number.casefold()))
        items = [
            {
                "productId": p.product_id,
                "partNumber": p.part_number,
                "description": p.description,
                "manufacturer": p.manufacturer,
                "manufacturerId": p.manufacturer_id,
                "quantityAvailable": p.quantity_available,
                "price": _number(self._from_price(p)),
            }
            for _, p in ranked
        ]
        return self._envelope(_page(items, limit, offset))

    async def _catalog_detail(self, request: Request) -> Response:
        client = self._authenticate(request)
        await self.faults.delay()
        product_id = request.query_params.get("productId")
        requester = request.query_params.get("requesterId")
        errors = []
        if not product_id:
            errors.append("productId: is required")
        if requester is None or not requester.isdigit():
            errors.append("requesterId: is required and must be a number")
        if errors:
            _invalid(*errors)
        assert product_id is not None and requester is not None
        if int(requester) != client.tenant.contact_id:
            raise _ApiError(403, f"requesterId {requester} is outside your authorized tenant.")
        product = self._products.get(product_id)
        if product is None or not self._live_offers(product):
            raise _ApiError(404, f"No product found with ID: {product_id}")
        options = []
        for quote in self._live_quotes(product, fresh=self.reissue_quotes):
            option: dict[str, Any] = {
                "priceOptionId": quote.price_option_id,
                "price": _number(quote.price),
                "condition": quote.offer.condition,
                "warranty": quote.offer.warranty,
                "purchaseChoice": quote.offer.purchase_choice,
                # The documents say each option pins a vendor; the field name is undocumented.
                "vendorName": quote.offer.vendor,
                # Undocumented: the quote's expiry; the documents only say "valid for 30 days".
                "expiresAt": _iso(quote.expires_at),
            }
            if quote.offer.required_fields:
                # Undocumented shape: the documents name requiredFields per line item, not their schema.
                option["requiredFields"] = [{"name": name, "required": True} for name in quote.offer.required_fields]
            options.append(option)
        return self._envelope(
            {
                "productId": product.product_id,
                "partNumber": product.part_number,
                "description": product.description,
                "manufacturer": product.manufacturer,
                "manufacturerId": product.manufacturer_id,
                "quantityAvailable": product.quantity_available,
                "options": options,
            }
        )

    def _issue(self, product_id: str, index: int, offer: Offer, now: float, fixed_id: str | None = None) -> Quote:
        price_option_id = fixed_id or f"OPT-{secrets.token_hex(4).upper()}-{secrets.token_hex(2).upper()}"
        quote = Quote(price_option_id, product_id, index, offer, offer.price, now)
        self._quotes[price_option_id] = quote
        self._current[(product_id, index)] = price_option_id
        return quote

    def _from_price(self, product: Product) -> Decimal:
        # The offers' prices, not their quotes': a search answer quotes nothing, so it issues nothing.
        return min(product.offers[index].price for index in self._live_offers(product))

    def _live_offers(self, product: Product) -> list[int]:
        return [i for i in range(len(product.offers)) if (product.product_id, i) not in self._withdrawn_offers]

    def _live_quotes(self, product: Product, *, fresh: bool = False) -> list[Quote]:
        """The current quote for each offer still offered, a new one for any that expired (for all when `fresh`)."""
        now = self.clock()
        quotes = []
        for index in self._live_offers(product):
            quote = self._quotes[self._current[(product.product_id, index)]]
            if fresh or now >= quote.expires_at:
                quote = self._issue(product.product_id, index, product.offers[index], now)
            quotes.append(quote)
        return quotes

    # -- orders -------------------------------------------------------------------------------

    async def _create_order(self, request: Request) -> Response:
        client = self._authenticate(request, WRITE_SCOPE)
        key = request.headers.get("idempotency-key", "").strip()
        if not key:
            _invalid("Idempotency-Key: header is required")
        if not _UUID.match(key):
            _invalid("Idempotency-Key: must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        body = await _json_object(request)
        fingerprint = _fingerprint(body)
        slot = (client.client_id, key)
        now = self.clock()
        for expired in [k for k, v in self._idempotency.items() if now - v.stored_at >= IDEMPOTENCY_TTL_SECONDS]:
            del self._idempotency[expired]
        stored = self._idempotency.get(slot)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise _ApiError(
                    409,
                    "Idempotency-Key was already used with a different request body. Use a new key for a new order.",
                )
            replayed = JSONResponse(stored.body, status_code=stored.status, headers={REPLAYED_HEADER: "true"})
            # The stored answer stands either way; a lost answer to a replay is lost just the same.
            return DroppedConnectionResponse(replayed) if self.faults.take("drop_after_commit") else replayed
        if slot in self._in_flight:
            raise _ApiError(409, "A request with this Idempotency-Key is still being processed; retry shortly.")
        self._in_flight.add(slot)
        try:
            await self.faults.delay()
            order = self._validate_order(body, client.tenant)
            if self.faults.take("server_error"):
                error = _ApiError(500, "An unexpected error occurred while creating the order.")
                response = self._problem(error, request.url.path)
                # Documented: a 5xx is stored under its key for 24 h; the same key only repeats it.
                self._idempotency[slot] = _Stored(fingerprint, 500, json.loads(bytes(response.body)), now)
                return response
            data = self._record_order(order, client.tenant, key, now)
            response = self._envelope(data)
            self._idempotency[slot] = _Stored(fingerprint, 200, json.loads(bytes(response.body)), now)
        finally:
            self._in_flight.discard(slot)
        return DroppedConnectionResponse(response) if self.faults.take("drop_after_commit") else response

    def _validate_order(self, body: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
        """The order as it will be stored; 400 for malformed input, 422 for a broken business rule."""
        errors: list[str] = []
        ids: dict[str, int] = {}
        for name in ("requesterId", "userId", "facilityId", "shippingAddressId", "billingAddressId"):
            value = body.get(name)
            if value is None:
                errors.append(f"{name}: is required")
            elif not _is_int(value) or not 1 <= value <= ID_LIMIT:
                errors.append(f"{name}: must be an integer between 1 and {ID_LIMIT}")
            else:
                ids[name] = value
        method = body.get("shippingMethod")
        if not isinstance(method, str) or not method.strip():
            errors.append("shippingMethod: is required and must be at least 1 character")
        use_account = body.get("useShippingAccount")
        if use_account is not None and not isinstance(use_account, bool):
            errors.append("useShippingAccount: must be a boolean")
        notes = body.get("notes")
        if notes is not None and not isinstance(notes, str):
            errors.append("notes: must be a string")
        elif isinstance(notes, str) and len(notes) > NOTES_LIMIT:
            errors.append(f"notes: must be at most {NOTES_LIMIT} characters (got {len(notes)})")
        po_number = body.get("poNumber")
        if po_number is not None and (not isinstance(po_number, str) or not 1 <= len(po_number.strip()) <= 50):
            errors.append("poNumber: must be a string of 1 to 50 characters")
        raw_items = body.get("quoteItems")
        if not isinstance(raw_items, list) or not raw_items:
            errors.append("quoteItems: at least one item is required")
            raw_items = []
        items: list[tuple[Quote | None, dict[str, Any]]] = []
        business: list[str] = []
        now = self.clock()
        for index, raw in enumerate(raw_items):
            where = f"quoteItems[{index}]"
            if not isinstance(raw, dict):
                errors.append(f"{where}: must be an object")
                continue
            option_id, product_id = raw.get("priceOptionId"), raw.get("productId")
            quantity, price = raw.get("quantity"), raw.get("price")
            bad = len(errors)
            if not isinstance(option_id, str) or not option_id:
                errors.append(f"{where}.priceOptionId: is required")
            if not isinstance(product_id, str | int) or isinstance(product_id, bool) or not str(product_id):
                errors.append(f"{where}.productId: is required")
            if not _is_int(quantity) or not 1 <= quantity <= 99_999:
                errors.append(f"{where}.quantity: must be an integer between 1 and 99999")
            if not isinstance(price, int | float) or isinstance(price, bool):
                errors.append(f"{where}.price: is required and must be a number")
            if len(errors) > bad:
                continue
            assert isinstance(option_id, str) and isinstance(quantity, int) and isinstance(price, int | float)
            quote = self._quotes.get(option_id)
            if quote is None:
                business.append(f"{where}.priceOptionId: {option_id} was not found; get a new one from /catalog/detail")
            elif quote.withdrawn:
                business.append(f"{where}.priceOptionId: {option_id} is no longer available")
            elif now >= quote.expires_at:
                business.append(
                    f"{where}.priceOptionId: quote {option_id} expired on {_iso(quote.expires_at)}; "
                    "get a new priceOptionId from /catalog/detail"
                )
            elif str(product_id) != quote.product_id:
                business.append(f"{where}.productId: {product_id} does not match the product of {option_id}")
            elif Decimal(repr(price) if isinstance(price, float) else price) != quote.price:
                business.append(
                    f"{where}.price: {price} does not match the quoted price {_number(quote.price):.2f} "
                    f"for priceOptionId {option_id}"
                )
            elif quote.offer.flat_rate_repair:
                if quantity != 1:
                    errors.append(f"{where}.quantity: must be 1 for a flat rate repair; send one line item per repair")
                given = raw.get("requiredFields")
                values = _required_values(given)
                if values is None:
                    errors.append(f"{where}.requiredFields: must be an object of field name to value")
                else:
                    errors.extend(
                        f"{where}.requiredFields.{name}: is required for this flat rate repair"
                        for name in quote.offer.required_fields
                        if not str(values.get(name) or "").strip()
                    )
            items.append((quote, raw))
        if errors:
            _invalid(*errors)
        checks = (
            ("requesterId", {tenant.contact_id}, "is not your organisation's requester (contact) id"),
            ("userId", tenant.user_ids, "is not a user of your organisation"),
            ("facilityId", tenant.company_ids, "is not a facility on your customer profile"),
            ("shippingAddressId", tenant.shipping_address_ids, "is not a shipping address on your customer profile"),
            ("billingAddressId", tenant.billing_address_ids, "is not a billing address on your customer profile"),
        )
        business[:0] = [f"{name}: {ids[name]} {why}" for name, allowed, why in checks if ids[name] not in allowed]
        if use_account and not tenant.has_shipping_account:
            # Undocumented rule: the documents only say the flag uses "the customer's shipping account".
            business.append("useShippingAccount: there is no shipping account on your customer profile")
        if business:
            raise _ApiError(422, "The order violates a business rule.", business, controller=True)
        return {
            "ids": ids,
            "shippingMethod": str(method).strip(),
            "useShippingAccount": bool(use_account),
            "notes": notes,
            "poNumber": po_number.strip() if isinstance(po_number, str) else None,
            "items": [(quote, raw) for quote, raw in items if quote is not None],
        }

    def _record_order(self, order: dict[str, Any], tenant: Tenant, key: str, now: float) -> dict[str, Any]:
        order_id = self._next_order_id
        self._next_order_id += 1
        lines = []
        total = Decimal(0)
        for quote, raw in order["items"]:
            product = self._products[quote.product_id]
            extended = quote.price * raw["quantity"]
            total += extended
            line: dict[str, Any] = {
                "lineId": self._next_line_id,
                "productId": product.product_id,
                "priceOptionId": quote.price_option_id,
                "partNumber": product.part_number,
                "description": product.description,
                "manufacturer": product.manufacturer,
                "condition": quote.offer.condition,
                "warranty": quote.offer.warranty,
                "purchaseChoice": quote.offer.purchase_choice,
                "vendorName": quote.offer.vendor,
                "quantity": raw["quantity"],
                "price": _number(quote.price),
                "extendedPrice": _number(extended),
            }
            if quote.offer.required_fields:
                line["requiredFields"] = _required_values(raw.get("requiredFields")) or {}
            self._next_line_id += 1
            lines.append(line)
        ids = order["ids"]
        facility = ids["facilityId"]
        # Undocumented: the order's fields (the documents only say "Order created").
        data = {
            "orderId": order_id,
            "poNumber": order["poNumber"],
            "status": "Pending",
            "createdDate": _iso(now),
            "updatedDate": _iso(now),
            "requesterId": ids["requesterId"],
            "userId": ids["userId"],
            "companyId": facility,
            "facilityId": facility,
            "shippingAddressId": ids["shippingAddressId"],
            "billingAddressId": ids["billingAddressId"],
            "shippingMethod": order["shippingMethod"],
            "useShippingAccount": order["useShippingAccount"],
            "notes": order["notes"],
            "lineItems": lines,
            "subtotal": _number(total),
            "total": _number(total),
        }
        self._records.append(_OrderRecord(data, facility, tenant.root_company_id, key, now))
        return data

    async def _get_order(self, request: Request) -> Response:
        client = self._authenticate(request)
        await self.faults.delay()
        raw = request.path_params["order_id"]
        if not str(raw).isdigit():
            _invalid("orderId: must be an integer")
        order_id = int(raw)
        record = next((r for r in self._records if r.data["orderId"] == order_id), None)
        if record is None:
            raise _ApiError(404, f"No order found with ID: {order_id}", ["Order does not exist or has been deleted"])
        if record.root_company_id != client.tenant.root_company_id:
            raise _ApiError(403, f"Order {order_id} is outside your authorized tenant.")
        return self._envelope(record.data)

    async def _search_orders(self, request: Request) -> Response:
        client = self._authenticate(request)
        await self.faults.delay()
        if self.faults.take("search_error"):
            raise _ApiError(503, "The order service is temporarily unavailable.")
        tenant = client.tenant
        query = request.query_params.get("q")
        if not query or not query.strip():
            _invalid("q: is required")
        clauses = parse_query(query, _ORDER_FIELDS)
        positive = [c for c in clauses if not c.negated]
        named = {c.field.name for c in positive}
        dated = [c for c in positive if c.field.name == "createdDate"]
        bounded = any(c.op == ":" for c in dated) or (
            any(c.op in (">", ">=") for c in dated) and any(c.op in ("<", "<=") for c in dated)
        )
        if not (named & {"orderId", "poNumber", "lineId"}) and not (named & {"companyId", "rootCompanyId"} and bounded):
            _invalid(
                "q: Either orderId, poNumber, or lineId must be specified, or both companyId (or rootCompanyId) "
                "and a bounded createdDate range are required."
            )
        for clause in positive:
            if clause.field.name == "companyId" and not {v for v in clause.values if v.isdigit()} <= {
                str(c) for c in tenant.company_ids
            }:
                raise _ApiError(403, "companyId is outside your authorized tenant.")
            if clause.field.name == "rootCompanyId" and clause.values != (str(tenant.root_company_id),):
                raise _ApiError(403, "rootCompanyId is outside your authorized tenant.")

        def values(record: _OrderRecord, name: str) -> list[Any]:
            data = record.data
            lines = data["lineItems"]
            match name:
                case "companyId":
                    return [record.company_id]
                case "rootCompanyId":
                    return [record.root_company_id]
                case "lineId":
                    return [line["lineId"] for line in lines]
                case "partNumber":
                    return [line.get(k) for line in lines for k in ("partNumber", "replacementPartNumber")]
                case "lineItemDescription":
                    return [line["description"] for line in lines]
            return [data.get(name)]

        found = [
            r
            for r in self._records
            if r.root_company_id == tenant.root_company_id
            and all(_clause_matches(c, values(r, c.field.name)) != c.negated for c in clauses)
        ]
        # Undocumented: the order of results; newest first is what a buyer expects.
        found.sort(key=lambda r: (r.created_at, r.data["orderId"]), reverse=True)
        limit, offset = _page_params(request)
        return self._envelope(_page([r.data for r in found], limit, offset))

    # -- seed data ----------------------------------------------------------------------------

    def add_order(
        self,
        po_number: str,
        status: str = "Pending",
        *,
        days_ago: float = 0.0,
        lines: Sequence[tuple[str, int, int]] = (("M1191BL", 0, 1),),
        order_id: int | None = None,
        line_ids: Sequence[int] = (),
        tenant: Tenant | None = None,
    ) -> int:
        """Put an order on the books as if placed earlier (history for tests); answers its orderId.

        ``lines`` are (part number, offer index, quantity); the order is the sandbox tenant's unless
        ``tenant`` says otherwise.
        """
        tenant = tenant or self.tenant
        if order_id is None:
            order_id = self._next_order_id
            self._next_order_id += 1
        created = self.clock() - days_ago * 86400.0
        items = []
        total = Decimal(0)
        for position, (part_number, offer_index, quantity) in enumerate(lines):
            product = self.product(part_number)
            offer = product.offers[offer_index]
            total += offer.price * quantity
            if position < len(line_ids):
                line_id = line_ids[position]
            else:
                line_id, self._next_line_id = self._next_line_id, self._next_line_id + 1
            items.append(
                {
                    "lineId": line_id,
                    "productId": product.product_id,
                    "priceOptionId": f"OPT-HIST-{order_id}-{position}",
                    "partNumber": product.part_number,
                    "description": product.description,
                    "manufacturer": product.manufacturer,
                    "condition": offer.condition,
                    "warranty": offer.warranty,
                    "purchaseChoice": offer.purchase_choice,
                    "vendorName": offer.vendor,
                    "quantity": quantity,
                    "price": _number(offer.price),
                    "extendedPrice": _number(offer.price * quantity),
                }
            )
        facility = min(tenant.company_ids)
        data = {
            "orderId": order_id,
            "poNumber": po_number,
            "status": status,
            "createdDate": _iso(created),
            "updatedDate": _iso(created + min(days_ago, 3) * 86400.0),
            "requesterId": tenant.contact_id,
            "userId": min(tenant.user_ids),
            "companyId": facility,
            "facilityId": facility,
            "shippingAddressId": min(tenant.shipping_address_ids),
            "billingAddressId": min(tenant.billing_address_ids),
            "shippingMethod": "GROUND",
            "useShippingAccount": False,
            "notes": None,
            "lineItems": items,
            "subtotal": _number(total),
            "total": _number(total),
        }
        self._records.append(_OrderRecord(data, facility, tenant.root_company_id, None, created))
        return order_id

    def _seed_orders(self) -> None:
        """Orders the sandbox account already has, including the documents' examples (10001, PO-456, line 789012)."""
        add = self.add_order
        lines = [("M1191BL", 0, 4), ("LNC-10", 0, 2)]
        add("PO-456", "Completed", days_ago=120, lines=lines, order_id=10001, line_ids=[789012])
        add("BIOMED-2291", "EOrdered", days_ago=20, lines=[("35083", 0, 6)], order_id=10002)
        add("PO-2025-0187", "Research", days_ago=9, lines=[("MOT-5146", 0, 1)], order_id=10003)
        add("CE-44710", "Pending", days_ago=2, lines=[("M3538A", 1, 2), ("02893-000", 0, 3)], order_id=10004)
        add("PO-2024-0911", "Completed", days_ago=420, lines=[("6850645", 0, 5)], order_id=10005)
        add("NETWORK-7781", "Pending", days_ago=5, lines=[("DS-100A", 0, 10)], order_id=10006, tenant=_OTHER_TENANT)


def _required_values(given: Any) -> dict[str, Any] | None:
    """requiredFields as {name: value}; a list of {name, value} pairs is accepted too (undocumented shape)."""
    if given is None:
        return {}
    if isinstance(given, dict):
        return given
    if isinstance(given, list) and all(isinstance(g, dict) and "name" in g for g in given):
        return {str(g["name"]): g.get("value") for g in given}
    return None


# The [vendors.partssource] section the embedded sandbox runs on. "{base_url}" is replaced by the
# simulator's own URL: its token endpoint stands in for auth.partssource.com.
SANDBOX_SETTINGS: Final[dict[str, Any]] = {
    "kind": "partssource",
    "token_url": "{base_url}" + TOKEN_PATH,
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
    "api_key": SANDBOX_API_KEY,
    "requester_id": SANDBOX_TENANT.contact_id,
    "user_id": min(SANDBOX_TENANT.user_ids),
    "facility_id": min(SANDBOX_TENANT.company_ids),
    "shipping_address_id": min(SANDBOX_TENANT.shipping_address_ids),
    "billing_address_id": min(SANDBOX_TENANT.billing_address_ids),
    "shipping_method": "GROUND",
}

SIMULATED = Simulated("/customer/api", PartsSourceSimulator, SANDBOX_SETTINGS)
