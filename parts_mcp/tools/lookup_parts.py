"""lookup_parts: find parts by number or name across vendors, with partial results."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model, Part
from parts_mcp.tools.context import AppCtx, app

TITLE = "Look up parts"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class VendorErrorInfo(Model):
    vendor: str
    code: str
    message: str
    retryable: bool


class LookupPartsResult(Model):
    """Parts found, queries nobody had, and vendors that failed or were too slow."""

    parts: list[Part]
    not_found: list[str] = Field(description="Queries that no vendor that answered could find")
    vendor_errors: list[VendorErrorInfo] = Field(description="Vendors that failed; the other results still stand")
    sandbox: bool = Field(description="True when these are simulated vendors, not real ones")


async def lookup_parts(
    query: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=120)]],
        Field(min_length=1, max_length=200, description='Part numbers (most reliable, e.g. "MS21042L3") or names'),
    ],
    ctx: AppCtx,
    vendors: Annotated[
        list[str] | None,
        Field(description="Vendor keys to ask (see list_vendors); default: every vendor that can look up parts"),
    ] = None,
) -> Annotated[CallToolResult, LookupPartsResult]:
    """Find parts by part number or name at the configured vendors, all at once.

    Each part comes with the vendor's part_id (pass it to place_order), its unit price with a
    price_basis (a "list" price may be above what the account is billed), and stock. A vendor that
    fails or is slow is reported in vendor_errors while the others' results still come back.
    """
    state = app(ctx)
    outcome = await state.service.lookup(query, vendors)
    result = LookupPartsResult(
        parts=outcome.parts,
        not_found=outcome.not_found,
        vendor_errors=[VendorErrorInfo(**vars(e)) for e in outcome.vendor_errors],
        sandbox=state.sandbox,
    )
    lines = [f"{len(result.parts)} part(s) found" + (" (sandbox)" if state.sandbox else "") + "."]
    for part in result.parts[:20]:
        price = f"{part.unit_price} ({part.price_basis.value})" if part.unit_price else "no price"
        stock = f", {part.available_quantity} in stock" if part.available_quantity is not None else ""
        lines.append(f"- [{part.vendor}] {part.part_number} {part.name}: {price}{stock}; part_id {part.part_id}")
    if len(result.parts) > 20:
        lines.append(f"... and {len(result.parts) - 20} more in the structured result.")
    if result.not_found:
        lines.append("Not found: " + ", ".join(result.not_found))
    for error in result.vendor_errors:
        lines.append(f"{error.vendor} failed ({error.code}): {error.message}")
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content=result.model_dump(mode="json"),
    )
