"""get_order: one order, from the vendor or, where its API cannot say, from our ledger."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model, Order
from parts_mcp.tools import text
from parts_mcp.tools.context import AppCtx, app

TITLE = "Get an order"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class GetOrderResult(Model):
    order: Order
    sandbox: bool
    note: str | None = None


async def get_order(
    vendor: Annotated[str, Field(description="Vendor key")],
    order_id: Annotated[str, Field(min_length=1, max_length=200, description="The vendor's order id")],
    ctx: AppCtx,
) -> CallToolResult:
    """Get one order: status and what it means, lines, totals, dates.

    Where the vendor's API cannot look orders up (Skynet), orders this server placed come from its
    ledger. Given a PO number instead of an order id, finds the order for that PO.
    """
    state = app(ctx)
    found = await state.service.get_order(vendor, order_id.strip())
    result = GetOrderResult(order=found.order, sandbox=state.sandbox, note=found.note)
    lines = text.order(found.order, state.service.vendor(vendor).status_help)
    if found.note:
        lines.insert(0, found.note)
    if state.sandbox:
        lines.append("(sandbox: a simulated vendor)")
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )
