"""Factory AI (f7i.ai) maintenance system: the plant's own parts, inventory and part orders.

Documented (seeds/001, docs.f7i.ai): GET /parts and GET /inventory (bare JSON arrays), and part
orders: list (limit/offset, search, status, supplier, createdAfter/createdBefore), create, get,
update and status. A part order is the plant's own procurement record against a supplier: its
prices are the parts' stored cost, Factory AI adds tax and shipping when it creates the order, and
there is no idempotency key. Our PO number therefore rides at the start of `notes` ("PO <po>"),
which the list's `search` matches, so an order whose answer was lost is found again by search.
Money is JSON floats in major units; error bodies come in two shapes (`{error, details}` /
`{error, reason}` on the order endpoints, `{error, code, timestamp}` elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr
from pydantic.alias_generators import to_camel

from parts_mcp.domain import (
    LookupResult,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSummary,
    Part,
    Preview,
    PriceBasis,
)
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors._search import is_part_number, judge, number_prefix, search_words
from parts_mcp.vendors._together import each
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
    from parts_mcp.vendors.wire import factoryai as wire
else:
    wire = LazyModule("parts_mcp.vendors.wire.factoryai")

PAGE = 100  # orders per list call; the API documents no maximum, the simulator allows 100
SEARCH_LIMIT = 100  # parts / inventory records per search
# Requests in flight at once, to stay clear of the (undocumented) rate limit; a few part numbers' searches
# and stock go together.
CONCURRENCY = 8
MAX_PAGES = 200  # a vendor that ignores `offset` must not keep us paging forever
PRIORITIES = ("low", "normal", "high", "urgent", "critical")
OPTION_NAMES = (
    "supplier_id",
    "priority",
    "requested_delivery_date",
    "shipping_address",
    "requires_approval",
    "justification",
)
ADDRESS_FIELDS = ("name", "address1", "city", "state", "postal_code", "country")
TEXT_LIMIT = 1000

# Every documented status, plus "pending" from the list example (not in the enum: a legacy alias).
_STATUSES: dict[str, OrderStatus] = {
    "draft": OrderStatus.DRAFT,
    "pending": OrderStatus.PENDING_APPROVAL,
    "pending_approval": OrderStatus.PENDING_APPROVAL,
    "approved": OrderStatus.APPROVED,
    "sent": OrderStatus.ORDERED,
    "acknowledged": OrderStatus.ACKNOWLEDGED,
    "in_progress": OrderStatus.IN_PROGRESS,
    "shipped": OrderStatus.SHIPPED,
    "partially_received": OrderStatus.PARTIALLY_RECEIVED,
    "received": OrderStatus.RECEIVED,
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}
# Our status -> Factory AI's, only where exactly one vendor status maps to it; the rest are filtered here.
_ONE_TO_ONE: dict[OrderStatus, str] = {
    ours: theirs for theirs, ours in _STATUSES.items() if list(_STATUSES.values()).count(ours) == 1
}

# "PO <po>" alone, or followed by " | " and the user's notes. \S+ because a PO never contains spaces.
_PO_NOTE = re.compile(r"^PO (?P<po>\S+)(?: \| (?P<rest>.*))?$", re.DOTALL)
_NOTE_SEPARATOR = " | "
_ITEM_FIELD = re.compile(r"^items\[(\d+)\](?:\.(\w+))?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Factory AI's body fields -> the tool arguments they come from, so a refusal names what to change.
_WIRE_FIELDS = {
    "supplierId": "options.supplier_id",
    "priority": "options.priority",
    "requestedDeliveryDate": "options.requested_delivery_date",
    "shippingAddress": "options.shipping_address",
    "requiresApproval": "options.requires_approval",
    "justification": "options.justification",
    "notes": "notes",
    "items": "items",
}
_DAWN = datetime.min.replace(tzinfo=UTC)  # sorts an order without a date first, as its empty date text did
_Stock: TypeAlias = "Sequence[wire.StockRow] | VendorError"  # an inventory search's records, or why there are none


class ShippingAddress(BaseModel):
    """Where the supplier ships; snake_case in config, camelCase on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    address1: str = Field(min_length=1)
    city: str = Field(min_length=1)
    state: str = Field(min_length=1)
    postal_code: str = Field(min_length=1)
    country: str = Field(min_length=1)


