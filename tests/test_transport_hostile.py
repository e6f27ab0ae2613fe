"""Issue 9, point 8: hostile input at the transports gets JSON-RPC errors, and the server keeps serving.

stdio: a real `parts-mcp serve` subprocess, written to through a raw pipe (the SDK client sends no
garbage). Streamable HTTP: the app `parts-mcp serve --transport http` runs, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import pytest_asyncio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client

from parts_mcp.server.transport import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH, GuardedHTTP

from conftest import World, error_text, part_ids, serve

pytestmark = pytest.mark.asyncio
CANARY = "sk_live_canary_do_not_leak_0123456789abcdefghij"
PARSE_ERROR, INVALID_REQUEST = -32700, -32600
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def call(request_id: int, arguments: str, meta: dict[str, Any] | None = None) -> bytes:
    """A place_order tools/call with `arguments` spliced in as raw JSON text (too deep for json.dumps)."""
    envelope = f',"_meta":{json.dumps(meta)}' if meta else ""
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"place_order","arguments":{arguments}{envelope}}}}}'
    ).encode()


# (line, expected code, expected id, a word the message must hold)
HOSTILE_LINES: list[tuple[bytes, int, int | None, str]] = [
    (b"hello, this is not json " + CANARY.encode(), PARSE_ERROR, None, "Parse error"),
    (b'{"foo": 1, "secret": "' + CANARY.encode() + b'"}', INVALID_REQUEST, None, "JSON-RPC"),
    (b"[1, 2, 3]", INVALID_REQUEST, None, "JSON-RPC"),
    (b'{"jsonrpc": "2.0", "id": 7, "method": 42}', INVALID_REQUEST, 7, "JSON-RPC"),
    (deep_list(10_000).encode(), PARSE_ERROR, None, "nested deeper"),
    (call(8, '{"notes":' + deep_object(10_000) + "}"), PARSE_ERROR, None, "nested deeper"),
    # Within the JSON parser's reach but past ours: refused with the request's own id.
    (call(9, '{"notes":' + deep_list(MAX_NESTING_DEPTH) + "}"), INVALID_REQUEST, 9, "nested deeper"),
    (b'{"jsonrpc": "2.0", "id": 10,\x00 "method": "ping"}', PARSE_ERROR, None, "Parse error"),
    (b'{"jsonrpc": "2.0", "id": 11, "method": "ping", "params": {"x": "\xff\xfe"}}', PARSE_ERROR, None, "Parse"),
    (b'{"jsonrpc": "2.0", "id": 12, "method": "tools/list", "params": {"x": "' + b"a" * 50_000_000 + b'"}}',
     INVALID_REQUEST, None, "larger than"),
]  # fmt: skip


class RawStdio:
    """A `parts-mcp serve` subprocess spoken to line by line."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.stdin = process, process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.seen: list[bytes] = []

    async def send(self, line: bytes | dict[str, Any]) -> None:
        data = json.dumps(line).encode() if isinstance(line, dict) else line
        await self.stdin.send(data + b"\n")

    async def reply(self) -> dict[str, Any]:
        with anyio.fail_after(60):
            raw = await self.stdout.receive_until(b"\n", 1 << 20)
        self.seen.append(raw)
        return json.loads(raw)


@pytest_asyncio.fixture
async def stdio(tmp_path: Path) -> AsyncIterator[RawStdio]:
    env = {k: v for k, v in os.environ.items() if k != "PARTS_MCP_CONFIG"}
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "parts_mcp", "serve"], env=env, cwd=tmp_path, stderr=stderr
        )
        async with process:
            yield RawStdio(process)


async def expect_refusals(stdio: RawStdio) -> None:
    for line, code, request_id, word in HOSTILE_LINES:
        await stdio.send(line)
        answer = await stdio.reply()
        assert answer["jsonrpc"] == "2.0" and answer["id"] == request_id, (line[:60], answer)
        assert answer["error"]["code"] == code and word in answer["error"]["message"], (line[:60], answer)


async def test_stdio_answers_every_hostile_line_then_serves_the_handshake(stdio: RawStdio, tmp_path: Path) -> None:
    await expect_refusals(stdio)
    await stdio.send(b"   ")  # a blank line is no message: nothing is answered
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    await stdio.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
    assert (await stdio.reply())["result"]["serverInfo"]["name"] == "parts-mcp"
    await stdio.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    await stdio.send(b"more garbage, mid-session")
    assert (await stdio.reply())["error"]["code"] == PARSE_ERROR
    await stdio.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    tools = (await stdio.reply())["result"]["tools"]
    assert "place_order" in {tool["name"] for tool in tools}
    # End of input ends the server cleanly, as before.
    await stdio.stdin.aclose()
    with anyio.fail_after(30):
        assert await stdio.process.wait() == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert stderr.count("stdio: refused a message") == len(HOSTILE_LINES) + 1
    assert CANARY not in stderr and all(CANARY.encode() not in raw for raw in stdio.seen)


