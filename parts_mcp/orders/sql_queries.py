"""The ledger's SQL that is more than a row: the PO look-ups, a day's spend, a listing page, a row as an Intent.

Written once for both stores (`sql_store.Db`); `sql_ledger` runs it inside its transactions.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from parts_mcp.orders.billing import counted
from parts_mcp.orders.ledger import Budget, ClaimResult, Intent
from parts_mcp.orders.listing import Position, created_key
from parts_mcp.orders.sql_store import Db
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import OrderQuery

# PO numbers compare without case: "PO-77" and "po-77" are one purchase order, so one order.
BY_PO = "SELECT * FROM intents WHERE vendor = ? AND lower(po_number) = lower(?)"

# An intent recorded for this (vendor, PO) whose row is gone, though no claim replaced it: deleted by hand.
# (Its PO changed by hand counts as gone: the row would no longer hold the PO.)
VANISHED = """SELECT 1 AS found FROM audit a
WHERE a.event = 'intent_recorded' AND a.vendor = ? AND lower(a.po_number) = lower(?)
AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = a.intent_id AND lower(i.po_number) = lower(a.po_number))
AND NOT EXISTS (SELECT 1 FROM audit r WHERE r.event = 'intent_replaced' AND r.vendor = a.vendor
                AND lower(r.po_number) = lower(a.po_number) AND r.intent_id = a.intent_id) LIMIT 1"""


def over_budget(db: Db, vendor: str, budget: Budget) -> ClaimResult | None:
    """Which daily limit this intent would break, if any: the vendor's, then the person's."""
    if budget.limit is not None and spent(db, vendor, budget.since, budget.currency) + budget.amount > budget.limit:
        return ClaimResult.OVER_BUDGET
    if budget.principal is not None and budget.principal_limit is not None:
        theirs = spent_where(db, db.principal, budget.principal, budget.since, budget.currency)
        if theirs + budget.amount > budget.principal_limit:
            return ClaimResult.OVER_PRINCIPAL_BUDGET
    return None


def spent(db: Db, vendor: str, since: datetime, currency: str) -> Decimal:
    return spent_where(db, "vendor", vendor, since, currency)


def spent_where(db: Db, whose: str, who: str, since: datetime, currency: str) -> Decimal:
    """What the intents since `since` add up to in `currency`: every one not refused, as `counted`.

    `whose` is the column (or the store's expression for the principal) a budget counts by.
    """
    rows = db.rows(
        "SELECT preview, order_json, confirmed_total FROM intents "  # noqa: S608 - `whose` is a constant
        f"WHERE {whose} = ? AND state != 'rejected' AND created_at >= ?",
        who,
        since.isoformat(),
    )
    return sum(
        (
            counted(
                json.loads(r["preview"]),
                json.loads(r["order_json"]) if r["order_json"] else None,
                str(r["confirmed_total"]),
                currency,
            )
            for r in rows
        ),
        Decimal(0),
    )


def marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))


def page_sql(vendors: Collection[str], query: OrderQuery, after: Position | None, limit: int) -> tuple[str, list[Any]]:
    """A keyset page of placed orders, newest first by (order created, vendor, order id): `intents_listing`."""
    where, args = ["state = 'placed'", f"vendor IN ({marks(vendors)})"], list[Any](sorted(vendors))
    if query.statuses is not None:
        where.append(f"order_status IN ({marks(query.statuses)})")
        args += sorted(s.value for s in query.statuses)
    if query.po_number is not None:
        where.append("lower(po_number) = lower(?)")
        args.append(query.po_number)
    # An order without a date ("") passes no date filter, as `OrderQuery.matches` has it.
    if query.created_after is not None:
        where.append("listed_at != '' AND listed_at >= ?")
        args.append(created_key(query.created_after))
    if query.created_before is not None:
        where.append("listed_at != '' AND listed_at < ?")
        args.append(created_key(query.created_before))
    if after is not None:
        where.append("(listed_at, vendor, order_id) < (?, ?, ?)")
        args += after
    sql = (
        f"SELECT * FROM intents WHERE {' AND '.join(where)} "  # noqa: S608 - constant clauses; values bound
        f"ORDER BY listed_at DESC, vendor DESC, order_id DESC LIMIT {int(limit)}"
    )
    return sql, args


def intent_of(row: Any) -> Intent:
    return Intent(
        id=row["id"],
        vendor=row["vendor"],
        po_number=row["po_number"],
        content_hash=row["content_hash"],
        attempt=row["attempt"],
        idempotency_key=row["idempotency_key"],
        state=IntentState(row["state"]),
        request=json.loads(row["request"]),
        preview=json.loads(row["preview"]),
        confirmed_total=row["confirmed_total"],
        confirmed_by=row["confirmed_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        order_id=row["order_id"],
        order=json.loads(row["order_json"]) if row["order_json"] else None,
        error=json.loads(row["error"]) if row["error"] else None,
    )
