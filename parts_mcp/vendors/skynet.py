"""Skynet Parts B2B API: catalog look-up and idempotent order placement (orders start as drafts).

Documented: POST /catalog (<= 50 part numbers/names per call, list prices as decimal strings,
opaque part_id tokens valid about an hour) and POST /orders (Idempotency-Key required; same key and
body replays the original order). Not in the API: getting or listing orders, so those are served
from our ledger for orders this server placed. The order response's total and timestamp names,
and 200 vs 201, are undocumented: read tolerantly.

Our part_id is the part number (percent-encoded), not Skynet's token: a token is new on every
look-up and dies within the hour, while a number re-finds the same catalog entry from any server
process. The preview re-reads the catalog by number, and the order carries the token just issued.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import anyio
import httpx2
from pydantic import SecretStr

from parts_mcp.domain import LookupResult, Money, Order, OrderLine, OrderStatus, OrderSummary, Part, Preview, PriceBasis
from parts_mcp.vendors import part_ids
from parts_mcp.vendors._search import is_part_number, judge, number_variants, search_words
from parts_mcp.vendors._together import each
from parts_mcp.vendors.base import (
    Capabilities,
    HttpPolicy,
    NotSupported,
    OrderQuery,
    OrderRequest,
    VendorAuthError,
    VendorClient,
    VendorError,
    VendorHttp,
    VendorInvalidRequest,
    VendorKeyConflict,
    VendorOutOfStock,
    VendorSettingsBase,
    VendorUnavailable,
    clean_text,
    error_for_status,
)
from parts_mcp.vendors.registry import VendorKind
from parts_mcp.vendors.wire import LazyModule, read

if TYPE_CHECKING:
    from parts_mcp.vendors.wire import skynet as wire
else:
    wire = LazyModule("parts_mcp.vendors.wire.skynet")

BATCH = 50  # the documented maximum entries per catalog call
CONCURRENCY = 4  # catalog calls in flight at once (no documented rate limit)
# Skynet's own part tokens (valid about an hour): an old-style id that this process forgot names nothing.
_TOKEN_PREFIX = "skynet_part_"  # noqa: S105 - a public id prefix, not a secret
_FIELD_IN_MESSAGE = re.compile(
    r"\b(items(?:\[\d+\])?(?:\.\w+)?|po_number|notes|part_numbers|part_names|Idempotency-Key)\b"
)
_NOTES_LIMIT = 500
_LIST_PRICES = (
    "Prices are Skynet's list prices: the order is billed at your account's B2B price, which may be lower. "
    "The placed order reports the actual total."
)


class _Offer(NamedTuple):
    part: Part
    token: str  # the part_id Skynet issued with it: what an order sends


# ----------------------------------------------------------------------------------- client


class SkynetSettings(VendorSettingsBase):
    kind: Literal["skynet"]
    base_url: str = "https://api.skynetparts.com/api/b2b"
    api_key: SecretStr


class SkynetClient:
    kind = "skynet"
    display_name = "Skynet Parts"
    capabilities = Capabilities(lookup=True, place=True, idempotency_key=True, ephemeral_part_ids=True)
    options_help = "Skynet orders take no options."
    search_help = (
        "Skynet Parts (aviation hardware): manufacturer part numbers, matched exactly (e.g. MS21042L3, AN960C10); "
        "a name is matched against catalog titles. A near-miss number gets the nearest numbers Skynet has."
    )
    status_help: Mapping[OrderStatus, str] = {
        OrderStatus.DRAFT: "Skynet's account manager confirms it in Skynet's web account before shipping",
    }

    def __init__(
        self, key: str, *, base_url: str, api_key: str, http: httpx2.AsyncClient, policy: HttpPolicy | None = None
    ) -> None:
        self.key = key
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
        offers, not_found = await self._catalog([_entry(q) for q in queries])
        return LookupResult(parts=_parts(offers), not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # Skynet matches numbers exactly, so near numbers are asked for one by one (in the same call);
        # its name matching is undocumented, so a name goes as its single words, judged here.
        tries = {
            q: [("part_numbers", v) for v in number_variants(q)]
            if is_part_number(q)
            else [("part_names", w) for w in search_words(q)]
            for q in queries
        }
        offers, _ = await self._catalog(list(dict.fromkeys(e for entries in tries.values() for e in entries)))
        seen = _parts(offers)
        judged = judge(self.key, {q: list(seen) for q in queries}, _described)
        found = {p.part_id: p for hits in judged.found.values() for p in hits}
        return LookupResult(parts=list(found.values()), not_found=judged.not_found, suggestions=judged.suggestions)

    async def _catalog(self, entries: Sequence[tuple[str, str]]) -> tuple[list[_Offer], list[str]]:
        """Ask /catalog for (part_numbers | part_names, text) entries, 50 a call: what it has, and what it lacked."""

        async def batch(start: int) -> wire.Catalog:
            body: dict[str, list[str]] = {}
            for field, text in entries[start : start + BATCH]:
                body.setdefault(field, []).append(text)
            async with self._cap:
                # Catalog look-ups write nothing: safe to retry.
                _, data = await self._http.request("POST", "/catalog", json_body=body, retry=True)
            return read(wire.Catalog, data, self.key, "catalog answer")

        # The batches go together, their answers kept in the order asked.
        answers = (await each(range(0, len(entries), BATCH), batch)).values()
        offers = [_Offer(self._part(found), found.token) for answer in answers for found in answer.found_parts]
        return offers, [clean_text(query, 120) for answer in answers for query in answer.not_found]

    def _part(self, found: wire.CatalogPart) -> Part:
        number = clean_text(found.part_number, 80)
        return Part(
            vendor=self.key,
            part_id=part_ids.encode(number),
            part_number=number,
            name=clean_text(found.title or found.part_number, 200),
            manufacturer=clean_text(found.vendor, 120) if found.vendor else None,
            unit_price=found.price,
            price_basis=PriceBasis.LIST,
            available_quantity=found.available_stock,
            vendor_status=clean_text(found.status, 40) if found.status else None,
            orderable=found.orderable(),
            notes=["List price: your account's B2B price may be lower and is confirmed when the order is placed."],
        )

    async def resolve_parts(self, ids: Sequence[str]) -> dict[str, Part]:
        numbers: dict[str, str] = {}
        for part_id in ids:
            fields = part_ids.decode(part_id, 1)
            if fields is not None and not part_id.startswith(_TOKEN_PREFIX):
                numbers[part_id] = fields[0]
        offers = await self._offers(sorted(set(numbers.values())))
        return {part_id: offers[n.upper()].part for part_id, n in numbers.items() if n.upper() in offers}

    async def _offers(self, numbers: Sequence[str]) -> dict[str, _Offer]:
        """Each part number's catalog entry (by upper-case number), with the token Skynet issued for it."""
        offers, _ = await self._catalog([("part_numbers", number) for number in numbers])
        return _first_each(offers, lambda offer: offer.part.part_number.upper())

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        self._check(request)
        # Re-read the catalog so the preview shows today's price and stock, not the look-up's.
        offers = await self._offers(sorted({parts[item.part_id].part_number for item in request.items}))
        lines: list[OrderLine] = []
        caveats = [_LIST_PRICES]
        currency: str | None = None
        for index, item in enumerate(request.items):
            number = parts[item.part_id].part_number
            offer, price = self._orderable(index, number, offers.get(number.upper()))
            stock = offer.part.available_quantity
            if stock is not None and stock < item.quantity:
                caveats.append(
                    f"{number}: {item.quantity} requested, {stock} in stock; "
                    "Skynet will refuse the order unless stock arrives."
                )
            currency = currency or price.currency
            lines.append(
                OrderLine.priced(
                    part_id=offer.token,  # Skynet's token, just issued: what place_order sends
                    part_number=offer.part.part_number,
                    name=offer.part.name,
                    quantity=item.quantity,
                    unit_price=price,
                )
            )
        assert currency is not None  # items is never empty: the service checks before calling
        total = Money.total((line.line_total for line in lines if line.line_total), currency)
        return Preview(
            vendor=self.key,
            po_number=request.po_number,
            lines=lines,
            notes=request.notes,
            subtotal=total,
            total=total,
            currency=currency,
            price_basis=PriceBasis.LIST,
            total_is_upper_bound=True,
            caveats=caveats,
        )

    def _check(self, request: OrderRequest) -> None:
        if request.options:
            raise VendorInvalidRequest(
                self.key, "Skynet orders take no options; remove `options`.", field="options", code="INVALID_OPTION"
            )
        if request.notes is not None and len(request.notes) > _NOTES_LIMIT:
            raise VendorInvalidRequest(
                self.key, f"notes is longer than {_NOTES_LIMIT} characters; shorten it.", field="notes"
            )

    def _orderable(self, index: int, number: str, offer: _Offer | None) -> tuple[_Offer, Money]:
        """Today's catalog entry for items[index], which must still be listed, priced and orderable, and its price."""
        if offer is None or offer.part.unit_price is None:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}]: {number} is no longer in Skynet's catalog; look it up again.",
                field=f"items[{index}].part_id",
            )
        if not offer.part.orderable:
            raise VendorInvalidRequest(
                self.key,
                f"items[{index}]: {number} is {offer.part.vendor_status}, not orderable.",
                field=f"items[{index}].part_id",
            )
        return offer, offer.part.unit_price

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        body: dict[str, Any] = {
            # The preview re-read the catalog: its part_ids are the freshest tokens for the same parts.
            "items": [
                {"part_id": line.part_id or item.part_id, "quantity": item.quantity}
                for item, line in zip(request.items, preview.lines, strict=True)
            ],
            "po_number": request.po_number,
        }
        if request.notes:
            body["notes"] = request.notes
        # Skynet deduplicates by Idempotency-Key, so a retry after a lost answer returns the first order.
        _, data = await self._http.request(
            "POST", "/orders", json_body=body, headers={"Idempotency-Key": idempotency_key}, retry=True
        )
        return self._order(data, request)

    def _order(self, data: Any, request: OrderRequest) -> Order:
        order = read(wire.Placed, data, self.key, "order confirmation").order
        total = order.amount()
        vendor_status = order.status or "draft"
        return Order(
            vendor=self.key,
            order_id=order.order_id,
            po_number=order.po_number or request.po_number,
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=[_order_line(line) for line in order.line_items],
            subtotal=total,
            total=total,
            currency=total.currency if total else None,
            created_at=order.created_at,
            notes=request.notes,
        )

    async def get_order(self, order_id: str) -> Order:
        raise NotSupported(self.key, "Skynet's API has no order look-up.", capability="get")

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        raise NotSupported(self.key, "Skynet's API cannot list orders.", capability="list")

    async def find_order_by_po(self, po_number: str) -> Order | None:
        raise NotSupported(self.key, "Skynet's API cannot search orders.", capability="find_by_po")

    def map_status(self, vendor_status: str | None) -> OrderStatus:
        # The API only ever reports "draft"; confirmation happens in Skynet's web account.
        return OrderStatus.DRAFT if (vendor_status or "").lower() == "draft" else OrderStatus.UNKNOWN

    # ------------------------------------------------------------------------------------- errors

    def _map_error(self, response: httpx2.Response, data: Any) -> VendorError:
        error = read(wire.ErrorBody, data, self.key, "error answer").error
        code = error.code or f"HTTP_{response.status_code}"
        message = clean_text(error.message or response.reason_phrase or "no message", 300)
        kw: dict[str, Any] = {"code": code, "status": response.status_code}
        match code:
            case "INVALID_API_KEY":
                return VendorAuthError(self.key, "Skynet rejected the API key (missing, malformed or wrong).", **kw)
            case "KEY_REVOKED":
                return VendorAuthError(
                    self.key, "Skynet says the API key was revoked; email api@skynetparts.com for a new one.", **kw
                )
            case "VALIDATION_FAILED":
                found = _FIELD_IN_MESSAGE.search(message)
                return VendorInvalidRequest(
                    self.key, f"Skynet refused the request: {message}", field=found and found.group(1), **kw
                )
            case "INVALID_PART_TOKEN":
                return VendorInvalidRequest(
                    self.key,
                    "Skynet no longer recognises a part_id (they expire after about an hour); "
                    "look the parts up again and place the order with the new part_id.",
                    field="items[].part_id",
                    **kw,
                )
            case "INSUFFICIENT_INVENTORY":
                return self._out_of_stock(error.details, kw)
            case "IDEMPOTENCY_CONFLICT":
                # Skynet holds an order under this key already (sent with other part tokens, say): it may be ours.
                return VendorKeyConflict(
                    self.key, "Skynet has already seen this order's idempotency key with a different body.", **kw
                )
            case "ORDER_FAILED":
                return VendorUnavailable(
                    self.key, "Skynet could not place the order (nothing was placed).", not_processed=True, **kw
                )
            case "UPSTREAM_ERROR":
                return VendorUnavailable(self.key, "Skynet's catalog failed on their side.", not_processed=True, **kw)
            case _:
                return error_for_status(self.key, "Skynet", response, message, code=code)

    def _out_of_stock(self, shortfall: wire.Shortfall, kw: Mapping[str, Any]) -> VendorOutOfStock:
        listed = "; ".join(item.described() for item in shortfall.items)
        return VendorOutOfStock(
            self.key,
            "Skynet does not have enough stock" + (f" ({listed})" if listed else "") + ".",
            items=[item.model_dump(exclude_none=True) for item in shortfall.items],
            **kw,
        )


