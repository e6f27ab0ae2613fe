"""Hostile input at the transports: every message we refuse gets a JSON-RPC error, and serving goes on.

What the SDK (mcp 2.3.0) does without this, found by probing it:
- stdio: a line that is not JSON, not JSON-RPC, nested deeper than its parser's 200 levels or holding a
  NUL byte is dropped without a reply; invalid UTF-8 is replaced and served; a line is read whole
  into memory however long it is (a 50 MB line was parsed and answered).
- streamable HTTP: parse and shape errors are answered, but a body over 4 MiB gets a plain-text 413,
  and the 2026-07-28 path parses with `json.loads`, serving requests nested up to ~970 levels.

So both transports screen each message here first: a size cap, strict UTF-8 JSON, and a nesting cap.
stdio also checks the JSON-RPC shape, as its SDK reader would otherwise drop the message silently.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import pydantic_core
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, RequestId, jsonrpc_message_adapter
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parts_mcp.server.shutdown import StdioCalls

logger = logging.getLogger(__name__)

# The largest legitimate request, place_order with 100 lines of 512-character part ids, 1,000 characters
# of notes and per-line options, is about 170 KB; 4 MiB (the SDK's HTTP default) is 24 times that.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# That request nests 6 levels deep (request > params > arguments > options > vehicle_references > line);
# 64 leaves room for any client's envelope and stays far below every recursion limit on the way.
MAX_NESTING_DEPTH = 64
# A pipe's buffer on Linux: one read takes whatever the client has written so far.
_CHUNK = 64 * 1024


def _error(code: int, message: str, request_id: RequestId | None = None) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def _request_id(parsed: Any) -> RequestId | None:
    """The id to answer, when the message carries a usable one (JSON-RPC: null when it cannot be found)."""
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest ([] is 1), walked without recursion and given up past the cap."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_NESTING_DEPTH:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _too_large() -> JSONRPCError:
    return _error(INVALID_REQUEST, f"Invalid Request: message larger than {MAX_MESSAGE_BYTES} bytes")


def screen(data: bytes) -> JSONRPCError | None:
    """The error for a message too large, not UTF-8 JSON, or nested too deep; None if it may go on."""
    if len(data) > MAX_MESSAGE_BYTES:
        return _too_large()
    try:
        parsed = pydantic_core.from_json(data)  # from bytes, so invalid UTF-8 fails here too
    except ValueError as exc:
        # The parser's own limit (200) is above ours; its messages give a position, never the input.
        reason = f"nested deeper than {MAX_NESTING_DEPTH} levels" if "recursion limit" in str(exc) else str(exc)
        return _error(PARSE_ERROR, f"Parse error: {reason}")
    if _depth(parsed) > MAX_NESTING_DEPTH:
        return _error(
            INVALID_REQUEST, f"Invalid Request: nested deeper than {MAX_NESTING_DEPTH} levels", _request_id(parsed)
        )
    return None


def _screen_line(line: bytes) -> JSONRPCError | None:
    """`screen`, then the very validation the SDK's stdio reader makes, which drops failures unanswered."""
    error = screen(line)
    if error is not None:
        return error
    try:
        jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError:
        # Already screened, so it parses; the SDK's own text would quote the input back.
        request_id = _request_id(pydantic_core.from_json(line))
        return _error(INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message", request_id)
    return None


# --- stdio ---------------------------------------------------------------------------------------


def _keep(line: bytearray, piece: bytes) -> None:
    # Past the cap the rest of a line is dropped unread: its head is enough to refuse it.
    room = MAX_MESSAGE_BYTES + 1 - len(line)
    if room > 0:
        line += piece[:room]


async def _lines(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[bytes]:
    """The lines `read` gives until it gives b"", each cut at MAX_MESSAGE_BYTES + 1 bytes, so memory stays bounded."""
    line = bytearray()
    while chunk := await read():
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            _keep(line, piece)
            yield bytes(line)
            line.clear()
        _keep(line, rest)
    if line:
        yield bytes(line)


async def _read_in_daemon(fd: int) -> bytes:
    """os.read(fd) in a daemon thread: a read left blocked on an idle pipe at shutdown (after a signal)
    neither holds up the exit nor keeps the process alive, as a worker thread would."""
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    box: list[bytes | OSError] = []

    def read() -> None:
        try:
            box.append(os.read(fd, _CHUNK))
        except OSError as exc:
            box.append(exc)
        with suppress(anyio.RunFinishedError):
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=read, name="parts-mcp stdin", daemon=True).start()
    await done.wait()
    if isinstance(box[0], OSError):
        raise box[0]
    return box[0]


class GuardedStdin:
    """The stdin the SDK's stdio_server reads: screened lines only; a refused one is answered on the wire."""

    def __init__(self, fd: int, calls: StdioCalls) -> None:
        self._fd = fd
        self._calls = calls
        self._replies: Any = None
        self._ready = anyio.Event()
        self._reading: anyio.CancelScope | None = None
        self._stopped = False

    def stop(self) -> None:
        """Read no more (SIGTERM): the stream ends once the calls in flight are answered."""
        self._stopped = True
        if self._reading is not None:
            self._reading.cancel()

    async def _read(self) -> bytes:
        with anyio.CancelScope() as self._reading:
            if not self._stopped:
                return await _read_in_daemon(self._fd)
        return b""

    def answer_on(self, write_stream: Any) -> None:
        """Refusals go out through the SDK's own writer, so they never tear a frame of its replies."""
        self._replies = write_stream
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in _lines(self._read):
            if not line.strip():
                continue  # a blank line is no message
            error = _screen_line(line)
            if error is None:
                self._calls.saw(line)
                yield line.decode()
                continue
            logger.warning("stdio: refused a message: %s", error.error.message)
            await self._ready.wait()
            try:
                await self._replies.send(SessionMessage(error))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the server is shutting down: nobody to answer
        # End of input (EOF, or a signal): the SDK cancels every call still running when the stream ends,
        # so the calls in flight get their grace first.
        await self._calls.settle()


@contextmanager
def _stdin_wire() -> Iterator[int]:
    """fd 0 moved to a private descriptor, fd 0 reading /dev/null meanwhile, as stdio_server does for
    the stdin it opens itself (not for one it is given): nothing else in the process can eat protocol bytes."""
    wire = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield wire  # never closed: an abandoned read may still block on it
    finally:
        os.dup2(wire, 0)


async def run_stdio(server: MCPServer, grace: float) -> None:
    """`MCPServer.run_stdio_async` (mcp 2.3.0) reading through `GuardedStdin`; that method takes no streams.

    On SIGTERM or SIGINT (or at the end of input) the calls in flight get `grace` seconds to finish; those
    still running then are answered as cut. A second signal cuts them at once.
    """
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    calls = StdioCalls(grace)
    with _stdin_wire() as wire:
        stdin = GuardedStdin(wire, calls)
        # stdio_server only iterates its stdin (`async for line in stdin`); stdout stays the SDK's.
        async with (
            stdio_server(stdin=cast("anyio.AsyncFile[str]", stdin)) as (read_stream, write_stream),
            anyio.create_task_group() as signals,
        ):
            stdin.answer_on(write_stream)
            signals.start_soon(_stop_on_signal, stdin, calls)
            await lowlevel.run(read_stream, calls.replies(write_stream), lowlevel.create_initialization_options())
            signals.cancel_scope.cancel()


async def _stop_on_signal(stdin: GuardedStdin, calls: StdioCalls) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        async for signum in received:
            if calls.draining:
                calls.hurry()
                continue
            logger.warning(
                "stdio: %s: finishing the calls in flight (up to %g s), then exiting",
                signal.Signals(signum).name,
                calls.grace,
            )
            stdin.stop()


def serve_stdio(server: MCPServer, grace: float) -> None:
    """What `server.run()` does for stdio, with hostile lines answered instead of dropped and a graceful exit."""
    anyio.run(run_stdio, server, grace)


# --- streamable HTTP -----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole request body; None if the client went away first. Raises _TooLarge past the cap."""
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES:
        raise _TooLarge
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if len(body) > MAX_MESSAGE_BYTES:
            raise _TooLarge
        if not message.get("more_body", False):
            return bytes(body)


class GuardedHTTP:
    """ASGI middleware before the streamable HTTP app: POST bodies are screened, a refusal is a JSON-RPC error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await _body(scope, receive)
        except _TooLarge:
            await _refuse(_too_large(), 413, scope, receive, send)
            return
        if body is None:
            return  # nobody left to answer
        error = screen(body)
        if error is not None:
            await _refuse(error, 400, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _refuse(error: JSONRPCError, status: int, scope: Scope, receive: Receive, send: Send) -> None:
    logger.warning("http: refused a request: %s", error.error.message)
    content = error.model_dump_json(by_alias=True, exclude_unset=True)
    await Response(content, status_code=status, media_type="application/json")(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (a disconnect) as they come."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
