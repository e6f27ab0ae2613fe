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
``tires``): every one is read, by the wire models in `parts_mcp.vendors.wire.shopmonkey`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP
from typing import TYPE_CHECKING, Any, Literal, TypeVar
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
from parts_mcp.vendors.registry import VendorKind
from parts_mcp.vendors.wire import LazyModule, Wire, read

if TYPE_CHECKING:
    from parts_mcp.vendors.wire import shopmonkey as wire
else:
    wire = LazyModule("parts_mcp.vendors.wire.shopmonkey")

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
# A page's record model, as `_page` reads it.
R = TypeVar("R", bound=Wire)


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
    # No options: what a caller is told instead of an order (the service refuses with it, naming no options).
    options_help = (
        "Shopmonkey's public API cannot create purchase orders (it can only read and delete them), so this "
        "server cannot place this order. Create the purchase order in Shopmonkey's web app (or through a "
        "parts-provider cart such as PartsTech); then track it here with get_order or list_purchase_orders. "
        "Nothing was ordered."
    )
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
            for part_id, record in matches[:MAX_MATCHES_PER_QUERY]:
                part = self._part(part_id, record)
                parts.setdefault(part.part_id, part)
        if len(missing) <= MAX_SUGGESTED_QUERIES:
            described = [_described(record) for record in inventory.values()]
            suggestions = [s for query in missing for s in suggest(query, self.key, described)]
        not_found = [clean_text(q, 120) for q in missing]
        return LookupResult(parts=list(parts.values()), not_found=not_found, suggestions=suggestions)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # `lookup` already matched every name form and suggested from the whole inventory: nothing more to ask.
        return LookupResult(parts=[], not_found=list(queries))

    async def _inventory(self) -> dict[str, wire.InventoryPart]:
        """The stocked (not deleted) parts at this location, by id."""
        where: dict[str, Any] = {"locationId": self.location_id} if self.location_id else {}
        records: dict[str, wire.InventoryPart] = {}
        skip = 0
        for _ in range(MAX_INVENTORY_PAGES):
            # A search writes nothing: safe to retry.
            _, body = await self._http.request(
                "POST",
                "/inventory_part/search",
                json_body={"limit": wire.PAGE, "skip": skip, "where": where},
                retry=True,
            )
            page = self._page(wire.Page[wire.InventoryPart], body, "inventory search")
            for record in page.data:
                if record.id is not None and not record.deleted and self._at_location(record.location_id):
                    records.setdefault(record.id, record)
            skip += len(page.data)
            if not page.data or not page.more:
                break
        return records

    def _part(self, part_id: str, record: wire.InventoryPart) -> Part:
        # The inventory holds the shop's own stored prices, not a supplier's: the wholesale cost is what the
        # shop last paid (an estimate of the next purchase), the retail price is what it charges customers.
        # Neither is a quote; prefer the cost, and say which one it is.
        wholesale, retail = record.wholesale(self.currency), record.retail(self.currency)
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
        return Part(
            vendor=self.key,
            part_id=part_id,
            part_number=clean_text(record.number, 80) if record.number else "(no part number)",
            name=clean_text(record.name or record.number or part_id, 200),
            unit_price=price,
            price_basis=basis,
            available_quantity=record.available_quantity,
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
        self._check_success(body)
        return self._order(read(wire.One[wire.PurchaseOrder], body, self.key, "purchase order").data)

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
            params: dict[str, Any] = {"limit": min(wire.PAGE, max_orders), "skip": skip}
            if where:
                params["where"] = json.dumps(where, separators=(",", ":"))
            _, body = await self._http.request("GET", "/purchase_order", params=params, retry=True)
            page = self._page(wire.Page[wire.Listed], body, "purchase order list")
            new = {po.id: po for po in page.data if po.id is not None and po.id not in seen}
            seen.update(new)
            for po_id, po in new.items():
                if self._at_location(po.location_id):
                    found[po_id] = self._summary(po_id, po)
            # Advance by what arrived, not by what was asked: a lower server-side cap must not skip orders.
            skip += len(page.data)
            if not new or not page.more:
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
            # Inclusive here, exclusive in the service's re-check; rounded up to the API's milliseconds.
            created["lte"] = _iso_z(query.created_before + timedelta(microseconds=999))
        if created:
            where["createdDate"] = created  # bare gte/lte: the API drops Mongo's $gte silently
        return where

    def _order(self, po: wire.PurchaseOrder) -> Order:
        lines = self._lines(po)
        priced = [line.line_total for line in lines if line.line_total is not None]
        subtotal = Money.total(priced, self.currency) if lines and len(priced) == len(lines) else None
        total = po.total(self.currency)
        return Order(
            vendor=self.key,
            order_id=po.id,
            po_number=_shown(po.number),
            status=self.map_status(po.status),
            vendor_status=_shown(po.status),
            lines=lines,
            subtotal=subtotal,
            total=total,
            currency=self.currency if total is not None or subtotal is not None else None,
            created_at=po.created_date,
            updated_at=po.updated_date,
            notes=clean_text(po.note, 1000) if po.note else None,
            details={**self._fees(po), **_about(po)},
        )

    def _lines(self, po: wire.PurchaseOrder) -> list[OrderLine]:
        return [
            *(self._line(line, "part") for line in po.parts),
            *(self._line(line, "tire") for line in po.tires),
            *(self._line(item, (item.type or "item").lower()) for item in po.items),
        ]

    def _line(self, line: wire.Line, kind: str) -> OrderLine:
        quantity = line.quantity
        return OrderLine(
            part_id=line.inventory_id,
            part_number=clean_text(line.number, 80) if line.number else f"({kind}, no number)",
            name=clean_text(line.name, 200) if line.name else None,
            # Quantities are numbers in the schema (fluids by the quart): a fraction shows rounded here, while
            # line_total stays exact.
            quantity=int(quantity.to_integral_value(ROUND_HALF_UP)) if quantity is not None else 0,
            unit_price=line.unit_price(self.currency),
            line_total=line.total(self.currency),
            vendor_status=clean_text(line.status, 40) if line.status else None,
            received_quantity=line.received_quantity,
        )

    def _fees(self, po: wire.PurchaseOrder) -> dict[str, Any]:
        # Fees (shipping, core charges, disposal ...) are not parts: no number, no quantity. They stay out of
        # `lines`, so the lines compare one to one with the parts and tires on the PO, and are listed in details
        # with their sum; the vendor's total includes them (and the older items' own extra charges).
        details: dict[str, Any] = {}
        amounts = [fee.amount(self.currency) for fee in po.fees]
        if po.fees:
            details["fees"] = [
                {
                    "name": clean_text(fee.name or "fee", 80),
                    "kind": clean_text(fee.kind, 40) if fee.kind else None,
                    "amount": amount.model_dump(mode="json") if amount is not None else None,
                }
                for fee, amount in zip(po.fees, amounts, strict=True)
            ]
        charges = [c for item in po.items for c in item.charges(self.currency)]
        charges += [amount for amount in amounts if amount is not None]
        if charges:
            details["fees_total"] = Money.total(charges, self.currency).model_dump(mode="json")
        return details

    def _summary(self, order_id: str, po: wire.PoHead) -> OrderSummary:
        return OrderSummary(
            vendor=self.key,
            order_id=order_id,
            po_number=_shown(po.number),
            status=self.map_status(po.status),
            vendor_status=_shown(po.status),
            total=po.total(self.currency),
            created_at=po.created_date,
        )

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        return _STATUSES.get((vendor_status or "").strip().casefold(), OrderStatus.UNKNOWN)

    # ------------------------------------------------------------------------------------ reading

    def _at_location(self, location_id: str | None) -> bool:
        # `where.locationId` may be ignored by the API, so the location is checked on what comes back too.
        return self.location_id is None or location_id in (None, self.location_id)

    def _check_success(self, body: Any) -> None:
        envelope = read(wire.Envelope, body, self.key, "answer")
        if envelope.success is False:
            # A 2xx that says it failed: not something to build an answer from.
            message = clean_text(envelope.message or "no message", 200)
            raise VendorBadResponse(self.key, f"Shopmonkey answered success=false: {message}")

    def _page(self, model: type[wire.Page[R]], body: Any, what: str) -> wire.Page[R]:
        """One list page's records, and whether the API says more follow."""
        self._check_success(body)
        return read(model, body, self.key, what)

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        body = read(wire.ErrorBody, data, self.key, "error")
        # The documented shape is flat; an `error` object (older APIs, gateways) is read as well.
        source = body.error if isinstance(body.error, wire.ErrorSource) else body
        said = body.error if isinstance(body.error, str) else None
        code = source.code or f"HTTP_{response.status_code}"
        message = clean_text(source.message or said or response.reason_phrase or "no message", 300)
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


def _field(body: wire.ErrorBody, message: str) -> str | None:
    """The field a refusal names (see `wire.ErrorBody.fields_named`), else the one its message names."""
    named = next((name for name in body.fields_named() if name is not None), None)
    if named is not None:
        found = _FIELD_IN_MESSAGE.search(named)
        return clean_text(found.group(1) if found else named.strip("/"), 80)
    found = _FIELD_IN_MESSAGE.search(message)
    return found.group(1) if found else None


def _about(po: wire.PurchaseOrder) -> dict[str, str]:
    """The purchase order's vendor, provider, invoice, repair order and dates, as details."""
    texts = {
        "vendor_name": po.vendor.name if po.vendor else None,
        "vendor_id": po.vendor_id,
        "provider": po.provider,
        "invoice_number": po.invoice_number,
        "repair_order_id": po.repair_order_id,
        "repair_order_number": po.order.number if po.order else None,
        "repair_order_name": (po.order.coalesced_name or po.order.name) if po.order else None,
        "location_id": po.location_id,
    }
    details = {name: clean_text(text, 200) for name, text in texts.items() if text}
    moments = {"ordered_at": po.ordered_date, "fulfilled_at": po.fulfilled_date}
    return details | {name: moment.isoformat() for name, moment in moments.items() if moment is not None}


def _shown(text: str | None) -> str | None:
    """A PO number or status as shown: cleaned, or None when there is none."""
    return clean_text(text, 40) or None if text else None


def _iso_z(moment: datetime) -> str:
    # The API's own format (milliseconds, Z), so its text comparison of dates orders them correctly.
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _match(inventory: Mapping[str, wire.InventoryPart], query: str) -> list[tuple[str, wire.InventoryPart]]:
    """Inventory records (with their ids) for one query: the exact part number if there is one, else every word.

    Part numbers are compared without case, spaces or punctuation ("17d-1210ch" is 17D1210CH). A query
    word, singular or plural, matches the start of a word in the name or number, in any order: "oil"
    finds oil filters but not coils, "pads brake" finds a Brake Pad Set.
    """
    compact = squash(query)
    if not compact:
        return []
    stock = list(inventory.items())
    exact = [(i, r) for i, r in stock if r.number and squash(r.number) == compact]
    if exact:
        return exact
    return [(i, r) for i, r in stock if name_matches(query, f"{r.name or ''} {r.number or ''}")]


def _described(record: wire.InventoryPart) -> tuple[str, str]:
    number = clean_text(record.number or "", 80)
    return number, clean_text(record.name or number, 200)


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


EXAMPLE = """\
[vendors.shopmonkey]
kind = "shopmonkey"
base_url = "https://api.shopmonkey.cloud/v3"
api_key = "${SHOPMONKEY_API_KEY}"
# location_id = "loc_123"                    # only this shop location (default: all)
# currency = "USD"                           # Shopmonkey sends cents with no currency
"""

KIND = VendorKind(
    kind="shopmonkey",
    settings=ShopmonkeySettings,
    create=create,
    example=EXAMPLE,
    simulator="parts_mcp.sandbox.shopmonkey:SIMULATED",
)
