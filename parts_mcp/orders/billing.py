"""What the vendor billed, against what the human confirmed."""

from __future__ import annotations

from collections.abc import Sequence

from parts_mcp.domain import Money, Order


def total_warnings(order: Order, confirmed: Money, excludes: Sequence[str]) -> list[str]:
    """Loud words when the vendor's figure is above what the human confirmed."""
    # With charges the preview left out (tax, shipping), the like-for-like figure is the subtotal.
    by_subtotal = bool(excludes) and order.subtotal is not None
    billed, label = (order.subtotal, "subtotal") if by_subtotal else (order.total, "total")
    if billed is None:
        return ["The vendor did not report a total; check the order before relying on it."]
    if billed.currency != confirmed.currency:
        return [f"ATTENTION: the vendor billed in {billed.currency}, the user confirmed {confirmed}."]
    warnings: list[str] = []
    if billed > confirmed:
        warnings.append(
            f"ATTENTION: the vendor's {label} {billed} is HIGHER than the confirmed {confirmed}. "
            "Tell the user now; the order exists and may need to be cancelled with the vendor."
        )
    if excludes and order.total is not None and order.total != billed:
        warnings.append(f"The vendor added {', '.join(excludes)}: the order's total is {order.total}.")
    return warnings
