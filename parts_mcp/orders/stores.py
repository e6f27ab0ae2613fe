"""Which ledger a configuration opens: SQLite (the default, a file per host) or PostgreSQL (`[store] url`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parts_mcp.config import StoreSettings
    from parts_mcp.orders.sql_ledger import SqlLedger


def open_ledger(
    store: StoreSettings, *, sandbox: bool = False, clock: Callable[[], datetime] | None = None
) -> SqlLedger:
    """The configured ledger, its schema created or migrated.

    Raises:
        PostgresUnavailable: the database did not answer.
        SchemaTooNew: the ledger was written by a newer parts-mcp.
    """
    if store.url is not None and store.key is not None:
        # Imported only here: a SQLite deployment never loads the PostgreSQL driver.
        from parts_mcp.orders.postgres_ledger import PostgresLedger

        url, key = store.url.get_secret_value(), store.key.get_secret_value()
        return PostgresLedger(url, key, clock=clock, pool_size=store.pool_size)
    from parts_mcp.orders.sqlite_ledger import SQLiteLedger

    # The sandbox forgets its orders when the process ends, so its ledger must too.
    path = ":memory:" if sandbox and store.path is None else store.resolved_path()
    return SQLiteLedger(path, clock=clock)
