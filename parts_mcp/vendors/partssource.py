"""PartsSource Customer API: catalog quotes, idempotent orders, order look-up and order search.

Documented (seeds/003, docs/vendors.md section 4): a Cognito client-credentials token *and* an API
Gateway ``x-api-key`` on every call; ``POST /catalog/search`` then ``/catalog/detail``, whose
``options`` are priceOptionIds: quotes valid 30 days whose price an order must repeat exactly;
``POST /orders`` with a UUID ``Idempotency-Key`` (2xx and 5xx answers are replayed for 24 h under
the key, 4xx never stored); ``GET /orders/{orderId}``; ``GET /orders/search?q=`` with the search
query language and offset pagination; statuses Pending, Research, EOrdered, Completed; money as
JSON numbers in major units (currency unstated: USD by default).

Undocumented, read tolerantly: the catalog search body's field names, whether ``/catalog/detail``
is GET or POST (GET, falling back to POST on 405), the order's response fields, the PO field of
an order (``poNumber``, the searchable field's name) and the replay header's name.

Every option of a product is its own Part, named by what it is, not by its quote: ``part_id`` is
``<productId>:<option key>`` (percent-encoded), the key a short digest of the option's condition,
purchase choice, warranty and vendor. The documents call a priceOptionId "a quote valid 30 days"
but do not say that ``/catalog/detail`` repeats it: a PartsSource that issues a fresh id per detail
call must leave the id the model and the human saw usable. Each preview finds the option again in a
fresh detail answer and re-prices it; its lines carry the quote the order will send as
``<productId>:<option key>:<priceOptionId>``. ``price_basis`` is "quote", ``expires_at`` the quote's
expiry.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import anyio
import httpx2
from pydantic import Field, SecretStr

from parts_mcp.domain import LookupResult, Money, Order, OrderLine, OrderStatus, OrderSummary, Part, Preview, PriceBasis
from parts_mcp.vendors import part_ids
from parts_mcp.vendors._oauth import ClientCredentials
from parts_mcp.vendors._search import is_part_number, judge, number_prefix, search_words
from parts_mcp.vendors._together import Once, each
from parts_mcp.vendors.base import (
    Capabilities,
    HttpPolicy,
    OrderQuery,
    OrderRequest,
    VendorAuthError,
    VendorBadResponse,
    VendorClient,
    VendorConflict,
    VendorError,
    VendorHttp,
    VendorInvalidRequest,
    VendorKeyConflict,
    VendorNotFound,
    VendorRateLimited,
    VendorSettingsBase,
    VendorUnavailable,
    clean_text,
    retry_after_seconds,
)
from parts_mcp.vendors.registry import VendorKind
from parts_mcp.vendors.wire import JsonMoney, LazyModule, is_object, read

if TYPE_CHECKING:
    from parts_mcp.vendors.wire import partssource as wire
else:
    wire = LazyModule("parts_mcp.vendors.wire.partssource")

QUOTE_VALIDITY = timedelta(days=30)
NOTES_LIMIT = 200
SEARCH_PAGE = 100  # GET search endpoints take limit 1..100
CATALOG_PAGE = 20
PRODUCTS_PER_QUERY = 5  # detail calls per name query; an exact part-number match takes all its products
CONCURRENT_CALLS = 8  # requests in flight at once: far below the documented 1,000 a second
ID_LIMIT = 99_999_999
OPTIONS = ("shipping_method", "use_shipping_account", "required_fields")
_STATUSES = {
    # Pending: PartsSource holds the order and has not started on it. It was created and submitted through
    # the API, so it is neither a draft nor waiting for one of our approvers: "ordered".
    "pending": OrderStatus.ORDERED,
    # Research: PartsSource is sourcing the item; EOrdered: it has ordered electronically from the supplier.
    # Both are fulfilment under way; vendor_status tells them apart.
    "research": OrderStatus.IN_PROGRESS,
    "eordered": OrderStatus.IN_PROGRESS,
    "completed": OrderStatus.COMPLETED,
    # Not among the documented search values, but a cancelled order must never read as open.
    "cancelled": OrderStatus.CANCELLED,
    "canceled": OrderStatus.CANCELLED,
}
_VENDOR_STATUSES = {
    OrderStatus.ORDERED: ("Pending",),
    OrderStatus.IN_PROGRESS: ("Research", "EOrdered"),
    OrderStatus.COMPLETED: ("Completed",),
}
_REPLAY_HEADERS = (
    "x-idempotency-replayed",
    "idempotency-replayed",
    "idempotent-replayed",
    "x-idempotent-replayed",
    "x-idempotency-cache-hit",
)
_CONFIG_FIELDS = {
    "requesterid": "requester_id",
    "userid": "user_id",
    "facilityid": "facility_id",
    "shippingaddressid": "shipping_address_id",
    "billingaddressid": "billing_address_id",
}
_FIELDS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"quoteItems\[(\d+)\]\.quantity", re.I), lambda m: f"items[{m[1]}].quantity"),
    (re.compile(r"quoteItems\[(\d+)\]\.requiredFields", re.I), lambda m: "options.required_fields"),
    (re.compile(r"quoteItems\[(\d+)\]", re.I), lambda m: f"items[{m[1]}].part_id"),
    (re.compile(r"\bnotes\b", re.I), lambda m: "notes"),
    (re.compile(r"\bshippingMethod\b", re.I), lambda m: "options.shipping_method"),
    (re.compile(r"\buseShippingAccount\b", re.I), lambda m: "options.use_shipping_account"),
    (re.compile(r"\bpoNumber\b", re.I), lambda m: "po_number"),
)
_IN_FLIGHT = re.compile(r"in progress|being processed|still processing|concurrent|in flight", re.I)


class PartsSourceSettings(VendorSettingsBase):
    kind: Literal["partssource"]
    # The documents show both /customer/orders and /customer/api/...: the prefix is part of base_url.
    base_url: str = "https://api.partssource.com/customer/api"
    token_url: str = "https://auth.partssource.com/oauth2/token"  # noqa: S105 - a URL, not a secret
    client_id: SecretStr
    client_secret: SecretStr
    api_key: SecretStr = Field(description="The API Gateway key, sent as x-api-key")
    scope: str | None = Field(
        default=None, description="Space-separated Cognito scopes; none asks for all the client may have"
    )
    requester_id: int = Field(ge=1, le=ID_LIMIT, description="contactId from /users/lookup")
    user_id: int = Field(ge=1, le=ID_LIMIT)
    facility_id: int = Field(ge=1, le=ID_LIMIT)
    shipping_address_id: int = Field(ge=1, le=ID_LIMIT)
    billing_address_id: int = Field(ge=1, le=ID_LIMIT)
    shipping_method: str = Field(default="GROUND", min_length=1, max_length=50)
    shipping_methods: tuple[str, ...] | None = Field(
        default=None, description="The shipping methods your account may use; unset accepts any (none are published)"
    )
    company_id: int | None = Field(
        default=None, ge=1, le=ID_LIMIT, description="For listing orders by date; defaults to facility_id"
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    list_window_days: int = Field(
        default=365, ge=1, le=3650, description="Order search needs a bounded date range: the default when none given"
    )


@dataclass(frozen=True)
class Account:
    """The customer-profile ids every order carries."""

    requester_id: int
    user_id: int
    facility_id: int
    shipping_address_id: int
    billing_address_id: int
    shipping_method: str
    company_id: int


@dataclass(frozen=True)
class _Options:
    shipping_method: str
    use_shipping_account: bool | None
    required_fields: dict[int, dict[str, str]] = field(default_factory=dict[int, dict[str, str]])  # by item index

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"shipping_method": self.shipping_method}
        if self.use_shipping_account is not None:
            shown["use_shipping_account"] = self.use_shipping_account
        return shown


@dataclass(frozen=True)
class _Quoted:
    """An order line as priced by its current quote, with the quote's option (for caveats and required fields)."""

    option: wire.Option
    line: OrderLine
    expires_at: datetime | None
    was: Money | None = None  # the price the part was known at, when PartsSource now quotes another


