"""One entry per kind of vendor: everything the rest of the server needs, declared once in its module.

A vendor module ends with `KIND = VendorKind(...)`: its settings, its client factory, its client
class (whose `display_name`, `capabilities`, `options_help`, `search_help` and `status_help` are the
declarations list_vendors and place_order read), the example config section, and where its
simulator lives. The simulator is named by import path and imported only when the sandbox runs,
so a production start loads no simulator code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from parts_mcp.vendors.base import VendorClient, VendorSettingsBase


@dataclass(frozen=True)
class VendorKind:
    kind: str
    settings: type[VendorSettingsBase]  # its [vendors.<key>] section; `kind` is the discriminator
    create: Callable[[str, Any, httpx2.AsyncClient], VendorClient]
    example: str  # a commented [vendors.<kind>] section for config.example.toml
    simulator: str | None = None  # "module:NAME" of its `Simulated` entry in parts_mcp.sandbox


class Simulated(Protocol):
    """A sandbox module's entry for its simulator (see `parts_mcp.sandbox.Simulated`)."""

    api_path: str


def load(modules: tuple[str, ...]) -> Mapping[str, VendorKind]:
    """The `KIND` of each named module of `parts_mcp.vendors`, by kind."""
    kinds: dict[str, VendorKind] = {}
    for name in modules:
        entry: VendorKind = importlib.import_module(f"parts_mcp.vendors.{name}").KIND
        kinds[entry.kind] = entry
    return kinds


def simulator(entry: VendorKind) -> Any:
    """The kind's sandbox entry, imported now (only the sandbox calls this)."""
    assert entry.simulator is not None
    module, _, name = entry.simulator.partition(":")
    return getattr(importlib.import_module(module), name)
