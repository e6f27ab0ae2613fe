"""Paging a merged, newest-first list of orders: the sort key, the filters, an opaque cursor.

The cursor carries the last order's (created, vendor, id) and a fingerprint of the filters: the
next page starts strictly after that key, so pages never repeat or skip an order, and a cursor
cannot resume a listing with other filters.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from parts_mcp.domain import OrderSummary
from parts_mcp.orders.guard import GuardError
from parts_mcp.vendors.base import OrderQuery

Position = tuple[str, str, str]


def page(
    orders: Sequence[OrderSummary], query: OrderQuery, limit: int, after: Position | None, fingerprint: str
) -> tuple[list[OrderSummary], str | None]:
    """One page of `orders` matching `query`, newest first, starting after `after`; and the next cursor."""
    ordered = sorted(filter(query.matches, orders), key=sort_key, reverse=True)
    if after is not None:
        ordered = [o for o in ordered if sort_key(o) < after]
    chosen = ordered[:limit]
    return chosen, (encode_cursor(sort_key(chosen[-1]), fingerprint) if len(ordered) > limit else None)


def sort_key(order: OrderSummary) -> tuple[str, str, str]:
    created = order.created_at.astimezone(UTC).isoformat() if order.created_at else ""
    return (created, order.vendor, order.order_id)


def fingerprint(filters: Mapping[str, Any]) -> str:
    # A cursor only resumes the listing it came from: other filters would skip or repeat orders.
    return hashlib.sha256(json.dumps(filters, default=str, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(position: tuple[str, str, str], fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": position, "f": fingerprint}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[str, str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = tuple(data["p"])
        if data["f"] != fingerprint or len(position) != 3:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise GuardError(
            "cursor is not one this server issued for these filters; repeat the call without cursor.",
            field="cursor",
            code="BAD_CURSOR",
        ) from None
    return position  # type: ignore[return-value]