class _KeyConflict(VendorKeyConflict):
    """409 on POST /orders: the key is in use, by a request still in flight or stored with another body."""

    def __init__(self, vendor: str, message: str, *, in_flight: bool, **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        # A request still in flight finishes soon; retrying the same key then replays its answer.
        self.retryable = in_flight


def option_key(condition: str | None, purchase_choice: str | None, warranty: str | None, supplier: str | None) -> str:
    """Eight characters that name one option of a product by what it is: every quote for it has the same key.

    Spelling (case, spaces, Unicode forms) does not change it; a change of substance (another warranty,
    another vendor) makes it another option.
    """
    said = [
        " ".join(unicodedata.normalize("NFKC", v or "").casefold().split())
        for v in (condition, purchase_choice, warranty, supplier)
    ]
    digest = hashlib.sha256("\x1f".join(said).encode()).digest()
    return base64.b32encode(digest[:5]).decode().lower()


def encode_part_id(product_id: str, option: str) -> str:
    """``<productId>:<option>``: the product to read the quotes of, and the option among them (its key; in ids
    made before keys, its priceOptionId)."""
    return part_ids.encode(product_id, option)


def encode_quote_id(product_id: str, key: str, price_option_id: str) -> str:
    """``<productId>:<option key>:<priceOptionId>``: an option and the one quote of it an order line carries."""
    return part_ids.encode(product_id, key, price_option_id)


@dataclass(frozen=True)
class OptionRef:
    """What a part_id names: a product, one of its options (by key, or by priceOptionId in an older id) and,
    for an order or preview line, the quote."""

    product_id: str
    option: str
    quote: str | None = None


def decode_part_id(part_id: str) -> OptionRef | None:
    for count in (2, 3):
        fields = part_ids.decode(part_id, count)
        if fields is not None:
            return OptionRef(fields[0], fields[1], fields[2] if count == 3 else None)
    return None


def _key(option: wire.Option) -> str:
    """What this option is, whatever quote PartsSource issued for it this time."""
    return option_key(option.condition, option.purchase_choice, option.warranty, option.supplier)


def _ordered_part_id(line: wire.Line) -> str | None:
    """The line as the option it ordered, when PartsSource names all of it; else as its quote (an id
    that finds the option only while detail still lists that quote)."""
    if line.product_id is None or line.price_option_id is None:
        return None
    named = (line.condition, line.purchase_choice, line.warranty, line.supplier)
    if any(value is None for value in named):
        return encode_part_id(line.product_id, line.price_option_id)
    return encode_quote_id(line.product_id, option_key(*named), line.price_option_id)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class PartsSourceClient:
    kind = "partssource"
    display_name = "PartsSource"
    capabilities = Capabilities(
        lookup=True,
        quote=True,
        place=True,
        get=True,
        list=True,
        idempotency_key=True,
        find_by_po=True,
        replays_failures=True,
    )
    options_help = (
        "PartsSource options: shipping_method (default from config, e.g. GROUND); use_shipping_account "
        "(true to ship on your own carrier account); required_fields for flat-rate repairs: "
        '[{"part_id": "...", "name": "serialNumber", "value": "..."}, ...] naming repairReason and serialNumber '
        "(one repair per line, quantity 1)."
    )
    search_help = (
        "PartsSource (medical-equipment parts marketplace): keywords, matched against part numbers, descriptions "
        "and manufacturers; each price option is a quote valid 30 days."
    )
    status_help: Mapping[OrderStatus, str] = {
        OrderStatus.ORDERED: "received by PartsSource, not yet worked on",
        OrderStatus.IN_PROGRESS: "PartsSource is researching it or has ordered it from the supplier",
    }

    def __init__(
        self,
        key: str,
        *,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        api_key: str,
        account: Account,
        http: httpx2.AsyncClient,
        scope: str | None = None,
        policy: HttpPolicy | None = None,
        currency: str = "USD",
        shipping_methods: Sequence[str] | None = None,
        list_window: timedelta = timedelta(days=365),
    ) -> None:
        self.key = key
        self.account = account
        self._currency = currency
        self._shipping_methods = tuple(m.strip().upper() for m in shipping_methods) if shipping_methods else None
        self._list_window = list_window
        self._cap = anyio.CapacityLimiter(CONCURRENT_CALLS)
        self.tokens = ClientCredentials(
            key, http, token_url, client_id, client_secret, scope=scope, auth_style="basic", policy=policy
        )
        self._http = VendorHttp(
            key,
            http,
            base_url,
            headers={"x-api-key": api_key, "Accept": "application/json"},
            map_error=self._map_error,
            policy=policy,
            secrets=[client_secret, api_key],
            tokens=self.tokens,
        )

    # ------------------------------------------------------------------------------------ look-up

    async def lookup(self, queries: Sequence[str]) -> LookupResult:
        unique = list(dict.fromkeys(queries))
        detail = Once(self._detail)
        now = datetime.now(UTC)

        async def find(query: str) -> list[Part]:
            # A query's details follow its own search at once: no query waits for another's search.
            return await self._offered(_exact_or_first(query, await self._catalog_search(query)), detail, now)

        offers = await each(unique, find)
        parts = {part.part_id: part for q in unique for part in offers[q]}
        not_found = [clean_text(q, 120) for q in unique if not offers[q]]
        return LookupResult(parts=list(parts.values()), not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # The catalog search takes keywords and also matches inside part numbers: a name goes as its singular
        # words, a part number as its first two thirds, one call each; what comes back is judged here.
        terms = {q: number_prefix(q) if is_part_number(q) else " ".join(search_words(q)) for q in queries}
        searched = await each([q for q in queries if terms[q]], lambda q: self._catalog_search(terms[q] or ""))
        judged = judge(self.key, {q: searched.get(q, []) for q in queries}, _described)
        detail, now = Once(self._detail), datetime.now(UTC)
        offers = await each(
            list(judged.found), lambda q: self._offered(judged.found[q][:PRODUCTS_PER_QUERY], detail, now)
        )
        parts = {part.part_id: part for found in offers.values() for part in found}
        # A product whose every option has lapsed is as good as not found.
        not_found = judged.not_found + [q for q, found in offers.items() if not found]
        return LookupResult(parts=list(parts.values()), not_found=not_found, suggestions=judged.suggestions)

    async def _catalog_search(self, keywords: str) -> list[wire.Product]:
        body = {"keywords": keywords, "pagination": {"limit": CATALOG_PAGE, "offset": 0}}
        async with self._cap:
            _, data = await self._http.request("POST", "/catalog/search", json_body=body, retry=True)
        page = read(wire.Page[wire.Product], self._payload(data), self.key, "catalog search")
        return [hit for hit in page.items if hit.product_id is not None]

    async def _offered(
        self, chosen: Sequence[wire.Product], detail: Callable[[str], Awaitable[wire.Product | None]], now: datetime
    ) -> list[Part]:
        """Every price option of the chosen catalog items, as parts (one detail call per product, all at once)."""
        ids = [hit.product_id for hit in chosen if hit.product_id is not None]
        products = await each(ids, detail)
        return [part for i in ids for part in self._parts(products.get(i), now)]

    async def _detail(self, product_id: str) -> wire.Product | None:
        params = {"productId": product_id, "requesterId": self.account.requester_id}
        try:
            async with self._cap:
                _, data = await self._http.request("GET", "/catalog/detail", params=params, retry=True)
        except VendorNotFound:
            return None
        except VendorError as exc:
            if exc.status != 405:
                raise
            # The documents do not say which method /catalog/detail takes; a POST is the other reading.
            async with self._cap:
                _, data = await self._http.request(
                    "POST", "/catalog/detail", json_body={**params, "productId": _wire_id(product_id)}, retry=True
                )
        detail = self._payload(data)
        # An answer that is no object offers nothing, like a product withdrawn.
        return read(wire.Product, detail, self.key, "product detail") if is_object(detail) else None

    def _parts(self, product: wire.Product | None, now: datetime) -> list[Part]:
        """Each option of `product` once: were it quoted twice in one answer, by its cheaper quote."""
        same: dict[str, list[tuple[wire.Option, Part]]] = {}
        for option, part in self._quotes(product, now):
            same.setdefault(part.part_id, []).append((option, part))
        return [picked[1] for quotes in same.values() if (picked := _pick(quotes)) is not None]

    def _match(
        self, product: wire.Product | None, ref: OptionRef, now: datetime, seen: Money | None = None
    ) -> tuple[wire.Option, Part] | None:
        """The option `ref` names as `product` offers it now, by key (or, for an older id, by its quote)."""
        return _pick(
            [(o, p) for o, p in self._quotes(product, now) if ref.option in (_key(o), o.price_option_id)],
            seen,
            ref.quote,
        )

    def _quotes(self, product: wire.Product | None, now: datetime) -> list[tuple[wire.Option, Part]]:
        """Each price option of `product` with the Part it is offered as."""
        if product is None:
            return []
        return [(option, part) for option in product.options if (part := self._part(product, option, now)) is not None]

    def _part(self, product: wire.Product, option: wire.Option, now: datetime) -> Part | None:
        """The price option as a Part; None for a product or option without the ids an order needs."""
        if product.product_id is None or product.part_number is None or option.price_option_id is None:
            return None
        price = self._money(option.price)
        # PartsSource's own expiry when it states one; else 30 days from now, as the quote was just issued.
        expires = option.expires_at or now + QUOTE_VALIDITY
        description = clean_text(product.description or product.part_number, 160)
        return Part(
            vendor=self.key,
            part_id=encode_part_id(product.product_id, _key(option)),
            part_number=clean_text(product.part_number, 80),
            name=clean_text(f"{description} ({option.shown_condition()}, {option.shown_choice()})", 200),
            manufacturer=clean_text(product.manufacturer, 120) if product.manufacturer else None,
            unit_price=price,
            price_basis=PriceBasis.QUOTE,
            available_quantity=option.quantity_available,
            orderable=price is not None,
            expires_at=expires,
            notes=_option_notes(option, option.price_option_id, expires),
        )

    async def resolve_parts(self, ids: Sequence[str]) -> dict[str, Part]:
        wanted = {part_id: ref for part_id in ids if (ref := decode_part_id(part_id)) is not None}
        products = await each([ref.product_id for ref in wanted.values()], self._detail)
        now = datetime.now(UTC)
        # Matched decoded, so an id spelled with needless escapes still finds its option.
        found = {part_id: self._match(products.get(ref.product_id), ref, now) for part_id, ref in wanted.items()}
        return {part_id: match[1] for part_id, match in found.items() if match is not None}

    # ------------------------------------------------------------------------------------- orders

    def _ship_to(self) -> str:
        # PartsSource ships to an address of the customer's profile: the id is all this server knows of it.
        account = self.account
        return (
            f"Ships to facility {account.facility_id}'s address {account.shipping_address_id} and is billed to "
            f"address {account.billing_address_id} (this server's configuration; change them there)."
        )

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        options = self._options(request, {item.part_id: parts[item.part_id].part_id for item in request.items})
        self._check_notes(request.notes)
        refs = self._refs(request, parts)
        # Find each option again in a fresh detail answer, whatever priceOptionId it carries now: one withdrawn
        # cannot be ordered, and a changed price shows up here (and so needs a new confirmation).
        products = await each([ref.product_id for ref in refs], self._detail)
        now = datetime.now(UTC)
        quoted: list[_Quoted] = []
        for index, (item, ref) in enumerate(zip(request.items, refs, strict=True)):
            quote = self._current(index, item.quantity, parts[item.part_id], products.get(ref.product_id), ref, now)
            self._check_fields(index, item.quantity, quote, options)
            quoted.append(quote)
        lines = [quote.line for quote in quoted]
        currency = lines[0].unit_price.currency if lines[0].unit_price else self._currency
        total = Money.total((line.line_total for line in lines if line.line_total), currency)
        return Preview(
            vendor=self.key,
            po_number=request.po_number,
            lines=lines,
            notes=request.notes,
            options=options.shown(),
            subtotal=total,
            total=total,
            currency=currency,
            price_basis=PriceBasis.QUOTE,
            excludes=["shipping", "tax"],
            caveats=[*_caveats(quoted, options), self._ship_to()],
        )

    def _check_notes(self, notes: str | None) -> None:
        if notes is not None and len(notes) > NOTES_LIMIT:
            raise VendorInvalidRequest(
                self.key,
                f"notes is {len(notes)} characters; PartsSource accepts at most {NOTES_LIMIT}. Shorten it "
                "(this server does not cut notes without the user's say-so).",
                field="notes",
                code="NOTES_TOO_LONG",
            )

    def _refs(self, request: OrderRequest, parts: Mapping[str, Part]) -> list[OptionRef]:
        """The product and option each item names."""
        wanted: list[OptionRef] = []
        for index, item in enumerate(request.items):
            decoded = decode_part_id(parts[item.part_id].part_id)
            if decoded is None:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}].part_id is not a PartsSource price option; use a part_id from lookup_parts.",
                    field=f"items[{index}].part_id",
                )
            wanted.append(decoded)
        return wanted

    def _current(
        self, index: int, quantity: int, known: Part, product: wire.Product | None, ref: OptionRef, now: datetime
    ) -> _Quoted:
        """The item's option as PartsSource quotes it now, priced; `known` is the part as it was looked up."""
        option, part = self._match(product, ref, now, known.unit_price) or (None, None)
        price = part.unit_price if part is not None else None
        if option is None or part is None or price is None or (part.expires_at or now) < now:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}]: the PartsSource quote for {known.part_number} ({known.name}) is no longer "
                "offered or has expired (quotes last 30 days). Look the part up again and order a current option.",
                field=f"items[{index}].part_id",
                code="QUOTE_GONE",
            )
        # The order carries the quote this detail answer gave for the option: the very id the human saw
        # whenever PartsSource repeats ids. When it issues a fresh one per call, the documents make both
        # orderable (each priceOptionId is "a quote valid 30 days"), but only the fresh one is known to hold
        # now: its price was read in this same answer (an order whose price is not its quote's fails),
        # PartsSource documents no way to read an older quote back, and nothing says whether a newer quote
        # supersedes an older one. The human approved this option at this price; a different price is shown
        # here, and the confirmation binds it.
        quote_id = encode_quote_id(_product_id(part) or ref.product_id, _key(option), option.price_option_id or "")
        line = OrderLine.priced(
            part_id=quote_id, part_number=part.part_number, name=part.name, quantity=quantity, unit_price=price
        )
        was = known.unit_price if known.unit_price is not None and known.unit_price != price else None
        return _Quoted(option, line, part.expires_at, was)

    def _check_fields(self, index: int, quantity: int, quote: _Quoted, options: _Options) -> None:
        """A flat-rate repair is one unit with its required fields; any other line takes no required fields."""
        if not quote.option.is_repair():
            if index in options.required_fields:
                raise VendorInvalidRequest(
                    self.key,
                    f"options.required_fields: items[{index}] ({quote.line.part_number}) is not a flat-rate repair "
                    "and takes no required fields; remove its entry.",
                    field="options.required_fields",
                )
            return
        if quantity != 1:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}].quantity must be 1: a flat-rate repair is one unit per order line, each with its own "
                "serial number. Order further repairs of the same product as separate orders.",
                field=f"items[{index}].quantity",
            )
        given = options.required_fields.get(index, {})
        required = quote.option.required_names() or ["repairReason", "serialNumber"]
        missing = [name for name in required if not given.get(name)]
        if missing:
            raise VendorInvalidRequest(
                self.key,
                f"options.required_fields: items[{index}] is a flat-rate repair and needs {', '.join(missing)}: "
                "pass options.required_fields = ["
                + ", ".join(f'{{"part_id": "PART_ID", "name": "{m}", "value": "..."}}' for m in missing)
                + "].",
                field="options.required_fields",
            )

    def _options(self, request: OrderRequest, resolved: Mapping[str, str]) -> _Options:
        """The validated options; `resolved` maps each item's part_id to the price option it stands for."""
        raw = dict(request.options or {})
        for name in raw:
            if name not in OPTIONS:
                raise VendorInvalidRequest(
                    self.key,
                    f"options.{clean_text(name, 40)} is not a PartsSource option; allowed: {', '.join(OPTIONS)}.",
                    field=f"options.{clean_text(name, 40)}",
                )
        method = raw.get("shipping_method", self.account.shipping_method)
        if not isinstance(method, str) or not method.strip() or len(method.strip()) > 50:
            raise VendorInvalidRequest(
                self.key,
                "options.shipping_method must be a non-empty name, e.g. GROUND.",
                field="options.shipping_method",
            )
        method = method.strip()
        if self._shipping_methods is not None and method.upper() not in self._shipping_methods:
            raise VendorInvalidRequest(
                self.key,
                f"options.shipping_method {clean_text(method, 50)!r} is not one of this account's: "
                f"{', '.join(self._shipping_methods)}.",
                field="options.shipping_method",
            )
        use_account = raw.get("use_shipping_account")
        if use_account is not None and not isinstance(use_account, bool):
            raise VendorInvalidRequest(
                self.key, "options.use_shipping_account must be true or false.", field="options.use_shipping_account"
            )
        return _Options(method, use_account, self._required_fields(request, raw.get("required_fields"), resolved))

    def _required_fields(
        self, request: OrderRequest, raw: Any, resolved: Mapping[str, str]
    ) -> dict[int, dict[str, str]]:
        if raw is None:
            return {}
        where = "options.required_fields"
        if not isinstance(raw, dict):
            raise VendorInvalidRequest(
                self.key,
                f"{where} must list each field, e.g. "
                '[{"part_id": "PART_ID", "name": "serialNumber", "value": "..."}].',
                field=where,
            )
        by_key: dict[str, int] = {}
        for index, item in enumerate(request.items):
            by_key.update({item.part_id: index, str(index): index, f"items[{index}]": index})
            # A part number the service resolved to a price option may be keyed by either.
            by_key[resolved.get(item.part_id, item.part_id)] = index
        result: dict[int, dict[str, str]] = {}
        for key, values in cast(dict[Any, Any], raw).items():
            index = by_key.get(str(key))
            if index is None:
                raise VendorInvalidRequest(
                    self.key, f"{where}: {clean_text(key, 80)!r} is not a part_id of this order.", field=where
                )
            fields = cast(dict[Any, Any], values) if isinstance(values, dict) else None
            if fields is None or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in fields.values()
            ):
                raise VendorInvalidRequest(
                    self.key, f"{where}[{clean_text(key, 80)!r}] must map field names to text values.", field=where
                )
            result[index] = {str(k): str(v).strip() for k, v in fields.items()}
        return result

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        lines = list(zip(request.items, preview.lines, strict=True))
        options = self._options(request, {item.part_id: line.part_id or item.part_id for item, line in lines})
        account = self.account
        items: list[dict[str, Any]] = []
        for index, (item, line) in enumerate(lines):
            ref = decode_part_id(line.part_id or "")
            if ref is None or line.unit_price is None:
                raise VendorInvalidRequest(
                    self.key, f"items[{index}] was not priced by the preview.", field=f"items[{index}]"
                )
            entry: dict[str, Any] = {
                # A preview line names its quote third; a line of two fields comes from a preview recorded
                # before option keys (an intent finished after an upgrade), whose second field is the quote.
                "priceOptionId": ref.quote or ref.option,
                "productId": _wire_id(ref.product_id),
                "quantity": item.quantity,
                # The quoted price exactly as PartsSource sent it: a JSON number whose shortest form the
                # look-up kept as this Decimal, so the float round-trips to the same number.
                "price": float(line.unit_price.amount),
            }
            if index in options.required_fields:
                entry["requiredFields"] = options.required_fields[index]
            items.append(entry)
        body: dict[str, Any] = {
            "requesterId": account.requester_id,
            "userId": account.user_id,
            "facilityId": account.facility_id,
            "shippingAddressId": account.shipping_address_id,
            "billingAddressId": account.billing_address_id,
            "shippingMethod": options.shipping_method,
            "poNumber": request.po_number,
            "quoteItems": items,
        }
        if options.use_shipping_account is not None:
            body["useShippingAccount"] = options.use_shipping_account
        if request.notes:
            body["notes"] = request.notes
        # retry=True is safe because PartsSource deduplicates by the key: a connection lost before the answer,
        # a timeout or a 429 is resent with the same key and gets the original answer. A 5xx is not retried
        # (see _map_error): PartsSource stores it under the key, so resending would only repeat it.
        _, data = await self._http.request(
            "POST", "/orders", json_body=body, headers={"Idempotency-Key": _uuid_key(idempotency_key)}, retry=True
        )
        answer = read(wire.Order, self._payload(data), self.key, "order confirmation")
        return self._order(answer, request.po_number, request.notes)

    async def get_order(self, order_id: str) -> Order:
        if not order_id.strip().isdigit():
            raise VendorInvalidRequest(
                self.key, "order_id: PartsSource order ids are numbers, e.g. 10001.", field="order_id"
            )
        _, data = await self._http.request("GET", f"/orders/{order_id.strip()}", retry=True)
        return self._order(read(wire.Order, self._payload(data), self.key, "order"))

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        """Orders by status, PO and creation date, newest first as PartsSource returns them.

        PartsSource needs a PO number or a bounded createdDate range (with the company): without dates the
        window is the last `list_window_days` (365 by default) up to a day ahead, for clock skew.
        """
        clauses: list[str] = []
        if query.status is not None:
            statuses = _VENDOR_STATUSES.get(query.status)
            if statuses is None:
                return []  # PartsSource has no status that maps to this one
            if len(statuses) == 1:
                clauses.append(f"status:{_quoted(statuses[0])}")
            else:
                clauses.append("status IN [" + ", ".join(_quoted(s) for s in statuses) + "]")
        after, before = query.created_after, query.created_before
        if query.po_number:
            clauses.insert(0, f"poNumber:{_quoted(query.po_number)}")
        else:
            now = datetime.now(UTC)
            after = after or now - self._list_window
            before = before or now + timedelta(days=1)
            clauses.insert(0, f"companyId:{self.account.company_id}")
        if after is not None:
            clauses.append(f"createdDate>={_quoted(_iso(after))}")
        if before is not None:
            # Whole seconds, rounded up: the bound stays exclusive without dropping the second it falls in.
            clauses.append(f"createdDate<{_quoted(_iso(before + timedelta(microseconds=999_999)))}")
        return [OrderSummary.of(order) for order in await self._search(" AND ".join(clauses), max_orders)]

    async def find_order_by_po(self, po_number: str) -> Order | None:
        found = [
            o
            for o in await self._search(f"poNumber:{_quoted(po_number)}", SEARCH_PAGE)
            # Exact: the ledger tells POs apart by case, so reconciliation must not adopt another PO's order.
            if (o.po_number or "") == po_number
        ]
        if not found:
            return None
        newest = max(found, key=lambda o: (o.created_at or datetime.min.replace(tzinfo=UTC), o.order_id))
        # A search hit without lines is a summary: the order itself has them.
        return newest if newest.lines else await self.get_order(newest.order_id)

    async def _search(self, q: str, max_orders: int) -> list[Order]:
        orders: list[Order] = []
        offset = 0
        while len(orders) < max_orders:
            limit = max(1, min(SEARCH_PAGE, max_orders - len(orders)))
            params = {"q": q, "limit": limit, "offset": offset}
            _, data = await self._http.request("GET", "/orders/search", params=params, retry=True)
            page = read(wire.Page[wire.Order], self._payload(data), self.key, "order search")
            orders.extend(self._order(hit) for hit in page.items if hit.order_id is not None)
            more = page.pagination.has_more if page.pagination is not None else None
            if not page.items or (more is False) or (more is None and len(page.items) < limit):
                break
            offset += len(page.items)
        return orders[:max_orders]

    def _order(self, answer: wire.Order, po_number: str | None = None, notes: str | None = None) -> Order:
        if answer.order_id is None:
            raise VendorBadResponse(self.key, "PartsSource sent an order without an orderId")
        lines = [self._line(line) for line in answer.lines]
        total = self._money(answer.total)
        subtotal = self._money(answer.subtotal)
        if total is None and lines and all(line.line_total for line in lines):
            total = Money.total((line.line_total for line in lines if line.line_total), self._currency)
        priced = total or subtotal
        vendor_status = clean_text(answer.status, 40) if answer.status is not None else None
        return Order(
            vendor=self.key,
            order_id=answer.order_id,
            po_number=clean_text(answer.po_number or po_number or "", 60) or None,
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=lines,
            subtotal=subtotal or total,
            total=total,
            currency=priced.currency if priced else None,
            created_at=answer.created_at,
            updated_at=answer.updated_at,
            notes=clean_text(answer.notes, 300) if answer.notes else notes,
            details=answer.details(),
        )

    def _line(self, line: wire.Line) -> OrderLine:
        unit = self._money(line.price)
        quantity = line.quantity or 0
        return OrderLine(
            part_id=_ordered_part_id(line),
            part_number=clean_text(line.part_number or "?", 80),
            name=clean_text(line.description, 200) if line.description else None,
            quantity=quantity,
            unit_price=unit,
            line_total=self._money(line.total) or ((unit * quantity).rounded() if unit else None),
            vendor_status=clean_text(line.status, 40) if line.status else None,
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().casefold(), OrderStatus.UNKNOWN)

    # -------------------------------------------------------------------------------------- plumbing

    def _payload(self, body: Any) -> Any:
        """What the documented wrapper carries as ``data``; a body without the wrapper is its own payload."""
        envelope = wire.Envelope.model_validate(body)
        if not envelope.wraps():
            return body
        if envelope.success is False:
            raise VendorBadResponse(
                self.key,
                "PartsSource answered 2xx but reported a failure: "
                + (wire.Problem.model_validate(body).text() or "no message"),
            )
        return envelope.data

    def _money(self, price: JsonMoney | None) -> Money | None:
        return price.money(self._currency) if price is not None else None

    # ---------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        status = response.status_code
        is_post = response.request.method == "POST" and response.request.url.path.endswith("/orders")
        message = clean_text(wire.Problem.model_validate(data).text() or response.reason_phrase or "no message", 400)
        kw: dict[str, Any] = {"code": f"HTTP_{status}", "status": status}
        if status == 429:
            return VendorRateLimited(
                self.key, "PartsSource is rate limiting.", retry_after=_retry_after(response), **kw
            )
        if status == 401:
            return VendorAuthError(
                self.key,
                "PartsSource refused the access token even after a fresh one was fetched (401): check client_id, "
                "client_secret and scope.",
                **kw,
            )
        if status == 403:
            return VendorAuthError(
                self.key,
                f"PartsSource refused access (403): {message}. The x-api-key may be wrong, the token may lack the "
                "scope (customer:read / customer:write), or the resource belongs to another organisation.",
                **kw,
            )
        if status == 404:
            return VendorNotFound(self.key, f"PartsSource: {message}", **kw)
        if status == 409 and is_post:
            return _KeyConflict(
                self.key,
                f"PartsSource refused the order's idempotency key (409): {message}. An order under this key may "
                "already exist.",
                in_flight=bool(_IN_FLIGHT.search(message)),
                **kw,
            )
        if status == 409:
            return VendorConflict(self.key, f"PartsSource refused: {message}", **kw)
        if 400 <= status < 500:
            return self._refused(message, is_post=is_post, **kw)
        return self._failed(response, is_post=is_post, **kw)

    def _refused(self, message: str, *, is_post: bool, status: int, **kw: Any) -> VendorError:
        """A 4xx the request itself caused: named by field where the message names one."""
        field_name = _field(message)
        config = _config_field(message)
        hint = f" Check vendors.{self.key}.{config} in the configuration." if config else ""
        if is_post and status == 422 and field_name and field_name.endswith("part_id"):
            hint = " Look the part up again for a current quote, and preview the order again."
        what = "the order" if is_post else "the request"
        return VendorInvalidRequest(
            self.key, f"PartsSource refused {what}: {message}.{hint}", field=field_name, status=status, **kw
        )

    def _failed(self, response: httpx2.Response, *, is_post: bool, status: int, **kw: Any) -> VendorError:
        if not is_post:
            return VendorUnavailable(
                self.key, f"PartsSource failed ({status}).", not_processed=True, status=status, **kw
            )
        replayed = any(response.headers.get(h, "").lower() in ("true", "1") for h in _REPLAY_HEADERS)
        error = VendorUnavailable(
            self.key,
            f"PartsSource failed while creating the order ({status})"
            + (", and replayed that stored failure for this idempotency key" if replayed else "")
            + ". The order may or may not exist. PartsSource stores a failure under its key for 24 h, so "
            "resending with the same key only repeats it: look the order up by PO number before any new attempt.",
            not_processed=False,
            status=status,
            **kw,
        )
        # A retry with the same key would only fetch the stored 5xx again.
        error.retryable = False
        return error


