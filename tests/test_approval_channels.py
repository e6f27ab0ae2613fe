"""The channels bring an approval link to a person: the browser, the approvers' webhook, URL elicitation,
and in the sandbox the server's log. Each is proven against the real thing on loopback: a webhook
receiver over HTTP, a $BROWSER command, the stdio listener serving the page."""

from __future__ import annotations

import logging
import socket
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult, ElicitRequestURLParams, ElicitResult
from pydantic import SecretStr

from parts_mcp import logs
from parts_mcp.approvals.channels import (
    BROWSER,
    ELICITATION,
    SANDBOX_LOG,
    WEBHOOK,
    Channels,
    Delivery,
    PageUnavailable,
)
from parts_mcp.config import ApprovalSettings, ServerSettings
from parts_mcp.domain import Money, OrderLine, Preview, PriceBasis
from parts_mcp.orders.approvals import ApprovalLink, ApprovalRequest, new_secret
from parts_mcp.sandbox import Sandbox

from approvers import HIDDEN, Receiver, decide, open_page
from conftest import World, free_port, part_ids, serve, structured

pytestmark = pytest.mark.asyncio

HTTP = ServerSettings(transport="http", host="127.0.0.1", port=8765)
STDIO = ServerSettings(transport="stdio")


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without a browser, whatever the developer's desktop has."""
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY", "TERM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_browser: None) -> Path:
    """$BROWSER is a command that writes the URL it was given to a file (and exits 0): no real browser opens."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > '{opened}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(script))
    return opened


def approval(*, sandbox: bool = False) -> tuple[ApprovalRequest, ApprovalLink]:
    line = OrderLine.priced(
        part_id="sk-1", part_number="MS20995C32", name="Safety wire", quantity=3, unit_price=Money.of("12.40", "USD")
    )
    total = Money.of("37.20", "USD")
    preview = Preview(
        vendor="skynet",
        po_number="PO-4711",
        lines=[line],
        subtotal=total,
        total=total,
        currency="USD",
        price_basis=PriceBasis.CONTRACT,
        approval_limit=Money.of("90.92", "USD"),
    )
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    request = ApprovalRequest(
        approval_id="apr_1",
        vendor="skynet",
        display_name="Skynet Parts",
        po_number="PO-4711",
        preview=preview,
        warnings=[],
        requested_by="test-client/1.0",
        requested_at=now,
        expires_at=now + timedelta(minutes=15),
        state="awaiting",
        sandbox=sandbox,
    )
    return request, ApprovalLink("apr_1", new_secret())


def channels(
    server: ServerSettings = HTTP, *, sandbox: bool = False, webhook: str | None = None, **settings: Any
) -> Channels:
    settings.setdefault("open_browser", False)
    approvals = ApprovalSettings(webhook_url=SecretStr(webhook) if webhook else None, **settings)
    return Channels(approvals, server, sandbox=sandbox, desk=lambda: None)


def said(delivery: Delivery) -> str:
    return " ".join([*delivery.reached, *delivery.notes])


# -- the webhook -----------------------------------------------------------------------------------


async def test_the_webhook_is_retried_after_a_503_and_receives_the_order_and_its_link() -> None:
    receiver = Receiver(503)
    request, link = approval()
    with serve(receiver.app) as base:
        delivery = await channels(webhook=f"{base}/hook").deliver(request, link)
    assert delivery == Delivery(reached=[WEBHOOK], notes=[])
    assert len(receiver.posts) == 2 and receiver.posts[0] == receiver.posts[1]
    message = receiver.posts[1]
    url = f"http://127.0.0.1:8765/approvals/apr_1?k={link.secret}"
    assert message["url"] == url and url in message["text"]
    assert {k: message[k] for k in ("approval_id", "vendor", "po_number", "requested_by", "expires_at")} == {
        "approval_id": "apr_1",
        "vendor": "skynet",
        "po_number": "PO-4711",
        "requested_by": "test-client/1.0",
        "expires_at": "2026-05-01T12:15:00+00:00",
    }
    assert message["total"] == {"amount": "37.20", "currency": "USD"}
    assert message["approval_limit"] == {"amount": "90.92", "currency": "USD"}
    assert [(x["part_number"], x["quantity"], x["line_total"]["amount"]) for x in message["lines"]] == [
        ("MS20995C32", 3, "37.20")
    ]


@pytest.mark.parametrize(
    ("statuses", "said_"), [((503, 503, 503), "3 attempts (HTTP 503)"), ((400,), "1 attempt (HTTP 400)")]
)
async def test_a_webhook_that_does_not_take_the_request_is_a_note_naming_attempts_and_status(
    statuses: tuple[int, ...], said_: str
) -> None:
    receiver = Receiver(*statuses)
    request, link = approval()
    with serve(receiver.app) as base:
        delivery = await channels(webhook=f"{base}/hook?token=hook-secret-1").deliver(request, link)
    assert delivery.reached == [] and len(receiver.posts) == len(statuses)
    assert delivery.notes == [f"the approvers' webhook did not accept the request after {said_}; nobody was told"]


async def test_an_unreachable_webhook_is_a_note_without_its_address_or_the_link() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    request, link = approval()
    delivery = await channels(webhook=f"http://127.0.0.1:{port}/hook").deliver(request, link)
    assert delivery.reached == []
    assert delivery.notes == [
        "the approvers' webhook did not accept the request after 3 attempts (ConnectError); nobody was told"
    ]
    assert str(port) not in said(delivery) and link.secret not in said(delivery)


# -- the browser -----------------------------------------------------------------------------------


async def test_open_browser_gives_the_page_url_to_the_browser_command(browser: Path) -> None:
    request, link = approval()
    delivery = await channels(open_browser=True).deliver(request, link)
    assert delivery == Delivery(reached=[BROWSER], notes=[])
    assert await anyio.Path(browser).read_text() == f"http://127.0.0.1:8765/approvals/apr_1?k={link.secret}"


async def test_a_browser_command_that_fails_is_a_note(monkeypatch: pytest.MonkeyPatch, no_browser: None) -> None:
    monkeypatch.setenv("BROWSER", "false")
    request, link = approval()
    delivery = await channels(open_browser=True).deliver(request, link)
    assert delivery == Delivery(
        reached=[], notes=["the browser on the server's machine did not open the approval page"]
    )


async def test_no_browser_is_said_only_when_no_other_channel_reached_anyone(no_browser: None) -> None:
    request, link = approval()
    alone = await channels(open_browser=True).deliver(request, link)
    assert alone.reached == [] and "no browser was found" in alone.notes[0]
    receiver = Receiver()
    with serve(receiver.app) as base:
        beside_webhook = await channels(open_browser=True, webhook=f"{base}/hook").deliver(request, link)
    assert beside_webhook == Delivery(reached=[WEBHOOK], notes=[])


# -- which channels can reach a person -------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_browser", "has_browser", "webhook", "url_elicitation", "sandbox", "reachable"),
    [
        (True, False, False, False, False, False),  # a server without a browser, nothing else
        (False, True, False, False, False, False),  # a browser, but opening it is switched off
        (True, True, False, False, False, True),
        (False, False, True, False, False, True),
        (False, False, False, True, False, True),
        (False, False, False, False, True, True),  # the sandbox's log note
    ],
)
async def test_can_reach_is_true_when_any_channel_could_reach_a_person(
    open_browser: bool,
    has_browser: bool,
    webhook: bool,
    url_elicitation: bool,
    sandbox: bool,
    reachable: bool,
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("browser" if has_browser else "no_browser")
    built = channels(
        open_browser=open_browser, sandbox=sandbox, webhook="https://chat.example.com/h" if webhook else None
    )
    assert built.can_reach(url_elicitation=url_elicitation) is reachable


# -- URL elicitation and the sandbox ---------------------------------------------------------------


async def test_url_elicitation_shows_the_link_with_a_summary_and_a_dismissal_is_a_note() -> None:
    request, link = approval()
    shown: list[tuple[str, str]] = []

    async def client_shows(message: str, url: str) -> bool:
        shown.append((message, url))
        return len(shown) == 1  # the user opens the first link and dismisses the second

    opened = await channels().deliver(request, link, elicit_url=client_shows)
    dismissed = await channels().deliver(request, link, elicit_url=client_shows)
    assert opened == Delivery(reached=[ELICITATION], notes=[])
    assert dismissed == Delivery(reached=[], notes=["the user dismissed the approval link their client showed"])
    message, url = shown[0]
    assert url == f"http://127.0.0.1:8765/approvals/apr_1?k={link.secret}"
    assert "PO-4711" in message and "Skynet Parts" in message and "37.20 USD" in message and link.secret not in message


async def test_a_client_that_cannot_show_the_link_is_a_note_without_its_error_text() -> None:
    request, link = approval()

    async def client_fails(message: str, url: str) -> bool:
        raise RuntimeError(f"cannot show {url}")

    delivery = await channels().deliver(request, link, elicit_url=client_fails)
    assert delivery == Delivery(reached=[], notes=["the client could not show the approval link (RuntimeError)"])


async def test_in_the_sandbox_a_link_nothing_else_delivered_is_logged_whole_on_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs.add_secrets(["configured-secret-for-the-sandbox-test"])  # the log knows secrets: the link is none
    request, link = approval(sandbox=True)
    with caplog.at_level(logging.WARNING, logger="parts_mcp.approvals"):
        delivery = await channels(sandbox=True).deliver(request, link)
    assert delivery == Delivery(reached=[SANDBOX_LOG], notes=[])
    [record] = [r for r in caplog.records if r.name == "parts_mcp.approvals.channels"]
    line = logs.SafeFormatter(logs.FORMAT).format(record)
    assert record.levelno == logging.WARNING and "SANDBOX" in line
    assert line.endswith(f"open http://127.0.0.1:8765/approvals/apr_1?k={link.secret}")


async def test_outside_the_sandbox_nothing_logs_the_link(caplog: pytest.LogCaptureFixture) -> None:
    request, link = approval()
    with caplog.at_level(logging.DEBUG):
        delivery = await channels(webhook="http://127.0.0.1:9/hook").deliver(request, link)
    assert delivery.reached == []
    assert caplog.records and all(link.secret not in r.getMessage() for r in caplog.records)


# -- where links start -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "public_url", "base"),
    [
        (HTTP, None, "http://127.0.0.1:8765"),
        (ServerSettings(transport="http", host="0.0.0.0", port=9000), None, "http://127.0.0.1:9000"),  # noqa: S104
        (ServerSettings(transport="http", host="::1", port=9000), None, "http://[::1]:9000"),
        (ServerSettings(transport="http", host="parts.internal", port=80), None, "http://parts.internal:80"),
        (HTTP, "https://parts.example.com/", "https://parts.example.com"),
    ],
)
async def test_over_http_links_start_at_public_url_else_the_servers_own_address(
    server: ServerSettings, public_url: str | None, base: str
) -> None:
    assert await channels(server, public_url=public_url).base_url() == base


async def test_over_stdio_the_loopback_listener_starts_on_a_free_port_serves_the_page_and_stops() -> None:
    built = channels(STDIO)
    async with built.running():
        base = await built.base_url()
        assert await built.base_url() == base  # started once
        port = urlsplit(base).port
        assert base == f"http://127.0.0.1:{port}" and port
        async with httpx2.AsyncClient() as http:
            page = await http.get(f"{base}/approvals/apr_1?k=anything")
        assert page.status_code == 503 and "parts-mcp is still starting" in page.text  # the page app, no desk yet
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient() as http:
            await http.get(f"{base}/approvals/apr_1?k=anything")


async def test_over_stdio_public_url_names_the_links_and_the_listener_still_serves_on_the_configured_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    built = channels(STDIO, public_url="https://approve.example.com", port=port)
    async with built.running():
        assert await built.base_url() == "https://approve.example.com"
        async with httpx2.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{port}/approvals/apr_1?k=x")
        assert page.status_code == 503


async def test_a_taken_listener_port_is_a_note_and_no_link_goes_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    request, link = approval()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        built = channels(STDIO, sandbox=True, port=port)
        async with built.running():
            with pytest.raises(PageUnavailable):
                await built.base_url()
            delivery = await built.deliver(request, link)
    assert delivery.reached == [] and delivery.notes == [
        f"the approval page cannot listen on 127.0.0.1:{port} (Address already in use); set [approvals] port to a "
        "free port, or 0"
    ]
    assert all(link.secret not in r.getMessage() for r in caplog.records)


async def test_over_stdio_no_link_is_made_while_the_server_is_not_running() -> None:
    with pytest.raises(PageUnavailable):
        await channels(STDIO).base_url()


# -- end to end: place_order through the SDK client, the link through the channels -----------------


def approval_world(tmp_path: Path, approvals: ApprovalSettings) -> World:
    """A sandbox world whose orders a person approves out of band, over the channels configured."""
    world = World(tmp_path, confirmation="approval")
    return world.reconfigured(approvals=approvals)


async def order_for_approval(client: Client, po_number: str) -> CallToolResult:
    ids = await part_ids(client, "MS21042L3")
    items = [{"part_id": ids["MS21042L3"], "quantity": 2}]
    return await client.call_tool("place_order", {"vendor": "skynet", "po_number": po_number, "items": items})


async def test_the_webhooks_link_approves_the_order_once_and_the_model_never_holds_it(tmp_path: Path) -> None:
    receiver = Receiver(503)
    with serve(receiver.app) as hook:
        world = approval_world(tmp_path, ApprovalSettings(open_browser=False, webhook_url=SecretStr(f"{hook}/hook")))
        async with Client(world.server) as client:
            result = await order_for_approval(client, "PO-HOOK-1")
            waiting = structured(result)
            assert waiting["status"] == "awaiting_approval" and waiting["sent_to"] == [WEBHOOK]
            url = receiver.posts[-1]["url"]
            secret = parse_qs(urlsplit(url).query)["k"][0]
            assert secret not in result.model_dump_json() and "/approvals/" not in result.model_dump_json()
            assert world.skynet_orders == []
            async with httpx2.AsyncClient() as http:
                form = await open_page(http, url)
                approved = await decide(http, url, form, "approve")
                assert approved.status_code == 200 and "Order placed" in approved.text
                assert len(world.skynet_orders) == 1
                reopened = await http.get(url)
                replayed = await decide(http, url, form, "approve")
            assert reopened.status_code == 409 and "Already decided" in reopened.text
            assert not HIDDEN.findall(reopened.text)  # no decision form any more
            assert replayed.status_code == 409
            again = structured(await order_for_approval(client, "PO-HOOK-1"))
    assert again["status"] == "placed"
    assert len(receiver.posts) == 2 and len(world.skynet_orders) == 1
    world.ledger.close()


async def test_a_legacy_client_with_url_elicitation_shows_the_link_to_the_user(tmp_path: Path) -> None:
    shown: list[ElicitRequestURLParams] = []

    async def user_sees(context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams)  # never a form the model could fill in
        shown.append(params)
        return ElicitResult(action="accept")

    world = approval_world(tmp_path, ApprovalSettings(open_browser=False))
    async with Client(world.server, mode="legacy", elicitation_callback=user_sees) as client:
        result = await order_for_approval(client, "PO-URL-1")
        assert structured(result)["sent_to"] == [ELICITATION]
        [params] = shown
        assert parse_qs(urlsplit(params.url).query)["k"][0] not in result.model_dump_json()
        async with httpx2.AsyncClient() as http:
            decided = await decide(http, params.url, await open_page(http, params.url), "approve")
    assert decided.status_code == 200 and len(world.skynet_orders) == 1
    world.ledger.close()


async def until_serving(base: str) -> None:
    """Poll (bounded) until the subprocess answers HTTP."""
    async with httpx2.AsyncClient() as http:
        with anyio.fail_after(30):
            while True:
                try:
                    await http.get(f"{base}/approvals/none")
                    return
                except httpx2.ConnectError:
                    await anyio.sleep(0.05)


async def test_over_http_the_cli_serves_the_page_beside_mcp_at_the_port_really_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`parts-mcp serve --transport http --port P`: links name P, the page's form POST passes the JSON-RPC
    screen, /mcp keeps its Host check, and no link reaches the server's log."""
    sandbox, receiver, port = Sandbox(), Receiver(), free_port()
    with serve(sandbox.asgi_app()) as simulators, serve(receiver.app) as hook:
        config = tmp_path / "parts-mcp.toml"
        config.write_text(
            '[server]\ntransport = "http"\nport = 8765\n\n[guard]\nconfirmation = "approval"\n\n'
            '[approvals]\nopen_browser = false\nwebhook_url = "${APPROVAL_HOOK}"\n\n'
            f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n\n'
            f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{simulators}/skynet/api/b2b"\n'
            'api_key = "${SKYNET_KEY}"\n'
        )
        monkeypatch.setenv("APPROVAL_HOOK", f"{hook}/hook")
        monkeypatch.setenv("SKYNET_KEY", sandbox.vendors()["skynet"].settings["api_key"])
        command = [sys.executable, "-m", "parts_mcp", "serve", "--config", str(config), "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        with (tmp_path / "stderr.txt").open("w+") as stderr:
            server = await anyio.open_process(command, stderr=stderr, stdout=subprocess.DEVNULL)
            try:
                await until_serving(base)
                async with Client(f"{base}/mcp") as client:
                    waiting = structured(await order_for_approval(client, "PO-HTTP-APPROVE-1"))
                assert waiting["status"] == "awaiting_approval" and waiting["sent_to"] == [WEBHOOK]
                url = receiver.posts[0]["url"]
                assert url.startswith(f"{base}/approvals/")
                async with httpx2.AsyncClient() as http:
                    approved = await decide(http, url, await open_page(http, url), "approve")
                    rebound = await http.post(f"{base}/mcp", json={}, headers={"Host": "evil.example"})
            finally:
                server.terminate()
                with anyio.fail_after(10):
                    await server.wait()
            stderr.seek(0)
            log = stderr.read()
    assert approved.status_code == 200 and "Order placed" in approved.text
    assert len(sandbox.skynet.orders) == 1
    assert rebound.status_code == 421
    assert parse_qs(urlsplit(url).query)["k"][0] not in log
