"""The whole flow over real transports: stdio (a `parts-mcp serve` subprocess) and streamable HTTP.

Also: configuration from a file with an `${ENV}` secret, pointed at the simulators served on
loopback by `Sandbox.asgi_app()`, and a wrong API key that must never show up anywhere.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from parts_mcp.config import load
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server

from conftest import World, error_text, serve, structured

pytestmark = pytest.mark.asyncio
CANARY = "sk_live_canary_do_not_leak_0123456789abcdefghij"


LINK = re.compile(r"http://127\.0\.0\.1:\d+/approvals/[0-9a-f-]+\?k=[\w-]+")
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


async def approve_on_page(link: str) -> None:
    """What the person does with the link the sandbox printed: open the page, press Approve."""
    async with httpx2.AsyncClient() as http:
        page = await http.get(link)
        form = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
        answer = await http.post(link.split("?")[0], data={**form, "decision": "approve"})
    assert answer.status_code == 200, answer.text


async def run_flow(client: Client, po_number: str, printed: Callable[[], str] | None = None) -> dict[str, Any]:
    """lookup -> place -> (a person approves, or the token flow) -> get -> list; returns the placed order.

    `printed` is what the server printed for its operator: where the sandbox puts the approval link.
    """
    found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
    part = next(p for p in found["parts"] if p["part_number"] == "MS21042L3")
    args = {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": part["part_id"], "quantity": 2}]}
    first = await client.call_tool("place_order", args)
    asked = structured(first)
    if printed is not None:
        assert asked["status"] == "awaiting_approval"
        [link] = LINK.findall(printed())
        assert link not in first.model_dump_json()  # the model never holds the link
        await approve_on_page(link)
        placed = structured(await client.call_tool("place_order", args))
    else:
        assert asked["status"] == "confirmation_required"
        total = asked["preview"]["total"]
        confirmed = {
            "confirmation_token": asked["confirmation_token"],
            "confirmed_total": "{amount} {currency}".format(**total),
        }
        placed = structured(await client.call_tool("place_order", {**args, **confirmed}))
    assert placed["status"] == "placed"
    order = placed["order"]
    got = structured(await client.call_tool("get_order", {"vendor": "skynet", "order_id": order["order_id"]}))
    assert got["order"]["order_id"] == order["order_id"]
    listed = structured(await client.call_tool("list_purchase_orders", {"po_number": po_number}))
    assert [o["order_id"] for o in listed["orders"]] == [order["order_id"]]
    return order


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_subprocess_runs_the_whole_flow_on_the_embedded_sandbox(tmp_path: Path, mode: str) -> None:
    """`parts-mcp serve` with no config: the README's first command, as a stdio client sees it."""
    env = {k: v for k, v in os.environ.items() if k != "PARTS_MCP_CONFIG"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "parts_mcp", "serve"], env=env, cwd=str(tmp_path)
    )
    with (tmp_path / "stderr.txt").open("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            assert client.server_info.name == "parts-mcp"
            order = await run_flow(client, "PO-STDIO-1", printed=lambda: Path(errlog.name).read_text())
            assert order["status"] == "draft"
        errlog.seek(0)
        assert "sandbox" in errlog.read()  # the operator is told, on stderr


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_runs_the_whole_flow(tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="parts_mcp.approvals.channels")
    world = World(tmp_path, confirmation="auto")
    with serve(world.server.streamable_http_app()) as base:
        async with Client(base + "/mcp", mode=mode) as client:
            order = await run_flow(client, f"PO-HTTP-{mode}", printed=lambda: caplog.text)
    [truth] = world.skynet_orders
    assert truth["order_id"] == order["order_id"]


def config_file(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(
        '[guard]\nconfirmation = "token"\n\n'
        f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n\n'
        f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{base_url}"\napi_key = "${{SKYNET_TEST_KEY}}"\n'
        "attempts = 1\n"
    )
    return path


async def test_config_file_points_the_server_at_simulators_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox()
    monkeypatch.setenv("SKYNET_TEST_KEY", sandbox.vendors()["skynet"].settings["api_key"])
    with serve(sandbox.asgi_app()) as base:
        settings = load(config_file(tmp_path, f"{base}/skynet/api/b2b"))
        assert settings.sandbox is False
        server = build_server(settings)
        async with Client(server) as client:
            order = await run_flow(client, "PO-LOOP-1")
            vendors = structured(await client.call_tool("list_vendors", {}))
            assert vendors["vendors"][0]["sandbox"] is False
    assert [o["order_id"] for o in sandbox.skynet.orders] == [order["order_id"]]


async def test_a_wrong_api_key_gives_a_clear_error_that_never_contains_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """INVALID_API_KEY from Skynet: the model is told what is wrong; the key is in no result, error or log."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SKYNET_TEST_KEY", CANARY)
    sandbox = Sandbox()
    with serve(sandbox.asgi_app()) as base:
        server = build_server(
            load(config_file(tmp_path, f"{base}/skynet/api/b2b")), ledger=SQLiteLedger(tmp_path / "l.sqlite3")
        )
        async with Client(server) as client:
            found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
            [failure] = found["vendor_errors"]
            assert failure["code"] == "INVALID_API_KEY" and "API key" in failure["message"]
            text = error_text(
                await client.call_tool(
                    "place_order",
                    {"vendor": "skynet", "po_number": "PO-KEY-1", "items": [{"part_id": "MS21042L3", "quantity": 1}]},
                )
            )
            assert "VENDOR_AUTH" in text
            everything = str(found) + text + str(await client.list_tools())
    assert CANARY not in everything
    assert CANARY not in caplog.text
    assert sandbox.skynet.orders == []


async def test_serve_with_a_broken_config_says_which_key_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[vendors.skynet]\nkind = "skynet"\napi_key = "${NOT_SET_ANYWHERE_42}"\n')
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE_42"}
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "parts_mcp", "serve", "--config", str(path)], env=env, check=False
        )
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert "vendors.skynet.api_key" in stderr and "NOT_SET_ANYWHERE_42" in stderr
    assert done.stdout == b""


async def test_http_refuses_foreign_hosts_and_origins(tmp_path: Path) -> None:
    """DNS-rebinding protection on the loopback HTTP transport: a foreign Host or Origin never reaches a tool."""
    world = World(tmp_path)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    with serve(world.server.streamable_http_app(host="127.0.0.1")) as base:
        async with httpx2.AsyncClient(base_url=base) as http:
            foreign_host = await http.post("/mcp", json=initialize, headers={**headers, "Host": "evil.example"})
            foreign_origin = await http.post(
                "/mcp", json=initialize, headers={**headers, "Origin": "https://evil.example"}
            )
            local = await http.post("/mcp", json=initialize, headers=headers)
    assert foreign_host.status_code == 421
    assert foreign_origin.status_code == 403
    assert local.status_code == 200


async def test_a_vendor_that_echoes_the_key_never_gets_it_to_the_model_or_the_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SKYNET_TEST_KEY", CANARY)
    sandbox = Sandbox()
    sandbox.skynet.api_keys = frozenset({CANARY})
    with serve(sandbox.asgi_app()) as base:
        server = build_server(
            load(config_file(tmp_path, f"{base}/skynet/api/b2b")), ledger=SQLiteLedger(tmp_path / "l.sqlite3")
        )
        async with Client(server) as client:
            sandbox.skynet.faults.arm("echo_credentials")
            found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
            sandbox.skynet.faults.arm("echo_credentials")
            failed = await client.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-ECHO-1", "items": [{"part_id": "MS21042L3", "quantity": 1}]},
            )
    [failure] = found["vendor_errors"]
    assert failure["code"] == "VALIDATION_FAILED" and "***" in failure["message"]
    assert failed.is_error
    assert CANARY not in str(found) + str(failed) and CANARY not in caplog.text


class _OnOrderPost:
    """ASGI wrapper: sets `arrived` when an order POST reaches the simulators (so a test knows it is in flight)."""

    def __init__(self, app: Any) -> None:
        self.app, self.arrived = app, threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/orders"):
            self.arrived.set()
        await self.app(scope, receive, send)


async def test_a_server_killed_mid_order_is_finished_by_the_next_one_with_one_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY F10: kill -9 while the order POST is in flight; a restarted server completes it, once."""
    sandbox = Sandbox()
    monkeypatch.setenv("SKYNET_TEST_KEY", sandbox.vendors()["skynet"].settings["api_key"])
    watched = _OnOrderPost(sandbox.asgi_app())
    with serve(watched) as base:
        path = config_file(tmp_path, f"{base}/skynet/api/b2b")
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "parts_mcp", "serve", "--config", str(path)],
            env=dict(os.environ),
            cwd=str(tmp_path),
        )
        with (tmp_path / "first.err").open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
                args = {
                    "vendor": "skynet",
                    "po_number": "PO-KILL-1",
                    "items": [{"part_id": found["parts"][0]["part_id"], "quantity": 1}],
                }
                preview = structured(await client.call_tool("place_order", args))
                sandbox.skynet.faults.latency = 1.0  # the POST stays in flight long enough to kill the server

                async def kill_when_in_flight() -> None:
                    await anyio.to_thread.run_sync(watched.arrived.wait, 30)
                    await anyio.run_process(["pkill", "-9", "-f", str(path)], check=False)

                with anyio.fail_after(30):
                    async with anyio.create_task_group() as group:
                        group.start_soon(kill_when_in_flight)
                        # The server dies under this call, as intended.
                        with contextlib.suppress(Exception):
                            await client.call_tool(
                                "place_order",
                                {
                                    **args,
                                    "confirmation_token": preview["confirmation_token"],
                                    "confirmed_total": "{amount} {currency}".format(**preview["preview"]["total"]),
                                },
                            )
        sandbox.skynet.faults.latency = 0.0
        with (tmp_path / "second.err").open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                again = structured(await client.call_tool("place_order", args))
    assert again["status"] == "placed"
    # Finished through the dead server's intent (a resend under its key), not as a fresh order.
    assert "replayed" not in again and any("same idempotency key" in w for w in again["warnings"])
    assert len(sandbox.skynet.orders) == 1
    assert again["order"]["order_id"] == sandbox.skynet.orders[0]["order_id"]
