"""list_vendors: which vendors are configured and what each can do."""

from __future__ import annotations

from dataclasses import asdict

from mcp.types import ToolAnnotations
from pydantic import Field

from parts_mcp.domain import Model
from parts_mcp.tools.context import AppCtx, app

TITLE = "List vendors"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class VendorCapabilities(Model):
    lookup: bool
    quote: bool
    place: bool
    get: bool
    list: bool
    idempotency_key: bool
    find_by_po: bool
    replays_failures: bool
    ephemeral_part_ids: bool


class VendorInfo(Model):
    vendor: str = Field(description="The key the other tools take as vendor")
    kind: str
    name: str
    capabilities: VendorCapabilities
    options: str = Field(description="What place_order's options accept at this vendor")
    sandbox: bool


class GuardInfo(Model):
    confirmation: str
    read_only: bool
    po_pattern: str
    max_order_total: str | None


class ListVendorsResult(Model):
    vendors: list[VendorInfo]
    guard: GuardInfo


async def list_vendors(ctx: AppCtx) -> ListVendorsResult:
    """List the configured vendors, what each can do (look up, place, get, list orders) and the order rules."""
    state = app(ctx)
    service = state.service
    policy = service.policy
    return ListVendorsResult(
        vendors=[
            VendorInfo(
                vendor=key,
                kind=client.kind,
                name=client.display_name,
                capabilities=VendorCapabilities(**asdict(client.capabilities)),
                options=client.options_help,
                sandbox=state.sandbox,
            )
            for key, client in service.vendors.items()
        ],
        guard=GuardInfo(
            confirmation=policy.confirmation,
            read_only=policy.read_only,
            po_pattern=policy.po_pattern.pattern,
            max_order_total=str(policy.max_order_total) if policy.max_order_total is not None else None,
        ),
    )
