"""The stored side of the ledger's trust: the chained audit rows and the sealed intent rows.

The canonical forms, the seals and the walk that checks the chain are `ledger`'s; this module stores
them in either SQL store (`sql_store.Db`) and reads them back.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Iterator
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
from parts_mcp.orders.sql_store import Db
from parts_mcp.orders.states import IntentState

logger = logging.getLogger(__name__)

_COLUMNS = "seq, at, event, actor, vendor, po_number, intent_id, detail, prev_hash, hash"
# Rows read per query while walking the chain: the walk holds a batch, never the whole log.
_BATCH = 1000


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

    def adopt_key(self, db: Db) -> None:
        db.execute(
            "INSERT INTO ledger_meta (name, value) VALUES ('key_id', ?) ON CONFLICT (name) DO NOTHING",
            key_id(self._key),
        )

    def append(self, db: Db, event: AuditEvent) -> None:
        """Add `event` (its detail as stored, read back) at the end of the chain; inside a transaction."""
        head = self._head(db)
        if head is None:
            last = db.row("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
            prev, count, keep_head = (last["hash"] or GENESIS) if last else GENESIS, 0, last is None
        else:
            prev, count, keep_head = head.last_hash, head.count, self._head_intact(head)
        digest = chain_hash(self._key, prev, event)
        db.execute(
            "INSERT INTO audit (at, event, actor, vendor, po_number, intent_id, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *_stored(event),
            prev,
            digest,
        )
        # A head that is missing or was changed stays so: appending must not make a cut log look whole.
        if keep_head:
            self._write_head(db, count + 1, digest)

    def check(self, db: Db) -> BrokenLink | None:
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

    def _walk_from(self, db: Db, walk: ChainWalk) -> BrokenLink | None:
        for link in _links(db, walk.last.seq if walk.last else 0):
            if (broken := walk.step(link)) is not None:
                return broken
        if (broken := walk.end(self._head(db))) is not None:
            return broken
        self._walk = walk
        return None

    def require_intact(self, db: Db, vendor: str, po_number: str) -> None:
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

    def verify(self, db: Db) -> tuple[int, BrokenLink | None]:
        """The whole chain from its genesis: how many rows it has, and its first broken link."""
        self._walk = None
        rows = int(db.value("SELECT COUNT(*) AS n FROM audit"))
        return rows, self.check(db)

    def accept(self, db: Db) -> None:
        """An operator's acceptance: re-link every row from the first broken one; inside a transaction."""
        walk = ChainWalk(self._key)
        if self._key_mismatch(db) is not None:
            db.execute("UPDATE ledger_meta SET value = ? WHERE name = 'key_id'", key_id(self._key))
        else:
            for link in _links(db, 0):
                if walk.step(link) is not None:
                    break
        self.rechain(db, walk)

    def restart(self, db: Db) -> ChainWalk:
        """Chain every row from the genesis (a ledger older than the chain); inside a transaction."""
        return self.rechain(db, ChainWalk(self._key))

    def rechain(self, db: Db, walk: ChainWalk) -> ChainWalk:
        """Link every row after where `walk` stopped, and seal the head: inside a transaction."""
        after = list(_links(db, walk.last.seq if walk.last else 0))
        db.audit_updates(allowed=True)
        for link in after:
            digest = chain_hash(self._key, walk.last_hash, link.event)
            db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", walk.last_hash, digest, link.event.seq)
            walk.count, walk.last_hash, walk.last = walk.count + 1, digest, link.event
        db.audit_updates(allowed=False)
        self._write_head(db, walk.count, walk.last_hash)
        self._walk = None
        return walk

    def _head(self, db: Db) -> ChainHead | None:
        value = db.value("SELECT value FROM ledger_meta WHERE name = 'audit_head'")
        if value is None:
            return None
        try:
            data = json.loads(value)
            return ChainHead(int(data["count"]), str(data["last_hash"]), str(data["seal"]))
        except (ValueError, KeyError, TypeError):
            return ChainHead(-1, "", "")  # unreadable: its seal cannot match

    def _head_intact(self, head: ChainHead) -> bool:
        return head.seal == head_seal(self._key, head.count, head.last_hash)

    def _write_head(self, db: Db, count: int, last_hash: str) -> None:
        value = {"count": count, "last_hash": last_hash, "seal": head_seal(self._key, count, last_hash)}
        db.execute(
            "INSERT INTO ledger_meta (name, value) VALUES ('audit_head', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            json.dumps(value),
        )

    def _key_mismatch(self, db: Db) -> BrokenLink | None:
        stored = db.value("SELECT value FROM ledger_meta WHERE name = 'key_id'")
        if stored is None or stored == key_id(self._key):
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

    def reseal(self, db: Db, intent_id: str) -> Intent:
        """Seal the row as it is now: after every write parts-mcp makes, in the same transaction."""
        row = db.row("SELECT * FROM intents WHERE id = ?", intent_id)
        assert row is not None, intent_id  # sealed in the transaction that wrote it
        intent = self._read(row)
        until = datetime.fromisoformat(row["lease_until"]) if row["lease_until"] else None
        db.execute(
            "UPDATE intents SET seal = ? WHERE id = ?",
            intent_seal(self._key, intent, row["lease_owner"], until),
            intent_id,
        )
        return intent

    def seal_all(self, db: Db) -> int:
        ids = [row["id"] for row in db.rows("SELECT id FROM intents")]
        for intent_id in ids:
            self.reseal(db, intent_id)
        return len(ids)

    def accept(self, db: Db, tampered: Iterable[Intent]) -> list[Intent]:
        """An operator's acceptance: re-seal these rows as they are now; those re-sealed."""
        accepted: list[Intent] = []
        for intent in tampered:
            try:
                self.reseal(db, intent.id)
            except (ValueError, TypeError, KeyError):
                continue  # no longer reads as an intent: it stays reported until it is mended by hand
            accepted.append(intent)
        return accepted


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


def _stored(event: AuditEvent) -> tuple[Any, ...]:
    detail = json.dumps(event.detail, sort_keys=True)
    return (event.at.isoformat(), event.event, event.actor, event.vendor, event.po_number, event.intent_id, detail)


def _links(db: Db, after_seq: int) -> Iterator[ChainLink]:
    while True:
        rows = db.rows(f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT {_BATCH}", after_seq)  # noqa: S608
        for row in rows:
            yield ChainLink(audit_event(row), row["prev_hash"], row["hash"])
        if len(rows) < _BATCH:
            return
        after_seq = rows[-1]["seq"]


def audit_event(row: dict[str, Any]) -> AuditEvent:
    """An audit row as its hash sees it; a value that cannot be read stands in as itself (its hash fails)."""
    try:
        at = datetime.fromisoformat(row["at"])
    except (TypeError, ValueError):
        at = datetime.min
    try:
        detail = json.loads(row["detail"])
    except (TypeError, ValueError):
        detail = {"unreadable": str(row["detail"])}
    return AuditEvent(
        seq=row["seq"],
        at=at,
        event=row["event"],
        actor=row["actor"],
        vendor=row["vendor"],
        po_number=row["po_number"],
        intent_id=row["intent_id"],
        detail=detail,
    )
