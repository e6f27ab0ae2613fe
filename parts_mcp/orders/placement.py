"""Guarded placement: record the confirmed intent durably, then send it once; finish what was interrupted.

`place` checks the human's confirmation (`confirming`), claims the intent in one ledger transaction
(the unique (vendor, PO) key, the single-use token, the daily budget) and only then calls the vendor.
`resume` answers a repeated PO from the ledger or finishes its intent. What to do after a lost answer
is decided by the pure functions of `reconcile`; `_drive` only gathers the evidence they ask for and
carries their decision out. Within a process, same-PO calls queue on a lock; across processes sharing
the ledger, a lease decides.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from typing import Literal

from parts_mcp.domain import Money, Order, OrderStatus, Preview
from parts_mcp.orders import billing, reconcile
from parts_mcp.orders.billing import total_warnings
from parts_mcp.orders.confirming import Confirmations
from parts_mcp.orders.guard import GuardError
from parts_mcp.orders.ledger import ClaimResult, Intent, Ledger
from parts_mcp.orders.preparing import Preparer
from parts_mcp.orders.reconcile import Action, Decision, Facts, Look
from parts_mcp.orders.recording import (
    LEASE_SECONDS,
    KeyedLocks,
    Recorder,
    approval_expiry,
    awaits_second_person,
    request_of,
)
from parts_mcp.orders.results import (
    AwaitingApproval,
    BilledAboveApproval,
    Clock,
    GuardPolicy,
    NewOrder,
    Outcome,
    OutcomeUnknown,
    Placed,
    Repeat,
)
from parts_mcp.orders.states import IllegalTransition, IntentState
from parts_mcp.vendors.base import Cancels, OrderRequest, VendorClient, VendorError

logger = logging.getLogger(__name__)

APPROVED = "approved:"  # an intent's confirmed_by once a person approved it out of band


class Placement:
    def __init__(
        self,
        vendor: Callable[[str], VendorClient],
        ledger: Ledger,
        policy: GuardPolicy,
        confirmations: Confirmations,
        preparer: Preparer,
        *,
        accounts: dict[str, str],
        owner: str,
        locks: KeyedLocks,
        clock: Clock,
    ) -> None:
        self._vendor = vendor
        self._ledger = ledger
        self._confirmations = confirmations
        self._preparer = preparer
        self._owner = owner
        self._locks = locks
        self._clock = clock
        self.records = Recorder(ledger, policy, clock, accounts=accounts, owner=owner, locks=locks)

    async def place(
        self,
        order: NewOrder,
        *,
        actor: str,
        confirmed_by: Literal["token", "elicitation"],
        confirmation_token: str | None = None,
        confirmed_total: str | None = None,
    ) -> Outcome:
        """Record the confirmed intent, then send it once.

        Raises:
            GuardError: the confirmation does not hold (token forged, expired, spent, for other content;
                total not the previewed one), or a limit refuses it.
            VendorError: the vendor definitively refused; nothing was ordered.
        """
        if confirmed_by == "token":
            token_id = await self._confirmations.token(order, actor, confirmation_token, confirmed_total)
        else:
            # A form can stay open for minutes: the price the human saw must still hold when we send.
            token_id, order = None, await self._confirmations.still_priced(order, actor)
        await self._preparer.check_limits(order.preview, order.principal)
        intent = self.records.intent(order, f"{confirmed_by}:{actor}")
        request = order.request
        async with self._locks.hold((request.vendor, request.po_number)):
            stored = await self.records.claim(intent, order, token_id, actor, lease=True)
            if stored is not None:
                return await self._finish(stored, request, actor)
            try:
                return await self._drive(intent, request, actor)
            finally:
                await self.records.release(intent.id)

    async def hold_for_approval(self, order: NewOrder, actor: str, approval: dict[str, str]) -> Intent:
        """Record the order as awaiting a person's approval: its PO and budget are held from now on.

        Returns the intent recorded, or the PO's intent when the same order is already recorded.
        """
        await self._preparer.check_limits(order.preview, order.principal)
        intent = self.records.intent(order, f"approval:{actor}", approval=approval)
        async with self._locks.hold((intent.vendor, intent.po_number)):
            return await self.records.claim(intent, order, None, actor, lease=False) or intent

    async def send_approved(self, intent: Intent, preview: Preview, decided_by: str) -> Outcome:
        """Send an intent a person just approved (the caller holds it), priced as `preview`."""
        fresh = preview.model_dump(mode="json")
        approved = f"{APPROVED}{decided_by}"
        await self._ledger.transition(
            intent.id, IntentState.PENDING, actor=decided_by, preview=fresh, confirmed_by=approved
        )
        intent = replace(intent, confirmed_by=approved)
        return await self._drive(
            replace(intent, state=IntentState.PENDING, preview=fresh), request_of(intent), decided_by
        )

    async def resume(self, repeat: Repeat, actor: str) -> Outcome:
        """Answer a repeated PO from the ledger, or finish its intent without creating a second order."""
        request = repeat.request
        async with self._locks.hold((request.vendor, request.po_number)):
            # Another call may have finished this intent while we waited.
            current = await self._ledger.get(request.vendor, request.po_number) or repeat.existing
            return await self._finish(current, request, actor)

    async def _finish(self, intent: Intent, request: OrderRequest, actor: str) -> Outcome:
        """Answer a settled intent, or drive an unsettled one under this process's lease."""
        if intent.state in (IntentState.PLACED, IntentState.REJECTED):
            return await self._settled(intent, actor)
        if intent.state is IntentState.AWAITING_APPROVAL:
            return await self.awaiting(intent)
        current = await self._ledger.lease(intent.id, self._owner, LEASE_SECONDS)
        if current is None:
            return self._unknown(
                intent,
                "Another parts-mcp process is placing this order right now. Call place_order again in a minute "
                "with the same arguments; do not create a new PO.",
            )
        try:
            if current.state in (IntentState.PLACED, IntentState.REJECTED):
                # It was settled while we waited for the lease: answer from what it is now.
                return await self._settled(current, actor)
            return await self._drive(current, request, actor)
        finally:
            await self.records.release(intent.id)

    async def awaiting(self, intent: Intent) -> AwaitingApproval:
        """A request still waiting for its person; one past its time is closed, nothing ordered.

        Raises:
            GuardError: APPROVAL_EXPIRED, the request lapsed (the PO is free for a new request).
        """
        expires_at = approval_expiry(intent)
        if self._clock() < expires_at:
            return AwaitingApproval(
                intent.vendor,
                intent.po_number,
                intent.id,
                intent.created_at,
                expires_at,
                new=False,
                second_person=awaits_second_person(intent),
            )
        error = {"code": "EXPIRED", "message": f"no decision by {expires_at.isoformat()}"}
        with contextlib.suppress(IllegalTransition):  # decided a moment ago: the ledger has the answer
            await self._ledger.transition(intent.id, IntentState.REJECTED, actor="approval expiry", error=error)
        raise GuardError(
            f"the approval request for PO {intent.po_number!r} expired at {expires_at:%Y-%m-%d %H:%M} UTC without a "
            "decision; nothing was ordered. Ask the user; call place_order again with the same arguments to send "
            "a new approval request.",
            field="po_number",
            code="APPROVAL_EXPIRED",
        )

    async def _settled(self, intent: Intent, actor: str) -> Outcome:
        if intent.state is IntentState.REJECTED and (intent.error or {}).get("code") == "DECLINED":
            raise GuardError(
                f"the person asked to approve PO {intent.po_number!r} declined it; nothing was ordered. Do not retry "
                "unless the user asks for a changed order.",
                field="confirmation",
                code="DECLINED",
            )
        if intent.state is IntentState.REJECTED:
            # The vendor refused it: nothing was ordered, and a new order needs a new confirmation.
            raise GuardError(
                f"{self._vendor(intent.vendor).display_name} refused the order under po_number "
                f"{intent.po_number!r}; nothing was ordered. Call place_order again without confirmation_token "
                "for a new preview.",
                field="po_number",
                code="REFUSED_BY_VENDOR",
            )
        assert intent.order is not None
        await self._ledger.audit("replayed", actor=actor, intent=intent)
        order = Order.model_validate(intent.order)
        return self._answer(intent, Placed(order, intent.idempotency_key, replayed=True))

    async def _drive(self, intent: Intent, request: OrderRequest, actor: str) -> Outcome:
        """Carry out `reconcile.decide` for an unsettled intent we hold the lease of."""
        client = self._vendor(intent.vendor)
        facts = Facts(
            state=intent.state,
            order_id_known=bool(intent.order_id),
            stored_server_error=((intent.error or {}).get("status") or 0) >= HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        by_id: reconcile.Evidence = Look.NOT_ASKED
        by_po: reconcile.Evidence = Look.NOT_ASKED
        while True:
            decision = reconcile.decide(facts, client.capabilities, by_id, by_po)
            if decision.action is Action.ASK_BY_ID:
                by_id = await self._by_id(client, intent)
            elif decision.action is Action.ASK_BY_PO:
                by_po = await self._by_po(client, intent)
            else:
                return await self._act(decision, intent, request, actor)

    async def _act(self, decision: Decision, intent: Intent, request: OrderRequest, actor: str) -> Outcome:
        match decision.action:
            case Action.SEND | Action.RESEND:
                return await self._send(intent, request, actor, first=decision.action is Action.SEND)
            case Action.ADOPT:
                assert decision.order is not None
                return await self._adopt(intent, decision.order, actor, decision.how)
            case Action.NEW_ATTEMPT:
                return await self._next_attempt(intent, request, actor)
            case Action.AWAIT:
                return await self.awaiting(intent)
            case _:
                return self._unknown(intent, decision.reason)

    async def _by_id(self, client: VendorClient, intent: Intent) -> reconcile.Evidence:
        assert intent.order_id is not None
        try:
            return await client.get_order(intent.order_id)
        except VendorError as exc:
            logger.warning("reconciliation by id at %s failed: %s", client.key, exc.code)
        except Exception:
            logger.exception("reconciliation by id at %s failed", client.key)
        return Look.FAILED

    async def _by_po(self, client: VendorClient, intent: Intent) -> reconcile.Evidence:
        """The order carrying this PO, ABSENT after a search that worked, FAILED otherwise (which proves nothing)."""
        try:
            found = await client.find_order_by_po(intent.po_number)
        except VendorError as exc:
            logger.warning("reconciliation search at %s failed: %s", client.key, exc.code)
            return Look.FAILED
        except Exception:
            logger.exception("reconciliation search at %s failed", client.key)
            return Look.FAILED
        return found if found is not None else Look.ABSENT

    async def _next_attempt(self, intent: Intent, request: OrderRequest, actor: str) -> Outcome:
        error = {"code": "NOT_FOUND_AFTER_FAILURE", "message": "not at the vendor after a stored failure"}
        await self._ledger.transition(intent.id, IntentState.REJECTED, actor=actor, error=error)
        attempt, now = intent.attempt + 1, self._clock()
        successor = replace(
            intent,
            id=str(uuid.uuid4()),
            attempt=attempt,
            state=IntentState.PENDING,
            created_at=now,
            updated_at=now,
            idempotency_key=self.records.key(request, intent.content_hash, attempt),
            order_id=None,
            error=None,
        )
        claim, _ = await self._ledger.claim(successor, None, actor, owner=self._owner, lease_seconds=LEASE_SECONDS)
        if claim is not ClaimResult.CREATED:  # pragma: no cover - we hold the (vendor, PO) lock and lease
            raise GuardError("another call is already placing this PO; try again shortly.", field="po_number")
        try:
            return await self._send(successor, request, actor, first=True)
        finally:
            await self.records.release(successor.id)

    async def _adopt(self, intent: Intent, order: Order, actor: str, how: str) -> Outcome:
        order = await self._record(intent, order, actor)
        warning = f"An earlier attempt had placed this order; it was found at the vendor {how}."
        return self._answer(intent, Placed(order, intent.idempotency_key, replayed=True, warnings=[warning]))

    async def _record(self, intent: Intent, order: Order, actor: str) -> Order:
        """Record the vendor's order as placed; one billed above the approval is cancelled first where possible.

        Cancelling before recording keeps the intent `sent` until then: a crash in between is
        reconciled like any lost answer, and the found order passes through here again.
        """
        order = order.model_copy(update={"po_number": order.po_number or intent.po_number})
        client = self._vendor(intent.vendor)
        if billing.above(order, _approved(intent)) and isinstance(client, Cancels) and client.capabilities.cancel:
            order = await self._cancel(client, order)
        await self._ledger.transition(
            intent.id, IntentState.PLACED, actor=actor, order_id=order.order_id, order=order.model_dump(mode="json")
        )
        return order

    async def _cancel(self, client: Cancels, order: Order) -> Order:
        try:
            now = await client.cancel_order(order.order_id)
        except VendorError as exc:
            logger.warning("cancelling over-billed order %s failed: %s", order.order_id, exc.code)
            return order
        except Exception:
            logger.exception("cancelling over-billed order %s failed", order.order_id)
            return order
        return order.model_copy(update={"status": now.status, "vendor_status": now.vendor_status})

    def _answer(self, intent: Intent, placed: Placed) -> Outcome:
        """`placed`, unless the bill is above what the human approved: then a distinct, loud outcome."""
        approved_by = intent.confirmed_by.removeprefix(APPROVED) if intent.confirmed_by.startswith(APPROVED) else None
        placed = replace(placed, placed_by=intent.request.get("principal"), approved_by=approved_by)
        limit, order = _approved(intent), placed.order
        if not billing.above(order, limit):
            return placed
        client = self._vendor(intent.vendor)
        cancelled = order.status is OrderStatus.CANCELLED
        return BilledAboveApproval(
            order,
            placed.idempotency_key,
            limit,
            cancelled,
            billing.over_advice(client.display_name, order, limit, cancelled=cancelled),
        )

    async def _send(self, intent: Intent, request: OrderRequest, actor: str, *, first: bool) -> Outcome:
        """Send the intent. `first` is False when an earlier send may have been committed already."""
        client = self._vendor(intent.vendor)
        preview = Preview.model_validate(intent.preview)
        await self._ledger.transition(intent.id, IntentState.SENT, actor=actor)
        try:
            order = await client.place_order(request, preview, intent.idempotency_key)
        except VendorError as exc:
            return await self._refused(client, intent, exc, actor, first=first)
        except Exception:
            # An answer we could not read is no proof either way: the order may exist.
            logger.exception("reading %s's answer to an order failed", client.key)
            error = {"code": "UNREADABLE_ANSWER", "message": "the vendor's answer could not be read", "status": None}
            await self._ledger.transition(intent.id, IntentState.UNKNOWN, actor=actor, error=error)
            return self._unknown(intent, f"{client.display_name}'s answer could not be read.")
        order = await self._record(intent, order, actor)
        warnings = total_warnings(order, Money.parse(intent.confirmed_total), preview.excludes)
        if not first:
            warnings.append(
                "An earlier attempt's answer was lost. This is the vendor's answer to the resend"
                + (
                    " with the same idempotency key: if the first attempt had gone through, this is that same order."
                    if client.capabilities.idempotency_key
                    else ", sent after a search found no order with this PO."
                )
            )
        # A resend under the same key may have returned the first attempt's order: then nobody knows.
        replayed = False if first or not client.capabilities.idempotency_key else None
        return self._answer(intent, Placed(order, intent.idempotency_key, replayed=replayed, warnings=warnings))

    async def _refused(
        self, client: VendorClient, intent: Intent, exc: VendorError, actor: str, *, first: bool
    ) -> Outcome:
        """Carry out `reconcile.after_refusal` for a send the vendor answered with an error."""
        error = {"code": exc.code, "message": exc.message, "status": exc.status}
        caps, committed = client.capabilities, exc.maybe_committed
        decision = reconcile.after_refusal(caps, first=first, maybe_committed=committed)
        if decision.action is Action.ASK_BY_PO:
            by_po = await self._by_po(client, intent)
            decision = reconcile.after_refusal(caps, first=first, maybe_committed=committed, by_po=by_po)
        if decision.action is Action.REJECT:
            await self._ledger.transition(intent.id, IntentState.REJECTED, actor=actor, error=error)
            exc.nothing_sent = True  # the vendor's clean refusal of the first send
            raise exc
        if decision.action is Action.ADOPT:
            assert decision.order is not None
            return await self._adopt(intent, decision.order, actor, decision.how)
        await self._ledger.transition(intent.id, IntentState.UNKNOWN, actor=actor, error=error, order_id=exc.order_id)
        if decision.check_vendor:
            reason = f"A resend was refused ({exc.code}); whether the first attempt went through is unknown."
            return self._unknown(intent, reason, check_vendor=True)
        return self._unknown(intent, exc.message)

    def _unknown(self, intent: Intent, reason: str, *, check_vendor: bool = False) -> OutcomeUnknown:
        client = self._vendor(intent.vendor)
        steps = reconcile.advice(client.display_name, client.capabilities, intent.po_number, check_vendor=check_vendor)
        return OutcomeUnknown(intent.vendor, intent.po_number, intent.idempotency_key, reason, steps)


def _approved(intent: Intent) -> Money:
    """The most the human approved being billed for this intent."""
    limit = intent.preview.get("approval_limit")
    return Money.model_validate(limit) if limit else Money.parse(intent.confirmed_total)
