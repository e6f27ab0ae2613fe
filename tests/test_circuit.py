"""Issue 9, point 7: a retry budget per vendor. A vendor failing on its side is not hammered.

After `circuit_failures` (5) server-side failures in a row the vendor's circuit opens: for
`circuit_cooldown` (30 s) calls fail at once with VENDOR_UNAVAILABLE and the seconds left, sending
nothing; then one probe goes, and its answer closes the circuit (its failure doubles the cool-down).
Retries spend a budget each call refills by `retry_budget` (0.1): over a failing window the
attempts stay within about 1.1 times the calls. Ground truth is what the simulators received. No
test sleeps: the breakers read a clock the test moves (`breaker_clock`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from parts_mcp.config import ConfigError, load
from parts_mcp.sandbox import ManualClock, Sandbox
from parts_mcp.server.app import build_server
from parts_mcp.vendors.base import HttpPolicy, breaker_clock

from conftest import World, error_text, part_ids, serve, structured

pytestmark = pytest.mark.asyncio

QUERY = {"query": ["MS21042L3"], "vendors": ["skynet"]}


def breaker() -> ManualClock:
    """The clock the vendors' breakers read in this test (each test runs in its own context)."""
    clock = ManualClock(0.0)
    breaker_clock.set(clock.now)
    return clock


def sent(world: World, path: str) -> int:
    return sum(1 for r in world.sandbox.skynet.requests if r.path == path)


def confirmation(preview: dict[str, Any]) -> dict[str, str]:
    """The arguments that confirm a token preview at its total, as a well-behaved model sends them."""
    total = preview["preview"]["total"]
    return {
        "confirmation_token": preview["confirmation_token"],
        "confirmed_total": f"{total['amount']} {total['currency']}",
    }


def everything(result: CallToolResult) -> str:
    return json.dumps(result.structured_content) + "".join(
        block.text for block in result.content if isinstance(block, TextContent)
    )


class Outputs:
    """Every result a test saw, for the canary scan: the vendor's API key must never reach the model."""

    def __init__(self, world: World) -> None:
        self.key = world.sandbox.vendors()["skynet"].settings["api_key"]
        self.seen: list[str] = []

    def __call__(self, result: CallToolResult) -> str:
        text = everything(result)
        self.seen.append(text)
        return text

    def data(self, result: CallToolResult) -> dict[str, Any]:
        self(result)
        return structured(result)

    def clean(self) -> bool:
        return all(self.key not in text for text in self.seen)


async def open_skynet(client: Client, world: World, outputs: Outputs) -> None:
    """Fail Skynet's catalog until its circuit opens: five failures in a row, however the budget spreads
    them over calls (each call sends at least once until the circuit is open)."""
    before = sent(world, "/catalog")
    world.sandbox.skynet.faults.arm("upstream_error", 100)
    for _ in range(5):
        outputs(await client.call_tool("lookup_parts", QUERY))
    assert sent(world, "/catalog") - before == 5


