"""Vendor clients, one module per vendor. Each module has its `Settings` class and `create`.

Adding a vendor: its module, its settings in `VendorSettings`, its `create` in `_CREATORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx2
from pydantic import Field, TypeAdapter

from parts_mcp.vendors import factoryai, keyloop, partssource, shopmonkey, skynet
from parts_mcp.vendors.base import VendorClient
from parts_mcp.vendors.factoryai import FactoryAISettings
from parts_mcp.vendors.keyloop import KeyloopSettings
from parts_mcp.vendors.partssource import PartsSourceSettings
from parts_mcp.vendors.shopmonkey import ShopmonkeySettings
from parts_mcp.vendors.skynet import SkynetSettings

__all__ = ["KINDS", "VendorSettings", "create", "settings_adapter"]

VendorSettings = Annotated[
    SkynetSettings | FactoryAISettings | ShopmonkeySettings | KeyloopSettings | PartsSourceSettings,
    Field(discriminator="kind"),
]

_CREATORS: dict[str, Callable[[str, Any, httpx2.AsyncClient], VendorClient]] = {
    "skynet": skynet.create,
    "factoryai": factoryai.create,
    "shopmonkey": shopmonkey.create,
    "keyloop": keyloop.create,
    "partssource": partssource.create,
}
KINDS = tuple(_CREATORS)

settings_adapter: TypeAdapter[VendorSettings] = TypeAdapter(VendorSettings)


def create(key: str, settings: VendorSettings, http: httpx2.AsyncClient) -> VendorClient:
    """A client for the vendor section `key`, talking through `http`."""
    return _CREATORS[settings.kind](key, settings, http)