class FactoryAISettings(VendorSettingsBase):
    kind: Literal["factoryai"]
    base_url: str = "https://api.acme.f7i.ai/prod"
    api_key: SecretStr
    supplier_id: str | None = Field(default=None, description="Default supplier when an order names none")
    shipping_address: ShippingAddress | None = Field(default=None, description="Default ship-to address")
    site: str | None = Field(default=None, description="Count stock at this site only; default: all sites")
    currency: str = Field(default="USD", description="The tenant's currency: parts carry none of their own")


class FactoryAIClient:
    kind = "factoryai"
    display_name = "Factory AI"
    capabilities = Capabilities(
        lookup=True, place=True, get=True, list=True, idempotency_key=False, find_by_po=True, cancel=True
    )
    options_help = (
        "Factory AI options: supplier_id (default from config); priority (low|normal|high|urgent|critical); "
        "requested_delivery_date (YYYY-MM-DD, not in the past); shipping_address {name, address1, city, state, "
        "postal_code, country} (default from config); requires_approval (true/false) with justification (text, "
        "required when requires_approval is true). Tax and shipping are added by Factory AI."
    )
    search_help = (
        "Factory AI: this plant's own parts catalog (what the plant keeps, not a supplier's range), searched by "
        "part number, name, description or manufacturer."
    )
    status_help: Mapping[OrderStatus, str] = {
        OrderStatus.DRAFT: "created in Factory AI, not yet submitted for approval",
        OrderStatus.PENDING_APPROVAL: "waiting for an approver in Factory AI",
        OrderStatus.ORDERED: "sent to the supplier; Factory AI no longer allows changes",
    }

    def __init__(
        self,
        key: str,
        *,
        base_url: str,
        api_key: str,
        http: httpx2.AsyncClient,
        supplier_id: str | None = None,
        shipping_address: ShippingAddress | None = None,
        site: str | None = None,
        currency: str = "USD",
        policy: HttpPolicy | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.key = key
        self._supplier_id = supplier_id
        self._address = shipping_address
        self._site = site
        self._currency = currency
        self._today = today or (lambda: datetime.now(UTC).date())
        self._cap = anyio.CapacityLimiter(CONCURRENCY)
        self._http = VendorHttp(
            key,
            http,
            base_url,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            map_error=self._map_error,
            policy=policy,
            secrets=[api_key],
        )

    # ------------------------------------------------------------------------------------ look-up

    async def lookup(self, queries: Sequence[str]) -> LookupResult:
        # A part number's stock is asked for together with its search: a number found exactly is the part's.
        searched, stock = await self._search({q: q for q in queries}, stock_ahead=True)
        matches = {q: _exact_or_all(q, rows) for q, rows in searched.items()}
        parts = await self._with_stock((row for q in queries for row in matches.get(q, [])), stock)
        not_found = [clean_text(q, 120) for q in queries if not matches.get(q)]
        return LookupResult(parts=parts, not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # `search` matches text (how is undocumented): a name goes as its most selective word and a part
        # number as its first two thirds, one call each; what comes back is judged here.
        terms = {q: number_prefix(q) if is_part_number(q) else next(iter(search_words(q)), None) for q in queries}
        searched, _ = await self._search({q: term for q, term in terms.items() if term}, stock_ahead=False)
        judged = judge(self.key, {q: searched.get(q, []) for q in queries}, _described)
        parts = await self._with_stock((row for hits in judged.found.values() for row in hits), {})
        return LookupResult(parts=parts, not_found=judged.not_found, suggestions=judged.suggestions)

    async def _search(
        self, terms: Mapping[str, str], *, stock_ahead: bool
    ) -> tuple[dict[str, list[wire.PartRow]], dict[str, _Stock]]:
        """GET /parts?search=<term> for each query: the usable part records, by query.

        With `stock_ahead`, GET /inventory?search=<term> at the same time for each term that is a part
        number: the very call `_with_stock` makes for a part of that number, answered (or failed) by number.
        """
        ahead = sorted({term for term in terms.values() if is_part_number(term)}) if stock_ahead else []
        found: dict[str, list[wire.PartRow]] = {}
        stock: dict[str, _Stock] = {}

        async def one(key: tuple[str, str]) -> None:
            path, text = key
            if path == "/inventory":
                try:
                    stock[text] = await self._inventory(text)
                except VendorError as exc:
                    stock[text] = exc  # raised only if a part of this number is found: else nobody needed it
                return
            async with self._cap:
                # Reads write nothing: safe to retry.
                _, data = await self._http.request(
                    "GET", "/parts", params={"search": terms[text], "limit": SEARCH_LIMIT}, retry=True
                )
            rows = read(wire.Listing[wire.PartRow], data, self.key, "parts list").rows
            found[text] = [row for row in rows if self._at_site(row.site)]

        await each([*(("/parts", q) for q in terms), *(("/inventory", n) for n in ahead)], one)
        return found, stock

    async def _with_stock(self, rows: Iterable[wire.PartRow], ahead: Mapping[str, _Stock]) -> list[Part]:
        found: dict[str, wire.PartRow] = {}
        for row in rows:
            found.setdefault(row.part_id, row)
        stock = await self._stock(found.values(), ahead)
        return [self._part(row.part_id, row.part_number, row, stock.get(part_id)) for part_id, row in found.items()]

    async def _stock(
        self, parts: Iterable[wire.PartRow], ahead: Mapping[str, _Stock]
    ) -> dict[str, list[wire.StockRow]]:
        """Inventory records per partId, looked up by each part's number (unless asked `ahead`) and joined on partId."""
        wanted = {part.part_id: part.part_number for part in parts}
        numbers = sorted(set(wanted.values()))
        answers = {**ahead, **await each([n for n in numbers if n not in ahead], self._inventory)}
        records: dict[str, list[wire.StockRow]] = {}
        for number in numbers:
            answer = answers[number]
            if isinstance(answer, VendorError):
                raise answer
            for row in answer:
                if row.part_id not in wanted or not self._at_site(row.site):
                    continue
                bucket = records.setdefault(row.part_id, [])
                if row not in bucket:
                    bucket.append(row)
        return records

    async def _inventory(self, number: str) -> Sequence[wire.StockRow]:
        async with self._cap:
            _, data = await self._http.request(
                "GET", "/inventory", params={"search": number, "limit": SEARCH_LIMIT}, retry=True
            )
        return read(wire.Listing[wire.StockRow], data, self.key, "inventory list").rows

    def _at_site(self, site: str | None) -> bool:
        # A record without a site belongs to every site.
        return not self._site or site in (None, self._site)

    def _part(self, part_id: str, number: str, record: wire.PartFields, stock: Sequence[wire.StockRow] | None) -> Part:
        quantities = [row.quantity for row in stock or []]
        available = sum(q for q in quantities if q is not None) if stock and None not in quantities else None
        notes = [
            "Price is the plant's stored cost for this part in Factory AI (an estimate, not a supplier quote); "
            "Factory AI adds tax and shipping when the order is created."
        ]
        if available is not None:
            where = f" at {clean_text(self._site, 60)}" if self._site else ""
            minimum = stock[0].min_stock_level if stock and len(stock) == 1 else None
            low = f"; at or below its minimum of {minimum}" if minimum is not None and available <= minimum else ""
            notes.append(f"Stock is the plant's own on-hand quantity{where}, not the supplier's{low}.")
        if record.unit and record.unit.strip().lower() not in ("", "each"):
            notes.append(f"Unit: {clean_text(record.unit, 30)}.")
        return Part(
            vendor=self.key,
            part_id=part_id,
            part_number=clean_text(number, 80),
            name=clean_text(record.name or number, 200),
            manufacturer=_clean(record.manufacturer, 120),
            unit_price=_money(record.cost, self._currency),
            price_basis=PriceBasis.ESTIMATE,
            available_quantity=available,
            notes=notes,
        )

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        options = self._resolve_options(request.options or {})
        lines = await self._priced_lines(request, parts)
        subtotal = Money.total((line.line_total for line in lines if line.line_total), self._currency)
        return Preview(
            vendor=self.key,
            po_number=request.po_number,
            lines=lines,
            notes=request.notes,
            options=options,
            subtotal=subtotal,
            total=subtotal,
            currency=self._currency,
            price_basis=PriceBasis.ESTIMATE,
            excludes=["tax", "shipping"],
            caveats=_caveats(requires_approval=options["requires_approval"]),
        )

    async def _priced_lines(self, request: OrderRequest, parts: Mapping[str, Part]) -> list[OrderLine]:
        # Re-read each part so the preview shows today's stored cost (and a price change needs a new preview).
        known = [parts[item.part_id] for item in request.items]
        fresh = await self._fetch_parts([part.part_id for part in known])
        return [
            self._priced(index, part, fresh.get(part.part_id), item.quantity)
            for index, (item, part) in enumerate(zip(request.items, known, strict=True))
        ]

    def _priced(self, index: int, known: Part, record: wire.FetchedPart | None, quantity: int) -> OrderLine:
        if record is None:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}]: {known.part_number} is no longer in Factory AI's parts list; look it up again.",
                field=f"items[{index}].part_id",
            )
        cost = _money(record.cost, self._currency)
        if cost is None:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}]: {known.part_number} has no stored cost in Factory AI, so the order cannot be "
                "priced; set the part's cost in Factory AI first.",
                field=f"items[{index}].part_id",
            )
        return OrderLine.priced(
            part_id=known.part_id,
            part_number=clean_text(record.part_number or known.part_number, 80),
            name=clean_text(record.name or known.name, 200),
            quantity=quantity,
            unit_price=cost,
        )

    async def resolve_parts(self, part_ids: Sequence[str]) -> dict[str, Part]:
        # A part_id is the plant's own partId, stable for the record's life: reading that record re-finds it.
        fresh = await self._fetch_parts(part_ids)
        return {
            part_id: self._part(part_id, record.part_number, record, None)
            for part_id, record in fresh.items()
            if record.part_number and self._at_site(record.site)
        }

    async def _fetch_parts(self, part_ids: Sequence[str]) -> dict[str, wire.FetchedPart]:
        fresh: dict[str, wire.FetchedPart] = {}

        async def fetch(part_id: str) -> None:
            try:
                async with self._cap:
                    _, data = await self._http.request("GET", f"/parts/{quote(part_id, safe='')}", retry=True)
            except VendorNotFound:
                return
            try:
                record = read(wire.FetchedPart, data, self.key, "part record")
            except VendorBadResponse:
                return  # an answer that is no record at all reads, like a 404, as a part no longer there
            if record.part_id in (None, part_id):
                fresh[part_id] = record

        await each(part_ids, fetch)
        return fresh

    def _resolve_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The order's options with the configured defaults filled in: what the human confirms."""
        unknown = sorted(set(raw) - set(OPTION_NAMES))
        if unknown:
            raise self._bad_option(
                unknown[0],
                f"Factory AI orders take no option {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(OPTION_NAMES)}.",
            )
        supplier = self._supplier(raw.get("supplier_id", self._supplier_id))
        priority = raw.get("priority", "normal")
        if priority not in PRIORITIES:
            raise self._bad_option("priority", f"options.priority must be one of {', '.join(PRIORITIES)}.")
        resolved: dict[str, Any] = {"supplier_id": supplier, "priority": priority}
        if raw.get("requested_delivery_date") is not None:
            resolved["requested_delivery_date"] = self._delivery_date(raw["requested_delivery_date"]).isoformat()
        if raw.get("shipping_address") is not None:
            resolved["shipping_address"] = self._shipping_address(raw["shipping_address"])
        elif self._address is not None:
            resolved["shipping_address"] = self._address.model_dump()
        requires_approval, justification = self._approval(raw)
        resolved["requires_approval"] = requires_approval
        if justification:
            resolved["justification"] = justification
        return resolved

    def _supplier(self, supplier: Any) -> str:
        if supplier is None:
            raise self._bad_option(
                "supplier_id",
                "Factory AI orders need a supplier and none is configured as default: give options.supplier_id "
                "(the supplier's id in Factory AI, e.g. supplier-001).",
            )
        if not isinstance(supplier, str) or not clean_text(supplier, 101) or len(clean_text(supplier, 101)) > 100:
            raise self._bad_option(
                "supplier_id", "options.supplier_id must be a supplier id string, e.g. supplier-001."
            )
        return clean_text(supplier, 100)

    def _approval(self, raw: Mapping[str, Any]) -> tuple[bool, str | None]:
        """(requires_approval, justification): a justification is required with approval."""
        requires_approval = raw.get("requires_approval", False)
        if not isinstance(requires_approval, bool):
            raise self._bad_option("requires_approval", "options.requires_approval must be true or false.")
        justification = raw.get("justification")
        if justification is not None:
            if not isinstance(justification, str):
                raise self._bad_option("justification", "options.justification must be text.")
            justification = clean_text(justification, TEXT_LIMIT + 1)
            if len(justification) > TEXT_LIMIT:
                raise self._bad_option(
                    "justification", f"options.justification is longer than {TEXT_LIMIT} characters."
                )
        if requires_approval and not justification:
            raise self._bad_option(
                "justification", "options.justification is required when options.requires_approval is true."
            )
        return requires_approval, justification or None

    def _delivery_date(self, value: Any) -> date:
        parsed: date | None = None
        if isinstance(value, str):
            text = value.strip()
            try:
                parsed = date.fromisoformat(text)
            except ValueError:
                moment = parse.timestamp(text)
                parsed = moment.astimezone(UTC).date() if moment else None
        if parsed is None:
            raise self._bad_option(
                "requested_delivery_date", "options.requested_delivery_date must be an ISO date, e.g. 2025-03-31."
            )
        if parsed < self._today():
            raise self._bad_option(
                "requested_delivery_date",
                f"options.requested_delivery_date {parsed.isoformat()} is in the past; give today or a later date.",
            )
        return parsed

    def _shipping_address(self, value: Any) -> dict[str, str]:
        if not is_object(value):
            raise self._bad_option(
                "shipping_address", f"options.shipping_address must be an object with {', '.join(ADDRESS_FIELDS)}."
            )
        unknown = sorted(set(value) - set(ADDRESS_FIELDS))
        if unknown:
            raise self._bad_option(
                f"shipping_address.{unknown[0]}",
                f"options.shipping_address takes only {', '.join(ADDRESS_FIELDS)}; remove {', '.join(unknown)}.",
            )
        address: dict[str, str] = {}
        for name in ADDRESS_FIELDS:
            text = value.get(name)
            if not isinstance(text, str) or not clean_text(text, 200):
                raise self._bad_option(f"shipping_address.{name}", f"options.shipping_address.{name} is required.")
            address[name] = clean_text(text, 200)
        return address

    def _bad_option(self, name: str, message: str) -> VendorInvalidRequest:
        return VendorInvalidRequest(self.key, message, field=f"options.{name}", code="INVALID_OPTION")

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        # No idempotency key at Factory AI: a repeated POST would create a second order. After a lost
        # answer the service looks the order up by PO (find_order_by_po) instead of resending.
        body = self._order_body(request, preview)
        _, data = await self._http.request("POST", "/part-orders", json_body=body, retry=False)
        return self._order(read(wire.OrderAnswer, data, self.key, "created part order").order, request.po_number)

    def _order_body(self, request: OrderRequest, preview: Preview) -> dict[str, Any]:
        # The preview's options are the resolved ones the human confirmed, defaults included.
        options = preview.options
        supplier = options.get("supplier_id")
        if not supplier:
            raise self._bad_option("supplier_id", "the confirmed order names no supplier; preview it again.")
        body: dict[str, Any] = {
            "supplierId": supplier,
            "priority": options.get("priority", "normal"),
            "items": [
                # JSON floats on the wire, as the API wants; a cents amount's float prints back exactly.
                {"partId": line.part_id, "quantity": line.quantity, "unitCost": float(line.unit_price.amount)}
                for line in preview.lines
                if line.unit_price is not None
            ],
            "notes": po_note(request.po_number, request.notes),
            "requiresApproval": bool(options.get("requires_approval", False)),
        }
        if options.get("requested_delivery_date"):
            body["requestedDeliveryDate"] = f"{options['requested_delivery_date']}T00:00:00Z"
        address = options.get("shipping_address")
        if address:
            body["shippingAddress"] = {to_camel(name): address[name] for name in ADDRESS_FIELDS}
        if options.get("justification"):
            body["justification"] = options["justification"]
        return body

    async def cancel_order(self, order_id: str) -> Order:
        # A status PUT cannot create anything, so a retry is safe; a retry after a lost answer meets
        # 409 (already cancelled), and the order itself then says where it stands. The documented
        # answer is a partial order (id, number, status, history): its status is what we learn.
        body = {"status": "cancelled", "notes": "Cancelled by parts-mcp: billed above the approved total"}
        path = f"/part-orders/{quote(order_id, safe='')}/status"
        try:
            _, data = await self._http.request("PUT", path, json_body=body, retry=True)
        except VendorConflict:
            return await self.get_order(order_id)
        return self._order(read(wire.OrderAnswer, data, self.key, "status update").order)

    async def get_order(self, order_id: str) -> Order:
        _, data = await self._http.request("GET", f"/part-orders/{quote(order_id, safe='')}", retry=True)
        return self._order(read(wire.OrderAnswer, data, self.key, "part order").order)

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        # A listing page needs only a few orders; but where the filter here drops some (several statuses,
        # `search` matching more than the PO), whole pages keep the round trips few.
        exact = not query.po_number and (query.statuses is None or query.status in _ONE_TO_ONE)
        params: dict[str, Any] = {"limit": min(PAGE, max_orders) if exact else PAGE}
        if query.status is not None and query.status in _ONE_TO_ONE:
            params["status"] = _ONE_TO_ONE[query.status]
        if query.po_number:
            params["search"] = query.po_number
        # Whether the vendor's bounds are inclusive is undocumented: widen them a second, filter exactly here.
        if query.created_after is not None:
            params["createdAfter"] = _iso(query.created_after - timedelta(seconds=1))
        if query.created_before is not None:
            params["createdBefore"] = _iso(query.created_before + timedelta(seconds=1))
        result: list[OrderSummary] = []
        async with aclosing(self._pages(params)) as pages:
            async for order in pages:
                summary = self._summary(order)
                if query.matches(summary):
                    result.append(summary)
                    if len(result) >= max_orders:
                        break
        return result

    async def find_order_by_po(self, po_number: str) -> Order | None:
        async with aclosing(self._pages({"limit": PAGE, "search": po_number})) as pages:
            # `search` is a substring match: only an exact "PO <po>" marker is ours (not PO-12 for PO-1).
            candidates = [order async for order in pages if split_po_note(order.notes)[0] == po_number]
        if not candidates:
            return None
        # Two orders carrying our PO would mean someone re-keyed it by hand: ours is the first created.
        first = min(candidates, key=lambda order: order.created or _DAWN)
        try:
            return await self.get_order(first.id)
        except (VendorUnavailable, VendorRateLimited, VendorBadResponse):
            return self._order(first)

    async def _pages(self, params: dict[str, Any]) -> AsyncGenerator[wire.PartOrder, None]:
        offset = 0
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            _, data = await self._http.request("GET", "/part-orders", params={**params, "offset": offset}, retry=True)
            page = read(wire.OrderPage, data, self.key, "part order list")
            fresh = [order for order in page.orders if order.id not in seen]
            for order in fresh:
                seen.add(order.id)
                yield order
            more = page.pagination.has_more if page.pagination else None
            if more is None:
                more = len(page.orders) >= params["limit"]
            if not more or not fresh:
                return
            offset += len(page.orders)

    def _summary(self, order: wire.PartOrder) -> OrderSummary:
        currency = order.currency or self._currency
        vendor_status = _clean(order.status, 40)
        return OrderSummary(
            vendor=self.key,
            order_id=order.id,  # an id is checked, never altered (domain.VendorId)
            po_number=self._po_number(order),
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            total=_money(order.totals.total, currency),
            created_at=order.created,
        )

    def _po_number(self, order: wire.PartOrder, fallback: str | None = None) -> str | None:
        # Our PO when the notes carry our marker (orders this server placed); otherwise Factory AI's own
        # orderNumber ("PO-2024-002"), which is the plant's purchase order number for orders made in its UI.
        po, _ = split_po_note(order.notes)
        return po or fallback or _clean(order.order_number, 100)

    def _order(self, order: wire.PartOrder, po_number: str | None = None) -> Order:
        currency = order.currency or self._currency
        totals = order.totals
        vendor_status = _clean(order.status, 40)
        _, user_notes = split_po_note(order.notes)
        return Order(
            vendor=self.key,
            order_id=order.id,  # an id is checked, never altered (domain.VendorId)
            po_number=self._po_number(order, po_number),
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=[_line(item, currency) for item in order.items],
            subtotal=_money(totals.subtotal, currency),
            tax=_money(totals.tax, currency),
            shipping=_money(totals.shipping, currency),
            total=_money(totals.total, currency),
            currency=currency,
            created_at=order.created,
            updated_at=order.updated_at,
            notes=_clean(user_notes, TEXT_LIMIT),
            details={_snake(key): _safe(value) for key, value in order.details.items()},
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().lower(), OrderStatus.UNKNOWN)

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        body = read(wire.ErrorBody, data, self.key, "error answer")
        status = response.status_code
        error = clean_text(body.error or response.reason_phrase or "no message", 200)
        reason = _clean(body.reason, 300)
        sent_code = _clean(body.code, 60)
        code = sent_code or f"HTTP_{status}"
        said = error + (f": {reason}" if reason else "")
        if status == 400 or (400 <= status < 500 and body.details):
            return self._refused(said, body.details, code, status)
        if status == 401:
            return VendorAuthError(
                self.key, "Factory AI rejected the API key (missing, expired or revoked).", code=code, status=status
            )
        if status == 403:
            return self._forbidden(said, reason, sent_code)
        if status == 404:
            which = f" ({clean_text(body.which, 100)})" if body.which else ""
            return VendorNotFound(self.key, f"Factory AI: {error}{which}.", code=code, status=status)
        if status == 409:
            return VendorConflict(self.key, f"Factory AI refused: {said}.", code=code, status=status)
        if status == 429:
            retry_after = retry_after_seconds(response)
            return VendorRateLimited(
                self.key, "Factory AI is rate limiting.", retry_after=retry_after, code=code, status=status
            )
        if status >= 500:
            # Factory AI never promises a failed write was rolled back: for a POST the outcome is unknown.
            return VendorUnavailable(
                self.key, f"Factory AI failed ({status}: {error}).", not_processed=False, code=code, status=status
            )
        return VendorInvalidRequest(
            self.key, f"Factory AI refused the request ({status}): {said}.", code=code, status=status
        )

    def _refused(self, said: str, details: Mapping[str, JsonValue], code: str, status: int) -> VendorInvalidRequest:
        """A 400 `{error, details{field: message}}`, naming the tool argument each field came from."""
        problems = list(details.items())[:10]
        listed = "; ".join(f"{_our_field(k)} ({clean_text(k, 60)}): {clean_text(v, 200)}" for k, v in problems)
        return VendorInvalidRequest(
            self.key,
            f"Factory AI refused the request: {said}" + (f" — {listed}" if listed else "") + ".",
            field=_our_field(problems[0][0]) if problems else None,
            code=code,
            status=status,
        )

    def _forbidden(self, said: str, reason: str | None, sent_code: str | None) -> VendorError:
        if not reason:
            return VendorAuthError(
                self.key,
                f"Factory AI refused access ({said}); the API key may be read-only or lack permission.",
                code=sent_code or "HTTP_403",
                status=403,
            )
        # `{error, reason}` is Factory AI's policy answer (e.g. an approval-amount limit): the key works,
        # this order is not allowed as it stands.
        hint = (
            " Orders above the plant's approval limit need options.requires_approval=true with options.justification."
            if re.search(r"approv|above|limit|\$", reason, re.IGNORECASE)
            else ""
        )
        return VendorConflict(
            self.key,
            f"Factory AI refused this by policy ({said}); this is not a credentials problem.{hint}",
            code=sent_code or "FORBIDDEN_BY_POLICY",
            status=403,
        )


