"""A hostile vendor and our secrets (issue 9, point 5): nothing of a credential gets out, in any spelling.

The simulators are served on loopback and the server is configured with random canary credentials
(40 letters and digits). The shared fault ``hostile_echo`` makes every vendor quote the credentials
of each request it answers (API keys, OAuth tokens) in its part names, statuses, notes and error
messages: in part, upper-cased, spaced, split by CR/LF, zero-width characters or markup, base64
(alone and inside longer blobs, standard and URL-safe) and URL-encoded. Every output is then scanned
for every canary and every echoed token, by a reader of its own (`leaks`): each tool result (text
and structured content), each log record as the server's formatter writes it, and the bytes of the
SQLite ledger files.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import string
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from parts_mcp import logs
from parts_mcp.config import Settings
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox
from parts_mcp.sandbox._faults import HOSTILE_ECHO, HOSTILE_TEXT, HOSTILE_TEXT_SUFFIX, credential_echo
from parts_mcp.sandbox.partssource import SANDBOX_CLIENT_SECRET
from parts_mcp.server.app import build_server

from conftest import World, error_text, serve, structured

VENDORS = ("skynet", "factoryai", "shopmonkey", "keyloop", "partssource")
QUERIES = ["MS21042L3", "SKF-6204", "brake pad", "1K0698151A", "pump"]
PLACEABLE = ("factoryai", "keyloop", "partssource")  # vendors whose orders come back with text of theirs
CREDENTIAL = {  # the config key of each vendor's credential that its simulator lets a test choose
    "skynet": "api_key",
    "factoryai": "api_key",
    "shopmonkey": "api_key",
    "partssource": "api_key",
    "keyloop": "client_secret",
}
ALWAYS = 10_000  # armings: every answer during the test is hostile
WINDOW = 12  # letters and digits of a secret that must never show, in any spelling
ENCODED_WINDOW = 16  # letters and digits of its base64: about 12 bytes
ECHOED = 64  # credential_echo quotes a credential's last 64 characters


def canary(prefix: str = "") -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


# ------------------------------------------------------------------------------------- the reader


_ESCAPES = re.compile(r"\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|[nrt])")


def readable(text: str) -> str:
    """What anyone reading `text` can recover: escapes (JSON, repr, our log lines) and %XX decoded."""
    text = _ESCAPES.sub(lambda m: chr(int(m[1] or m[2], 16)) if m[1] or m[2] else " ", text)
    return unquote(text)


def squeezed(text: str) -> str:
    return re.sub(r"[\W_]", "", text).casefold()


def base64_cores(raw: bytes) -> Iterator[str]:
    """The base64 characters that encode `raw` alone, at each alignment inside a longer blob (its
    letters and digits: the standard and URL-safe alphabets differ only in the other two)."""
    for offset, drop in ((0, 0), (1, 2), (2, 3)):
        groups, tail = divmod(offset + len(raw), 3)
        yield re.sub(r"[^A-Za-z0-9]", "", base64.b64encode(b"\0" * offset + raw).decode()[drop : 4 * groups + tail])


def windows(text: str, size: int) -> Iterator[str]:
    return (text[i : i + size] for i in range(len(text) - size + 1))


def leaks(text: str, secret: str) -> list[str]:
    """How `text` shows 12 letters and digits of `secret` in a row: in any case, whatever stands between
    them (spaces, line breaks, punctuation, escapes), URL-encoded, or 16 of its base64."""
    flat = squeezed(readable(text))
    found = [f"{w!r}" for w in windows(squeezed(secret), WINDOW) if w in flat]
    alphanumeric = re.sub(r"[^A-Za-z0-9]", "", text)
    for core in base64_cores(secret.encode()):
        found += [f"base64 {w!r}" for w in windows(core, ENCODED_WINDOW) if w in alphanumeric]
    return found[:3]


def scan(outputs: dict[str, str], secrets_: Iterable[str]) -> list[str]:
    return [f"{where}: {leak}" for where, text in outputs.items() for s in secrets_ for leak in leaks(text, s)]


def result_text(result: CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return "\n".join(texts) + "\n" + json.dumps(result.structured_content)


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as the server writes it to its log."""
    formatter = logs.SafeFormatter(logs.FORMAT)
    return [formatter.format(record) for record in caplog.records]


# ------------------------------------------------------------------------------------- the world