# ------------------------------------------------------------------------------------------- helpers


def _option_notes(option: wire.Option, option_id: str, expires: datetime) -> list[str]:
    condition, choice = option.shown_condition(), option.shown_choice()
    warranty = clean_text(option.warranty or "unstated", 40)
    supplier = f"; supplied by {clean_text(option.supplier, 80)}" if option.supplier else ""
    notes = [
        f"Condition: {condition}; warranty: {warranty}; purchase choice: {choice}{supplier}.",
        f"Quoted price (priceOptionId {clean_text(option_id, 60)}), binding until {expires:%Y-%m-%d}: "
        "the order carries exactly this price.",
    ]
    if choice.casefold() == "exchange":
        notes.append("Exchange: the price assumes you send your old unit back as a core.")
    if option.is_repair():
        fields = ", ".join(option.required_names()) or "repairReason, serialNumber"
        notes.append(
            f"Flat-rate repair of your own unit: quantity 1 per order line, and options.required_fields "
            f'(entries {{"part_id", "name", "value"}}) must give {fields}.'
        )
    return notes


def _caveats(quoted: Sequence[_Quoted], options: _Options) -> list[str]:
    """What the human must know about the quoted lines and the shipping before confirming."""
    caveats: list[str] = []
    expiries = [quote.expires_at for quote in quoted if quote.expires_at is not None]
    if expiries:
        caveats.append(
            f"Prices are PartsSource quotes, binding until {min(expiries):%Y-%m-%d}; the order repeats them exactly."
        )
    for quote in quoted:
        number, choice = quote.line.part_number, quote.option.shown_choice()
        warranty = quote.option.warranty or "unstated"
        caveats.append(f"{number}: {quote.option.shown_condition()}, {choice}, warranty {warranty}.")
        if quote.was is not None:
            caveats.append(
                f"{number}: PartsSource now quotes {quote.line.unit_price} each; it was {quote.was} when looked up."
            )
        if choice.casefold() == "exchange":
            caveats.append(f"{number}: exchange price; send your old unit back as a core.")
    caveats.append(
        f"Ships by {options.shipping_method}"
        + (" on your own shipping account" if options.use_shipping_account else "")
        + ". PartsSource's API states no shipping or tax charges before the order: any are invoiced on top."
    )
    return caveats


