"""`parts-mcp config check`: what a configuration would run, said without starting or contacting anything.

Secrets never appear: credentials are named, not shown; a URL's user and password are masked; the
approval webhook (its messages approve orders) is only said to be configured.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from parts_mcp.config import Settings
from parts_mcp.vendors import kind_of


def _masked(url: str) -> str:
    """The URL without the user and password it may carry."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _limit(value: Decimal | None) -> str:
    return str(value) if value is not None else "none"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _server(settings: Settings) -> list[str]:
    server = settings.server
    lines = [f"transport:    {server.transport}"]
    if server.transport == "http":
        lines.append(f"listens on:   http://{server.host}:{server.port}/mcp")
        auth = server.auth
        lines.append(
            f"auth:         bearer tokens from {auth.issuer} for {auth.audience}"
            if auth
            else "auth:         none (loopback only)"
        )
    else:
        lines.append(f"principal:    {server.principal or 'the operating system user'}")
    lines.append(f"shutdown:     calls in flight get {server.shutdown_grace_seconds:g} s after SIGTERM")
    return lines


def _vendors(settings: Settings) -> list[str]:
    if settings.sandbox:
        keys = ", ".join(settings.vendor_keys())
        return [f"vendors:      the embedded sandbox (simulated; nothing real is ordered): {keys}"]
    allowed = settings.guard.order_vendors
    lines = [f"vendors:      {len(settings.vendors)}"]
    for key, section in settings.vendors.items():
        secrets = sorted(name for name in type(section).model_fields if isinstance(getattr(section, name), SecretStr))
        orders = "read only" if settings.guard.read_only or (allowed is not None and key not in allowed) else "orders"
        lines.append(
            f"  {key}: kind {kind_of(section).kind}, {_masked(section.base_url)}, {orders}"
            f"; credentials: {', '.join(secrets) or 'none'}"
        )
    return lines


def _guard(settings: Settings) -> list[str]:
    guard = settings.guard
    who = " (the assistant confirms, not a person)" if guard.confirmation == "token" else ""
    return [
        f"confirmation: {guard.confirmation}{who}",
        f"read only:    {_yes(guard.read_only)}",
        f"limits:       per order {_limit(guard.max_order_total)}; per vendor per day "
        f"{_limit(guard.max_daily_total_per_vendor)}; per person per day {_limit(guard.max_daily_total_per_principal)}"
        f"; four-eyes above {_limit(guard.approval_required_above)}",
    ]


def _store(settings: Settings) -> list[str]:
    if settings.store.url is not None:
        shown = _masked(settings.store.url.get_secret_value())
        return [f"store:        {shown} (PostgreSQL, shared by replicas; key from store.key)"]
    if settings.sandbox and settings.store.path is None:
        return ["store:        in memory (the sandbox forgets its orders when the process ends)"]
    return [f"store:        {settings.store.resolved_path()} (SQLite)"]


def _approvals(settings: Settings) -> list[str]:
    approvals = settings.approvals
    channels = [
        *(["browser on this machine"] if approvals.open_browser else []),
        *(["webhook (URL not shown: a secret)"] if approvals.webhook_url else []),
        "URL elicitation where the client offers it",
    ]
    lines = [f"approvals:    {'; '.join(channels)}"]
    if approvals.public_url:
        lines.append(f"links at:     {approvals.public_url}")
    return lines


def describe(settings: Settings, source: str) -> str:
    """What `parts-mcp serve` would run with these settings, one fact a line, no secret values."""
    lines = [
        f"parts-mcp would serve with {source}:",
        *_server(settings),
        *_vendors(settings),
        *_guard(settings),
        *_store(settings),
        *_approvals(settings),
    ]
    return "\n".join(lines) + "\n"