# ------------------------------------------------------------------------------------------ helpers


def po_note(po_number: str, notes: str | None) -> str:
    """The order's notes with our PO at the start, where the list's `search` finds it."""
    return f"PO {po_number}" + (f"{_NOTE_SEPARATOR}{notes}" if notes else "")


def split_po_note(notes: str | None) -> tuple[str | None, str | None]:
    """(our PO, the rest of the notes) from an order's notes; (None, notes) when they carry no PO marker."""
    if notes is None:
        return None, None
    match = _PO_NOTE.match(notes.strip())
    if match is None:
        return None, notes
    return match["po"], match["rest"]


def _caveats(*, requires_approval: bool) -> list[str]:
    return [
        "Prices are the plant's stored part costs in Factory AI (an estimate), not a supplier quote.",
        "Factory AI computes tax and shipping when it creates the order, so they are not in this total; "
        "the placed order reports Factory AI's full total.",
        "Factory AI creates the order as a draft in the plant's system; it reaches the supplier through "
        "Factory AI's approval and send steps.",
        "The order is flagged for approval in Factory AI."
        if requires_approval
        else "Factory AI refuses orders above the plant's approval limit unless options.requires_approval is true "
        "(with options.justification).",
    ]


def _line(item: wire.ItemRow, currency: str) -> OrderLine:
    return OrderLine(
        part_id=item.part_id,
        part_number=clean_text(item.part_number or item.part_id or "?", 80),
        name=_clean(item.part_name, 200),
        quantity=item.quantity or 0,
        unit_price=_money(item.unit_cost, currency),
        line_total=_money(item.total_cost, currency),
        vendor_status=_clean(item.status, 40),
        received_quantity=item.received_quantity,
    )


