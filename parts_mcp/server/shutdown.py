"""Graceful shutdown: on SIGTERM or SIGINT no new calls are taken, calls in flight get up to
`[server] shutdown_grace_seconds` to finish, and any still running then is answered with a message
saying the server is shutting down and how to learn the outcome. No client is left without an answer.

What the stack did without this (uvicorn 0.55, sse-starlette 3.7, mcp 2.3.0): on SIGTERM sse-starlette
closed every SSE stream at once, so a call held by a slow vendor lost its answer (an mcp 1.x client
waited for it until killed); uvicorn then cancelled the call. Over stdio the signal killed the process.

An order in flight is safe either way: the ledger records it before it is sent, and a send cut short
stays `sent` (or `unknown`) for the next start to finish when place_order is called again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from mcp.shared.message import SessionMessage
from mcp.types import INTERNAL_ERROR, CallToolResult, ErrorData, JSONRPCError, JSONRPCResponse, RequestId, TextContent
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# After the grace, how long the answers of cut calls get to reach their clients before the process goes anyway.
FLUSH_SECONDS = 5.0


@dataclass(eq=False)
class Call:
    """One JSON-RPC request being served, and how to answer it for the server when the grace runs out."""

    request_id: RequestId | None
    method: str
    tool: str | None  # tools/call: the tool's name
    cut: Callable[[], Awaitable[None]]


def parse_call(body: bytes) -> tuple[RequestId | None, str, str | None] | None:
    """(id, method, tool) of a JSON-RPC request; None for a notification, a response or no JSON-RPC at all."""
    try:
        return _call_of(json.loads(body))
    except ValueError:
        return None


def _call_of(message: Any) -> tuple[RequestId | None, str, str | None] | None:
    if not isinstance(message, dict) or "id" not in message or not isinstance(message.get("method"), str):
        return None
    found: Any = message["id"]
    request_id = found if isinstance(found, str | int) and not isinstance(found, bool) else None
    params: Any = message.get("params")
    name: Any = params.get("name") if isinstance(params, dict) and message["method"] == "tools/call" else None
    return request_id, message["method"], name if isinstance(name, str) else None


def answer(request_id: RequestId | None, method: str, tool: str | None, grace: float) -> JSONRPCResponse | JSONRPCError:
    """What a call cut at the deadline gets: for a tool, an error result the model reads; else a JSON-RPC error."""
    again = (
        "call place_order again with the same arguments: it returns the order if it was placed, or finishes "
        "it, and never orders twice"
        if tool == "place_order"
        else f"call {tool or method} again"
    )
    text = (
        f"[SHUTTING_DOWN] The server is shutting down and stopped this call after waiting {grace:g} s for it. "
        f"To learn the outcome once the server is back, {again}."
    )
    if method == "tools/call" and request_id is not None:
        result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return JSONRPCResponse(
            jsonrpc="2.0", id=request_id, result=result.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INTERNAL_ERROR, message=text))


def refusal() -> bytes:
    """The answer to a call that arrives once shutdown has begun."""
    error = ErrorData(
        code=INTERNAL_ERROR,
        message="[SHUTTING_DOWN] The server is shutting down and takes no new calls. Call again once it is back.",
    )
    return JSONRPCError(jsonrpc="2.0", id=None, error=error).model_dump_json(by_alias=True).encode()


class InFlight:
    """The calls being served; `settle` waits for them, then cuts those still running at the deadline."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.draining = False
        self._calls: set[Call] = set()
        self._changed = anyio.Event()
        self._waiting: anyio.CancelScope | None = None
        self._hurried = False

    def begin(self, call: Call) -> None:
        self._calls.add(call)

    def end(self, call: Call) -> None:
        self._calls.discard(call)
        self._changed.set()

    def find(self, request_id: RequestId) -> Call | None:
        return next((c for c in self._calls if c.request_id == request_id), None)

    async def settle(self) -> None:
        """Wait up to the grace for the calls in flight, then answer the rest as cut (bounded too)."""
        self.draining = True
        if self._calls:
            logger.warning("shutting down: waiting up to %g s for %d call(s) in flight", self.grace, len(self._calls))
        with anyio.move_on_after(0 if self._hurried else self.grace) as self._waiting:
            await self._until_idle()
        left = list(self._calls)
        if not left:
            return
        logger.warning(
            "shutting down: %d call(s) still running after %g s; answering them as cut", len(left), self.grace
        )
        with anyio.move_on_after(FLUSH_SECONDS):
            for call in left:
                await call.cut()
            await self._until_idle()

    def hurry(self) -> None:
        """A second signal: cut the calls in flight now."""
        self._hurried = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def _until_idle(self) -> None:
        while self._calls:
            self._changed = anyio.Event()
            await self._changed.wait()


# --- stdio ---------------------------------------------------------------------------------------


