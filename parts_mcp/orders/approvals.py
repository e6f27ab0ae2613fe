"""Approval out of band: a person, not the model, approves an order on a page the model never sees.

`open` records the intent as `awaiting_approval` (the PO and today's budget are held from then on)
and returns the request plus a *link secret* — for the channels that reach a person (browser,
webhook, URL elicitation), never for the model. `view` shows the request to whoever holds the
link; `decide` takes the person's answer once: approve sends the order exactly once, decline or a
lapsed request frees the PO with nothing ordered. A price or content that changed since the page
was opened means a new approval request, never a send.

The link secret is stored only as a hash; the page is bound to the exact content and prices it
showed by a `page_token` (an HMAC the page posts back).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, cast

from parts_mcp.domain import Money, Order, Preview
from parts_mcp.orders.guard import GuardError, priced_hash
from parts_mcp.orders.ledger import Intent, Ledger
from parts_mcp.orders.placement import Placement
from parts_mcp.orders.preparing import Preparer
from parts_mcp.orders.recording import approval_expiry, awaits_second_person, closed_approval, request_of
from parts_mcp.orders.results import (
    AwaitingApproval,
    BilledAboveApproval,
    Clock,
    GuardPolicy,
    NewOrder,
    Outcome,
    OutcomeUnknown,
    Placed,
)
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import VendorClient, VendorError

ApprovalState = Literal["awaiting", "approved", "declined", "expired", "superseded"]
DecisionKind = Literal["placed", "billed_above_approval", "outcome_unknown", "refused", "declined", "changed"]


@dataclass(frozen=True)
class ApprovalRequest:
    """What the person sees and decides on: the order exactly as it would be sent."""

    approval_id: str
    vendor: str
    display_name: str
    po_number: str
    preview: Preview  # lines, totals, price basis, options (ship-to), caveats, approval_limit
    warnings: list[str]  # possible duplicates, the PO at another vendor
    requested_by: str  # who asked (the client, later the principal)
    requested_at: datetime
    expires_at: datetime
    state: ApprovalState
    sandbox: bool = False
    # Four-eyes: only a second person with orders:approve may decide, from their own signed-in session.
    second_person: bool = False


@dataclass(frozen=True)
class ApprovalLink:
    """The secret part of an approval link: for the channels that reach a person, never for the model."""

    approval_id: str
    secret: str

    def path(self) -> str:
        """The page's path and query, to put after a base URL."""
        return f"/approvals/{self.approval_id}?k={self.secret}"


@dataclass(frozen=True)
class ApprovalView:
    request: ApprovalRequest
    page_token: str  # posted back with the decision: binds it to exactly what this page showed


@dataclass(frozen=True)
class ApprovalDecision:
    """What happened when the person decided; `message` is what the page tells them."""

    kind: DecisionKind
    message: str
    order: Order | None = None
    # kind == "changed": the request that replaces this one (prices moved), to show at once.
    renewed: tuple[ApprovalRequest, ApprovalLink] | None = None


