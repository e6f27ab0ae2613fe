"""Graceful shutdown (issue 13): `parts-mcp serve` gets SIGTERM while a call waits on a slow vendor.

The server is the CLI in a subprocess; the vendor is the Skynet simulator on loopback, slowed by its
latency fault. SIGTERM is sent once the simulator has received the call's request. Every client gets
an answer: the result when the call ends within `[server] shutdown_grace_seconds`, else an error
result saying the server is shutting down; an order in flight ends placed, or in the ledger for the
restarted server to finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox

from conftest import free_port, part_ids, serve, structured

pytestmark = pytest.mark.asyncio
VENDOR_KEY = "SKYNET_SHUTDOWN_TEST_KEY"
# How long the process may take beyond the grace: answers flushed, the session manager stopped.
MARGIN = 8.0


class Arrivals:
    """The simulator, noting each request as it arrives (its own log is written once it has answered)."""

    def __init__(self, app: ASGIApp, watched: str) -> None:
        self.app, self.watched = app, watched
        self.arrived = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(self.watched):
            self.arrived.set()
        await self.app(scope, receive, send)

    async def wait(self) -> None:
        assert await anyio.to_thread.run_sync(self.arrived.wait, 30), f"no request to {self.watched} arrived"


@dataclass
class Vendor:
    sandbox: Sandbox
    arrivals: Arrivals
    url: str


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    sandbox = Sandbox()
    arrivals = Arrivals(sandbox.asgi_app(), "/catalog")
    with serve(arrivals) as base:
        yield Vendor(sandbox, arrivals, f"{base}/skynet/api/b2b")


def write_config(tmp_path: Path, vendor: Vendor, *, transport: str, grace: float, port: int = 0) -> Path:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(
        f'[server]\ntransport = "{transport}"\nport = {port}\nshutdown_grace_seconds = {grace}\n\n'
        f'[guard]\nconfirmation = "token"\n\n[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n\n'
        f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{vendor.url}"\napi_key = "${{{VENDOR_KEY}}}"\nattempts = 1\n'
    )
    return path


async def spawn(config: Path, vendor: Vendor, stderr: Any) -> Process:
    env = {**os.environ, VENDOR_KEY: vendor.sandbox.vendors()["skynet"].settings["api_key"]}
    command = [sys.executable, "-m", "parts_mcp", "serve", "--config", str(config)]
    return await anyio.open_process(command, env=env, stderr=stderr, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


@asynccontextmanager
async def http_server(tmp_path: Path, vendor: Vendor, grace: float) -> AsyncIterator[tuple[Process, str]]:
    port = free_port()
    config = write_config(tmp_path, vendor, transport="http", grace=grace, port=port)
    with (tmp_path / "stderr.txt").open("ab") as stderr:
        process = await spawn(config, vendor, stderr)
        async with process:
            url = f"http://127.0.0.1:{port}/mcp"
            await until_serving(url, process)
            try:
                yield process, url
            finally:
                if process.returncode is None:
                    process.kill()


async def until_serving(url: str, process: Process) -> None:
    """Bounded poll until the subprocess answers HTTP."""
    async with httpx2.AsyncClient() as http:
        with anyio.fail_after(30):
            while True:
                assert process.returncode is None, "the server exited before serving"
                try:
                    await http.get(url)
                    return
                except httpx2.ConnectError:
                    await anyio.sleep(0.05)


async def terminate(process: Process, grace: float) -> float:
    """SIGTERM; how long the process took to exit (bounded by the grace and the margin)."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(grace + MARGIN):
        await process.wait()
    return time.monotonic() - began


async def call_then_terminate(
    client: Client, process: Process, vendor: Vendor, grace: float, name: str, args: dict[str, Any]
) -> tuple[Any, float]:
    """Call `name`; once its vendor request has arrived, SIGTERM. The call's answer, and the time to exit."""
    answered: list[Any] = []

    async def call() -> None:
        answered.append(await client.call_tool(name, args))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(call)
        await vendor.arrivals.wait()
        took = await terminate(process, grace)
    return answered[0], took


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


LOOKUP = {"query": ["MS21042L3"], "vendors": ["skynet"]}


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # 2025-11-25 sessions (SSE answers) and the 2026 protocol
async def test_sigterm_lets_a_slow_lookup_finish_and_answers_it(tmp_path: Path, vendor: Vendor, mode: str) -> None:
    grace = 20.0
    async with http_server(tmp_path, vendor, grace) as (process, url), Client(url, mode=mode) as client:  # type: ignore[arg-type]
        await client.list_tools()  # the client checks results against the tool list; the server is gone after
        vendor.sandbox.skynet.faults.latency = 2.0
        result, took = await call_then_terminate(client, process, vendor, grace, "lookup_parts", LOOKUP)
    assert not result.is_error, text_of(result)
    assert [p["part_number"] for p in structured(result)["parts"]] == ["MS21042L3"]
    assert took < 2.0 + MARGIN  # it waited for the call, not for the whole grace


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_call_still_running_at_the_deadline_is_answered_as_cut(
    tmp_path: Path, vendor: Vendor, mode: str
) -> None:
    grace = 1.0
    async with http_server(tmp_path, vendor, grace) as (process, url), Client(url, mode=mode) as client:  # type: ignore[arg-type]
        await client.list_tools()
        vendor.sandbox.skynet.faults.latency = 4.0
        result, took = await call_then_terminate(client, process, vendor, grace, "lookup_parts", LOOKUP)
    assert result.is_error
    assert text_of(result).startswith("[SHUTTING_DOWN] The server is shutting down and stopped this call after")
    assert "call lookup_parts again" in text_of(result)
    assert grace <= took < grace + MARGIN


