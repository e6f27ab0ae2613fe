"""One connection of a SQL store, as the ledger sees it: SQL written once, with `?` marks, for both stores.

The ledger's SQL (`sql_ledger`, `sql_chain`) is the same text for SQLite and PostgreSQL; what differs
between the two is here, behind `Db`: how a write transaction shuts out other writers, how a value
is read from the request's JSON, how the audit log's append-only guard is lifted for an operator's
re-chain. Calls are synchronous and run on a worker thread (`SqlLedger._run`), so the chain, the
seals and the claim are one implementation, not one per driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parts_mcp.orders.decisions import Decision


class Db(ABC):
    """One connection for the length of one ledger call."""

    # The SQL that reads the principal from an intent's `request` (JSON text): per store.
    principal: str = ""

    def __init__(self) -> None:
        # Decisions taken in this call, logged once it has committed (`SqlLedger._run`).
        self.decided: list[Decision] = []

    @abstractmethod
    def execute(self, sql: str, *args: Any) -> None: ...

    @abstractmethod
    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...

    def row(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = self.rows(sql, *args)
        return rows[0] if rows else None

    def value(self, sql: str, *args: Any) -> Any:
        row = self.row(sql, *args)
        return next(iter(row.values())) if row else None

    @abstractmethod
    def begin(self, *, write: bool) -> None:
        """A write transaction excludes every other writer (of every process and host) until it ends;
        a read transaction sees one snapshot."""

    @abstractmethod
    def audit_updates(self, *, allowed: bool) -> None:
        """Lift (or restore) the audit log's append-only guard: only an operator's re-chain does."""

    @contextmanager
    def transaction(self, *, write: bool = True) -> Generator[None]:
        self.begin(write=write)
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")
