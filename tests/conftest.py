"""Shared test helpers: a server on the embedded sandbox, and short-hands for the order flow."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
import stamina
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.postgres import Postgres, free_port, running

__all__ = ["free_port"]  # the one loopback-port helper, for the tests' own servers
from parts_mcp.config import GuardSettings, Settings
from parts_mcp.orders.ledger import Ledger
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import ManualClock, Sandbox, SandboxVendor
from parts_mcp.server.app import build_server

# A test module runs on both ledgers with `pytestmark = [..., BOTH_STORES]`; World then uses each in turn.
STORES = ("sqlite", "postgres")
BOTH_STORES = pytest.mark.parametrize("store", STORES, indirect=True)
# The ledger World opens for the test running now (`store`): SQLite in tmp_path unless a module asks for both.
_ledgers: list[Callable[[Any, Callable[[], datetime]], Ledger]] = []


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL server for the session (OS binaries, initdb in a temp dir); a schema per test."""
    with running() as server:
        yield server


@dataclass(frozen=True)
class Store:
    kind: str
    url: str | None  # PostgreSQL: this test's own schema


@pytest.fixture(autouse=True)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    kind: str = getattr(request, "param", "sqlite")
    opened: list[Ledger] = []
    url = request.getfixturevalue("postgres").fresh_url() if kind == "postgres" else None

    def open_ledger(tmp_path: Any, clock: Callable[[], datetime]) -> Ledger:
        if url is None:
            ledger: Ledger = SQLiteLedger(tmp_path / "ledger.sqlite3", clock=clock)
        else:
            from parts_mcp.orders.postgres_ledger import PostgresLedger

            ledger = PostgresLedger(url, POSTGRES_KEY, clock=clock, pool_size=4)
        opened.append(ledger)
        return ledger

    _ledgers.append(open_ledger)
    try:
        yield Store(kind, url)
    finally:
        _ledgers.remove(open_ledger)
        for ledger in opened:
            ledger.close()


POSTGRES_KEY = "a-test-ledger-key-of-at-least-32-characters"


@pytest.fixture(autouse=True)
def no_desktop_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test opens a real browser tab: approval pages reach people through the channels a test sets up."""
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_backoff_waits() -> Iterator[None]:
    """Retries keep their attempt budget but skip the waits (stamina's own test mode)."""
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


class Clock:
    """One manual clock for the server (datetimes) and the simulators (epoch seconds)."""

    def __init__(self) -> None:
        self.manual = ManualClock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.manual.now(), UTC)

    def advance(self, delta: timedelta) -> None:
        self.manual.advance(delta.total_seconds())


class World:
    """A server on a sandbox, plus the sandbox itself: the simulators' records are the ground truth."""

    def __init__(self, tmp_path: Any, *, lookup_deadline: float = 20.0, **guard: Any) -> None:
        self.clock = Clock()
        self.sandbox = Sandbox(clock=self.clock.manual.now)
        # A module-scoped World is made before any test's `store`: it keeps the default, SQLite.
        self.ledger = (
            _ledgers[-1](tmp_path, self.clock.now)
            if _ledgers
            else SQLiteLedger(tmp_path / "ledger.sqlite3", clock=self.clock.now)
        )
        self.settings = Settings(sandbox=True, guard=GuardSettings(**guard), lookup_deadline=lookup_deadline)
        self.server: MCPServer = build_server(
            self.settings, sandbox=self.sandbox, ledger=self.ledger, clock=self.clock.now
        )

    def reconfigured(self, **sections: Any) -> World:
        """The same sandbox, ledger and clock under changed settings sections (a new server on them)."""
        self.settings = self.settings.model_copy(update=sections)
        self.server = build_server(self.settings, sandbox=self.sandbox, ledger=self.ledger, clock=self.clock.now)
        return self

    @property
    def skynet_orders(self) -> list[dict[str, Any]]:
        return self.sandbox.skynet.orders


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    w = World(tmp_path, confirmation="token")
    yield w
    w.ledger.close()


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


# Every refusal reads "[CODE] field: what is wrong. What to do next." (README, "Errors").
ERROR_SHAPE = re.compile(r"^\[[A-Z][A-Z0-9_]*\] [a-z_][\w\[\].]*: \S")


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    assert ERROR_SHAPE.match(text), text
    assert "Error executing tool" not in text and "pydantic.dev" not in text, text
    return text


async def part_ids(client: Client, *numbers: str, vendor: str = "skynet") -> dict[str, str]:
    found = structured(await client.call_tool("lookup_parts", {"query": list(numbers), "vendors": [vendor]}))
    return {p["part_number"]: p["part_id"] for p in found["parts"] if p["part_number"] in numbers}


async def confirm(client: Client, args: dict[str, Any]) -> CallToolResult:
    """The token flow as a well-behaved model runs it: preview, (user approves), confirm the exact total.
    The confirming call's result, error or not."""
    preview = structured(await client.call_tool("place_order", args))
    assert preview["status"] == "confirmation_required"
    total = preview["preview"]["total"]
    return await client.call_tool(
        "place_order",
        {
            **args,
            "confirmation_token": preview["confirmation_token"],
            "confirmed_total": f"{total['amount']} {total['currency']}",
        },
    )


async def confirm_and_place(client: Client, args: dict[str, Any]) -> dict[str, Any]:
    """`confirm`, where the confirmation must be answered (placed or not), not refused."""
    return structured(await confirm(client, args))


class Respelled(httpx2.AsyncBaseTransport):
    """A simulator's own answers, re-spelled by `respell(path, body)` in forms the vendor's documents leave
    open: the simulators keep to the documented spelling, so this checks the client's tolerance.
    `changed` lists the API paths re-spelled."""

    def __init__(self, vendor: SandboxVendor, respell: Callable[[str, Any], Any]) -> None:
        self._inner, self._respell = vendor.transport, respell
        self._prefix = httpx2.URL(vendor.base_url).path.rstrip("/")
        self.changed: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        answer = await self._inner.handle_async_request(request)
        body = json.loads(await answer.aread())
        path = request.url.path.removeprefix(self._prefix)
        respelled = self._respell(path, body)
        if respelled != body:
            self.changed.append(path)
        return httpx2.Response(answer.status_code, json=respelled)


class _Started:
    """ASGI wrapper that signals when the server's lifespan has started (no polling, no sleeps)."""

    def __init__(self, app: ASGIApp, started: threading.Event) -> None:
        self.app, self.started = app, started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":

            async def wrapped_send(message: Any) -> None:
                if message["type"] == "lifespan.startup.complete":
                    self.started.set()
                await send(message)

            await self.app(scope, receive, wrapped_send)
        else:
            await self.app(scope, receive, send)


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    started = threading.Event()
    server = uvicorn.Server(uvicorn.Config(_Started(app, started), lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert started.wait(10), "server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