async def test_ten_lookups_while_skynet_fails_send_five_requests_then_fail_fast(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    breaker()
    outputs = Outputs(world)
    world.sandbox.skynet.faults.arm("upstream_error", 100)
    async with Client(world.server) as client:
        texts = [outputs(await client.call_tool("lookup_parts", QUERY)) for _ in range(10)]
    # The fifth failure in a row opened the circuit; nothing more was sent (unbudgeted: 30 requests).
    assert sent(world, "/catalog") == 5 <= 1.1 * 10
    assert all("UPSTREAM_ERROR" in text for text in texts[:3])
    for text in texts[3:]:
        assert "VENDOR_UNAVAILABLE" in text and "for the next 30s" in text and "was not sent" in text
    assert outputs.clean() and outputs.key not in caplog.text
    assert "skynet is failing on its side: nothing is sent to it for 30s" in caplog.text


async def test_after_the_cooldown_one_probe_goes_and_a_healthy_answer_closes_the_circuit(world: World) -> None:
    clock = breaker()
    outputs = Outputs(world)
    async with Client(world.server) as client:
        await open_skynet(client, world, outputs)
        clock.advance(29.5)
        held = outputs(await client.call_tool("lookup_parts", QUERY))
        assert "VENDOR_UNAVAILABLE" in held and "for the next 1s" in held
        assert sent(world, "/catalog") == 5
        world.sandbox.skynet.faults.clear()
        clock.advance(0.5)
        probe = outputs.data(await client.call_tool("lookup_parts", QUERY))
        assert [p["part_number"] for p in probe["parts"]] == ["MS21042L3"] and probe["vendor_errors"] == []
        assert sent(world, "/catalog") == 6
        for _ in range(3):
            assert outputs.data(await client.call_tool("lookup_parts", QUERY))["vendor_errors"] == []
    assert sent(world, "/catalog") == 9
    assert outputs.clean()


async def test_a_failed_probe_reopens_the_circuit_for_twice_as_long(world: World) -> None:
    clock = breaker()
    outputs = Outputs(world)
    async with Client(world.server) as client:
        await open_skynet(client, world, outputs)
        for cooldown in (30, 60, 120):
            clock.advance(cooldown)
            # The probe reaches the vendor (once: a probe is not retried) and says what the vendor said.
            assert "UPSTREAM_ERROR" in outputs(await client.call_tool("lookup_parts", QUERY))
            held = outputs(await client.call_tool("lookup_parts", QUERY))
            assert "VENDOR_UNAVAILABLE" in held and f"for the next {cooldown * 2}s" in held
        assert sent(world, "/catalog") == 5 + 3
        world.sandbox.skynet.faults.clear()
        clock.advance(240)
        assert outputs.data(await client.call_tool("lookup_parts", QUERY))["vendor_errors"] == []
        # Closed again, and back to the configured cool-down the next time.
        await open_skynet(client, world, outputs)
        held = outputs(await client.call_tool("lookup_parts", QUERY))
        assert "for the next 30s" in held
    assert outputs.clean()


async def test_orders_skynet_cannot_place_are_retried_only_within_the_budget(world: World) -> None:
    """Finding 7: 10 orders cost 30 POSTs. Skynet's catalog still answers, so the circuit stays closed:
    the budget alone keeps the retries to the one call's worth it starts with plus 0.1 per call."""
    breaker()
    outputs = Outputs(world)
    skynet = world.sandbox.skynet
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        skynet.faults.arm("order_failed", 100)
        for n in range(10):
            args = {
                "vendor": "skynet",
                "po_number": f"PO-CB-{n}",
                "items": [{"part_id": ids["MS21042L3"], "quantity": 1}],
            }
            preview = outputs.data(await client.call_tool("place_order", args))
            confirm = confirmation(preview)
            result = await client.call_tool("place_order", {**args, **confirm})
            outputs(result)
            assert "Nothing was ordered" in error_text(result)
    posts = [r for r in skynet.requests if r.path == "/orders"]
    orders = len({r.idempotency_key for r in posts})  # one key per order: the other POSTs are its retries
    calls = orders + sent(world, "/catalog")  # every catalog call succeeded at its first attempt
    assert orders == 10 and skynet.orders == []
    # Attempts within 1.1 times the calls, plus the one call's retries the budget starts with.
    assert len(posts) + sent(world, "/catalog") <= 1.1 * calls + 2
    assert len(posts) < 30 / 2
    assert outputs.clean()


async def test_an_open_circuit_holds_an_order_back_and_says_nothing_was_ordered(world: World) -> None:
    clock = breaker()
    outputs = Outputs(world)
    skynet = world.sandbox.skynet
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-CB-HELD", "items": [{"part_id": ids["MS21042L3"], "quantity": 2}]}
        preview = outputs.data(await client.call_tool("place_order", args))
        confirm = confirmation(preview)
        await open_skynet(client, world, outputs)
        catalog = sent(world, "/catalog")
        held = await client.call_tool("place_order", {**args, **confirm})
        text = error_text(held)
        outputs(held)
        assert text.startswith("[VENDOR_UNAVAILABLE] vendor: ")
        assert "for the next 30s" in text and "Nothing was ordered" in text
        assert sent(world, "/orders") == 0 and sent(world, "/catalog") == catalog
        skynet.faults.clear()
        clock.advance(30)
        preview = outputs.data(await client.call_tool("place_order", args))
        confirm = confirmation(preview)
        placed = outputs.data(await client.call_tool("place_order", {**args, **confirm}))
    assert placed["status"] == "placed"
    assert len(skynet.orders) == 1 and sent(world, "/orders") == 1
    assert outputs.clean()


async def test_a_spent_budget_never_turns_a_lost_answer_into_nothing_ordered(world: World) -> None:
    """The budget stops a resend, never a safety rule: a lost answer stays an unknown outcome."""
    breaker()
    outputs = Outputs(world)
    skynet = world.sandbox.skynet
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        skynet.faults.arm("upstream_error", 3)
        assert "UPSTREAM_ERROR" in outputs(await client.call_tool("lookup_parts", QUERY))  # spends the budget
        args = {"vendor": "skynet", "po_number": "PO-CB-LOST", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = outputs.data(await client.call_tool("place_order", args))
        confirm = confirmation(preview)
        skynet.faults.arm("drop_after_commit")
        lost = outputs.data(await client.call_tool("place_order", {**args, **confirm}))
        assert lost["status"] == "outcome_unknown"
        assert sent(world, "/orders") == 1  # the budget held the resend back
        again = outputs.data(await client.call_tool("place_order", args))
    # The advised repeat resends under the same key: Skynet answers with the one order it has.
    assert again["status"] == "placed" and len(skynet.orders) == 1
    assert again["order"]["order_id"] == skynet.orders[0]["order_id"]
    assert outputs.clean()


async def test_a_failing_vendor_does_not_slow_the_others(world: World) -> None:
    breaker()
    outputs = Outputs(world)
    skynet = world.sandbox.skynet
    async with Client(world.server) as client:
        await open_skynet(client, world, outputs)
        skynet.faults.latency = 60.0  # a request to Skynet now hangs past the look-up deadline
        with anyio.fail_after(10):
            result = await client.call_tool("lookup_parts", {"query": ["SKF-6204", "MS21042L3"]})
    found = structured(result)
    outputs(result)
    assert any(p["vendor"] == "factoryai" and p["part_number"] == "SKF-6204" for p in found["parts"])
    [failure] = [e for e in found["vendor_errors"] if e["vendor"] == "skynet"]
    assert failure["code"] == "VENDOR_UNAVAILABLE"
    assert "VENDOR_UNAVAILABLE" in everything(result) and "for the next 30s" in everything(result)
    assert sent(world, "/catalog") == 5
    assert outputs.clean()


def section(tmp_path: Path, base_url: str, http_keys: str) -> Path:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "ledger.sqlite3"}"\n\n'
        f'[vendors.skynet]\nkind = "skynet"\nbase_url = "{base_url}"\napi_key = "${{SKYNET_TEST_KEY}}"\n{http_keys}'
    )
    return path