async def test_stdio_serves_the_2026_protocol_after_hostile_lines(stdio: RawStdio) -> None:
    await expect_refusals(stdio)
    await stdio.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}})
    tools = (await stdio.reply())["result"]["tools"]
    assert "lookup_parts" in {tool["name"] for tool in tools}
    await stdio.send(deep_list(10_000).encode())
    assert (await stdio.reply())["error"]["code"] == PARSE_ERROR
    params = {"name": "lookup_parts", "arguments": {"query": ["MS21042L3"]}, "_meta": MODERN_META}
    await stdio.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
    found = (await stdio.reply())["result"]
    assert not found["isError"] and "MS21042L3" in json.dumps(found["structuredContent"])


HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
MODERN_HEADERS = {
    **HEADERS,
    # The 2026-07-28 path, where the SDK parses with json.loads, which goes ~970 levels deep.
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "place_order",
}


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body with no Content-Length, so only counting what arrives can stop it."""
    yield b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"x":"'
    for _ in range(size // 65536):
        yield b"a" * 65536
    yield b'"}}'


async def test_http_refuses_deep_and_oversized_bodies_with_json_rpc_errors(tmp_path: Path) -> None:
    world = World(tmp_path, confirmation="token")
    with serve(GuardedHTTP(world.server.streamable_http_app(host="127.0.0.1"))) as base:
        async with httpx2.AsyncClient(base_url=base, timeout=60) as http:
            answers = [
                await http.post("/mcp", content=body, headers=headers)
                for body, headers in [
                    (b"not json " + CANARY.encode(), HEADERS),
                    (deep_list(10_000).encode(), HEADERS),
                    (call(3, '{"notes":' + deep_list(500) + "}", MODERN_META), MODERN_HEADERS),
                    (call(4, '{"notes":' + deep_object(MAX_NESTING_DEPTH) + "}", MODERN_META), MODERN_HEADERS),
                    (call(6, '{"notes":' + deep_list(MAX_NESTING_DEPTH) + "}"), HEADERS),
                    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 50_000_000 + b'"}}', HEADERS),
                ]
            ]
            answers.append(await http.post("/mcp", content=chunks(2 * MAX_MESSAGE_BYTES), headers=HEADERS))
        expected = [(400, None, PARSE_ERROR), (400, None, PARSE_ERROR), (400, None, PARSE_ERROR)]
        expected += [(400, 4, INVALID_REQUEST), (400, 6, INVALID_REQUEST)]
        expected += [(413, None, INVALID_REQUEST), (413, None, INVALID_REQUEST)]
        for answer, (status, request_id, code) in zip(answers, expected, strict=True):
            body = answer.json()
            assert answer.status_code == status and answer.headers["content-type"] == "application/json", answer.text
            assert body["jsonrpc"] == "2.0" and body["id"] == request_id and body["error"]["code"] == code, body
            assert CANARY not in answer.text
        # The server keeps serving: a normal SDK session in either protocol era works end to end.
        for mode in ("auto", "legacy"):
            async with Client(base + "/mcp", mode=mode) as client:
                assert "MS21042L3" in await part_ids(client, "MS21042L3")
    assert world.skynet_orders == []
    world.ledger.close()


async def test_the_largest_legitimate_order_passes_the_limits(tmp_path: Path) -> None:
    """place_order with 100 lines of the longest part ids, the longest notes and per-line options."""
    world = World(tmp_path, confirmation="token")
    lines = [f"P{n:03d}-" + "x" * 507 for n in range(100)]
    arguments = {
        "vendor": "skynet",
        "po_number": "PO-BIG-1",
        "items": [{"part_id": part_id, "quantity": 1_000_000} for part_id in lines],
        "notes": "n" * 1000,
        "options": {
            "vehicle_references": {part_id: {"VIN": "WVWZZZ1JZXW000001"} for part_id in lines},
            "required_fields": [{"part_id": part_id, "name": "serialNumber", "value": "S" * 40} for part_id in lines],
            "shipping_address": {"name": "Hangar 4", "address1": "1 Runway Rd", "city": "Leeds", "country": "GB"},
        },
    }
    size = len(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": arguments}}))
    assert size < MAX_MESSAGE_BYTES // 20, size  # ample room under the cap
    with serve(GuardedHTTP(world.server.streamable_http_app(host="127.0.0.1"))) as base:
        async with Client(base + "/mcp") as client:
            # It reaches the tool (which refuses the unknown parts): the transport let it through.
            assert "[" in error_text(await client.call_tool("place_order", arguments))
    assert world.skynet_orders == []
    world.ledger.close()
