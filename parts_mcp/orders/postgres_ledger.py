"""The ledger on PostgreSQL (`[store] url`): one database shared by every replica, on any host.

The same SQL as SQLite (`sql_ledger`); what PostgreSQL needs besides:
- a write transaction takes one transaction-scoped advisory lock first, so writers of every replica
  queue as SQLite's `BEGIN IMMEDIATE` makes them queue on one host: the claim, the budget and the
  audit chain's next link are decided by one writer at a time; the unique (vendor, lower(PO)) index
  stays the last word on duplicates;
- reads run outside that lock on their own connections from a small pool (psycopg 3);
- the HMAC key of the seals and the chain comes from config (`[store] key`), the same on every replica
  and never stored in the database, so an edit made through the database alone cannot re-seal.
Leases hold across hosts by their expiry: the holder renews while it drives an intent; a replica that
stops renewing (crashed, cut off) loses it when it runs out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from parts_mcp.orders.ledger import LedgerUnavailable
from parts_mcp.orders.sql_ledger import SqlLedger
from parts_mcp.orders.sql_store import Db

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")

# One lock for every parts-mcp writer of the database: b"partsmcp" as a bigint.
_WRITERS = 0x70617274736D6370


class PostgresUnavailable(LedgerUnavailable):
    """The database could not be reached or opened at start; said without the URL (it may hold a password)."""


@functools.lru_cache(maxsize=256)
def _marks(sql: str) -> str:
    # The ledger's SQL has `?` marks and no `%` of its own; psycopg wants `%s` and a literal `%` doubled.
    return sql.replace("%", "%%").replace("?", "%s")


def _reachable(url: str) -> None:
    """One connection first, so a wrong address or password is said at once, with the server's reason
    (libpq's message names host, port and user, never the password), not after the pool's retries."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        # A URL libpq cannot parse may be quoted back in part: never with its password.
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, "***").replace(unquote(password), "***")
        raise PostgresUnavailable(f"store.url: cannot open the PostgreSQL ledger: {reason}") from None


class PostgresDb(Db):
    principal = "(request::jsonb ->> 'principal')"

    def __init__(self, connection: psycopg.Connection[dict[str, Any]]) -> None:
        super().__init__()
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> None:
        self._connection.execute(_marks(sql) if args else sql, args or None)  # pyright: ignore[reportArgumentType]

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        cursor = self._connection.execute(_marks(sql) if args else sql, args or None)  # pyright: ignore[reportArgumentType]
        return cursor.fetchall()

    def begin(self, *, write: bool) -> None:
        if write:
            self.execute("BEGIN")
            self.execute("SELECT pg_advisory_xact_lock(?)", _WRITERS)
        else:
            self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def audit_updates(self, *, allowed: bool) -> None:
        self.execute(f"ALTER TABLE audit {'DISABLE' if allowed else 'ENABLE'} TRIGGER audit_no_update")


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database; `url` is a libpq URL, `key` at least 32 characters."""

    def __init__(self, url: str, key: str, *, clock: Callable[[], datetime] | None = None, pool_size: int = 10) -> None:
        try:
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise PostgresUnavailable(
                "store.url: the PostgreSQL driver is not installed; install parts-mcp with it: "
                "pip install 'parts-mcp[postgres]'"
            ) from None

        super().__init__(key.encode(), "store.key", "postgres", clock=clock)
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            name="parts-mcp-ledger",
        )
        _reachable(url)
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout:
            self._pool.close()
            raise PostgresUnavailable(
                "store.url: the PostgreSQL database did not answer within 15 s; check its host, port, user and password"
            ) from None
        try:
            self._open()
        except BaseException:
            self._pool.close()
            raise

    def _call(self, fn: Callable[[Db], T]) -> T:
        with self._pool.connection() as connection:
            return fn(PostgresDb(connection))

    def close(self) -> None:
        self._pool.close()
