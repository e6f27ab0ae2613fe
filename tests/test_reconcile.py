"""The decision after a lost answer, over every combination of intent, capabilities and evidence.

`reconcile.decide` and `reconcile.after_refusal` are pure: the table below pins the rules the
README states, and the sweep checks, for every combination, the properties that together mean
"never a second order": a found order is adopted, a failed search never allows a send, only a
deduplicating key or a search that worked and found nothing allows a resend.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from parts_mcp.domain import Order, OrderStatus
from parts_mcp.orders.reconcile import Action, Facts, Look, after_refusal, decide
from parts_mcp.orders.states import TRANSITIONS, IntentState
from parts_mcp.vendors.base import Capabilities

FOUND = Order(vendor="v", order_id="o-1", status=OrderStatus.ORDERED, created_at=datetime(2026, 1, 1, tzinfo=UTC))
SENT, UNKNOWN, PENDING = IntentState.SENT, IntentState.UNKNOWN, IntentState.PENDING


def caps(*, get: bool = False, po: bool = False, key: bool = False, replays: bool = False) -> Capabilities:
    return Capabilities(
        lookup=True,
        quote=False,
        place=True,
        get=get,
        list=False,
        idempotency_key=key,
        find_by_po=po,
        replays_failures=replays,
        ephemeral_part_ids=False,
    )


SKYNET = caps(key=True)
FACTORYAI = caps(get=True, po=True)
KEYLOOP = caps(get=True)
PARTSSOURCE = caps(get=True, po=True, key=True, replays=True)


@pytest.mark.parametrize(
    ("facts", "vendor", "by_id", "by_po", "action"),
    [
        (Facts(PENDING), KEYLOOP, Look.NOT_ASKED, Look.NOT_ASKED, Action.SEND),
        (Facts(SENT), SKYNET, Look.NOT_ASKED, Look.NOT_ASKED, Action.RESEND),
        (Facts(UNKNOWN), KEYLOOP, Look.NOT_ASKED, Look.NOT_ASKED, Action.UNKNOWN),
        (Facts(SENT, order_id_known=True), KEYLOOP, Look.NOT_ASKED, Look.NOT_ASKED, Action.ASK_BY_ID),
        (Facts(SENT, order_id_known=True), KEYLOOP, FOUND, Look.NOT_ASKED, Action.ADOPT),
        (Facts(SENT, order_id_known=True), KEYLOOP, Look.FAILED, Look.NOT_ASKED, Action.UNKNOWN),
        (Facts(SENT), FACTORYAI, Look.NOT_ASKED, Look.NOT_ASKED, Action.ASK_BY_PO),
        (Facts(SENT), FACTORYAI, Look.NOT_ASKED, FOUND, Action.ADOPT),
        (Facts(SENT), FACTORYAI, Look.NOT_ASKED, Look.ABSENT, Action.RESEND),
        (Facts(SENT), FACTORYAI, Look.NOT_ASKED, Look.FAILED, Action.UNKNOWN),
        (Facts(UNKNOWN, stored_server_error=True), PARTSSOURCE, Look.NOT_ASKED, Look.ABSENT, Action.NEW_ATTEMPT),
        (Facts(UNKNOWN, stored_server_error=False), PARTSSOURCE, Look.NOT_ASKED, Look.ABSENT, Action.RESEND),
        (Facts(UNKNOWN, stored_server_error=True), PARTSSOURCE, Look.NOT_ASKED, Look.FAILED, Action.UNKNOWN),
        (Facts(UNKNOWN, order_id_known=True), PARTSSOURCE, Look.FAILED, Look.NOT_ASKED, Action.ASK_BY_PO),
    ],
)
def test_the_rules_as_the_readme_states_them(
    facts: Facts, vendor: Capabilities, by_id: Order | Look, by_po: Order | Look, action: Action
) -> None:
    assert decide(facts, vendor, by_id, by_po).action is action


EVIDENCE: list[Order | Look] = [Look.NOT_ASKED, Look.ABSENT, Look.FAILED, FOUND]
EVERY = list(
    itertools.product(
        [IntentState.AWAITING_APPROVAL, PENDING, SENT, UNKNOWN],  # the states an unsettled intent can be in
        itertools.product([False, True], repeat=4),  # get, find_by_po, idempotency_key, replays_failures
        [False, True],  # the vendor named an order id
        [False, True],  # a 5xx is stored for the key
        [e for e in EVIDENCE if e is not Look.ABSENT],  # by id: found, failed or not asked
        EVIDENCE,  # by PO
    )
)


@pytest.mark.parametrize(("state", "flags", "named", "stored_5xx", "by_id", "by_po"), EVERY)
def test_no_combination_can_send_an_order_twice(
    state: IntentState,
    flags: tuple[bool, bool, bool, bool],
    named: bool,
    stored_5xx: bool,
    by_id: Order | Look,
    by_po: Order | Look,
) -> None:
    get, po, key, replays = flags
    vendor = caps(get=get, po=po, key=key, replays=replays)
    decision = decide(Facts(state, order_id_known=named, stored_server_error=stored_5xx), vendor, by_id, by_po)
    action = decision.action
    if state is IntentState.AWAITING_APPROVAL:
        assert action is Action.AWAIT  # no person approved it: nothing is sent, whatever the vendor shows
        return
    if state is PENDING:
        assert action is Action.SEND  # never sent: nothing to look for
        return
    asked_by_id = get and named
    if asked_by_id and by_id is Look.NOT_ASKED:
        assert action is Action.ASK_BY_ID  # evidence first
        return
    if asked_by_id and isinstance(by_id, Order):
        assert action is Action.ADOPT and decision.order is by_id
        return
    if po and by_po is Look.NOT_ASKED:
        assert action is Action.ASK_BY_PO
        return
    if po and isinstance(by_po, Order):
        assert action is Action.ADOPT and decision.order is by_po
        return
    sends = action in (Action.SEND, Action.RESEND, Action.NEW_ATTEMPT)
    # Only a deduplicating key, or a search that worked and found nothing, allows another send.
    assert not sends or key or (po and by_po is Look.ABSENT)
    assert not (po and by_po is Look.FAILED and sends)  # a failed search proves nothing
    # A new key only where the old one would replay a stored failure, and the order is proven absent.
    assert action is not Action.NEW_ATTEMPT or (replays and stored_5xx and by_po is Look.ABSENT)
    assert action in (Action.RESEND, Action.NEW_ATTEMPT, Action.UNKNOWN)
    if action is Action.UNKNOWN:
        assert decision.reason


@pytest.mark.parametrize(
    ("first", "committed", "po", "by_po", "action", "check_vendor"),
    [
        (True, False, False, Look.NOT_ASKED, Action.REJECT, False),  # a clean refusal of the first send
        (True, False, True, Look.NOT_ASKED, Action.REJECT, False),
        (False, False, False, Look.NOT_ASKED, Action.UNKNOWN, True),  # a refused resend proves nothing
        (False, False, True, Look.NOT_ASKED, Action.ASK_BY_PO, False),
        (False, False, True, Look.ABSENT, Action.UNKNOWN, True),
        (False, False, True, FOUND, Action.ADOPT, False),
        (True, True, False, Look.NOT_ASKED, Action.UNKNOWN, False),  # may have been committed
        (True, True, True, Look.NOT_ASKED, Action.ASK_BY_PO, False),
        (True, True, True, FOUND, Action.ADOPT, False),
        (True, True, True, Look.FAILED, Action.UNKNOWN, False),
        (False, True, True, Look.ABSENT, Action.UNKNOWN, False),
    ],
)
def test_after_a_refused_send(
    first: bool, committed: bool, po: bool, by_po: Order | Look, action: Action, check_vendor: bool
) -> None:
    decision = after_refusal(caps(po=po, key=True), first=first, maybe_committed=committed, by_po=by_po)
    assert (decision.action, decision.check_vendor) == (action, check_vendor)


def test_the_state_table_has_final_states_and_no_way_back_to_pending() -> None:
    assert TRANSITIONS[IntentState.PLACED] == TRANSITIONS[IntentState.REJECTED] == frozenset()
    # Only a person's approval leads to pending (the step after awaiting it); nothing leads back.
    assert {state for state, onward in TRANSITIONS.items() if IntentState.PENDING in onward} == {
        IntentState.AWAITING_APPROVAL
    }
    assert all(IntentState.AWAITING_APPROVAL not in onward for onward in TRANSITIONS.values())
    assert set(TRANSITIONS) == set(IntentState)