class StdioCalls(InFlight):
    """The requests read from stdin and not yet answered on stdout; a cut one is answered here, once."""

    def __init__(self, grace: float) -> None:
        super().__init__(grace)
        self._out: Any = None
        self._cut: set[RequestId] = set()

    def replies(self, write_stream: Any) -> Any:
        """The SDK's write stream, seen through: each answer ends its call; one to a call cut already is dropped."""
        self._out = write_stream
        return _Replies(write_stream, self)

    def saw(self, line: bytes) -> None:
        """A line read from stdin (screened): a request begins a call, a cancellation ends one."""
        message: Any = json.loads(line)
        parsed = _call_of(message)
        if parsed is not None and parsed[0] is not None:
            request_id, method, tool = parsed
            call = Call(request_id, method, tool, lambda: self._answer(call))
            self.begin(call)
            return
        params: Any = message.get("params") if isinstance(message, dict) else None
        if isinstance(params, dict) and message.get("method") == "notifications/cancelled":
            found = self.find(params.get("requestId", ""))
            if found is not None:
                self.end(found)  # a cancelled request gets no answer

    async def _answer(self, call: Call) -> None:
        assert call.request_id is not None
        self._cut.add(call.request_id)
        await self._out.send(SessionMessage(answer(call.request_id, call.method, call.tool, self.grace)))
        self.end(call)

    def was_cut(self, request_id: RequestId) -> bool:
        return request_id in self._cut

    def answered(self, request_id: RequestId) -> None:
        if (call := self.find(request_id)) is not None:
            self.end(call)


class _Replies:
    def __init__(self, stream: Any, calls: StdioCalls) -> None:
        self._stream = stream
        self._calls = calls

    async def send(self, item: SessionMessage) -> None:
        message = item.message
        replied = message.id if isinstance(message, JSONRPCResponse | JSONRPCError) else None
        if replied is not None and self._calls.was_cut(replied):
            return  # the client was told the call was cut; a second answer would contradict it
        await self._stream.send(item)
        if replied is not None:
            self._calls.answered(replied)  # only once it is out: the exit waits for it

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _Replies:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._stream.__aexit__(*exc)


# --- streamable HTTP -----------------------------------------------------------------------------


class _Exchange:
    """One POST as the client sees it: what of the response has gone out, and its body as read so far."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.body = bytearray()
        self.started = False
        self.sse = False
        self.ended = False
        self._receive = receive
        self._send = send

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.body += message.get("body", b"")
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = dict(message.get("headers", []))
            self.sse = headers.get(b"content-type", b"").startswith(b"text/event-stream")
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.ended = True
        await self._send(message)

    async def finish(self, reply: JSONRPCResponse | JSONRPCError) -> None:
        """Answer on the wire as the SDK would have: one SSE event on a stream already open, else JSON."""
        data = reply.model_dump_json(by_alias=True, exclude_none=True)
        if self.ended:
            return
        if self.sse:
            body = f"event: message\r\ndata: {data}\r\n\r\n".encode()
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
        elif not self.started:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._send({"type": "http.response.body", "body": data.encode(), "more_body": False})
        else:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self.ended = True


class DrainingHTTP:
    """ASGI middleware outermost: counts requests in flight, refuses new ones once shutdown has begun, and
    answers, in the request's own task, a call cut at the deadline."""

    def __init__(self, app: ASGIApp, calls: InFlight) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)  # SSE listening streams end when shutdown closes them
            return
        if self.calls.draining:
            body = refusal()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        exchange = _Exchange(receive, send)
        scope_cut = anyio.CancelScope()

        async def cut() -> None:
            scope_cut.cancel()

        call = Call(None, "", None, cut)
        self.calls.begin(call)
        try:
            with scope_cut:
                await self.app(scope, exchange.receive, exchange.send)
            if scope_cut.cancelled_caught:
                request_id, method, tool = parse_call(bytes(exchange.body)) or (None, "", None)
                await exchange.finish(answer(request_id, method, tool, self.calls.grace))
        finally:
            self.calls.end(call)


class GracefulServer(uvicorn.Server):
    """uvicorn, whose shutdown first stops accepting and settles the calls in flight, then closes SSE streams."""

    def __init__(self, config: uvicorn.Config, calls: InFlight) -> None:
        super().__init__(config)
        self.calls = calls
        # sse-starlette would end every SSE stream (answers still to come on them) the moment the signal lands.
        AppStatus.disable_automatic_graceful_drain()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.calls.draining:
            self.calls.hurry()  # a second signal: answer the calls in flight now
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: Any = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before waiting
        await self.calls.settle()
        AppStatus.should_exit = True  # answered: now the listening streams may end
        await super().shutdown(sockets)


def serve_http(app: ASGIApp, *, host: str, port: int, grace: float) -> None:
    """Serve `app` with uvicorn until SIGTERM or SIGINT, then shut down as this module describes."""
    calls = InFlight(grace)
    config = uvicorn.Config(
        DrainingHTTP(app, calls),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Our (redacting, escaping) handler takes uvicorn's records too; its access log would go to stdout.
        log_config=None,
        # The backstop after the answers are out: a connection that will not close does not hold the exit.
        timeout_graceful_shutdown=int(FLUSH_SECONDS),
    )
    GracefulServer(config, calls).run()
