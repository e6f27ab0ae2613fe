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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx2
from pydantic import SecretStr

from parts_mcp.domain import LookupResult, Money, Order, OrderLine, OrderStatus, OrderSummary, Part, Preview, PriceBasis
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors import part_ids
from parts_mcp.vendors._search import is_part_number, judge, number_variants, search_words
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
    VendorKeyConflict,
    VendorOutOfStock,
    VendorSettingsBase,
    VendorUnavailable,
    clean_text,
    error_for_status,
)

BATCH = 50  # the documented maximum entries per catalog call
# Skynet's own part tokens (valid about an hour): an old-style id that this process forgot names nothing.
_TOKEN_PREFIX = "skynet_part_"  # noqa: S105 - a public id prefix, not a secret
_FIELD_IN_MESSAGE = re.compile(
    r"\b(items(?:\[\d+\])?(?:\.\w+)?|po_number|notes|part_numbers|part_names|Idempotency-Key)\b"
)
_NOTES_LIMIT = 500


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
        parts, not_found = await self._catalog([_entry(q) for q in queries])
        return LookupResult(parts=list(parts.values()), not_found=not_found)

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        # Skynet matches numbers exactly, so near numbers are asked for one by one (in the same call);
        # its name matching is undocumented, so a name goes as its single words, judged here.
        tries = {
            q: [("part_numbers", v) for v in number_variants(q)]
            if is_part_number(q)
            else [("part_names", w) for w in search_words(q)]
            for q in queries
        }
        seen, _ = await self._catalog(list(dict.fromkeys(e for entries in tries.values() for e in entries)))
        judged = judge(self.key, {q: list(seen.values()) for q in queries}, _described)
        found = {p.part_id: p for hits in judged.found.values() for p in hits}
        return LookupResult(parts=list(found.values()), not_found=judged.not_found, suggestions=judged.suggestions)

    async def _catalog(self, entries: Sequence[tuple[str, str]]) -> tuple[dict[str, Part], list[str]]:
        """Ask /catalog for (part_numbers | part_names, text) entries, 50 a call: the parts, and what it lacked."""
        parts: dict[str, Part] = {}
        not_found: list[str] = []
        for start in range(0, len(entries), BATCH):
            body: dict[str, list[str]] = {}
            for field, text in entries[start : start + BATCH]:
                body.setdefault(field, []).append(text)
            # Catalog look-ups write nothing: safe to retry.
            _, data = await self._http.request("POST", "/catalog", json_body=body, retry=True)
            data = data if isinstance(data, dict) else {}
            now = datetime.now(UTC)
            for raw in data.get("found_parts") or []:
                part = self._part(raw, now)
                if part is not None:
                    parts.setdefault(part.part_id, part)
            not_found.extend(clean_text(q, 120) for q in data.get("not_found") or [] if isinstance(q, str))
        return parts, not_found

    def _part(self, raw: Any, now: datetime) -> Part | None:
        if not isinstance(raw, dict) or not raw.get("part_id") or not raw.get("part_number"):
            return None
        status = raw.get("status")
        price = parse.money(raw.get("price"))
        number = clean_text(raw["part_number"], 80)
        return Part(
            vendor=self.key,
            part_id=part_ids.encode(number),
            part_number=number,
            name=clean_text(raw.get("title") or raw["part_number"], 200),
            manufacturer=clean_text(raw["vendor"], 120) if raw.get("vendor") else None,
            unit_price=price,
            price_basis=PriceBasis.LIST,
            available_quantity=parse.integer(raw.get("available_stock")),
            vendor_status=clean_text(status, 40) if status else None,
            # Only ACTIVE is documented as orderable; anything else is treated as not orderable.
            orderable=status in (None, "ACTIVE"),
            notes=["List price: your account's B2B price may be lower and is confirmed when the order is placed."],
        )

    async def resolve_parts(self, ids: Sequence[str]) -> dict[str, Part]:
        numbers: dict[str, str] = {}
        for part_id in ids:
            fields = part_ids.decode(part_id, 1)
            if fields is not None and not part_id.startswith(_TOKEN_PREFIX):
                numbers[part_id] = fields[0]
        offers = await self._offers(sorted(set(numbers.values())))
        return {part_id: offers[n.upper()][0] for part_id, n in numbers.items() if n.upper() in offers}

    async def _offers(self, numbers: Sequence[str]) -> dict[str, tuple[Part, str]]:
        """Each part number's catalog entry (by upper-case number), with the token Skynet issued for it."""
        offers: dict[str, tuple[Part, str]] = {}
        now = datetime.now(UTC)
        for start in range(0, len(numbers), BATCH):
            body = {"part_numbers": list(numbers[start : start + BATCH])}
            # Catalog reads write nothing: safe to retry.
            _, data = await self._http.request("POST", "/catalog", json_body=body, retry=True)
            for raw in (data.get("found_parts") if isinstance(data, dict) else None) or []:
                part = self._part(raw, now)
                if part is not None:
                    offers.setdefault(part.part_number.upper(), (part, str(raw["part_id"])))
        return offers

    # ------------------------------------------------------------------------------------- orders

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        if request.options:
            raise VendorInvalidRequest(
                self.key, "Skynet orders take no options; remove `options`.", field="options", code="INVALID_OPTION"
            )
        if request.notes is not None and len(request.notes) > _NOTES_LIMIT:
            raise VendorInvalidRequest(
                self.key, f"notes is longer than {_NOTES_LIMIT} characters; shorten it.", field="notes"
            )
        # Re-read the catalog so the preview shows today's price and stock, not the look-up's.
        offers = await self._offers(sorted({parts[item.part_id].part_number for item in request.items}))
        lines: list[OrderLine] = []
        caveats: list[str] = []
        currency: str | None = None
        for index, item in enumerate(request.items):
            known = parts[item.part_id]
            current, token = offers.get(known.part_number.upper(), (None, None))
            if current is None or current.unit_price is None:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}]: {known.part_number} is no longer in Skynet's catalog; look it up again.",
                    field=f"items[{index}].part_id",
                )
            if not current.orderable:
                raise VendorInvalidRequest(
                    self.key,
                    f"items[{index}]: {known.part_number} is {current.vendor_status}, not orderable.",
                    field=f"items[{index}].part_id",
                )
            if current.available_quantity is not None and current.available_quantity < item.quantity:
                caveats.append(
                    f"{known.part_number}: {item.quantity} requested, {current.available_quantity} in stock; "
                    "Skynet will refuse the order unless stock arrives."
                )
            currency = currency or current.unit_price.currency
            lines.append(
                OrderLine.priced(
                    part_id=token,  # Skynet's token, just issued: what place_order sends
                    part_number=current.part_number,
                    name=current.name,
                    quantity=item.quantity,
                    unit_price=current.unit_price,
                )
            )
        assert currency is not None  # items is never empty: the service checks before calling
        total = Money.total((line.line_total for line in lines if line.line_total), currency)
        caveats.insert(
            0,
            "Prices are Skynet's list prices: the order is billed at your account's B2B price, which may be lower. "
            "The placed order reports the actual total.",
        )
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
        raw = data.get("order") if isinstance(data, dict) else None
        if not isinstance(raw, dict) or not raw.get("order_id"):
            raise VendorBadResponse(self.key, "Skynet confirmed an order without an order_id")
        lines = [
            OrderLine(
                part_number=clean_text(line.get("part_number") or "?", 80),
                name=clean_text(line["title"], 200) if line.get("title") else None,
                quantity=parse.integer(line.get("quantity")) or 0,
                unit_price=parse.money(line.get("unit_price")),
                line_total=parse.money(line.get("line_total")),
            )
            for line in raw.get("line_items") or []
            if isinstance(line, dict)
        ]
        total = parse.money(parse.first(raw, "total", "order_total", "total_amount", "grand_total", "subtotal"))
        if total is None and lines and all(line.line_total for line in lines):
            total = Money.total((line.line_total for line in lines if line.line_total), lines[0].line_total.currency)  # type: ignore[union-attr]
        vendor_status = str(raw.get("status") or "draft")
        return Order(
            vendor=self.key,
            order_id=str(raw["order_id"]),
            po_number=str(raw.get("po_number") or request.po_number),
            status=self.map_status(vendor_status),
            vendor_status=vendor_status,
            lines=lines,
            subtotal=total,
            total=total,
            currency=total.currency if total else None,
            created_at=parse.timestamp(
                parse.first(raw, "created_at", "createdAt", "created", "timestamp", "placed_at")
            ),
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
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or f"HTTP_{response.status_code}")
        message = clean_text(error.get("message") or response.reason_phrase or "no message", 300)
        details = error.get("details")
        details = details if isinstance(details, dict) else {}
        status = response.status_code
        kw: dict[str, Any] = {"code": code, "status": status}
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
                items = _short_items(details)
                listed = "; ".join(
                    f"{i.get('part_number') or i.get('part_id')}: requested {i.get('requested')}, "
                    f"available {i.get('available')}"
                    for i in items
                )
                return VendorOutOfStock(
                    self.key,
                    "Skynet does not have enough stock" + (f" ({listed})" if listed else "") + ".",
                    items=items,
                    **kw,
                )
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
        return error_for_status(self.key, "Skynet", response, message, code=code)


def _short_items(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    # The shape is undocumented: accept a list under any common key, or a {part: available} map.
    for key in ("items", "short_items", "insufficient", "parts"):
        value = details.get(key)
        if isinstance(value, list):
            return [
                {k: clean_text(v, 80) if isinstance(v, str) else v for k, v in i.items()}
                for i in value
                if isinstance(i, dict)
            ]
    return [{"part_number": clean_text(k, 80), "available": v} for k, v in details.items() if isinstance(v, int)]


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
