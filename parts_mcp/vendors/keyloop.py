"""Keyloop Parts Orders API: a car dealer's DMS. Parts search, price-availability, parts orders.

Documented by Keyloop (seeds/002): POST /parts-orders (201 with the whole order, or 202 with only
its id while the DMS works on it) and GET /parts-orders/{id} (404 once the dealer no longer keeps
the order), the error envelope, order types and statuses. Auth is OAuth2 client credentials at
Apigee (vendors.md). Not in the API: listing or searching orders and idempotency keys, so a lost
answer to an order is never resent; the user checks the DMS for the orderReference (our PO).

The parts search and price-availability paths and shapes come from a third-party client, not from
Keyloop: they live in the constants below, and their readers accept every shape seen or plausible.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import anyio
import httpx2
import stamina
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from parts_mcp.domain import LookupResult, Money, Order, OrderLine, OrderStatus, OrderSummary, Part, Preview, PriceBasis
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors._oauth import ClientCredentials
from parts_mcp.vendors._search import is_part_number, number_variants, suggest
from parts_mcp.vendors.base import (
    Capabilities,
    HttpPolicy,
    NotSupported,
    OrderQuery,
    OrderRequest,
    VendorAuthError,
    VendorBadResponse,
    VendorClient,
    VendorError,
    VendorHttp,
    VendorInvalidRequest,
    VendorNotFound,
    VendorSettingsBase,
    VendorTimeout,
    clean_text,
    error_for_status,
)

logger = logging.getLogger(__name__)

# ---- Paths under {base_url}/{enterprise_id}/{store_id}/v1. Keyloop documents only ORDERS_PATH; the
# ---- other three (and PRICE_AVAILABILITY_PARAMS) are from third-party code: correct them here.
BRANDS_PATH = "/parts/brands"
SEARCH_PATH = "/parts"  # ?brandCode=&partCode=
PRICE_AVAILABILITY_PATH = "/parts/{part_id}/price-availability"
# Inferred, not documented: the customer whose discounted order prices to show.
PRICE_AVAILABILITY_PARAMS = ("customerId",)
ORDERS_PATH = "/parts-orders"
DEFAULT_TOKEN_PATH = "/oauth/client_credential/accesstoken"  # noqa: S105 - a path at the host root (Apigee)

OrderType = Literal["EMG", "VOR", "STK", "DPO", "COL"]
ORDER_TYPES: dict[str, str] = {
    "EMG": "Emergency",
    "VOR": "Vehicle Off Road",
    "STK": "Stock Order",
    "DPO": "Daily Parts Order",
    "COL": "Collection",
}
ORDER_STATUSES: dict[str, OrderStatus] = {
    "CREATED": OrderStatus.ORDERED,  # in the DMS, nothing reserved, issued or ordered yet
    "CONFIRMED": OrderStatus.ACKNOWLEDGED,  # some parts reserved or issued
    "INPROGRESS": OrderStatus.IN_PROGRESS,  # picking or back orders started
    "SHIPPED": OrderStatus.SHIPPED,  # at least one part is being or has been shipped
    "CLOSED": OrderStatus.COMPLETED,  # every line invoiced or cancelled (all cancelled: CANCELLED)
}
LINE_STATUSES: dict[str, OrderStatus] = {
    "OPEN": OrderStatus.DRAFT,
    "RESERVED": OrderStatus.ACKNOWLEDGED,
    "ISSUED": OrderStatus.IN_PROGRESS,
    "BACKORDER": OrderStatus.IN_PROGRESS,
    "PACKED": OrderStatus.IN_PROGRESS,
    "INTRANSIT": OrderStatus.SHIPPED,
    "DELIVERED": OrderStatus.RECEIVED,
    "CANCELLED": OrderStatus.CANCELLED,
    "INVOICED": OrderStatus.COMPLETED,
}
OPTIONS = ("order_type", "vehicle_references", "contact", "delivery_address")

_CONCURRENCY = 8  # parallel search and price-availability calls per look-up
_MAX_BRAND_FANOUT = 12  # brands to try one by one when a search without a brand is refused
_MAX_PARTS_PER_QUERY = 20
_MAX_VARIANTS = 2  # near part codes tried per not-found query: each is a search of its own (or one per brand)
_BRANDS_SHOWN = 12
_BRANDS_TTL = 3600.0
_URL_SEGMENT = r"^[A-Za-z0-9._~-]+$"
_FIELD_PART_LINE = re.compile(r"^parts\[(\d+)\]")


class KeyloopContact(BaseModel):
    """The order contact sent with every order unless `options.contact` gives another."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    company_name: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> KeyloopContact:
        if not any(vars(self).values()):
            raise ValueError("give at least one of name, phone, email, company_name")
        return self


class KeyloopSettings(VendorSettingsBase):
    kind: Literal["keyloop"]
    base_url: str = Field(
        default="https://api.eu.keyloop.io",
        description="Host root: the token endpoint is at token_path, the API at /{enterprise_id}/{store_id}/v1",
    )
    enterprise_id: str = Field(pattern=_URL_SEGMENT)
    store_id: str = Field(pattern=_URL_SEGMENT)
    client_id: SecretStr
    client_secret: SecretStr
    customer_id: str = Field(min_length=1, description="The dealer's customer record the orders are for")
    order_type: OrderType = Field(default="STK", description="Default order type: EMG | VOR | STK | DPO | COL")
    token_path: str = Field(default=DEFAULT_TOKEN_PATH, pattern=r"^/")
    company_id: str | None = Field(default=None, description="Sent as companyId when the dealer wants one")
    contact: KeyloopContact | None = Field(default=None, description="Default orderContact")
    poll_attempts: int = Field(
        default=5, ge=1, le=20, description="Reads of an order answered 202 before its outcome counts as unknown"
    )

    @model_validator(mode="after")
    def _urls(self) -> KeyloopSettings:
        api_urls(self.base_url, self.enterprise_id, self.store_id)  # refuses an API path for another store
        return self


