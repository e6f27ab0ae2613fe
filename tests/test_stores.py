"""The two ledger stores (issue 12): PostgreSQL beside SQLite, the schema's versions, leases across hosts.

PostgreSQL is a real server started by the tests (`postgres`); an intruder edits it with plain SQL, as
with psql, and the operator runs `parts-mcp audit` / `intents` against it with `[store] url`.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import Client

from bench.postgres import Postgres
from parts_mcp.config import ConfigError, load
from parts_mcp.orders.ledger import Ledger
from parts_mcp.orders.states import IntentState

from conftest import POSTGRES_KEY, Store, World, confirm, confirm_and_place, error_text, part_ids, structured

pytestmark = pytest.mark.asyncio
ON_POSTGRES = pytest.mark.parametrize("store", ["postgres"], indirect=True)
TOKEN_SECRET = "an-operators-token-secret-of-32-characters"


def intrude(url: str, *statements: str) -> None:
    """What an intruder does with psql: switch the append-only guard off, then edit."""
    with psycopg.connect(url, autocommit=True) as db:
        for statement in statements:
            db.execute(statement)  # pyright: ignore[reportArgumentType]


async def cli(tmp_path: Path, url: str, *argv: str) -> tuple[int, str, str]:
    """`parts-mcp ...` as an operator runs it against the PostgreSQL ledger."""
    config = tmp_path / "ops.toml"
    config.write_text(
        f'[guard]\ntoken_secret = "{TOKEN_SECRET}"\n\n[store]\nurl = "{url}"\nkey = "${{PARTS_MCP_LEDGER_KEY}}"\n'
    )
    command, *rest = argv
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "parts_mcp", command, "--config", str(config), *rest],
            check=False,
            env={"PARTS_MCP_LEDGER_KEY": POSTGRES_KEY, "PATH": "/usr/bin:/bin"},
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def skynet_args(client: Client, po_number: str) -> dict[str, Any]:
    ids = await part_ids(client, "MS21042L3")
    return {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": ids["MS21042L3"], "quantity": 2}]}


@ON_POSTGRES
async def test_on_postgres_a_placed_intent_edited_back_to_sendable_is_never_sent_again(
    tmp_path: Path, store: Store
) -> None:
    assert store.url is not None
    world = World(tmp_path, confirmation="token")
    async with Client(world.server) as client:
        args = await skynet_args(client, "PO-PG-EDIT-1")
        assert (await confirm_and_place(client, args))["status"] == "placed"
        intrude(store.url, "UPDATE intents SET state = 'unknown', order_id = NULL, order_json = NULL")
        text = error_text(await client.call_tool("place_order", args))
    assert text.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-PG-EDIT-1'") and "Nothing was sent." in text
    assert len(world.skynet_orders) == 1
    code, listed, _ = await cli(tmp_path, store.url, "intents", "list")
    assert code == 0 and "skynet\tPO-PG-EDIT-1\tunknown\t" in listed and listed.rstrip().endswith("\tTAMPERED")
    code, verified, _ = await cli(tmp_path, store.url, "audit", "verify")
    assert code == 1 and "intent changed by hand: skynet PO 'PO-PG-EDIT-1'" in verified


@ON_POSTGRES
async def test_on_postgres_a_deleted_audit_row_stops_orders_until_an_operator_reseals(
    tmp_path: Path, store: Store
) -> None:
    assert store.url is not None
    world = World(tmp_path, confirmation="token")
    async with Client(world.server) as client:
        await confirm_and_place(client, await skynet_args(client, "PO-PG-CHAIN-1"))
        intrude(
            store.url,
            "ALTER TABLE audit DISABLE TRIGGER audit_no_delete",
            "DELETE FROM audit WHERE seq = (SELECT min(seq) FROM audit WHERE event = 'intent_sent')",
        )
        code, verified, advice = await cli(tmp_path, store.url, "audit", "verify")
        assert code == 1 and "was deleted" in verified and "parts-mcp audit reseal" in advice
        refused = error_text(await confirm(client, await skynet_args(client, "PO-PG-CHAIN-2")))
        assert refused.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-PG-CHAIN-2'")
        reseal = await cli(tmp_path, store.url, "audit", "reseal", "--reason", "checked with Skynet by phone")
        assert reseal[0] == 0, reseal
        assert (await cli(tmp_path, store.url, "audit", "verify"))[0] == 0
        placed = await confirm_and_place(client, await skynet_args(client, "PO-PG-CHAIN-2"))
    assert placed["status"] == "placed" and len(world.skynet_orders) == 2


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_a_lease_whose_holder_stops_renewing_is_taken_over_when_it_runs_out(tmp_path: Path, store: Store) -> None:
    """The holder is on another host (its process cannot be looked up): only the lease's expiry frees it."""
    world = World(tmp_path, confirmation="token")
    ledger: Ledger = world.ledger
    async with Client(world.server) as client:
        await confirm_and_place(client, await skynet_args(client, "PO-LEASE-1"))
    [intent] = await ledger.by_po("PO-LEASE-1")
    elsewhere, here = "parts-mcp:other-host:4242:abc", "parts-mcp:this-host:1:def"
    assert await ledger.lease(intent.id, elsewhere, 60) is not None
    world.clock.advance(timedelta(seconds=40))
    assert await ledger.renew(elsewhere, 60) == 1  # the holder is alive: it renews
    world.clock.advance(timedelta(seconds=40))
    assert await ledger.lease(intent.id, here, 60) is None  # 80 s after it began, the renewed lease holds
    world.clock.advance(timedelta(seconds=21))  # no renewal since: it ran out
    taken = await ledger.lease(intent.id, here, 60)
    assert taken is not None and taken.state is IntentState.PLACED
    assert await ledger.renew(elsewhere, 60) == 0  # the old holder renews nothing it lost


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_a_ledger_written_by_a_newer_parts_mcp_is_refused_at_start(tmp_path: Path, store: Store) -> None:
    World(tmp_path).ledger.close()
    newer = "UPDATE ledger_meta SET value = '99' WHERE name = 'schema_version'"
    if store.url is None:
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            db.execute(newer)
        config = f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n'
    else:
        intrude(store.url, newer)
        config = f'[guard]\ntoken_secret = "{TOKEN_SECRET}"\n\n[store]\nurl = "{store.url}"\nkey = "{POSTGRES_KEY}"\n'
    vendor = '[vendors.skynet]\nkind = "skynet"\nbase_url = "http://127.0.0.1:9/api/b2b"\napi_key = "k"\n'
    (tmp_path / "parts-mcp.toml").write_text(f"{config}\n{vendor}")
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "parts_mcp", "serve", "--config", str(tmp_path / "parts-mcp.toml")], check=False
        )
    said = done.stderr.decode()
    assert done.returncode == 2, said
    assert "schema version 99, written by a newer parts-mcp" in said and "Traceback" not in said


