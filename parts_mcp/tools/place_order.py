"""place_order: the guarded write. A human confirms the exact order before anything is sent.

Two resolvers run before the body: `prepare` validates and prices the order (or finds the PO in
the ledger), and `ask_human` puts the priced order in front of the human through form elicitation
when the client can show forms. Resolvers work on both protocol eras: pushed `elicitation/create`
on handshake sessions, `InputRequiredResult` round trips on 2026-07-28.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from parts_mcp.domain import Model, Order, OrderItem, Preview
from parts_mcp.orders.service import ConfirmationRequired, OutcomeUnknown, Placed, Prepared
from parts_mcp.server.errors import boundary
from parts_mcp.tools.context import AppCtx, actor, app

TITLE = "Place a purchase order"
ANNOTATIONS = ToolAnnotations(
    title=TITLE, read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)


class ConfirmOrder(BaseModel):  # a form: its field titles are what the human reads
    """The form the human answers; the order itself is in the message above it."""

    place_order: bool = Field(title="Place this order", description="Tick to place exactly the order shown above")


class PlaceOrderResult(Model):
    """One of three outcomes, told apart by `status`."""

    status: Literal["confirmation_required", "placed", "outcome_unknown"]
    vendor: str
    po_number: str
    sandbox: bool
    preview: Preview | None = Field(default=None, description="confirmation_required: show this to the user")
    confirmation_token: str | None = Field(default=None, description="confirmation_required: pass back to confirm")
    expires_at: datetime | None = None
    order: Order | None = Field(default=None, description="placed: the vendor's order")
    idempotency_key: str | None = None
    replayed: bool | None = Field(
        default=None,
        description="placed: true = an existing order returned; false = created now; absent = resent under the same "
        "idempotency key after a lost answer (the vendor may have returned the earlier order)",
    )
    warnings: list[str] = Field(default_factory=list)
    next_steps: str | None = None


async def prepare(
    vendor: str, po_number: str, items: list[OrderItem], notes: str | None, options: dict[str, Any] | None, ctx: AppCtx
) -> Prepared:
    # Resolvers run before the tool body, outside its error boundary: they need their own.
    with boundary(app(ctx).redactor):
        return await app(ctx).service.prepare(vendor, po_number, items, notes, options)


async def ask_human(prepared: Annotated[Prepared, Resolve(prepare)], ctx: AppCtx) -> Elicit[ConfirmOrder] | None:
    if prepared.existing is not None:
        return None  # a repeat of a confirmed order: nothing new will be written
    mode = app(ctx).service.policy.confirmation
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    can_ask = elicitation is not None and (elicitation.form is not None or elicitation.url is None)
    if mode == "token" or (mode == "auto" and not can_ask):
        return None
    if not can_ask:
        raise ToolError(
            "[HUMAN_CONFIRMATION_REQUIRED] This server places orders only after a person confirms them in a form "
            "(guard.confirmation = elicit), and this client cannot show forms. Nothing was ordered."
        )
    return Elicit(prepared.describe() + "\n\nPlace this order?", ConfirmOrder)


async def place_order(
    vendor: Annotated[str, Field(description="Vendor key from lookup_parts / list_vendors")],
    po_number: Annotated[str, Field(description="The buyer's purchase order number; required, one PO = one order")],
    items: Annotated[
        list[OrderItem], Field(min_length=1, max_length=100, description="Lines: part_id from lookup_parts + quantity")
    ],
    ctx: AppCtx,
    prepared: Annotated[Prepared, Resolve(prepare)],
    answer: Annotated[ElicitationResult[ConfirmOrder], Resolve(ask_human)],
    notes: Annotated[str | None, Field(max_length=1000, description="Printed on the order paperwork")] = None,
    options: Annotated[
        dict[str, Any] | None, Field(description="Vendor-specific fields, as list_vendors shows per vendor")
    ] = None,
    confirmation_token: Annotated[
        str | None, Field(description="From a confirmation_required result, after the user approved its preview")
    ] = None,
    confirmed_total: Annotated[
        str | None, Field(description='The previewed total the user approved, exactly, e.g. "123.40 USD"')
    ] = None,
) -> Annotated[CallToolResult, PlaceOrderResult]:
    """Place a purchase order with one vendor, after the user has confirmed the exact order and total.

    Either the user is asked directly in a form, or this returns status "confirmation_required" with a
    preview and a confirmation_token and writes nothing: show the preview (lines, total, caveats) to
    the user, and only when they approve call place_order again with the same arguments plus
    confirmation_token and confirmed_total (the previewed total). Any change to the order needs a new
    preview. Repeating a call with the same po_number and items never orders twice: it returns the
    existing order (replayed: true). "outcome_unknown" means do not re-order; follow next_steps.

    options by vendor (list_vendors has the details): factoryai supplier_id, priority,
    requested_delivery_date, shipping_address, requires_approval, justification; keyloop order_type,
    vehicle_references, contact, delivery_address; partssource shipping_method, use_shipping_account,
    required_fields; skynet none. shopmonkey cannot take orders through its API.
    """
    state = app(ctx)
    service = state.service
    who = actor(ctx)
    human = answer.data if isinstance(answer, AcceptedElicitation) else None
    if not isinstance(answer, AcceptedElicitation) or (isinstance(human, ConfirmOrder) and not human.place_order):
        await service.ledger.audit(
            "human_declined",
            actor=who,
            vendor=vendor,
            po_number=prepared.request.po_number,
            action=getattr(answer, "action", "decline"),
        )
        raise ToolError(
            "[DECLINED] The user did not approve this order, so nothing was ordered. Do not retry unless the user "
            "asks for a changed order."
        )

    outcome: ConfirmationRequired | Placed | OutcomeUnknown
    if prepared.existing is not None:
        outcome = await service.resume(prepared, who)
    elif isinstance(human, ConfirmOrder):
        outcome = await service.place(prepared, actor=who, confirmed_by="elicitation")
    elif confirmation_token is None:
        outcome = await service.confirmation_required(prepared, who)
    else:
        outcome = await service.place(
            prepared,
            actor=who,
            confirmed_by="token",
            confirmation_token=confirmation_token,
            confirmed_total=confirmed_total,
        )
    return _result(outcome, prepared, state.sandbox)


def _result(outcome: ConfirmationRequired | Placed | OutcomeUnknown, prepared: Prepared, sandbox: bool) -> Any:
    request = prepared.request
    base: dict[str, Any] = {"vendor": request.vendor, "po_number": request.po_number, "sandbox": sandbox}
    if isinstance(outcome, ConfirmationRequired):
        result = PlaceOrderResult(
            status="confirmation_required",
            preview=outcome.preview,
            confirmation_token=outcome.confirmation_token,
            expires_at=outcome.expires_at,
            warnings=outcome.preview.caveats,
            **base,
            next_steps=(
                "Show this preview to the user. Only if they approve it, call place_order again with the same "
                f'arguments plus confirmation_token and confirmed_total="{outcome.preview.total}".'
            ),
        )
        text = f"Nothing ordered yet: confirmation required.\n{outcome.text}\n{result.next_steps}"
    elif isinstance(outcome, Placed):
        order = outcome.order
        result = PlaceOrderResult(
            status="placed",
            order=order,
            idempotency_key=outcome.idempotency_key,
            replayed=outcome.replayed,
            warnings=outcome.warnings,
            **base,
        )
        verb = "Already placed earlier (no new order)" if outcome.replayed else "Placed"
        text = (
            f"{verb}: {request.vendor} order {order.order_id} for PO {request.po_number}, status "
            f"{order.status.value}, total {order.total}."
        )
        text += "".join(f"\n{w}" for w in outcome.warnings)
    else:
        result = PlaceOrderResult(
            status="outcome_unknown",
            idempotency_key=outcome.idempotency_key,
            next_steps=outcome.next_steps,
            warnings=[outcome.reason],
            **base,
        )
        text = f"Outcome unknown for PO {request.po_number}: {outcome.reason}\n{outcome.next_steps}"
    if sandbox:
        text += "\n(sandbox: simulated vendor, nothing real was ordered)"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json", exclude_none=True),
    )
