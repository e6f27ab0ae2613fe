"""The default ledger: one SQLite file (WAL, synchronous=FULL), shared by the processes of one host.

A committed intent survives power loss. `BEGIN IMMEDIATE` makes each write transaction the only
writer among every process sharing the file. The file and its sidecars are owner-only, and the HMAC
key of the seals and the chain is kept beside the database, not in it (`sqlite_files`).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from parts_mcp.orders.sql_ledger import SqlLedger
from parts_mcp.orders.sql_store import Db
from parts_mcp.orders.sqlite_files import key_path, load_key, owner_only, tighten

T = TypeVar("T")


class SQLiteDb(Db):
    principal = "json_extract(request, '$.principal')"

    def __init__(self, connection: sqlite3.Connection) -> None:
        super().__init__()
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> None:
        self._connection.execute(sql, args)

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        cursor = self._connection.execute(sql, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def begin(self, *, write: bool) -> None:
        self.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def audit_updates(self, *, allowed: bool) -> None:
        if allowed:
            self.execute("DROP TRIGGER IF EXISTS audit_no_update")
        else:
            self.execute(
                "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )


class SQLiteLedger(SqlLedger):
    """The default ledger: one SQLite file, one connection, each call on a worker thread."""

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None) -> None:
        file = None if str(path) == ":memory:" else Path(path)
        if file is not None:
            owner_only(file)
        # The in-memory ledger (the sandbox) lives and dies with its process, and so may its key.
        key = load_key(file) if file is not None else secrets.token_bytes(32)
        super().__init__(key, str(key_path(file)) if file is not None else "the in-memory key", "sqlite", clock=clock)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._open()
        if file is not None:
            tighten(file)  # the -wal and -shm files SQLite has just made, should they predate our 0600

    def _call(self, fn: Callable[[Db], T]) -> T:
        with self._lock:
            return fn(SQLiteDb(self._db))

    def close(self) -> None:
        with self._lock:
            self._db.close()
