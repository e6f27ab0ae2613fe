"""Simulator of the Skynet Parts B2B API (POST /catalog, POST /orders).

Follows the vendor document (seeds/000) and docs/vendors.md section 1. Where the vendor leaves a
detail open, the choice made here is marked "undocumented" so a reader can tell it from fact.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NoReturn

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

__all__ = ["CATALOG", "FAULT_NAMES", "SANDBOX_API_KEY", "CatalogPart", "SkynetSimulator"]

# Shaped like a real key (prefix, letters/digits/underscores, 50 chars); the underscores keep it
# from looking like a Stripe live key to secret scanners, which share the sk_live_ prefix.
# Sandbox keys are public, yet redacted like any key: random-looking, so no run of them spells ordinary words.
SANDBOX_API_KEY: Final = "sk_live_sbx_" + "9c3e1a7f0b5d2c8e4a6f"

CURRENCY: Final = "USD"
MAX_LOOKUP_ENTRIES: Final = 50
PART_ID_PREFIX: Final = "skynet_part_"
ORDER_ID_PREFIX: Final = "skynet_order_"

# echo_credentials: the next catalog call fails with a message quoting the caller's Authorization
# header, as careless APIs do; nothing of it may reach a tool result, an error or a log.
FAULT_NAMES: Final = frozenset({"upstream_error", "order_failed", "drop_after_commit", "echo_credentials"})

_KEY_FORMAT = re.compile(r"sk_live_[A-Za-z0-9_]+")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class CatalogPart:
    """One seeded catalog entry. ``discount_percent`` is the sandbox account's B2B discount off list."""

    part_number: str
    title: str
    vendor: str
    list_price: Decimal
    stock: int
    discount_percent: Decimal = Decimal(0)
    status: str = "ACTIVE"

    @property
    def b2b_price(self) -> Decimal:
        """The account's unit price, revealed only when ordering."""
        return (self.list_price * (100 - self.discount_percent) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


def _part(
    number: str, title: str, vendor: str, price: str, stock: int, discount: int, status: str = "ACTIVE"
) -> CatalogPart:
    return CatalogPart(number, title, vendor, Decimal(price), stock, Decimal(discount), status)


_CASCADE = "Cascade Aero Fasteners"
_NORTHFIELD = "Northfield Aviation Hardware"
_PINECREST = "Pinecrest Precision"
_REDLINE = "Redline Rivet Works"
_HARBOR = "Harbor Fluid Components"

# MS21042L3 at 12.40 with 87 in stock is the vendor's own example; AN3-5A is its not_found example,
# so it is deliberately absent.
# fmt: off
CATALOG: Final[tuple[CatalogPart, ...]] = (
    _part("MS21042L3", "Nut, Self-Locking, Reduced Hex, 10-32 UNJF, Cad Plated (Pack of 25)",
          _CASCADE, "12.40", 87, 12),
    _part("MS21042L4", "Nut, Self-Locking, Reduced Hex, 1/4-28 UNJF, Cad Plated (Pack of 25)",
          _CASCADE, "15.95", 64, 12),
    _part("MS21042L08", "Nut, Self-Locking, Reduced Hex, 8-32 UNJC, Cad Plated (Pack of 25)",
          _CASCADE, "11.10", 5, 12),
    _part("AN365-1032A", "Nut, Self-Locking, Elastic Stop, 10-32 UNF, Cad Plated (Pack of 25)",
          _CASCADE, "14.60", 95, 12),
    _part("NAS1291C3", "Nut, Self-Locking, Low Height, 10-32 UNJF, CRES (Pack of 25)",
          _PINECREST, "27.30", 36, 15),
    _part("AN3-6A", "Bolt, Hex Head, 10-32 UNF, 3/4 in Length, Drilled Shank, Cad Plated",
          _CASCADE, "1.45", 500, 8),
    _part("AN4-7A", "Bolt, Hex Head, 1/4-28 UNF, 7/8 in Length, Drilled Shank, Cad Plated",
          _CASCADE, "2.10", 320, 8),
    _part("AN960C10", "Washer, Flat, #10, Corrosion-Resistant Steel (Pack of 100)",
          _NORTHFIELD, "6.85", 240, 10),
    _part("AN960C416", "Washer, Flat, 1/4 in, Corrosion-Resistant Steel (Pack of 100)",
          _NORTHFIELD, "8.20", 180, 10),
    _part("NAS1149F0363P", "Washer, Flat, #10, 0.063 in Thick, CRES Passivated (Pack of 100)",
          _NORTHFIELD, "9.75", 150, 10),
    _part("AN970-3", "Washer, Flat, Large Area, 3/16 in, Cad Plated Steel (Pack of 50)",
          _NORTHFIELD, "11.35", 70, 10),
    _part("MS20995C32", "Safety Wire, Lockwire, 0.032 in, CRES, 1 lb Spool",
          "Summit Lockwire Inc.", "38.50", 42, 0),
    _part("MS20995C20", "Safety Wire, Lockwire, 0.020 in, CRES, 1 lb Spool",
          "Summit Lockwire Inc.", "41.25", 18, 0),
    _part("MS24665-132", "Cotter Pin, 1/16 x 1/2 in, CRES (Pack of 100)",
          _NORTHFIELD, "7.90", 210, 10),
    _part("MS35206-228", "Screw, Machine, Pan Head, Phillips, 6-32 x 1/2 in, Cad Plated (Pack of 100)",
          _PINECREST, "18.40", 60, 9),
    _part("MS27039-1-08", "Screw, Machine, Pan Head, Cross-Recessed, 8-32 x 1/2 in, CRES (Pack of 100)",
          _PINECREST, "22.10", 48, 9),
    _part("AN525-10R8", "Screw, Washer Head, Recessed, 10-32 x 1/2 in, Cad Plated (Pack of 100)",
          _PINECREST, "24.60", 30, 9),
    _part("NAS1352-3-8P", "Screw, Socket Head Cap, 10-32 x 1/2 in, CRES Passivated (Pack of 25)",
          _PINECREST, "32.75", 24, 15),
    _part("AN426AD3-4", "Rivet, Solid, 100-Degree Countersunk Head, 3/32 x 1/4 in, 2117-T4 Aluminum (1/4 lb)",
          _REDLINE, "16.80", 75, 11),
    _part("MS20470AD4-6", "Rivet, Solid, Universal Head, 1/8 x 3/8 in, 2117-T4 Aluminum (1/4 lb)",
          _REDLINE, "14.25", 90, 11),
    _part("NAS1097AD4-4", "Rivet, Solid, Reduced Countersunk Head, 1/8 x 1/4 in, 2117-T4 Aluminum (1/4 lb)",
          _REDLINE, "19.50", 40, 11),
    _part("MS28775-228", "O-Ring, Preformed Packing, Hydraulic Fluid Resistant, Dash 228 (Pack of 10)",
          "Keystone Seal & Gasket", "26.90", 15, 0),
    _part("AN815-4D", "Union, Flared Tube, 37-Degree, 1/4 in Tube, Aluminum Alloy",
          _HARBOR, "9.15", 55, 8),
    _part("MS21919WDG6", "Clamp, Loop, Cushioned, 3/8 in, Aluminum with Neoprene Cushion",
          _HARBOR, "3.65", 300, 8),
    _part("AN310-3", "Nut, Castellated, 10-32 UNF, Cad Plated Steel (Pack of 25)",
          _CASCADE, "13.20", 0, 0, "DISCONTINUED"),
    _part("MS20074-04-06", "Bolt, Drilled Fillister Head, 1/4-28 x 3/4 in, Cad Plated",
          _CASCADE, "4.85", 0, 0, "DISCONTINUED"),
)
# fmt: on


class _ApiError(Exception):
    """An answer in Skynet's error envelope; raised anywhere in a handler, rendered by the app."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"success": False, "error": error}, status_code=status)


def _invalid(field: str, message: str) -> NoReturn:
    raise _ApiError(400, "VALIDATION_FAILED", message, {"field": field})


def _money(amount: Decimal) -> dict[str, str]:
    return {"amount": str(amount.quantize(_CENT, rounding=ROUND_HALF_UP)), "currency": CURRENCY}


def _is_positive_int(value: object) -> bool:
    # bool is an int subclass, but `true` is not a quantity.
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


async def _json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        _invalid("Content-Type", "Content-Type must be application/json")
    try:
        body = json.loads(await request.body())
    except ValueError:
        _invalid("body", "body must be valid JSON")
    if not isinstance(body, dict):
        _invalid("body", "body must be a JSON object")
    return body


def _fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Token:
    part_number: str
    issued_at: float


@dataclass(frozen=True)
class _StoredResponse:
    fingerprint: str
    status: int
    body: dict[str, Any]


class SkynetSimulator:
    """Stateful Skynet Parts B2B API. Serve ``app`` under any prefix (the real one is ``/api/b2b``).

    Faults (arm on ``faults``): ``upstream_error`` fails the next catalog call with 502
    UPSTREAM_ERROR; ``order_failed`` fails the next order with 502 ORDER_FAILED, creating nothing;
    ``drop_after_commit`` creates the next order (or replays it), then drops the connection before the answer.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (SANDBOX_API_KEY,),
        revoked_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        token_ttl: float = 3600.0,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.revoked_keys = frozenset(revoked_keys)
        for key in self.api_keys | self.revoked_keys:
            if not _KEY_FORMAT.fullmatch(key):
                raise ValueError("Skynet API keys are sk_live_ followed by letters, digits and underscores")
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self.clock = clock
        self.token_ttl = token_ttl
        self.faults = Faults(names=FAULT_NAMES)
        self.orders: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.stock: dict[str, int] = {part.part_number: part.stock for part in CATALOG}
        self._parts = {part.part_number.casefold(): part for part in CATALOG}
        self._tokens: dict[str, _Token] = {}
        # Keyed by (API key, Idempotency-Key): a key belongs to one account, so two accounts may
        # use the same Idempotency-Key without colliding.
        self._idempotency: dict[tuple[str, str], _StoredResponse] = {}
        self.app = Starlette(
            routes=[
                Route("/catalog", self._catalog, methods=["POST"]),
                Route("/orders", self._place_order, methods=["POST"]),
                *admin_routes(self.faults, lambda: self.orders),
            ],
            middleware=[Middleware(RecordingMiddleware, log=self.requests)],
            exception_handlers={_ApiError: self._render_api_error, HTTPException: self._render_http_error},
        )

    def set_stock(self, part_number: str, quantity: int) -> None:
        """Set the available stock of a catalog part (matched case-insensitively).

        Raises:
            KeyError: the part is not in the catalog.
            ValueError: ``quantity`` is negative.
        """
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        self.stock[self._parts[part_number.casefold()].part_number] = quantity

    def set_price(self, part_number: str, list_price: str) -> None:
        """Change a catalog part's list price (its B2B discount stays), e.g. to model a price rise.

        Raises:
            KeyError: the part is not in the catalog.
        """
        key = part_number.casefold()
        self._parts[key] = replace(self._parts[key], list_price=Decimal(list_price))

    def set_discount(self, part_number: str, percent: str) -> None:
        """Change the account's B2B discount off a part's list price; a negative one bills above list
        (a vendor breaking its own rule, which the server must catch).

        Raises:
            KeyError: the part is not in the catalog.
        """
        key = part_number.casefold()
        self._parts[key] = replace(self._parts[key], discount_percent=Decimal(percent))

    # -- rendering ------------------------------------------------------------------------------

    @staticmethod
    def _render_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return _envelope(exc.status, exc.code, exc.message, exc.details)

    @staticmethod
    def _render_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # Undocumented: Skynet's answer for a path or method it does not serve; kept in the same envelope.
        if exc.status_code == 405:
            response = _envelope(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}")
            response.headers.update(exc.headers or {})
            return response
        return _envelope(exc.status_code, "NOT_FOUND", f"No route for {request.method} {request.url.path}")

    # -- auth and tokens ------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if header is None:
            raise _ApiError(401, "INVALID_API_KEY", "Missing Authorization header; send 'Bearer sk_live_...'")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not _KEY_FORMAT.fullmatch(key):
            raise _ApiError(401, "INVALID_API_KEY", "Malformed Authorization header; send 'Bearer sk_live_...'")
        if key in self.revoked_keys:
            raise _ApiError(
                401, "KEY_REVOKED", "This API key was revoked. Email api@skynetparts.com for a replacement."
            )
        if key not in self.api_keys:
            raise _ApiError(401, "INVALID_API_KEY", "API key not recognized")
        return key

    def _issue_token(self, part_number: str) -> str:
        token = PART_ID_PREFIX + secrets.token_urlsafe(75)  # 100 url-safe characters
        self._tokens[token] = _Token(part_number, self.clock())
        return token

    def _forget_expired_tokens(self) -> None:
        now = self.clock()
        for token in [t for t, info in self._tokens.items() if now - info.issued_at >= self.token_ttl]:
            del self._tokens[token]

    def _resolve_token(self, token: str) -> CatalogPart | None:
        info = self._tokens.get(token)
        if info is None or self.clock() - info.issued_at >= self.token_ttl:
            return None
        return self._parts[info.part_number.casefold()]

    # -- POST /catalog --------------------------------------------------------------------------

    async def _catalog(self, request: Request) -> Response:
        self._authenticate(request)
        await self.faults.delay()
        if self.faults.take("echo_credentials"):
            raise _ApiError(400, "VALIDATION_FAILED", f"part_numbers rejected for {request.headers['authorization']}")
        body = await _json_object(request)
        numbers = _string_list(body, "part_numbers")
        names = _string_list(body, "part_names")
        total = len(numbers) + len(names)
        if total == 0:
            _invalid("part_numbers", "part_numbers or part_names must contain at least one entry")
        if total > MAX_LOOKUP_ENTRIES:
            _invalid(
                "part_numbers",
                f"part_numbers and part_names together must have at most {MAX_LOOKUP_ENTRIES} entries, got {total}",
            )
        if self.faults.take("upstream_error"):
            raise _ApiError(502, "UPSTREAM_ERROR", "Part lookup failed on our end. Safe to retry.")

        self._forget_expired_tokens()
        found: dict[str, CatalogPart] = {}
        not_found: list[str] = []
        for number in numbers:
            part = self._parts.get(number.strip().casefold())
            if part is None:
                not_found.append(number)
            else:
                found.setdefault(part.part_number, part)
        for name in names:
            needle = name.strip().casefold()
            matches = [part for part in CATALOG if needle in part.title.casefold()]
            if not matches:
                not_found.append(name)
            for part in matches:
                found.setdefault(part.part_number, part)

        return JSONResponse(
            {
                "success": True,
                "found_parts": [
                    {
                        "part_id": self._issue_token(part.part_number),
                        "part_number": part.part_number,
                        "title": part.title,
                        "vendor": part.vendor,
                        "available_stock": self.stock[part.part_number],
                        "price": _money(part.list_price),
                        "status": part.status,
                    }
                    for part in found.values()
                ],
                "not_found": not_found,
                # Undocumented: "found" counts requested entries that matched, so found + not_found
                # == total_requested even when one name matches several parts.
                "summary": {"total_requested": total, "found": total - len(not_found), "not_found": len(not_found)},
            }
        )

    # -- POST /orders ---------------------------------------------------------------------------

    async def _place_order(self, request: Request) -> Response:
        api_key = self._authenticate(request)
        await self.faults.delay()
        idempotency_key = request.headers.get("idempotency-key", "").strip()
        if not idempotency_key:
            _invalid("Idempotency-Key", "Idempotency-Key header is required")
        body = await _json_object(request)
        items, po_number, notes = _validate_order(body)

        parts: list[CatalogPart] = []
        bad_tokens: list[str] = []
        for part_id, _ in items:
            part = self._resolve_token(part_id)
            if part is None:
                if part_id not in bad_tokens:
                    bad_tokens.append(part_id)
            else:
                parts.append(part)
        if bad_tokens:
            raise _ApiError(
                400,
                "INVALID_PART_TOKEN",
                "A part_id isn't recognized or has expired. Look the part up again.",
                {"part_ids": bad_tokens},
            )

        fingerprint = _fingerprint(body)
        stored = self._idempotency.get((api_key, idempotency_key))
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise _ApiError(
                    409,
                    "IDEMPOTENCY_CONFLICT",
                    "This Idempotency-Key was already used with a different order body.",
                )
            replayed = JSONResponse(stored.body, status_code=stored.status)
            # The order exists either way; a lost answer to a replay is lost just the same.
            return DroppedConnectionResponse(replayed) if self.faults.take("drop_after_commit") else replayed

        if self.faults.take("order_failed"):
            raise _ApiError(
                502, "ORDER_FAILED", "Order placement failed on our end. Your order was not placed. Safe to retry."
            )

        # Several lines may name the same part, so stock is checked against their sum.
        requested: dict[str, tuple[str, int]] = {}
        for (part_id, quantity), part in zip(items, parts, strict=True):
            first_id, so_far = requested.get(part.part_number, (part_id, 0))
            requested[part.part_number] = (first_id, so_far + quantity)
        short = [
            {"part_id": part_id, "part_number": number, "requested": quantity, "available": self.stock[number]}
            for number, (part_id, quantity) in requested.items()
            if quantity > self.stock[number]
        ]
        if short:
            raise _ApiError(
                409, "INSUFFICIENT_INVENTORY", "One or more items don't have enough stock.", {"items": short}
            )

        response_body = self._create_order(api_key, idempotency_key, items, parts, po_number, notes)
        self._idempotency[(api_key, idempotency_key)] = _StoredResponse(fingerprint, 201, response_body)
        response = JSONResponse(response_body, status_code=201)
        if self.faults.take("drop_after_commit"):
            return DroppedConnectionResponse(response)
        return response

    def _create_order(
        self,
        api_key: str,
        idempotency_key: str,
        items: list[tuple[str, int]],
        parts: list[CatalogPart],
        po_number: str,
        notes: str | None,
    ) -> dict[str, Any]:
        order_id = ORDER_ID_PREFIX + secrets.token_hex(6)
        created_at = _iso_utc(self.clock())
        line_items: list[dict[str, Any]] = []
        record_items: list[dict[str, Any]] = []
        total = Decimal(0)
        for (part_id, quantity), part in zip(items, parts, strict=True):
            unit_price = part.b2b_price
            line_total = unit_price * quantity
            total += line_total
            self.stock[part.part_number] -= quantity
            line_items.append(
                {
                    "part_number": part.part_number,
                    "title": part.title,
                    "quantity": quantity,
                    "unit_price": _money(unit_price),
                    "line_total": _money(line_total),
                }
            )
            record_items.append(
                {
                    "part_id": part_id,
                    "part_number": part.part_number,
                    "quantity": quantity,
                    "unit_price": _money(unit_price),
                }
            )
        self.orders.append(
            {
                "order_id": order_id,
                "status": "draft",
                "po_number": po_number,
                "notes": notes,
                "idempotency_key": idempotency_key,
                "items": record_items,
                "total": _money(total),
                "created_at": created_at,
            }
        )
        return {
            "success": True,
            "order": {
                "order_id": order_id,
                "status": "draft",
                "po_number": po_number,
                "line_items": line_items,
                # Undocumented: the names "total" and "created_at" (the vendor page's tail was unreadable).
                "total": _money(total),
                "created_at": created_at,
            },
        }


def _string_list(body: dict[str, Any], field: str) -> list[str]:
    if field not in body:
        return []
    value = body[field]
    if not isinstance(value, list):
        _invalid(field, f"{field} must be an array of strings")
    for index, entry in enumerate(value):
        # A blank name would be a substring of every title.
        if not isinstance(entry, str) or not entry.strip():
            _invalid(f"{field}[{index}]", f"{field}[{index}] must be a non-empty string")
    return value


def _validate_order(body: dict[str, Any]) -> tuple[list[tuple[str, int]], str, str | None]:
    if "items" not in body:
        _invalid("items", "items is required")
    raw_items = body["items"]
    if not isinstance(raw_items, list):
        _invalid("items", "items must be an array")
    if not raw_items:
        _invalid("items", "items must contain at least one entry")
    items: list[tuple[str, int]] = []
    for index, item in enumerate(raw_items):
        if not isinstance(item, dict):
            _invalid(f"items[{index}]", f"items[{index}] must be an object")
        part_id = item.get("part_id")
        if not isinstance(part_id, str) or not part_id:
            _invalid(f"items[{index}].part_id", f"items[{index}].part_id must be a non-empty string")
        quantity = item.get("quantity")
        if not _is_positive_int(quantity):
            _invalid(f"items[{index}].quantity", f"items[{index}].quantity must be a positive integer")
        assert isinstance(quantity, int)
        items.append((part_id, quantity))
    if "po_number" not in body:
        _invalid("po_number", "po_number is required")
    po_number = body["po_number"]
    if not isinstance(po_number, str) or not po_number.strip():
        _invalid("po_number", "po_number must be a non-empty string")
    notes = body.get("notes")
    if "notes" in body and not isinstance(notes, str):
        _invalid("notes", "notes must be a string")
    return items, po_number, notes


SIMULATED = Simulated("/api/b2b", SkynetSimulator, {"kind": "skynet", "api_key": SANDBOX_API_KEY})
