"""What to do with an intent whose answer may have been lost: pure decisions, no I/O.

A small driver (`placement.Placement`) gathers the evidence each decision asks for and acts on it.
The rules, which together never create a second order:

- An intent never sent (`pending`) is sent.
- One that may have been committed is first looked for at the vendor: by the order id the vendor
  named, then by PO number. Found means adopt it.
- Only a vendor that deduplicates by idempotency key, or a search that *worked* and found nothing,
  allows a send; a failed search proves nothing. A vendor that replays a stored failure under the
  old key (PartsSource) gets a new attempt, with a new key, once the search shows no order.
- Anything else is `unknown`, with advice: the server never resends on its own there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from parts_mcp.domain import Order
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import Capabilities


class Look(Enum):
    """The outcome of asking the vendor for an order, when it did not return one."""

    NOT_ASKED = "not asked"
    ABSENT = "absent"  # the search worked and found nothing
    FAILED = "failed"  # the search itself failed: proves nothing


Evidence = Order | Look


class Action(StrEnum):
    SEND = "send"  # the first send of this intent
    RESEND = "resend"  # again under the same idempotency key
    NEW_ATTEMPT = "new_attempt"  # supersede the intent with a new key: proven absent after a stored failure
    ADOPT = "adopt"  # the vendor has the order: record it as placed
    REJECT = "reject"  # a clean refusal of the first send: nothing was written
    UNKNOWN = "unknown"  # stop; tell the user how to check
    AWAIT = "await"  # a person has not approved it yet: nothing may be sent
    ASK_BY_ID = "ask_by_id"  # evidence needed: get the order by the id the vendor named
    ASK_BY_PO = "ask_by_po"  # evidence needed: search the vendor by PO number


@dataclass(frozen=True)
class Decision:
    action: Action
    order: Order | None = None  # ADOPT: the order found
    how: str = ""  # ADOPT: how it was found
    reason: str = ""  # UNKNOWN: why
    check_vendor: bool = False  # UNKNOWN: the user must look in the vendor's own records


@dataclass(frozen=True)
class Facts:
    """What the ledger knows about the intent."""

    state: IntentState
    order_id_known: bool = False  # the vendor named an order id before the answer was lost
    stored_server_error: bool = False  # the last answer stored for this key was a 5xx


ASK_BY_ID = Decision(Action.ASK_BY_ID)
ASK_BY_PO = Decision(Action.ASK_BY_PO)


def decide(
    facts: Facts, caps: Capabilities, by_id: Evidence = Look.NOT_ASKED, by_po: Evidence = Look.NOT_ASKED
) -> Decision:
    """The next step for an intent being resumed (a repeat call, or another process taking over)."""
    if facts.state is IntentState.AWAITING_APPROVAL:
        return Decision(Action.AWAIT)
    if facts.state is IntentState.PENDING:
        return Decision(Action.SEND)
    if facts.order_id_known and caps.get:
        if by_id is Look.NOT_ASKED:
            return ASK_BY_ID
        if isinstance(by_id, Order):
            return Decision(Action.ADOPT, order=by_id, how="by its id")
    if caps.find_by_po:
        if by_po is Look.NOT_ASKED:
            return ASK_BY_PO
        if isinstance(by_po, Order):
            return Decision(Action.ADOPT, order=by_po, how="by its PO number")
        if by_po is Look.FAILED:
            return Decision(Action.UNKNOWN, reason="The vendor could not be searched for this PO.")
        if caps.replays_failures and facts.stored_server_error:
            # The old key would only replay its stored failure, and the search shows no order.
            return Decision(Action.NEW_ATTEMPT)
        return Decision(Action.RESEND)
    if caps.idempotency_key:
        return Decision(Action.RESEND)
    return Decision(Action.UNKNOWN, reason="An earlier attempt at this order may or may not have reached the vendor.")


def after_refusal(
    caps: Capabilities, *, first: bool, maybe_committed: bool, by_po: Evidence = Look.NOT_ASKED
) -> Decision:
    """The next step after the vendor answered a send with an error.

    Only a clean refusal of a *first* send is a rejection (which frees the PO for new content): a
    refusal of a resend says nothing about the earlier attempt.
    """
    if first and not maybe_committed:
        return Decision(Action.REJECT)
    if caps.find_by_po:
        if by_po is Look.NOT_ASKED:
            return ASK_BY_PO
        if isinstance(by_po, Order):
            return Decision(Action.ADOPT, order=by_po, how="by its PO number")
    # A refused resend: the vendor's own advice ("order it again") would risk a second order.
    return Decision(Action.UNKNOWN, check_vendor=not maybe_committed)


def advice(name: str, caps: Capabilities, po: str, *, check_vendor: bool = False) -> str:
    """What the user should do about an unknown outcome at vendor `name`: never a second order."""
    again = f"Call place_order again with the same vendor, po_number {po!r} and the same items"
    if check_vendor:
        return (
            f"Do not place this order again and do not create a new PO for it. Check {name}'s "
            f"own records (for Skynet: the draft orders in its web account) for PO {po!r}."
        )
    if caps.find_by_po:
        return (
            f"Do not create a new PO for this. {again}: this server first searches {name} for "
            "that PO and sends the order only if it is not there, so nothing is ordered twice."
        )
    if caps.idempotency_key:
        return (
            f"Do not create a new PO for this. {again}: it resends with the same idempotency key, and "
            f"{name} returns the original order if it was created, so nothing is ordered twice."
        )
    return (
        f"Do not place this order again. Check in {name} for an order with reference "
        f"{po!r}; this server will not resend it on its own."
    )
