"""How an approval link reaches a person, and never the model.

The channels, each configured in `[approvals]` (`ApprovalSettings`):

- the browser: the server opens the page in the default browser of its own machine (the desktop
  case, where a chat client starts `parts-mcp serve` on the user's computer);
- the approvers' webhook: a JSON message with a summary and the link, POSTed with retries;
- URL elicitation: a client that declares it shows the link to the user, not to the model;
- in the sandbox only, when nothing else reached anyone: a WARNING line on stderr with the link, so a
  newcomer in the MCP Inspector can open it.

Every failure is a note for the tool result (never the link, never an exception). Links start at
`public_url`, else the server's own address; over stdio a loopback listener serves the page, started
on the first need and stopped with the server's lifespan.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import uvicorn
from anyio.abc import TaskGroup
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp import retries
from parts_mcp.config import ApprovalSettings, ServerSettings
from parts_mcp.orders.approvals import ApprovalLink, ApprovalRequest, Desk

__all__ = ["Channels", "Delivery", "PageUnavailable", "find_browser"]

logger = logging.getLogger(__name__)

BROWSER = "your default browser"
WEBHOOK = "the approvers' webhook"
ELICITATION = "a link shown by your client (URL elicitation)"
SANDBOX_LOG = "the server's log (sandbox only)"

WEBHOOK_ATTEMPTS = 3
WEBHOOK_DEADLINE = 8.0  # seconds for every attempt and wait: the tool call waits for the answer
_WEBHOOK_TIMEOUT = httpx2.Timeout(3.0, connect=2.0)
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# A browser command that is still running after this is showing the page (it stays in the foreground).
_BROWSER_WAIT = 3.0
_LISTENER_START = 10.0
# Text browsers would draw on a terminal a server does not have (over stdio its stdout is the protocol).
_CONSOLE_BROWSERS = frozenset({"www-browser", "links", "elinks", "lynx", "w3m"})
_NO_BROWSER = "no browser was found on the server's machine (set $BROWSER, or configure [approvals] webhook_url)"

DeskSource = Callable[[], Desk | None]
ElicitUrl = Callable[[str, str], Awaitable[bool]]  # (message, url) -> the user accepted


class PageUnavailable(Exception):
    """The approval page cannot be served (its loopback port is taken, or the server is stopping).

    The message names no secret: it may reach the model.
    """


@dataclass(frozen=True)
class Delivery:
    """Where an approval link went: `reached` names the channels that took it, `notes` says what failed."""

    reached: list[str]
    notes: list[str]


@dataclass(frozen=True)
class _Outcome:
    reached: str | None = None
    note: str | None = None
    quiet: bool = False  # a note that only matters when no channel reached anyone


class Channels:
    """The approval channels of one server: built once, with its lifespan entering `running()`."""

    def __init__(self, settings: ApprovalSettings, server: ServerSettings, *, sandbox: bool, desk: DeskSource) -> None:
        self._settings, self._server, self._sandbox, self._desk = settings, server, sandbox, desk
        self._lifespans: list[TaskGroup] = []  # one per running lifespan (in-memory clients may overlap)
        self._listener: _Listener | None = None
        self._has_browser: bool | None = None

    def can_reach(self, *, url_elicitation: bool) -> bool:
        """Whether any channel could bring a link to a person (else approval out of band must be refused)."""
        return (
            url_elicitation
            or self._sandbox
            or self._settings.webhook_url is not None
            or (self._settings.open_browser and self._browser_found())
        )

    def _browser_found(self) -> bool:
        if self._has_browser is None:  # looked up once: on a desktop it runs xdg-settings
            self._has_browser = find_browser() is not None
        return self._has_browser

    def page(self) -> ASGIApp:
        """The approval page beside nothing else: what the stdio listener serves."""
        from parts_mcp.approvals import page

        return page.app(self._desk, public_url=self._settings.public_url)

    def beside(self, mcp: ASGIApp) -> ASGIApp:
        """`mcp` (the streamable HTTP app with its guards) and the approval page at /approvals/.

        The page is routed before `mcp`: its decision is a form POST, which the JSON-RPC body screen
        would refuse, and the MCP app's Host/Origin checks keep applying to /mcp as before.
        """
        return _WithPage(self.page(), mcp)

    async def base_url(self) -> str:
        """Where links start: `public_url`, else the server's own address (stdio: the loopback listener).

        Over stdio the listener is started here on first need, even with `public_url` (a proxy there
        forwards to it).

        Raises:
            PageUnavailable: the listener cannot be started, or the server is not running.
        """
        if self._server.transport == "stdio":
            own = await self._listen()
        else:
            own = f"http://{_link_host(self._server.host)}:{self._server.port}"
        return self._settings.public_url or own

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Channels]:
        """For the server's lifespan: owns the loopback listener's task and stops it on exit."""
        async with anyio.create_task_group() as tasks:
            self._lifespans.append(tasks)
            try:
                yield self
            finally:
                self._lifespans.remove(tasks)
                listener = self._listener
                if listener is not None and listener.owner is tasks:
                    self._listener = None
                    listener.should_exit = True  # the task group then waits for it to close

    async def _listen(self) -> str:
        if not self._lifespans:
            raise PageUnavailable("the approval page is not being served: the server is starting or stopping")
        if self._listener is None:
            # Bound here, so a taken port is our error (uvicorn would exit the process) and port 0 is known.
            owner = self._lifespans[-1]
            self._listener = _Listener(self.page(), _bind(self._settings.port), owner)
            owner.start_soon(self._serve, self._listener)
        listener = self._listener
        try:
            with anyio.fail_after(_LISTENER_START):
                await listener.up.wait()
        except TimeoutError:
            raise PageUnavailable(f"the approval page on {listener.url} did not start") from None
        if not listener.started or listener.should_exit:
            raise PageUnavailable(f"the approval page on {listener.url} stopped; see the server's log")
        return listener.url

    async def _serve(self, listener: _Listener) -> None:
        try:
            await listener.serve(sockets=[listener.socket])
        except Exception as exc:  # a crash of the page must not end the MCP server; the next need starts anew
            logger.error("the approval page on %s stopped: %s", listener.url, type(exc).__name__)
        finally:
            listener.should_exit = True
            listener.socket.close()
            listener.up.set()
            if self._listener is listener:
                self._listener = None

    async def deliver(
        self, request: ApprovalRequest, link: ApprovalLink, *, elicit_url: ElicitUrl | None = None
    ) -> Delivery:
        """Bring the link to a person through every channel that applies, at once.

        `elicit_url(message, url)` shows the link in the client (a legacy session whose client declared
        `elicitation.url`) and returns whether the user accepted it. Failures are notes; nothing is raised.
        """
        try:
            url = await self.base_url() + link.path()
        except PageUnavailable as exc:
            return Delivery([], [str(exc)])
        attempts: list[Callable[[], Awaitable[_Outcome]]] = []
        if self._settings.webhook_url is not None:
            secret_url = self._settings.webhook_url.get_secret_value()
            attempts.append(lambda: _post_webhook(secret_url, webhook_message(request, url)))
        if self._settings.open_browser:
            attempts.append(lambda: anyio.to_thread.run_sync(_open_in_browser, url, abandon_on_cancel=True))
        if elicit_url is not None:
            attempts.append(lambda: _elicit(elicit_url, request, url))
        outcomes = await _all(request.approval_id, attempts)
        reached = [o.reached for o in outcomes if o.reached]
        notes = [o.note for o in outcomes if o.note and not (o.quiet and reached)]
        if self._sandbox and not reached:
            _log_for_sandbox(request, url)
            reached.append(SANDBOX_LOG)
        return Delivery(reached, notes)


async def _all(approval_id: str, attempts: list[Callable[[], Awaitable[_Outcome]]]) -> list[_Outcome]:
    """Every attempt's outcome, in the order given; one that raises is a note, not the end of the others."""
    outcomes = [_Outcome()] * len(attempts)

    async def run(index: int) -> None:
        try:
            outcomes[index] = await attempts[index]()
        except Exception as exc:
            # The type only: an exception's text may hold the link.
            logger.error("approval %s: a channel failed: %s", approval_id, type(exc).__name__)
            outcomes[index] = _Outcome(note=f"a channel failed unexpectedly ({type(exc).__name__})")

    async with anyio.create_task_group() as tasks:
        for index in range(len(attempts)):
            tasks.start_soon(run, index)
    return outcomes


