"""The durable record of every order intent and an append-only audit log.

An intent is written *before* the vendor is called and moves through
`pending -> sent -> placed | rejected | unknown`. A unique key on (vendor, po_number) makes
concurrent duplicate calls collapse into one intent. SQLite in WAL mode with synchronous=FULL:
a committed intent survives power loss. The `Ledger` Protocol lets a shared database replace it
when several server replicas run.

Trust: every intent row carries a *seal* (an HMAC of its content) and every audit row is chained to
the one before by an HMAC (`chain_hash`), with a sealed head (row count, last hash) that shows rows
deleted at the end. The canonical forms and the walk that checks the chain live here, so every
backend seals and verifies the same way; a backend only stores and reads them back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from parts_mcp.orders.states import IntentState

if TYPE_CHECKING:
    from parts_mcp.orders.listing import Position
    from parts_mcp.vendors.base import OrderQuery

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
    # Set by the ledger when the row no longer matches its seal (edited outside parts-mcp); never stored.
    tampered: bool = False


@dataclass(frozen=True)
class Budget:
    """A spend limit checked in the same transaction that records the intent, so no race beats it."""

    limit: Decimal | None  # per vendor per day
    since: datetime
    amount: Decimal  # this intent's total
    currency: str
    principal: str | None = None  # who orders it, for the per-person limit
    principal_limit: Decimal | None = None  # per person per day, across vendors


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


GENESIS = "parts-mcp:audit:genesis:v1"
"""What the first audit row is chained to."""


class LedgerUnavailable(Exception):
    """The ledger cannot be opened (its database does not answer, or it is newer than this parts-mcp):
    the server does not start. The message names the config key and says what to do, never a secret."""


class LedgerTampered(Exception):
    """An intent row no longer matches its seal, or the audit chain is broken: the intent is not sent.

    `sent` is True only when the vendor had already been called (its answer could not be recorded on
    the changed row; it is in the audit log instead).
    """

    def __init__(self, vendor: str, po_number: str, reason: str, *, sent: bool = False) -> None:
        super().__init__(f"{vendor} PO {po_number!r}: {reason}")
        self.vendor, self.po_number, self.reason, self.sent = vendor, po_number, reason, sent


@dataclass(frozen=True)
class BrokenLink:
    """The first place where the audit log is not what parts-mcp wrote; no row for a ledger-wide fault."""

    what: str
    seq: int | None = None
    event: str | None = None
    at: datetime | None = None

    def __str__(self) -> str:
        if self.seq is None:
            return self.what
        at = self.at.isoformat() if self.at else "unknown time"
        return f"row {self.seq} ({self.event}, {at}): {self.what}"


@dataclass(frozen=True)
class AuditReport:
    """What `Ledger.verify_audit` found: the chain's length, its first broken link, intents edited by hand."""

    rows: int
    broken: BrokenLink | None = None
    tampered: tuple[Intent, ...] = ()

    @property
    def intact(self) -> bool:
        return self.broken is None and not self.tampered

    def __str__(self) -> str:
        if self.intact:
            return f"ok: {self.rows} rows"
        found = [f"first broken link: {self.broken}"] if self.broken else []
        found += [f"intent changed by hand: {i.vendor} PO {i.po_number!r} ({i.state.value})" for i in self.tampered]
        return "; ".join(found)


@dataclass(frozen=True)
class ChainLink:
    """An audit row as stored, with the hash of the row before it and its own."""

    event: AuditEvent
    prev_hash: str | None
    hash: str | None


@dataclass(frozen=True)
class ChainHead:
    """The chain's length and last hash, sealed: deleting rows at the end no longer goes unseen.

    What this does not stop, said plainly: the key lives outside the database, so an edit made
    through the database alone cannot forge a seal, a link or a head. But whoever can also read the
    key (the same OS account) can rewrite anything consistently; whoever kept an old copy of the file
    can put the whole ledger (or its head and tail together) back to that earlier, consistent state;
    deleting every table leaves what looks like a new ledger; anyone with write access can destroy it.
    Only a copy of the head kept elsewhere (a later issue) would show those.
    """

    count: int
    last_hash: str
    seal: str


def canonical(value: Any) -> bytes:
    """One byte string per value on every backend: sorted keys, no spaces, datetimes as UTC ISO text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        items: Mapping[Any, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return {str(k): _plain(v) for k, v in items.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A name for the key, stored with the ledger: a replaced or lost key is told apart from tampering."""
    return _mac(key, b"parts-mcp:ledger-key")[:16]


def chain_hash(key: bytes, prev_hash: str, event: AuditEvent) -> str:
    """The hash of an audit row: keyed, over the previous row's hash and the row's content (not its seq)."""
    content = {
        "at": event.at,
        "event": event.event,
        "actor": event.actor,
        "vendor": event.vendor,
        "po_number": event.po_number,
        "intent_id": event.intent_id,
        "detail": event.detail,
    }
    return _mac(key, b"audit\n" + prev_hash.encode() + b"\n" + canonical(content))


def head_seal(key: bytes, count: int, last_hash: str) -> str:
    return _mac(key, f"head\n{count}\n{last_hash}".encode())


def intent_seal(key: bytes, intent: Intent, lease_owner: str | None, lease_until: datetime | None) -> str:
    """The seal of an intent row: every field of `Intent` (a field added later is sealed too) and its lease.

    The lease is sealed as well: clearing it by hand would let a second process resend an order that
    is being sent right now.
    """
    content = {f.name: getattr(intent, f.name) for f in fields(intent) if f.name != "tampered"}
    content["lease"] = [lease_owner, lease_until]
    return _mac(key, b"intent\n" + canonical(content))