def _money(cost: JsonMoney | None, currency: str) -> Money | None:
    return cost.money(currency) if cost else None


def _clean(text: str | None, limit: int) -> str | None:
    return clean_text(text, limit) if text else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _our_field(sent: str) -> str:
    match = _ITEM_FIELD.match(sent)
    if match:
        index, sub = match.groups()
        if sub == "partId":
            return f"items[{index}].part_id"
        return f"items[{index}]" + (f".{_snake(sub)}" if sub else "")
    head, _, rest = sent.partition(".")
    mapped = _WIRE_FIELDS.get(head)
    if mapped is None:
        return clean_text(sent, 60)
    return mapped + (f".{_snake(rest)}" if rest else "")


def _snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _safe(value: JsonValue, depth: int = 0) -> JsonValue:
    """Vendor JSON for Order.details: text cleaned, keys snake_case, size bounded."""
    if isinstance(value, str):
        return clean_text(value, 300)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 4:
        return None
    if isinstance(value, dict):
        return {_snake(clean_text(k, 60)): _safe(v, depth + 1) for k, v in list(value.items())[:40]}
    return [_safe(v, depth + 1) for v in value[:50]]


def _exact_or_all(query: str, rows: list[wire.PartRow]) -> list[wire.PartRow]:
    # A part number (or id) that matches exactly is what was meant; otherwise every search hit is.
    needle = query.strip().casefold()
    exact = [row for row in rows if needle in (row.part_number.casefold(), row.part_id.casefold())]
    return exact or rows


