"""A ledger you can trust (issue 9, finding 6): owner-only files, a tamper-evident audit chain, sealed intents.

Each test edits the ledger the way an intruder with the sqlite3 shell would, then asks through the
SDK client (and `parts-mcp audit verify` / `intents list`, as an operator runs them) what happens.
The simulators' records are the ground truth for "no second order"; every output is scanned for the
vendors' secrets and the ledger's key.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from starlette.types import Receive, Scope, Send

from parts_mcp.config import GuardSettings, Settings, StoreSettings, load
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server

from conftest import World, confirm, confirm_and_place, error_text, part_ids, serve, structured

pytestmark = pytest.mark.asyncio

SECRET_FIELDS = ("api_key", "client_secret")


class Outputs:
    """Everything the tests saw (tool results, CLI output, logs): none of it may hold a secret."""

    def __init__(self, sandbox: Sandbox, ledger_path: Path) -> None:
        self.secrets = [
            str(v.settings[name]) for v in sandbox.vendors().values() for name in SECRET_FIELDS if name in v.settings
        ]
        self.secrets.append(ledger_path.with_name(ledger_path.name + ".key").read_text().strip())
        self.seen: list[str] = []

    def add(self, *texts: Any) -> None:
        self.seen.extend(str(t) for t in texts)

    def assert_clean(self, caplog: pytest.LogCaptureFixture) -> None:
        everything = "\n".join([*self.seen, caplog.text])
        leaked = [s[:8] for s in self.secrets if s in everything]
        assert not leaked, leaked


@pytest.fixture
def outputs(world: World, tmp_path: Path) -> Outputs:
    return Outputs(world.sandbox, tmp_path / "ledger.sqlite3")


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual 022: the modes must come from parts-mcp, not from a careful shell."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tamper(path: Path, *statements: str | tuple[str, int]) -> None:
    """What an intruder does with the sqlite3 shell: drop the append-only triggers, then edit."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            sql, *args = (statement,) if isinstance(statement, str) else statement
            db.execute(sql, args)
    finally:
        db.close()