@dataclass
class ChainWalk:
    """Follows the audit chain row by row from a known point (the genesis by default).

    `step` and `end` return the first broken link; a walk that found none can be resumed later
    with the rows written since.
    """

    key: bytes
    count: int = 0
    last_hash: str = GENESIS
    last: AuditEvent | None = None

    def step(self, link: ChainLink) -> BrokenLink | None:
        row = link.event
        if link.hash is None or link.prev_hash is None:
            return _broken(row, "it has no hash: it was written outside parts-mcp")
        if link.prev_hash != self.last_hash:
            return _broken(row, "it does not follow the row before it: a row before it was deleted")
        if chain_hash(self.key, self.last_hash, row) != link.hash:
            return _broken(row, "its content was changed after it was written")
        self.count, self.last_hash, self.last = self.count + 1, link.hash, row
        return None

    def end(self, head: ChainHead | None) -> BrokenLink | None:
        """Compares where the walk ended with the sealed head: rows deleted at the end show here."""
        if head is None:
            return None if self.count == 0 else self._at_end("the chain head (its row count and last hash) is missing")
        if not hmac.compare_digest(head.seal, head_seal(self.key, head.count, head.last_hash)):
            return self._at_end("the chain head (its row count and last hash) was changed by hand")
        if head.count != self.count or head.last_hash != self.last_hash:
            return self._at_end(
                f"the log ends here after {self.count} rows, but {head.count} were written: "
                "rows at the end were deleted"
            )
        return None

    def _at_end(self, what: str) -> BrokenLink:
        return _broken(self.last, what) if self.last else BrokenLink(what)


def _broken(row: AuditEvent | None, what: str) -> BrokenLink:
    return BrokenLink(what, row.seq, row.event, row.at) if row else BrokenLink(what)


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
    OVER_PRINCIPAL_BUDGET = "over_principal_budget"  # the person's daily budget would be exceeded
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

        Raises:
            LedgerTampered: the existing intent was edited by hand, an intent recorded for this PO is
                gone from the ledger, or the audit chain is broken: nothing may be sent.
        """
        ...

    async def get(self, vendor: str, po_number: str) -> Intent | None:
        """The intent under this PO at `vendor`. Raises LedgerTampered when its row was edited by hand."""
        ...

    async def lease(self, intent_id: str, owner: str, seconds: float) -> Intent | None:
        """Take the right to drive this intent (send, resend, reconcile) for `seconds`; the row as it is now.

        None while another owner's lease runs: that process is talking to the vendor right now.
        The claimant of a new intent holds its lease already. Raises LedgerTampered as `claim` does.
        """
        ...

    async def renew(self, owner: str, seconds: float) -> int:
        """Extend every lease `owner` holds to `seconds` from now; how many. A holder that stops renewing
        (it crashed, or lost the database) loses its leases when they run out, on any host."""
        ...

    async def release(self, intent_id: str, owner: str) -> None: ...

    async def get_by_order_id(self, vendor: str, order_id: str) -> Intent | None:
        """Raises LedgerTampered when the row was edited by hand; the listing methods mark it `tampered`."""
        ...

    async def intent(self, intent_id: str) -> Intent | None:
        """The intent with this id (an approval request's id is its intent's); LedgerTampered as `get`."""
        ...

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
        preview: dict[str, Any] | None = None,
        confirmed_by: str | None = None,
    ) -> None:
        """Move the intent on (the state table decides); `preview` replaces the priced order to send (an
        approval re-priced at the same prices, with the vendor's fresh quote ids), `confirmed_by` who
        confirmed it (the person who approved it out of band). Raises LedgerTampered
        for a row edited by hand: it is never re-sealed; a vendor's answer that cannot be recorded on it
        goes to the audit log."""
        ...

    async def placed_page(
        self, vendors: Collection[str], query: OrderQuery, after: Position | None, limit: int
    ) -> list[Intent]:
        """Placed orders at `vendors` matching every filter of `query`, newest first by the listing's key
        (`listing.sort_key` of the order as placed), strictly after `after`; at most `limit`. Paged in the
        store, so a page costs the same at any ledger size. Rows changed by hand are marked `tampered`."""
        ...

    async def recent(self, vendor: str, since: datetime) -> list[Intent]:
        """The vendor's intents created since `since` (any state), newest first."""
        ...

    async def unsettled(self) -> list[Intent]:
        """Intents not yet placed or rejected (pending, sent, unknown), oldest first: what needs a look."""
        ...

    async def spent(self, vendor: str, since: datetime, currency: str) -> Decimal:
        """Today's (or any window's) spend with `vendor` in `currency`: the one measure every budget uses."""
        ...

    async def spent_by(self, principal: str, since: datetime, currency: str) -> Decimal:
        """What one person's orders since `since` take from their daily budget, at every vendor."""
        ...

    async def audit(self, event: str, *, actor: str, intent: Intent | None = None, **detail: Any) -> None: ...

    async def audit_log(self, limit: int = 1000) -> list[AuditEvent]: ...

    async def verify_audit(self) -> AuditReport:
        """Walk the whole audit chain and every intent's seal. Until an operator accepts a broken chain
        (`reseal`), `claim` and `lease` refuse with `LedgerTampered`; an edited intent is refused alone.
        """
        ...

    async def reseal(self, actor: str, reason: str) -> AuditReport:
        """An operator has checked the ledger: accept it as it is now, recorded in the audit log.

        Re-chains from the first broken link, re-seals intents edited by hand; returns what was accepted.
        """
        ...

    def close(self) -> None: ...
