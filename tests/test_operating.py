"""The operator's view (issue 13): log levels and JSON lines, one line per order decision, health,
readiness and Prometheus metrics over real HTTP, and a span per vendor call."""

from __future__ import annotations

import contextlib
import html
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parts_mcp import logs
from parts_mcp.cli import http_app
from parts_mcp.config import ApprovalSettings, AuthSettings, ServerSettings
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server

from conftest import World, confirm_and_place, error_text, free_port, part_ids, serve, structured

pytestmark = pytest.mark.asyncio

DECISIONS = "parts_mcp.orders.decisions"
HOST = {"Host": "127.0.0.1:8765"}  # the configured port: the Host check compares against it
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def decisions(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == DECISIONS]


# ------------------------------------------------------------------------------------------ JSON logs


async def test_json_lines_parse_stay_one_line_and_blank_secrets() -> None:
    key = "sk-live-4f9a2b7c1d8e"
    logs.add_secrets([key])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("parts_mcp.test_operating")
    logger.addHandler(handler)
    hostile = f"vendor said {key}\r\n# SYSTEM\x1b[2J\u2028forged\x7f"
    try:
        logger.warning("answer: %s", hostile, extra={"vendor": "skynet", "said": hostile, "nested": {"k": [key]}})
        try:
            raise ValueError(f"unreadable: {key}\nsecond line")
        except ValueError:
            logger.exception("reading failed")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert {"ts", "level", "logger", "msg"} <= first.keys() and first["level"] == "WARNING"
    assert first["logger"] == "parts_mcp.test_operating" and first["vendor"] == "skynet"
    assert "\r\n# SYSTEM" in first["msg"] and "\u2028forged" in first["said"]  # kept, as escapes on the wire
    assert "Traceback (most recent call last)" in second["exc"] and "ValueError: unreadable" in second["exc"]
    assert key not in out.getvalue() and "sk-live" not in json.dumps([first, second])
    assert all(line.isascii() and line.isprintable() for line in lines)


# --------------------------------------------------------------------------------- order decisions


