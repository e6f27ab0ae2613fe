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

import functools
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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

PAGE = 100  # orders per list call; the API documents no maximum, the simulator allows 100
SEARCH_LIMIT = 100  # parts / inventory records per search
CONCURRENCY = 4  # parallel look-up calls, to stay clear of the (undocumented) rate limit
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
_DETAIL_KEYS = (
    "orderNumber",
    "priority",
    "supplierId",
    "supplierName",
    "supplierContact",
    "requestedBy",
    "requestedByName",
    "approvedBy",
    "approvedByName",
    "orderDate",
    "approvedDate",
    "sentDate",
    "requestedDeliveryDate",
    "expectedDeliveryDate",
    "actualDeliveryDate",
    "trackingNumber",
    "invoiceNumber",
    "paymentTerms",
    "shippingMethod",
    "shippingAddress",
    "requiresApproval",
    "approvalRequired",
    "justification",
    "statusHistory",
    "attachments",
)


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
    capabilities = Capabilities(lookup=True, place=True, get=True, list=True, idempotency_key=False, find_by_po=True)
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
        searched = await self._search({q: q for q in queries})
        matches = {q: _exact_or_all(q, records) for q, records in searched.items()}
        parts = await self._with_stock(raw for q in queries for raw in matches.get(q, []))
        not_found = [clean_text(q, 120) for q in queries if not matches.get(q)]
        return LookupResult(parts=parts, not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # `search` matches text (how is undocumented): a name goes as its most selective word and a part
        # number as its first two thirds, one call each; what comes back is judged here.
        terms = {q: number_prefix(q) if is_part_number(q) else next(iter(search_words(q)), None) for q in queries}
        searched = await self._search({q: term for q, term in terms.items() if term})
        judged = judge(self.key, {q: searched.get(q, []) for q in queries}, _described)
        parts = await self._with_stock(raw for hits in judged.found.values() for raw in hits)
        return LookupResult(parts=parts, not_found=judged.not_found, suggestions=judged.suggestions)

    async def _search(self, terms: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
        """GET /parts?search=<term> for each query: the usable part records, by query."""
        found: dict[str, list[dict[str, Any]]] = {}

        async def search(query: str, term: str) -> None:
            # Reads write nothing: safe to retry.
            _, data = await self._http.request(
                "GET", "/parts", params={"search": term, "limit": SEARCH_LIMIT}, retry=True
            )
            records = [r for r in _records(data) if isinstance(r, dict) and r.get("partId") and r.get("partNumber")]
            found[query] = [r for r in records if not self._site or r.get("site") in (None, self._site)]

        await _gather([functools.partial(search, q, term) for q, term in terms.items()])
        return found

    async def _with_stock(self, raws: Iterable[dict[str, Any]]) -> list[Part]:
        found: dict[str, dict[str, Any]] = {}
        for raw in raws:
            found.setdefault(str(raw["partId"]), raw)
        stock = await self._stock(found.values())
        return [self._part(raw, stock.get(part_id)) for part_id, raw in found.items()]

    async def _stock(self, parts: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Inventory records per partId, looked up by each part's number and joined on partId."""
        records: dict[str, list[dict[str, Any]]] = {}
        wanted = {str(raw["partId"]): str(raw["partNumber"]) for raw in parts}

        async def inventory(number: str) -> None:
            _, data = await self._http.request(
                "GET", "/inventory", params={"search": number, "limit": SEARCH_LIMIT}, retry=True
            )
            for record in _records(data):
                if not isinstance(record, dict) or str(record.get("partId")) not in wanted:
                    continue
                if self._site and record.get("site") not in (None, self._site):
                    continue
                bucket = records.setdefault(str(record["partId"]), [])
                if record not in bucket:
                    bucket.append(record)

        await _gather([functools.partial(inventory, n) for n in sorted(set(wanted.values()))])
        return records

    def _part(self, raw: dict[str, Any], stock: list[dict[str, Any]] | None) -> Part:
        quantities = [parse.integer(r.get("quantity")) for r in stock or []]
        available = sum(q for q in quantities if q is not None) if stock and None not in quantities else None
        notes = [
            "Price is the plant's stored cost for this part in Factory AI (an estimate, not a supplier quote); "
            "Factory AI adds tax and shipping when the order is created."
        ]
        if available is not None:
            where = f" at {clean_text(self._site, 60)}" if self._site else ""
            minimum = parse.integer(stock[0].get("minStockLevel")) if stock and len(stock) == 1 else None
            low = f"; at or below its minimum of {minimum}" if minimum is not None and available <= minimum else ""
            notes.append(f"Stock is the plant's own on-hand quantity{where}, not the supplier's{low}.")
        unit = raw.get("unit")
        if isinstance(unit, str) and unit.strip() and unit.strip().lower() != "each":
            notes.append(f"Unit: {clean_text(unit, 30)}.")
        return Part(
            vendor=self.key,
            part_id=str(raw["partId"]),
            part_number=clean_text(raw["partNumber"], 80),
            name=clean_text(raw.get("name") or raw["partNumber"], 200),
            manufacturer=clean_text(raw["manufacturer"], 120) if raw.get("manufacturer") else None,
            unit_price=self._money(raw.get("cost")),
            price_basis=PriceBasis.ESTIMATE,
            available_quantity=available,
            notes=notes,
        )

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        options = self._resolve_options(request.options or {})
        # Re-read each part so the preview shows today's stored cost (and a price change needs a new preview).
        ids = [parts[item.part_id].part_id for item in request.items]
        fresh = await self._fetch_parts(ids)
        lines: list[OrderLine] = []
        for index, (item, part_id) in enumerate(zip(request.items, ids, strict=True)):
            raw = fresh.get(part_id)
            known = parts[item.part_id]
            if raw is None:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}]: {known.part_number} is no longer in Factory AI's parts list; look it up again.",
                    field=f"items[{index}].part_id",
                )
            cost = self._money(raw.get("cost"))
            if cost is None:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}]: {known.part_number} has no stored cost in Factory AI, so the order cannot be "
                    "priced; set the part's cost in Factory AI first.",
                    field=f"items[{index}].part_id",
                )
            lines.append(
                OrderLine.priced(
                    part_id=part_id,
                    part_number=clean_text(raw.get("partNumber") or known.part_number, 80),
                    name=clean_text(raw.get("name") or known.name, 200),
                    quantity=item.quantity,
                    unit_price=cost,
                )
            )
        subtotal = Money.total((line.line_total for line in lines if line.line_total), self._currency)
        caveats = [
            "Prices are the plant's stored part costs in Factory AI (an estimate), not a supplier quote.",
            "Factory AI computes tax and shipping when it creates the order, so they are not in this total; "
            "the placed order reports Factory AI's full total.",
            "Factory AI creates the order as a draft in the plant's system; it reaches the supplier through "
            "Factory AI's approval and send steps.",
        ]
        if options["requires_approval"]:
            caveats.append("The order is flagged for approval in Factory AI.")
        else:
            caveats.append(
                "Factory AI refuses orders above the plant's approval limit unless options.requires_approval is true "
                "(with options.justification)."
            )
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
            caveats=caveats,
        )

    async def resolve_parts(self, part_ids: Sequence[str]) -> dict[str, Part]:
        # A part_id is the plant's own partId, stable for the record's life: reading that record re-finds it.
        fresh = await self._fetch_parts(part_ids)
        return {
            part_id: self._part(raw, None)
            for part_id, raw in fresh.items()
            if raw.get("partNumber") and (not self._site or raw.get("site") in (None, self._site))
        }

    async def _fetch_parts(self, part_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        fresh: dict[str, dict[str, Any]] = {}

        async def fetch(part_id: str) -> None:
            try:
                _, data = await self._http.request("GET", f"/parts/{quote(part_id, safe='')}", retry=True)
            except VendorNotFound:
                return
            raw = _unwrap(data, "part")
            if isinstance(raw, dict) and str(raw.get("partId", part_id)) == part_id:
                fresh[part_id] = raw

        await _gather([functools.partial(fetch, p) for p in dict.fromkeys(part_ids)])
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
        supplier = raw.get("supplier_id", self._supplier_id)
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
        priority = raw.get("priority", "normal")
        if priority not in PRIORITIES:
            raise self._bad_option("priority", f"options.priority must be one of {', '.join(PRIORITIES)}.")
        resolved: dict[str, Any] = {"supplier_id": clean_text(supplier, 100), "priority": priority}

        if raw.get("requested_delivery_date") is not None:
            resolved["requested_delivery_date"] = self._delivery_date(raw["requested_delivery_date"]).isoformat()

        if raw.get("shipping_address") is not None:
            resolved["shipping_address"] = self._shipping_address(raw["shipping_address"])
        elif self._address is not None:
            resolved["shipping_address"] = self._address.model_dump()

        requires_approval = raw.get("requires_approval", False)
        if not isinstance(requires_approval, bool):
            raise self._bad_option("requires_approval", "options.requires_approval must be true or false.")
        resolved["requires_approval"] = requires_approval
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
        if justification:
            resolved["justification"] = justification
        return resolved

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
        if not isinstance(value, Mapping):
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
            body["shippingAddress"] = {
                "name": address["name"],
                "address1": address["address1"],
                "city": address["city"],
                "state": address["state"],
                "postalCode": address["postal_code"],
                "country": address["country"],
            }
        if options.get("justification"):
            body["justification"] = options["justification"]
        # No idempotency key at Factory AI: a repeated POST would create a second order. After a lost
        # answer the service looks the order up by PO (find_order_by_po) instead of resending.
        _, data = await self._http.request("POST", "/part-orders", json_body=body, retry=False)
        return self._order(data, po_number=request.po_number)

    async def get_order(self, order_id: str) -> Order:
        _, data = await self._http.request("GET", f"/part-orders/{quote(order_id, safe='')}", retry=True)
        return self._order(data)

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        params: dict[str, Any] = {"limit": PAGE}
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
            async for raw in pages:
                summary = self._summary(raw)
                if query.matches(summary):
                    result.append(summary)
                    if len(result) >= max_orders:
                        break
        return result

    async def find_order_by_po(self, po_number: str) -> Order | None:
        async with aclosing(self._pages({"limit": PAGE, "search": po_number})) as pages:
            # `search` is a substring match: only an exact "PO <po>" marker is ours (not PO-12 for PO-1).
            candidates = [raw async for raw in pages if split_po_note(raw.get("notes"))[0] == po_number]
        if not candidates:
            return None
        # Two orders carrying our PO would mean someone re-keyed it by hand: ours is the first created.
        first = min(candidates, key=lambda r: str(parse.first(r, "createdAt", "orderDate") or ""))
        try:
            return await self.get_order(str(first["id"]))
        except (VendorUnavailable, VendorRateLimited, VendorBadResponse):
            return self._order(first)

    async def _pages(self, params: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        offset = 0
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            _, data = await self._http.request("GET", "/part-orders", params={**params, "offset": offset}, retry=True)
            if isinstance(data, dict):
                records = data.get("partOrders") or data.get("data") or []
                pagination = data.get("pagination") if isinstance(data.get("pagination"), dict) else None
            else:
                records, pagination = (data if isinstance(data, list) else []), None
            records = [r for r in records if isinstance(r, dict) and r.get("id") is not None]
            fresh = [r for r in records if str(r["id"]) not in seen]
            for raw in fresh:
                seen.add(str(raw["id"]))
                yield raw
            more = pagination.get("hasMore") if pagination else None
            if more is None:
                more = len(records) >= params["limit"]
            if not more or not fresh:
                return
            offset += len(records)

    def _summary(self, raw: dict[str, Any]) -> OrderSummary:
        totals = _object(raw.get("totals"))
        currency = str(raw.get("currency") or self._currency)
        vendor_status = clean_text(raw["status"], 40) if raw.get("status") else None
        return OrderSummary(
            vendor=self.key,
            order_id=str(raw["id"]),  # an id is checked, never altered (domain.VendorId)
            po_number=self._po_number(raw),
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            total=self._money(totals.get("total"), currency),
            created_at=parse.timestamp(parse.first(raw, "createdAt", "orderDate")),
        )

    def _po_number(self, raw: dict[str, Any], fallback: str | None = None) -> str | None:
        # Our PO when the notes carry our marker (orders this server placed); otherwise Factory AI's own
        # orderNumber ("PO-2024-002"), which is the plant's purchase order number for orders made in its UI.
        po, _ = split_po_note(raw.get("notes"))
        if po:
            return po
        if fallback:
            return fallback
        return clean_text(raw["orderNumber"], 100) if raw.get("orderNumber") else None

    def _order(self, data: Any, *, po_number: str | None = None) -> Order:
        raw = _unwrap(data, "partOrder")
        if not isinstance(raw, dict) or not raw.get("id"):
            raise VendorBadResponse(self.key, "Factory AI answered without a part order id")
        currency = str(raw.get("currency") or self._currency)
        totals = _object(raw.get("totals"))
        lines = [
            OrderLine(
                part_id=str(item["partId"]) if item.get("partId") is not None else None,
                part_number=clean_text(item.get("partNumber") or item.get("partId") or "?", 80),
                name=clean_text(item["partName"], 200) if item.get("partName") else None,
                quantity=parse.integer(item.get("quantity")) or 0,
                unit_price=self._money(item.get("unitCost"), currency),
                line_total=self._money(item.get("totalCost"), currency),
                vendor_status=clean_text(item["status"], 40) if item.get("status") else None,
                received_quantity=parse.integer(item.get("receivedQuantity")),
            )
            for item in raw.get("items") or []
            if isinstance(item, dict)
        ]
        vendor_status = clean_text(raw["status"], 40) if raw.get("status") else None
        _, user_notes = split_po_note(raw.get("notes"))
        return Order(
            vendor=self.key,
            order_id=str(raw["id"]),  # an id is checked, never altered (domain.VendorId)
            po_number=self._po_number(raw, po_number),
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=lines,
            subtotal=self._money(totals.get("subtotal"), currency),
            tax=self._money(totals.get("tax"), currency),
            shipping=self._money(totals.get("shipping"), currency),
            total=self._money(totals.get("total"), currency),
            currency=currency,
            created_at=parse.timestamp(parse.first(raw, "createdAt", "orderDate")),
            updated_at=parse.timestamp(raw.get("updatedAt")),
            notes=clean_text(user_notes, TEXT_LIMIT) if user_notes else None,
            details={_snake(k): _safe(raw[k]) for k in _DETAIL_KEYS if raw.get(k) is not None and raw.get(k) != []},
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().lower(), OrderStatus.UNKNOWN)

    def _money(self, raw: Any, currency: str | None = None) -> Money | None:
        value = parse.money(raw, currency or self._currency)
        if value is None:
            return None
        # 75.5 reads as "75.50" when that is exact; an amount with more decimals is kept as sent.
        rounded = value.rounded()
        return rounded if rounded.amount == value.amount else value

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        body = data if isinstance(data, dict) else {}
        status = response.status_code
        error = clean_text(body.get("error") or body.get("message") or response.reason_phrase or "no message", 200)
        reason = clean_text(body["reason"], 300) if body.get("reason") else None
        details = _object(body.get("details"))
        code = clean_text(body["code"], 60) if body.get("code") else f"HTTP_{status}"
        kw: dict[str, Any] = {"code": code, "status": status}
        said = error + (f": {reason}" if reason else "")
        if status == 400 or (400 <= status < 500 and details):
            problems = [(str(k), v) for k, v in list(details.items())[:10]]
            listed = "; ".join(f"{_our_field(k)} ({clean_text(k, 60)}): {clean_text(v, 200)}" for k, v in problems)
            return VendorInvalidRequest(
                self.key,
                f"Factory AI refused the request: {said}" + (f" — {listed}" if listed else "") + ".",
                field=_our_field(problems[0][0]) if problems else None,
                **kw,
            )
        if status == 401:
            return VendorAuthError(self.key, "Factory AI rejected the API key (missing, expired or revoked).", **kw)
        if status == 403:
            if reason:
                # `{error, reason}` is Factory AI's policy answer (e.g. an approval-amount limit): the key works,
                # this order is not allowed as it stands.
                hint = (
                    " Orders above the plant's approval limit need options.requires_approval=true with "
                    "options.justification."
                    if re.search(r"approv|above|limit|\$", reason, re.IGNORECASE)
                    else ""
                )
                return VendorConflict(
                    self.key,
                    f"Factory AI refused this by policy ({said}); this is not a credentials problem.{hint}",
                    code=code if body.get("code") else "FORBIDDEN_BY_POLICY",
                    status=status,
                )
            return VendorAuthError(
                self.key, f"Factory AI refused access ({said}); the API key may be read-only or lack permission.", **kw
            )
        if status == 404:
            which = parse.first(body, "orderId", "partId")
            return VendorNotFound(
                self.key, f"Factory AI: {error}" + (f" ({clean_text(which, 100)})" if which else "") + ".", **kw
            )
        if status == 409:
            return VendorConflict(self.key, f"Factory AI refused: {said}.", **kw)
        if status == 429:
            return VendorRateLimited(
                self.key, "Factory AI is rate limiting.", retry_after=retry_after_seconds(response), **kw
            )
        if status >= 500:
            # Factory AI never promises a failed write was rolled back: for a POST the outcome is unknown.
            return VendorUnavailable(self.key, f"Factory AI failed ({status}: {error}).", not_processed=False, **kw)
        return VendorInvalidRequest(self.key, f"Factory AI refused the request ({status}): {said}.", **kw)


# ------------------------------------------------------------------------------------------ helpers


def po_note(po_number: str, notes: str | None) -> str:
    """The order's notes with our PO at the start, where the list's `search` finds it."""
    return f"PO {po_number}" + (f"{_NOTE_SEPARATOR}{notes}" if notes else "")


def split_po_note(notes: Any) -> tuple[str | None, str | None]:
    """(our PO, the rest of the notes) from an order's notes; (None, notes) when they carry no PO marker."""
    if not isinstance(notes, str):
        return None, None
    match = _PO_NOTE.match(notes.strip())
    if match is None:
        return None, notes
    return match["po"], match["rest"]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _records(data: Any) -> list[Any]:
    """A bare array as documented; an enveloped one is tolerated."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("parts", "inventory", "items", "data", "results"):
            if isinstance(data.get(key), list):
                return data[key]
    return []


def _unwrap(data: Any, key: str) -> Any:
    if isinstance(data, dict) and "id" not in data and "partId" not in data:
        for name in (key, "data"):
            if isinstance(data.get(name), dict):
                return data[name]
    return data


def _our_field(wire: str) -> str:
    match = _ITEM_FIELD.match(wire)
    if match:
        index, sub = match.groups()
        if sub == "partId":
            return f"items[{index}].part_id"
        return f"items[{index}]" + (f".{_snake(sub)}" if sub else "")
    head, _, rest = wire.partition(".")
    mapped = _WIRE_FIELDS.get(head)
    if mapped is None:
        return clean_text(wire, 60)
    return mapped + (f".{_snake(rest)}" if rest else "")


def _snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _safe(value: Any, depth: int = 0) -> Any:
    """Vendor JSON for Order.details: text cleaned, keys snake_case, size bounded."""
    if isinstance(value, str):
        return clean_text(value, 300)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 4:
        return None
    if isinstance(value, Mapping):
        return {_snake(clean_text(k, 60)): _safe(v, depth + 1) for k, v in list(value.items())[:40]}
    if isinstance(value, list):
        return [_safe(v, depth + 1) for v in value[:50]]
    return clean_text(value, 300)


def _exact_or_all(query: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A part number (or id) that matches exactly is what was meant; otherwise every search hit is.
    needle = query.strip().casefold()
    exact = [r for r in records if needle in (str(r["partNumber"]).casefold(), str(r["partId"]).casefold())]
    return exact or records


def _described(raw: dict[str, Any]) -> tuple[str, str, str]:
    number = clean_text(raw["partNumber"], 80)
    name = clean_text(raw.get("name") or number, 200)
    # What Factory AI's search looks at: number, name, description and manufacturer.
    text = " ".join(str(raw.get(k) or "") for k in ("partNumber", "name", "description", "manufacturer"))
    return number, name, text


async def _gather(calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run `calls` a few at a time; the first VendorError is raised as itself (not inside an ExceptionGroup)."""
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    errors: list[VendorError] = []

    async def run(call: Callable[[], Awaitable[None]]) -> None:
        async with limiter:
            if errors:
                return  # one failure fails the whole call: skip the rest
            try:
                await call()
            except VendorError as exc:
                errors.append(exc)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)
    if errors:
        raise errors[0]


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
