"""What the orders service takes and returns: its policy, and one type per outcome."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from parts_mcp.domain import Money, Order, OrderSummary, Part, Preview, Suggestion
from parts_mcp.orders.ledger import Intent
from parts_mcp.vendors.base import OrderRequest

ConfirmationMode = Literal["auto", "elicit", "approval", "token"]
Clock = Callable[[], datetime]
"""The one clock of a server: the service, guard, tokens and ledger all read the same one."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class GuardPolicy:
    confirmation: ConfirmationMode = "auto"
    po_pattern: re.Pattern[str] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,39}$")
    max_order_total: Decimal | None = Decimal("25000.00")
    max_daily_total_per_vendor: Decimal | None = None
    max_daily_total_per_principal: Decimal | None = None
    approval_required_above: Decimal | None = None
    order_vendors: frozenset[str] | None = None
    read_only: bool = False
    token_ttl: timedelta = timedelta(minutes=10)
    approval_ttl: timedelta = timedelta(minutes=15)
    # Where the vendor adds charges at creation (tax, shipping), an approval covers the previewed
    # total plus this share of it plus this flat amount (in the order's currency).
    added_charges_rate: Decimal = Decimal("0.10")
    added_charges_flat: Decimal = Decimal("50.00")
    duplicate_window: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class VendorFailure:
    """One vendor's failure in a fan-out; the others' results still stand."""

    vendor: str
    code: str
    message: str
    retryable: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class LookupOutcome:
    parts: list[Part]
    not_found: list[str]
    vendor_errors: list[VendorFailure]
    # Near misses for the not_found queries, in not_found's order, best first within each query.
    suggestions: list[Suggestion] = field(default_factory=list[Suggestion])


@dataclass(frozen=True)
class NewOrder:
    """A validated, priced order no intent exists for yet: it needs the human's confirmation."""

    request: OrderRequest
    content_hash: str
    display_name: str
    preview: Preview
    previous_attempt: int = 0  # of a rejected intent under the same PO
    principal: str = ""  # the person ordering (the token's, or the local user over stdio)
    # What the human must know before confirming that is not about the vendor's pricing.
    warnings: list[str] = field(default_factory=list[str])


@dataclass(frozen=True)
class Repeat:
    """The same order under a PO the ledger already has: answered or finished, never sent anew."""

    request: OrderRequest
    content_hash: str
    display_name: str
    existing: Intent


Prepared = NewOrder | Repeat


@dataclass(frozen=True)
class ConfirmationRequired:
    preview: Preview
    confirmation_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Placed:
    order: Order
    idempotency_key: str
    replayed: bool | None  # None: a resend under the same key, so the vendor may or may not have replayed
    warnings: list[str] = field(default_factory=list[str])
    placed_by: str | None = None  # the person who ordered it
    approved_by: str | None = None  # who approved it out of band, where someone did


@dataclass(frozen=True)
class OutcomeUnknown:
    vendor: str
    po_number: str
    idempotency_key: str
    reason: str
    next_steps: str


@dataclass(frozen=True)
class BilledAboveApproval:
    """The vendor created the order but billed more than the human approved; undone where it could be."""

    order: Order
    idempotency_key: str
    approved: Money  # the approval's bound
    cancelled: bool  # this server cancelled it with the vendor
    next_steps: str


@dataclass(frozen=True)
class AwaitingApproval:
    """Recorded and held for a person's decision out of band; nothing the model has can approve it."""

    vendor: str
    po_number: str
    approval_id: str
    requested_at: datetime
    expires_at: datetime
    reached: list[str] = field(default_factory=list[str])  # where the request went (filled by the channels)
    notes: list[str] = field(default_factory=list[str])  # e.g. a channel that failed
    new: bool = True  # False: a repeat call found the request already waiting
    second_person: bool = False  # four-eyes: a second signed-in person with orders:approve decides


Outcome = Placed | OutcomeUnknown | BilledAboveApproval | AwaitingApproval


@dataclass(frozen=True)
class FoundOrder:
    order: Order
    note: str | None = None  # how the order was found, when not by its own id


@dataclass(frozen=True)
class OrderPage:
    orders: list[OrderSummary]
    next_cursor: str | None
    notes: list[str]
    vendor_errors: list[VendorFailure]
