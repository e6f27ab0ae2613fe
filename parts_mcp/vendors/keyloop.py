"""Keyloop Parts Orders API: a car dealer's DMS. Parts search, price-availability, parts orders.

Documented by Keyloop (seeds/002): POST /parts-orders (201 with the whole order, or 202 with only
its id while the DMS works on it) and GET /parts-orders/{id} (404 once the dealer no longer keeps
the order), the error envelope, order types and statuses. Auth is OAuth2 client credentials at
Apigee (vendors.md). Not in the API: listing or searching orders and idempotency keys, so a lost
answer to an order is never resent; the user checks the DMS for the orderReference (our PO).

The parts search and price-availability paths and shapes come from a third-party client, not from
Keyloop: they live in the constants below, and their readers (`vendors.wire.keyloop`) accept every
shape seen or plausible.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote, urlsplit

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from parts_mcp import retries
from parts_mcp.domain import (
    LookupResult,
    Money,
    Order,
    OrderItem,
    OrderLine,
    OrderStatus,
    OrderSummary,
    Part,
    Preview,
    PriceBasis,
)
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors._oauth import ClientCredentials
from parts_mcp.vendors._search import is_part_number, number_variants, suggest
from parts_mcp.vendors._together import Once, each
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
from parts_mcp.vendors.registry import VendorKind
from parts_mcp.vendors.wire import LazyModule, read

if TYPE_CHECKING:
    from parts_mcp.vendors.wire import keyloop as wire
else:
    wire = LazyModule("parts_mcp.vendors.wire.keyloop")

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

_CONCURRENCY = 8  # requests in flight at once (rate limits undocumented)
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

    def account_marks(self) -> frozenset[str]:
        # The dealer's store is the account; one developer app (client id) may serve several stores.
        return frozenset({f"store={self.enterprise_id}/{self.store_id}"})


# ------------------------------------------------------------------------------------------- prices
# Keyloop's answers, and the Price read from them, are in parts_mcp.vendors.wire.keyloop.


def _gross_total(billed: Iterable[tuple[wire.Price, int]], currency: str) -> Money | None:
    """The gross total of (unit price, quantity) pairs; None unless every price states its gross."""
    amounts: list[Money] = []
    for price, quantity in billed:
        if price.gross is None:
            return None
        amounts.append(price.gross * quantity)
    return Money.total(amounts, currency)


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


@dataclass(frozen=True)
class _Priced:
    """An item of an order as the dealer prices it now, with what the preview says about it."""

    part_id: str
    line: OrderLine
    price: wire.Price
    list_priced: bool  # the dealer gave no order prices at all
    references: list[dict[str, str]]  # the line's mandatoryVehicleReferences, when the part demands some
    lacking: tuple[str, ...]  # reference types the part demands that the options do not give
    stock: str | None  # a caveat when the stock is short
    surcharge: str | None  # what the total excludes


@dataclass(frozen=True)
class _Totals:
    subtotal: Money
    total: Money
    caveat: str  # what the prices are, and the tax in the total
    excludes: list[str]


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


def _object(value: Any) -> Mapping[str, Any] | None:
    """An option's value when it is a JSON object (whose keys are strings)."""
    return cast("Mapping[str, Any]", value) if isinstance(value, Mapping) else None


def _contact(vendor: str, value: Any, field: str) -> dict[str, str]:
    raw = _object(value)
    if raw is None:
        raise _refuse(vendor, field, f"{field} must be an object with name, phone, email and/or company_name.")
    allowed = {"name", "phone", "email", "company_name", "companyName"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _refuse(vendor, field, f"{field} takes name, phone, email and company_name, not {', '.join(unknown)}.")
    spelled = {
        "name": _pick(raw, "name"),
        "phone": _pick(raw, "phone"),
        "email": _pick(raw, "email"),
        "companyName": _pick(raw, "company_name", "companyName"),
    }
    contact = {k: _text_option(vendor, f"{field}.{k}", v) for k, v in spelled.items() if v is not None}
    if not contact:
        raise _refuse(vendor, field, f"{field} is empty; give at least a name or phone.")
    return contact


def _address(vendor: str, value: Any) -> dict[str, str]:
    field = "options.delivery_address"
    raw = _object(value)
    if raw is None:
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
    for name, spellings in names.items():
        value = _pick(raw, *spellings)
        if value is None:
            raise _refuse(vendor, f"{field}.{spellings[0]}", f"{field}.{spellings[0]} is required.")
        # Postal codes are strings (UK, NL): the seed's integer example would lose leading zeros.
        address[name] = _text_option(vendor, f"{field}.{spellings[0]}", value)
    if not re.fullmatch(r"[A-Za-z]{2}", address["countryCode"]):
        raise _refuse(vendor, f"{field}.country_code", f"{field}.country_code must be an ISO 3166 code such as GB.")
    address["countryCode"] = address["countryCode"].upper()
    return address


def _reference_map(vendor: str, raw: Any, field: str) -> dict[str, str]:
    """{TYPE: value} from {"KEYNUMBER": "..."} or [{"type": "KEYNUMBER", "value": "..."}]."""
    mapping = _object(raw)
    entries = [_object(e) for e in cast("list[Any]", raw)] if isinstance(raw, list) else [None]
    if mapping is not None:
        pairs = list(mapping.items())
    elif all(e is not None for e in entries):
        pairs = [(e.get("type"), e.get("value")) for e in entries if e is not None]
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
        self._cap = anyio.CapacityLimiter(_CONCURRENCY)
        # partId -> (brandCode, partCode) as Keyloop spelled them, to send all three as the seed's example does.
        self._codes: dict[str, tuple[str, str | int]] = {}

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
        offer = Once(self._offer)

        async def find(query: str) -> list[wire.SearchPart]:
            found = await self._search(query)
            # Priced as soon as its own search answers: no query waits for another's search.
            await each([raw.identity for raw in found], offer)
            return found

        found = await each(queries, find)
        raws: dict[str, wire.SearchPart] = {}
        for query in queries:
            for raw in found.get(query, []):
                raws.setdefault(raw.identity, raw)
                self._remember_codes(raw)
        offers = await self._answered(list(raws), offer)
        brands = await self._brand_names()  # fetched by the searches: no call here
        parts = [self._part(raw, offers.get(part_id), brands) for part_id, raw in raws.items()]
        not_found = [clean_text(q, 120) for q in queries if not found.get(q)]
        return LookupResult(parts=parts, not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # The search takes exact part codes only: a few near codes per query are tried (a name cannot be
        # searched at all), and what exists is only suggested, never taken for the part asked for.
        codes = {q: "".join(q.split()) for q in queries}
        variants = {q: number_variants(c, _MAX_VARIANTS) if is_part_number(c) else [] for q, c in codes.items()}
        seen = await each([v for vs in variants.values() for v in vs], self._search)
        suggestions = [
            # Ranked on the code as searched ("1K0 698 151 B" is 1K0698151B), reported for the query as asked.
            near.model_copy(update={"query": q})
            for q in queries
            for near in suggest(
                codes[q], self.key, [(raw.identity, raw.name) for v in variants[q] for raw in seen.get(v, [])]
            )
        ]
        return LookupResult(parts=[], not_found=list(queries), suggestions=suggestions)

    async def _brand_names(self) -> dict[str, str]:
        """Brand code -> name, cached: brands change rarely, and every look-up needs them."""
        async with self._brands_lock:
            if self._brands is not None and self._clock() < self._brands_until:
                return self._brands
            try:
                async with self._cap:
                    _, data = await self._http.request("GET", BRANDS_PATH, retry=True)
            except VendorAuthError:
                raise
            except VendorError as exc:
                # Without brands a search by part code alone still works; try again in a minute.
                logger.info("Keyloop brands unavailable: %s", exc.code)
                self._brands, self._brands_until = {}, self._clock() + 60
                return {}
            brands: dict[str, str] = {}
            for entry in read(wire.BrandsAnswer, data, self.key, "brands answer").brands:
                if entry.brand_code:
                    code = clean_text(entry.brand_code, 20)
                    brands[code] = clean_text(entry.description or code, 80)
            self._brands, self._brands_until = brands, self._clock() + _BRANDS_TTL
            return brands

    async def _search(self, query: str) -> list[wire.SearchPart]:
        # Dealers show part codes with spaces ("1K0 698 151 A"); the DMS stores them without.
        code = "".join(query.split())
        if not code or not any(ch.isdigit() for ch in code):
            return []  # the search takes part codes only, and every part code has a digit

        async def by_brand() -> list[wire.SearchPart] | None:
            # A partId is brand code + part code ("S7654321"): that split wins, longest brand first.
            brands = await self._brand_names()
            splits = [
                (brand, code[len(brand) :])
                for brand in sorted(brands, key=len, reverse=True)
                if code.upper().startswith(brand.upper()) and len(code) > len(brand)
            ]
            found = await each(splits, self._search_split)
            nothing: list[wire.SearchPart] = []
            return next((parts for split in splits if (parts := found[split])), nothing)

        async def as_is() -> list[wire.SearchPart] | None:
            return await self._search_parts(None, code)

        # Every reading of the code goes at once; the code as it is does not wait for the brands.
        split, whole = (await each([by_brand, as_is], lambda read: read())).values()
        parts = split or whole
        if parts is None:
            # The search insists on a brand: ask each of the dealer's brands instead.
            brands = list(await self._brand_names())[:_MAX_BRAND_FANOUT]
            each_brand = await each([(brand, code) for brand in brands], self._search_split)
            parts = [part for found in each_brand.values() for part in found]
        return parts[:_MAX_PARTS_PER_QUERY]

    async def _search_split(self, split: tuple[str, str]) -> list[wire.SearchPart]:
        return await self._search_parts(*split) or []

    async def _search_parts(self, brand: str | None, part_code: str) -> list[wire.SearchPart] | None:
        """The parts found; None when a search without a brand was refused (the API may insist on one)."""
        try:
            async with self._cap:
                _, data = await self._http.request(
                    "GET", SEARCH_PATH, params={"brandCode": brand, "partCode": part_code}, retry=True
                )
        except VendorNotFound:
            return []  # a third-party client reads 404 as "no parts found"
        except VendorInvalidRequest:
            return [] if brand is not None else None
        return [part for part in read(wire.SearchAnswer, data, self.key, "parts search answer").parts if part.identity]

    async def _price_availabilities(self, part_ids: Sequence[str]) -> dict[str, wire.Offer | VendorError]:
        offers = await self._answered(part_ids, self._offer)
        for offer in offers.values():
            if isinstance(offer, wire.Offer):
                self._remember_codes(offer)
        return offers

    async def _answered(
        self, part_ids: Sequence[str], offer: Callable[[str], Awaitable[wire.Offer | VendorError]]
    ) -> dict[str, wire.Offer | VendorError]:
        """Each part's price-availability (or why there is none); a refused token fails them all."""
        offers = await each(part_ids, offer)
        for outcome in offers.values():
            if isinstance(outcome, VendorAuthError):
                raise outcome
        return offers

    async def _offer(self, part_id: str) -> wire.Offer | VendorError:
        params = {"customerId": self._customer_id} if "customerId" in PRICE_AVAILABILITY_PARAMS else {}
        path = PRICE_AVAILABILITY_PATH.format(part_id=quote(part_id, safe=""))
        try:
            async with self._cap:
                _, data = await self._http.request("GET", path, params=params, retry=True)
        except VendorError as exc:
            return exc
        return read(wire.Offer, data, self.key, "price-availability answer")

    def _remember_codes(self, raw: wire.Coded) -> None:
        codes = raw.codes
        if codes is None:
            return
        if len(self._codes) > 10_000:
            self._codes.clear()  # a bound, not a cache policy: the preview refills what an order needs
        self._codes[raw.identity] = codes

    def _part(self, raw: wire.SearchPart, offer: wire.Offer | VendorError | None, brands: Mapping[str, str]) -> Part:
        priced = offer if isinstance(offer, wire.Offer) else None
        unit_price: Money | None = None
        basis = PriceBasis.CONTRACT
        if priced is not None:
            unit_price, basis, notes = self._offer_prices(priced)
            notes += _availability_notes(priced)
        else:
            code = offer.code if isinstance(offer, VendorError) else "NO_ANSWER"
            notes = [f"Keyloop could not price this part just now ({code}); look it up again before ordering."]
        notes += raw.alternative_parts.notes() if raw.alternative_parts else []
        blocked = priced is not None and priced.sales_blocked is True
        brand = raw.brand_code or ""
        return Part(
            vendor=self.key,
            part_id=raw.identity,
            part_number=raw.identity,
            name=raw.name,
            manufacturer=brands.get(brand) or (clean_text(brand, 40) if brand else None),
            unit_price=unit_price,
            price_basis=basis,
            available_quantity=priced.available_stock if priced is not None else None,
            vendor_status="SALES_BLOCKED" if blocked else None,
            orderable=not blocked,
            notes=notes,
        )

    def _offer_prices(self, offer: wire.Offer) -> tuple[Money | None, PriceBasis, list[str]]:
        """The unit price a look-up shows (the configured order type's, else the list price) and every price's note."""
        prices = offer.order_prices
        chosen = prices.get(self._order_type)
        listed = offer.list_price
        notes: list[str] = []
        unit_price, basis = None, PriceBasis.CONTRACT
        if chosen is not None:
            unit_price = chosen.net
            notes.append(
                f"Your order price for {self._order_type} ({ORDER_TYPES[self._order_type]}) orders: "
                f"{chosen.describe()} per unit."
            )
        elif listed is not None:
            unit_price, basis = listed.net, PriceBasis.LIST
            notes.append(f"The dealer gave no {self._order_type} order price: this is the list price.")
        others = [f"{t} {p.net}" for t, p in prices.items() if t != self._order_type]
        if others:
            notes.append("Order prices for other order types (net, options.order_type): " + ", ".join(others) + ".")
        if listed is not None:
            notes.append(f"List price: {listed.describe()}.")
        if offer.surcharge is not None and offer.surcharge.net.amount:
            notes.append(f"Surcharge: {offer.surcharge.describe()} per unit (e.g. a deposit), not in the order price.")
        return unit_price, basis, notes

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
            by_id = _object(raw_refs)
            if by_id and all(str(k).casefold() in ids for k in by_id):
                for part_id, refs in by_id.items():
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
        priced = [
            self._priced(f"items[{index}].part_id", item, parts[item.part_id], offers.get(item.part_id), options)
            for index, item in enumerate(request.items)
        ]
        self._require_references(priced)
        totals = self._totals(priced, options.order_type)
        return Preview(
            vendor=self.key,
            po_number=request.po_number,
            lines=[p.line for p in priced],
            options=_shown_options(options, priced),
            subtotal=totals.subtotal,
            total=totals.total,
            currency=totals.subtotal.currency,
            price_basis=PriceBasis.LIST if any(p.list_priced for p in priced) else PriceBasis.CONTRACT,
            excludes=[p.surcharge for p in priced if p.surcharge] + totals.excludes,
            caveats=[totals.caveat, *_caveats(request.po_number, options, priced)],
        )

    def _priced(
        self, where: str, item: OrderItem, known: Part, offer: wire.Offer | VendorError | None, options: _Options
    ) -> _Priced:
        offer = self._orderable(where, item.part_id, offer)
        price, list_priced = self._unit_price(where, item.part_id, offer, options.order_type)
        required = offer.mandatory_vehicle_references
        given = options.references_for(item.part_id)
        return _Priced(
            part_id=item.part_id,
            line=OrderLine.priced(
                part_id=item.part_id,
                part_number=known.part_number,
                name=known.name,
                quantity=item.quantity,
                unit_price=price.net,
            ),
            price=price,
            list_priced=list_priced,
            references=[{"type": t, "value": given[t]} for t in required if t in given],
            lacking=tuple(t for t in required if t not in given),
            stock=_stock_caveat(item.part_id, item.quantity, offer),
            surcharge=_surcharge_exclude(item.part_id, offer),
        )

    def _orderable(self, where: str, part_id: str, offer: wire.Offer | VendorError | None) -> wire.Offer:
        """The part's fresh price-availability, unless the dealer no longer knows it or blocks its sale."""
        if isinstance(offer, VendorNotFound):
            raise VendorInvalidRequest(
                self.key, f"{where}: the dealer no longer knows {part_id}; look it up again.", field=where
            )
        if isinstance(offer, VendorError):
            raise offer
        offer = offer if offer is not None else wire.Offer()
        if offer.sales_blocked:
            why = offer.sales_blocked_description
            raise VendorInvalidRequest(
                self.key,
                f"{where}: {part_id} is blocked for sale at the dealer"
                + (f" ({clean_text(why, 160)})" if why else "")
                + "; it cannot be ordered.",
                field=where,
            )
        return offer

    def _unit_price(self, where: str, part_id: str, offer: wire.Offer, order_type: str) -> tuple[wire.Price, bool]:
        """The order type's price; the list price (and True) when the dealer gives no order prices at all."""
        prices = offer.order_prices
        price = prices.get(order_type)
        if price is not None:
            return price, False
        if prices:
            raise _refuse(
                self.key,
                "options.order_type",
                f"The dealer offers {part_id} for order types {', '.join(prices)}, not "
                f"{order_type}; choose one of those as options.order_type.",
            )
        # No order prices at all (a dealer or API version without them): the list price is all we have.
        if offer.list_price is None:
            raise VendorInvalidRequest(
                self.key, f"{where}: the dealer gave no price for {part_id}; it cannot be ordered.", field=where
            )
        return offer.list_price, True

    def _require_references(self, priced: Sequence[_Priced]) -> None:
        missing = [f"{p.part_id} needs {', '.join(p.lacking)}" for p in priced if p.lacking]
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

    def _totals(self, priced: Sequence[_Priced], order_type: str) -> _Totals:
        """Subtotal net of tax; the total with tax when every price states it, else the tax is excluded."""
        currencies = {p.price.net.currency for p in priced}
        if len(currencies) != 1:
            raise VendorBadResponse(self.key, f"Keyloop priced this order in several currencies ({currencies}).")
        currency = currencies.pop()
        subtotal = Money.total((p.line.line_total for p in priced if p.line.line_total), currency)
        terms = f"Prices are your {order_type} ({ORDER_TYPES[order_type]}) order prices at the dealer, net of tax"
        total = _gross_total(((p.price, p.line.quantity) for p in priced), currency)
        if total is None:
            return _Totals(subtotal, subtotal, f"{terms}.", ["tax (VAT): the dealer did not state it"])
        rates = sorted({format(p.price.rate.normalize(), "f") for p in priced if p.price.rate is not None})
        tax = f"the total includes {wire.money_diff(total, subtotal)} tax" + (
            f" ({', '.join(rates)}%)" if rates else ""
        )
        return _Totals(subtotal, total, f"{terms}; {tax}.", [])

    def _order_body(self, request: OrderRequest, preview: Preview) -> dict[str, Any]:
        shown = preview.options
        references: Mapping[str, Any] = shown.get("vehicle_references") or {}
        lines: list[dict[str, Any]] = []
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
        answer = read(wire.PartsOrder, data, self.key, "order answer")
        order_id = answer.parts_order_id
        if order_id is None or not order_id.strip():
            raise VendorBadResponse(
                self.key,
                f"Keyloop answered {response.status_code} without a partsOrderId; check the dealer's DMS for "
                f"orderReference {request.po_number!r}.",
                status=response.status_code,
            )
        if response.status_code != 202 and answer.parts:
            return self._to_order(answer, request.po_number)
        # 202 (or a 201 with only the id): the DMS is still creating the order.
        return await self._await_order(str(order_id), request.po_number)

    async def _await_order(self, order_id: str, po_number: str) -> Order:
        policy = self._policy
        path = f"{ORDERS_PATH}/{quote(order_id, safe='')}"
        try:
            with anyio.fail_after(policy.deadline):
                async for attempt in retries.retry_context(
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
                        answer = read(wire.PartsOrder, data, self.key, "order")
                        if not answer.parts:
                            raise _NotReadableYet
                        return self._to_order(answer, po_number)
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

    def _order(self, data: Any, po_number: str | None) -> Order:
        """An order answer (201, or GET /parts-orders/{id}) as an Order."""
        return self._to_order(read(wire.PartsOrder, data, self.key, "order"), po_number)

    def _to_order(self, raw: wire.PartsOrder, po_number: str | None) -> Order:
        if raw.parts_order_id is None:
            raise VendorBadResponse(self.key, "Keyloop sent an order without a partsOrderId")
        lines = [_order_line(line) for line in raw.parts]
        vendor_status = clean_text(raw.order_status, 40).upper() if raw.order_status is not None else None
        if vendor_status is None and lines:
            vendor_status = _derive_status(line.vendor_status or "" for line in lines)
        status = self.map_status(vendor_status)
        if vendor_status == "CLOSED" and lines and all(line.vendor_status == "CANCELLED" for line in lines):
            status = OrderStatus.CANCELLED
        billed = [
            (raw_line.order_price, line.quantity)
            for raw_line, line in zip(raw.parts, lines, strict=True)
            if raw_line.order_price is not None and line.vendor_status != "CANCELLED"
        ]
        subtotal, tax, total = _billed_totals(billed)
        return Order(
            vendor=self.key,
            order_id=str(raw.parts_order_id),  # an id is checked, never altered (domain.VendorId)
            po_number=clean_text(raw.order_reference, 80) if raw.order_reference else po_number,
            status=status,
            vendor_status=vendor_status,
            lines=lines,
            subtotal=subtotal,
            tax=tax,
            total=total,
            currency=shown.currency if (shown := total or subtotal) else None,
            created_at=raw.parts_order_date_time,
            details=_order_details(raw, lines),
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
        return self._order(data, None)

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        raise NotSupported(self.key, "Keyloop's parts-orders API cannot list orders.", capability="list")

    async def find_order_by_po(self, po_number: str) -> Order | None:
        raise NotSupported(self.key, "Keyloop's parts-orders API cannot search orders.", capability="find_by_po")

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return ORDER_STATUSES.get((vendor_status or "").strip().upper(), OrderStatus.UNKNOWN)

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        problem = read(wire.Problem, data, self.key, "error answer")
        status = response.status_code
        message = clean_text(problem.message or response.reason_phrase or "no message", 200)
        issues = "; ".join(clean_text(d.text, 200) for d in problem.details[:5])
        said = message + (f" ({issues})" if issues else "")
        if problem.correlation_id:
            said += f" [Keyloop correlationId {clean_text(problem.correlation_id, 60)}]"
        kw: dict[str, Any] = {"code": f"HTTP_{status}", "status": status}
        if status in (401, 403):
            return VendorAuthError(
                self.key,
                f"Keyloop refused access ({status}): {said}. Check client_id, client_secret, and that the app may "
                "use the Parts Orders API for this enterprise and store.",
                **kw,
            )
        field = next((d.field for d in problem.details if d.field is not None), None)
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


def _availability_notes(offer: wire.Offer) -> list[str]:
    """What a look-up says about lead time, back orders, a sales block and the vehicle references demanded."""
    notes: list[str] = []
    if offer.lead_time_in_days is not None:
        notes.append(f"Lead time: {offer.lead_time_in_days} day(s).")
    back_order = offer.is_available_for_back_order
    if back_order is not None:
        notes.append("Back-order allowed." if back_order else "Cannot be back-ordered: only stock on hand.")
    if offer.sales_blocked:
        why = offer.sales_blocked_description
        notes.append("Sales blocked" + (f": {clean_text(why, 160)}" if why else "") + ". Not orderable.")
    references = offer.mandatory_vehicle_references
    if references:
        notes.append(
            f"Orders must carry vehicle references {', '.join(references)}: give them as "
            f'options.vehicle_references, e.g. {{"{references[0]}": "..."}}.'
        )
    return notes


def _stock_caveat(part_id: str, quantity: int, offer: wire.Offer) -> str | None:
    stock = offer.available_stock
    if stock is None or stock >= quantity:
        return None
    if offer.is_available_for_back_order is False:
        return (
            f"{part_id}: {quantity} requested, {stock} in stock, and the part cannot be back-ordered: the dealer will "
            "likely refuse the order."
        )
    lead = offer.lead_time_in_days
    return f"{part_id}: {quantity} requested, {stock} in stock; the rest will be back-ordered" + (
        f" (lead time {lead} day(s))." if lead is not None else "."
    )


def _surcharge_exclude(part_id: str, offer: wire.Offer) -> str | None:
    surcharge = offer.surcharge
    if surcharge is None or not surcharge.net.amount:
        return None
    return f"{part_id}: surcharge of {surcharge.describe()} per unit, if the dealer bills it on top"


def _caveats(po_number: str, options: _Options, priced: Sequence[_Priced]) -> list[str]:
    """The caveats after the one on prices and tax: stock, list prices, no deduplication, delivery."""
    caveats = [p.stock for p in priced if p.stock]
    list_priced = [p.part_id for p in priced if p.list_priced]
    if list_priced:
        caveats.append(
            f"The dealer gave no order price for {', '.join(list_priced)}: list prices are shown; the dealer bills "
            "the customer's own price, which the placed order reports."
        )
    caveats.append(
        "Keyloop cannot deduplicate orders: should the answer to this order be lost, it is not resent; the "
        f"dealer's DMS then shows whether an order with orderReference {po_number!r} exists."
    )
    if not options.address:
        caveats.append("Delivered to the customer's invoice address (no options.delivery_address).")
    return caveats


def _shown_options(options: _Options, priced: Sequence[_Priced]) -> dict[str, Any]:
    """The options as the preview shows them and the order sends them (see `_order_body`)."""
    shown: dict[str, Any] = {"order_type": options.order_type}
    if options.contact:
        shown["contact"] = options.contact
    if options.address:
        shown["delivery_address"] = options.address
    references = {p.part_id: p.references for p in priced if p.references}
    if references:
        shown["vehicle_references"] = references
    return shown


def _order_line(line: wire.PartsOrderLine) -> OrderLine:
    price = line.order_price
    quantity = line.quantity or 0
    return OrderLine(
        part_id=line.identity,  # an id is never altered: the domain type refuses an unsafe one
        part_number=clean_text(line.identity, 80),
        quantity=quantity,
        unit_price=price.net if price is not None else None,
        line_total=(price.net * quantity).rounded() if price is not None else None,
        vendor_status=line.status,
    )


def _billed_totals(billed: Sequence[tuple[wire.Price, int]]) -> tuple[Money | None, Money | None, Money | None]:
    """(subtotal, tax, total) of the billed lines when they share a currency; tax and total need every gross."""
    currencies = {price.net.currency for price, _ in billed}
    if len(currencies) != 1:
        return None, None, None
    currency = currencies.pop()
    subtotal = Money.total((price.net * quantity for price, quantity in billed), currency)
    total = _gross_total(billed, currency)
    return subtotal, (wire.money_diff(total, subtotal) if total is not None else None), total


def _order_details(raw: wire.PartsOrder, lines: Sequence[OrderLine]) -> dict[str, Any]:
    details: dict[str, Any] = {
        "lines": [
            {
                "part_id": raw_line.identity,
                "order_line_id": clean_text(raw_line.order_line_id, 80) if raw_line.order_line_id else None,
                "status": raw_line.status,
                "normalized_status": LINE_STATUSES.get(raw_line.status or "", OrderStatus.UNKNOWN).value,
            }
            for raw_line in raw.parts
        ]
    }
    if raw.order_type is not None:
        details["order_type"] = clean_text(raw.order_type, 10)
    for name, value in (("delivery_address", raw.delivery_address), ("order_contact", raw.order_contact)):
        if value is not None:
            details[name] = {k: clean_text(v, 120) for k, v in value.items()}
    if any(line.vendor_status == "CANCELLED" for line in lines):
        details["totals_exclude"] = "cancelled lines"
    return details


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


EXAMPLE = """\
[vendors.keyloop]
kind = "keyloop"
base_url = "https://api.eu.keyloop.io"       # host root: token at token_path, API at /{enterprise_id}/{store_id}/v1
enterprise_id = "acme-motors"
store_id = "store-01"
client_id = "${KEYLOOP_CLIENT_ID}"
client_secret = "${KEYLOOP_CLIENT_SECRET}"
customer_id = "00000000-0000-0000-0000-000000000000"   # the dealer's customer the orders are for
order_type = "STK"                           # default order type: EMG | VOR | STK | DPO | COL
# token_path = "/oauth/client_credential/accesstoken"
# company_id = "..."                         # sent as companyId when the dealer wants one
# contact = { name = "Parts desk", phone = "+44 20 0000 0000", email = "parts@example.com" }
# poll_attempts = 5                          # reads of an order answered 202 before it counts as unknown
"""

KIND = VendorKind(
    kind="keyloop",
    settings=KeyloopSettings,
    create=create,
    example=EXAMPLE,
    simulator="parts_mcp.sandbox.keyloop:SIMULATED",
)
