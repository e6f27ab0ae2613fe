"""HTTP as an OAuth 2.1 protected resource (issue 11), through `parts-mcp serve` itself.

A real token issuer (tests/issuer.py) serves its JWKS on loopback; the server is the CLI in a
subprocess, bound to 0.0.0.0 with `[server.auth]`, ordering from the vendor simulators over real
HTTP, where every header the vendor receives is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.config import AuthSettings
from parts_mcp.sandbox import Sandbox

from conftest import confirm_and_place, error_text, free_port, part_ids, serve
from issuer import DROP, Issuer, new_rsa

pytestmark = pytest.mark.asyncio
META = "/.well-known/oauth-protected-resource/mcp"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
VENDOR_KEY = "SKYNET_AUTH_TEST_KEY"


class Recorder:
    """Every request's headers, as the vendor receives them on the wire."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
            self.seen.append(json.dumps([scope["path"], scope["query_string"].decode(), headers]))
        await self.app(scope, receive, send)


@dataclass
class Running:
    url: str  # where the test reaches it: http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text()


def write_config(path: Path, issuer: Issuer, port: int, vendor_url: str, **auth: Any) -> Path:
    keys = {
        "issuer": issuer.issuer,
        "audience": f"http://127.0.0.1:{port}/mcp",
        "jwks_url": issuer.jwks_url,
        "name_claim": "email",
        **auth,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    path.write_text(
        f'[server]\ntransport = "http"\nport = {port}\n\n[server.auth]\n{lines}\n\n'
        f'[guard]\nconfirmation = "token"\n\n[store]\npath = "{path.parent / "ledger.sqlite3"}"\n\n'
        f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{vendor_url}"\napi_key = "${{{VENDOR_KEY}}}"\nattempts = 1\n'
    )
    return path


def spawn(args: list[str], stderr: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as err:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            [sys.executable, "-m", "parts_mcp", "serve", *args], stderr=err, env=env
        )


def wait_until_served(running: Running) -> None:
    """Bounded poll: the metadata document answers once uvicorn listens."""
    deadline = time.monotonic() + 30
    with httpx2.Client() as http:
        while True:
            assert running.process.poll() is None, running.log()
            try:
                if http.get(running.url + META).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.05)


def start(tmp: Path, issuer: Issuer, vendor_url: str, *, host: str, **auth: Any) -> Iterator[Running]:
    port = free_port()
    config = write_config(tmp / "parts-mcp.toml", issuer, port, vendor_url, **auth)
    env = {**os.environ, VENDOR_KEY: Sandbox().vendors()["skynet"].settings["api_key"]}
    stderr = tmp / "stderr.txt"
    running = Running(f"http://127.0.0.1:{port}", spawn(["--config", str(config), "--host", host], stderr, env), stderr)
    try:
        wait_until_served(running)
        yield running
    finally:
        running.process.terminate()
        running.process.wait(10)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    found = Issuer()
    with serve(found.app()) as base:
        found.base = base
        yield found


@pytest.fixture(scope="module")
def vendor() -> Iterator[tuple[Sandbox, Recorder, str]]:
    sandbox = Sandbox()
    recorder = Recorder(sandbox.asgi_app())
    with serve(recorder) as base:
        yield sandbox, recorder, f"{base}/skynet/api/b2b"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, issuer: Issuer, vendor: tuple[Sandbox, Recorder, str]
) -> Iterator[Running]:
    """Exposed on every address, with [server.auth]; keys refetched on every unknown kid."""
    tmp = tmp_path_factory.mktemp("exposed")
    auth = {"allowed_hosts": ["parts.test"], "allowed_origins": ["https://chat.test"], "jwks_min_refresh_seconds": 0}
    for running in start(tmp, issuer, vendor[2], host="0.0.0.0", **auth):  # noqa: S104 - the point
        issuer.audience = f"{running.url}/mcp"
        yield running


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


async def post_initialize(server: Running, headers: dict[str, str], path: str = "/mcp") -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=server.url) as http:
        return await http.post(path, json=INITIALIZE, headers=headers)


