"""The operator's endpoints beside /mcp: /healthz (liveness), /readyz (readiness), /metrics (Prometheus).

None of them asks for a bearer token: load balancers and scrapers hold no user's token. They stay
behind the Host and Origin check like every path. /metrics names tools, error codes, vendor keys and
decision counts, never a PO, a person or a secret; still, route only /mcp, /approvals/ and the
metadata through a public proxy, and let the scraper reach /metrics on the private side.
"""

from __future__ import annotations

import logging

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.config import Settings
from parts_mcp.orders.ledger import Ledger
from parts_mcp.telemetry import registry

logger = logging.getLogger(__name__)

READY_TIMEOUT = 2.0  # a ledger slower than this to answer one read is not ready to take orders
_NO_SUCH_INTENT = "00000000-0000-0000-0000-000000000000"


class Operations:
    """/healthz, /readyz and /metrics answered here (GET or HEAD); every other request goes on to `app`."""

    def __init__(self, app: ASGIApp, ledger: Ledger | None, settings: Settings) -> None:
        self.app = app
        self._ledger = ledger
        self._vendors = settings.sandbox or bool(settings.vendors)
        self._routes = {"/healthz": self._live, "/readyz": self._ready, "/metrics": self._metrics}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            answer: Response = JSONResponse({"error": "method not allowed"}, 405, headers={"Allow": "GET, HEAD"})
        else:
            answer = await route()
        await answer(scope, receive, send)

    async def _live(self) -> Response:
        return JSONResponse({"status": "ok"})

    async def _ready(self) -> Response:
        reason = await self._not_ready()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return JSONResponse({"status": "ready"})

    async def _not_ready(self) -> str | None:
        if not self._vendors:
            return "no vendor is configured"
        if self._ledger is None:
            return "no ledger"
        try:
            with anyio.fail_after(READY_TIMEOUT):
                # A primary-key read: the cheapest question every ledger backend answers.
                await self._ledger.intent(_NO_SUCH_INTENT)
        except TimeoutError:
            return f"the ledger did not answer within {READY_TIMEOUT:g}s"
        except Exception as exc:
            logger.warning("readyz: the ledger is unreachable: %s", type(exc).__name__)
            return f"the ledger is unreachable ({type(exc).__name__})"
        return None

    async def _metrics(self) -> Response:
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