# -- the webhook -----------------------------------------------------------------------------------


def webhook_message(request: ApprovalRequest, url: str) -> dict[str, Any]:
    """The JSON the approvers' webhook receives: `text` for chat channels, the order, and the link."""
    preview = request.preview
    where = " [SANDBOX: simulated vendors]" if request.sandbox else ""
    return {
        "text": (
            f"Approval needed{where}: PO {request.po_number} at {request.display_name} for {preview.total}, "
            f"asked by {request.requested_by}. Approve or decline before {request.expires_at.isoformat()}: {url}"
        ),
        "approval_id": request.approval_id,
        "vendor": request.vendor,
        "vendor_name": request.display_name,
        "po_number": request.po_number,
        "total": preview.total.model_dump(mode="json"),
        "approval_limit": preview.approval_limit.model_dump(mode="json") if preview.approval_limit else None,
        "price_basis": preview.price_basis.value,
        "lines": [line.model_dump(mode="json", exclude_none=True) for line in preview.lines],
        "warnings": list(request.warnings),
        "expires_at": request.expires_at.isoformat(),
        "requested_by": request.requested_by,
        "sandbox": request.sandbox,
        "url": url,
    }


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code in _RETRY_STATUS
    return isinstance(exc, httpx2.TransportError)


async def _post_webhook(url: str, message: dict[str, Any]) -> _Outcome:
    sent = 0
    try:
        with anyio.fail_after(WEBHOOK_DEADLINE):
            # No redirects: a redirected POST would carry the link to an address nobody configured.
            async with httpx2.AsyncClient(timeout=_WEBHOOK_TIMEOUT, follow_redirects=False) as http:
                async for attempt in retries.retry_context(
                    on=_retryable, attempts=WEBHOOK_ATTEMPTS, timeout=None, wait_initial=0.5, wait_max=2.0
                ):
                    with attempt:
                        sent += 1
                        (await http.post(url, json=message)).raise_for_status()
        return _Outcome(reached=WEBHOOK)
    except httpx2.HTTPStatusError as exc:
        why = f"HTTP {exc.response.status_code}"
    except httpx2.HTTPError as exc:  # the type only: its text names the webhook's URL, a secret
        why = type(exc).__name__
    except TimeoutError:
        why = f"no answer within {WEBHOOK_DEADLINE:g}s"
    times = f"{sent} attempt{'s' * (sent != 1)}"
    logger.warning(
        "approval %s: the approvers' webhook did not take it after %s (%s)", message["approval_id"], times, why
    )
    return _Outcome(note=f"the approvers' webhook did not accept the request after {times} ({why}); nobody was told")