async def test_the_circuit_keys_of_a_vendor_section_set_its_breaker_and_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = breaker()
    sandbox = Sandbox()
    key = sandbox.vendors()["skynet"].settings["api_key"]
    monkeypatch.setenv("SKYNET_TEST_KEY", key)
    keys = "attempts = 2\ncircuit_failures = 2\ncircuit_cooldown = 7.0\nretry_budget = 0.0\n"
    with serve(sandbox.asgi_app()) as base:
        settings = load(section(tmp_path, f"{base}/skynet/api/b2b", keys))
        faults = sandbox.skynet.faults
        texts: list[str] = []

        async def lookup() -> str:
            texts.append(everything(await client.call_tool("lookup_parts", QUERY)))
            return texts[-1]

        async with Client(build_server(settings)) as client:
            faults.arm("upstream_error", 100)
            assert "UPSTREAM_ERROR" in await lookup()  # two attempts, two failures in a row: open
            held = await lookup()
            assert "VENDOR_UNAVAILABLE" in held and "for the next 7s" in held
            clock.advance(7)
            assert "UPSTREAM_ERROR" in await lookup()  # the probe
            assert "for the next 14s" in await lookup()
            faults.clear()
            clock.advance(14)
            assert "VENDOR_UNAVAILABLE" not in await lookup()  # the probe closes it
            # retry_budget = 0: the retry the bucket started with is spent and never earned back.
            faults.arm("upstream_error")
            assert "UPSTREAM_ERROR" in await lookup()
    assert sum(1 for r in sandbox.skynet.requests if r.path == "/catalog") == 2 + 1 + 1 + 1
    assert all(key not in text for text in texts)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("circuit_failures = 0", "circuit_failures"),
        ("circuit_cooldown = 0", "circuit_cooldown"),
        ("circuit_cooldown = 601", "circuit_cooldown"),
        ("retry_budget = 1.5", "retry_budget"),
        ("retry_budget = -0.1", "retry_budget"),
    ],
)
async def test_circuit_keys_out_of_bounds_are_refused_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, key: str
) -> None:
    monkeypatch.setenv("SKYNET_TEST_KEY", "sk_live_example_only")
    with pytest.raises(ConfigError, match=key):
        load(section(tmp_path, "https://api.skynetparts.com/api/b2b", line + "\n"))


async def test_the_circuit_keys_are_documented_with_their_defaults() -> None:
    policy = HttpPolicy()
    assert (policy.circuit_failures, policy.circuit_cooldown, policy.retry_budget) == (5, 30.0, 0.1)
    root = Path(__file__).parent.parent
    example, readme = (root / "config.example.toml").read_text(), (root / "README.md").read_text()
    for line in ("circuit_failures = 5", "circuit_cooldown = 30.0", "retry_budget = 0.1"):
        assert line in example
        assert f"`{line.split()[0]}`" in readme
