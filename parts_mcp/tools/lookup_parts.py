"""lookup_parts: find parts by number or name across vendors, with partial results."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model, Part, Suggestion
from parts_mcp.tools import text
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
    retry_after: float | None = None  # seconds, when the vendor said


class LookupPartsResult(Model):
    """Parts found, queries nobody had, and vendors that failed or were too slow."""

    parts: list[Part]
    not_found: list[str] = Field(description="Queries that no vendor that answered could find")
    vendor_errors: list[VendorErrorInfo] = Field(description="Vendors that failed; the other results still stand")
    suggestions: list[Suggestion] = Field(
        default_factory=list[Suggestion], description="Near part numbers for not_found queries"
    )
    sandbox: bool = Field(description="True when these are simulated vendors, not real ones")


async def lookup_parts(
    query: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=120)]],
        Field(min_length=1, max_length=200, description='Part numbers (best, e.g. "MS21042L3") or names'),
    ],
    ctx: AppCtx,
    vendors: Annotated[list[str] | None, Field(description="Vendor keys; default all")] = None,
) -> CallToolResult:
    """Find parts by part number or name at every vendor at once.

    Each part has a part_id for place_order, a unit price with its basis (a list price may be above
    what the account is billed) and stock. Slow or failing vendors are listed; the rest still answer.
    """
    state = app(ctx)
    outcome = await state.service.lookup(query, vendors)
    result = LookupPartsResult(
        parts=outcome.parts,
        not_found=outcome.not_found,
        vendor_errors=[VendorErrorInfo(**vars(e)) for e in outcome.vendor_errors],
        suggestions=outcome.suggestions,
        sandbox=state.sandbox,
    )
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(_text(result)))],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


def _text(result: LookupPartsResult) -> list[str]:
    sandbox = " (sandbox: simulated vendors)" if result.sandbox else ""
    lines = [f"{len(result.parts)} part(s) found{sandbox}. {text.VENDOR_TEXT}"]
    lines += [text.part(p) for p in result.parts]
    if result.not_found:
        lines.append("Not found anywhere: " + ", ".join(text.quoted(q, 120) for q in result.not_found))
    for s in result.suggestions:
        lines.append(
            f"  {text.quoted(s.query, 120)}: did you mean {text.quoted(s.part_number, 80)} at {s.vendor} "
            f"({text.quoted(s.name, 120)})? Look it up to get its part_id and price."
        )
    lines += [text.vendor_error(e) for e in result.vendor_errors]
    return lines