async def test_one_info_line_per_decision_through_a_token_order(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        items = [{"part_id": ids["MS21042L3"], "quantity": 2}]
        malformed = await client.call_tool("place_order", {"vendor": "skynet", "po_number": "!", "items": items})
        args = {"vendor": "skynet", "po_number": "PO-OPS-1", "items": items}
        placed = await confirm_and_place(client, args)
        again = structured(await client.call_tool("place_order", args))  # answered from the ledger
    assert error_text(malformed).startswith("[PO_MALFORMED]")
    assert placed["status"] == "placed" and again["status"] == "placed"
    lines = decisions(caplog)
    assert [r.__dict__["decision"] for r in lines] == ["refused", "previewed", "sent", "placed"]
    assert all(r.levelno == logging.INFO for r in lines)
    refused, previewed, sent, done = (r.__dict__ for r in lines)
    assert refused["reason"] == "PO_MALFORMED" and refused["po_number"] == "!"
    assert previewed["total"] == "24.80 USD" and previewed["ref"]
    assert sent["ref"] == done["ref"] and sent["vendor"] == done["vendor"] == "skynet"
    assert done["po_number"] == "PO-OPS-1" and done["total"] == f"{placed['order']['total']['amount']} USD"
    assert all(r.__dict__["principal"] for r in lines)
    # The boundary does not log the refusal a second time, and no line carries a payload.
    assert not [r for r in caplog.records if "refused" in r.getMessage() and r.name != DECISIONS]
    assert not [r for r in caplog.records if ids["MS21042L3"] in r.getMessage()]


async def test_a_vendor_refusal_is_one_line_with_its_total_and_reference(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        args = {"vendor": "skynet", "po_number": "PO-OPS-2", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]}
        preview = structured(await client.call_tool("place_order", args))
        world.sandbox.skynet.set_stock("MS21042L3", 0)
        total = preview["preview"]["total"]
        refused = await client.call_tool(
            "place_order",
            {
                **args,
                "confirmation_token": preview["confirmation_token"],
                "confirmed_total": f"{total['amount']} {total['currency']}",
            },
        )
    assert "Nothing was ordered" in error_text(refused)
    assert [r.__dict__["decision"] for r in decisions(caplog)] == ["previewed", "sent", "refused"]
    last = decisions(caplog)[-1].__dict__
    assert last["reason"] == "INSUFFICIENT_INVENTORY" and last["total"] == "12.40 USD" and last["ref"]
    assert not [r for r in caplog.records if "refused" in r.getMessage() and r.name != DECISIONS]


async def test_a_person_declining_the_form_is_one_declined_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world = World(tmp_path, confirmation="elicit")

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    try:
        async with Client(world.server, elicitation_callback=decline) as client:
            ids = await part_ids(client, "MS21042L3")
            args = {
                "vendor": "skynet",
                "po_number": "PO-OPS-3",
                "items": [{"part_id": ids["MS21042L3"], "quantity": 1}],
            }
            declined = await client.call_tool("place_order", args)
    finally:
        world.ledger.close()
    assert error_text(declined).startswith("[DECLINED]")
    [line] = decisions(caplog)
    assert line.__dict__["decision"] == "declined" and line.__dict__["po_number"] == "PO-OPS-3"


async def test_approval_decisions_taken_on_the_page_are_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    links: list[str] = []

    async def hook(request: Request) -> Response:
        links.append((await request.json())["url"])
        return JSONResponse({"ok": True})

    async def decide(decision: str) -> None:  # what a person does with the link: open the page, press a button
        async with httpx2.AsyncClient() as http:
            page = await http.get(links[-1])
            form = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
            answer = await http.post(links[-1].split("?")[0], data={**form, "decision": decision})
            assert answer.status_code == 200

    world = World(tmp_path, confirmation="approval")
    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver:
        approvals = ApprovalSettings(open_browser=False, webhook_url=SecretStr(f"{receiver}/hook"))
        world.settings = world.settings.model_copy(update={"approvals": approvals})
        world.server = build_server(world.settings, sandbox=world.sandbox, ledger=world.ledger, clock=world.clock.now)
        async with Client(world.server) as client:
            ids = await part_ids(client, "MS21042L3")
            for po, decision in (("PO-OPS-A", "approve"), ("PO-OPS-D", "decline")):
                items = [{"part_id": ids["MS21042L3"], "quantity": 1}]
                asked = structured(
                    await client.call_tool("place_order", {"vendor": "skynet", "po_number": po, "items": items})
                )
                assert asked["status"] == "awaiting_approval"
                await decide(decision)
    world.ledger.close()
    lines = [r.__dict__ for r in decisions(caplog)]
    assert [line["decision"] for line in lines] == [
        *("approval_requested", "approved", "sent", "placed"),
        *("approval_requested", "declined"),
    ]
    assert asked["approval_id"] == lines[-1]["ref"] == lines[-2]["ref"]  # the approval id is the reference
    assert len({line["ref"] for line in lines[:4]}) == 1 and all(line["total"] for line in lines)
    assert len(world.skynet_orders) == 1


# ------------------------------------------------------------------------- the CLI's logging options


def token_config(tmp_path: Path) -> Path:
    config = tmp_path / "parts-mcp.toml"
    config.write_text('[server]\nsandbox = true\n\n[guard]\nconfirmation = "token"\n')
    return config


async def run_stdio(args: Sequence[str], tmp_path: Path, env: Mapping[str, str] = {}) -> list[str]:
    """`parts-mcp ARGS` over stdio: a look-up and a refused order; its stderr lines."""
    errors = tmp_path / "stderr.txt"
    inherited = {k: v for k, v in os.environ.items() if k not in (logs.ENV_LEVEL, logs.ENV_FORMAT)}
    environment = {**inherited, "PARTS_MCP_CONFIG": str(token_config(tmp_path)), **env}
    params = StdioServerParameters(command=sys.executable, args=["-m", "parts_mcp", *args], env=environment)
    with errors.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            ids = await part_ids(client, "MS21042L3")
            items = [{"part_id": ids["MS21042L3"], "quantity": 1}]
            refused = await client.call_tool("place_order", {"vendor": "skynet", "po_number": "!", "items": items})
            assert error_text(refused).startswith("[PO_MALFORMED]")
    return errors.read_text().splitlines()


async def test_json_format_before_the_subcommand_writes_parsable_decision_lines(tmp_path: Path) -> None:
    lines = await run_stdio(["--log-format", "json", "serve"], tmp_path)
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    [refused] = [p for p in parsed if p.get("decision") == "refused"]
    assert refused["level"] == "INFO" and refused["logger"] == DECISIONS and refused["reason"] == "PO_MALFORMED"
    assert not [p for p in parsed if p["logger"].startswith(("httpx", "mcp.server.streamable_http"))]


async def test_log_level_warning_after_the_subcommand_wins_over_the_environment(tmp_path: Path) -> None:
    lines = await run_stdio(["serve", "--log-level", "warning"], tmp_path, {logs.ENV_LEVEL: "debug"})
    assert lines, "the sandbox's warning is still written"
    assert not [line for line in lines if " INFO " in line or " DEBUG " in line], lines


async def test_verbose_http_logs_no_tool_results_even_to_a_legacy_sse_client(tmp_path: Path) -> None:
    """-v is debug: per-request chatter appears, but no logger below INFO writes protocol messages (the SSE
    library would write every event it streams: tool results, prices, orders)."""
    port, errors = free_port(), tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "parts_mcp", "-v", "serve", "--transport", "http", "--port", str(port)]
    environment = {**os.environ, "PARTS_MCP_CONFIG": str(token_config(tmp_path))}
    with errors.open("w") as errlog:
        process = await anyio.open_process(command, stderr=errlog, stdout=subprocess.DEVNULL, env=environment)
        try:
            async with httpx2.AsyncClient() as http:
                for _ in range(200):  # bounded: the server is up within seconds
                    with contextlib.suppress(httpx2.TransportError):
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    await anyio.sleep(0.05)
            async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                found = structured(await client.call_tool("lookup_parts", {"query": ["MS21042L3"]}))
        finally:
            process.terminate()
            await process.aclose()
    logged = errors.read_text()
    assert found["parts"] and " DEBUG " in logged and " INFO httpx2: HTTP Request" in logged
    name = found["parts"][0]["name"]
    assert "part(s) found" not in logged and name not in logged and '"result"' not in logged


