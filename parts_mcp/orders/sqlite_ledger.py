"""The default ledger: one SQLite file (WAL, synchronous=FULL), shared by the processes of one host.

A committed intent survives power loss. Each call runs on a worker thread, so the event loop never
waits on fsync. The unique (vendor, PO) key, the single-use token and the daily budget are checked
in the one transaction that records an intent; every transition is checked against the state table.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from parts_mcp.orders import states
from parts_mcp.orders.ledger import AuditEvent, Budget, ClaimResult, Intent, owner_alive
from parts_mcp.orders.states import IntentState

T = TypeVar("T")

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
    UNIQUE (vendor, po_number COLLATE NOCASE)
);
CREATE INDEX IF NOT EXISTS intents_order ON intents (vendor, order_id);
CREATE TABLE IF NOT EXISTS spent_tokens (
    token_id TEXT PRIMARY KEY,
    spent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    vendor TEXT,
    po_number TEXT,
    intent_id TEXT,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class SQLiteLedger:
    """The default ledger: one SQLite file, each call on a worker thread so the event loop never waits on fsync."""

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(intents)")}
        for column in ("lease_owner", "lease_until"):
            if column not in columns:  # a ledger written before leases existed
                self._db.execute(f"ALTER TABLE intents ADD COLUMN {column} TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._db)

        return await anyio.to_thread.run_sync(locked)

    def _now(self) -> str:
        return self._clock().isoformat()

    def _insert_audit(self, db: sqlite3.Connection, event: str, actor: str, intent: Intent | None, detail: Any) -> None:
        db.execute(
            "INSERT INTO audit (at, event, actor, vendor, po_number, intent_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self._now(),
                event,
                actor,
                intent.vendor if intent else detail.get("vendor"),
                intent.po_number if intent else detail.get("po_number"),
                intent.id if intent else None,
                json.dumps(detail, default=str, sort_keys=True),
            ),
        )

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
            db.execute("BEGIN IMMEDIATE")
            try:
                existing = _one(db, _BY_PO, intent.vendor, intent.po_number)
                if existing is not None and existing.state is not IntentState.REJECTED:
                    db.execute("ROLLBACK")
                    return ClaimResult.EXISTS, existing
                spent = _spent(db, intent.vendor, budget.since, budget.currency) if budget is not None else None
                if budget is not None and spent is not None and spent + budget.amount > budget.limit:
                    db.execute("ROLLBACK")
                    return ClaimResult.OVER_BUDGET, None
                if token_id is not None:
                    spent = db.execute("SELECT 1 FROM spent_tokens WHERE token_id = ?", (token_id,)).fetchone()
                    if spent:
                        db.execute("ROLLBACK")
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
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return ClaimResult.CREATED, intent

        return await self._run(do)

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

    def _after(self, seconds: float) -> str:
        return (self._clock() + timedelta(seconds=seconds)).isoformat()

    async def lease(self, intent_id: str, owner: str, seconds: float) -> Intent | None:
        def do(db: sqlite3.Connection) -> Intent | None:
            # One compare-and-set: whoever's UPDATE matches holds the intent; ISO UTC text orders like time.
            # The row is read in the same locked step, so the holder drives what is there *now*.
            cursor = db.execute(
                "UPDATE intents SET lease_owner = ?, lease_until = ? WHERE id = ? "
                "AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, self._after(seconds), intent_id, owner, self._now()),
            )
            if cursor.rowcount == 0:
                holder = db.execute("SELECT lease_owner FROM intents WHERE id = ?", (intent_id,)).fetchone()
                if holder and holder[0] and not owner_alive(holder[0]):
                    # Its process died on this machine (a crash, kill -9): no need to wait for the lease to run out.
                    cursor = db.execute(
                        "UPDATE intents SET lease_owner = ?, lease_until = ? WHERE id = ? AND lease_owner = ?",
                        (owner, self._after(seconds), intent_id, holder[0]),
                    )
            return _one(db, "SELECT * FROM intents WHERE id = ?", intent_id) if cursor.rowcount == 1 else None

        return await self._run(do)

    async def release(self, intent_id: str, owner: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE intents SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (intent_id, owner),
            )
        )

    async def get(self, vendor: str, po_number: str) -> Intent | None:
        return await self._run(lambda db: _one(db, _BY_PO, vendor, po_number))

    async def get_by_order_id(self, vendor: str, order_id: str) -> Intent | None:
        return await self._run(
            lambda db: _one(db, "SELECT * FROM intents WHERE vendor = ? AND order_id = ?", vendor, order_id)
        )

    async def by_po(self, po_number: str) -> list[Intent]:
        sql = "SELECT * FROM intents WHERE po_number = ? COLLATE NOCASE ORDER BY vendor"
        return await self._run(lambda db: [_intent(row) for row in _rows(db, sql, po_number)])

    async def transition(
        self,
        intent_id: str,
        state: IntentState,
        *,
        actor: str,
        order_id: str | None = None,
        order: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        def do(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                before = _one(db, "SELECT * FROM intents WHERE id = ?", intent_id)
                if before is None:
                    raise KeyError(f"no intent {intent_id}")
                states.check(intent_id, before.state, state)
                db.execute(
                    "UPDATE intents SET state = ?, order_id = COALESCE(?, order_id), "
                    "order_json = COALESCE(?, order_json), error = ?, updated_at = ? WHERE id = ?",
                    (
                        state.value,
                        order_id,
                        json.dumps(order) if order is not None else None,
                        json.dumps(error) if error is not None else None,
                        self._now(),
                        intent_id,
                    ),
                )
                current = _one(db, "SELECT * FROM intents WHERE id = ?", intent_id)
                detail: dict[str, Any] = {"state": state.value}
                if order_id:
                    detail["order_id"] = order_id
                if order is not None:
                    detail["total"] = order.get("total")
                if error is not None:
                    detail["error"] = error
                self._insert_audit(db, f"intent_{state.value}", actor, current, detail)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(do)

    async def placed_orders(self, vendor: str | None = None) -> list[Intent]:
        # Constant SQL text either way; values are bound.
        sql = "SELECT * FROM intents WHERE state = 'placed'" + (" AND vendor = ?" if vendor else "")  # noqa: S608
        args: Sequence[Any] = (vendor,) if vendor else ()
        return await self._run(lambda db: [_intent(row) for row in _rows(db, sql, *args)])

    async def unsettled(self) -> list[Intent]:
        # Whatever the state table lets move on is unsettled; values are bound, the SQL text is constant.
        marks = ", ".join("?" * len(states.UNSETTLED))
        sql = f"SELECT * FROM intents WHERE state IN ({marks}) ORDER BY created_at"  # noqa: S608
        return await self._run(lambda db: [_intent(row) for row in _rows(db, sql, *sorted(states.UNSETTLED))])

    async def spent(self, vendor: str, since: datetime, currency: str) -> Decimal:
        return await self._run(lambda db: _spent(db, vendor, since, currency))

    async def audit(self, event: str, *, actor: str, intent: Intent | None = None, **detail: Any) -> None:
        await self._run(lambda db: self._insert_audit(db, event, actor, intent, detail))

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


def _spent(db: sqlite3.Connection, vendor: str, since: datetime, currency: str) -> Decimal:
    """What the vendor's orders since `since` add up to in `currency`: every confirmed intent not refused."""
    rows = db.execute(
        "SELECT confirmed_total FROM intents WHERE vendor = ? AND state != 'rejected' AND created_at >= ?",
        (vendor, since.isoformat()),
    ).fetchall()
    totals = (str(row[0]).split() for row in rows)
    return sum((Decimal(t[0]) for t in totals if len(t) == 2 and t[1] == currency), Decimal(0))


def _rows(db: sqlite3.Connection, sql: str, *args: Any) -> list[sqlite3.Row]:
    cursor = db.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]  # type: ignore[misc]


def _one(db: sqlite3.Connection, sql: str, *args: Any) -> Intent | None:
    rows = _rows(db, sql, *args)
    return _intent(rows[0]) if rows else None


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
