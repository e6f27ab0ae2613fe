"""The orders service: one facade over look-up, placement and reading. No MCP imports.

Each tool makes one call here, and each call hands over to the module that does that job:

- `lookup.Lookup`: every vendor at once, a second look for what nobody found.
- `preparing.Preparer`: policy, parts, the vendor's price — a `NewOrder` or a `Repeat`; nothing written.
- `confirming.Confirmations`: the preview's single-use token, and the checks that a confirmation holds.
- `placement.Placement`: the confirmed intent recorded, then sent once; interrupted intents finished
  (the decisions are `reconcile`'s, the states and transitions `states`').
- `reading.Reading`: one order, or a merged page of orders.
- `approvals.ApprovalDesk`: orders a person approves out of band, on a page the model never sees.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from parts_mcp.domain import OrderItem, OrderStatus
from parts_mcp.orders.approvals import ApprovalDesk, ApprovalLink, ApprovalRequest
from parts_mcp.orders.confirming import Confirmations
from parts_mcp.orders.guard import ConfirmationTokens, GuardError
from parts_mcp.orders.ledger import Ledger, lease_owner
from parts_mcp.orders.lookup import MAX_LOOKED_AGAIN, MAX_SUGGESTIONS, Lookup
from parts_mcp.orders.parts import PartCache
from parts_mcp.orders.placement import Placement
from parts_mcp.orders.preparing import Preparer
from parts_mcp.orders.reading import Reading
from parts_mcp.orders.recording import KeyedLocks
from parts_mcp.orders.results import (
    AwaitingApproval,
    Clock,
    ConfirmationRequired,
    FoundOrder,
    GuardPolicy,
    LookupOutcome,
    NewOrder,
    OrderPage,
    Outcome,
    Prepared,
    Repeat,
    utc_now,
)
from parts_mcp.vendors.base import VendorClient

__all__ = ["MAX_LOOKED_AGAIN", "MAX_SUGGESTIONS", "OrdersService"]


class OrdersService:
    def __init__(
        self,
        vendors: Mapping[str, VendorClient],
        ledger: Ledger,
        policy: GuardPolicy,
        tokens: ConfirmationTokens,
        parts: PartCache,
        *,
        lookup_deadline: float,  # the one default is config's `lookup_deadline`
        accounts: Mapping[str, str] | None = None,
        owner: str | None = None,
        locks: KeyedLocks | None = None,
        clock: Clock = utc_now,
        approval_key: bytes | None = None,
        sandbox: bool = False,
    ) -> None:
        self.vendors = dict(vendors)
        self.ledger = ledger
        self.policy = policy
        self.tokens = tokens
        self.parts = parts
        self._lookup = Lookup(parts, lookup_deadline)
        self._prepare = Preparer(ledger, policy, parts, clock)
        self._confirmations = Confirmations(ledger, tokens, self._prepare, self.vendor)
        self._placement = Placement(
            self.vendor,
            ledger,
            policy,
            self._confirmations,
            self._prepare,
            accounts=dict(accounts or {}),
            owner=owner or lease_owner(),
            locks=locks or KeyedLocks(),
            clock=clock,
        )
        self._reading = Reading(ledger, lookup_deadline)
        self.approvals = ApprovalDesk(
            ledger,
            self._placement,
            self._prepare,
            self.vendor,
            policy,
            secret=approval_key or secrets.token_bytes(32),
            clock=clock,
            sandbox=sandbox,
        )

    def vendor(self, key: str, *, field_name: str = "vendor") -> VendorClient:
        try:
            return self.vendors[key]
        except KeyError:
            known = ", ".join(sorted(self.vendors)) or "none"
            raise GuardError(
                f"unknown vendor {key!r}; configured vendors: {known}.", field=field_name, code="UNKNOWN_VENDOR"
            ) from None

    async def lookup(self, queries: Sequence[str], vendors: Sequence[str] | None = None) -> LookupOutcome:
        keys = (
            list(dict.fromkeys(vendors)) if vendors else [k for k, v in self.vendors.items() if v.capabilities.lookup]
        )
        return await self._lookup(queries, [self.vendor(k, field_name="vendors") for k in keys])

    async def prepare(
        self,
        vendor: str,
        po_number: str,
        items: Sequence[OrderItem],
        notes: str | None,
        options: Mapping[str, Any] | None,
        principal: str = "",
    ) -> Prepared:
        return await self._prepare(self.vendor(vendor), po_number, items, notes, options, principal)

    async def declined(self, order: Prepared, actor: str, action: str) -> None:
        """The person declined (or closed) the form for this order: audited; nothing was claimed or sent."""
        request = order.request
        await self.ledger.audit(
            "human_declined", actor=actor, vendor=request.vendor, po_number=request.po_number, action=action
        )

    async def confirmation_required(self, order: NewOrder, actor: str) -> ConfirmationRequired:
        return await self._confirmations.required(order, actor)

    async def place(
        self,
        order: NewOrder,
        *,
        actor: str,
        confirmed_by: Literal["token", "elicitation"],
        confirmation_token: str | None = None,
        confirmed_total: str | None = None,
    ) -> Outcome:
        return await self._placement.place(
            order,
            actor=actor,
            confirmed_by=confirmed_by,
            confirmation_token=confirmation_token,
            confirmed_total=confirmed_total,
        )

    async def request_approval(
        self, order: NewOrder, actor: str
    ) -> tuple[AwaitingApproval, ApprovalRequest, ApprovalLink | None]:
        return await self.approvals.open(order, actor)

    async def resume(self, repeat: Repeat, actor: str = "unknown") -> Outcome:
        return await self._placement.resume(repeat, actor)

    async def get_order(self, vendor: str, order_id: str) -> FoundOrder:
        return await self._reading.get_order(self.vendor(vendor), order_id)

    async def list_orders(
        self,
        *,
        vendor: str | None,
        statuses: Collection[OrderStatus] | None,
        po_number: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        return await self._reading.list_orders(
            [self.vendor(vendor)] if vendor else list(self.vendors.values()),
            vendor=vendor,
            statuses=statuses,
            po_number=po_number,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
