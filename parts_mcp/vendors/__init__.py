"""Vendor clients, one module per vendor; `create` builds one from its config section."""

from __future__ import annotations

import httpx2

from parts_mcp.config import VendorSettings
from parts_mcp.vendors.base import HttpPolicy, VendorClient
from parts_mcp.vendors.skynet import SkynetClient

__all__ = ["create", "http_policy"]


def http_policy(settings: VendorSettings) -> HttpPolicy:
    return HttpPolicy(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        deadline=settings.deadline,
        attempts=settings.attempts,
        wait_initial=settings.wait_initial,
        wait_max=settings.wait_max,
        wait_jitter=settings.wait_jitter,
        retry_after_cap=settings.retry_after_cap,
    )


def create(key: str, settings: VendorSettings, http: httpx2.AsyncClient) -> VendorClient:
    """A client for the vendor section `key`, talking through `http`."""
    match settings.kind:
        case "skynet":
            return SkynetClient(
                key,
                base_url=settings.base_url,
                api_key=settings.api_key.get_secret_value(),
                http=http,
                policy=http_policy(settings),
            )