async def test_an_unreachable_database_is_said_plainly_without_its_password(tmp_path: Path, postgres: Postgres) -> None:
    password = "Wrong-Password-1234567890"
    url = postgres.url().replace(postgres.password, password)
    code, _, said = await cli(tmp_path, url, "audit", "verify")
    assert code == 2 and said.startswith("parts-mcp: store.url: ") and "password authentication failed" in said
    assert password not in said and "Traceback" not in said


@pytest.mark.parametrize(
    ("store_section", "guard", "said"),
    [
        ('url = "postgresql://h/db"', True, "store.key: a PostgreSQL ledger needs a key of at least 32 characters"),
        (f'url = "postgresql://h/db"\nkey = "{POSTGRES_KEY}"', False, "guard.token_secret: a PostgreSQL ledger"),
        (f'url = "postgresql://h/db"\nkey = "{POSTGRES_KEY}"\npath = "x.sqlite3"', True, "give one, a SQLite file"),
        (f'url = "mysql://h/db"\nkey = "{POSTGRES_KEY}"', True, "store.url: must be a PostgreSQL URL"),
        (f'key = "{POSTGRES_KEY}"', True, "store.key: only a PostgreSQL ledger (store.url) takes a key"),
    ],
)
async def test_a_store_section_that_cannot_work_is_refused_naming_the_key(
    tmp_path: Path, store_section: str, guard: bool, said: str
) -> None:
    config = tmp_path / "parts-mcp.toml"
    secret = f'[guard]\ntoken_secret = "{TOKEN_SECRET}"\n\n' if guard else ""
    config.write_text(f"{secret}[store]\n{store_section}\n")
    with pytest.raises(ConfigError) as refused:
        load(config)
    assert said in str(refused.value)
    assert POSTGRES_KEY not in str(refused.value)


async def test_a_sqlite_ledger_of_schema_1_gains_the_listing_columns_for_the_orders_it_holds(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token")
    async with Client(world.server) as client:
        placed = await confirm_and_place(client, await skynet_args(client, "PO-V1-1"))
    world.ledger.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:  # as schema 1 left it
        db.execute("DROP INDEX intents_listing")
        db.execute("ALTER TABLE intents DROP COLUMN listed_at")
        db.execute("ALTER TABLE intents DROP COLUMN order_status")
        db.execute("UPDATE ledger_meta SET value = '1' WHERE name = 'schema_version'")
    again = World(tmp_path, confirmation="token")
    async with Client(again.server) as client:
        listed = structured(await client.call_tool("list_purchase_orders", {"vendor": "skynet"}))
    assert [o["order_id"] for o in listed["orders"]] == [placed["order"]["order_id"]]
    migrated = [e.detail for e in await again.ledger.audit_log() if e.event == "schema_migrated"]
    assert migrated == [{"from": 1, "to": 2}]