@dataclass
class Hostile:
    """A server configured with canary credentials, on the simulators served on loopback."""

    sandbox: Sandbox
    server: MCPServer
    ledger: SQLiteLedger
    keys: dict[str, str]  # each vendor's canary credential
    canaries: list[str]  # every configured secret

    def arm(self, fault: str, *vendors: str) -> None:
        for vendor in vendors or VENDORS:
            getattr(self.sandbox, vendor).faults.arm(fault, ALWAYS)

    @property
    def echoed(self) -> set[str]:
        """Every credential a simulator quoted, OAuth tokens included."""
        return {c for vendor in VENDORS for c in getattr(self.sandbox, vendor).faults.echoed}

    @property
    def tokens(self) -> set[str]:
        """The OAuth access tokens echoed, by their random tail (a JWT's head is JSON that our own
        confirmation tokens share); the echo quotes that tail."""
        return {c[-ECHOED:] for c in self.echoed if not any(k in c for k in self.canaries)}


def vendor_sections(sandbox: Sandbox, base: str, keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for key, vendor in sandbox.vendors().items():
        served = f"{base}/{key}{httpx2.URL(vendor.base_url).path}".rstrip("/")
        # Every URL of the section (PartsSource's token endpoint too) moves to the simulators on loopback.
        section = {
            k: v.replace(vendor.base_url, served) if isinstance(v, str) else v for k, v in vendor.settings.items()
        }
        sections[key] = {**section, CREDENTIAL[key]: keys[key]}
    return sections


@contextmanager
def simulators_with_canaries() -> Iterator[tuple[Sandbox, dict[str, str], str]]:
    sandbox = Sandbox()
    keys = {key: canary("sk_live_" if key == "skynet" else "") for key in VENDORS}
    sandbox.skynet.api_keys = frozenset({keys["skynet"]})
    sandbox.factoryai.api_keys = {keys["factoryai"]}
    sandbox.shopmonkey.api_keys = frozenset({keys["shopmonkey"]})
    sandbox.partssource.api_keys = frozenset({keys["partssource"]})
    sandbox.keyloop.client_secret = keys["keyloop"]
    with serve(sandbox.asgi_app()) as base:
        yield sandbox, keys, base


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Hostile]:
    with simulators_with_canaries() as (sandbox, keys, base):
        token_secret = canary()
        settings = Settings.model_validate(
            {
                "vendors": vendor_sections(sandbox, base, keys),
                "guard": {"confirmation": "token", "token_secret": token_secret},
            }
        )
        ledger = SQLiteLedger(tmp_path / "ledger.sqlite3")
        # PartsSource's client secret is the simulator's own: it cannot be chosen, so it is one more canary.
        canaries = [*keys.values(), token_secret, SANDBOX_CLIENT_SECRET]
        yield Hostile(sandbox, build_server(settings, ledger=ledger), ledger, keys, canaries)
        ledger.close()


def ledger_files(directory: Path) -> dict[str, str]:
    """The SQLite ledger's files (database, write-ahead log) as text, byte for byte."""
    return {path.name: path.read_bytes().decode("latin-1") for path in directory.glob("ledger.sqlite3*")}


def orderable_offer(parts: list[dict[str, Any]], vendor: str) -> dict[str, Any]:
    """The vendor's first offer that orders with no options (PartsSource's flat-rate repairs need some)."""
    return next(
        p for p in parts if p["vendor"] == vendor and p["orderable"] and "required_fields" not in " ".join(p["notes"])
    )


async def place(client: Client, vendor: str, part_id: str, po_number: str) -> list[CallToolResult]:
    args = {"vendor": vendor, "po_number": po_number, "items": [{"part_id": part_id, "quantity": 1}]}
    preview = await client.call_tool("place_order", args)
    total = structured(preview)["preview"]["total"]
    placed = await client.call_tool(
        "place_order",
        {
            **args,
            "confirmation_token": structured(preview)["confirmation_token"],
            "confirmed_total": f"{total['amount']} {total['currency']}",
        },
    )
    assert structured(placed)["status"] == "placed", placed
    order_id = structured(placed)["order"]["order_id"]
    got = await client.call_tool("get_order", {"vendor": vendor, "order_id": order_id})
    return [preview, placed, got]


# ------------------------------------------------------------------------------------- the tests


