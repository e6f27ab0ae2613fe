"""Before any confirmation: validate an order against policy, find and price its parts. Nothing is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from parts_mcp.domain import Money, OrderItem, Preview
from parts_mcp.orders.billing import approval_limit
from parts_mcp.orders.guard import GuardError, check_po_number, content_hash
from parts_mcp.orders.ledger import Intent, Ledger
from parts_mcp.orders.parts import PartCache, identity_hash
from parts_mcp.orders.results import Clock, GuardPolicy, NewOrder, Prepared, Repeat
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import NotSupported, OrderRequest, VendorClient, VendorError, clean_text

MAX_ITEMS = 100
NOTES_LIMIT = 1000


class Preparer:
    def __init__(self, ledger: Ledger, policy: GuardPolicy, parts: PartCache, clock: Clock) -> None:
        self._ledger = ledger
        self._policy = policy
        self._parts = parts
        self._clock = clock

    async def __call__(
        self,
        client: VendorClient,
        po_number: str,
        items: Sequence[OrderItem],
        notes: str | None,
        options: Mapping[str, Any] | None,
        principal: str = "",
    ) -> Prepared:
        """A repeat of an order the ledger has under this PO, or a new order priced by the vendor.

        Raises:
            GuardError: a policy refuses the order (the field is named).
            NotSupported: the vendor's API cannot take orders.
            VendorError: the vendor refused an item or could not price it.
        """
        request = self._request(client, po_number, items, notes, options)
        as_given = content_hash(request)
        existing = await self._ledger.get(client.key, request.po_number)
        # A declined approval stays the answer for the same order; any other refusal frees the PO.
        if existing is not None and (existing.state is not IntentState.REJECTED or _declined(existing, as_given)):
            if existing.request.get("hash_as_given") != as_given and not await self._same_order(
                client, request, existing.content_hash
            ):
                raise GuardError(
                    f"{request.po_number!r} already names a different {client.display_name} order (intent "
                    f"{existing.state.value}" + (f", order {existing.order_id}" if existing.order_id else "") + "). "
                    "One PO number names one order: use a new PO number, or repeat the original items exactly.",
                    field="po_number",
                    code="PO_CONFLICT",
                )
            return Repeat(request, existing.content_hash, client.display_name, existing)
        try:
            parts = await self._parts.known(client, request)
            preview = await client.preview(request, parts)
        except VendorError as exc:
            exc.nothing_sent = True  # priced, not sent
            raise
        preview = self.bounded(preview)
        await self.check_limits(preview, principal)
        return NewOrder(
            request=request,
            content_hash=identity_hash(client, request, parts),
            display_name=client.display_name,
            preview=preview,
            previous_attempt=existing.attempt if existing is not None else 0,
            principal=principal,
            warnings=[
                *_lapsed(existing),
                *await self._po_elsewhere(client.key, request.po_number),
                *await self._same_items_elsewhere(preview),
            ],
        )

    def bounded(self, preview: Preview) -> Preview:
        """The preview with the most the vendor may bill once it is approved."""
        limit = approval_limit(preview, self._policy.added_charges_rate, self._policy.added_charges_flat)
        return preview.model_copy(update={"approval_limit": limit})

    async def reprice(self, client: VendorClient, order: NewOrder) -> Preview:
        """The vendor's price for the order now, bounded as the first one was (nothing is written).

        Raises:
            VendorError: the vendor can no longer price it (e.g. a part withdrawn); nothing was sent.
        """
        try:
            parts = await self._parts.known(client, order.request)
            return self.bounded(await client.preview(order.request, parts))
        except VendorError as exc:
            exc.nothing_sent = True
            raise

    async def _same_order(self, client: VendorClient, request: OrderRequest, recorded: str) -> bool:
        """Other arguments may still be the same order: where part_ids are tokens, the same parts anew."""
        if not client.capabilities.ephemeral_part_ids:
            return False
        return identity_hash(client, request, await self._parts.known(client, request)) == recorded

    def _request(
        self,
        client: VendorClient,
        po_number: str,
        items: Sequence[OrderItem],
        notes: str | None,
        options: Mapping[str, Any] | None,
    ) -> OrderRequest:
        po = check_po_number(po_number, self._policy.po_pattern)
        allowed = self._policy.order_vendors
        if allowed is not None and client.key not in allowed:
            raise GuardError(
                f"this server does not place orders with {client.key!r} (guard.order_vendors allows "
                f"{', '.join(sorted(allowed)) or 'none'}); it can still look parts up and read orders there.",
                field="vendor",
                code="VENDOR_NOT_ALLOWED",
            )
        if not client.capabilities.place:
            raise NotSupported(client.key, client.options_help, capability="place")
        if not items:
            raise GuardError("give at least one {part_id, quantity}.", field="items")
        if len(items) > MAX_ITEMS:
            raise GuardError(f"at most {MAX_ITEMS} lines per order.", field="items")
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.part_id in seen:
                raise GuardError(
                    f"repeats items[{seen[item.part_id]}]; put the whole quantity on one line.",
                    field=f"items[{index}].part_id",
                )
            seen[item.part_id] = index
        return OrderRequest(
            vendor=client.key, po_number=po, items=tuple(items), notes=_clean_notes(notes), options=dict(options or {})
        )

    async def check_limits(self, preview: Preview, principal: str = "") -> None:
        """The per-order limit, and today's budget as advice before the human is asked.

        The daily budget binds in the ledger's claim transaction, where no race can beat it; this
        early look only spares the human a form for an order that cannot go through.
        """
        # Caps bind what may be billed: charges the vendor adds at creation included.
        total = preview.approval_limit or preview.total
        added = f" (the total {preview.total} plus what {preview.vendor} may add)" if total != preview.total else ""
        limit = self._policy.max_order_total
        if limit is not None and total.amount > limit:
            raise GuardError(
                f"The order's bill of up to {total}{added} exceeds this server's limit of {limit} per order "
                "(guard.max_order_total). Split it only if the user's purchasing policy allows, or ask an "
                "administrator to raise the limit.",
                field="items",
                code="OVER_LIMIT",
            )
        await self._check_personal(total, principal)
        daily = self._policy.max_daily_total_per_vendor
        if daily is None:
            return
        spent = Money(
            amount=await self._ledger.spent(preview.vendor, midnight(self._clock), total.currency),
            currency=total.currency,
        )
        if (spent + total).amount > daily:
            raise GuardError(
                f"This order (up to {total}{added}) would take today's orders with {preview.vendor} to "
                f"{(spent + total).rounded()}, "
                f"over this server's daily limit of {daily} per vendor (guard.max_daily_total_per_vendor). "
                "Ask an administrator, or order tomorrow.",
                field="items",
                code="OVER_DAILY_LIMIT",
            )

    async def _check_personal(self, total: Money, principal: str) -> None:
        """The person's daily limit, as advice before asking anyone (it binds in the claim transaction)."""
        limit = self._policy.max_daily_total_per_principal
        if limit is None or not principal:
            return
        spent = await self._ledger.spent_by(principal, midnight(self._clock), total.currency)
        if spent + total.amount > limit:
            raise GuardError(
                f"This order (up to {total}) would take {principal}'s orders today to "
                f"{Money(amount=spent + total.amount, currency=total.currency).rounded()}, over this server's daily "
                f"limit of {limit} per person (guard.max_daily_total_per_principal). Ask an administrator, or "
                "order tomorrow.",
                field="items",
                code="OVER_PRINCIPAL_DAILY_LIMIT",
            )

    async def _po_elsewhere(self, vendor: str, po_number: str) -> list[str]:
        """Allowed, but never silent: the same PO number already names an order at another vendor."""
        return [
            f"PO {po_number} is also {'order ' + other.order_id if other.order_id else 'an order'} at "
            f"{other.vendor} ({other.state.value}, {other.created_at:%Y-%m-%d}). Check that this is a separate order."
            for other in await self._ledger.by_po(po_number)
            if other.vendor != vendor and other.state is not IntentState.REJECTED
        ]

    async def _same_items_elsewhere(self, preview: Preview) -> list[str]:
        """Not a block, never silent: the same items went to this vendor under another PO recently."""
        window = self._policy.duplicate_window
        if not window:
            return []
        items = _items(preview.model_dump(mode="json"))
        return [
            f"POSSIBLE DUPLICATE: the same items ({_described(preview)}) were ordered from {preview.vendor} under PO "
            f"{other.po_number} on {other.created_at:%Y-%m-%d %H:%M} UTC"
            + (f" (order {other.order_id}, {other.state.value})" if other.order_id else f" ({other.state.value})")
            + ". Ask the user whether this is a second order on purpose."
            for other in await self._ledger.recent(preview.vendor, self._clock() - window)
            if other.po_number.casefold() != preview.po_number.casefold()
            and other.state is not IntentState.REJECTED
            and _items(other.preview) == items
        ]