def _described(row: wire.PartRow) -> tuple[str, str, str]:
    number = clean_text(row.part_number, 80)
    name = clean_text(row.name or number, 200)
    # What Factory AI's search looks at: number, name, description and manufacturer.
    text = " ".join(field or "" for field in (row.part_number, row.name, row.description, row.manufacturer))
    return number, name, text


def create(key: str, settings: FactoryAISettings, http: httpx2.AsyncClient) -> FactoryAIClient:
    return FactoryAIClient(
        key,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value(),
        http=http,
        supplier_id=settings.supplier_id,
        shipping_address=settings.shipping_address,
        site=settings.site,
        currency=settings.currency,
        policy=settings.http_policy(),
    )


_: type[VendorClient] = FactoryAIClient


EXAMPLE = """\
[vendors.factoryai]
kind = "factoryai"
base_url = "https://api.acme.f7i.ai/prod"   # https://api.<tenant>.f7i.ai/prod
api_key = "${FACTORYAI_API_KEY}"             # a read/write key (Settings > API Keys)
supplier_id = "supplier-001"                 # default supplier when an order's options give none
# site = "plant-1"                           # count stock at this site only (default: all sites)
# currency = "USD"                           # the tenant's currency (parts carry none of their own)

[vendors.factoryai.shipping_address]         # the default ship-to
name = "Main Warehouse"
address1 = "123 Industrial Way"
city = "Springfield"
state = "CA"
postal_code = "90210"
country = "USA"
"""

KIND = VendorKind(
    kind="factoryai",
    settings=FactoryAISettings,
    create=create,
    example=EXAMPLE,
    simulator="parts_mcp.sandbox.factoryai:SIMULATED",
)
