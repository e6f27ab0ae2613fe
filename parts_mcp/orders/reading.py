"""Reading orders: one from the vendor (or the ledger, where the vendor cannot say), or a merged list."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import anyio

from parts_mcp.domain import Order, OrderStatus, OrderSummary
from parts_mcp.orders import listing
from parts_mcp.orders.fanout import each_vendor
from parts_mcp.orders.guard import GuardError
from parts_mcp.orders.ledger import Intent, Ledger
from parts_mcp.orders.recording import approval_expiry, closed_approval
from parts_mcp.orders.results import FoundOrder, OrderPage, VendorFailure
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import (
    NotSupported,
    OrderQuery,
    VendorClient,
    VendorError,
    VendorInvalidRequest,
    VendorNotFound,
    clean_text,
)

MAX_LISTED_PER_VENDOR = 1000


class Reading:
    def __init__(self, ledger: Ledger, deadline: float) -> None:
        self._ledger = ledger
        self._deadline = deadline

    async def get_order(self, client: VendorClient, order_id: str) -> FoundOrder:
        """The vendor's view of an order, or the ledger's where the vendor cannot be asked.

        A PO number given as the order id is recognised: the answer is that PO's order, with a note.

        Raises:
            NotSupported: the vendor cannot be asked and this server did not place the order.
            VendorError: the vendor's own failure (not found, auth ...).
        """
        try:
            return FoundOrder(await self._get(client, order_id))
        except (VendorNotFound, VendorInvalidRequest, NotSupported):
            found = await self._order_for_po(client, order_id)
            if found is None:
                intent = await self._ledger.get(client.key, order_id)
                if intent is not None and (waiting := approval_note(intent)):
                    raise GuardError(waiting, field="order_id", code="NO_ORDER_YET") from None
                raise
            note = f"{order_id!r} is a PO number, not an order id: this is the order for that PO ({found.order_id})."
            return FoundOrder(found, note)

    async def _get(self, client: VendorClient, order_id: str) -> Order:
        if client.capabilities.get:
            try:
                return await client.get_order(order_id)
            except VendorNotFound:
                # A vendor may stop retaining old orders (Keyloop does); ours is still the record of what we placed.
                kept = await self._ledger.get_by_order_id(client.key, order_id)
                if kept is None or kept.order is None:
                    raise
                order = ledger_order(kept)
                return order.model_copy(
                    update={"details": {**order.details, "vendor_note": f"{client.display_name} no longer has it."}}
                )
        intent = await self._ledger.get_by_order_id(client.key, order_id)
        if intent is None or intent.order is None:
            raise NotSupported(
                client.key,
                f"{client.display_name}'s API cannot look up orders, and {clean_text(order_id, 60)!r} is neither an "
                f"order id nor a PO number of an order this server placed. Check it in {client.display_name}'s own "
                "web account, or list_purchase_orders to see the orders this server placed.",
                capability="get",
            )
        return ledger_order(intent)

    async def _order_for_po(self, client: VendorClient, po_number: str) -> Order | None:
        """The order a PO number names at this vendor: ours first, then the vendor's own search."""
        intent = await self._ledger.get(client.key, po_number)
        if intent is not None and intent.order_id:
            try:
                return await self._get(client, intent.order_id)
            except VendorError:
                return ledger_order(intent) if intent.order is not None else None
        if client.capabilities.find_by_po:
            try:
                return await client.find_order_by_po(po_number)
            except VendorError:
                return None
        return None

    async def list_orders(
        self,
        clients: Sequence[VendorClient],
        *,
        vendor: str | None,
        statuses: Collection[OrderStatus] | None,
        po_number: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        """Orders newest first across `clients`, one page at a time.

        Vendors that can list are asked (all at once, each under the look-up deadline); for those
        that cannot, the ledger's own orders stand in. Each source gives only its newest `limit + 1`
        orders after the cursor, and a heap merges them: a page costs the same however many orders
        there are. Every filter is applied here again, so each vendor is filtered the same way
        whatever its API supports. The cursor is the last order's (created, vendor, id): the next
        page starts strictly after it, with no repeats and no gaps.

        Raises:
            GuardError: a cursor issued for other filters.
        """
        query = _query(statuses, po_number, created_after, created_before)
        filters = listing.fingerprint_of(vendor, query)
        after = listing.decode_cursor(cursor, filters) if cursor else None
        notes: list[str] = []
        errors: list[VendorFailure] = []
        slices: list[listing.Slice] = []

        async def from_vendor(client: VendorClient) -> None:
            found = await each_vendor(client, self._vendor_slice(client, query, after, limit), self._deadline, errors)
            if found is None:
                return
            part, cut_short = found
            if cut_short:
                notes.append(
                    f"{client.display_name}: only its newest {MAX_LISTED_PER_VENDOR} orders from this page on could "
                    "be read, and they may skip some; narrow the dates to see older ones."
                )
            slices.append(part)

        async def from_ledger(keys: Collection[str]) -> None:
            placed = await self._ledger.placed_page(keys, query, after, limit + 1)
            orders = (OrderSummary.of(ledger_order(i)) for i in placed)
            slices.append(listing.Slice(listing.arranged(orders, query, after), more=len(placed) > limit))

        in_ledger = [c for c in clients if not c.capabilities.list]
        notes += [
            f"{c.display_name} has no order listing in its API: its orders here are the ones this server placed, "
            "from the local ledger, with the status they had when placed."
            for c in in_ledger
        ]
        async with anyio.create_task_group() as group:
            for client in clients:
                if client.capabilities.list:
                    group.start_soon(from_vendor, client)
            if in_ledger:
                group.start_soon(from_ledger, {c.key for c in in_ledger})
        if query.po_number:
            # An order a person has not approved (or declined) is no order yet, but the PO is not unknown.
            notes += [n for i in await self._ledger.by_po(query.po_number) if (n := approval_note(i))]
        orders, next_cursor = listing.merge(slices, limit, filters)
        return OrderPage(orders=orders, next_cursor=next_cursor, notes=notes, vendor_errors=errors)

    @staticmethod
    async def _vendor_slice(
        client: VendorClient, query: OrderQuery, after: listing.Position | None, limit: int
    ) -> tuple[listing.Slice, bool]:
        """The vendor's newest `limit` orders after `after` (or all, if fewer), and whether it was cut short.

        The vendor is asked for `limit + 1` orders created up to the cursor's time. Those it returns are
        its newest if it lists newest first; but orders created in the same instant as the last one it
        returned may be missing, so only those strictly newer count. When filters it cannot apply itself
        (or orders shown already at the cursor's time) leave fewer than `limit`, it is asked for more, up
        to MAX_LISTED_PER_VENDOR: all of those, sorted here, are then the best that can be done.
        """
        # The bound is inclusive, so the cursor's own order comes back when it is this vendor's: one more.
        asked = listing.watermarked(query, after)
        count = limit + 1 + (after is not None and after[1] == client.key)
        while True:
            found = await client.list_orders(asked, count)
            kept = listing.arranged(found, query, after)
            if len(found) < count:
                return listing.Slice(kept), False  # the vendor has no more
            ordered = listing.newest_first(found)
            if ordered:
                oldest = listing.created_key(found[-1].created_at)
                newer = [o for o in kept if listing.created_key(o.created_at) > oldest]
                if len(newer) >= limit:
                    return listing.Slice(newer, more=True), False
            if count >= MAX_LISTED_PER_VENDOR:
                return listing.Slice(kept, more=bool(kept)), True
            # Not newest first: which orders are its newest is known only from the whole list.
            count = min(MAX_LISTED_PER_VENDOR, count * 4) if ordered else MAX_LISTED_PER_VENDOR


def _query(
    statuses: Collection[OrderStatus] | None,
    po_number: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> OrderQuery:
    return OrderQuery(
        statuses=frozenset(statuses) if statuses else None,
        po_number=po_number.strip() if po_number else None,
        created_after=_aware(created_after) if created_after else None,
        created_before=_aware(created_before) if created_before else None,
    )


def approval_note(intent: Intent) -> str | None:
    """Where a PO stands when its order waits for, or was refused, a person's approval; None otherwise."""
    if intent.state is IntentState.AWAITING_APPROVAL:
        return (
            f"PO {intent.po_number} at {intent.vendor} is awaiting a person's approval (approval_id {intent.id}, "
            f"expires {approval_expiry(intent):%Y-%m-%d %H:%M} UTC): no order exists yet."
        )
    closed = closed_approval(intent)
    if closed is None:
        return None
    said = "expired without a decision" if closed == "expired" else f"was {closed}"
    return f"PO {intent.po_number} at {intent.vendor}: its approval request {said}; no order was placed."


def ledger_order(intent: Intent) -> Order:
    assert intent.order is not None
    return Order.model_validate(intent.order).model_copy(update={"source": "ledger"})


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
