"""list_purchase_orders: purchase orders across vendors, newest first, one page at a time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BeforeValidator, Field

from parts_mcp.domain import Model, OrderStatus, OrderSummary, no_bool
from parts_mcp.orders.service import OrdersService
from parts_mcp.tools import text
from parts_mcp.tools.context import AppCtx, app
from parts_mcp.tools.lookup_parts import VendorErrorInfo

TITLE = "List purchase orders"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


StatusFilter = Literal[
    "open",
    "draft",
    "pending_approval",
    "approved",
    "ordered",
    "acknowledged",
    "in_progress",
    "shipped",
    "partially_received",
    "received",
    "completed",
    "cancelled",
    "rejected",
    "unknown",
]
# "open": anything that may still need someone's attention or money.
OPEN = frozenset(OrderStatus) - {OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REJECTED}


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class ListPurchaseOrdersResult(Model):
    orders: list[OrderSummary]
    next_cursor: str | None = None
    notes: list[str] = Field(default_factory=list)
    vendor_errors: list[VendorErrorInfo] = Field(default_factory=list[VendorErrorInfo])
    sandbox: bool


async def list_purchase_orders(
    ctx: AppCtx,
    vendor: Annotated[str | None, Field(description="Vendor key; default all")] = None,
    status: Annotated[
        list[StatusFilter] | None,
        BeforeValidator(_one_or_many),
        Field(description='One status, several, or "open" (not completed, cancelled or rejected)'),
    ] = None,
    po_number: Annotated[str | None, Field(max_length=100)] = None,
    created_after: Annotated[datetime | None, Field(description="ISO 8601, inclusive")] = None,
    created_before: Annotated[datetime | None, Field(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Field(ge=1, le=100), BeforeValidator(no_bool)] = 20,
    cursor: Annotated[str | None, Field(description="From the previous page; same filters")] = None,
) -> CallToolResult:
    """List purchase orders newest first, filtered by vendor, status, PO number and date.

    Where a vendor's API cannot list orders (Skynet, Keyloop), the orders this server placed are
    listed from its ledger.
    """
    state = app(ctx)
    statuses = {s for f in status or () for s in (OPEN if f == "open" else {OrderStatus(f)})}
    page = await state.service.list_orders(
        vendor=vendor,
        statuses=statuses or None,
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
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(_text(result, state.service)))],
        structured_content={**result.model_dump(mode="json", exclude_none=True), "next_cursor": result.next_cursor},
    )


def _text(result: ListPurchaseOrdersResult, service: OrdersService) -> list[str]:
    more = "more pages follow" if result.next_cursor else "this is the last page"
    lines = [f"{len(result.orders)} order(s), newest first; {more}. {text.VENDOR_TEXT}"]
    lines += [text.summary(o) for o in result.orders]
    seen = sorted({(o.vendor, o.status) for o in result.orders})
    if seen:
        lines.append("Statuses:")
        lines += [f"  {vendor} {status.value}: {_meaning(service, vendor, status)}" for vendor, status in seen]
    if result.next_cursor:
        lines.append(f'Next page: call again with the same filters and cursor="{result.next_cursor}".')
    lines += result.notes
    lines += [text.vendor_error(e) for e in result.vendor_errors]
    if result.sandbox:
        lines.append("(sandbox: simulated vendors)")
    return lines


def _meaning(service: OrdersService, vendor: str, status: OrderStatus) -> str:
    help: Mapping[OrderStatus, str] = service.vendors[vendor].status_help if vendor in service.vendors else {}
    return help.get(status) or text.STATUS_MEANINGS[status]