# ------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class _Price:
    """Keyloop's Price {netValue, grossValue, taxValue, taxRate, currencyCode}, per unit."""

    net: Money
    tax: Money | None
    gross: Money | None
    rate: Decimal | None

    def describe(self) -> str:
        if self.gross is None:
            return f"{self.net} net"
        rate = f" {format(self.rate.normalize(), 'f')}%" if self.rate is not None else ""
        return f"{self.net} net ({self.gross} incl.{rate} tax)"


def _tidy(value: Money | None) -> Money | None:
    """To the currency's minor unit when that changes no digit: 58.4 -> 58.40, but 0.125 stays."""
    if value is None:
        return None
    rounded = value.rounded()
    return rounded if rounded == value else value


def _money_diff(a: Money, b: Money) -> Money:
    return Money(amount=a.amount - b.amount, currency=a.currency)


def _decimal(raw: Any) -> Decimal | None:
    value = parse.money(raw, "XXX")
    return value.amount if value is not None else None


def _read_price(raw: Any) -> _Price | None:
    if not isinstance(raw, Mapping):
        return None
    currency = parse.first(raw, "currencyCode", "currency")
    if not isinstance(currency, str):
        return None
    net = _tidy(parse.money(raw.get("netValue"), currency))
    gross = _tidy(parse.money(raw.get("grossValue"), currency))
    tax = _tidy(parse.money(raw.get("taxValue"), currency))
    if net is None and gross is not None and tax is not None:
        net = _money_diff(gross, tax)
    if net is None:
        return None
    if tax is None and gross is not None:
        tax = _money_diff(gross, net)
    if gross is None and tax is not None:
        gross = net + tax
    return _Price(net=net, tax=tax, gross=gross, rate=_decimal(raw.get("taxRate")))


def _order_prices(raw: Any) -> dict[str, _Price]:
    """orderPrices as a list of {orderType, orderPrice}, one such object, or a map by order type."""
    entries: list[Any]
    if isinstance(raw, list):
        entries = raw
    elif isinstance(raw, Mapping) and "orderType" in raw:
        entries = [raw]
    elif isinstance(raw, Mapping):
        entries = [{"orderType": k, "orderPrice": v} for k, v in raw.items()]
    else:
        return {}
    prices: dict[str, _Price] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("orderType"), str):
            continue
        # The price may be nested under orderPrice or be the entry itself.
        price = _read_price(entry.get("orderPrice") if isinstance(entry.get("orderPrice"), Mapping) else entry)
        if price is not None:
            prices[entry["orderType"].strip().upper()] = price
    return prices


def _reference_types(raw: Any) -> tuple[str, ...]:
    """mandatoryVehicleReferences as [{type}], ["VIN"], or "VIN,KEYNUMBER" (a third-party client reads a string)."""
    if isinstance(raw, str):
        items: Iterable[Any] = re.split(r"[,;\s]+", raw)
    elif isinstance(raw, Mapping):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        return ()
    types: list[str] = []
    for item in items:
        kind = item.get("type") if isinstance(item, Mapping) else item
        if isinstance(kind, str) and kind.strip():
            value = clean_text(kind, 40).upper()
            if value not in types:
                types.append(value)
    return tuple(types)


def _lines(raw: Any) -> list[Mapping[str, Any]]:
    # The seed's response has `parts` as one object; an array is what a multi-line order needs.
    if isinstance(raw, Mapping):
        return [raw]
    if isinstance(raw, list):
        return [line for line in raw if isinstance(line, Mapping)]
    return []


# ------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Options:
    order_type: str
    contact: dict[str, str] | None
    address: dict[str, str] | None
    by_part: dict[str, dict[str, str]]  # casefolded part_id -> {TYPE: value}
    for_all: dict[str, str]  # {TYPE: value} for every line

    def references_for(self, part_id: str) -> dict[str, str]:
        return {**self.for_all, **self.by_part.get(part_id.casefold(), {})}


def _refuse(vendor: str, field: str, message: str, code: str = "INVALID_OPTION") -> VendorInvalidRequest:
    return VendorInvalidRequest(vendor, message, field=field, code=code)


def _text_option(vendor: str, field: str, value: Any, limit: int = 100) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise _refuse(vendor, field, f"{field} must be a non-empty string.")
    text = clean_text(value, limit + 1)
    if len(text) > limit:
        raise _refuse(vendor, field, f"{field} is longer than {limit} characters.")
    return text


def _pick(raw: Mapping[str, Any], *names: str) -> Any:
    return parse.first(raw, *names)


def _contact(vendor: str, raw: Any, field: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise _refuse(vendor, field, f"{field} must be an object with name, phone, email and/or company_name.")
    allowed = {"name", "phone", "email", "company_name", "companyName"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _refuse(vendor, field, f"{field} takes name, phone, email and company_name, not {', '.join(unknown)}.")
    wire = {
        "name": _pick(raw, "name"),
        "phone": _pick(raw, "phone"),
        "email": _pick(raw, "email"),
        "companyName": _pick(raw, "company_name", "companyName"),
    }
    contact = {k: _text_option(vendor, f"{field}.{k}", v) for k, v in wire.items() if v is not None}
    if not contact:
        raise _refuse(vendor, field, f"{field} is empty; give at least a name or phone.")
    return contact


def _address(vendor: str, raw: Any) -> dict[str, str]:
    field = "options.delivery_address"
    if not isinstance(raw, Mapping):
        raise _refuse(vendor, field, f"{field} must be an object: street_name, postal_code, city, country_code.")
    names = {
        "streetName": ("street_name", "streetName"),
        "postalCode": ("postal_code", "postalCode"),
        "city": ("city",),
        "countryCode": ("country_code", "countryCode"),
    }
    unknown = sorted(set(raw) - {n for spellings in names.values() for n in spellings})
    if unknown:
        raise _refuse(
            vendor, field, f"{field} takes street_name, postal_code, city and country_code, not {', '.join(unknown)}."
        )
    address: dict[str, str] = {}
    for wire, spellings in names.items():
        value = _pick(raw, *spellings)
        if value is None:
            raise _refuse(vendor, f"{field}.{spellings[0]}", f"{field}.{spellings[0]} is required.")
        # Postal codes are strings (UK, NL): the seed's integer example would lose leading zeros.
        address[wire] = _text_option(vendor, f"{field}.{spellings[0]}", value)
    if not re.fullmatch(r"[A-Za-z]{2}", address["countryCode"]):
        raise _refuse(vendor, f"{field}.country_code", f"{field}.country_code must be an ISO 3166 code such as GB.")
    address["countryCode"] = address["countryCode"].upper()
    return address


def _reference_map(vendor: str, raw: Any, field: str) -> dict[str, str]:
    """{TYPE: value} from {"KEYNUMBER": "..."} or [{"type": "KEYNUMBER", "value": "..."}]."""
    pairs: list[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(e, Mapping) for e in raw):
        pairs = [(e.get("type"), e.get("value")) for e in raw]
    else:
        raise _refuse(
            vendor,
            field,
            f'{field} must map reference types to values, e.g. {{"KEYNUMBER": "AO339223X/2926"}}, or be a list of '
            '{"type", "value"} objects.',
        )
    references: dict[str, str] = {}
    for kind, value in pairs:
        if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z_]{2,40}", kind.strip()):
            raise _refuse(vendor, field, f"{field}: {clean_text(kind, 40)!r} is not a reference type such as VIN.")
        references[kind.strip().upper()] = _text_option(vendor, f"{field}.{kind.strip().upper()}", value)
    return references


# ------------------------------------------------------------------------------------------- client


class _NotReadableYet(Exception):
    """An order answered 202 is not readable yet."""


class KeyloopClient:
    kind = "keyloop"
    display_name = "Keyloop (dealer DMS)"
    capabilities = Capabilities(lookup=True, place=True, get=True)
    options_help = (
        "Keyloop options: order_type (EMG|VOR|STK|DPO|COL, default from config); vehicle_references when a part "
        'demands them, e.g. [{"type": "VIN", "value": "..."}] (add "part_id" for one line only); contact {name, '
        "phone, email, company_name} (default from config); delivery_address {street_name, postal_code, city, "
        "country_code} for an alternate delivery. No notes."
    )
    status_help: Mapping[OrderStatus, str] = {
        OrderStatus.ORDERED: "created in the dealer's DMS; no part reserved or issued yet",
        OrderStatus.ACKNOWLEDGED: "confirmed: the dealer reserved or issued some parts",
        OrderStatus.COMPLETED: "closed by the dealer; Keyloop may drop it after a while",
    }

    def __init__(
        self,
        key: str,
        *,
        base_url: str,
        enterprise_id: str,
        store_id: str,
        client_id: str,
        client_secret: str,
        customer_id: str,
        http: httpx2.AsyncClient,
        order_type: str = "STK",
        token_path: str = DEFAULT_TOKEN_PATH,
        company_id: str | None = None,
        contact: KeyloopContact | None = None,
        poll_attempts: int = 5,
        policy: HttpPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        host, api = api_urls(base_url, enterprise_id, store_id)
        self._policy = policy or HttpPolicy()
        self.tokens = ClientCredentials(
            key,
            http,
            host + token_path,
            client_id,
            client_secret,
            auth_style="body",  # Apigee reads client_id/client_secret from the form
            policy=self._policy,
            clock=clock,
        )
        self._http = VendorHttp(
            key,
            http,
            api,
            headers={"Accept": "application/json"},
            map_error=self._map_error,
            policy=self._policy,
            secrets=[client_secret],
            tokens=self.tokens,
        )
        self._customer_id = customer_id
        self._order_type = order_type
        self._company_id = company_id
        self._contact = _contact(key, contact.model_dump(exclude_none=True), "contact") if contact is not None else None
        self._poll_attempts = poll_attempts
        self._clock = clock
        self._brands: dict[str, str] | None = None
        self._brands_until = 0.0
        self._brands_lock = anyio.Lock()
        # partId -> (brandCode, partCode) as Keyloop spelled them, to send all three as the seed's example does.
        self._codes: dict[str, tuple[Any, Any]] = {}

    # ------------------------------------------------------------------------------------ look-up

    @property
    def search_help(self) -> str:
        known = list((self._brands or {}).items())
        brands = ", ".join(f"{name} ({code})" for code, name in known[:_BRANDS_SHOWN])
        more = f" and {len(known) - _BRANDS_SHOWN} more" if len(known) > _BRANDS_SHOWN else ""
        return (
            "Keyloop (car dealer's DMS): exact part codes only, no names (e.g. 1K0698151A, or V1K0698151A with the "
            "brand code first)." + (f" The dealer carries {brands}{more}." if brands else "")
        )

    async def lookup(self, queries: Sequence[str]) -> LookupResult:
        brands = await self._brand_names()
        found = await self._search_all(queries, brands)
        raws: dict[str, Mapping[str, Any]] = {}
        for query in queries:
            for raw in found.get(query, []):
                raws.setdefault(_part_id(raw), raw)
                self._remember_codes(raw)
        offers = await self._price_availabilities(list(raws))
        parts = [self._part(raw, offers.get(part_id), brands) for part_id, raw in raws.items()]
        not_found = [clean_text(q, 120) for q in queries if not found.get(q)]
        return LookupResult(parts=parts, not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # The search takes exact part codes only: a few near codes per query are tried (a name cannot be
        # searched at all), and what exists is only suggested, never taken for the part asked for.
        brands = await self._brand_names()
        codes = {q: "".join(q.split()) for q in queries}
        variants = {q: number_variants(c, _MAX_VARIANTS) if is_part_number(c) else [] for q, c in codes.items()}
        seen = await self._search_all([v for vs in variants.values() for v in vs], brands)
        suggestions = [
            # Ranked on the code as searched ("1K0 698 151 B" is 1K0698151B), reported for the query as asked.
            near.model_copy(update={"query": q})
            for q in queries
            for near in suggest(codes[q], self.key, [_described(raw) for v in variants[q] for raw in seen.get(v, [])])
        ]
        return LookupResult(parts=[], not_found=list(queries), suggestions=suggestions)

    async def _search_all(
        self, queries: Iterable[str], brands: Mapping[str, str]
    ) -> dict[str, list[Mapping[str, Any]]]:
        """The search for each query, a few at a time; the first vendor error is raised."""
        limiter = anyio.CapacityLimiter(_CONCURRENCY)
        found: dict[str, list[Mapping[str, Any]]] = {}
        failures: list[VendorError] = []

        async def search(query: str) -> None:
            async with limiter:
                try:
                    found[query] = await self._search(query, brands)
                except VendorError as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as group:
            for query in dict.fromkeys(queries):
                group.start_soon(search, query)
        if failures:
            raise failures[0]
        return found

    async def _brand_names(self) -> dict[str, str]:
        """Brand code -> name, cached: brands change rarely, and every look-up needs them."""
        async with self._brands_lock:
            if self._brands is not None and self._clock() < self._brands_until:
                return self._brands
            try:
                _, data = await self._http.request("GET", BRANDS_PATH, retry=True)
            except VendorAuthError:
                raise
            except VendorError as exc:
                # Without brands a search by part code alone still works; try again in a minute.
                logger.info("Keyloop brands unavailable: %s", exc.code)
                self._brands, self._brands_until = {}, self._clock() + 60
                return {}
            entries = data.get("brands") if isinstance(data, Mapping) else data
            brands: dict[str, str] = {}
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, Mapping) and isinstance(entry.get("brandCode"), str) and entry["brandCode"]:
                    code = clean_text(entry["brandCode"], 20)
                    brands[code] = clean_text(entry.get("description") or code, 80)
            self._brands, self._brands_until = brands, self._clock() + _BRANDS_TTL
            return brands

    async def _search(self, query: str, brands: Mapping[str, str]) -> list[Mapping[str, Any]]:
        # Dealers show part codes with spaces ("1K0 698 151 A"); the DMS stores them without.
        code = "".join(query.split())
        if not code or not any(ch.isdigit() for ch in code):
            return []  # the search takes part codes only, and every part code has a digit
        attempts: list[tuple[str | None, str]] = []
        # A partId is brand code + part code ("S7654321"): try that split first, longest brand first.
        for brand in sorted(brands, key=len, reverse=True):
            if code.upper().startswith(brand.upper()) and len(code) > len(brand):
                attempts.append((brand, code[len(brand) :]))
        attempts.append((None, code))
        for brand, part_code in attempts:
            parts = await self._search_parts(brand, part_code, brands)
            if parts:
                return parts[:_MAX_PARTS_PER_QUERY]
        return []

    async def _search_parts(
        self, brand: str | None, part_code: str, brands: Mapping[str, str]
    ) -> list[Mapping[str, Any]]:
        try:
            _, data = await self._http.request(
                "GET", SEARCH_PATH, params={"brandCode": brand, "partCode": part_code}, retry=True
            )
        except VendorNotFound:
            return []  # a third-party client reads 404 as "no parts found"
        except VendorInvalidRequest:
            if brand is not None:
                return []
            # The search may insist on a brand: ask each of the dealer's brands instead.
            found: list[Mapping[str, Any]] = []
            for code in list(brands)[:_MAX_BRAND_FANOUT]:
                found += await self._search_parts(code, part_code, brands)
            return found
        entries = data.get("parts") if isinstance(data, Mapping) else data
        return [e for e in entries if isinstance(e, Mapping) and _part_id(e)] if isinstance(entries, list) else []

    async def _price_availabilities(self, part_ids: Sequence[str]) -> dict[str, Mapping[str, Any] | VendorError]:
        limiter = anyio.CapacityLimiter(_CONCURRENCY)
        results: dict[str, Mapping[str, Any] | VendorError] = {}
        params = {"customerId": self._customer_id} if "customerId" in PRICE_AVAILABILITY_PARAMS else {}

        async def fetch(part_id: str) -> None:
            async with limiter:
                try:
                    _, data = await self._http.request(
                        "GET",
                        PRICE_AVAILABILITY_PATH.format(part_id=quote(part_id, safe="")),
                        params=params,
                        retry=True,
                    )
                except VendorError as exc:
                    results[part_id] = exc
                    return
                offer: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
                self._remember_codes(offer)
                results[part_id] = offer

        async with anyio.create_task_group() as group:
            for part_id in dict.fromkeys(part_ids):
                group.start_soon(fetch, part_id)
        for outcome in results.values():
            if isinstance(outcome, VendorAuthError):
                raise outcome
        return results

    def _remember_codes(self, raw: Mapping[str, Any]) -> None:
        brand, code = raw.get("brandCode"), raw.get("partCode")
        if not _part_id(raw) or not isinstance(brand, str) or not isinstance(code, str | int) or isinstance(code, bool):
            return
        if len(self._codes) > 10_000:
            self._codes.clear()  # a bound, not a cache policy: the preview refills what an order needs
        self._codes[_part_id(raw)] = (brand, code)

    def _part(
        self, raw: Mapping[str, Any], offer: Mapping[str, Any] | VendorError | None, brands: Mapping[str, str]
    ) -> Part:
        part_id = _part_id(raw)
        brand = str(raw.get("brandCode") or "")
        notes: list[str] = []
        unit_price: Money | None = None
        basis = PriceBasis.CONTRACT
        available: int | None = None
        blocked = False
        if not isinstance(offer, Mapping):
            code = offer.code if isinstance(offer, VendorError) else "NO_ANSWER"
            notes.append(f"Keyloop could not price this part just now ({code}); look it up again before ordering.")
        else:
            prices = _order_prices(offer.get("orderPrices"))
            chosen = prices.get(self._order_type)
            list_price = _read_price(offer.get("listPrice"))
            if chosen is not None:
                unit_price = chosen.net
                notes.append(
                    f"Your order price for {self._order_type} ({ORDER_TYPES[self._order_type]}) orders: "
                    f"{chosen.describe()} per unit."
                )
            elif list_price is not None:
                unit_price, basis = list_price.net, PriceBasis.LIST
                notes.append(f"The dealer gave no {self._order_type} order price: this is the list price.")
            others = [f"{t} {p.net}" for t, p in prices.items() if t != self._order_type]
            if others:
                notes.append("Order prices for other order types (net, options.order_type): " + ", ".join(others) + ".")
            if list_price is not None:
                notes.append(f"List price: {list_price.describe()}.")
            surcharge = _read_price(offer.get("surcharge"))
            if surcharge is not None and surcharge.net.amount:
                notes.append(f"Surcharge: {surcharge.describe()} per unit (e.g. a deposit), not in the order price.")
            available = parse.integer(offer.get("availableStock"))
            lead = parse.integer(offer.get("leadTimeInDays"))
            if lead is not None:
                notes.append(f"Lead time: {lead} day(s).")
            back_order = offer.get("isAvailableForBackOrder")
            if isinstance(back_order, bool):
                notes.append("Back-order allowed." if back_order else "Cannot be back-ordered: only stock on hand.")
            if offer.get("salesBlocked") is True:
                blocked = True
                why = offer.get("salesBlockedDescription")
                notes.append("Sales blocked" + (f": {clean_text(why, 160)}" if why else "") + ". Not orderable.")
            references = _reference_types(offer.get("mandatoryVehicleReferences"))
            if references:
                notes.append(
                    f"Orders must carry vehicle references {', '.join(references)}: give them as "
                    f'options.vehicle_references, e.g. {{"{references[0]}": "..."}}.'
                )
        notes += _alternatives(raw.get("alternativeParts"))
        return Part(
            vendor=self.key,
            part_id=part_id,
            part_number=part_id,
            name=clean_text(raw.get("description") or part_id, 200),
            manufacturer=brands.get(brand) or (clean_text(brand, 40) if brand else None),
            unit_price=unit_price,
            price_basis=basis,
            available_quantity=available,
            vendor_status="SALES_BLOCKED" if blocked else None,
            orderable=not blocked,
            notes=notes,
        )

    async def resolve_parts(self, part_ids: Sequence[str]) -> dict[str, Part]:
        # A part_id is Keyloop's partId: brand code plus part code ("V1K0698151A"), so the brand tells one
        # franchise's part from another's with the same code, and searching for it finds that one part again.
        found = {part.part_id: part for part in (await self.lookup(part_ids)).parts}
        return {part_id: found[part_id] for part_id in part_ids if part_id in found}

    # ------------------------------------------------------------------------------------- orders

    def _options(self, request: OrderRequest) -> _Options:
        options = dict(request.options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise _refuse(
                self.key,
                f"options.{unknown[0]}",
                f"Keyloop orders take the options {', '.join(OPTIONS)}; not {', '.join(map(repr, unknown))}.",
            )
        order_type = options.get("order_type", self._order_type)
        if not isinstance(order_type, str) or order_type.strip().upper() not in ORDER_TYPES:
            allowed = ", ".join(f"{k} ({v})" for k, v in ORDER_TYPES.items())
            raise _refuse(
                self.key,
                "options.order_type",
                f"options.order_type must be one of {allowed}; got {clean_text(order_type, 40)!r}.",
            )
        contact = _contact(self.key, options["contact"], "options.contact") if "contact" in options else self._contact
        address = _address(self.key, options["delivery_address"]) if "delivery_address" in options else None
        by_part: dict[str, dict[str, str]] = {}
        for_all: dict[str, str] = {}
        raw_refs = options.get("vehicle_references")
        if raw_refs is not None:
            ids = {item.part_id.casefold() for item in request.items}
            if isinstance(raw_refs, Mapping) and raw_refs and all(str(k).casefold() in ids for k in raw_refs):
                for part_id, refs in raw_refs.items():
                    by_part[str(part_id).casefold()] = _reference_map(
                        self.key, refs, f"options.vehicle_references.{part_id}"
                    )
            else:
                for_all = _reference_map(self.key, raw_refs, "options.vehicle_references")
        return _Options(order_type.strip().upper(), contact, address, by_part, for_all)

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        if request.notes:
            raise VendorInvalidRequest(
                self.key,
                "Keyloop parts orders have no notes field; leave notes out (the PO number is sent as orderReference).",
                field="notes",
                code="INVALID_OPTION",
            )
        options = self._options(request)
        # Fresh price-availability: the order type may differ from the look-up's, and stock moves.
        offers = await self._price_availabilities([item.part_id for item in request.items])
        lines: list[OrderLine] = []
        prices: list[_Price] = []
        caveats: list[str] = []
        excludes: list[str] = []
        missing: list[str] = []
        list_priced: list[str] = []
        references: dict[str, list[dict[str, str]]] = {}
        for index, item in enumerate(request.items):
            known = parts[item.part_id]
            where = f"items[{index}].part_id"
            offer = offers.get(item.part_id)
            if isinstance(offer, VendorNotFound):
                raise VendorInvalidRequest(
                    self.key, f"{where}: the dealer no longer knows {item.part_id}; look it up again.", field=where
                )
            if isinstance(offer, VendorError):
                raise offer
            offer = offer or {}
            if offer.get("salesBlocked") is True:
                why = offer.get("salesBlockedDescription")
                raise VendorInvalidRequest(
                    self.key,
                    f"{where}: {item.part_id} is blocked for sale at the dealer"
                    + (f" ({clean_text(why, 160)})" if why else "")
                    + "; it cannot be ordered.",
                    field=where,
                )
            offered = _order_prices(offer.get("orderPrices"))
            price = offered.get(options.order_type)
            if price is None and offered:
                raise _refuse(
                    self.key,
                    "options.order_type",
                    f"The dealer offers {item.part_id} for order types {', '.join(offered)}, not "
                    f"{options.order_type}; choose one of those as options.order_type.",
                )
            if price is None:
                # No order prices at all (a dealer or API version without them): the list price is all we have.
                price = _read_price(offer.get("listPrice"))
                if price is None:
                    raise VendorInvalidRequest(
                        self.key,
                        f"{where}: the dealer gave no price for {item.part_id}; it cannot be ordered.",
                        field=where,
                    )
                list_priced.append(item.part_id)
            required = _reference_types(offer.get("mandatoryVehicleReferences"))
            given = options.references_for(item.part_id)
            lacking = [t for t in required if t not in given]
            if lacking:
                missing.append(f"{item.part_id} needs {', '.join(lacking)}")
            elif required:
                references[item.part_id] = [{"type": t, "value": given[t]} for t in required]
            stock = parse.integer(offer.get("availableStock"))
            back_order = offer.get("isAvailableForBackOrder")
            lead = parse.integer(offer.get("leadTimeInDays"))
            if stock is not None and stock < item.quantity:
                if back_order is False:
                    caveats.append(
                        f"{item.part_id}: {item.quantity} requested, {stock} in stock, and the part cannot be "
                        "back-ordered: the dealer will likely refuse the order."
                    )
                else:
                    caveats.append(
                        f"{item.part_id}: {item.quantity} requested, {stock} in stock; the rest will be back-ordered"
                        + (f" (lead time {lead} day(s))." if lead is not None else ".")
                    )
            surcharge = _read_price(offer.get("surcharge"))
            if surcharge is not None and surcharge.net.amount:
                excludes.append(
                    f"{item.part_id}: surcharge of {surcharge.describe()} per unit, if the dealer bills it on top"
                )
            prices.append(price)
            lines.append(
                OrderLine.priced(
                    part_id=item.part_id,
                    part_number=known.part_number,
                    name=known.name,
                    quantity=item.quantity,
                    unit_price=price.net,
                )
            )
        if missing:
            raise VendorInvalidRequest(
                self.key,
                "The dealer requires vehicle references on these parts: "
                + "; ".join(missing)
                + '. Give them as options.vehicle_references, e.g. [{"type": "KEYNUMBER", "value": "AO339223X/2926"}] '
                'for every part, or with "part_id" in an entry for one part only.',
                field="options.vehicle_references",
                code="VEHICLE_REFERENCES_REQUIRED",
            )
        currencies = {p.net.currency for p in prices}
        if len(currencies) != 1:
            raise VendorBadResponse(self.key, f"Keyloop priced this order in several currencies ({currencies}).")
        currency = currencies.pop()
        subtotal = Money.total((line.line_total for line in lines if line.line_total), currency)
        if all(p.gross is not None for p in prices):
            total = Money.total(((p.gross * i.quantity) for p, i in zip(prices, request.items, strict=True)), currency)  # type: ignore[operator]
            tax = _money_diff(total, subtotal)
            rates = sorted({format(p.rate.normalize(), "f") for p in prices if p.rate is not None})
            caveats.insert(
                0,
                f"Prices are your {options.order_type} ({ORDER_TYPES[options.order_type]}) order prices at the "
                f"dealer, net of tax; the total includes {tax} tax"
                + (f" ({', '.join(rates)}%)" if rates else "")
                + ".",
            )
        else:
            total = subtotal
            excludes.append("tax (VAT): the dealer did not state it")
            caveats.insert(
                0,
                f"Prices are your {options.order_type} ({ORDER_TYPES[options.order_type]}) order prices at the "
                "dealer, net of tax.",
            )
        if list_priced:
            caveats.append(
                f"The dealer gave no order price for {', '.join(list_priced)}: list prices are shown; the dealer bills "
                "the customer's own price, which the placed order reports."
            )
        caveats.append(
            "Keyloop cannot deduplicate orders: should the answer to this order be lost, it is not resent; the "
            f"dealer's DMS then shows whether an order with orderReference {request.po_number!r} exists."
        )
        shown: dict[str, Any] = {"order_type": options.order_type}
        if options.contact:
            shown["contact"] = options.contact
        if options.address:
            shown["delivery_address"] = options.address
        else:
            caveats.append("Delivered to the customer's invoice address (no options.delivery_address).")
        if references:
            shown["vehicle_references"] = references
        return Preview(
            vendor=self.key,
            po_number=request.po_number,
            lines=lines,
            options=shown,
            subtotal=subtotal,
            total=total,
            currency=currency,
            price_basis=PriceBasis.LIST if list_priced else PriceBasis.CONTRACT,
            excludes=excludes,
            caveats=caveats,
        )

    def _order_body(self, request: OrderRequest, preview: Preview) -> dict[str, Any]:
        shown = preview.options
        references: Mapping[str, Any] = shown.get("vehicle_references") or {}
        lines = []
        for item in request.items:
            line: dict[str, Any] = {"part": self._part_ref(item.part_id), "quantity": item.quantity}
            if references.get(item.part_id):
                line["mandatoryVehicleReferences"] = references[item.part_id]
            lines.append(line)
        body: dict[str, Any] = {"customerId": self._customer_id}
        if self._company_id:
            body["companyId"] = self._company_id
        if shown.get("contact"):
            body["orderContact"] = shown["contact"]
        if shown.get("delivery_address"):
            body["alternateDeliveryAddress"] = shown["delivery_address"]
        body |= {"orderType": shown.get("order_type") or self._order_type, "orderReference": request.po_number}
        body["parts"] = lines
        return body

    def _part_ref(self, part_id: str) -> dict[str, Any]:
        # The seed's example sends partId with brandCode and partCode; the preview's price-availability
        # call has just told us those, and partId alone still names the part should they be missing.
        codes = self._codes.get(part_id)
        return (
            {"partId": part_id} if codes is None else {"partId": part_id, "brandCode": codes[0], "partCode": codes[1]}
        )

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        # Keyloop has no idempotency key: a resend after a lost answer could create a second order.
        try:
            response, data = await self._http.request(
                "POST", ORDERS_PATH, json_body=self._order_body(request, preview), retry=False
            )
        except VendorError as exc:
            if exc.maybe_committed:
                exc.message += (
                    f" The order may nevertheless exist in the dealer's DMS with orderReference "
                    f"{request.po_number!r}: check there before ordering again."
                )
            raise
        raw = data if isinstance(data, Mapping) else {}
        order_id = raw.get("partsOrderId")
        if order_id is None or isinstance(order_id, bool) or not str(order_id).strip():
            raise VendorBadResponse(
                self.key,
                f"Keyloop answered {response.status_code} without a partsOrderId; check the dealer's DMS for "
                f"orderReference {request.po_number!r}.",
                status=response.status_code,
            )
        if response.status_code != 202 and _lines(raw.get("parts")):
            return self._order(raw, request.po_number)
        # 202 (or a 201 with only the id): the DMS is still creating the order.
        return await self._await_order(str(order_id), request.po_number)

    async def _await_order(self, order_id: str, po_number: str) -> Order:
        policy = self._policy
        path = f"{ORDERS_PATH}/{quote(order_id, safe='')}"
        try:
            with anyio.fail_after(policy.deadline):
                async for attempt in stamina.retry_context(
                    on=_NotReadableYet,
                    attempts=self._poll_attempts,
                    timeout=None,
                    wait_initial=policy.wait_initial,
                    wait_max=policy.wait_max,
                    wait_jitter=policy.wait_jitter,
                ):
                    with attempt:
                        try:
                            _, data = await self._http.request("GET", path, retry=True)
                        except VendorNotFound as exc:
                            raise _NotReadableYet from exc
                        if not isinstance(data, Mapping) or not _lines(data.get("parts")):
                            raise _NotReadableYet
                        return self._order(data, po_number)
        except (_NotReadableYet, TimeoutError, VendorError) as exc:
            raise VendorTimeout(
                self.key,
                f"Keyloop accepted the order as partsOrderId {order_id} but did not confirm it while we waited, so "
                f"it may or may not have been created. Check it later with get_order {order_id}, or in the dealer's "
                f"DMS under orderReference {po_number!r}.",
                code="ORDER_NOT_CONFIRMED",
                order_id=order_id,
            ) from exc
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _order(self, raw: Mapping[str, Any], po_number: str | None) -> Order:
        order_id = raw.get("partsOrderId")
        if order_id is None or isinstance(order_id, bool):
            raise VendorBadResponse(self.key, "Keyloop sent an order without a partsOrderId")
        lines: list[OrderLine] = []
        billed: list[tuple[_Price, int]] = []
        line_details: list[dict[str, Any]] = []
        for line in _lines(raw.get("parts")):
            nested = line.get("part")
            part: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
            part_id = str(parse.first(line, "partId") or parse.first(part, "partId") or _part_id(part) or "?")
            quantity = parse.integer(line.get("quantity")) or 0
            price = _read_price(line.get("orderPrice"))
            status = line.get("partsOrderLineStatus")
            status = clean_text(status, 40).upper() if isinstance(status, str) and status else None
            lines.append(
                OrderLine(
                    part_id=part_id,  # an id is never altered: the domain type refuses an unsafe one
                    part_number=clean_text(part_id, 80),
                    quantity=quantity,
                    unit_price=price.net if price else None,
                    line_total=(price.net * quantity).rounded() if price else None,
                    vendor_status=status,
                )
            )
            if price is not None and status != "CANCELLED":
                billed.append((price, quantity))
            line_details.append(
                {
                    "part_id": part_id,
                    "order_line_id": clean_text(line.get("orderLineId"), 80) if line.get("orderLineId") else None,
                    "status": status,
                    "normalized_status": LINE_STATUSES.get(status or "", OrderStatus.UNKNOWN).value,
                }
            )
        vendor_status = raw.get("orderStatus")
        vendor_status = clean_text(vendor_status, 40).upper() if isinstance(vendor_status, str) else None
        if vendor_status is None and lines:
            vendor_status = _derive_status(line.vendor_status or "" for line in lines)
        status = self.map_status(vendor_status)
        if vendor_status == "CLOSED" and lines and all(line.vendor_status == "CANCELLED" for line in lines):
            status = OrderStatus.CANCELLED
        subtotal = tax = total = None
        currencies = {p.net.currency for p, _ in billed}
        if len(currencies) == 1:
            currency = next(iter(currencies))
            subtotal = Money.total((p.net * q for p, q in billed), currency)
            if all(p.gross is not None for p, _ in billed):
                total = Money.total((p.gross * q for p, q in billed), currency)  # type: ignore[operator]
                tax = _money_diff(total, subtotal)
        details: dict[str, Any] = {"lines": line_details}
        order_type = raw.get("orderType")
        if isinstance(order_type, str):
            details["order_type"] = clean_text(order_type, 10)
        for name, wire in (("delivery_address", "deliveryAddress"), ("order_contact", "orderContact")):
            value = raw.get(wire)
            if isinstance(value, Mapping):
                details[name] = {k: clean_text(v, 120) for k, v in value.items() if isinstance(v, str | int)}
        if any(line.vendor_status == "CANCELLED" for line in lines):
            details["totals_exclude"] = "cancelled lines"
        reference = raw.get("orderReference")
        return Order(
            vendor=self.key,
            order_id=str(order_id),  # an id is checked, never altered (domain.VendorId)
            po_number=clean_text(reference, 80) if isinstance(reference, str) and reference else po_number,
            status=status,
            vendor_status=vendor_status,
            lines=lines,
            subtotal=subtotal,
            tax=tax,
            total=total,
            currency=shown.currency if (shown := total or subtotal) else None,
            created_at=parse.timestamp(raw.get("partsOrderDateTime")),
            details=details,
        )

    async def get_order(self, order_id: str) -> Order:
        try:
            _, data = await self._http.request("GET", f"{ORDERS_PATH}/{quote(order_id, safe='')}", retry=True)
        except VendorNotFound as exc:
            raise VendorNotFound(
                self.key,
                f"Keyloop has no parts order {clean_text(order_id, 40)!r}. Dealers keep parts orders only for a "
                "while after they are fulfilled, so an older order may no longer be retained in the DMS (the dealer "
                "can still tell you about it); a very recent order may still be being created.",
                code="ORDER_NOT_FOUND",
                status=404,
            ) from exc
        if not isinstance(data, Mapping):
            raise VendorBadResponse(self.key, "Keyloop answered the order look-up with no order")
        return self._order(data, None)

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        raise NotSupported(self.key, "Keyloop's parts-orders API cannot list orders.", capability="list")

    async def find_order_by_po(self, po_number: str) -> Order | None:
        raise NotSupported(self.key, "Keyloop's parts-orders API cannot search orders.", capability="find_by_po")

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return ORDER_STATUSES.get((vendor_status or "").strip().upper(), OrderStatus.UNKNOWN)

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        envelope = data if isinstance(data, Mapping) else {}
        status = response.status_code
        message = clean_text(envelope.get("message") or response.reason_phrase or "no message", 200)
        details = [d for d in envelope.get("details") or [] if isinstance(d, Mapping)]
        issues = "; ".join(
            clean_text(f"{d.get('field')}: {d.get('issue')}" if d.get("field") else d.get("issue") or "", 200)
            for d in details[:5]
        )
        said = message + (f" ({issues})" if issues else "")
        correlation = envelope.get("correlationId")
        if isinstance(correlation, str) and correlation:
            said += f" [Keyloop correlationId {clean_text(correlation, 60)}]"
        kw: dict[str, Any] = {"code": f"HTTP_{status}", "status": status}
        if status in (401, 403):
            return VendorAuthError(
                self.key,
                f"Keyloop refused access ({status}): {said}. Check client_id, client_secret, and that the app may "
                "use the Parts Orders API for this enterprise and store.",
                **kw,
            )
        field = next((str(d["field"]) for d in details if isinstance(d.get("field"), str)), None)
        return error_for_status(self.key, "Keyloop", response, said, field=_our_field(field))


# ------------------------------------------------------------------------------------------- helpers


def api_urls(base_url: str, enterprise_id: str, store_id: str) -> tuple[str, str]:
    """(host root, API base) from base_url, which is the host root.

    A base_url copied from Keyloop's server template (host + /{enterpriseId}/{storeId}/v1) is
    accepted too, so the API path is not doubled.
    """
    base = base_url.rstrip("/")
    suffix = f"/{enterprise_id}/{store_id}/v1"
    if base.endswith(suffix):
        base = base[: -len(suffix)]
    elif urlsplit(base).path.rstrip("/").endswith("/v1"):
        raise ValueError(
            f"base_url {base_url!r} ends in an API path for another enterprise or store; give the host root, "
            f"e.g. https://api.eu.keyloop.io"
        )
    return base, base + suffix


def _part_id(raw: Mapping[str, Any]) -> str:
    part_id = raw.get("partId")
    if isinstance(part_id, str | int) and not isinstance(part_id, bool) and str(part_id).strip():
        return clean_text(part_id, 80)
    brand, code = raw.get("brandCode"), raw.get("partCode")
    # partCode is an integer in the seed's example, but real part codes are alphanumeric.
    if brand and code is not None and not isinstance(code, bool):
        return clean_text(f"{brand}{code}", 80)
    return ""


def _described(raw: Mapping[str, Any]) -> tuple[str, str]:
    part_id = _part_id(raw)
    return part_id, clean_text(raw.get("description") or part_id, 200)


def _alternatives(raw: Any) -> list[str]:
    if not isinstance(raw, Mapping):
        return []
    ids = [_part_id(p) for p in raw.get("parts") or [] if isinstance(p, Mapping)]
    ids = [i for i in ids if i]
    if not ids:
        return []
    kind = clean_text(raw.get("alternativeType") or "alternative", 40).lower()
    when = parse.timestamp(raw.get("supersessionDate"))
    since = f" since {when.date().isoformat()}" if when else ""
    return [f"Alternative parts ({kind}{since}): {', '.join(ids)}."]


def _derive_status(line_statuses: Iterable[str]) -> str:
    """The seed's order status from line statuses, for answers that leave orderStatus out."""
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


def _our_field(field: str | None) -> str | None:
    """Keyloop's field path in the terms of place_order's arguments."""
    if not field:
        return None
    if "mandatoryVehicleReference" in field:
        return "options.vehicle_references"
    line = _FIELD_PART_LINE.match(field)
    if line:
        return f"items[{line.group(1)}]" + (".quantity" if field.endswith("quantity") else ".part_id")
    return {
        "orderType": "options.order_type",
        "orderReference": "po_number",
        "orderContact": "options.contact",
        "alternateDeliveryAddress": "options.delivery_address",
    }.get(field.split(".")[0], clean_text(field, 80))


def create(key: str, settings: KeyloopSettings, http: httpx2.AsyncClient) -> KeyloopClient:
    return KeyloopClient(
        key,
        base_url=settings.base_url,
        enterprise_id=settings.enterprise_id,
        store_id=settings.store_id,
        client_id=settings.client_id.get_secret_value(),
        client_secret=settings.client_secret.get_secret_value(),
        customer_id=settings.customer_id,
        order_type=settings.order_type,
        token_path=settings.token_path,
        company_id=settings.company_id,
        contact=settings.contact,
        poll_attempts=settings.poll_attempts,
        http=http,
        policy=settings.http_policy(),
    )


_: type[VendorClient] = KeyloopClient
