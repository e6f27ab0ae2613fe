"""One INFO line per order decision, with its vendor, PO, total, person and reference; never a payload.

Every decision about an order is written to the ledger's audit log, through `Ledger.audit` or
`Ledger.transition`, whoever takes it (placement, the approval desk, the place_order tool, an
operator's `parts-mcp intents`). So the ledger hands each audit row it has committed to `of`, and
logs what comes back: one line per decision, none for a row that failed to commit, none twice.

Decisions: previewed, approval_requested, approved, declined, sent, placed, billed_above_approval,
unknown, refused. A refusal that never reaches the ledger (a malformed PO, a limit) is logged by the
tool boundary through `refused`, unless this call's refusal was logged here already (`within_call`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from parts_mcp import telemetry
from parts_mcp.domain import Money, Order
from parts_mcp.orders import billing
from parts_mcp.orders.ledger import Intent
from parts_mcp.untrusted import clean_text

logger = logging.getLogger(__name__)

# Audit events that are decisions by themselves; intent transitions are mapped in `_transition`.
_EVENTS = {
    "previewed": "previewed",
    "approval_requested": "approval_requested",
    "approval_approved": "approved",
    "human_declined": "declined",
    "confirmation_refused": "refused",
}
# A rejected attempt replaced at once by a new one (its own `sent` follows): bookkeeping, no decision.
_NOT_DECISIONS = frozenset({"NOT_FOUND_AFTER_FAILURE"})
CLOSING = frozenset({"declined", "refused"})
"""Decisions that answer the call with a refusal: the boundary does not log that refusal again."""

_call: ContextVar[list[str] | None] = ContextVar("parts_mcp_call_decisions", default=None)


@dataclass(frozen=True)
class Decision:
    decision: str
    vendor: str | None
    po_number: str | None
    total: str | None
    principal: str
    ref: str | None  # the intent's id (an approval's id is its intent's); a preview's content hash
    reason: str | None = None


def of(event: str, actor: str, intent: Intent | None, detail: Mapping[str, Any]) -> Decision | None:
    """The decision an audit row records, or None for bookkeeping (intent_recorded, seals, replays)."""
    if event.startswith("intent_") and intent is not None:
        return _transition(event.removeprefix("intent_"), actor, intent, detail)
    decision = _EVENTS.get(event)
    if decision is None:
        return None
    vendor = intent.vendor if intent else detail.get("vendor")
    po_number = intent.po_number if intent else detail.get("po_number")
    total = detail.get("total") or detail.get("now")
    ref = intent.id if intent else _short(detail.get("content_hash"))
    reason = (detail.get("reason") or detail.get("action")) if decision in CLOSING else None
    return Decision(decision, vendor, po_number, _str(total), actor, ref, _str(reason))


def _transition(state: str, actor: str, intent: Intent, detail: Mapping[str, Any]) -> Decision | None:
    error: Mapping[str, Any] = detail.get("error") or {}
    code = _str(error.get("code"))
    total, reason = intent.confirmed_total, None
    if state in ("sent", "unknown"):
        decision, reason = state, code
    elif state == "placed":
        decision, total, reason = _placed(intent)
    elif state == "rejected" and code not in _NOT_DECISIONS:
        decision = "declined" if code == "DECLINED" else "refused"
        reason = code
    else:
        return None  # pending (after `approved`), awaiting_approval: no new decision
    return Decision(decision, intent.vendor, intent.po_number, total, actor, intent.id, reason)


def _placed(intent: Intent) -> tuple[str, str, str | None]:
    """placed, or billed_above_approval: the vendor billed more than the person approved."""
    if intent.order is None:
        return "placed", intent.confirmed_total, None
    order = Order.model_validate(intent.order)
    limit = intent.preview.get("approval_limit")
    approved = Money.model_validate(limit) if limit else Money.parse(intent.confirmed_total)
    bill = billing.billed(order)
    total = str(bill) if bill is not None else intent.confirmed_total
    if billing.above(order, approved):
        return "billed_above_approval", total, f"approved {approved}; order {order.status.value}"
    return "placed", total, None


def log(decision: Decision) -> None:
    """The decision's line (its fields as the JSON log's extra fields) and its count in the metrics."""
    calls = _call.get()
    if calls is not None:
        calls.append(decision.decision)
    telemetry.order_decided(decision.vendor, decision.decision)
    because = f" ({decision.reason})" if decision.reason else ""
    logger.info(
        "order %s: %s PO %s, total %s, by %s, ref %s%s",
        decision.decision,
        decision.vendor,
        decision.po_number,
        decision.total or "-",
        decision.principal or "-",
        decision.ref or "-",
        because,
        extra=asdict(decision),
    )


def refused(vendor: Any, po_number: Any, principal: str, code: str) -> None:
    """A place_order call refused before any decision reached the ledger (a malformed PO, a limit).

    `vendor` and `po_number` are the caller's arguments, unchecked: logged capped, as one plain line.
    """
    asked = [clean_text(value, 80) if value is not None else None for value in (vendor, po_number)]
    log(Decision("refused", asked[0], asked[1], None, principal, None, code))


@contextmanager
def within_call() -> Generator[list[str]]:
    """Collects the decisions logged during one tool call (its tasks included)."""
    decided: list[str] = []
    token = _call.set(decided)
    try:
        yield decided
    finally:
        _call.reset(token)


def _short(value: Any) -> str | None:
    return str(value)[:16] if value else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
