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

from parts_mcp.sandbox._entry import Simulated
from parts_mcp.sandbox._faults import ADMIN_PREFIX, Faults, ManualClock, SimulatorTransport, with_shared_faults
from parts_mcp.vendors import REGISTRY
from parts_mcp.vendors.registry import simulator

__all__ = ["Faults", "ManualClock", "Sandbox", "SandboxVendor", "Simulated"]


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
    """Every vendor simulator, with its state, behind one object: `sandbox.skynet` is Skynet's simulator.

    Built from the vendor registry: a kind whose `KIND.simulator` names a `Simulated` entry is mounted.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._simulators: dict[str, Any] = {}
        self._mounted: list[_Mounted] = []
        for kind, entry in REGISTRY.items():
            if entry.simulator is None:
                continue
            declared: Simulated = simulator(entry)
            made = self._simulators[kind] = declared.factory(clock=clock)
            # with_shared_faults: every simulator can also turn hostile (tests of what vendors may send).
            self._mounted.append(_Mounted(kind, declared.api_path, with_shared_faults(made), declared.settings))
        self._transports = {
            m.key: SimulatorTransport(Starlette(routes=[Mount(m.api_path, app=m.app)])) for m in self._mounted
        }

    def __getattr__(self, name: str) -> Any:
        simulators = self.__dict__.get("_simulators", {})
        if name in simulators:
            return simulators[name]
        raise AttributeError(name)

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
