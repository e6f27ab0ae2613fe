"""Vendor clients, one module per vendor, each ending with its registry entry `KIND` (see `registry`).

Adding a vendor: its module (settings, client, `create`, `KIND`), named after its kind, and that name
in `MODULES` below. A kind's module is imported when the kind is first looked up (see `registry`).
"""

from __future__ import annotations

from typing import Any

import httpx2

from parts_mcp.vendors.base import VendorClient, VendorSettingsBase
from parts_mcp.vendors.registry import Registry, VendorKind

__all__ = ["KINDS", "REGISTRY", "VendorKind", "create", "kind_of", "vendor_settings"]

MODULES = ("skynet", "factoryai", "shopmonkey", "keyloop", "partssource")

REGISTRY = Registry(MODULES)
KINDS = MODULES


def vendor_settings(section: Any) -> VendorSettingsBase:
    """A [vendors.<key>] section as its kind's settings (an already-built settings object passes as is).

    Raises:
        ValueError: `kind` names no registered kind.
        ValidationError: a key of that kind's settings is wrong (its location names the key).
    """
    if isinstance(section, VendorSettingsBase):
        return section
    kind = section.get("kind") if isinstance(section, dict) else None  # type: ignore[union-attr]
    entry = REGISTRY.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise ValueError(f"kind is {kind!r}; this version supports: {', '.join(KINDS)}")
    return entry.settings.model_validate(section)


def kind_of(settings: VendorSettingsBase) -> VendorKind:
    # Settings of a kind were made by its module, so that module is imported already.
    return next(k for k in REGISTRY.loaded() if isinstance(settings, k.settings))


def create(key: str, settings: VendorSettingsBase, http: httpx2.AsyncClient) -> VendorClient:
    """A client for the vendor section `key`, talking through `http`."""
    return kind_of(settings).create(key, settings, http)
