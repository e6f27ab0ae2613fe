"""Paging a merged, newest-first list of orders: the sort key, the filters, an opaque cursor.

Every source (the ledger, each listing vendor) gives its own newest orders after the cursor,
sorted; a heap merges them into one page. The cursor carries the last order's (created, vendor,
id) and a fingerprint of the filters: the next page starts strictly after that key, so pages never
repeat or skip an order, and a cursor cannot resume a listing with other filters.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from parts_mcp.domain import OrderSummary
from parts_mcp.orders.guard import GuardError
from parts_mcp.vendors.base import OrderQuery

Position = tuple[str, str, str]


def created_key(moment: datetime | None) -> str:
    """The created part of the sort key: UTC ISO text, which sorts as time does; "" (oldest) for none."""
    return moment.astimezone(UTC).isoformat() if moment else ""


def sort_key(order: OrderSummary) -> Position:
    return (created_key(order.created_at), order.vendor, order.order_id)


def arranged(orders: Iterable[OrderSummary], query: OrderQuery, after: Position | None) -> list[OrderSummary]:
    """The orders matching `query` strictly after `after`, newest first."""
    kept = [o for o in orders if query.matches(o) and (after is None or sort_key(o) < after)]
    return sorted(kept, key=sort_key, reverse=True)


@dataclass(frozen=True)
class Slice:
    """One source's part of a page: its newest orders after the cursor, newest first.

    `more`: the source holds orders after these. Then it must give at least as many as the page
    shows: whatever it left out comes after this page.
    """

    orders: list[OrderSummary]
    more: bool = False


def merge(slices: Iterable[Slice], limit: int, fingerprint: str) -> tuple[list[OrderSummary], str | None]:
    """One page from every source's slice, and the cursor to the next page (None at the end)."""
    slices = list(slices)
    merged = list(itertools.islice(heapq.merge(*(s.orders for s in slices), key=sort_key, reverse=True), limit + 1))
    chosen = merged[:limit]
    more = len(merged) > limit or any(s.more for s in slices)
    return chosen, (encode_cursor(sort_key(chosen[-1]), fingerprint) if more and chosen else None)


def watermarked(query: OrderQuery, after: Position | None) -> OrderQuery:
    """`query` narrowed to what can still come after `after`: created no later than its time.

    Inclusive, since orders created in the same microsecond are ordered by vendor and id; the
    orders already shown at that time are dropped by `arranged`. No bound from an undated
    position: only undated orders are left, and a date filter would drop them.
    """
    if after is None or not after[0]:
        return query
    through = datetime.fromisoformat(after[0]) + timedelta(microseconds=1)
    before = min(through, query.created_before) if query.created_before else through
    return replace(query, created_before=before)


def newest_first(orders: Sequence[OrderSummary]) -> bool:
    keys = [created_key(o.created_at) for o in orders]
    return all(a >= b for a, b in itertools.pairwise(keys))


def fingerprint_of(vendor: str | None, query: OrderQuery) -> str:
    # A cursor only resumes the listing it came from: other filters would skip or repeat orders.
    # Sorted: a set's order varies between processes, and a cursor must work in any of them.
    filters = {"vendor": vendor, **vars(query), "statuses": sorted(query.statuses or ())}
    return hashlib.sha256(json.dumps(filters, default=str, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(position: Position, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": position, "f": fingerprint}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> Position:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created, vendor, order_id = data["p"]
        if data["f"] != fingerprint or not all(isinstance(s, str) for s in (created, vendor, order_id)):
            raise ValueError
        # The watermark sent to vendors is read from it: a time with its zone, as this server writes it.
        if created and datetime.fromisoformat(created).tzinfo is None:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise GuardError(
            "cursor is not one this server issued for these filters; repeat the call without cursor.",
            field="cursor",
            code="BAD_CURSOR",
        ) from None
    return (created, vendor, order_id)
