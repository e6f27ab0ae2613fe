"""Recording an intent: its content, its idempotency key, and the one transaction that claims its PO.

`Recorder.claim` writes the intent with the (vendor, PO) key, the single-use token and the daily
budget checked in one ledger transaction; `held` is how a process drives an intent: the per-PO lock
within the process, the lease across processes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import datetime

import anyio

from parts_mcp.domain import OrderItem
from parts_mcp.orders.guard import GuardError, TokenError, content_hash, idempotency_key
from parts_mcp.orders.ledger import Budget, ClaimResult, Intent, Ledger
from parts_mcp.orders.preparing import midnight
from parts_mcp.orders.results import Clock, GuardPolicy, NewOrder
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import OrderRequest

logger = logging.getLogger(__name__)

# How long a lease lasts unless renewed: its holder renews every `LEASE_SECONDS / 3` (`keep_leases`),
# so another replica takes over about a minute after the holder died or lost the database.
LEASE_SECONDS = 60.0


async def keep_leases(ledger: Ledger, owner: str) -> None:
    """Renew this process's leases for as long as it runs (a task of the server's lifespan)."""
    while True:
        await anyio.sleep(LEASE_SECONDS / 3)
        try:
            await ledger.renew(owner, LEASE_SECONDS)
        except Exception:  # the database may be away for a moment; the next round tries again
            logger.warning("ledger: could not renew this process's leases; retrying", exc_info=True)


class KeyedLocks:
    """One lock per (vendor, PO) while anyone holds or waits for it: same-PO calls in one process queue up."""

    def __init__(self) -> None:
        self.locks: dict[tuple[str, str], tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncGenerator[None, None]:
        lock, users = self.locks.get(key, (anyio.Lock(), 0))
        self.locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.locks[key]
            if users == 1:
                del self.locks[key]
            else:
                self.locks[key] = (lock, users - 1)


class Recorder:
    def __init__(
        self,
        ledger: Ledger,
        policy: GuardPolicy,
        clock: Clock,
        *,
        accounts: dict[str, str],
        owner: str,
        locks: KeyedLocks,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._clock = clock
        # What an idempotency key is scoped to: the vendor account, not just our name for it.
        self._accounts = accounts
        self.owner = owner
        self.locks = locks

    def intent(self, order: NewOrder, confirmed_by: str, *, approval: dict[str, str] | None = None) -> Intent:
        request, attempt, now = order.request, order.previous_attempt + 1, self._clock()
        return Intent(
            id=str(uuid.uuid4()),
            vendor=request.vendor,
            po_number=request.po_number,
            content_hash=order.content_hash,
            attempt=attempt,
            idempotency_key=self.key(request, order.content_hash, attempt),
            state=IntentState.PENDING if approval is None else IntentState.AWAITING_APPROVAL,
            request={
                "hash_as_given": content_hash(request),
                "items": [item.model_dump() for item in request.items],
                "notes": request.notes,
                "options": dict(request.options or {}),
                **({"approval": approval} if approval is not None else {}),
                **({"principal": order.principal} if order.principal else {}),
            },
            preview=order.preview.model_dump(mode="json"),
            confirmed_total=str(order.preview.total),
            confirmed_by=confirmed_by,
            created_at=now,
            updated_at=now,
        )

    def key(self, request: OrderRequest, digest: str, attempt: int) -> str:
        return idempotency_key(self._accounts.get(request.vendor, request.vendor), request.po_number, digest, attempt)

    async def claim(
        self, intent: Intent, order: NewOrder, token_id: str | None, actor: str, *, lease: bool
    ) -> Intent | None:
        """Record `intent` (None), or return the PO's intent already recorded for the same order.

        Raises:
            GuardError: over today's budget, the token already spent, or the PO just used for another order.
        """
        request = order.request
        total = order.preview.approval_limit or order.preview.total
        daily = self._policy.max_daily_total_per_vendor
        personal = self._policy.max_daily_total_per_principal if order.principal else None
        budget = None
        if daily is not None or personal is not None:
            since = midnight(self._clock)
            budget = Budget(daily, since, total.amount, total.currency, order.principal or None, personal)
        claim, stored = await self._ledger.claim(
            intent,
            token_id,
            actor,
            owner=self.owner if lease else "",
            lease_seconds=LEASE_SECONDS if lease else 0,
            budget=budget,
        )
        if claim is ClaimResult.OVER_BUDGET:
            raise GuardError(
                f"This order ({total}) would take today's orders with {request.vendor} over this "
                f"server's daily limit of {daily} per vendor (guard.max_daily_total_per_vendor). Nothing was "
                "ordered. Ask an administrator, or order tomorrow.",
                field="items",
                code="OVER_DAILY_LIMIT",
            )
        if claim is ClaimResult.OVER_PRINCIPAL_BUDGET:
            raise GuardError(
                f"This order ({total}) would take {order.principal}'s orders today over this server's daily limit "
                f"of {personal} per person (guard.max_daily_total_per_principal). Nothing was ordered. Ask an "
                "administrator, or order tomorrow.",
                field="items",
                code="OVER_PRINCIPAL_DAILY_LIMIT",
            )
        if claim is ClaimResult.TOKEN_USED:
            raise TokenError(
                "was already used. Call place_order without it for a new preview.",
                field="confirmation_token",
                code="TOKEN_USED",
            )
        if claim is ClaimResult.EXISTS:
            assert stored is not None
            if stored.content_hash != order.content_hash:
                raise GuardError(
                    f"{request.po_number!r} was just used for a different order.",
                    field="po_number",
                    code="PO_CONFLICT",
                )
            return stored
        return None

    @asynccontextmanager
    async def held(self, intent: Intent) -> AsyncGenerator[Intent | None, None]:
        """The intent as it is now, held by this process (None: another process holds it right now)."""
        async with self.locks.hold((intent.vendor, intent.po_number)):
            current = await self._ledger.lease(intent.id, self.owner, LEASE_SECONDS)
            if current is None:
                yield None
                return
            try:
                yield current
            finally:
                await self.release(intent.id)

    async def release(self, intent_id: str) -> None:
        # Even when the call is being cancelled: a lease left behind would block other processes for minutes.
        with anyio.CancelScope(shield=True):
            await self._ledger.release(intent_id, self.owner)


def request_of(intent: Intent) -> OrderRequest:
    """The order as it was asked for, from its intent (to send it when a person approves it later)."""
    asked = intent.request
    return OrderRequest(
        vendor=intent.vendor,
        po_number=intent.po_number,
        items=tuple(OrderItem.model_validate(item) for item in asked.get("items", [])),
        notes=asked.get("notes"),
        options=dict(asked.get("options") or {}),
    )


def approval_expiry(intent: Intent) -> datetime:
    """When an intent awaiting approval lapses (recorded with it)."""
    approval: dict[str, str] = intent.request["approval"]
    return datetime.fromisoformat(approval["expires_at"])


def awaits_second_person(intent: Intent) -> bool:
    """Four-eyes was required when the request was opened (recorded with it)."""
    approval: dict[str, str] = intent.request.get("approval") or {}
    return approval.get("second_person") == "required"


# How a closed approval request ended, by the error code its intent was closed with.
CLOSED_APPROVALS = {"DECLINED": "declined", "EXPIRED": "expired", "SUPERSEDED": "superseded"}


def closed_approval(intent: Intent) -> str | None:
    """ "declined", "expired" or "superseded" for an approval request closed without an order; else None."""
    if "approval" not in intent.request or intent.state is not IntentState.REJECTED:
        return None
    return CLOSED_APPROVALS.get(str((intent.error or {}).get("code")))
