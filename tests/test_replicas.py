"""Replicas (issue 12): several `parts-mcp serve --transport http` processes sharing one real PostgreSQL.

The vendor is the Skynet simulator on loopback in this process, so its orders are the ground truth.
Each replica is a real subprocess with the same config (the ledger's URL and key, the token secret)
on its own port; nothing is sticky: any call may go to any replica.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.postgres import Postgres
from parts_mcp.sandbox import Sandbox

from approvers import Human, Receiver, decide, open_page
from conftest import POSTGRES_KEY, free_port, part_ids, serve, structured

pytestmark = pytest.mark.asyncio


class Gate:
    """The simulator, with its POST /orders held at the door while `closed`: an order in flight, on demand."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.closed = False
        self.arrived = threading.Event()
        self.opened = threading.Event()
        self.answered = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held = self.closed and scope["type"] == "http" and scope["method"] == "POST"
        if not (held and scope["path"].endswith("/orders")):
            await self.app(scope, receive, send)
            return
        # The whole request is in before the door closes: what the vendor does with it no longer
        # depends on whether its sender is still alive.
        body: list[Message] = []
        while not body or body[-1].get("more_body", False):
            body.append(await receive())
        self.arrived.set()
        await anyio.to_thread.run_sync(self.opened.wait, 30)

        async def replay() -> Message:
            return body.pop(0) if body else {"type": "http.disconnect"}

        async def answer(message: Message) -> None:
            with contextlib.suppress(OSError, RuntimeError):  # its caller is gone
                await send(message)

        await self.app(scope, replay, answer)
        self.answered.set()


class RoundRobin:
    """The simplest load balancer: every request to the next replica in turn, nothing sticky."""

    def __init__(self) -> None:
        self.replicas: list[str] = []
        self.sent: list[str] = []  # the replica each tool call went to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        replica = self.replicas[len(self.sent) % len(self.replicas)]
        self.sent.append(replica)
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() not in (b"host", b"content-length")
        ]
        async with httpx2.AsyncClient() as http:
            answer = await http.request(scope["method"], replica + scope["path"], headers=headers, content=body)
        passed = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k.lower() != "content-length"]
        passed.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": passed})
        await send({"type": "http.response.body", "body": answer.content})


@dataclass
class Vendor:
    sandbox: Sandbox
    gate: Gate
    url: str

    @property
    def orders(self) -> list[dict[str, Any]]:
        return self.sandbox.skynet.orders


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    sandbox = Sandbox()
    gate = Gate(sandbox.asgi_app())
    with serve(gate) as base:
        yield Vendor(sandbox, gate, f"{base}/skynet/api/b2b")


def write_config(tmp_path: Path, vendor: Vendor, confirmation: str) -> Path:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(
        '[server]\ntransport = "http"\n\n'
        f'[guard]\nconfirmation = "{confirmation}"\ntoken_secret = "${{PARTS_MCP_TOKEN_SECRET}}"\n\n'
        '[approvals]\nopen_browser = false\nwebhook_url = "${APPROVAL_HOOK}"\n\n'
        '[store]\nurl = "${PARTS_MCP_DB}"\nkey = "${PARTS_MCP_LEDGER_KEY}"\npool_size = 4\n\n'
        f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{vendor.url}"\napi_key = "${{SKYNET_KEY}}"\nattempts = 1\n'
    )
    return path


@dataclass
class Replica:
    process: Process
    base: str

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"


