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

Every option of a product is its own Part: ``part_id`` is ``<productId>:<priceOptionId>``
(percent-encoded), ``price_basis`` "quote", ``expires_at`` the quote's expiry.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import anyio
import httpx2
from pydantic import Field, SecretStr

from parts_mcp.domain import LookupResult, Money, Order, OrderLine, OrderStatus, OrderSummary, Part, Preview, PriceBasis
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors import part_ids
from parts_mcp.vendors._oauth import ClientCredentials
from parts_mcp.vendors._search import is_part_number, judge, number_prefix, search_words
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

QUOTE_VALIDITY = timedelta(days=30)
NOTES_LIMIT = 200
SEARCH_PAGE = 100  # GET search endpoints take limit 1..100
CATALOG_PAGE = 20
PRODUCTS_PER_QUERY = 5  # detail calls per name query; an exact part-number match takes all its products
CONCURRENT_CALLS = 4
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
    required_fields: dict[int, dict[str, str]] = field(default_factory=dict)  # by item index

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"shipping_method": self.shipping_method}
        if self.use_shipping_account is not None:
            shown["use_shipping_account"] = self.use_shipping_account
        return shown


class _KeyConflict(VendorKeyConflict):
    """409 on POST /orders: the key is in use, by a request still in flight or stored with another body."""

    def __init__(self, vendor: str, message: str, *, in_flight: bool, **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        # A request still in flight finishes soon; retrying the same key then replays its answer.
        self.retryable = in_flight


def encode_part_id(product_id: str, price_option_id: str) -> str:
    """``<productId>:<priceOptionId>``: the product to read the quotes of, and the quote (the offer) among them."""
    return part_ids.encode(product_id, price_option_id)


def decode_part_id(part_id: str) -> tuple[str, str] | None:
    fields = part_ids.decode(part_id, 2)
    return (fields[0], fields[1]) if fields is not None else None


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
        searched = await self._each(unique, self._catalog_search)
        offers = await self._offers({q: _exact_or_first(q, items) for q, items in searched.items()})
        parts = {part.part_id: part for q in unique for part in offers[q]}
        not_found = [clean_text(q, 120) for q in unique if not offers[q]]
        return LookupResult(parts=list(parts.values()), not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # The catalog search takes keywords and also matches inside part numbers: a name goes as its singular
        # words, a part number as its first two thirds, one call each; what comes back is judged here.
        terms = {q: number_prefix(q) if is_part_number(q) else " ".join(search_words(q)) for q in queries}
        searched = await self._each([q for q in queries if terms[q]], lambda q: self._catalog_search(terms[q] or ""))
        judged = judge(self.key, {q: searched.get(q, []) for q in queries}, _described)
        offers = await self._offers({q: hits[:PRODUCTS_PER_QUERY] for q, hits in judged.found.items()})
        parts = {part.part_id: part for found in offers.values() for part in found}
        # A product whose every option has lapsed is as good as not found.
        not_found = judged.not_found + [q for q, found in offers.items() if not found]
        return LookupResult(parts=list(parts.values()), not_found=not_found, suggestions=judged.suggestions)

    async def _catalog_search(self, keywords: str) -> list[dict[str, Any]]:
        body = {"keywords": keywords, "pagination": {"limit": CATALOG_PAGE, "offset": 0}}
        _, data = await self._http.request("POST", "/catalog/search", json_body=body, retry=True)
        return [i for i in _items(self._data(data)) if parse.first(i, "productId", "id") is not None]

    async def _offers(self, chosen: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Part]]:
        """Every price option of each query's chosen catalog items, as parts, by query (one detail call per product)."""
        wanted = list(dict.fromkeys(_product_id(i) for items in chosen.values() for i in items))
        details = await self._each(wanted, self._detail)
        now = datetime.now(UTC)
        return {
            q: [part for i in items for part in self._parts(details.get(_product_id(i)), now)]
            for q, items in chosen.items()
        }

    async def _detail(self, product_id: str) -> dict[str, Any] | None:
        params = {"productId": product_id, "requesterId": self.account.requester_id}
        try:
            _, data = await self._http.request("GET", "/catalog/detail", params=params, retry=True)
        except VendorNotFound:
            return None
        except VendorError as exc:
            if exc.status != 405:
                raise
            # The documents do not say which method /catalog/detail takes; a POST is the other reading.
            _, data = await self._http.request(
                "POST", "/catalog/detail", json_body={**params, "productId": _wire_id(product_id)}, retry=True
            )
        detail = self._data(data)
        return detail if isinstance(detail, dict) else None

    def _parts(self, detail: Mapping[str, Any] | None, now: datetime) -> list[Part]:
        if not detail:
            return []
        product_id = parse.first(detail, "productId", "id")
        part_number = parse.first(detail, "partNumber", "oemPartNumber", "requestedPartNumber")
        if product_id is None or part_number is None:
            return []
        description = clean_text(parse.first(detail, "description", "name", "title") or part_number, 160)
        manufacturer = parse.first(detail, "manufacturer", "manufacturerName")
        parts = []
        for option in detail.get("options") or []:
            if not isinstance(option, dict) or parse.first(option, "priceOptionId", "priceOptionID") is None:
                continue
            option_id = str(parse.first(option, "priceOptionId", "priceOptionID"))
            condition = clean_text(option.get("condition") or "unstated", 60)
            warranty = clean_text(option.get("warranty") or "unstated", 40)
            choice = clean_text(parse.first(option, "purchaseChoice", "purchaseType") or "Buy", 40)
            supplier = parse.first(option, "vendorName", "vendor", "supplier")
            price = _money(parse.first(option, "price", "unitPrice"), self._currency)
            # PartsSource's own expiry when it states one; else 30 days from now, as the quote was just issued.
            stated = parse.timestamp(parse.first(option, "expiresAt", "expirationDate", "expiration", "validUntil"))
            expires = stated or now + QUOTE_VALIDITY
            required = _required_names(option.get("requiredFields"))
            notes = [
                f"Condition: {condition}; warranty: {warranty}; purchase choice: {choice}"
                + (f"; supplied by {clean_text(supplier, 80)}" if supplier else "")
                + ".",
                f"Quoted price (priceOptionId {clean_text(option_id, 60)}), binding until {expires:%Y-%m-%d}: "
                "the order carries exactly this price.",
            ]
            if choice.casefold() == "exchange":
                notes.append("Exchange: the price assumes you send your old unit back as a core.")
            if _is_repair(condition):
                fields = ", ".join(required) or "repairReason, serialNumber"
                notes.append(
                    f"Flat-rate repair of your own unit: quantity 1 per order line, and options.required_fields "
                    f'(entries {{"part_id", "name", "value"}}) must give {fields}.'
                )
            parts.append(
                Part(
                    vendor=self.key,
                    part_id=encode_part_id(str(product_id), option_id),
                    part_number=clean_text(part_number, 80),
                    name=clean_text(f"{description} ({condition}, {choice})", 200),
                    manufacturer=clean_text(manufacturer, 120) if manufacturer else None,
                    unit_price=price,
                    price_basis=PriceBasis.QUOTE,
                    available_quantity=parse.integer(parse.first(option, "quantityAvailable", "availableQuantity")),
                    orderable=price is not None,
                    expires_at=expires,
                    notes=notes,
                )
            )
        return parts

    async def resolve_parts(self, ids: Sequence[str]) -> dict[str, Part]:
        wanted = {part_id: decoded for part_id in ids if (decoded := decode_part_id(part_id)) is not None}
        details = await self._each(list(dict.fromkeys(product for product, _ in wanted.values())), self._detail)
        now = datetime.now(UTC)
        # Keyed by the id as re-encoded, so an id spelled with needless escapes still finds its quote.
        offers = {part.part_id: part for detail in details.values() for part in self._parts(detail, now)}
        return {
            part_id: offers[encode_part_id(*decoded)]
            for part_id, decoded in wanted.items()
            if encode_part_id(*decoded) in offers
        }

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        options = self._options(request, {item.part_id: parts[item.part_id].part_id for item in request.items})
        if request.notes is not None and len(request.notes) > NOTES_LIMIT:
            raise VendorInvalidRequest(
                self.key,
                f"notes is {len(request.notes)} characters; PartsSource accepts at most {NOTES_LIMIT}. Shorten it "
                "(this server does not cut notes without the user's say-so).",
                field="notes",
                code="NOTES_TOO_LONG",
            )
        wanted: list[tuple[str, str]] = []
        for index, item in enumerate(request.items):
            decoded = decode_part_id(parts[item.part_id].part_id)
            if decoded is None:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}].part_id is not a PartsSource price option; use a part_id from lookup_parts.",
                    field=f"items[{index}].part_id",
                )
            wanted.append(decoded)
        # Re-read the quotes: one withdrawn or expired since the look-up cannot be ordered, and a changed
        # price shows up here (and so needs a new confirmation).
        details = await self._each(list(dict.fromkeys(pid for pid, _ in wanted)), self._detail)
        now = datetime.now(UTC)
        lines: list[OrderLine] = []
        caveats: list[str] = []
        earliest: datetime | None = None
        for index, (item, (product_id, option_id)) in enumerate(zip(request.items, wanted, strict=True)):
            wanted_id = encode_part_id(product_id, option_id)
            current = next((p for p in self._parts(details.get(product_id), now) if p.part_id == wanted_id), None)
            known = parts[item.part_id]
            if current is None or current.unit_price is None or (current.expires_at or now) < now:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}]: the PartsSource quote for {known.part_number} ({known.name}) is no longer "
                    "offered or has expired (quotes last 30 days). Look the part up again and order a current option.",
                    field=f"items[{index}].part_id",
                    code="QUOTE_GONE",
                )
            if current.expires_at is not None:
                earliest = current.expires_at if earliest is None else min(earliest, current.expires_at)
            detail = details.get(product_id) or {}
            option = next(
                (
                    o
                    for o in detail.get("options") or []
                    if isinstance(o, dict) and str(o.get("priceOptionId")) == option_id
                ),
                {},
            )
            if _is_repair(str(option.get("condition") or "")):
                self._check_repair(index, item.quantity, _required_names(option.get("requiredFields")), options)
            elif index in options.required_fields:
                raise VendorInvalidRequest(
                    self.key,
                    f"options.required_fields: items[{index}] ({current.part_number}) is not a flat-rate repair and "
                    "takes no required fields; remove its entry.",
                    field="options.required_fields",
                )
            condition = clean_text(option.get("condition") or "unstated", 60)
            choice = clean_text(option.get("purchaseChoice") or "Buy", 40)
            caveats.append(
                f"{current.part_number}: {condition}, {choice}, warranty {option.get('warranty') or 'unstated'}."
            )
            if choice.casefold() == "exchange":
                caveats.append(f"{current.part_number}: exchange price; send your old unit back as a core.")
            lines.append(
                OrderLine.priced(
                    part_id=current.part_id,
                    part_number=current.part_number,
                    name=current.name,
                    quantity=item.quantity,
                    unit_price=current.unit_price,
                )
            )
        currency = lines[0].unit_price.currency if lines[0].unit_price else self._currency
        total = Money.total((line.line_total for line in lines if line.line_total), currency)
        if earliest is not None:
            caveats.insert(
                0, f"Prices are PartsSource quotes, binding until {earliest:%Y-%m-%d}; the order repeats them exactly."
            )
        caveats.append(
            f"Ships by {options.shipping_method}"
            + (" on your own shipping account" if options.use_shipping_account else "")
            + ". PartsSource's API states no shipping or tax charges before the order: any are invoiced on top."
        )
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
            caveats=caveats,
        )

    def _check_repair(self, index: int, quantity: int, required: list[str], options: _Options) -> None:
        if quantity != 1:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}].quantity must be 1: a flat-rate repair is one unit per order line, each with its own "
                "serial number. Order further repairs of the same product as separate orders.",
                field=f"items[{index}].quantity",
            )
        given = options.required_fields.get(index, {})
        missing = [name for name in required or ["repairReason", "serialNumber"] if not given.get(name)]
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
        for key, values in raw.items():
            index = by_key.get(str(key))
            if index is None:
                raise VendorInvalidRequest(
                    self.key, f"{where}: {clean_text(key, 80)!r} is not a part_id of this order.", field=where
                )
            if not isinstance(values, dict) or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in values.values()
            ):
                raise VendorInvalidRequest(
                    self.key, f"{where}[{clean_text(key, 80)!r}] must map field names to text values.", field=where
                )
            result[index] = {str(k): str(v).strip() for k, v in values.items()}
        return result

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        lines = list(zip(request.items, preview.lines, strict=True))
        options = self._options(request, {item.part_id: line.part_id or item.part_id for item, line in lines})
        account = self.account
        items = []
        for index, (item, line) in enumerate(lines):
            decoded = decode_part_id(line.part_id or "")
            if decoded is None or line.unit_price is None:
                raise VendorInvalidRequest(
                    self.key, f"items[{index}] was not priced by the preview.", field=f"items[{index}]"
                )
            product_id, option_id = decoded
            entry: dict[str, Any] = {
                "priceOptionId": option_id,
                "productId": _wire_id(product_id),
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
        raw = self._data(data)
        if not isinstance(raw, dict):
            raise VendorBadResponse(self.key, "PartsSource confirmed the order without an order in its answer")
        return self._order(raw, request.po_number, request.notes)

    async def get_order(self, order_id: str) -> Order:
        if not order_id.strip().isdigit():
            raise VendorInvalidRequest(
                self.key, "order_id: PartsSource order ids are numbers, e.g. 10001.", field="order_id"
            )
        _, data = await self._http.request("GET", f"/orders/{order_id.strip()}", retry=True)
        raw = self._data(data)
        if not isinstance(raw, dict):
            raise VendorBadResponse(self.key, "PartsSource answered an order look-up without an order")
        return self._order(raw)

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
            page = self._data(data)
            items = _items(page)
            orders.extend(self._order(item) for item in items if parse.first(item, "orderId", "id") is not None)
            pagination = page.get("pagination") if isinstance(page, dict) else None
            more = pagination.get("hasMore") if isinstance(pagination, dict) else None
            if not items or (more is False) or (more is None and len(items) < limit):
                break
            offset += len(items)
        return orders[:max_orders]

    def _order(self, raw: Mapping[str, Any], po_number: str | None = None, notes: str | None = None) -> Order:
        order_id = parse.first(raw, "orderId", "id", "orderNumber")
        if order_id is None:
            raise VendorBadResponse(self.key, "PartsSource sent an order without an orderId")
        lines = []
        for line in parse.first(raw, "lineItems", "lines", "items", "quoteItems") or []:
            if not isinstance(line, dict):
                continue
            product_id, option_id = line.get("productId"), line.get("priceOptionId")
            unit = _money(parse.first(line, "price", "unitPrice"), self._currency)
            quantity = parse.integer(parse.first(line, "quantity", "qty")) or 0
            total = _money(parse.first(line, "extendedPrice", "lineTotal", "total"), self._currency)
            status = parse.first(line, "status", "lineStatus")
            lines.append(
                OrderLine(
                    part_id=encode_part_id(str(product_id), str(option_id)) if product_id and option_id else None,
                    part_number=clean_text(
                        parse.first(line, "partNumber", "requestedPartNumber", "replacementPartNumber") or "?", 80
                    ),
                    name=clean_text(line["description"], 200) if line.get("description") else None,
                    quantity=quantity,
                    unit_price=unit,
                    line_total=total or ((unit * quantity).rounded() if unit else None),
                    vendor_status=clean_text(status, 40) if status else None,
                )
            )
        total = _money(parse.first(raw, "total", "orderTotal", "grandTotal"), self._currency)
        subtotal = _money(raw.get("subtotal"), self._currency)
        if total is None and lines and all(line.line_total for line in lines):
            total = Money.total((line.line_total for line in lines if line.line_total), self._currency)
        priced = total or subtotal
        status = parse.first(raw, "status", "orderStatus")
        vendor_status = clean_text(status, 40) if status is not None else None
        details = {
            name: raw[name]
            for name in ("shippingMethod", "facilityId", "requesterId", "useShippingAccount")
            if isinstance(raw.get(name), str | int | bool)
        }
        return Order(
            vendor=self.key,
            order_id=str(order_id),
            po_number=clean_text(parse.first(raw, "poNumber", "purchaseOrderNumber", "po") or po_number or "", 60)
            or None,
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=lines,
            subtotal=subtotal or total,
            total=total,
            currency=priced.currency if priced else None,
            created_at=parse.timestamp(parse.first(raw, "createdDate", "createdAt", "orderDate", "created")),
            updated_at=parse.timestamp(parse.first(raw, "updatedDate", "updatedAt", "lastModifiedDate")),
            notes=clean_text(raw["notes"], 300) if raw.get("notes") else notes,
            details=details,
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().casefold(), OrderStatus.UNKNOWN)

    # -------------------------------------------------------------------------------------- plumbing

    def _data(self, body: Any) -> Any:
        """The payload of the documented wrapper ``{success, data, errors, correlationId, timestamp}``, or the body."""
        if isinstance(body, dict) and "data" in body and ("success" in body or "correlationId" in body):
            if body.get("success") is False:
                raise VendorBadResponse(
                    self.key, "PartsSource answered 2xx but reported a failure: " + (_message(body) or "no message")
                )
            return body["data"]
        return body

    async def _each(self, keys: Sequence[K], call: Callable[[K], Awaitable[V]]) -> dict[K, V]:
        """``call`` for every key, a few at a time; the first vendor error is raised, as itself."""
        results: dict[K, V] = {}
        errors: list[VendorError] = []
        limiter = anyio.CapacityLimiter(CONCURRENT_CALLS)

        async def one(key: K) -> None:
            async with limiter:
                if errors:
                    return
                try:
                    results[key] = await call(key)
                except VendorError as exc:
                    errors.append(exc)

        async with anyio.create_task_group() as group:
            for key in keys:
                group.start_soon(one, key)
        if errors:
            raise errors[0]
        return results

    # ---------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        status = response.status_code
        is_post = response.request.method == "POST" and response.request.url.path.endswith("/orders")
        text = _message(data) or response.reason_phrase or "no message"
        message = clean_text(text, 400)
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
        if status == 409:
            if is_post:
                in_flight = bool(_IN_FLIGHT.search(message))
                return _KeyConflict(
                    self.key,
                    f"PartsSource refused the order's idempotency key (409): {message}. An order under this key may "
                    "already exist.",
                    in_flight=in_flight,
                    **kw,
                )
            return VendorConflict(self.key, f"PartsSource refused: {message}", **kw)
        if 400 <= status < 500:
            field_name = _field(message)
            config = _config_field(message)
            hint = f" Check vendors.{self.key}.{config} in the configuration." if config else ""
            if is_post and status == 422 and field_name and field_name.endswith("part_id"):
                hint = " Look the part up again for a current quote, and preview the order again."
            what = "the order" if is_post else "the request"
            return VendorInvalidRequest(
                self.key, f"PartsSource refused {what}: {message}.{hint}", field=field_name, **kw
            )
        if is_post:
            replayed = any(response.headers.get(h, "").lower() in ("true", "1") for h in _REPLAY_HEADERS)
            error = VendorUnavailable(
                self.key,
                f"PartsSource failed while creating the order ({status})"
                + (", and replayed that stored failure for this idempotency key" if replayed else "")
                + ". The order may or may not exist. PartsSource stores a failure under its key for 24 h, so "
                "resending with the same key only repeats it: look the order up by PO number before any new attempt.",
                not_processed=False,
                **kw,
            )
            # A retry with the same key would only fetch the stored 5xx again.
            error.retryable = False
            return error
        return VendorUnavailable(self.key, f"PartsSource failed ({status}).", not_processed=True, **kw)


# ------------------------------------------------------------------------------------------- helpers


def _money(raw: Any, currency: str) -> Money | None:
    money = parse.money(raw, currency)
    # 1250.0 on the wire is 1250.00: pad to the minor unit, but never round away a digit the vendor sent.
    exponent = money.amount.as_tuple().exponent if money is not None else None
    return money.rounded() if money is not None and isinstance(exponent, int) and exponent >= -2 else money


def _items(page: Any) -> list[dict[str, Any]]:
    if isinstance(page, dict):
        page = parse.first(page, "items", "results", "orders", "products")
    return [i for i in page or [] if isinstance(i, dict)] if isinstance(page, list) else []


def _message(data: Any) -> str:
    """The vendor's words from either documented error envelope (or a gateway's or Cognito's)."""
    if not isinstance(data, dict):
        return ""
    found: list[str] = []
    errors = data.get("errors")
    if isinstance(errors, list):
        for entry in errors:
            if isinstance(entry, dict):
                where = parse.first(entry, "field", "propertyName", "name")
                what = parse.first(entry, "message", "detail", "error") or ""
                found.append(f"{where}: {what}" if where else str(what))
            elif entry is not None:
                found.append(str(entry))
    elif isinstance(errors, dict):
        for where, what in errors.items():
            for one in what if isinstance(what, list) else [what]:
                found.append(f"{where}: {one}")
    detail = parse.first(data, "detail", "message", "error_description", "error", "title")
    if detail is not None and not any(str(detail) in entry for entry in found):
        found.insert(0, str(detail))
    return "; ".join(dict.fromkeys(s.strip().rstrip(".") for s in found if s and s.strip()))


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


def _required_names(raw: Any) -> list[str]:
    names = []
    for entry in raw or []:
        if isinstance(entry, str):
            names.append(entry)
        elif (
            isinstance(entry, dict)
            and parse.first(entry, "name", "fieldName", "key") is not None
            and entry.get("required", True) is not False
        ):
            names.append(str(parse.first(entry, "name", "fieldName", "key")))
    return [clean_text(n, 60) for n in names]


def _is_repair(condition: str) -> bool:
    return "flat rate repair" in condition.casefold()


def _product_id(item: Mapping[str, Any]) -> str:
    return str(parse.first(item, "productId", "id"))


def _exact_or_first(query: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # An exact part-number match takes all its products; otherwise the first few hits.
    exact = [i for i in items if _squash(str(parse.first(i, "partNumber", "oemPartNumber") or "")) == _squash(query)]
    return exact or items[:PRODUCTS_PER_QUERY]


def _described(item: Mapping[str, Any]) -> tuple[str, str, str]:
    number = clean_text(parse.first(item, "partNumber", "oemPartNumber") or "", 80)
    name = clean_text(parse.first(item, "description", "name", "title") or number, 200)
    # What the catalog search looks at: part number, description and manufacturer.
    return number, name, f"{number} {name} {parse.first(item, 'manufacturer', 'manufacturerName') or ''}"


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