async def start_order(client: Client, vendor: Vendor, po_number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order's arguments and its confirmation: the preview is taken while the vendor is still fast."""
    [part_id] = (await part_ids(client, "MS21042L3")).values()
    args = {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": part_id, "quantity": 2}]}
    preview = structured(await client.call_tool("place_order", args))
    total = preview["preview"]["total"]
    confirm = {
        **args,
        "confirmation_token": preview["confirmation_token"],
        "confirmed_total": f"{total['amount']} {total['currency']}",
    }
    return args, confirm


async def intent_state(tmp_path: Path, po_number: str) -> str:
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite3")
    try:
        intent = await ledger.get("skynet", po_number)
        assert intent is not None
        return intent.state.value
    finally:
        ledger.close()


async def test_an_order_in_flight_within_the_grace_is_placed_and_answered(tmp_path: Path, vendor: Vendor) -> None:
    grace = 20.0
    vendor.arrivals.watched = "/orders"
    async with http_server(tmp_path, vendor, grace) as (process, url), Client(url) as client:
        _, confirm = await start_order(client, vendor, "PO-SIGTERM-1")
        vendor.sandbox.skynet.faults.latency = 2.0
        result, _ = await call_then_terminate(client, process, vendor, grace, "place_order", confirm)
    placed = structured(result)
    assert placed["status"] == "placed", text_of(result)
    assert [o["order_id"] for o in vendor.sandbox.skynet.orders] == [placed["order"]["order_id"]]
    assert await intent_state(tmp_path, "PO-SIGTERM-1") == "placed"


async def test_an_order_cut_at_the_deadline_stays_in_the_ledger_and_the_restart_finishes_it(
    tmp_path: Path, vendor: Vendor
) -> None:
    grace = 1.0
    vendor.arrivals.watched = "/orders"
    async with http_server(tmp_path, vendor, grace) as (process, url), Client(url) as client:
        _, confirm = await start_order(client, vendor, "PO-SIGTERM-2")
        vendor.sandbox.skynet.faults.latency = 4.0
        result, _ = await call_then_terminate(client, process, vendor, grace, "place_order", confirm)
    assert result.is_error
    assert "call place_order again with the same arguments" in text_of(result)
    # Sent, its answer never heard: at most the one order at the vendor, and the ledger says it may exist.
    assert len(vendor.sandbox.skynet.orders) <= 1
    assert await intent_state(tmp_path, "PO-SIGTERM-2") in ("sent", "unknown")

    # The vendor finishes the request it holds (its log is written when it has answered); then a restart.
    orders_answered = lambda: any(r.path.endswith("/orders") for r in vendor.sandbox.skynet.requests)  # noqa: E731
    await anyio.to_thread.run_sync(wait_for, orders_answered)
    vendor.sandbox.skynet.faults.latency = 0.0
    async with http_server(tmp_path, vendor, grace) as (_, url), Client(url) as client:
        again = structured(await client.call_tool("place_order", confirm))
    assert again["status"] == "placed", again
    assert [o["order_id"] for o in vendor.sandbox.skynet.orders] == [again["order"]["order_id"]]
    assert await intent_state(tmp_path, "PO-SIGTERM-2") == "placed"


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    """Bounded poll, for a state only the simulator's thread changes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- stdio ---------------------------------------------------------------------------------------


class RawStdio:
    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.stdin = process, process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def send(self, message: dict[str, Any]) -> None:
        await self.stdin.send(json.dumps(message).encode() + b"\n")

    async def reply(self) -> dict[str, Any]:
        with anyio.fail_after(30):
            return json.loads(await self.stdout.receive_until(b"\n", 1 << 20))


@pytest.mark.parametrize(("grace", "latency", "finished"), [(20.0, 2.0, True), (1.0, 4.0, False)])
async def test_stdio_sigterm_finishes_the_call_in_flight_or_answers_it_as_cut(
    tmp_path: Path, vendor: Vendor, grace: float, latency: float, finished: bool
) -> None:
    config = write_config(tmp_path, vendor, transport="stdio", grace=grace)
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = await spawn(config, vendor, stderr)
        async with process:
            stdio = RawStdio(process)
            hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            await stdio.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
            assert (await stdio.reply())["id"] == 1
            await stdio.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            vendor.sandbox.skynet.faults.latency = latency
            params = {"name": "lookup_parts", "arguments": LOOKUP}
            await stdio.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
            await vendor.arrivals.wait()
            took = await terminate(process, grace)
            answer = await stdio.reply()
    assert answer["id"] == 2
    text = answer["result"]["content"][0]["text"]
    if finished:
        assert not answer["result"]["isError"] and "MS21042L3" in text
        assert took < latency + MARGIN
    else:
        assert answer["result"]["isError"] and text.startswith("[SHUTTING_DOWN]")
        assert grace <= took < grace + MARGIN
    assert process.returncode == 0