class ApprovalRefused(Exception):
    """The link cannot be used: `code` is NOT_FOUND, LINK_INVALID, EXPIRED, ALREADY_DECIDED or PAGE_CHANGED."""

    def __init__(self, code: str, message: str, *, state: ApprovalState | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.state = code, message, state


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


def expires(now: datetime, ttl: timedelta) -> datetime:
    return now + ttl


class Desk(Protocol):
    """What the approval page needs from the orders core (`ApprovalDesk` implements it)."""

    async def view(self, approval_id: str, secret: str) -> ApprovalView:
        """The request behind a link, to show. Viewing never decides and may be repeated.

        Raises:
            ApprovalRefused: unknown id, wrong secret, lapsed, or already decided (`state` says how).
        """
        ...

    async def decide(
        self, approval_id: str, secret: str, page_token: str, *, approve: bool, decided_by: str
    ) -> ApprovalDecision:
        """The person's answer, taken once. Approve sends the order (exactly once) and waits for the vendor.

        Raises:
            ApprovalRefused: as `view`, or PAGE_CHANGED when `page_token` is not this request's.
        """
        ...


class ApprovalDesk:
    """Opens approval requests, shows them to the link's holder, and carries out the person's decision."""

    def __init__(
        self,
        ledger: Ledger,
        placement: Placement,
        preparer: Preparer,
        vendor: Callable[[str], VendorClient],
        policy: GuardPolicy,
        *,
        secret: bytes,
        clock: Clock,
        sandbox: bool = False,
    ) -> None:
        self._ledger = ledger
        self._placement = placement
        self._preparer = preparer
        self._vendor = vendor
        self._policy = policy
        self._key = secret  # binds pages to content; per process unless guard.token_secret is set
        self._clock = clock
        self._sandbox = sandbox

    async def open(self, order: NewOrder, actor: str) -> tuple[AwaitingApproval, ApprovalRequest, ApprovalLink | None]:
        """Record the order as awaiting approval and make its link (for the channels, never the model).

        No link when another call recorded the same order a moment ago: its link went out with it.

        Raises:
            GuardError: a limit refuses it, or the PO names another order.
        """
        secret = new_secret()
        now = self._clock()
        approval = {
            "link_hash": secret_hash(secret),
            "expires_at": expires(now, self._policy.approval_ttl).isoformat(),
            "requested_by": actor,
            "warnings": "\n".join(order.warnings),
            **({"second_person": "required"} if self.needs_second_person(order) else {}),
        }
        intent = await self._placement.hold_for_approval(order, actor, approval)
        if intent.request.get("approval", {}).get("link_hash") != approval["link_hash"]:
            # The same order was recorded a moment ago by another call: answer with its request.
            return await self._placement.awaiting(intent), self.request_of(intent), None
        await self._ledger.audit(
            "approval_requested",
            actor=actor,
            intent=intent,
            total=str(order.preview.total),
            expires_at=approval["expires_at"],
        )
        waiting = AwaitingApproval(intent.vendor, intent.po_number, intent.id, now, approval_expiry(intent))
        return waiting, self.request_of(intent), ApprovalLink(intent.id, secret)

    def needs_second_person(self, order: NewOrder) -> bool:
        """Four-eyes: the most this order may bill is above guard.approval_required_above."""
        threshold = self._policy.approval_required_above
        bound = order.preview.approval_limit or order.preview.total
        return threshold is not None and bound.amount > threshold

    async def view(self, approval_id: str, secret: str) -> ApprovalView:
        intent = await self._usable(approval_id, secret)
        return ApprovalView(self.request_of(intent), self._page_token(intent))

    async def decide(
        self, approval_id: str, secret: str, page_token: str, *, approve: bool, decided_by: str
    ) -> ApprovalDecision:
        intent = await self._usable(approval_id, secret)
        if not hmac.compare_digest(page_token, self._page_token(intent)):
            raise ApprovalRefused("PAGE_CHANGED", "This page no longer shows the request as it stands: reload it.")
        if awaits_second_person(intent):
            # A link identifies nobody: four-eyes needs the approver signed in (approve_order).
            raise ApprovalRefused(
                "SECOND_PERSON_REQUIRED",
                "This order needs a second person's approval: someone with the orders:approve permission, other "
                f"than its requester, approves it from their own signed-in assistant (approve_order, approval_id "
                f"{intent.id}).",
            )
        return await self._decide(intent, approve=approve, decided_by=decided_by)

    async def pending(self, approval_id: str, principal: str) -> ApprovalRequest:
        """The request a signed-in approver is about to decide on (four-eyes), checked for them.

        Raises:
            ApprovalRefused: unknown, decided or lapsed; or `principal` is nobody, or its requester.
        """
        intent = await self._ledger.intent(approval_id) if _ID.fullmatch(approval_id) else None
        if intent is None or "approval" not in intent.request:
            raise ApprovalRefused("NOT_FOUND", f"There is no approval request {approval_id!r}.")
        if intent.state is not IntentState.AWAITING_APPROVAL:
            state = self.request_of(intent).state
            raise ApprovalRefused("ALREADY_DECIDED", f"This request was already {state}.", state=state)
        try:
            await self._placement.awaiting(intent)
        except GuardError:
            raise ApprovalRefused("EXPIRED", "This approval request has expired; nothing was ordered.") from None
        if not principal:
            raise ApprovalRefused("APPROVER_UNKNOWN", "Approving here needs a signed-in person (OAuth over HTTP).")
        if principal == intent.request.get("principal"):
            raise ApprovalRefused("SAME_PERSON", "Its requester cannot approve this order: a second person must.")
        return self.request_of(intent)

    async def decide_as(self, approval_id: str, principal: str, *, approve: bool) -> ApprovalDecision:
        """A signed-in second person's decision (they confirmed it themselves in a form), taken once.

        Raises:
            ApprovalRefused: as `pending`.
        """
        request = await self.pending(approval_id, principal)
        intent = await self._ledger.intent(request.approval_id)
        assert intent is not None
        return await self._decide(intent, approve=approve, decided_by=f"{principal} (approve_order)")

    async def _decide(self, intent: Intent, *, approve: bool, decided_by: str) -> ApprovalDecision:
        async with self._placement.records.held(intent) as current:
            if current is None:
                raise ApprovalRefused("ALREADY_DECIDED", "This request is being decided right now.")
            if current.state is not IntentState.AWAITING_APPROVAL:
                state = self.request_of(current).state
                raise ApprovalRefused("ALREADY_DECIDED", f"This request was already {state}.", state=state)
            if not approve:
                return await self._declined(current, decided_by)
            decided = await self._approved(current, decided_by)
        if isinstance(decided, ApprovalDecision):
            return decided
        # Prices moved since the page was opened: this approval covers none of them. A new request
        # (the PO is free again, so outside the hold), shown at once to the person already here.
        order, was = decided
        _, request, link = await self.open(order, self.request_of(intent).requested_by)
        return ApprovalDecision(
            "changed",
            f"Prices changed since this page was opened (total {was} -> {order.preview.total}); nothing was "
            "ordered. Review the new prices.",
            renewed=(request, link) if link is not None else None,
        )

    def request_of(self, intent: Intent) -> ApprovalRequest:
        approval: dict[str, str] = intent.request.get("approval") or {}
        state: ApprovalState = "awaiting"
        if intent.state is not IntentState.AWAITING_APPROVAL:
            state = cast(ApprovalState, closed_approval(intent) or "approved")
        return ApprovalRequest(
            approval_id=intent.id,
            vendor=intent.vendor,
            display_name=self._vendor(intent.vendor).display_name,
            po_number=intent.po_number,
            preview=Preview.model_validate(intent.preview),
            warnings=[w for w in approval.get("warnings", "").split("\n") if w],
            requested_by=intent.request.get("principal") or approval.get("requested_by", intent.confirmed_by),
            requested_at=intent.created_at,
            expires_at=approval_expiry(intent),
            state=state,
            sandbox=self._sandbox,
            second_person=awaits_second_person(intent),
        )

    async def _usable(self, approval_id: str, secret: str) -> Intent:
        """The intent behind a link that may still be decided on (lapsed ones are closed on the way)."""
        intent = await self._ledger.intent(approval_id) if _ID.fullmatch(approval_id) else None
        approval: dict[str, str] = (intent.request.get("approval") or {}) if intent is not None else {}
        if intent is None or not secret or not same_secret(secret, approval.get("link_hash", "")):
            # One answer for both: a wrong secret must not tell whether the request exists.
            raise ApprovalRefused("LINK_INVALID", "This approval link is not valid.")
        if intent.state is not IntentState.AWAITING_APPROVAL:
            request = self.request_of(intent)
            raise ApprovalRefused("ALREADY_DECIDED", f"This request was already {request.state}.", state=request.state)
        try:
            await self._placement.awaiting(intent)
        except GuardError:
            raise ApprovalRefused("EXPIRED", "This approval request has expired; nothing was ordered.") from None
        return intent

    def _page_token(self, intent: Intent) -> str:
        preview = Preview.model_validate(intent.preview)
        body = f"{intent.id}\n{priced_hash(intent.content_hash, preview)}"
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    async def _declined(self, intent: Intent, decided_by: str) -> ApprovalDecision:
        error = {"code": "DECLINED", "message": f"declined by {decided_by}"}
        await self._ledger.transition(intent.id, IntentState.REJECTED, actor=decided_by, error=error)
        return ApprovalDecision("declined", f"Declined: nothing was ordered under PO {intent.po_number}.")

    async def _approved(self, intent: Intent, decided_by: str) -> ApprovalDecision | tuple[NewOrder, Money]:
        """Send the approved intent; or, where prices moved, supersede it and return the re-priced order."""
        client = self._vendor(intent.vendor)
        approved = Preview.model_validate(intent.preview)
        # The renewal (if prices moved) is the same person's order, under the same four-eyes rule.
        principal = str(intent.request.get("principal") or "")
        order = NewOrder(request_of(intent), intent.content_hash, client.display_name, approved, principal=principal)
        try:
            now = await self._preparer.reprice(client, order)
        except VendorError as exc:
            await self._supersede(intent, decided_by, f"the vendor can no longer price it ({exc.code})")
            message = f"{client.display_name} can no longer price this order: {exc.message} Nothing was ordered."
            return ApprovalDecision("changed", message)
        if priced_hash(intent.content_hash, now) != priced_hash(intent.content_hash, approved):
            await self._supersede(intent, decided_by, "prices changed before the approval")
            return replace(order, preview=now), approved.total
        await self._ledger.audit("approval_approved", actor=decided_by, intent=intent, total=str(approved.total))
        priced = now.model_copy(update={"approval_limit": approved.approval_limit})
        return _decision(await self._placement.send_approved(intent, priced, decided_by), client.display_name)

    async def _supersede(self, intent: Intent, decided_by: str, why: str) -> None:
        error = {"code": "SUPERSEDED", "message": why}
        await self._ledger.transition(intent.id, IntentState.REJECTED, actor=decided_by, error=error)


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _decision(outcome: Outcome, display_name: str) -> ApprovalDecision:
    if isinstance(outcome, Placed):
        order = outcome.order
        return ApprovalDecision(
            "placed", f"Approved and placed: {display_name} order {order.order_id} ({order.status.value}).", order
        )
    if isinstance(outcome, BilledAboveApproval):
        return ApprovalDecision("billed_above_approval", outcome.next_steps, outcome.order)
    if isinstance(outcome, OutcomeUnknown):
        return ApprovalDecision("outcome_unknown", f"{outcome.reason} {outcome.next_steps}")
    return ApprovalDecision("outcome_unknown", "The order is still waiting; reload this page.")
