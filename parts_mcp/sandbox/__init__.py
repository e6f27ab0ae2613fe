"""The embedded sandbox: in-process simulators of the vendor APIs.

The server runs on it when it has no config file, tests use it as their vendor fakes, and
``parts-mcp sandbox --port N`` serves it on loopback HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from parts_mcp.sandbox._faults import ADMIN_PREFIX, Faults, ManualClock, SimulatorTransport, with_shared_faults
from parts_mcp.sandbox.factoryai import SANDBOX_SETTINGS as FACTORYAI_SANDBOX_SETTINGS
from parts_mcp.sandbox.factoryai import FactoryAISimulator
from parts_mcp.sandbox.keyloop import SANDBOX_SETTINGS as KEYLOOP_SANDBOX_SETTINGS
from parts_mcp.sandbox.keyloop import KeyloopSimulator
from parts_mcp.sandbox.partssource import SANDBOX_SETTINGS as PARTSSOURCE_SANDBOX_SETTINGS
from parts_mcp.sandbox.partssource import PartsSourceSimulator
from parts_mcp.sandbox.shopmonkey import SANDBOX_API_KEY as SHOPMONKEY_API_KEY
from parts_mcp.sandbox.shopmonkey import ShopmonkeySimulator
from parts_mcp.sandbox.skynet import SANDBOX_API_KEY, SkynetSimulator

__all__ = [
    "SANDBOX_API_KEY",
    "FactoryAISimulator",
    "Faults",
    "KeyloopSimulator",
    "ManualClock",
    "PartsSourceSimulator",
    "Sandbox",
    "SandboxVendor",
    "ShopmonkeySimulator",
    "SkynetSimulator",
]


@dataclass(frozen=True)
class SandboxVendor:
    """What a vendor client needs to talk to one in-process simulator: its config section and a transport."""

    kind: str
    base_url: str
    settings: dict[str, Any]  # a [vendors.<key>] section, base_url included
    transport: httpx2.AsyncBaseTransport


@dataclass(frozen=True)
class _Mounted:
    key: str
    api_path: str  # where the vendor's real API lives under its host, e.g. /api/b2b
    app: ASGIApp
    settings: dict[str, Any]  # the config section minus base_url; "{base_url}" in a value is replaced by it


def _resolve(settings: dict[str, Any], base_url: str) -> dict[str, Any]:
    # A URL on the simulator's own host (PartsSource's token endpoint) can only be known once base_url is.
    return {k: v.replace("{base_url}", base_url) if isinstance(v, str) else v for k, v in settings.items()}


class Sandbox:
    """Every vendor simulator, with its state, behind one object."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.skynet = SkynetSimulator(clock=clock)
        self.factoryai = FactoryAISimulator(clock=clock)
        self.shopmonkey = ShopmonkeySimulator(clock=clock)
        self.keyloop = KeyloopSimulator(clock=clock)
        self.partssource = PartsSourceSimulator(clock=clock)
        # Adding a simulator: create it above, mount it here (with_shared_faults: it can turn hostile).
        self._mounted = [
            _Mounted(
                "skynet", "/api/b2b", with_shared_faults(self.skynet), {"kind": "skynet", "api_key": SANDBOX_API_KEY}
            ),
            _Mounted("factoryai", "/prod", with_shared_faults(self.factoryai), FACTORYAI_SANDBOX_SETTINGS),
            _Mounted(
                "shopmonkey",
                "/v3",
                with_shared_faults(self.shopmonkey),
                {"kind": "shopmonkey", "api_key": SHOPMONKEY_API_KEY},
            ),
            # Keyloop's base_url is the host root: the token endpoint and the API share it.
            _Mounted("keyloop", "", with_shared_faults(self.keyloop), KEYLOOP_SANDBOX_SETTINGS),
            _Mounted(
                "partssource", "/customer/api", with_shared_faults(self.partssource), PARTSSOURCE_SANDBOX_SETTINGS
            ),
        ]
        self._transports = {
            m.key: SimulatorTransport(Starlette(routes=[Mount(m.api_path, app=m.app)])) for m in self._mounted
        }

    def vendors(self) -> dict[str, SandboxVendor]:
        """The in-process vendors, keyed by vendor key; each call returns the same transports."""
        result = {}
        for m in self._mounted:
            # .invalid is reserved (RFC 2606): should the transport ever be bypassed, nothing resolves.
            base_url = f"http://{m.key}.sandbox.invalid{m.api_path}"
            result[m.key] = SandboxVendor(
                kind=m.settings["kind"],
                base_url=base_url,
                settings={**_resolve(m.settings, base_url), "base_url": base_url},
                transport=self._transports[m.key],
            )
        return result

    def asgi_app(self) -> Starlette:
        """One app serving every simulator under ``/<vendor key><vendor's API path>``, plus an index at ``/``.

        It shares state with this sandbox, so what is ordered over HTTP shows up in the simulators.
        """
        mounted = self._mounted

        async def index(request: Request) -> Response:
            root = str(request.base_url).rstrip("/")
            vendors = {}
            for m in mounted:
                path = f"/{m.key}{m.api_path}"
                vendors[m.key] = {
                    **_resolve(m.settings, root + path),
                    "base_path": path,
                    "base_url": root + path,
                    "admin_path": path + ADMIN_PREFIX,
                }
            return JSONResponse({"sandbox": True, "vendors": vendors})

        return Starlette(
            routes=[
                Route("/", index, methods=["GET"]),
                *(Mount(f"/{m.key}{m.api_path}", app=m.app) for m in mounted),
            ]
        )
