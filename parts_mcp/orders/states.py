"""An intent's states and the only transitions between them: one table, checked by the ledger.

    awaiting_approval ──▶ pending        (a person approved it out of band)
            └──────────▶ rejected        (declined, lapsed, or superseded by changed prices)

    pending ──▶ sent ──▶ placed
       │         │ ▲
       │         ▼ │ (resend under the same key)
       │       unknown ──▶ placed | rejected
       └──▶ rejected        (sent ──▶ rejected: a clean refusal of the first send)

`placed` and `rejected` are final: a rejected PO is free for a newly confirmed order, which is a
new intent (a new attempt), never this one again. A new state (the approval states of a later
issue) is a row here and a branch of `reconcile.decide`, not a new method.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class IntentState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # recorded, the PO and budget held; a person has not decided
    PENDING = "pending"  # recorded and confirmed; not yet sent
    SENT = "sent"  # a vendor call started: the vendor may have committed
    PLACED = "placed"
    REJECTED = "rejected"  # the vendor refused or guaranteed nothing was written
    UNKNOWN = "unknown"  # we cannot tell whether the vendor committed; never blindly resent


TRANSITIONS: Mapping[IntentState, frozenset[IntentState]] = {
    # The person's decision: approved (then sent like any confirmed intent), or declined / lapsed.
    IntentState.AWAITING_APPROVAL: frozenset({IntentState.PENDING, IntentState.REJECTED}),
    # Sending, or an operator settling an intent that never left (it cannot have reached the vendor).
    IntentState.PENDING: frozenset({IntentState.SENT, IntentState.REJECTED}),
    # The answer: placed, a clean refusal, or no proof either way. SENT again: a resend after a lost answer.
    IntentState.SENT: frozenset({IntentState.SENT, IntentState.PLACED, IntentState.REJECTED, IntentState.UNKNOWN}),
    # Found at the vendor (placed), proven absent (rejected, then a new attempt), or resent under its key.
    IntentState.UNKNOWN: frozenset({IntentState.SENT, IntentState.PLACED, IntentState.REJECTED}),
    IntentState.PLACED: frozenset(),
    IntentState.REJECTED: frozenset(),
}

UNSETTLED = frozenset(state for state, onward in TRANSITIONS.items() if onward)
"""States an operator may still settle (and the server may still drive)."""


class IllegalTransition(Exception):
    """A transition the table does not allow: a bug, or a ledger row changed behind the server's back."""

    def __init__(self, intent_id: str, current: IntentState, wanted: IntentState) -> None:
        super().__init__(f"intent {intent_id}: {current.value} -> {wanted.value} is not an allowed transition")
        self.current, self.wanted = current, wanted


def check(intent_id: str, current: IntentState, wanted: IntentState) -> None:
    """Raises IllegalTransition unless the table allows `current -> wanted`."""
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(intent_id, current, wanted)