def audit_rows(path: Path) -> list[tuple[int, str, str | None]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT seq, event, po_number FROM audit ORDER BY seq").fetchall()
    finally:
        db.close()


async def cli(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    """`parts-mcp ...` as an operator runs it, against the ledger the test server writes."""
    config = tmp_path / "ops.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n')
    command, *rest = argv
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "parts_mcp", command, "--config", str(config), *rest], check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def skynet_args(client: Client, po_number: str, quantity: int = 2) -> dict[str, Any]:
    ids = await part_ids(client, "MS21042L3")
    return {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": ids["MS21042L3"], "quantity": quantity}]}


def order_posts(world: World) -> int:
    return len([r for r in world.sandbox.skynet.requests if r.method == "POST" and r.path == "/orders"])


# --- 1. Owner-only files ---------------------------------------------------------------------------


async def test_the_ledger_its_directory_sidecars_and_key_are_owner_only(
    tmp_path: Path, permissive_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fresh" / "ledger.sqlite3"
    sandbox = Sandbox()
    settings = Settings(sandbox=True, guard=GuardSettings(confirmation="token"), store=StoreSettings(path=path))
    async with Client(build_server(settings, sandbox=sandbox)) as client:
        placed = await confirm_and_place(client, await skynet_args(client, "PO-MODE-1"))
        assert placed["status"] == "placed"
        assert mode(path.parent) == 0o700
        for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm", "ledger.sqlite3.key"):
            assert mode(path.parent / name) == 0o600, name
    assert len(sandbox.skynet.orders) == 1
    seen = Outputs(sandbox, path)
    seen.add(placed)
    seen.assert_clean(caplog)


async def test_a_ledger_left_open_to_others_is_made_owner_only_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.sqlite3"
    SQLiteLedger(path).close()
    key = path.with_name("ledger.sqlite3.key")
    path.chmod(0o644)
    key.chmod(0o640)
    caplog.set_level(logging.WARNING)
    settings = Settings(sandbox=True, store=StoreSettings(path=path))
    async with Client(build_server(settings, sandbox=Sandbox())) as client:
        assert not (await client.call_tool("list_vendors", {})).is_error
    assert mode(path) == 0o600 and mode(key) == 0o600
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "0600" in r.getMessage()]
    assert any(str(path) in m and "644" in m for m in warned), warned
    assert any(str(key) in m and "640" in m for m in warned), warned


# --- 2. Intents edited by hand are never sent ------------------------------------------------------


async def test_a_placed_intent_set_back_to_a_sendable_state_is_not_sent_again(
    world: World, tmp_path: Path, outputs: Outputs, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(world.server) as client:
        args = await skynet_args(client, "PO-EDIT-1")
        placed = await confirm_and_place(client, args)
        assert placed["status"] == "placed"
        posts = order_posts(world)
        tamper(
            tmp_path / "ledger.sqlite3",
            "UPDATE intents SET state = 'unknown', order_id = NULL, order_json = NULL WHERE po_number = 'PO-EDIT-1'",
        )
        text = error_text(await client.call_tool("place_order", args))
    assert text.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-EDIT-1'")
    assert "parts-mcp audit verify" in text and "Nothing was sent." in text
    assert order_posts(world) == posts and len(world.skynet_orders) == 1
    code, listed, _ = await cli(tmp_path, "intents", "list")
    assert code == 0 and "skynet\tPO-EDIT-1\tunknown\t" in listed and listed.rstrip().endswith("\tTAMPERED")
    code, verified, _ = await cli(tmp_path, "audit", "verify")
    assert code == 1 and "intent changed by hand: skynet PO 'PO-EDIT-1'" in verified
    outputs.add(placed, text, listed, verified)
    outputs.assert_clean(caplog)


async def test_an_unknown_intent_whose_items_were_edited_is_not_resent(
    world: World, tmp_path: Path, outputs: Outputs, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the edit, repeating the call would resend under the same key (test_place_order)."""
    world.sandbox.skynet.faults.arm("drop_after_commit", 3)
    async with Client(world.server) as client:
        args = await skynet_args(client, "PO-EDIT-2", quantity=3)
        unknown = await confirm_and_place(client, args)
        assert unknown["status"] == "outcome_unknown"
        posts = order_posts(world)
        tamper(
            tmp_path / "ledger.sqlite3",
            "UPDATE intents SET request = json_set(request, '$.items[0].quantity', 30) WHERE po_number = 'PO-EDIT-2'",
        )
        text = error_text(await client.call_tool("place_order", args))
    assert text.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-EDIT-2'") and "Nothing was sent." in text
    assert order_posts(world) == posts and len(world.skynet_orders) == 1
    outputs.add(unknown, text)
    outputs.assert_clean(caplog)


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # A rejected intent's PO may be used again; a placed one edited to look rejected may not.
        ("UPDATE intents SET state = 'rejected'", "changed outside parts-mcp"),
        # The intents table has no triggers: the audit log remembers the intent its row no longer shows.
        ("DELETE FROM intents", "its row was deleted or its PO changed"),
        ("UPDATE intents SET po_number = 'PO-ELSEWHERE'", "its row was deleted or its PO changed"),
    ],
    ids=["marked-rejected", "deleted", "po-renamed"],
)
async def test_a_placed_intent_edited_by_hand_does_not_free_its_po(
    world: World, tmp_path: Path, outputs: Outputs, caplog: pytest.LogCaptureFixture, edit: str, said: str
) -> None:
    async with Client(world.server) as client:
        args = await skynet_args(client, "PO-EDIT-3")
        placed = await confirm_and_place(client, args)
        tamper(tmp_path / "ledger.sqlite3", f"{edit} WHERE po_number = 'PO-EDIT-3'")
        # Where the preview finds nothing wrong (the row no longer names this PO), the confirmation does.
        shown = await client.call_tool("place_order", args)
        text = error_text(shown if shown.is_error else await confirm(client, args))
    assert text.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-EDIT-3'") and said in text, text
    assert "Nothing was sent." in text
    assert len(world.skynet_orders) == 1
    outputs.add(placed, text)
    outputs.assert_clean(caplog)


async def test_an_intent_edited_while_it_is_being_sent_keeps_the_answer_in_the_audit_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The row changes between `sent` and the vendor's answer: the answer is not written onto it, and it
    is never resent; the order the vendor created is named in the audit log for the operator."""
    sandbox = Sandbox()
    path = tmp_path / "ledger.sqlite3"
    simulators = sandbox.asgi_app()

    async def intruder(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/orders"):
            tamper(path, "UPDATE intents SET confirmed_total = '0.01 USD'")
        await simulators(scope, receive, send)

    monkeypatch.setenv("SKYNET_TEST_KEY", str(sandbox.vendors()["skynet"].settings["api_key"]))
    with serve(intruder) as base:
        config = tmp_path / "parts-mcp.toml"
        config.write_text(
            f'[guard]\nconfirmation = "token"\n\n[store]\npath = "{path}"\n\n[vendors.skynet]\nkind = "skynet"\n'
            f'base_url = "{base}/skynet/api/b2b"\napi_key = "${{SKYNET_TEST_KEY}}"\n'
        )
        async with Client(build_server(load(config))) as client:
            args = await skynet_args(client, "PO-MIDWAY-1")
            text = error_text(await confirm(client, args))
            again = error_text(await client.call_tool("place_order", args))
    [truth] = sandbox.skynet.orders
    assert text.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-MIDWAY-1'")
    assert "The vendor had been called" in text and "Do not place this order again" in text
    assert again.startswith("[LEDGER_TAMPERED]") and len(sandbox.skynet.orders) == 1
    ledger = SQLiteLedger(path)
    [kept] = [e for e in await ledger.audit_log() if e.event == "intent_tampered"]
    ledger.close()
    assert kept.po_number == "PO-MIDWAY-1" and kept.detail["order_id"] == truth["order_id"]
    seen = Outputs(sandbox, path)
    seen.add(text, again)
    seen.assert_clean(caplog)


# --- 3. The audit chain ----------------------------------------------------------------------------


async def test_an_untouched_ledger_verifies(world: World, tmp_path: Path) -> None:
    async with Client(world.server) as client:
        await confirm_and_place(client, await skynet_args(client, "PO-OK-1"))
    rows = len(audit_rows(tmp_path / "ledger.sqlite3"))
    assert await cli(tmp_path, "audit", "verify") == (0, f"ok: {rows} rows\n", "")


async def test_a_row_deleted_from_the_audit_log_is_named_and_stops_orders_until_accepted(
    world: World, tmp_path: Path, outputs: Outputs, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.sqlite3"
    async with Client(world.server) as client:
        first = await confirm_and_place(client, await skynet_args(client, "PO-CHAIN-1"))
        await confirm_and_place(client, await skynet_args(client, "PO-CHAIN-2"))
    rows = audit_rows(path)
    gone = next(i for i, row in enumerate(rows) if row[1:] == ("intent_sent", "PO-CHAIN-1"))
    after_seq, after_event, _ = rows[gone + 1]
    tamper(path, "DROP TRIGGER audit_no_delete", ("DELETE FROM audit WHERE seq = ?", rows[gone][0]))

    code, verified, advice = await cli(tmp_path, "audit", "verify")
    assert code == 1
    assert f"first broken link: row {after_seq} ({after_event}, " in verified and "was deleted" in verified
    assert "parts-mcp audit reseal" in advice

    caplog.set_level(logging.WARNING)
    started = build_server(
        Settings(sandbox=True, guard=GuardSettings(confirmation="token"), store=StoreSettings(path=path)),
        sandbox=world.sandbox,
    )
    async with Client(started) as client:
        [critical] = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
        assert f"row {after_seq} ({after_event}, " in critical and "parts-mcp audit verify" in critical
        # Reads go on; a new order waits for an operator.
        read = structured(
            await client.call_tool("get_order", {"vendor": "skynet", "order_id": first["order"]["order_id"]})
        )
        refused = error_text(await confirm(client, await skynet_args(client, "PO-CHAIN-3")))
        assert refused.startswith("[LEDGER_TAMPERED] po_number: skynet PO 'PO-CHAIN-3'")
        assert f"row {after_seq}" in refused and "Nothing was sent." in refused
        assert len(world.skynet_orders) == 2

        accepted = await cli(tmp_path, "audit", "reseal", "--reason", "checked Skynet's order history by hand")
        assert accepted[0] == 0 and f"row {after_seq}" in accepted[1]
        assert (await cli(tmp_path, "audit", "verify"))[0] == 0
        placed = await confirm_and_place(client, await skynet_args(client, "PO-CHAIN-3"))
        assert placed["status"] == "placed" and len(world.skynet_orders) == 3
    events = [e.event for e in await world.ledger.audit_log()]
    assert events.count("audit_resealed") == 1
    outputs.add(first, verified, advice, read, refused, accepted, placed)
    outputs.assert_clean(caplog)


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ("tail", "rows at the end were deleted"),
        ("content", "its content was changed after it was written"),
        ("hash", "it has no hash"),
    ],
)
async def test_rows_cut_from_the_end_or_edited_are_named(world: World, tmp_path: Path, edit: str, said: str) -> None:
    path = tmp_path / "ledger.sqlite3"
    async with Client(world.server) as client:
        await confirm_and_place(client, await skynet_args(client, "PO-CUT-1"))
    rows = audit_rows(path)
    named = {"tail": rows[-3], "content": rows[2], "hash": rows[1]}[edit]
    statement = {
        "tail": ("DELETE FROM audit WHERE seq > ?", rows[-3][0]),
        "content": ("UPDATE audit SET actor = 'nobody' WHERE seq = ?", named[0]),
        "hash": ("UPDATE audit SET hash = NULL WHERE seq = ?", named[0]),
    }[edit]
    tamper(path, "DROP TRIGGER audit_no_delete", "DROP TRIGGER audit_no_update", statement)
    code, verified, _ = await cli(tmp_path, "audit", "verify")
    assert code == 1 and f"first broken link: row {named[0]} ({named[1]}, " in verified and said in verified


# --- 4. A ledger written before the chain ----------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE intents (
    id TEXT PRIMARY KEY, vendor TEXT NOT NULL, po_number TEXT NOT NULL, content_hash TEXT NOT NULL,
    attempt INTEGER NOT NULL, idempotency_key TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL,
    preview TEXT NOT NULL, confirmed_total TEXT NOT NULL, confirmed_by TEXT NOT NULL, order_id TEXT,
    order_json TEXT, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    lease_owner TEXT, lease_until TEXT, UNIQUE (vendor, po_number COLLATE NOCASE)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, event TEXT NOT NULL, actor TEXT NOT NULL,
    vendor TEXT, po_number TEXT, intent_id TEXT, detail TEXT NOT NULL
);
INSERT INTO intents VALUES ('i-1', 'keyloop', 'PO-OLD-1', 'h', 1, 'k', 'unknown', '{}', '{}', '9.00 EUR',
    'token:t', NULL, NULL, NULL, '2025-01-02T10:00:00+00:00', '2025-01-02T10:00:00+00:00', NULL, NULL);
INSERT INTO audit (at, event, actor, vendor, po_number, intent_id, detail) VALUES
    ('2025-01-02T10:00:00+00:00', 'intent_recorded', 'token:t', 'keyloop', 'PO-OLD-1', 'i-1', '{}'),
    ('2025-01-02T10:00:01+00:00', 'intent_unknown', 'token:t', 'keyloop', 'PO-OLD-1', 'i-1', '{"state": "unknown"}');
"""


async def test_a_ledger_from_before_the_chain_is_chained_once_then_checked(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    for _ in range(2):  # the second start finds the chain and leaves it
        SQLiteLedger(path).close()
    code, verified, _ = await cli(tmp_path, "audit", "verify")
    assert (code, verified) == (0, "ok: 5 rows\n")
    # Each schema step it took is on the record too, once: the second start found it current.
    assert [row[1] for row in audit_rows(path)] == [
        "intent_recorded",
        "intent_unknown",
        "ledger_sealed",
        "schema_migrated",
        "schema_migrated",
    ]
    code, listed, _ = await cli(tmp_path, "intents", "list")
    assert code == 0 and "keyloop\tPO-OLD-1\tunknown\t" in listed and "TAMPERED" not in listed
    tamper(path, "DROP TRIGGER audit_no_update", "UPDATE audit SET detail = '{}' WHERE seq = 2")
    code, verified, _ = await cli(tmp_path, "audit", "verify")
    assert code == 1 and "row 2 (intent_unknown, 2025-01-02T10:00:01+00:00): its content was changed" in verified
