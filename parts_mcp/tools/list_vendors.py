"""list_vendors: which vendors are configured and what each can do."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

from mcp.types import CallToolResult, TextContent, ToolAnnotations

from parts_mcp.domain import Model
from parts_mcp.tools.context import AppCtx, app

TITLE = "List vendors"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class VendorInfo(Model):
    vendor: str
    kind: str
    name: str
    capabilities: dict[str, bool]  # the client's Capabilities, as declared in its module
    options: str
    search: str = ""
    sandbox: bool


class GuardInfo(Model):
    confirmation: str
    read_only: bool
    po_pattern: str
    max_order_total: str | None
    max_daily_total_per_vendor: str | None = None
    max_daily_total_per_principal: str | None = None
    approval_required_above: str | None = None  # four-eyes: above this a second person approves
    order_vendors: list[str] | None = None


class ListVendorsResult(Model):
    vendors: list[VendorInfo]
    guard: GuardInfo


CONFIRMATION = {
    "auto": "a person confirms each order in a form where the client can show one; otherwise a person approves "
    "it on an approval page sent to them out of band (place_order returns awaiting_approval)",
    "elicit": "a person confirms each order in a form; clients without forms cannot order",
    "approval": "a person approves each order on an approval page sent to them out of band (place_order returns "
    "awaiting_approval); nothing the assistant receives can approve it",
    "token": "THE ASSISTANT CONFIRMS, NOT A PERSON (trusted automation): place_order returns a preview and a "
    "token; show the user the preview and confirm only what they approve",
}


async def list_vendors(ctx: AppCtx) -> CallToolResult:
    """List the vendors, what each can do and search by, its order options, and the order rules."""
    state = app(ctx)
    policy = state.service.policy
    result = ListVendorsResult(
        vendors=[
            VendorInfo(
                vendor=key,
                kind=client.kind,
                name=client.display_name,
                capabilities=asdict(client.capabilities),
                options=client.options_help,
                search=getattr(client, "search_help", ""),
                sandbox=state.sandbox,
            )
            for key, client in state.service.vendors.items()
        ],
        guard=GuardInfo(
            confirmation=policy.confirmation,
            read_only=policy.read_only,
            po_pattern=policy.po_pattern.pattern,
            max_order_total=_amount(policy.max_order_total),
            max_daily_total_per_vendor=_amount(policy.max_daily_total_per_vendor),
            max_daily_total_per_principal=_amount(policy.max_daily_total_per_principal),
            approval_required_above=_amount(policy.approval_required_above),
            order_vendors=sorted(policy.order_vendors) if policy.order_vendors is not None else None,
        ),
    )
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(_text(result)))],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


def _text(result: ListVendorsResult) -> list[str]:
    lines = [
        f"{len(result.vendors)} vendor(s)"
        + (" (sandbox: simulated)" if any(v.sandbox for v in result.vendors) else "")
        + ":"
    ]
    for v in result.vendors:
        caps = v.capabilities
        can = [name for flag, name in _CAN if caps.get(flag)]
        cannot = "" if caps.get("place") else " Cannot take orders through its API."
        lines.append(f"- {v.vendor}: {v.name}. Can {', '.join(can) or 'nothing'}.{cannot}")
        if v.search:
            lines.append(f"  search: {v.search}")
        if caps.get("place"):
            lines.append(f"  options: {v.options}")
    g = result.guard
    if g.read_only:
        lines.append("Orders: this server is read-only; place_order does not exist.")
        return lines
    lines.append(f"Orders: confirmation {g.confirmation}: {CONFIRMATION.get(g.confirmation, '')}.")
    rules = [f"PO number required, matching {g.po_pattern}"]
    if g.max_order_total:
        rules.append(f"at most {g.max_order_total} per order")
    if g.max_daily_total_per_vendor:
        rules.append(f"at most {g.max_daily_total_per_vendor} per vendor per day")
    if g.max_daily_total_per_principal:
        rules.append(f"at most {g.max_daily_total_per_principal} per person per day")
    if g.approval_required_above:
        rules.append(f"orders that may bill over {g.approval_required_above} need a second person's approval")
    if g.order_vendors is not None:
        rules.append(f"orders only with {', '.join(g.order_vendors) or 'no vendor'}")
    lines.append("Rules: " + "; ".join(rules) + ".")
    return lines


_CAN = (("lookup", "look up parts"), ("place", "place orders"), ("get", "get orders"), ("list", "list orders"))


def _amount(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None
