"""approve_order: four-eyes. A second, signed-in person approves an order someone else asked for.

Registered only where people sign in (`[server.auth]`). The approver's token must hold
`orders:approve` and name someone other than the requester; and the approver confirms in a form
their own client shows them, so neither the requester's model nor the approver's can approve alone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import AcceptedElicitation, Elicit, ElicitationResult, Resolve
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from parts_mcp.domain import Model, Order
from parts_mcp.orders.approvals import ApprovalRequest
from parts_mcp.orders.guard import GuardError
from parts_mcp.tools import text
from parts_mcp.tools.context import AppCtx, app, principal, shows_forms

TITLE = "Approve another person's order"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)


class ApproverDecision(BaseModel):  # a form: its titles are what the approver reads
    """The approver's own answer; the order is in the message above it."""

    decision: Literal["approve", "decline"] = Field(
        title="Your decision", description="approve places exactly the order shown; decline orders nothing"
    )


class ApproveOrderResult(Model):
    status: Literal["placed", "billed_above_approval", "outcome_unknown", "refused", "declined", "changed"]
    approval_id: str
    message: str
    order: Order | None = None
    sandbox: bool


async def load(approval_id: str, ctx: AppCtx) -> ApprovalRequest:
    return await app(ctx).service.approvals.pending(approval_id.strip(), principal(ctx))


async def ask_approver(request: Annotated[ApprovalRequest, Resolve(load)], ctx: AppCtx) -> Elicit[ApproverDecision]:
    if not shows_forms(ctx):
        raise GuardError(
            "approving needs you, not your assistant: use a client that shows forms (MCP elicitation), where "
            "you confirm the order yourself. Nothing was decided.",
            field="approval_id",
            code="HUMAN_CONFIRMATION_REQUIRED",
        )
    lines = [
        f"{request.requested_by} asks for this order, which needs a second person's approval.",
        *text.preview(request.preview, request.display_name, request.warnings),
        f"Decide before {text.when(request.expires_at)}.",
    ]
    return Elicit("\n".join([*lines, text.VENDOR_TEXT]), ApproverDecision)


async def approve_order(
    approval_id: Annotated[str, Field(min_length=1, max_length=64, description="From awaiting_approval")],
    ctx: AppCtx,
    request: Annotated[ApprovalRequest, Resolve(load)],
    answer: Annotated[ElicitationResult[ApproverDecision], Resolve(ask_approver)],
) -> CallToolResult:
    """Approve or decline an order another person asked for (four-eyes), as yourself.

    You confirm it in a form your client shows you; the order is then placed exactly once, or declined.
    Needs the orders:approve permission; nobody approves their own order.
    """
    state = app(ctx)
    chosen = answer.data if isinstance(answer, AcceptedElicitation) else None
    if not isinstance(chosen, ApproverDecision):
        raise GuardError(
            "you closed the form without deciding; the request still waits. Nothing was ordered.",
            field="approval_id",
            code="NOT_DECIDED",
        )
    decided = await state.service.approvals.decide_as(
        request.approval_id, principal(ctx), approve=chosen.decision == "approve"
    )
    kind = "refused" if decided.kind == "changed" and decided.renewed is None else decided.kind
    result = ApproveOrderResult(
        status=kind,
        approval_id=request.approval_id,
        message=decided.message,
        order=decided.order,
        sandbox=state.sandbox,
    )
    lines = [f"status: {kind} ({decided.message})"]
    if decided.order is not None:
        lines += text.order(decided.order, state.service.vendor(request.vendor).status_help)
    if decided.renewed is not None:
        lines.append(
            f"Prices changed: a new request waits (approval_id {decided.renewed[0].approval_id}); call approve_order "
            "with it to see the new prices."
        )
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )
