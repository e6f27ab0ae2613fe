"""One entry per kind of vendor: everything the rest of the server needs, declared once in its module.

A vendor module ends with `KIND = VendorKind(...)`: its settings, its client factory, its client
class (whose `display_name`, `capabilities`, `options_help`, `search_help` and `status_help` are the
declarations list_vendors and place_order read), the example config section, and where its
simulator lives. The simulator is named by import path and imported only when the sandbox runs,
so a production start loads no simulator code.

A module is named after its kind and imported the first time its kind is asked for: a start loads
the kinds its config names, not every vendor's models (each module is a few ms of a cold start).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
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


class Registry(Mapping[str, VendorKind]):
    """Kind -> its entry, for the modules of `parts_mcp.vendors` named after their kinds; a module is
    imported when its kind is first looked up (iterating gives the kinds without importing any)."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self._kinds = kinds

    def __getitem__(self, kind: str) -> VendorKind:
        if kind not in self._kinds:
            raise KeyError(kind)
        entry: VendorKind = importlib.import_module(_module(kind)).KIND
        if entry.kind != kind:
            raise LookupError(f"{_module(kind)} declares kind {entry.kind!r}: a vendor module is named after its kind")
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def loaded(self) -> Iterator[VendorKind]:
        """The entries of the kinds whose modules are imported already (by a lookup or an import)."""
        return (self[kind] for kind in self._kinds if _module(kind) in sys.modules)


def _module(kind: str) -> str:
    return f"parts_mcp.vendors.{kind}"


def simulator(entry: VendorKind) -> Any:
    """The kind's sandbox entry, imported now (only the sandbox calls this)."""
    assert entry.simulator is not None
    module, _, name = entry.simulator.partition(":")
    return getattr(importlib.import_module(module), name)
