"""The default ledger: one SQLite file (WAL, synchronous=FULL), shared by the processes of one host.

A committed intent survives power loss. Each call runs on a worker thread, so the event loop never
waits on fsync. The unique (vendor, PO) key, the single-use token and the daily budget are checked
in the one transaction that records an intent; every transition is checked against the state table.

Trust (see `ledger`): the file and its sidecars are owner-only; every intent row is sealed and every
audit row chained, with an HMAC key kept beside the database, not in it (`sqlite_chain`). A row
changed by hand is never driven again; a broken chain stops new orders until an operator looks.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from parts_mcp.orders import decisions, states
from parts_mcp.orders.billing import counted
from parts_mcp.orders.ledger import (
    AuditEvent,
    AuditReport,
    Budget,
    ClaimResult,
    Intent,
    LedgerTampered,
    owner_alive,
)
from parts_mcp.orders.sqlite_chain import AUDIT_SCHEMA, TAMPERED, AuditChain, IntentSeals, migrate, transaction
from parts_mcp.orders.sqlite_files import key_path, load_key, owner_only, tighten
from parts_mcp.orders.states import IntentState

T = TypeVar("T")
logger = logging.getLogger(__name__)

# PO numbers compare without case: "PO-77" and "po-77" are one purchase order, so one order.
_BY_PO = "SELECT * FROM intents WHERE vendor = ? AND po_number = ? COLLATE NOCASE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    id TEXT PRIMARY KEY,
    vendor TEXT NOT NULL,
    po_number TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    preview TEXT NOT NULL,
    confirmed_total TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    order_id TEXT,
    order_json TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    seal TEXT,
    UNIQUE (vendor, po_number COLLATE NOCASE)
);
CREATE INDEX IF NOT EXISTS intents_order ON intents (vendor, order_id);
CREATE TABLE IF NOT EXISTS spent_tokens (
    token_id TEXT PRIMARY KEY,
    spent_at TEXT NOT NULL
);
"""

# An intent recorded for this (vendor, PO) whose row is gone, though no claim replaced it: deleted by hand.
_VANISHED = """SELECT 1 FROM audit a
WHERE a.event = 'intent_recorded' AND a.vendor = ? AND a.po_number = ? COLLATE NOCASE
AND a.intent_id NOT IN (SELECT id FROM intents)
AND NOT EXISTS (SELECT 1 FROM audit r WHERE r.event = 'intent_replaced' AND r.vendor = a.vendor
                AND r.po_number = a.po_number COLLATE NOCASE AND r.intent_id = a.intent_id) LIMIT 1"""