def test_the_reader_sees_every_spelling_the_hostile_vendor_uses() -> None:
    """`leaks` is what proves the server clean: it must see each form `credential_echo` writes."""
    secret = canary()
    forms = credential_echo(secret).removeprefix(" echo: ").split(" | ")
    assert len(forms) == 11
    assert all(leaks(form, secret) for form in forms), [f for f in forms if not leaks(f, secret)]
    assert not leaks("an honest answer: PO-2025-0001, part 6204-2RS, 12.40 USD", secret)


@pytest.mark.asyncio
async def test_credentials_a_vendor_echoes_reach_no_result_log_or_ledger(
    hostile: Hostile, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hostile.arm(HOSTILE_ECHO)
    results: dict[str, CallToolResult] = {}
    async with Client(hostile.server) as client:
        lookup = results["lookup"] = await client.call_tool("lookup_parts", {"query": QUERIES})
        for number, vendor in enumerate(PLACEABLE):
            part = orderable_offer(structured(lookup)["parts"], vendor)
            steps = await place(client, vendor, part["part_id"], f"PO-ECHO-{number}")
            results |= {f"{vendor} {step}": r for step, r in zip(("preview", "placed", "get"), steps, strict=True)}
        results["list"] = await client.call_tool("list_purchase_orders", {})
        results["missing"] = await client.call_tool("get_order", {"vendor": "factoryai", "order_id": "po-999999"})
        skynet = next(p["part_id"] for p in structured(lookup)["parts"] if p["vendor"] == "skynet")
        results["refused"] = await client.call_tool(
            "place_order", {"vendor": "skynet", "po_number": "PO-ECHO-9", "items": [{"part_id": skynet, "quantity": 1}]}
        )
    hostile.ledger.close()  # everything written, the write-ahead log folded in
    stored = ledger_files(tmp_path)

    # Every vendor answered and quoted our credentials (so the scans below scan something) ...
    assert {p["vendor"] for p in structured(lookup)["parts"]} == set(VENDORS)
    assert "echo:" in result_text(lookup) and "echo:" in stored["ledger.sqlite3"]
    # The API keys (Keyloop's client secret only goes to its token endpoint, whose answers hold no text).
    assert {key for vendor, key in hostile.keys.items() if CREDENTIAL[vendor] == "api_key"} <= hostile.echoed
    assert len(hostile.tokens) >= 2  # Keyloop's and PartsSource's OAuth tokens too
    assert results["missing"].is_error and results["refused"].is_error
    # ... each order was sent once ...
    for vendor in PLACEABLE:
        sim = getattr(hostile.sandbox, vendor)
        assert len([r for r in sim.requests if r.method == "POST" and r.path.endswith("orders")]) == 1, vendor
    # ... and nothing of any credential, in any spelling, is in a result, a log line or the ledger.
    outputs = {name: result_text(r) for name, r in results.items()}
    outputs |= {f"log line {i}": line for i, line in enumerate(log_lines(caplog))}
    outputs |= {f"ledger file {name}": data for name, data in stored.items()}
    assert not scan(outputs, [*hostile.canaries, *hostile.tokens])


@pytest.mark.asyncio
async def test_a_vendor_error_quoting_a_key_is_refused_without_it(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    """Skynet's own fault: an error message quoting the request's Authorization header, plus the echo."""
    caplog.set_level(logging.DEBUG)
    hostile.arm(HOSTILE_ECHO, "skynet")
    hostile.sandbox.skynet.faults.arm("echo_credentials", 2)
    async with Client(hostile.server) as client:
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        failed = await client.call_tool(
            "place_order",
            {"vendor": "skynet", "po_number": "PO-ECHO-1", "items": [{"part_id": "MS21042L3", "quantity": 1}]},
        )
    [failure] = structured(found)["vendor_errors"]
    # The echo reached the code too: what is left of it is a bare token, with nothing of the key.
    assert failure["code"].startswith("VALIDATION_FAILED") and "***" in failure["message"]
    error_text(failed)
    assert hostile.sandbox.skynet.orders == []
    outputs = {"lookup": result_text(found), "place_order": result_text(failed)}
    outputs |= {f"log line {i}": line for i, line in enumerate(log_lines(caplog))}
    assert not scan(outputs, [*hostile.canaries, *hostile.tokens])


@pytest.mark.asyncio
async def test_a_vendor_error_code_with_line_breaks_writes_no_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.sandbox.skynet.faults.arm("upstream_error", 3)
    world.sandbox.skynet.faults.arm(HOSTILE_TEXT, 3)
    async with Client(world.server) as client:
        lookup = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
    [failure] = structured(lookup)["vendor_errors"]
    assert failure["code"].startswith("UPSTREAM_ERROR") and re.fullmatch(r"[A-Za-z0-9_.-]+", failure["code"])
    # The vendor's code reached the log (the retry line names it) as a bare token, before any formatting ...
    quoting = [r for r in caplog.records if "UPSTREAM_ERROR" in r.getMessage()]
    assert quoting and not any(ch in r.getMessage() for r in quoting for ch in "\r\n\x1b")
    # ... and no record, as written, holds a line break: the vendor's "\r\n# SYSTEM" starts no line.
    lines = log_lines(caplog)
    assert lines and not [line for line in lines if "\n" in line or "\r" in line]
    assert not [line for line in "\n".join(lines).splitlines() if line.lstrip().startswith(("# SYSTEM", "IGNORE"))]


@pytest.mark.asyncio
async def test_whatever_a_vendor_puts_in_a_log_record_stays_on_its_line_without_our_secrets(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The formatter itself, for what no code path logs today: raw vendor text, in arguments and tracebacks."""
    key = world.sandbox.vendors()["factoryai"].settings["api_key"]  # registered by build_server
    hostile = HOSTILE_TEXT_SUFFIX[:400] + credential_echo(key) + "\u2028forged\x85line"
    logger = logging.getLogger("parts_mcp.vendors.factoryai")
    with caplog.at_level(logging.INFO):
        logger.info("Factory AI said %s (%r)", hostile, hostile)
        try:
            raise ValueError(f"unreadable answer: {hostile}")
        except ValueError:
            logger.exception("reading an answer failed")
    first, second = log_lines(caplog)[-2:]
    for line in (first, second):
        assert line.isprintable(), [ch for ch in line if not ch.isprintable()][:5]
        assert "\\r\\n# SYSTEM" in line and "\\x1b[2J" in line and "\\u2028forged\\x85line" in line
    assert "Traceback (most recent call last):\\n" in second and "ValueError: unreadable answer" in second
    assert not scan({"first": first, "second": second}, [key])


@pytest.mark.asyncio
async def test_an_unexpected_failure_gives_a_reference_found_in_the_log_with_its_traceback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with Client(world.server) as client:
        world.ledger.close()  # the store fails under the server: nothing in our code expects that
        failed = await client.call_tool("list_purchase_orders", {})
        placing = await client.call_tool(
            "place_order", {"vendor": "skynet", "po_number": "PO-REF-1", "items": [{"part_id": "x", "quantity": 1}]}
        )
    refs = []
    for result, tool in ((failed, "list_purchase_orders"), (placing, "place_order")):
        text = error_text(result)
        match = re.fullmatch(rf"\[INTERNAL\] {tool}: an unexpected error occurred \(ref ([0-9a-f]{{6}})\)\. .+", text)
        assert match, text
        assert "closed database" not in text and "Traceback" not in text  # the details are only in the log
        refs.append(match.group(1))
    assert refs[0] != refs[1]
    assert "check get_order or list_purchase_orders by PO" in error_text(placing)  # a write says what to check
    for ref in refs:
        [record] = [r for r in caplog.records if f"(ref {ref})" in r.getMessage()]
        assert record.levelno == logging.ERROR and record.exc_info is not None
        line = logs.SafeFormatter(logs.FORMAT).format(record)
        assert "Traceback (most recent call last):" in line and "closed database" in line and "\n" not in line
    assert world.skynet_orders == []


@pytest.mark.asyncio
async def test_a_key_in_text_no_vendor_client_saw_is_blanked_where_results_leave(hostile: Hostile) -> None:
    """Vendor clients redact what their own vendor sends. Anything else a result quotes (here the
    assistant's notes, holding a key it should never have seen) is blanked by the last line."""
    key = hostile.keys["factoryai"]
    notes = f"key {' '.join(key.upper())} / {base64.b64encode(b'k:' + key.encode()).decode()}"
    assert leaks(notes, key)
    async with Client(hostile.server) as client:
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        items = [{"part_id": structured(found)["parts"][0]["part_id"], "quantity": 1}]
        preview = await client.call_tool(
            "place_order", {"vendor": "skynet", "po_number": "PO-NOTE-1", "items": items, "notes": notes}
        )
    assert structured(preview)["status"] == "confirmation_required"
    assert "written by the assistant: «key ***" in result_text(preview)
    assert not scan({"preview": result_text(preview)}, hostile.canaries)
