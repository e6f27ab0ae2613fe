"""Shopmonkey v3 (auto-repair shop system): inventory parts, and the shop's purchase orders to its suppliers.

Documented (seeds/004, docs/vendors.md section 5): GET /purchase_order (``limit`` silently capped
at 100, ``skip``, ``where`` as JSON, ``meta.hasMore``/``meta.total``), GET and DELETE
/purchase_order/:id, the ``{success, data, meta}`` envelope and ``{success: false, code, message}``
errors, money as integer cents with no currency. Inferred from a third-party client: POST
/inventory_part/search with ``{limit, skip, where}`` and no free-text filter, so names and numbers
are matched here. Not in the public API at all: creating a purchase order, so placing is a
capability this vendor does not have; POs are made in Shopmonkey's web app and tracked here.

The seed's example JSON and the schema disagree on names (``fullfiledDate``/``fulfilledDate``,
``totalPriceCents``/``totalCostCents``, ``number`` string/integer, flat ``items[]``/``parts``+
``tires``): every one is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from urllib.parse import quote

import httpx2
from pydantic import Field, SecretStr

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
    Suggestion,
)
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors._search import MAX_SUGGESTED_QUERIES, name_matches, squash, suggest
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
    VendorNotFound,
    VendorSettingsBase,
    clean_text,
    error_for_status,
)

PAGE = 100  # the API's silent cap on `limit`: asking for more returns 100 anyway
MAX_INVENTORY_PAGES = 50  # 5,000 parts: a bound on one look-up's reads, far above a shop's stock list
MAX_MATCHES_PER_QUERY = 25  # a broad name ("filter") should not flood the model with a whole shelf


def place_not_supported(key: str) -> str:
    """What to tell the user instead of an order: why not, and what to do."""
    return (
        "Shopmonkey's public API cannot create purchase orders (it can only read and delete them), so this "
        "server cannot place this order. Create the purchase order in Shopmonkey's web app (or through a "
        "parts-provider cart such as PartsTech); then track it here with get_order or list_purchase_orders "
        f"(vendor {key!r}). Nothing was ordered."
    )


_STATUSES = {
    "draft": OrderStatus.DRAFT,
    "ordered": OrderStatus.ORDERED,
    "received": OrderStatus.RECEIVED,
    "fulfilled": OrderStatus.COMPLETED,
    "fullfiled": OrderStatus.COMPLETED,  # the older generated models' spelling
    "cancelled": OrderStatus.CANCELLED,
    "canceled": OrderStatus.CANCELLED,
}
# Fastify-style validation messages name the field as "<location>/<path> must ...".
_FIELD_IN_MESSAGE = re.compile(r"\b(?:querystring|body|params|headers)[/.]([A-Za-z_][\w.\[\]/]*)")
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ShopmonkeySettings(VendorSettingsBase):
    kind: Literal["shopmonkey"]
    base_url: str = "https://api.shopmonkey.cloud/v3"
    api_key: SecretStr
    location_id: str | None = Field(
        default=None, description="Only this shop location's inventory and purchase orders (default: all)"
    )
    # Shopmonkey sends cents with no currency field: the shop's currency is implied, so it is configured.
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class ShopmonkeyClient:
    kind = "shopmonkey"
    display_name = "Shopmonkey"
    capabilities = Capabilities(lookup=True, place=False, get=True, list=True)
    options_help = "Shopmonkey's API cannot create purchase orders: create them in Shopmonkey, then track them here."
    search_help = (
        "Shopmonkey: the shop's own inventory (what the shop stocks), matched by part number or by the words of "
        "the part's name."
    )
    status_help: Mapping[OrderStatus, str] = {
        OrderStatus.DRAFT: "a draft purchase order in Shopmonkey; the shop orders it in Shopmonkey itself",
    }

    def __init__(
        self,
        key: str,
        *,
        base_url: str,
        api_key: str,
        http: httpx2.AsyncClient,
        location_id: str | None = None,
        currency: str = "USD",
        policy: HttpPolicy | None = None,
    ) -> None:
        self.key = key
        self.location_id = location_id
        self.currency = currency
        self._http = VendorHttp(
            key,
            http,
            base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            map_error=self._map_error,
            policy=policy,
            secrets=[api_key],
        )

    # ------------------------------------------------------------------------------------ look-up

    async def lookup(self, queries: Sequence[str]) -> LookupResult:
        # The whole inventory is read anyway (the API has no text filter), so near misses cost no extra call.
        inventory = await self._inventory()
        parts: dict[str, Part] = {}
        missing: list[str] = []
        suggestions: list[Suggestion] = []
        for query in queries:
            matches = _match(inventory, query)
            if not matches:
                missing.append(query)
            for raw in matches[:MAX_MATCHES_PER_QUERY]:
                part = self._part(raw)
                if part is not None:
                    parts.setdefault(part.part_id, part)
        if len(missing) <= MAX_SUGGESTED_QUERIES:
            described = [_described(raw) for raw in inventory]
            suggestions = [s for query in missing for s in suggest(query, self.key, described)]
        not_found = [clean_text(q, 120) for q in missing]
        return LookupResult(parts=list(parts.values()), not_found=not_found, suggestions=suggestions)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # `lookup` already matched every name form and suggested from the whole inventory: nothing more to ask.
        return LookupResult(parts=[], not_found=list(queries))

    async def _inventory(self) -> list[dict[str, Any]]:
        where: dict[str, Any] = {"locationId": self.location_id} if self.location_id else {}
        records: dict[str, dict[str, Any]] = {}
        skip = 0
        for _ in range(MAX_INVENTORY_PAGES):
            # A search writes nothing: safe to retry.
            _, body = await self._http.request(
                "POST", "/inventory_part/search", json_body={"limit": PAGE, "skip": skip, "where": where}, retry=True
            )
            page, more = self._page(body)
            for raw in page:
                if raw.get("id") is not None and not raw.get("deleted") and self._at_location(raw):
                    records.setdefault(str(raw["id"]), raw)
            skip += len(page)
            if not page or not more:
                break
        return list(records.values())

    def _part(self, raw: Mapping[str, Any]) -> Part | None:
        part_id = raw.get("id")
        if part_id is None:
            return None
        # The inventory holds the shop's own stored prices, not a supplier's: the wholesale cost is what the
        # shop last paid (an estimate of the next purchase), the retail price is what it charges customers.
        # Neither is a quote; prefer the cost, and say which one it is.
        wholesale = self._cents(raw.get("wholesaleCostCents"))
        retail = self._cents(raw.get("retailCostCents"))
        notes = ["Shopmonkey's API cannot create purchase orders: order this part in Shopmonkey's web app."]
        if wholesale is not None:
            price, basis = wholesale, PriceBasis.ESTIMATE
            notes.insert(0, "Price is the shop's stored wholesale cost in Shopmonkey, not a supplier quote.")
            if retail is not None:
                notes.insert(1, f"Retail price to customers: {retail}.")
        else:
            price, basis = retail, PriceBasis.LIST
            if retail is not None:
                notes.insert(0, "No wholesale cost is stored: the price is the shop's retail price to customers.")
        number = raw.get("number")
        available = parse.integer(parse.first(raw, "availableQuantity", "quantity"))
        return Part(
            vendor=self.key,
            part_id=str(part_id),
            part_number=clean_text(number, 80) if number else "(no part number)",
            name=clean_text(raw.get("name") or number or part_id, 200),
            unit_price=price,
            price_basis=basis,
            available_quantity=available,
            # Nothing is orderable through this API; the part is listed for its price and stock.
            orderable=False,
            notes=notes,
        )

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        raise NotSupported(self.key, place_not_supported(self.key), capability="place")

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        raise NotSupported(self.key, place_not_supported(self.key), capability="place")

    async def find_order_by_po(self, po_number: str) -> Order | None:
        # Shopmonkey numbers its POs itself and this server never creates one, so there is nothing to reconcile.
        raise NotSupported(
            self.key, "Shopmonkey purchase orders are not created by this server.", capability="find_by_po"
        )

    async def get_order(self, order_id: str) -> Order:
        order_id = order_id.strip()
        # A model easily passes the PO number (an integer here) where Shopmonkey's own id is needed.
        hint = (
            f"Shopmonkey has no purchase order with id {clean_text(order_id, 60)!r}. order_id is Shopmonkey's id "
            "from list_purchase_orders, not the PO number; to find a PO by its number, call "
            "list_purchase_orders with po_number."
        )
        if not _ORDER_ID.match(order_id):
            # Not a Shopmonkey id: asking would only be a 404 (or, with a slash, another endpoint).
            raise VendorNotFound(self.key, hint, code="NOT_FOUND", status=None)
        try:
            _, body = await self._http.request("GET", f"/purchase_order/{quote(order_id, safe='')}", retry=True)
        except VendorNotFound as exc:
            raise VendorNotFound(self.key, hint, code=exc.code, status=exc.status) from exc
        data = body.get("data") if isinstance(body, dict) else None
        self._check_success(body)
        if not isinstance(data, dict) or data.get("id") is None:
            raise VendorBadResponse(self.key, "Shopmonkey answered without the purchase order")
        return self._order(data)

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        if query.status is not None and query.status not in _STATUSES.values():
            return []  # no Shopmonkey status maps to it, so no Shopmonkey PO can match
        where = self._where(query)
        found: dict[str, OrderSummary] = {}
        seen: set[str] = set()
        skip = 0
        # Integrators report result sets that shift between identical calls: dedupe by id, and stop on a page
        # that brings nothing new rather than trusting hasMore forever.
        while len(found) < max_orders:
            params: dict[str, Any] = {"limit": PAGE, "skip": skip}
            if where:
                params["where"] = json.dumps(where, separators=(",", ":"))
            _, body = await self._http.request("GET", "/purchase_order", params=params, retry=True)
            page, more = self._page(body)
            new = [raw for raw in page if raw.get("id") is not None and str(raw["id"]) not in seen]
            seen.update(str(raw["id"]) for raw in new)
            for raw in new:
                if self._at_location(raw):
                    summary = self._summary(raw)
                    found[summary.order_id] = summary
            # Advance by what arrived, not by what was asked: a lower server-side cap must not skip orders.
            skip += len(page)
            if not new or not more:
                break
        return list(found.values())[:max_orders]

    def _where(self, query: OrderQuery) -> dict[str, Any]:
        # Narrowing on the server keeps big shops under max_orders; the service re-applies every filter,
        # so a filter the API ignores (date filters are reported ignored on some lists) costs nothing.
        where: dict[str, Any] = {}
        if self.location_id:
            where["locationId"] = self.location_id
        if query.status is not None:
            # The documented, capitalised spelling of the first status that maps there.
            where["status"] = next(raw for raw, status in _STATUSES.items() if status is query.status).capitalize()
        if query.po_number is not None:
            # Shopmonkey numbers its POs with integers; anything else is left to the service's own filter.
            number = parse.integer(query.po_number.strip())
            if number is not None:
                where["number"] = number
        created: dict[str, str] = {}
        if query.created_after is not None:
            created["gte"] = _iso_z(query.created_after)
        if query.created_before is not None:
            created["lte"] = _iso_z(query.created_before)  # inclusive here, exclusive in the service's re-check
        if created:
            where["createdDate"] = created  # bare gte/lte: the API drops Mongo's $gte silently
        return where

    def _order(self, raw: Mapping[str, Any]) -> Order:
        lines: list[OrderLine] = []
        details: dict[str, Any] = {}
        extra_charges: list[Money] = []
        for kind, id_field, entries in (
            ("part", "inventoryPartId", raw.get("parts")),
            ("tire", "inventoryTireId", raw.get("tires")),
        ):
            lines += [self._line(entry, entry.get(id_field), kind) for entry in _records(entries)]
        # The seed's older shape: one flat `items` list, each with a `type` and its own extra charges.
        for entry in _records(raw.get("items")):
            lines.append(self._line(entry, entry.get("inventoryItemId"), str(entry.get("type") or "item").lower()))
            for name in ("shippingChargeCents", "coreChargesCents", "exciseTaxCents"):
                charge = self._cents(entry.get(name))
                if charge is not None and charge.amount:
                    extra_charges.append(charge)
        # Fees (shipping, core charges, disposal ...) are not parts: no number, no quantity. They stay out of
        # `lines`, so the lines compare one to one with the parts and tires on the PO, and are listed in details
        # with their sum; the vendor's total includes them.
        fees = []
        for fee in _records(raw.get("fees")):
            amount = self._cents(fee.get("amountCents"))
            fees.append(
                {
                    "name": clean_text(fee.get("name") or "fee", 80),
                    "kind": clean_text(fee["kind"], 40) if fee.get("kind") else None,
                    "amount": amount.model_dump(mode="json") if amount else None,
                }
            )
            if amount is not None:
                extra_charges.append(amount)
        if fees:
            details["fees"] = fees
        if extra_charges:
            details["fees_total"] = Money.total(extra_charges, self.currency).model_dump(mode="json")

        priced = [line.line_total for line in lines if line.line_total is not None]
        subtotal = Money.total(priced, self.currency) if lines and len(priced) == len(lines) else None
        total = self._cents(parse.first(raw, "totalCostCents", "totalPriceCents"))
        vendor_status = str(raw.get("status") or "")
        vendor = raw.get("vendor")
        order = raw.get("order")
        for name, value in (
            ("vendor_name", vendor.get("name") if isinstance(vendor, dict) else None),
            ("vendor_id", raw.get("vendorId")),
            ("provider", raw.get("provider")),
            ("invoice_number", raw.get("invoiceNumber")),
            ("repair_order_id", raw.get("orderId")),
            ("repair_order_number", order.get("number") if isinstance(order, dict) else None),
            ("repair_order_name", order.get("coalescedName") or order.get("name") if isinstance(order, dict) else None),
            ("location_id", raw.get("locationId")),
        ):
            if value is not None and value != "":
                details[name] = clean_text(value, 200)
        for name, value in (
            ("ordered_at", raw.get("orderedDate")),
            ("fulfilled_at", parse.first(raw, "fulfilledDate", "fullfiledDate")),
        ):
            moment = parse.timestamp(value)
            if moment is not None:
                details[name] = moment.isoformat()
        return Order(
            vendor=self.key,
            order_id=str(raw["id"]),
            po_number=_po_number(raw.get("number")),
            status=self.map_status(vendor_status),
            vendor_status=clean_text(vendor_status, 40) or None,
            lines=lines,
            subtotal=subtotal,
            total=total,
            currency=self.currency if total is not None or subtotal is not None else None,
            created_at=parse.timestamp(raw.get("createdDate")),
            updated_at=parse.timestamp(raw.get("updatedDate")),
            notes=clean_text(raw["note"], 1000) if raw.get("note") else None,
            details=details,
        )

    def _line(self, raw: Mapping[str, Any], inventory_id: Any, kind: str) -> OrderLine:
        unit = self._cents(raw.get("costCents"))
        quantity = _quantity(raw.get("quantity"))
        number, name = raw.get("number"), raw.get("name")
        line_total = (
            Money(amount=unit.amount * quantity, currency=unit.currency).rounded()
            if unit is not None and quantity is not None
            else None
        )
        status = raw.get("status")
        return OrderLine(
            part_id=str(inventory_id) if inventory_id is not None else None,
            part_number=clean_text(number, 80) if number else f"({kind}, no number)",
            name=clean_text(name, 200) if name else None,
            # Quantities are numbers in the schema (fluids by the quart): a fraction shows rounded here, while
            # line_total stays exact.
            quantity=int(quantity.to_integral_value(ROUND_HALF_UP)) if quantity is not None else 0,
            unit_price=unit,
            line_total=line_total,
            vendor_status=clean_text(status, 40) if status else None,
            received_quantity=parse.integer(raw.get("receivedQuantity")),
        )

    def _summary(self, raw: Mapping[str, Any]) -> OrderSummary:
        vendor_status = str(raw.get("status") or "")
        return OrderSummary(
            vendor=self.key,
            order_id=str(raw["id"]),
            po_number=_po_number(raw.get("number")),
            status=self.map_status(vendor_status),
            vendor_status=clean_text(vendor_status, 40) or None,
            total=self._cents(parse.first(raw, "totalCostCents", "totalPriceCents")),
            created_at=parse.timestamp(raw.get("createdDate")),
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().casefold(), OrderStatus.UNKNOWN)

    # ------------------------------------------------------------------------------------ reading

    def _cents(self, raw: Any) -> Money | None:
        cents = parse.integer(raw)
        return Money.from_minor(cents, self.currency) if cents is not None else None

    def _at_location(self, raw: Mapping[str, Any]) -> bool:
        # `where.locationId` may be ignored by the API, so the location is checked on what comes back too.
        return self.location_id is None or raw.get("locationId") in (None, self.location_id)

    def _check_success(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("success") is False:
            # A 2xx that says it failed: not something to build an answer from.
            message = clean_text(body.get("message") or "no message", 200)
            raise VendorBadResponse(self.key, f"Shopmonkey answered success=false: {message}")

    def _page(self, body: Any) -> tuple[list[dict[str, Any]], bool]:
        """The records of one list page, and whether the API says more follow."""
        self._check_success(body)
        if isinstance(body, list):  # a bare array: tolerated, with no word on more pages
            data, meta = body, {}
        elif isinstance(body, dict):
            data, meta = body.get("data"), body.get("meta")
        else:
            raise VendorBadResponse(self.key, "Shopmonkey answered a list call without a list")
        if not isinstance(data, list):
            raise VendorBadResponse(self.key, "Shopmonkey answered a list call without a data array")
        records = [r for r in data if isinstance(r, dict)]
        meta = meta if isinstance(meta, dict) else {}
        has_more = meta.get("hasMore")
        # Without hasMore, a full page is the only hint that another may follow.
        more = bool(has_more) if isinstance(has_more, bool) else len(data) >= PAGE
        return records, more

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        body = data if isinstance(data, dict) else {}
        # The documented shape is flat; an `error` object (older APIs, gateways) is read as well.
        nested = body.get("error")
        source = nested if isinstance(nested, dict) else body
        code = str(source.get("code") or f"HTTP_{response.status_code}")
        raw_message = source.get("message") or (nested if isinstance(nested, str) else None) or response.reason_phrase
        message = clean_text(raw_message or "no message", 300)
        status = response.status_code
        kw: dict[str, Any] = {"code": code, "status": status}
        if status == 401:
            return VendorAuthError(
                self.key,
                "Shopmonkey rejected the API key (missing, wrong or revoked); an admin creates keys in "
                "Settings > Integration > API Keys.",
                **kw,
            )
        if status == 403:
            return VendorAuthError(self.key, "Shopmonkey: the API key lacks permission for this.", **kw)
        return error_for_status(self.key, "Shopmonkey", response, message, field=_field(body, message), code=code)


def _field(body: Mapping[str, Any], message: str) -> str | None:
    """The field a refusal names: `data.field`, the first of `data.fields`/`errors`, else the message."""
    data = body.get("data")
    candidates: list[Any] = []
    if isinstance(data, dict):
        candidates += [data.get("field"), data.get("path")]
        fields = data.get("fields")
        if isinstance(fields, list) and fields:
            candidates.append(fields[0])
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        candidates += [errors[0].get("field"), errors[0].get("instancePath")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            found = _FIELD_IN_MESSAGE.search(candidate)
            return clean_text(found.group(1) if found else candidate.strip("/"), 80)
    found = _FIELD_IN_MESSAGE.search(message)
    return found.group(1) if found else None


def _records(raw: Any) -> list[dict[str, Any]]:
    return [entry for entry in raw if isinstance(entry, dict)] if isinstance(raw, list) else []


def _po_number(raw: Any) -> str | None:
    # `number` is an integer in the schema and a string in older records; 1042.0 is still PO 1042.
    if raw is None or isinstance(raw, bool):
        return None
    number = parse.integer(raw)
    return str(number) if number is not None else clean_text(raw, 40) or None


def _quantity(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw).strip())
    except ArithmeticError:
        return None
    return value if value.is_finite() else None


def _iso_z(moment: datetime) -> str:
    # The API's own format (milliseconds, Z), so its text comparison of dates orders them correctly.
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _match(inventory: Sequence[Mapping[str, Any]], query: str) -> list[Mapping[str, Any]]:
    """Inventory records for one query: the exact part number if there is one, else every word of the query.

    Part numbers are compared without case, spaces or punctuation ("17d-1210ch" is 17D1210CH). A query
    word, singular or plural, matches the start of a word in the name or number, in any order: "oil"
    finds oil filters but not coils, "pads brake" finds a Brake Pad Set.
    """
    compact = squash(query)
    if not compact:
        return []
    exact = [r for r in inventory if r.get("number") and squash(str(r["number"])) == compact]
    if exact:
        return exact
    return [r for r in inventory if name_matches(query, f"{r.get('name') or ''} {r.get('number') or ''}")]


def _described(raw: Mapping[str, Any]) -> tuple[str, str]:
    number = clean_text(raw.get("number") or "", 80)
    return number, clean_text(raw.get("name") or number, 200)


def create(key: str, settings: ShopmonkeySettings, http: httpx2.AsyncClient) -> ShopmonkeyClient:
    return ShopmonkeyClient(
        key,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value(),
        http=http,
        location_id=settings.location_id,
        currency=settings.currency,
        policy=settings.http_policy(),
    )


_: type[VendorClient] = ShopmonkeyClient
