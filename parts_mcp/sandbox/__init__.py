"""The embedded sandbox: in-process simulators of the vendor APIs.

The server runs on it when it has no config file, tests use it as their vendor fakes, and
``parts-mcp sandbox --port N`` serves it on loopback HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from parts_mcp.sandbox._faults import ADMIN_PREFIX, Faults, ManualClock, SimulatorTransport
from parts_mcp.sandbox.skynet import SANDBOX_API_KEY, SkynetSimulator

__all__ = ["SANDBOX_API_KEY", "Faults", "ManualClock", "Sandbox", "SandboxVendor", "SkynetSimulator"]

# The path each vendor's real API lives under, kept so clients build the same URLs as in production.
_SKYNET_API_PATH = "/api/b2b"
# .invalid is reserved (RFC 2606): should the transport ever be bypassed, nothing resolves.
_SKYNET_BASE_URL = f"http://skynet.sandbox.invalid{_SKYNET_API_PATH}"


@dataclass(frozen=True)
class SandboxVendor:
    """What a vendor client needs to talk to one in-process simulator."""

    kind: str
    base_url: str
    api_key: str
    transport: httpx2.AsyncBaseTransport


class Sandbox:
    """Every vendor simulator, with its state, behind one object (for now only Skynet)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.skynet = SkynetSimulator(clock=clock)
        self._skynet_transport = SimulatorTransport(Starlette(routes=[Mount(_SKYNET_API_PATH, app=self.skynet.app)]))

    def vendors(self) -> dict[str, SandboxVendor]:
        """The in-process vendors, keyed by vendor key; each call returns the same transports."""
        return {
            "skynet": SandboxVendor(
                kind="skynet", base_url=_SKYNET_BASE_URL, api_key=SANDBOX_API_KEY, transport=self._skynet_transport
            ),
        }

    def asgi_app(self) -> Starlette:
        """One app serving every simulator under ``/<vendor key><vendor's API path>``, plus an index at ``/``.

        It shares state with this sandbox, so what is ordered over HTTP shows up in ``self.skynet``.
        """
        mounts = {"skynet": (f"/skynet{_SKYNET_API_PATH}", SANDBOX_API_KEY, self.skynet.app)}

        async def index(request: Request) -> Response:
            root = str(request.base_url).rstrip("/")
            return JSONResponse(
                {
                    "sandbox": True,
                    "vendors": {
                        key: {
                            "kind": key,
                            "base_path": path,
                            "base_url": root + path,
                            "api_key": api_key,
                            "admin_path": path + ADMIN_PREFIX,
                        }
                        for key, (path, api_key, _) in mounts.items()
                    },
                }
            )

        return Starlette(
            routes=[
                Route("/", index, methods=["GET"]),
                *(Mount(path, app=app) for path, _, app in mounts.values()),
            ]
        )