# -- the browser -----------------------------------------------------------------------------------

_registry = threading.Lock()


def find_browser() -> webbrowser.BaseBrowser | None:
    """The browser `webbrowser` would open, or None on a machine without one (a server, a container).

    Looked up afresh, $BROWSER included: the webbrowser module reads the environment only once per process.
    """
    with _registry:
        webbrowser.register_standard_browsers()  # pyright: ignore[reportAttributeAccessIssue]
        try:
            browser = webbrowser.get()
        except webbrowser.Error:
            return None
    return None if browser.basename in _CONSOLE_BROWSERS else browser


def _open_in_browser(url: str) -> _Outcome:
    """Blocks (a browser command may run for a while): run it in a worker thread."""
    browser = find_browser()
    if browser is None:
        return _Outcome(note=_NO_BROWSER, quiet=True)
    if isinstance(browser, webbrowser.GenericBrowser):  # a plain command, e.g. $BROWSER or xdg-open
        opened = _launch([browser.name, *(arg.replace("%s", url) for arg in browser.args)])
    else:
        opened = browser.open(url)
    if opened:
        return _Outcome(reached=BROWSER)
    return _Outcome(note="the browser on the server's machine did not open the approval page")


def _launch(command: list[str]) -> bool:
    # webbrowser would let the command write to our stdout, which over stdio is the protocol.
    try:
        process = subprocess.Popen(  # noqa: S603 - the user's own browser command, given the page's URL
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        return process.wait(timeout=_BROWSER_WAIT) == 0
    except subprocess.TimeoutExpired:
        return True


# -- URL elicitation and the sandbox's log ---------------------------------------------------------


async def _elicit(elicit_url: ElicitUrl, request: ApprovalRequest, url: str) -> _Outcome:
    where = " (SANDBOX: simulated vendors)" if request.sandbox else ""
    message = (
        f"Approve or decline purchase order {request.po_number} at {request.display_name} for "
        f"{request.preview.total}{where}: open the approval page to see every line and decide."
    )
    try:
        accepted = await elicit_url(message, url)
    except Exception as exc:  # the type only: the client's error text may quote the link
        logger.warning("approval %s: URL elicitation failed: %s", request.approval_id, type(exc).__name__)
        return _Outcome(note=f"the client could not show the approval link ({type(exc).__name__})")
    if accepted:
        return _Outcome(reached=ELICITATION)
    return _Outcome(note="the user dismissed the approval link their client showed")


def _log_for_sandbox(request: ApprovalRequest, url: str) -> None:
    # The link secret is no configured secret, so the log's redaction leaves the line whole.
    logger.warning(
        "SANDBOX (simulated vendors, nothing real is ordered): no channel reached a person, so the approval link "
        "is written here, as it only ever is in the sandbox. To approve or decline %s PO %s for %s, open %s",
        request.display_name,
        request.po_number,
        request.preview.total,
        url,
    )


# -- the loopback listener and the HTTP app --------------------------------------------------------


def _link_host(host: str) -> str:
    """`host` as a link's host: a wildcard bind is reached on loopback, an IPv6 address in brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading the bind address, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise PageUnavailable(
            f"the approval page cannot listen on 127.0.0.1:{port} ({exc.strerror}); set [approvals] port "
            "to a free port, or 0"
        ) from None
    return sock


class _Listener(uvicorn.Server):
    """uvicorn on a socket we bound, telling when it serves, leaving the process's signals alone."""

    def __init__(self, app: ASGIApp, sock: socket.socket, owner: TaskGroup) -> None:
        # No access log: its lines would carry the page's URL, and the URL carries the link secret.
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, log_config=None, timeout_graceful_shutdown=5
        )
        super().__init__(config)
        self.socket, self.owner = sock, owner
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.up = anyio.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGINT/SIGTERM to stop only this page; they belong to the MCP server.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.up.set()


class _WithPage:
    """Approval page requests to the page, everything else (the lifespan included) to the MCP app."""

    def __init__(self, page: ASGIApp, mcp: ASGIApp) -> None:
        self.page, self.mcp = page, mcp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/approvals/"):
            await self.page(scope, receive, send)
        else:
            await self.mcp(scope, receive, send)