class SQLiteLedger:
    """The default ledger: one SQLite file, each call on a worker thread so the event loop never waits on fsync."""

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        file = None if str(path) == ":memory:" else Path(path)
        if file is not None:
            owner_only(file)
        # The in-memory ledger (the sandbox) lives and dies with its process, and so may its key.
        key = load_key(file) if file is not None else secrets.token_bytes(32)
        self._chain = AuditChain(key, str(key_path(file)) if file is not None else "the in-memory key")
        self._seals = IntentSeals(key, _intent)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._decided: list[decisions.Decision] = []  # the decisions of the call running now (see `_run`)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA + AUDIT_SCHEMA)
        with transaction(self._db):
            if (sealed := migrate(self._db, self._chain, self._seals)) is not None:
                self._insert_audit(self._db, "ledger_sealed", "parts-mcp", None, sealed)
        if file is not None:
            tighten(file)  # the -wal and -shm files SQLite has just made, should they predate our 0600

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> tuple[T, list[decisions.Decision]]:
            with self._lock:
                self._decided = []
                return fn(self._db), self._decided

        result, decided = await anyio.to_thread.run_sync(locked)
        # Logged once committed (a failed transaction raised above) and back on the caller's task.
        for decision in decided:
            decisions.log(decision)
        return result

    def _now(self) -> str:
        return self._clock().isoformat()

    def _insert_audit(self, db: sqlite3.Connection, event: str, actor: str, intent: Intent | None, detail: Any) -> None:
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
            self._decided.append(decision)

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
        def do(db: sqlite3.Connection) -> tuple[ClaimResult, Intent | None]:
            with transaction(db):
                existing = self._one_sealed(db, _BY_PO, intent.vendor, intent.po_number)
                if existing is not None and existing.state is not IntentState.REJECTED:
                    return ClaimResult.EXISTS, existing
                self._may_record(db, intent, existing, budget)
                over = _over_budget(db, intent.vendor, budget) if budget is not None else None
                if over is not None:
                    return over, None
                if token_id is not None:
                    if db.execute("SELECT 1 FROM spent_tokens WHERE token_id = ?", (token_id,)).fetchone():
                        return ClaimResult.TOKEN_USED, None
                    db.execute("INSERT INTO spent_tokens VALUES (?, ?)", (token_id, self._now()))
                if existing is not None:
                    db.execute("DELETE FROM intents WHERE id = ?", (existing.id,))
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

    def _may_record(
        self, db: sqlite3.Connection, intent: Intent, existing: Intent | None, budget: Budget | None
    ) -> None:
        """Raises LedgerTampered where a new intent would build on a ledger changed by hand."""
        self._chain.require_intact(db, intent.vendor, intent.po_number)
        if existing is None and db.execute(_VANISHED, (intent.vendor, intent.po_number)).fetchone():
            # Deleting the row of a placed order would otherwise free its PO for a second order.
            raise _tampered(intent, "an intent recorded under this PO is gone from the ledger: its row was deleted")
        if budget is not None:
            window = "SELECT * FROM intents WHERE vendor = ? AND created_at >= ?"
            if any(i.tampered for i in self._list(db, window, intent.vendor, budget.since.isoformat())):
                raise _tampered(intent, f"an intent counted in today's budget for {intent.vendor} was changed by hand")

    def _insert_intent(self, db: sqlite3.Connection, intent: Intent, owner: str, lease_seconds: float) -> None:
        db.execute(
            "INSERT INTO intents (lease_owner, lease_until, id, vendor, po_number, content_hash, attempt, "
            "idempotency_key, state, request, preview, confirmed_total, confirmed_by, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
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
        def do(db: sqlite3.Connection) -> Intent | None:
            # Read, check and take in one write transaction: the holder drives the row as it is *now*.
            with transaction(db):
                row = _row(db, "SELECT * FROM intents WHERE id = ?", intent_id)
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
                    (owner, self._after(seconds), intent_id),
                )
                return self._seals.reseal(db, intent_id)

        return await self._run(do)

    async def release(self, intent_id: str, owner: str) -> None:
        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
                row = _row(db, "SELECT * FROM intents WHERE id = ?", intent_id)
                # A row changed by hand is never re-sealed, not even to free it: it stays reported.
                if row is None or row["lease_owner"] != owner or self._seals.load(row).tampered:
                    return
                db.execute("UPDATE intents SET lease_owner = NULL, lease_until = NULL WHERE id = ?", (intent_id,))
                self._seals.reseal(db, intent_id)

        await self._run(do)

    async def get(self, vendor: str, po_number: str) -> Intent | None:
        return await self._run(lambda db: self._one_sealed(db, _BY_PO, vendor, po_number))

    async def intent(self, intent_id: str) -> Intent | None:
        return await self._run(lambda db: self._one_sealed(db, "SELECT * FROM intents WHERE id = ?", intent_id))

    async def get_by_order_id(self, vendor: str, order_id: str) -> Intent | None:
        sql = "SELECT * FROM intents WHERE vendor = ? AND order_id = ?"
        return await self._run(lambda db: self._one_sealed(db, sql, vendor, order_id))

    async def by_po(self, po_number: str) -> list[Intent]:
        sql = "SELECT * FROM intents WHERE po_number = ? COLLATE NOCASE ORDER BY vendor"
        return await self._run(lambda db: self._list(db, sql, po_number))

    def _one_sealed(self, db: sqlite3.Connection, sql: str, *args: Any) -> Intent | None:
        """The first row as an intent; LedgerTampered when it was changed by hand."""
        rows = _rows(db, sql, *args)
        return self._seals.sealed(rows[0]) if rows else None

    def _list(self, db: sqlite3.Connection, sql: str, *args: Any) -> list[Intent]:
        """Every row as an intent, those changed by hand marked `tampered` (listing them is no send)."""
        return [self._seals.load(row) for row in _rows(db, sql, *args)]

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
        def do(db: sqlite3.Connection) -> LedgerTampered | None:
            with transaction(db):
                row = _row(db, "SELECT * FROM intents WHERE id = ?", intent_id)
                if row is None:
                    raise KeyError(f"no intent {intent_id}")
                before = self._seals.load(row)
                if before.tampered:
                    return self._unrecordable(db, before, state, actor, order_id=order_id, order=order, error=error)
                states.check(intent_id, before.state, state)
                db.execute(
                    "UPDATE intents SET state = ?, order_id = COALESCE(?, order_id), "
                    "order_json = COALESCE(?, order_json), error = ?, preview = COALESCE(?, preview), "
                    "confirmed_by = COALESCE(?, confirmed_by), updated_at = ? WHERE id = ?",
                    (
                        state.value,
                        order_id,
                        json.dumps(order) if order is not None else None,
                        json.dumps(error) if error is not None else None,
                        json.dumps(preview) if preview is not None else None,
                        confirmed_by,
                        self._now(),
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

    def _unrecordable(
        self, db: sqlite3.Connection, intent: Intent, state: IntentState, actor: str, **answer: Any
    ) -> LedgerTampered:
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

    async def placed_orders(self, vendor: str | None = None) -> list[Intent]:
        # Constant SQL text either way; values are bound.
        sql = "SELECT * FROM intents WHERE state = 'placed'" + (" AND vendor = ?" if vendor else "")  # noqa: S608
        args: Sequence[Any] = (vendor,) if vendor else ()
        return await self._run(lambda db: self._list(db, sql, *args))

    async def recent(self, vendor: str, since: datetime) -> list[Intent]:
        sql = "SELECT * FROM intents WHERE vendor = ? AND created_at >= ? ORDER BY created_at DESC"
        return await self._run(lambda db: self._list(db, sql, vendor, since.isoformat()))

    async def unsettled(self) -> list[Intent]:
        # Whatever the state table lets move on is unsettled; values are bound, the SQL text is constant.
        marks = ", ".join("?" * len(states.UNSETTLED))
        sql = f"SELECT * FROM intents WHERE state IN ({marks}) ORDER BY created_at"  # noqa: S608
        return await self._run(lambda db: self._list(db, sql, *sorted(states.UNSETTLED)))

    async def spent(self, vendor: str, since: datetime, currency: str) -> Decimal:
        return await self._run(lambda db: _spent(db, vendor, since, currency))

    async def spent_by(self, principal: str, since: datetime, currency: str) -> Decimal:
        return await self._run(lambda db: _spent_by(db, principal, since, currency))

    async def audit(self, event: str, *, actor: str, intent: Intent | None = None, **detail: Any) -> None:
        def do(db: sqlite3.Connection) -> None:
            with transaction(db):
                self._insert_audit(db, event, actor, intent, detail)

        await self._run(do)

    async def verify_audit(self) -> AuditReport:
        def do(db: sqlite3.Connection) -> AuditReport:
            with transaction(db, immediate=False):  # one snapshot: the rows and the head read together
                return self._report(db)

        return await self._run(do)

    def _report(self, db: sqlite3.Connection) -> AuditReport:
        rows, broken = self._chain.verify(db)
        everything = self._list(db, "SELECT * FROM intents ORDER BY created_at")
        return AuditReport(rows, broken, tuple(i for i in everything if i.tampered))

    async def reseal(self, actor: str, reason: str) -> AuditReport:
        def do(db: sqlite3.Connection) -> AuditReport:
            with transaction(db):
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
        rows = await self._run(lambda db: _rows(db, "SELECT * FROM audit ORDER BY seq DESC LIMIT ?", limit))
        return [
            AuditEvent(
                seq=row["seq"],
                at=datetime.fromisoformat(row["at"]),
                event=row["event"],
                actor=row["actor"],
                vendor=row["vendor"],
                po_number=row["po_number"],
                intent_id=row["intent_id"],
                detail=json.loads(row["detail"]),
            )
            for row in reversed(rows)
        ]


def _over_budget(db: sqlite3.Connection, vendor: str, budget: Budget) -> ClaimResult | None:
    """Which daily limit this intent would break, if any: the vendor's, then the person's."""
    if budget.limit is not None and _spent(db, vendor, budget.since, budget.currency) + budget.amount > budget.limit:
        return ClaimResult.OVER_BUDGET
    if budget.principal is not None and budget.principal_limit is not None:
        spent = _spent_by(db, budget.principal, budget.since, budget.currency)
        if spent + budget.amount > budget.principal_limit:
            return ClaimResult.OVER_PRINCIPAL_BUDGET
    return None


# Whose spend a budget counts: one vendor's intents, or one person's at every vendor. Constant SQL.
_BY_VENDOR = "vendor = ?"
_BY_PRINCIPAL = "json_extract(request, '$.principal') = ?"


def _spent_by(db: sqlite3.Connection, principal: str, since: datetime, currency: str) -> Decimal:
    return _spent_where(db, _BY_PRINCIPAL, principal, since, currency)


def _spent(db: sqlite3.Connection, vendor: str, since: datetime, currency: str) -> Decimal:
    return _spent_where(db, _BY_VENDOR, vendor, since, currency)


def _spent_where(db: sqlite3.Connection, whose: str, who: str, since: datetime, currency: str) -> Decimal:
    """What the intents since `since` add up to in `currency`: every one not refused, as `counted`."""
    rows = db.execute(
        "SELECT preview, order_json, confirmed_total FROM intents "  # noqa: S608 - `whose` is one of two constants
        f"WHERE {whose} AND state != 'rejected' AND created_at >= ?",
        (who, since.isoformat()),
    ).fetchall()
    return sum((counted(json.loads(p), json.loads(o) if o else None, str(t), currency) for p, o, t in rows), Decimal(0))


def _rows(db: sqlite3.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    cursor = db.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _row(db: sqlite3.Connection, sql: str, *args: Any) -> dict[str, Any] | None:
    rows = _rows(db, sql, *args)
    return rows[0] if rows else None


def _tampered(intent: Intent, reason: str) -> LedgerTampered:
    logger.error("ledger: %s PO %r: %s", intent.vendor, intent.po_number, reason)
    return LedgerTampered(intent.vendor, intent.po_number, reason)


def _intent(row: Any) -> Intent:
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