def _first_each(offers: Iterable[_Offer], key: Callable[[_Offer], str]) -> dict[str, _Offer]:
    # A part may come back twice (named by its number and by a word of its title): the first answer stands.
    first: dict[str, _Offer] = {}
    for offer in offers:
        first.setdefault(key(offer), offer)
    return first


def _parts(offers: Iterable[_Offer]) -> list[Part]:
    return [offer.part for offer in _first_each(offers, lambda offer: offer.part.part_id).values()]


def _order_line(line: wire.Line) -> OrderLine:
    return OrderLine(
        part_number=clean_text(line.part_number or "?", 80),
        name=clean_text(line.title, 200) if line.title else None,
        quantity=line.quantity or 0,
        unit_price=line.unit_price,
        line_total=line.line_total,
    )


def _entry(query: str) -> tuple[str, str]:
    return ("part_numbers" if is_part_number(query) else "part_names", query)


def _described(part: Part) -> tuple[str, str, str]:
    return part.part_number, part.name, f"{part.part_number} {part.name}"


def create(key: str, settings: SkynetSettings, http: httpx2.AsyncClient) -> SkynetClient:
    return SkynetClient(
        key,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value(),
        http=http,
        policy=settings.http_policy(),
    )


_: type[VendorClient] = SkynetClient


EXAMPLE = """\
[vendors.skynet]
kind = "skynet"
base_url = "https://api.skynetparts.com/api/b2b"
api_key = "${SKYNET_API_KEY}"          # sk_live_...; bound to one account and Company Location
"""

KIND = VendorKind(
    kind="skynet",
    settings=SkynetSettings,
    create=create,
    example=EXAMPLE,
    simulator="parts_mcp.sandbox.skynet:SIMULATED",
)
