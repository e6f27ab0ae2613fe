"""What the vendor billed, against what the human approved.

The human approves a preview's total. Where the vendor adds charges only when it creates the order
(tax, shipping), the approval covers a stated bound above that total (`approval_limit`); where it
bills a price it reveals only then (Skynet's B2B price under a list-price preview), the bound is
the total itself. A bill above the bound is never a plain "placed".
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from parts_mcp.domain import Money, Order, OrderStatus, Preview


def approval_limit(preview: Preview, rate: Decimal, flat: Decimal) -> Money:
    """The most the vendor may bill for this preview once approved."""
    if not preview.excludes:
        return preview.total
    allowed = preview.total.amount * (1 + rate) + flat
    return Money(amount=allowed, currency=preview.total.currency).rounded()


def billed(order: Order) -> Money | None:
    """The order's bill as the vendor states it: its total, else its subtotal (charges unknown yet)."""
    return order.total or order.subtotal


def above(order: Order, limit: Money) -> bool:
    """True when the vendor billed more than `limit`, or in another currency (not comparable: never assumed fine)."""
    bill = billed(order)
    if bill is None:
        return False  # nothing stated to compare; total_warnings says so
    return bill.currency != limit.currency or bill.amount > limit.amount


def counted(
    preview: Mapping[str, Any], order: Mapping[str, Any] | None, confirmed_total: str, currency: str
) -> Decimal:
    """What one intent takes from a budget in `currency`: the bill once known, else what its approval allows.

    A cancelled order bills nothing. Before the vendor's answer, the approval's bound is reserved, so
    the charges a vendor adds at creation cannot slip past a daily cap.
    """
    if order is not None:
        if order.get("status") == OrderStatus.CANCELLED.value:
            return Decimal(0)
        bill = order.get("total") or order.get("subtotal")
        if isinstance(bill, dict):
            return _in(bill, currency)  # type: ignore[arg-type]
    limit = preview.get("approval_limit")
    if isinstance(limit, dict):
        return _in(limit, currency)  # type: ignore[arg-type]
    amount, _, unit = confirmed_total.partition(" ")
    return Decimal(amount) if unit == currency else Decimal(0)


def _in(money: Mapping[str, Any], currency: str) -> Decimal:
    return Decimal(str(money.get("amount"))) if money.get("currency") == currency else Decimal(0)


def total_warnings(order: Order, confirmed: Money, excludes: list[str]) -> list[str]:
    """What the human should know about a bill within the approval: charges added, or no total stated."""
    bill = billed(order)
    if bill is None:
        return ["The vendor did not report a total; check the order before relying on it."]
    if excludes and order.total is not None and order.total != confirmed:
        return [f"The vendor added {', '.join(excludes)}: the order's total is {order.total} (previewed {confirmed})."]
    return []


def price_rise(approved: Preview, now: Preview) -> str | None:
    """What got dearer between the preview the human approved and the vendor's price now; None if nothing did.

    Cheaper is fine: the order is then sent at today's lower price, within the approval.
    """
    if now.total.currency != approved.total.currency:
        return f"The currency changed from {approved.total.currency} to {now.total.currency}"
    # Both previews price the same request, line for line: compared by position, two options of one
    # part number (new and refurbished) cannot be mistaken for each other.
    pairs = list(zip(approved.lines, now.lines, strict=False))
    if len(approved.lines) != len(now.lines) or any(
        a.part_number.casefold() != b.part_number.casefold() or a.quantity != b.quantity for a, b in pairs
    ):
        return "The vendor priced different lines than the ones approved"
    for before, line in pairs:
        was = before.unit_price
        if line.unit_price is not None and was is not None and line.unit_price.amount > was.amount:
            return (
                f"The price of {line.part_number} went up from {was} to {line.unit_price} per unit "
                f"(total {approved.total} -> {now.total})"
            )
    if now.total.amount > approved.total.amount:
        return f"The total went up from {approved.total} to {now.total}"
    if set(now.excludes) - set(approved.excludes):
        return f"The vendor now adds {', '.join(sorted(set(now.excludes) - set(approved.excludes)))}"
    return None


def over_advice(display_name: str, order: Order, limit: Money, *, cancelled: bool) -> str:
    """What to tell the user about a bill above the approval, and what to do."""
    said = f"{display_name} billed {billed(order)} for order {order.order_id}, above the {limit} the user approved"
    if cancelled:
        return (
            f"{said}, so this server cancelled that order: nothing will be delivered. Tell the user. To order anyway, "
            "the user must approve the higher bill: call place_order with a new PO number for a new preview."
        )
    return (
        f"{said}, and this server could not cancel it there. Tell the user now: the order exists, and they should "
        f"cancel or correct it with {display_name} directly before it ships. Do not order again."
    )
