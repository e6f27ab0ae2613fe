"""place_order: the guarded write. A human confirms the exact order before anything is sent.

Two resolvers run before the body: `prepare` validates and prices the order (or finds the PO in
the ledger), and `ask_human` puts the priced order in front of the human through form elicitation
when the client can show forms. Resolvers work on both protocol eras: pushed `elicitation/create`
on handshake sessions, `InputRequiredResult` round trips on 2026-07-28.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from mcp.server.mcpserver import AcceptedElicitation, Elicit, ElicitationResult, Resolve
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from parts_mcp.domain import Model, Money, Order, OrderItem, OrderStatus, Preview
from parts_mcp.orders.guard import GuardError
from parts_mcp.orders.results import (
    AwaitingApproval,
    BilledAboveApproval,
    ConfirmationRequired,
    NewOrder,
    Outcome,
    OutcomeUnknown,
    Placed,
    Prepared,
    Repeat,
)
from parts_mcp.orders.service import OrdersService
from parts_mcp.tools import text
from parts_mcp.tools.context import AppCtx, actor, app, principal, shows_forms, shows_links
from parts_mcp.tools.options import OrderOptions

TITLE = "Place a purchase order"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)


class ConfirmOrder(BaseModel):  # a form: its field titles are what the human reads
    """The form the human answers; the order itself is in the message above it."""

    place_order: bool = Field(title="Place this order", description="Tick to place exactly the order shown above")


class PlaceOrderResult(Model):
    """One of three outcomes, told apart by `status`."""

    status: Literal["confirmation_required", "awaiting_approval", "placed", "billed_above_approval", "outcome_unknown"]
    vendor: str
    po_number: str
    sandbox: bool
    preview: Preview | None = None
    confirmation_token: str | None = None
    expires_at: datetime | None = None
    order: Order | None = None
    idempotency_key: str | None = None
    replayed: bool | None = None
    placed_by: str | None = Field(default=None, description="placed: the person who ordered it")
    approved_by: str | None = Field(default=None, description="placed: who approved it out of band")
    approval_id: str | None = Field(default=None, description="awaiting_approval: the request a person decides on")
    sent_to: list[str] | None = Field(default=None, description="awaiting_approval: where the request went")
    approved_limit: Money | None = Field(default=None, description="billed_above_approval: the most the user approved")
    cancelled: bool | None = Field(default=None, description="billed_above_approval: this server cancelled the order")
    warnings: list[str] = Field(default_factory=list)
    next_steps: str | None = None


async def prepare(
    vendor: str,
    po_number: str,
    items: list[OrderItem],
    notes: str | None,
    options: OrderOptions | None,
    ctx: AppCtx,
) -> Prepared:
    chosen = options.for_vendor([item.part_id for item in items]) if options else None
    return await app(ctx).service.prepare(vendor, po_number, items, notes, chosen, principal(ctx))


Route = Literal["form", "approval", "token"]


def route(ctx: AppCtx, prepared: Prepared) -> Route:
    """How a person confirms this call: a form, an approval out of band, or (trusted automation) a token.

    Raises:
        GuardError: `elicit` mode with a client that cannot show forms.
    """
    service = app(ctx).service
    if isinstance(prepared, NewOrder) and service.approvals.needs_second_person(prepared):
        return "approval"  # four-eyes, in every mode: a second person decides
    mode = service.policy.confirmation
    if mode in ("token", "approval"):
        return mode
    if shows_forms(ctx):
        return "form"
    if mode == "auto":
        return "approval"
    raise GuardError(
        "this server places orders only after a person confirms them in a form (guard.confirmation = elicit), "
        "and this client cannot show forms. Nothing was ordered. Use a client that supports forms "
        "(elicitation), or ask the administrator about the confirmation mode.",
        field="confirmation",
        code="HUMAN_CONFIRMATION_REQUIRED",
    )


async def ask_human(prepared: Annotated[Prepared, Resolve(prepare)], ctx: AppCtx) -> Elicit[ConfirmOrder] | None:
    if isinstance(prepared, Repeat) or route(ctx, prepared) != "form":
        return None  # a repeat of a recorded order, or a person confirms another way
    lines = text.preview(prepared.preview, prepared.display_name, prepared.warnings)
    return Elicit("\n".join([*lines, text.VENDOR_TEXT, "Place this order?"]), ConfirmOrder)


async def _request_approval(order: NewOrder, who: str, ctx: AppCtx) -> AwaitingApproval:
    """Hold the order for a person and send them the link; the model gets neither link nor secret."""
    state = app(ctx)
    url_elicitation = shows_links(ctx)
    four_eyes = state.service.approvals.needs_second_person(order)
    if four_eyes and not (state.signed_in and order.principal):
        raise GuardError(
            f"orders that may bill more than {state.service.policy.approval_required_above} need a second person's "
            "approval (guard.approval_required_above), and this server does not know who anyone is: people sign "
            "in only over HTTP with [server.auth]. Nothing was ordered. Order less, or use the team deployment.",
            field="items",
            code="SECOND_APPROVER_UNAVAILABLE",
        )
    # Four-eyes approvers decide in their own signed-in session; the channels only let them know.
    if not four_eyes and not state.channels.can_reach(url_elicitation=url_elicitation):
        raise GuardError(
            "this server needs a person to approve each order out of band, and no channel to reach one is "
            "configured. Nothing was ordered. An administrator can set [approvals] open_browser = true (the "
            "server's own machine), webhook_url (the approvers' chat or e-mail relay) or public_url, or use a "
            "client that shows forms or URL elicitation.",
            field="confirmation",
            code="HUMAN_APPROVAL_UNAVAILABLE",
        )
    waiting, request, link = await state.service.request_approval(order, who)
    if link is None:
        return waiting

    async def elicit_url(message: str, url: str) -> bool:
        answer = await ctx.elicit_url(message, url, waiting.approval_id)
        return answer.action == "accept"

    delivery = await state.channels.deliver(request, link, elicit_url=elicit_url if url_elicitation else None)
    return replace(waiting, reached=delivery.reached, notes=[*order.warnings, *delivery.notes], second_person=four_eyes)


async def place_order(
    vendor: Annotated[str, Field(description="Vendor key")],
    po_number: Annotated[str, Field(description="The buyer's PO number; ask the user, never invent one")],
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=100)],
    ctx: AppCtx,
    prepared: Annotated[Prepared, Resolve(prepare)],
    answer: Annotated[ElicitationResult[ConfirmOrder], Resolve(ask_human)],
    notes: Annotated[str | None, Field(max_length=1000, description="Printed on the order")] = None,
    options: Annotated[OrderOptions | None, Field(description="Vendor-specific; see list_vendors")] = None,
    confirmation_token: Annotated[
        str | None, Field(description="From confirmation_required, once the user approved")
    ] = None,
    confirmed_total: Annotated[str | None, Field(description='The previewed total, e.g. "123.40 USD"')] = None,
) -> CallToolResult:
    """Place a purchase order, only after the user confirmed the exact order and total.

    The user is asked in a form, or this returns confirmation_required with a preview and a token,
    writing nothing: show the preview, and only if the user approves call again with the same
    arguments plus confirmation_token and confirmed_total. Repeating a PO never orders twice.
    """
    state = app(ctx)
    service = state.service
    who = actor(ctx)
    human = await _unless_declined(answer, prepared, who, service)

    outcome: ConfirmationRequired | Outcome
    if isinstance(prepared, Repeat):
        outcome = await service.resume(prepared, who)
    elif isinstance(human, ConfirmOrder):
        outcome = await service.place(prepared, actor=who, confirmed_by="elicitation")
    elif (how := route(ctx, prepared)) == "approval":
        if confirmation_token is not None:
            raise GuardError(
                "this server takes no confirmation tokens: a person approves each order on an approval page. Call "
                "place_order without confirmation_token and confirmed_total.",
                field="confirmation_token",
                code="TOKEN_NOT_ACCEPTED",
            )
        outcome = await _request_approval(prepared, who, ctx)
    elif confirmation_token is None:
        if confirmed_total is not None and how == "token":
            raise GuardError(
                "needs the confirmation_token from this order's preview. Call place_order without confirmed_total "
                "to get a preview and a token, show the preview to the user, then confirm with both.",
                field="confirmed_total",
                code="TOKEN_REQUIRED",
            )
        outcome = await service.confirmation_required(prepared, who)
    else:
        outcome = await service.place(
            prepared,
            actor=who,
            confirmed_by="token",
            confirmation_token=confirmation_token,
            confirmed_total=confirmed_total,
        )
    return _result(outcome, prepared, state.sandbox, service.vendor(vendor).status_help)


async def _unless_declined(
    answer: ElicitationResult[ConfirmOrder], prepared: Prepared, who: str, service: OrdersService
) -> ConfirmOrder | None:
    """The person's answer to the form (None when no form was asked).

    Raises:
        GuardError: DECLINED, the person said no or closed the form; audited, nothing ordered.
    """
    if isinstance(answer, AcceptedElicitation):
        # The SDK hands `ask_human`'s None (no form asked) back as accepted, with None for the data.
        human = cast("ConfirmOrder | None", answer.data)
        if human is None or human.place_order:
            return human
    await service.declined(prepared, who, getattr(answer, "action", "decline"))
    raise GuardError(
        "the user did not approve this order, so nothing was ordered. Do not retry unless the user asks for a "
        "changed order.",
        field="confirmation",
        code="DECLINED",
    )


def _result(
    outcome: ConfirmationRequired | Outcome,
    prepared: Prepared,
    sandbox: bool,
    help: Mapping[OrderStatus, str],
) -> CallToolResult:
    request = prepared.request
    base: dict[str, Any] = {"vendor": request.vendor, "po_number": request.po_number, "sandbox": sandbox}
    if isinstance(outcome, ConfirmationRequired):
        warnings = prepared.warnings if isinstance(prepared, NewOrder) else []
        result, lines = _confirmation(outcome, prepared.display_name, warnings, base)
    elif isinstance(outcome, Placed):
        result, lines = _placed(outcome, help, base)
    elif isinstance(outcome, BilledAboveApproval):
        result, lines = _over(outcome, help, base)
    elif isinstance(outcome, AwaitingApproval):
        result, lines = _awaiting(outcome, base)
    else:
        result, lines = _unknown(outcome, base)
    if result.next_steps:
        lines.append(f"Next: {result.next_steps}")
    if sandbox:
        lines.append("(sandbox: simulated vendor, nothing real is ordered)")
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )


def _confirmation(
    outcome: ConfirmationRequired, display_name: str, warnings: list[str], base: dict[str, Any]
) -> tuple[PlaceOrderResult, list[str]]:
    result = PlaceOrderResult(
        status="confirmation_required",
        preview=outcome.preview,
        confirmation_token=outcome.confirmation_token,
        expires_at=outcome.expires_at,
        warnings=warnings,
        next_steps=(
            "Show this preview to the user. Only if they approve it, call place_order again with the same "
            f'arguments plus confirmation_token and confirmed_total="{outcome.preview.total}". For any change, '
            "call without confirmation_token for a new preview."
        ),
        **base,
    )
    return result, [
        f"status: confirmation_required (CONFIRMATION REQUIRED: nothing has been ordered yet). {text.VENDOR_TEXT}",
        *text.preview(outcome.preview, display_name, warnings),
        f"confirmation_token: {outcome.confirmation_token}",
        f"token expires: {text.when(outcome.expires_at)}",
    ]


_HOW = {
    True: "ALREADY PLACED earlier; no new order was created (replayed: true)",
    False: "PLACED now (replayed: false)",
    None: "PLACED: resent under the same idempotency key after a lost answer, so this may be the first "
    "attempt's order (replayed: unknown)",
}


def _placed(
    outcome: Placed, help: Mapping[OrderStatus, str], base: dict[str, Any]
) -> tuple[PlaceOrderResult, list[str]]:
    result = PlaceOrderResult(
        status="placed",
        order=outcome.order,
        idempotency_key=outcome.idempotency_key,
        replayed=outcome.replayed,
        placed_by=outcome.placed_by,
        approved_by=outcome.approved_by,
        warnings=outcome.warnings,
        **base,
    )
    lines = [
        f"status: placed ({_HOW[outcome.replayed]}). {text.VENDOR_TEXT}",
        *text.order(outcome.order, help),
        f"idempotency_key: {outcome.idempotency_key}",
        *([f"placed by: {outcome.placed_by}"] if outcome.placed_by else []),
        *([f"approved by: {outcome.approved_by}"] if outcome.approved_by else []),
    ]
    return result, lines + [f"Warning: {w}" for w in outcome.warnings]


def _over(
    outcome: BilledAboveApproval, help: Mapping[OrderStatus, str], base: dict[str, Any]
) -> tuple[PlaceOrderResult, list[str]]:
    result = PlaceOrderResult(
        status="billed_above_approval",
        order=outcome.order,
        idempotency_key=outcome.idempotency_key,
        approved_limit=outcome.approved,
        cancelled=outcome.cancelled,
        next_steps=outcome.next_steps,
        **base,
    )
    done = "this server CANCELLED it" if outcome.cancelled else "it could NOT be cancelled here: the order EXISTS"
    return result, [
        f"status: billed_above_approval (ATTENTION: the vendor billed MORE than the {outcome.approved} the user "
        f"approved; {done}). {text.VENDOR_TEXT}",
        *text.order(outcome.order, help),
        f"idempotency_key: {outcome.idempotency_key}",
    ]


def _awaiting(outcome: AwaitingApproval, base: dict[str, Any]) -> tuple[PlaceOrderResult, list[str]]:
    where = " and ".join(outcome.reached) or "the approvers"
    who = (
        f"a second person with the orders:approve permission (not the requester) must approve or decline PO "
        f"{outcome.po_number} from their own signed-in assistant (approve_order, approval_id {outcome.approval_id})"
        if outcome.second_person
        else f"a person must approve or decline PO {outcome.po_number} on the approval page (sent to {where})"
    )
    result = PlaceOrderResult(
        status="awaiting_approval",
        approval_id=outcome.approval_id,
        expires_at=outcome.expires_at,
        sent_to=outcome.reached or None,
        warnings=outcome.notes,
        next_steps=(
            f"Tell the user that {who} before {text.when(outcome.expires_at)}; nothing you hold can approve it. "
            "Then call place_order again with the same arguments (or get_order with the PO) to learn the outcome; "
            "the order is placed once it is approved, whether or not you call."
        ),
        **base,
    )
    sent = "the request was already sent earlier" if not outcome.new else f"the request was sent to {where}"
    lines = [
        f"status: awaiting_approval (WAITING FOR A PERSON: nothing has been ordered yet; {sent}).",
        f"approval_id: {outcome.approval_id}",
        f"expires: {text.when(outcome.expires_at)}",
    ]
    return result, lines + [f"Warning: {note}" for note in outcome.notes]


def _unknown(outcome: OutcomeUnknown, base: dict[str, Any]) -> tuple[PlaceOrderResult, list[str]]:
    result = PlaceOrderResult(
        status="outcome_unknown",
        idempotency_key=outcome.idempotency_key,
        next_steps=outcome.next_steps,
        warnings=[outcome.reason],
        **base,
    )
    return result, [
        f"status: outcome_unknown (OUTCOME UNKNOWN for PO {outcome.po_number} at {outcome.vendor}: the order "
        "may or may not exist; do not order again under a new PO).",
        f"Why: {outcome.reason}",
        f"idempotency_key: {outcome.idempotency_key}",
    ]