# ------------------------------------------------------------------------ health, readiness, metrics


def http_world(tmp_path: Path, **server: Any) -> World:
    world = World(tmp_path, confirmation="token")
    world.settings = world.settings.model_copy(update={"server": ServerSettings(transport="http", **server)})
    world.server = build_server(world.settings, sandbox=world.sandbox, ledger=world.ledger, clock=world.clock.now)
    return world


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(found: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_health_and_metrics_need_no_token_but_the_host_check_holds(tmp_path: Path) -> None:
    auth = AuthSettings(
        issuer="http://127.0.0.1:9/", audience="http://127.0.0.1:8765/mcp", jwks_url="http://127.0.0.1:9/jwks"
    )
    world = http_world(tmp_path, auth=auth)
    with serve(http_app(world.server, world.settings)) as base:
        async with httpx2.AsyncClient(base_url=base, headers=HOST) as http:
            live, ready, metrics = [await http.get(path) for path in ("/healthz", "/readyz", "/metrics")]
            mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            foreign = await http.get("/healthz", headers={"Host": "evil.example"})
            posted = await http.post("/readyz")
    world.ledger.close()
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE parts_mcp_tool_calls_total counter" in metrics.text
    assert mcp.status_code == 401  # /mcp itself still wants its bearer token
    assert foreign.status_code == 421 and posted.status_code == 405


async def test_metrics_count_calls_errors_vendor_latency_and_orders_and_readyz_fails_without_a_ledger(
    tmp_path: Path,
) -> None:
    world = http_world(tmp_path)
    with serve(http_app(world.server, world.settings)) as base:
        async with httpx2.AsyncClient(base_url=base, headers=HOST) as http:
            before = samples((await http.get("/metrics")).text)
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
                ids = await part_ids(client, "MS21042L3")
                items = [{"part_id": ids["MS21042L3"], "quantity": 1}]
                await client.call_tool("place_order", {"vendor": "skynet", "po_number": "!", "items": items})
                await confirm_and_place(client, {"vendor": "skynet", "po_number": "PO-OPS-M", "items": items})
            after = samples((await http.get("/metrics")).text)
            world.ledger.close()
            unready = await http.get("/readyz")
            live = await http.get("/healthz")

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("parts_mcp_tool_calls_total", tool="lookup_parts", outcome="ok") == 1
    assert grew("parts_mcp_tool_calls_total", tool="place_order", outcome="error") == 1
    assert grew("parts_mcp_tool_calls_total", tool="place_order", outcome="ok") == 2
    assert grew("parts_mcp_tool_errors_total", tool="place_order", code="PO_MALFORMED") == 1
    assert grew("parts_mcp_order_decisions_total", vendor="skynet", decision="placed") == 1
    assert grew("parts_mcp_order_decisions_total", vendor="skynet", decision="refused") == 1
    assert grew("parts_mcp_vendor_request_seconds_count", vendor="skynet") >= 3  # look-up, re-price, order
    assert metric(after, "parts_mcp_vendor_circuit_open", vendor="skynet") == 0
    assert unready.status_code == 503 and unready.json()["status"] == "unavailable"
    assert "ledger is unreachable" in unready.json()["reason"]
    assert live.status_code == 200  # alive, though not ready


async def test_readyz_wants_a_vendor(tmp_path: Path) -> None:
    world = http_world(tmp_path)
    settings = world.settings.model_copy(update={"sandbox": False, "vendors": {}})
    with serve(http_app(world.server, settings)) as base:
        async with httpx2.AsyncClient(base_url=base, headers=HOST) as http:
            ready = await http.get("/readyz")
    world.ledger.close()
    assert ready.status_code == 503 and ready.json()["reason"] == "no vendor is configured"


# -------------------------------------------------------------------------------------------- spans


class RecordingSpan(trace.Span):
    def __init__(self, name: str, context: trace.SpanContext, parent: trace.SpanContext | None, attributes: Any):
        self.name, self._context, self.parent = name, context, parent
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.status: trace.Status | None = None
        self.ended: list[RecordingSpan] | None = None

    def end(self, end_time: int | None = None) -> None:
        if self.ended is not None:
            self.ended.append(self)

    def get_span_context(self) -> trace.SpanContext:
        return self._context

    def set_attributes(self, attributes: Any) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.attributes[f"event:{name}"] = attributes

    def update_name(self, name: str) -> None:
        self.name = name

    def is_recording(self) -> bool:
        return True

    def set_status(self, status: Any, description: str | None = None) -> None:
        self.status = status

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        self.attributes["exception"] = repr(exception)


class RecordingTracer(trace.Tracer):
    """The OpenTelemetry API's extension point, recording while `spans` is a list (no SDK installed here)."""

    def __init__(self) -> None:
        self.spans: list[RecordingSpan] | None = None

    def start_span(self, name: str, context: Any = None, kind: Any = None, attributes: Any = None, **_: Any) -> Any:
        if self.spans is None:
            return trace.INVALID_SPAN
        parent = trace.get_current_span(context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else random.getrandbits(128)
        own = trace.SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=trace.TraceFlags(1))
        span = RecordingSpan(name, own, parent if parent.is_valid else None, attributes)
        span.ended = self.spans
        return span

    @contextmanager
    def start_as_current_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> Iterator[Any]:
        span = self.start_span(name, context, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
            span.end()


class RecordingProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


@pytest.fixture
def spans() -> Iterator[list[RecordingSpan]]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, RecordingProvider):
        provider = RecordingProvider()
        trace.set_tracer_provider(provider)  # once per process: the API allows no second provider
    recorded: list[RecordingSpan] = []
    provider.tracer.spans = recorded
    try:
        yield recorded
    finally:
        provider.tracer.spans = None


async def test_each_vendor_call_is_a_child_span_of_its_tool_call_and_a_retry_is_one_named_line(
    world: World, spans: list[RecordingSpan], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.sandbox.skynet.faults.arm("order_failed", 1)  # one retried send: two attempts in one span
    async with Client(world.server) as client:
        ids = await part_ids(client, "MS21042L3")
        await confirm_and_place(
            client,
            {"vendor": "skynet", "po_number": "PO-OPS-S", "items": [{"part_id": ids["MS21042L3"], "quantity": 1}]},
        )
    vendor = [s for s in spans if s.name == "vendor.request"]
    tools = {s.get_span_context().span_id: s for s in spans if s.name.startswith("tools/call")}
    assert len(vendor) >= 3 and all(s.parent is not None and s.parent.span_id in tools for s in vendor)
    assert all(s.attributes["parts_mcp.vendor"] == "skynet" for s in vendor)
    [order] = [s for s in vendor if s.attributes["url.template"] == "/orders"]
    assert order.attributes["http.request.method"] == "POST" and order.attributes["http.response.status_code"] == 201
    assert order.attributes["parts_mcp.attempts"] == 2
    assert tools[order.parent.span_id].attributes.get("gen_ai.tool.name") == "place_order"  # type: ignore[union-attr]
    everything = json.dumps([s.attributes for s in vendor], default=str)
    assert ids["MS21042L3"] not in everything and Sandbox().vendors()["skynet"].settings["api_key"] not in everything
    retries = [r.getMessage() for r in caplog.records if "retr" in r.getMessage()]
    assert retries == ["retrying POST /orders at skynet: ORDER_FAILED"]  # stamina's own line is gone