def _pick(
    quotes: Sequence[tuple[wire.Option, Part]], seen: Money | None = None, hint: str | None = None
) -> tuple[wire.Option, Part] | None:
    """The quote to take for one option: priced, at the price the human saw if one is, the quote named if it
    is among them, else the cheapest."""

    def rank(quote: tuple[wire.Option, Part]) -> tuple[bool, bool, bool, Decimal]:
        price = quote[1].unit_price
        amount = price.amount if price is not None else Decimal(0)
        return price is None, seen is not None and price != seen, quote[0].price_option_id != hint, amount

    return min(quotes, key=rank, default=None)


def _product_id(part: Part) -> str | None:
    ref = decode_part_id(part.part_id)
    return ref.product_id if ref is not None else None


def _field(message: str) -> str | None:
    for pattern, name in _FIELDS:
        match = pattern.search(message)
        if match:
            return name(match)
    return None


def _config_field(message: str) -> str | None:
    match = re.search(r"\b(requesterId|userId|facilityId|shippingAddressId|billingAddressId)\b", message, re.I)
    return _CONFIG_FIELDS[match[1].casefold()] if match else None


def _retry_after(response: httpx2.Response) -> float | None:
    seconds = retry_after_seconds(response)
    if seconds is not None:
        return seconds
    reset = response.headers.get("x-ratelimit-reset")
    try:
        value = float(reset) if reset is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    # X-RateLimit-Reset is documented as a Unix timestamp; a small number can only be a delay.
    return max(0.0, value - time.time()) if value > 1e9 else max(0.0, value)