@asynccontextmanager
async def replicas(
    tmp_path: Path, postgres: Postgres, vendor: Vendor, n: int, *, confirmation: str = "token", hook: str = ""
) -> AsyncIterator[list[Replica]]:
    """`n` replicas on one fresh database, each serving on its own loopback port; killed at the end."""
    config = write_config(tmp_path, vendor, confirmation)
    env = {
        **os.environ,
        "PARTS_MCP_DB": postgres.fresh_database(),
        "PARTS_MCP_LEDGER_KEY": POSTGRES_KEY,
        "PARTS_MCP_TOKEN_SECRET": "a-token-secret-shared-by-every-replica-0123",
        "SKYNET_KEY": vendor.sandbox.vendors()["skynet"].settings["api_key"],
        "APPROVAL_HOOK": hook or "http://127.0.0.1:9/unused",
    }
    async with AsyncExitStack() as stack:
        started: list[Replica] = []
        for i in range(n):
            port = free_port()
            command = [sys.executable, "-m", "parts_mcp", "serve", "--config", str(config), "--port", str(port)]
            stderr = stack.enter_context((tmp_path / f"replica-{i}.log").open("wb"))
            process = await anyio.open_process(command, env=env, stderr=stderr, stdout=subprocess.DEVNULL)
            stack.push_async_callback(stop, process)
            started.append(Replica(process, f"http://127.0.0.1:{port}"))
        for replica in started:
            await until_ready(replica)
        yield started


async def stop(process: Process) -> None:
    if process.returncode is None:
        process.kill()
    with anyio.fail_after(10):
        await process.wait()


async def until_ready(replica: Replica) -> None:
    """Bounded poll of /readyz until the replica serves (its ledger open)."""
    async with httpx2.AsyncClient() as http:
        with anyio.fail_after(60):
            while True:
                assert replica.process.returncode is None, "a replica exited before serving"
                try:
                    if (await http.get(f"{replica.base}/readyz")).status_code == 200:
                        return
                except httpx2.ConnectError:
                    pass
                await anyio.sleep(0.05)


