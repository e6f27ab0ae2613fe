"""get_order: one order, from the vendor or, where its API cannot say, from our ledger."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model, Order
from parts_mcp.tools.context import AppCtx, app

TITLE = "Get an order"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class GetOrderResult(Model):
    order: Order
    sandbox: bool


async def get_order(
    vendor: Annotated[str, Field(description="Vendor key, as in list_vendors")],
    order_id: Annotated[str, Field(min_length=1, max_length=200, description="The vendor's order id")],
    ctx: AppCtx,
) -> Annotated[CallToolResult, GetOrderResult]:
    """Get one order: status (normalized, with the vendor's own status), lines, totals and dates.

    For vendors whose API cannot look orders up (Skynet), orders this server placed are answered
    from its ledger (source: "ledger", status as recorded when placed).
    """
    state = app(ctx)
    order = await state.service.get_order(vendor, order_id.strip())
    result = GetOrderResult(order=order, sandbox=state.sandbox)
    text = (
        f"{order.vendor} order {order.order_id} (PO {order.po_number or '-'}): {order.status.value}"
        f" [{order.vendor_status or '-'}], total {order.total or 'unknown'}, {len(order.lines)} line(s)"
        + (", from this server's ledger" if order.source == "ledger" else "")
        + "."
    )
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )
