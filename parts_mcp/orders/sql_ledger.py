"""The ledger on a SQL store: one implementation of the claim, the leases, the chain and the budgets.

Two stores run it: SQLite (`sqlite_ledger`, one host) and PostgreSQL (`postgres_ledger`, shared by
replicas). Each call runs on a worker thread with one connection (`_call`), so the event loop never
waits on the database. The unique (vendor, PO) key, the single-use token and the daily budget are
checked in the one write transaction that records an intent, and a write transaction excludes every
other writer (`Db.begin`); every transition is checked against the state table.

Trust (see `ledger`): every intent row is sealed and every audit row chained, with an HMAC key kept
outside the database (`sql_chain`). A row changed by hand is never driven again; a broken chain stops
new orders until an operator looks.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import anyio.to_thread

from parts_mcp.orders import decisions, sql_queries, states
from parts_mcp.orders.ledger import (
    AuditEvent,
    AuditReport,
    Budget,
    ClaimResult,
    Intent,
    LedgerTampered,
    owner_alive,
)
from parts_mcp.orders.listing import Position
from parts_mcp.orders.sql_chain import TAMPERED, AuditChain, IntentSeals, audit_event
from parts_mcp.orders.sql_schema import Dialect, listing_columns, migrate
from parts_mcp.orders.sql_store import Db
from parts_mcp.orders.states import IntentState
from parts_mcp.vendors.base import OrderQuery

T = TypeVar("T")
# Rows read per query where a call walks the whole table.
_BATCH = 1000
logger = logging.getLogger(__name__)


class SqlLedger(ABC):
    """The `Ledger` on a SQL store; a store gives it connections (`_call`) and keeps the key outside the database."""

    def __init__(self, key: bytes, key_source: str, dialect: Dialect, *, clock: Callable[[], datetime] | None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._chain = AuditChain(key, key_source)
        self._seals = IntentSeals(key, sql_queries.intent_of)
        self._dialect: Dialect = dialect

    def _open(self) -> None:
        """Create or migrate the schema: once, by whichever process opens the ledger first."""

        def do(db: Db) -> None:
            with db.transaction():
                for event, detail in migrate(db, self._dialect, self._chain, self._seals):
                    self._insert_audit(db, event, "parts-mcp", None, detail)

        self._call(do)

    @abstractmethod
    def _call(self, fn: Callable[[Db], T]) -> T:
        """Run `fn` with a connection of the store's; on a worker thread."""

    @abstractmethod
    def close(self) -> None: ...

    async def _run(self, fn: Callable[[Db], T]) -> T:
        def call() -> tuple[T, list[decisions.Decision]]:
            return self._call(lambda db: (fn(db), db.decided))

        result, decided = await anyio.to_thread.run_sync(call)
        # Logged once committed (a failed transaction raised above) and back on the caller's task.
        for decision in decided:
            decisions.log(decision)
        return result

    def _now(self) -> str:
        return self._clock().isoformat()

    def _insert_audit(self, db: Db, event: str, actor: str, intent: Intent | None, detail: Any) -> None:
        """Append to the chain; inside the caller's transaction, so the row and its head move together."""
        self._chain.append(
            db,
            AuditEvent(
                seq=0,
                at=self._clock(),
                event=event,
                actor=actor,
                vendor=intent.vendor if intent else detail.get("vendor"),
                po_number=intent.po_number if intent else detail.get("po_number"),
                intent_id=intent.id if intent else None,
                # As it will be read back: the hash covers what is stored.
                detail=json.loads(json.dumps(detail, default=str, sort_keys=True)),
            ),
        )
        if (decision := decisions.of(event, actor, intent, detail)) is not None:
            db.decided.append(decision)

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
        def do(db: Db) -> tuple[ClaimResult, Intent | None]:
            with db.transaction():
                existing = self._one_sealed(db, sql_queries.BY_PO, intent.vendor, intent.po_number)
                if existing is not None and existing.state is not IntentState.REJECTED:
                    return ClaimResult.EXISTS, existing
                self._may_record(db, intent, existing, budget)
                over = sql_queries.over_budget(db, intent.vendor, budget) if budget is not None else None
                if over is not None:
                    return over, None
                if token_id is not None:
                    if db.row("SELECT 1 AS spent FROM spent_tokens WHERE token_id = ?", token_id):
                        return ClaimResult.TOKEN_USED, None
                    db.execute("INSERT INTO spent_tokens (token_id, spent_at) VALUES (?, ?)", token_id, self._now())
                if existing is not None:
                    db.execute("DELETE FROM intents WHERE id = ?", existing.id)
                    self._insert_audit(db, "intent_replaced", actor, existing, {"replaced_by": intent.id})
                self._insert_intent(db, intent, owner, lease_seconds)
                self._insert_audit(
                    db,
                    "intent_recorded",
                    actor,
                    intent,
                    {
                        "idempotency_key": intent.idempotency_key,
                        "confirmed_total": intent.confirmed_total,
                        "confirmed_by": intent.confirmed_by,
                        "content_hash": intent.content_hash,
                        "attempt": intent.attempt,
                    },
                )
            return ClaimResult.CREATED, intent

        return await self._run(do)

    def _may_record(self, db: Db, intent: Intent, existing: Intent | None, budget: Budget | None) -> None:
        """Raises LedgerTampered where a new intent would build on a ledger changed by hand."""
        self._chain.require_intact(db, intent.vendor, intent.po_number)
        if existing is None and db.row(sql_queries.VANISHED, intent.vendor, intent.po_number):
            # Deleting the row of a placed order would otherwise free its PO for a second order.
            raise _tampered(
                intent,
                "an intent recorded under this PO is gone from the ledger: its row was deleted or its PO changed",
            )
        if budget is not None:
            window = "SELECT * FROM intents WHERE vendor = ? AND created_at >= ?"
            if any(i.tampered for i in self._list(db, window, intent.vendor, budget.since.isoformat())):
                raise _tampered(intent, f"an intent counted in today's budget for {intent.vendor} was changed by hand")

    def _insert_intent(self, db: Db, intent: Intent, owner: str, lease_seconds: float) -> None:
        db.execute(
            "INSERT INTO intents (lease_owner, lease_until, id, vendor, po_number, content_hash, attempt, "
            "idempotency_key, state, request, preview, confirmed_total, confirmed_by, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *(
                owner or None,
                self._after(lease_seconds) if owner else None,
                intent.id,
                intent.vendor,
                intent.po_number,
                intent.content_hash,
                intent.attempt,
                intent.idempotency_key,
                intent.state.value,
                json.dumps(intent.request),
                json.dumps(intent.preview),
                intent.confirmed_total,
                intent.confirmed_by,
                intent.created_at.isoformat(),
                intent.updated_at.isoformat(),
            ),
        )
        self._seals.reseal(db, intent.id)

    def _after(self, seconds: float) -> str:
        return (self._clock() + timedelta(seconds=seconds)).isoformat()

    async def lease(self, intent_id: str, owner: str, seconds: float) -> Intent | None:
        def do(db: Db) -> Intent | None:
            # Read, check and take in one write transaction: the holder drives the row as it is *now*.
            with db.transaction():
                row = db.row("SELECT * FROM intents WHERE id = ?", intent_id)
                if row is None:
                    return None
                intent = self._seals.sealed(row)
                self._chain.require_intact(db, intent.vendor, intent.po_number)
                holder, until = row["lease_owner"], row["lease_until"] or ""
                # ISO UTC text orders like time. A holder whose process died on this machine (a crash,
                # kill -9) need not be waited for.
                if holder is not None and holder != owner and until >= self._now() and owner_alive(holder):
                    return None
                db.execute(
                    "UPDATE intents SET lease_owner = ?, lease_until = ? WHERE id = ?",
                    owner,
                    self._after(seconds),
                    intent_id,
                )
                return self._seals.reseal(db, intent_id)

        return await self._run(do)

    async def renew(self, owner: str, seconds: float) -> int:
        def do(db: Db) -> int:
            with db.transaction():
                held = [self._seals.load(row) for row in db.rows("SELECT * FROM intents WHERE lease_owner = ?", owner)]
                # A row changed by hand is never re-sealed: its lease runs out, and it stays reported.
                mine = [intent.id for intent in held if not intent.tampered]
                for intent_id in mine:
                    db.execute("UPDATE intents SET lease_until = ? WHERE id = ?", self._after(seconds), intent_id)
                    self._seals.reseal(db, intent_id)
                return len(mine)

        return await self._run(do)

    async def release(self, intent_id: str, owner: str) -> None:
        def do(db: Db) -> None:
            with db.transaction():
                row = db.row("SELECT * FROM intents WHERE id = ?", intent_id)
                # A row changed by hand is never re-sealed, not even to free it: it stays reported.
                if row is None or row["lease_owner"] != owner or self._seals.load(row).tampered:
                    return
                db.execute("UPDATE intents SET lease_owner = NULL, lease_until = NULL WHERE id = ?", intent_id)
                self._seals.reseal(db, intent_id)

        await self._run(do)

    async def get(self, vendor: str, po_number: str) -> Intent | None:
        return await self._run(lambda db: self._one_sealed(db, sql_queries.BY_PO, vendor, po_number))

    async def intent(self, intent_id: str) -> Intent | None:
        return await self._run(lambda db: self._one_sealed(db, "SELECT * FROM intents WHERE id = ?", intent_id))

    async def get_by_order_id(self, vendor: str, order_id: str) -> Intent | None:
        sql = "SELECT * FROM intents WHERE vendor = ? AND order_id = ?"
        return await self._run(lambda db: self._one_sealed(db, sql, vendor, order_id))

    async def by_po(self, po_number: str) -> list[Intent]:
        sql = "SELECT * FROM intents WHERE lower(po_number) = lower(?) ORDER BY vendor"
        return await self._run(lambda db: self._list(db, sql, po_number))

    def _one_sealed(self, db: Db, sql: str, *args: Any) -> Intent | None:
        """The first row as an intent; LedgerTampered when it was changed by hand."""
        row = db.row(sql, *args)
        return self._seals.sealed(row) if row else None

    def _list(self, db: Db, sql: str, *args: Any) -> list[Intent]:
        """Every row as an intent, those changed by hand marked `tampered` (listing them is no send)."""
        return [self._seals.load(row) for row in db.rows(sql, *args)]

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
        def do(db: Db) -> LedgerTampered | None:
            with db.transaction():
                row = db.row("SELECT * FROM intents WHERE id = ?", intent_id)
                if row is None:
                    raise KeyError(f"no intent {intent_id}")
                before = self._seals.load(row)
                if before.tampered:
                    return self._unrecordable(db, before, state, actor, order_id=order_id, order=order, error=error)
                states.check(intent_id, before.state, state)
                listed_at, order_status = listing_columns(order)
                db.execute(
                    "UPDATE intents SET state = ?, order_id = COALESCE(?, order_id), "
                    "order_json = COALESCE(?, order_json), error = ?, preview = COALESCE(?, preview), "
                    "confirmed_by = COALESCE(?, confirmed_by), updated_at = ?, "
                    "listed_at = COALESCE(?, listed_at), order_status = COALESCE(?, order_status) WHERE id = ?",
                    *(
                        state.value,
                        order_id,
                        json.dumps(order) if order is not None else None,
                        json.dumps(error) if error is not None else None,
                        json.dumps(preview) if preview is not None else None,
                        confirmed_by,
                        self._now(),
                        listed_at,
                        order_status,
                        intent_id,
                    ),
                )
                current = self._seals.reseal(db, intent_id)
                detail: dict[str, Any] = {"state": state.value}
                if order_id:
                    detail["order_id"] = order_id
                if order is not None:
                    detail["total"] = order.get("total")
                if error is not None:
                    detail["error"] = error
                self._insert_audit(db, f"intent_{state.value}", actor, current, detail)
            return None

        if (tampered := await self._run(do)) is not None:
            raise tampered

    def _unrecordable(self, db: Db, intent: Intent, state: IntentState, actor: str, **answer: Any) -> LedgerTampered:
        """A row changed by hand is never re-sealed: a vendor's answer for it is kept in the audit log instead."""
        sent = state in (IntentState.PLACED, IntentState.UNKNOWN)  # the vendor was called
        if sent:
            order: dict[str, Any] = answer.get("order") or {}
            detail: dict[str, Any] = {"state": state.value, "order_id": answer.get("order_id")}
            detail |= {"total": order.get("total"), "error": answer.get("error")}
            self._insert_audit(db, "intent_tampered", actor, intent, detail)
        reason = TAMPERED + ("; the vendor's answer is kept in the audit log (intent_tampered)" if sent else "")
        tampered = _tampered(intent, reason)
        tampered.sent = sent
        return tampered

    async def placed_page(
        self, vendors: Collection[str], query: OrderQuery, after: Position | None, limit: int
    ) -> list[Intent]:
        sql, args = sql_queries.page_sql(vendors, query, after, limit)
        return await self._run(lambda db: self._list(db, sql, *args))

    async def recent(self, vendor: str, since: datetime) -> list[Intent]:
        sql = "SELECT * FROM intents WHERE vendor = ? AND created_at >= ? ORDER BY created_at DESC"
        return await self._run(lambda db: self._list(db, sql, vendor, since.isoformat()))

    async def unsettled(self) -> list[Intent]:
        # Whatever the state table lets move on is unsettled; values are bound, the SQL text is constant.
        sql = f"SELECT * FROM intents WHERE state IN ({sql_queries.marks(states.UNSETTLED)}) ORDER BY created_at"  # noqa: S608
        return await self._run(lambda db: self._list(db, sql, *sorted(states.UNSETTLED)))

    async def spent(self, vendor: str, since: datetime, currency: str) -> Decimal:
        return await self._run(lambda db: sql_queries.spent(db, vendor, since, currency))

    async def spent_by(self, principal: str, since: datetime, currency: str) -> Decimal:
        return await self._run(lambda db: sql_queries.spent_where(db, db.principal, principal, since, currency))

    async def audit(self, event: str, *, actor: str, intent: Intent | None = None, **detail: Any) -> None:
        def do(db: Db) -> None:
            with db.transaction():
                self._insert_audit(db, event, actor, intent, detail)

        await self._run(do)

    async def verify_audit(self) -> AuditReport:
        def do(db: Db) -> AuditReport:
            with db.transaction(write=False):  # one snapshot: the rows and the head read together
                return self._report(db)

        return await self._run(do)

    def _report(self, db: Db) -> AuditReport:
        rows, broken = self._chain.verify(db)
        return AuditReport(rows, broken, tuple(self._tampered(db)))

    def _tampered(self, db: Db) -> list[Intent]:
        """Every intent changed by hand, oldest first: read a batch at a time, so memory stays flat."""
        found: list[Intent] = []
        after = ""
        while rows := db.rows(f"SELECT * FROM intents WHERE id > ? ORDER BY id LIMIT {_BATCH}", after):  # noqa: S608
            found += [intent for intent in map(self._seals.load, rows) if intent.tampered]
            after = rows[-1]["id"]
        return sorted(found, key=lambda i: i.created_at)

    async def reseal(self, actor: str, reason: str) -> AuditReport:
        def do(db: Db) -> AuditReport:
            with db.transaction():
                found = self._report(db)
                if found.intact:
                    return found
                self._chain.accept(db)
                for intent in self._seals.accept(db, found.tampered):
                    self._insert_audit(db, "intent_resealed", actor, intent, {"state": intent.state.value})
                detail = {"broken": str(found.broken) if found.broken else None, "reason": reason}
                self._insert_audit(db, "audit_resealed", actor, None, {**detail, "intents": len(found.tampered)})
            return found

        return await self._run(do)

    async def audit_log(self, limit: int = 1000) -> list[AuditEvent]:
        rows = await self._run(lambda db: db.rows("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", limit))
        return [audit_event(row) for row in reversed(rows)]


def _tampered(intent: Intent, reason: str) -> LedgerTampered:
    logger.error("ledger: %s PO %r: %s", intent.vendor, intent.po_number, reason)
    return LedgerTampered(intent.vendor, intent.po_number, reason)