async def preview(replica: Replica, po_number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments of an order, and the confirmation arguments a token preview on `replica` gives."""
    async with Client(replica.mcp) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": ids["MS21042L3"], "quantity": 2}]}
        shown = structured(await client.call_tool("place_order", args))
    assert shown["status"] == "confirmation_required", shown
    total = shown["preview"]["total"]
    confirm = {
        "confirmation_token": shown["confirmation_token"],
        "confirmed_total": f"{total['amount']} {total['currency']}",
    }
    return args, confirm


async def place(replica: Replica, args: dict[str, Any]) -> dict[str, Any]:
    async with Client(replica.mcp) as client:
        return structured(await client.call_tool("place_order", args))


async def test_a_preview_on_one_replica_is_confirmed_on_another(
    tmp_path: Path, postgres: Postgres, vendor: Vendor
) -> None:
    async with replicas(tmp_path, postgres, vendor, 2) as (a, b):
        args, confirm = await preview(a, "PO-REPLICA-1")
        placed = await place(b, {**args, **confirm})
        assert placed["status"] == "placed", placed
        # Either replica answers for the order: the ledger is the one they share.
        async with Client(a.mcp) as client:
            listed = structured(await client.call_tool("list_purchase_orders", {"po_number": "PO-REPLICA-1"}))
    assert [o["order_id"] for o in vendor.orders] == [placed["order"]["order_id"]]
    assert [o["order_id"] for o in listed["orders"]] == [placed["order"]["order_id"]]


async def test_fifty_identical_confirmations_across_three_replicas_make_one_order(
    tmp_path: Path, postgres: Postgres, vendor: Vendor
) -> None:
    async with replicas(tmp_path, postgres, vendor, 3) as spread:
        args, confirm = await preview(spread[0], "PO-REPLICA-50")
        answers: list[dict[str, Any]] = []

        async def confirm_on(replica: Replica) -> None:
            answers.append(await place(replica, {**args, **confirm}))

        async with anyio.create_task_group() as group:
            for i in range(50):
                group.start_soon(confirm_on, spread[i % 3])
        settled = await place(spread[1], {**args, **confirm})
    assert len(vendor.orders) == 1
    order_id = vendor.orders[0]["order_id"]
    assert settled["status"] == "placed" and settled["order"]["order_id"] == order_id
    # Each answer is the one order, or says that another process is placing it right now: never a second.
    for answer in answers:
        if answer["status"] == "placed":
            assert answer["order"]["order_id"] == order_id
        else:
            assert "Another parts-mcp process is placing this order" in str(answer), answer
    assert any(answer["status"] == "placed" for answer in answers)


async def test_a_replica_killed_mid_order_is_finished_by_another_with_one_order(
    tmp_path: Path, postgres: Postgres, vendor: Vendor
) -> None:
    async with replicas(tmp_path, postgres, vendor, 2) as (a, b):
        args, confirm = await preview(a, "PO-REPLICA-KILL")
        vendor.gate.closed = True
        async with anyio.create_task_group() as group:

            async def doomed() -> None:
                # The client sees the connection drop when its replica dies; that is the point.
                with pytest.raises(Exception):  # noqa: B017 - any transport error will do
                    await place(a, {**args, **confirm})

            group.start_soon(doomed)
            assert await anyio.to_thread.run_sync(vendor.gate.arrived.wait, 30), "the order never reached the vendor"
            a.process.send_signal(signal.SIGKILL)
            await a.process.wait()
            # The vendor takes the order whose answer nobody will read: the worst case for a resend.
            vendor.gate.opened.set()
            assert await anyio.to_thread.run_sync(vendor.gate.answered.wait, 30)
        assert len(vendor.orders) == 1
        # The user's client retries on the other replica, exactly as before.
        finished = await place(b, {**args, **confirm})
    assert finished["status"] == "placed", finished
    assert [o["order_id"] for o in vendor.orders] == [finished["order"]["order_id"]]


async def test_an_approval_page_asked_on_one_replica_is_decided_on_another(
    tmp_path: Path, postgres: Postgres, vendor: Vendor
) -> None:
    receiver = Receiver()
    with serve(receiver.app) as hook:
        async with replicas(tmp_path, postgres, vendor, 2, confirmation="approval", hook=f"{hook}/hook") as (a, b):
            async with Client(a.mcp) as client:
                ids = await part_ids(client, "MS21042L3")
                items = [{"part_id": ids["MS21042L3"], "quantity": 2}]
                waiting = structured(
                    await client.call_tool(
                        "place_order", {"vendor": "skynet", "po_number": "PO-REPLICA-OK", "items": items}
                    )
                )
            assert waiting["status"] == "awaiting_approval", waiting
            link = receiver.posts[0]["url"]
            # The same path and secret, on the other replica's address.
            on_b = b.base + link.removeprefix(f"{urlsplit(link).scheme}://{urlsplit(link).netloc}")
            async with httpx2.AsyncClient() as http:
                approved = await decide(http, on_b, await open_page(http, on_b), "approve")
    assert approved.status_code == 200 and "Order placed" in approved.text, approved.text
    assert len(vendor.orders) == 1


async def test_behind_a_round_robin_balancer_a_form_asked_by_one_replica_is_answered_on_another(
    tmp_path: Path, postgres: Postgres, vendor: Vendor
) -> None:
    """The 2026-07-28 form flow: the answer comes back with the request state another replica sealed."""
    balancer, human = RoundRobin(), Human()
    async with replicas(tmp_path, postgres, vendor, 2, confirmation="auto") as spread:
        balancer.replicas = [r.base for r in spread]
        with serve(balancer) as front:
            async with Client(f"{front}/mcp", elicitation_callback=human) as client:
                ids = await part_ids(client, "MS21042L3")
                args = {
                    "vendor": "skynet",
                    "po_number": "PO-REPLICA-FORM",
                    "items": [{"part_id": ids["MS21042L3"], "quantity": 2}],
                }
                calls_before = len(balancer.sent)
                placed = structured(await client.call_tool("place_order", args))
    assert placed["status"] == "placed", placed
    assert human.forms == 1 and len(vendor.orders) == 1
    # The call and its answered form went to both replicas.
    assert set(balancer.sent[calls_before:]) == {r.base for r in spread}