@asynccontextmanager
async def sdk_client(server: Running, token: str) -> AsyncIterator[Client]:
    """The SDK client with the token in its HTTP client's headers (the caller owns and closes that client)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client,
    ):
        yield client


# --- 401: no valid token -------------------------------------------------------------------------

DEFECTS = {
    "no token": lambda i: None,
    "not a JWT": lambda i: "not-a-jwt",
    "wrong issuer": lambda i: i.mint(iss="https://evil.example/"),
    "wrong audience": lambda i: i.mint(aud="https://other.example/mcp"),
    "expired": lambda i: i.mint(exp=int(time.time()) - 120),
    "not yet valid": lambda i: i.mint(nbf=int(time.time()) + 600),
    "issued in the future": lambda i: i.mint(iat=int(time.time()) + 600),
    "no expiry": lambda i: i.mint(exp=DROP),
    "no subject": lambda i: i.mint(sub=DROP),
    "alg none": lambda i: i.unsigned(),
    "HS256 keyed with the public key": lambda i: i.hs256_with_public_key(),
    "signed by an unknown key": lambda i: i.mint(kid="rsa-1", key=new_rsa()),
    "unknown kid": lambda i: i.mint(kid="nobody", key=new_rsa()),
    "an algorithm its key does not declare": lambda i: i.mint(kid="rsa-1", alg="PS256"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
async def test_a_request_without_a_valid_token_gets_401_naming_the_metadata(
    server: Running, issuer: Issuer, defect: str
) -> None:
    token = DEFECTS[defect](issuer)
    answer = await post_initialize(server, bearer(token) if token else MCP_HEADERS)
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert f'resource_metadata="{server.url}{META}"' in challenge
    if token:
        assert token not in server.log()  # refusals say why, never the token


async def test_a_token_in_the_query_string_is_not_read(server: Running, issuer: Issuer) -> None:
    good = issuer.mint()
    answer = await post_initialize(server, MCP_HEADERS, path=f"/mcp?access_token={good}")
    assert answer.status_code == 401
    assert (await post_initialize(server, bearer(good))).status_code == 200  # the same token, in its header


async def test_a_token_without_parts_read_gets_403_insufficient_scope(server: Running, issuer: Issuer) -> None:
    answer = await post_initialize(server, bearer(issuer.mint(scope="orders:write")))
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert answer.json()["error"] == "insufficient_scope"


async def test_scopes_may_come_as_an_scp_list(server: Running, issuer: Issuer) -> None:
    answer = await post_initialize(server, bearer(issuer.mint(scope=DROP, scp=["parts:read"], kid="ec-1")))
    assert answer.status_code == 200, answer.text


async def test_the_protected_resource_metadata_names_issuer_resource_and_scopes(
    server: Running, issuer: Issuer
) -> None:
    async with httpx2.AsyncClient() as http:
        document = (await http.get(server.url + META)).json()
    assert document["resource"] == f"{server.url}/mcp"
    assert document["authorization_servers"] == [issuer.issuer]
    assert document["scopes_supported"] == ["parts:read", "orders:write", "orders:approve"]
    assert document["bearer_methods_supported"] == ["header"]  # never the query string


async def test_a_rotated_key_is_accepted_once_the_jwks_publishes_it(server: Running, issuer: Issuer) -> None:
    issuer.keys["rsa-2"] = new_rsa()
    token = issuer.mint(kid="rsa-2")
    assert (await post_initialize(server, bearer(token))).status_code == 401
    issuer.published.append("rsa-2")
    assert (await post_initialize(server, bearer(token))).status_code == 200


# --- scopes per tool, through the SDK client -----------------------------------------------------


async def test_a_read_only_token_looks_up_but_cannot_order(server: Running, issuer: Issuer) -> None:
    async with sdk_client(server, issuer.mint(scope="parts:read")) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        ids = await part_ids(client, "MS21042L3")
        refused = error_text(
            await client.call_tool(
                "place_order",
                {"vendor": "skynet", "po_number": "PO-SC-1", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
            )
        )
    # Listed all the same: the refusal names the missing scope, where an absent tool would only puzzle.
    assert "place_order" in tools
    assert refused.startswith("[INSUFFICIENT_SCOPE] place_order: needs scope orders:write; this token has parts:read.")


async def test_an_ordering_token_places_and_the_token_never_reaches_the_vendor(
    server: Running, issuer: Issuer, vendor: tuple[Sandbox, Recorder, str]
) -> None:
    sandbox, recorder, _ = vendor
    token = issuer.mint(scope="parts:read orders:write")
    before = len(recorder.seen)
    async with sdk_client(server, token) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-AUTH-1", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        placed = await confirm_and_place(client, args)
    assert placed["status"] == "placed" and placed["placed_by"] == "alice@example.com"
    assert [o["order_id"] for o in sandbox.skynet.orders if o["po_number"] == "PO-AUTH-1"] == [
        placed["order"]["order_id"]
    ]
    wire = recorder.seen[before:]
    assert any("/orders" in line for line in wire)  # the order really went over the wire
    signature = token.rsplit(".", 1)[1]
    assert not [line for line in wire if token in line or signature in line]
    assert token not in server.log()


# --- exposure: who may reach the server at all ---------------------------------------------------


@pytest.mark.parametrize("auth", [None, {"allowed_hosts": []}])
async def test_binding_beyond_loopback_without_auth_and_allowed_hosts_is_refused(
    tmp_path: Path, issuer: Issuer, auth: dict[str, Any] | None
) -> None:
    args = [sys.executable, "-m", "parts_mcp", "serve", "--transport", "http", "--host", "0.0.0.0"]  # noqa: S104
    env = {k: v for k, v in os.environ.items() if k != "PARTS_MCP_CONFIG"}
    if auth is not None:  # [server.auth] without allowed_hosts is not enough either
        config = write_config(tmp_path / "c.toml", issuer, free_port(), "http://127.0.0.1:9/x", **auth)
        args += ["--config", str(config)]
        env[VENDOR_KEY] = "sk_test_unused"
    with anyio.fail_after(60):
        done = await anyio.run_process(args, env=env, check=False)
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert "refusing to serve HTTP on 0.0.0.0" in stderr
    assert "[server.auth]" in stderr and "allowed_hosts" in stderr


HOSTILE = [
    ({"Host": "evil.example"}, 421),
    ({"Host": "0.0.0.0"}, 421),  # noqa: S104 - a Host header, not a bind
    ({"Host": "127.0.0.1:1"}, 421),  # loopback, but not our port
    ({"Host": "parts.test.evil.example"}, 421),
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "null"}, 403),
    ({"Origin": "http://127.0.0.1:1"}, 403),
]


@pytest.mark.parametrize("path", ["/mcp", "/approvals/00000000-0000-0000-0000-000000000000?k=x", META])
@pytest.mark.parametrize(("forged", "status"), HOSTILE)
async def test_a_forged_host_or_origin_is_refused_on_every_path(
    server: Running, issuer: Issuer, path: str, forged: dict[str, str], status: int
) -> None:
    # With a good token too: the Host rule comes first, whatever the credentials.
    headers = {**bearer(issuer.mint()), **forged}
    async with httpx2.AsyncClient(base_url=server.url) as http:
        answer = await http.request("POST" if path == "/mcp" else "GET", path, json=INITIALIZE, headers=headers)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    "allowed", [{"Host": "parts.test"}, {"Origin": "https://chat.test"}, {"Host": "localhost:{port}"}]
)
async def test_the_configured_host_and_origin_pass(server: Running, issuer: Issuer, allowed: dict[str, str]) -> None:
    port = server.url.rsplit(":", 1)[1]
    headers = {**bearer(issuer.mint()), **{k: v.format(port=port) for k, v in allowed.items()}}
    assert (await post_initialize(server, headers)).status_code == 200
    async with httpx2.AsyncClient(base_url=server.url) as http:
        page = await http.get("/approvals/00000000-0000-0000-0000-000000000000?k=x", headers=headers)
    assert page.status_code not in (403, 421)  # the page itself answers (an unknown approval)


async def test_unknown_kids_refetch_the_keys_at_most_once_per_interval(
    tmp_path: Path, issuer: Issuer, vendor: tuple[Sandbox, Recorder, str]
) -> None:
    """A flood of made-up key ids must not turn the server into a load generator against the issuer."""
    for running in start(tmp_path, issuer, vendor[2], host="127.0.0.1", jwks_min_refresh_seconds=3600):
        audience = f"{running.url}/mcp"
        assert (await post_initialize(running, bearer(issuer.mint(aud=audience)))).status_code == 200
        fetched = issuer.fetches
        for n in range(20):
            sprayed = issuer.mint(kid=f"spray-{n}", key=new_rsa(), aud=audience)
            assert (await post_initialize(running, bearer(sprayed))).status_code == 401
        assert issuer.fetches - fetched <= 1


async def test_the_documented_server_auth_example_is_valid_config() -> None:
    """config.example.toml's commented [server.auth] block, uncommented, is what the loader accepts."""
    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    block = text[text.index("# [server.auth]") : text.index("\n[guard]")]
    lines = [line.removeprefix("# ").split("  #")[0] for line in block.splitlines() if " = " in line]
    settings = AuthSettings.model_validate(tomllib.loads("\n".join(lines)))
    assert settings.allowed_hosts == ["parts.example.com"] and settings.name_claim == "email"