def _declined(intent: Intent, as_given: str) -> bool:
    return (intent.error or {}).get("code") == "DECLINED" and intent.request.get("hash_as_given") == as_given


def _lapsed(intent: Intent | None) -> list[str]:
    if intent is None or (intent.error or {}).get("code") != "EXPIRED":
        return []
    return [f"The previous approval request for PO {intent.po_number} expired without a decision; this is a new one."]


def _items(preview: Mapping[str, Any]) -> list[tuple[str, int]]:
    """What an order is, for spotting the same order under two POs: part numbers and quantities."""
    lines: list[Mapping[str, Any]] = preview.get("lines") or []
    return sorted((str(line.get("part_number", "")).casefold(), int(line.get("quantity", 0))) for line in lines)


def _described(preview: Preview) -> str:
    lines = preview.lines
    shown = ", ".join(f"{line.quantity} x {line.part_number}" for line in lines[:5])
    return shown + (f" and {len(lines) - 5} more lines" if len(lines) > 5 else "")


def midnight(clock: Clock) -> datetime:
    """The start of today (UTC) by `clock`: when the daily budgets roll over."""
    return clock().replace(hour=0, minute=0, second=0, microsecond=0)


def _clean_notes(notes: str | None) -> str | None:
    if notes is None:
        return None
    cleaned = clean_text(notes, NOTES_LIMIT + 1)
    if len(cleaned) > NOTES_LIMIT:
        raise GuardError(f"is longer than {NOTES_LIMIT} characters; shorten it.", field="notes")
    return cleaned or None
