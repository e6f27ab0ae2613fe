"""The durable record of every order intent and an append-only audit log.

An intent is written *before* the vendor is called and moves through
`pending -> sent -> placed | rejected | unknown`. A unique key on (vendor, po_number) makes
concurrent duplicate calls collapse into one intent. SQLite in WAL mode with synchronous=FULL:
a committed intent survives power loss. The `Ledger` Protocol lets a shared database replace it
when several server replicas run.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from parts_mcp.orders.states import IntentState

T = TypeVar("T")


@dataclass
class Intent:
    id: str
    vendor: str
    po_number: str
    content_hash: str
    attempt: int
    idempotency_key: str
    state: IntentState
    request: dict[str, Any]
    preview: dict[str, Any]
    confirmed_total: str
    confirmed_by: str
    created_at: datetime
    updated_at: datetime
    order_id: str | None = None
    order: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Budget:
    """A spend limit checked in the same transaction that records the intent, so no race beats it."""

    limit: Decimal
    since: datetime
    amount: Decimal  # this intent's total
    currency: str


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: datetime
    event: str
    actor: str
    vendor: str | None
    po_number: str | None
    intent_id: str | None
    detail: dict[str, Any] = field(default_factory=dict[str, Any])


def lease_owner() -> str:
    """A lease owner name for this process: host and pid let another process see that it died."""
    return f"parts-mcp:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_alive(owner: str) -> bool:
    """False only when `owner` names a process on this host that no longer exists; unsure means alive."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != "parts-mcp" or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return True
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but is someone else's
    return True


class ClaimResult(StrEnum):
    CREATED = "created"  # a fresh intent, the caller must send it
    EXISTS = "exists"  # an intent for this (vendor, PO) already exists; it is returned
    OVER_BUDGET = "over_budget"  # the vendor's daily budget would be exceeded
    TOKEN_USED = "token_used"  # noqa: S105 - a state name, not a secret


class Ledger(Protocol):
    async def claim(
        self,
        intent: Intent,
        token_id: str | None,
        actor: str,
        *,
        owner: str = "",
        lease_seconds: float = 0,
        budget: Budget | None = None,
    ) -> tuple[ClaimResult, Intent | None]:
        """Record a new intent atomically with spending its confirmation token (and leasing it to `owner`).

        A *rejected* intent for the same (vendor, PO) is replaced: nothing was ordered under it.
        """
        ...

    async def get(self, vendor: str, po_number: str) -> Intent | None: ...

    async def lease(self, intent_id: str, owner: str, seconds: float) -> Intent | None:
        """Take the right to drive this intent (send, resend, reconcile) for `seconds`; the row as it is now.

        None while another owner's lease runs: that process is talking to the vendor right now.
        The claimant of a new intent holds its lease already.
        """
        ...

    async def release(self, intent_id: str, owner: str) -> None: ...

    async def get_by_order_id(self, vendor: str, order_id: str) -> Intent | None: ...

    async def by_po(self, po_number: str) -> list[Intent]:
        """Every vendor's intent under this PO number (compared without case)."""
        ...

    async def transition(
        self,
        intent_id: str,
        state: IntentState,
        *,
        actor: str,
        order_id: str | None = None,
        order: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None: ...

    async def placed_orders(self, vendor: str | None = None) -> list[Intent]: ...

    async def unsettled(self) -> list[Intent]:
        """Intents not yet placed or rejected (pending, sent, unknown), oldest first: what needs a look."""
        ...

    async def spent(self, vendor: str, since: datetime, currency: str) -> Decimal:
        """Today's (or any window's) spend with `vendor` in `currency`: the one measure every budget uses."""
        ...

    async def audit(self, event: str, *, actor: str, intent: Intent | None = None, **detail: Any) -> None: ...

    async def audit_log(self, limit: int = 1000) -> list[AuditEvent]: ...

    def close(self) -> None: ...
