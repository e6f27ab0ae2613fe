"""The SQLite side of the ledger's trust: the chained audit rows and the sealed intent rows.

The canonical forms, the seals and the walk that checks the chain are `ledger`'s (any backend uses
them); this module only stores them in SQLite and reads them back.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from parts_mcp.orders.ledger import (
    GENESIS,
    AuditEvent,
    BrokenLink,
    ChainHead,
    ChainLink,
    ChainWalk,
    Intent,
    LedgerTampered,
    chain_hash,
    head_seal,
    intent_seal,
    key_id,
)
from parts_mcp.orders.states import IntentState

logger = logging.getLogger(__name__)

AUDIT_NO_UPDATE = """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"""

AUDIT_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    vendor TEXT,
    po_number TEXT,
    intent_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX IF NOT EXISTS audit_po ON audit (vendor, po_number COLLATE NOCASE);
{AUDIT_NO_UPDATE};
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS ledger_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_COLUMNS = "seq, at, event, actor, vendor, po_number, intent_id, detail, prev_hash, hash"


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = True) -> Generator[None]:
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time across the processes sharing the file.

    Not immediate: a read snapshot, so rows and the chain head are seen as of one moment.
    """
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class AuditChain:
    """Appends chained audit rows, keeps the sealed head, and checks the chain.

    The check after start-up is incremental (`check` resumes where the last intact walk ended), so
    each order pays for the rows written since, not for the whole log; a deletion among rows already
    checked is seen by the next full walk (every server start, `parts-mcp audit verify`).
    """

    def __init__(self, key: bytes, key_source: str) -> None:
        self._key = key
        self._key_source = key_source
        self._walk: ChainWalk | None = None  # where the last intact walk ended

    def adopt_key(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO ledger_meta VALUES ('key_id', ?)", (key_id(self._key),))

    def append(self, db: sqlite3.Connection, event: AuditEvent) -> None:
        """Add `event` (its detail as stored, read back) at the end of the chain; inside a transaction."""
        head = self._head(db)
        if head is None:
            last = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            prev, count, keep_head = (last[0] or GENESIS) if last else GENESIS, 0, last is None
        else:
            prev, count, keep_head = head.last_hash, head.count, self._head_intact(head)
        digest = chain_hash(self._key, prev, event)
        db.execute(
            f"INSERT INTO audit ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant
            (*_stored(event), prev, digest),
        )
        # A head that is missing or was changed stays so: appending must not make a cut log look whole.
        if keep_head:
            self._write_head(db, count + 1, digest)

    def check(self, db: sqlite3.Connection) -> BrokenLink | None:
        """The first broken link, resuming after the last intact walk; None when the chain holds."""
        if (wrong_key := self._key_mismatch(db)) is not None:
            self._walk = None
            return wrong_key
        resumed, self._walk = self._walk, None
        broken = self._walk_from(db, replace(resumed) if resumed else ChainWalk(self._key))
        if broken is not None and resumed is not None:
            # An operator's reseal in another process may have re-linked rows this one had checked.
            broken = self._walk_from(db, ChainWalk(self._key))
        return broken

    def _walk_from(self, db: sqlite3.Connection, walk: ChainWalk) -> BrokenLink | None:
        for link in _links(db, walk.last.seq if walk.last else 0):
            if (broken := walk.step(link)) is not None:
                return broken
        if (broken := walk.end(self._head(db))) is not None:
            return broken
        self._walk = walk
        return None

    def require_intact(self, db: sqlite3.Connection, vendor: str, po_number: str) -> None:
        """Raises LedgerTampered while the chain is broken: new orders and resends wait for an operator.

        Why refuse writes (reads go on): rows were deleted or edited by someone who meant it, and the
        intents table may hide what the log would have shown (a deleted intent frees its PO for a
        second order). `parts-mcp audit reseal` records an operator's acceptance and lifts this.
        """
        if (broken := self.check(db)) is not None:
            raise LedgerTampered(
                vendor,
                po_number,
                f"the ledger's audit log is broken ({broken}); no order is sent until an operator has checked it",
            )

    def verify(self, db: sqlite3.Connection) -> tuple[int, BrokenLink | None]:
        """The whole chain from its genesis: how many rows it has, and its first broken link."""
        self._walk = None
        rows = int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
        return rows, self.check(db)

    def accept(self, db: sqlite3.Connection) -> None:
        """An operator's acceptance: re-link every row from the first broken one; inside a transaction."""
        walk = ChainWalk(self._key)
        if self._key_mismatch(db) is not None:
            db.execute("UPDATE ledger_meta SET value = ? WHERE name = 'key_id'", (key_id(self._key),))
        else:
            for link in _links(db, 0):
                if walk.step(link) is not None:
                    break
        self.rechain(db, walk)

    def restart(self, db: sqlite3.Connection) -> ChainWalk:
        """Chain every row from the genesis (a ledger older than the chain); inside a transaction."""
        return self.rechain(db, ChainWalk(self._key))

    def rechain(self, db: sqlite3.Connection, walk: ChainWalk) -> ChainWalk:
        """Link every row after where `walk` stopped, and seal the head: inside a transaction."""
        after = list(_links(db, walk.last.seq if walk.last else 0))
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        for link in after:
            digest = chain_hash(self._key, walk.last_hash, link.event)
            db.execute(
                "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (walk.last_hash, digest, link.event.seq)
            )
            walk.count, walk.last_hash, walk.last = walk.count + 1, digest, link.event
        db.execute(AUDIT_NO_UPDATE)
        self._write_head(db, walk.count, walk.last_hash)
        self._walk = None
        return walk

    def _head(self, db: sqlite3.Connection) -> ChainHead | None:
        row = db.execute("SELECT value FROM ledger_meta WHERE name = 'audit_head'").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            return ChainHead(int(data["count"]), str(data["last_hash"]), str(data["seal"]))
        except (ValueError, KeyError, TypeError):
            return ChainHead(-1, "", "")  # unreadable: its seal cannot match

    def _head_intact(self, head: ChainHead) -> bool:
        return head.seal == head_seal(self._key, head.count, head.last_hash)

    def _write_head(self, db: sqlite3.Connection, count: int, last_hash: str) -> None:
        value = {"count": count, "last_hash": last_hash, "seal": head_seal(self._key, count, last_hash)}
        db.execute("INSERT OR REPLACE INTO ledger_meta VALUES ('audit_head', ?)", (json.dumps(value),))

    def _key_mismatch(self, db: sqlite3.Connection) -> BrokenLink | None:
        row = db.execute("SELECT value FROM ledger_meta WHERE name = 'key_id'").fetchone()
        if row is None or row[0] == key_id(self._key):
            return None
        return BrokenLink(
            f"the ledger was sealed with another key than {self._key_source} (the key file was lost or replaced, "
            "or the database comes from elsewhere): no seal can be checked. Restore the original key file, or "
            "accept the ledger as it is with `parts-mcp audit reseal`"
        )


TAMPERED = (
    "its row in the ledger no longer matches its seal: it was changed outside parts-mcp (or the ledger's key "
    "file was replaced)"
)


class IntentSeals:
    """Seals intent rows, and checks them as they are read; `read` turns a row into an Intent."""

    def __init__(self, key: bytes, read: Callable[[dict[str, Any]], Intent]) -> None:
        self._key, self._read = key, read

    def load(self, row: dict[str, Any]) -> Intent:
        """The intent, marked `tampered` when the row does not match its seal (or cannot be read at all)."""
        try:
            intent = self._read(row)
            until = datetime.fromisoformat(row["lease_until"]) if row["lease_until"] else None
        except (ValueError, TypeError, KeyError):
            return _unreadable(row)
        expected = intent_seal(self._key, intent, row["lease_owner"], until)
        intent.tampered = not hmac.compare_digest(str(row.get("seal") or "").encode(), expected.encode())
        return intent

    def sealed(self, row: dict[str, Any]) -> Intent:
        """The intent, if its row is as parts-mcp wrote it.

        Raises:
            LedgerTampered: the row was changed outside parts-mcp: it must not be sent or resent.
        """
        intent = self.load(row)
        if intent.tampered:
            logger.error("ledger: %s PO %r: %s", intent.vendor, intent.po_number, TAMPERED)
            raise LedgerTampered(intent.vendor, intent.po_number, TAMPERED)
        return intent

    def reseal(self, db: sqlite3.Connection, intent_id: str) -> Intent:
        """Seal the row as it is now: after every write parts-mcp makes, in the same transaction."""
        row = _row(db, "SELECT * FROM intents WHERE id = ?", intent_id)
        intent = self._read(row)
        until = datetime.fromisoformat(row["lease_until"]) if row["lease_until"] else None
        db.execute(
            "UPDATE intents SET seal = ? WHERE id = ?",
            (intent_seal(self._key, intent, row["lease_owner"], until), intent_id),
        )
        return intent

    def seal_all(self, db: sqlite3.Connection) -> int:
        ids = [row[0] for row in db.execute("SELECT id FROM intents").fetchall()]
        for intent_id in ids:
            self.reseal(db, intent_id)
        return len(ids)

    def accept(self, db: sqlite3.Connection, tampered: Iterable[Intent]) -> list[Intent]:
        """An operator's acceptance: re-seal these rows as they are now; those re-sealed."""
        accepted: list[Intent] = []
        for intent in tampered:
            try:
                self.reseal(db, intent.id)
            except (ValueError, TypeError, KeyError):
                continue  # no longer reads as an intent: it stays reported until it is mended by hand
            accepted.append(intent)
        return accepted


def migrate(db: sqlite3.Connection, chain: AuditChain, seals: IntentSeals) -> dict[str, Any] | None:
    """Add the columns a ledger written by an earlier version lacks; inside a transaction.

    The first time the seal and hash columns appear, the rows found are chained and sealed, once:
    what to record of that. Never again after: a hash emptied later reads as broken, not as old.
    """
    intents = {row[1] for row in db.execute("PRAGMA table_info(intents)")}
    audit = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    missing = [("intents", c) for c in ("lease_owner", "lease_until", "seal") if c not in intents]
    missing += [("audit", c) for c in ("prev_hash", "hash") if c not in audit]
    for table, column in missing:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    chain.adopt_key(db)
    if not any(column in ("seal", "hash") for _, column in missing):
        return None
    walk = chain.restart(db)
    note = "rows written before the chain existed are chained as found: they are as trustworthy as the file was"
    return {"audit_rows": walk.count, "intents": seals.seal_all(db), "note": note}


def _unreadable(row: dict[str, Any]) -> Intent:
    """A row that no longer reads as an intent: shown, marked, with what can be read; never driven."""
    epoch = datetime.fromtimestamp(0, UTC)
    return Intent(
        id=str(row.get("id")),
        vendor=str(row.get("vendor")),
        po_number=str(row.get("po_number")),
        content_hash="",
        attempt=0,
        idempotency_key="",
        state=IntentState.UNKNOWN,
        request={},
        preview={},
        confirmed_total=str(row.get("confirmed_total")),
        confirmed_by="",
        created_at=epoch,
        updated_at=epoch,
        tampered=True,
    )


def _row(db: sqlite3.Connection, sql: str, *args: Any) -> dict[str, Any]:
    cursor = db.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def _stored(event: AuditEvent) -> tuple[Any, ...]:
    detail = json.dumps(event.detail, sort_keys=True)
    return (event.at.isoformat(), event.event, event.actor, event.vendor, event.po_number, event.intent_id, detail)


def _links(db: sqlite3.Connection, after_seq: int) -> Iterator[ChainLink]:
    cursor = db.execute(f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq", (after_seq,))  # noqa: S608
    for row in cursor:
        yield ChainLink(_event(row), row[8], row[9])


def _event(row: Any) -> AuditEvent:
    """An audit row as its hash sees it; a value that cannot be read stands in as itself (its hash fails)."""
    try:
        at = datetime.fromisoformat(row[1])
    except (TypeError, ValueError):
        at = datetime.min
    try:
        detail = json.loads(row[7])
    except (TypeError, ValueError):
        detail = {"unreadable": str(row[7])}
    return AuditEvent(
        seq=row[0], at=at, event=row[2], actor=row[3], vendor=row[4], po_number=row[5], intent_id=row[6], detail=detail
    )
