"""list_purchase_orders: purchase orders across vendors, newest first, one page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model, OrderStatus, OrderSummary
from parts_mcp.tools.context import AppCtx, app
from parts_mcp.tools.lookup_parts import VendorErrorInfo

TITLE = "List purchase orders"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class ListPurchaseOrdersResult(Model):
    orders: list[OrderSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")
    notes: list[str] = Field(default_factory=list, description="Where the orders come from, per vendor")
    vendor_errors: list[VendorErrorInfo] = Field(
        default_factory=list, description="Vendors that failed; the other vendors' orders still stand"
    )
    sandbox: bool


async def list_purchase_orders(
    ctx: AppCtx,
    vendor: Annotated[str | None, Field(description="Only this vendor; default: all vendors")] = None,
    status: Annotated[OrderStatus | None, Field(description="Normalized status to keep")] = None,
    po_number: Annotated[str | None, Field(max_length=100, description="Only orders with this PO number")] = None,
    created_after: Annotated[datetime | None, Field(description="ISO 8601; orders created at or after")] = None,
    created_before: Annotated[datetime | None, Field(description="ISO 8601; orders created before")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Orders per page")] = 20,
    cursor: Annotated[str | None, Field(description="next_cursor from the previous page, same filters")] = None,
) -> Annotated[CallToolResult, ListPurchaseOrdersResult]:
    """List purchase orders newest first, filtered by vendor, status, PO number and creation date.

    Vendors without an order list in their API (Skynet) show the orders this server placed, from
    its ledger. Page with next_cursor, keeping the same filters.
    """
    state = app(ctx)
    page = await state.service.list_orders(
        vendor=vendor,
        status=status,
        po_number=po_number,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        cursor=cursor,
    )
    result = ListPurchaseOrdersResult(
        orders=page.orders,
        next_cursor=page.next_cursor,
        notes=page.notes,
        vendor_errors=[VendorErrorInfo(**vars(e)) for e in page.vendor_errors],
        sandbox=state.sandbox,
    )
    lines = [f"{len(page.orders)} order(s)" + ("; more with next_cursor" if page.next_cursor else "") + "."]
    lines += [
        f"- [{o.vendor}] {o.order_id} PO {o.po_number or '-'}: {o.status.value}, {o.total or '-'}" for o in page.orders
    ]
    lines += page.notes
    lines += [f"{e.vendor} failed ({e.code}): {e.message}" for e in result.vendor_errors]
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))], structured_content=result.model_dump(mode="json")
    )