def _exact_or_first(query: str, hits: list[wire.Product]) -> list[wire.Product]:
    # An exact part-number match takes all its products; otherwise the first few hits.
    exact = [hit for hit in hits if _squash(hit.part_number or "") == _squash(query)]
    return exact or hits[:PRODUCTS_PER_QUERY]


def _described(hit: wire.Product) -> tuple[str, str, str]:
    number = clean_text(hit.part_number or "", 80)
    name = clean_text(hit.description or number, 200)
    # What the catalog search looks at: part number, description and manufacturer.
    return number, name, f"{number} {name} {hit.manufacturer or ''}"


def _squash(value: str) -> str:
    return re.sub(r"[\s\-./]", "", value).casefold()


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wire_id(product_id: str) -> str | int:
    # The documents show string product ids ("CAT-123"); a plain number goes back as a number.
    return int(product_id) if product_id.isdigit() and not product_id.startswith("0") else product_id


def _uuid_key(key: str) -> str:
    """PartsSource requires a UUID; our keys are UUID-shaped already, anything else maps to one stably."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"parts-mcp:{key}"))


def create(key: str, settings: PartsSourceSettings, http: httpx2.AsyncClient) -> PartsSourceClient:
    return PartsSourceClient(
        key,
        base_url=settings.base_url,
        token_url=settings.token_url,
        client_id=settings.client_id.get_secret_value(),
        client_secret=settings.client_secret.get_secret_value(),
        api_key=settings.api_key.get_secret_value(),
        scope=settings.scope,
        account=Account(
            requester_id=settings.requester_id,
            user_id=settings.user_id,
            facility_id=settings.facility_id,
            shipping_address_id=settings.shipping_address_id,
            billing_address_id=settings.billing_address_id,
            shipping_method=settings.shipping_method,
            company_id=settings.company_id or settings.facility_id,
        ),
        http=http,
        policy=settings.http_policy(),
        currency=settings.currency,
        shipping_methods=settings.shipping_methods,
        list_window=timedelta(days=settings.list_window_days),
    )


_: type[VendorClient] = PartsSourceClient


EXAMPLE = """\
[vendors.partssource]
kind = "partssource"
base_url = "https://api.partssource.com/customer/api"  # API prefix included (the docs show two)
token_url = "https://auth.partssource.com/oauth2/token"
client_id = "${PARTSSOURCE_CLIENT_ID}"
client_secret = "${PARTSSOURCE_CLIENT_SECRET}"
api_key = "${PARTSSOURCE_API_KEY}"           # the x-api-key header
requester_id = 10001
user_id = 10001
facility_id = 20001
shipping_address_id = 30001
billing_address_id = 30002
shipping_method = "GROUND"                   # default; an order's options.shipping_method overrides
# scope = "default-m2m-resource-server-p2hkah/customer:read default-m2m-resource-server-p2hkah/customer:write"
# shipping_methods = ["GROUND", "NEXT_DAY"]  # the methods your account may use (default: any)
# company_id = 20001                         # for listing orders by date (default: facility_id)
# currency = "USD"
# list_window_days = 365                     # order search needs a date range: the default when none is given
"""

KIND = VendorKind(
    kind="partssource",
    settings=PartsSourceSettings,
    create=create,
    example=EXAMPLE,
    simulator="parts_mcp.sandbox.partssource:SIMULATED",
)
