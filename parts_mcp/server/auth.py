"""The HTTP transport as an OAuth 2.1 protected resource, and who may reach it at all.

Tokens are JWTs from one issuer, checked with PyJWT against the issuer's published keys (JWKS);
the SDK's bearer middleware asks `JWTVerifier` and answers 401/403 itself. Which tool needs which
scope is decided here and enforced in the one error boundary (`PartsServer.call_tool`).

The exposure rule: HTTP binds to loopback only, unless `[server.auth]` names the hosts it is
reached by; Host and Origin are checked on every request, every path, before anything else runs.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings as SDKAuthSettings
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.types import CallToolResult
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from parts_mcp.config import AuthSettings, ServerSettings
from parts_mcp.server.errors import error_result

if TYPE_CHECKING:  # PyJWT (and cryptography's x509) cost ~40 ms to import: only [server.auth] needs them
    import jwt

logger = logging.getLogger(__name__)

READ, WRITE, APPROVE = "parts:read", "orders:write", "orders:approve"
SCOPES = [READ, WRITE, APPROVE]
# Every tool a scope; a tool missing here is refused to every token (new tools must choose).
TOOL_SCOPES = {
    "lookup_parts": READ,
    "get_order": READ,
    "list_purchase_orders": READ,
    "list_vendors": READ,
    "place_order": WRITE,
    "approve_order": APPROVE,
}
# Public-key signatures only: `none` and the HMAC family (HS*) can never be configured in.
_FAMILIES = {
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "EC": {"ES256", "ES384", "ES512"},
    "OKP": {"EdDSA"},
}
_FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class SigningKey:
    jwk: jwt.PyJWK
    algorithms: frozenset[str]  # what this key may verify: its family, narrowed to the JWK's `alg` if given


class KeySet:
    """The issuer's signing keys by `kid`: cached, refetched when stale or on an unknown kid, but an
    unknown kid refetches at most once per `min_refresh` seconds."""

    def __init__(
        self, url: str, *, cache_seconds: float, min_refresh: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url, self._cache, self._min_refresh, self._clock = url, cache_seconds, min_refresh, clock
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched: float | None = None
        self._lock = anyio.Lock()  # one fetch at a time; the others wait for its keys

    async def key(self, kid: str | None) -> SigningKey | None:
        async with self._lock:
            now = self._clock()
            stale = self._fetched is None or now - self._fetched >= self._cache
            unknown = self._find(kid) is None and (self._fetched is None or now - self._fetched >= self._min_refresh)
            if stale or unknown:
                await self._refresh(now)
            return self._find(kid)

    def _find(self, kid: str | None) -> SigningKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # an issuer with one key may leave kid out
        return self._keys.get(kid) if kid is not None else None

    async def _refresh(self, now: float) -> None:
        self._fetched = now  # a failed fetch counts too: the rate limit holds while the issuer is down
        try:
            async with httpx2.AsyncClient(timeout=_FETCH_TIMEOUT, follow_redirects=False) as http:
                answer = await http.get(self._url, headers={"Accept": "application/json"})
                answer.raise_for_status()
                document = answer.json()
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("cannot fetch the issuer's keys from %s: %s", self._url, type(exc).__name__)
            return
        keys = document.get("keys") if isinstance(document, dict) else None
        self._keys = {}
        for entry in keys if isinstance(keys, list) else []:
            key = _public_key(entry)
            if key is not None:
                self._keys[key.jwk.key_id] = key


def _public_key(entry: Any) -> SigningKey | None:
    """A signing key from a JWKS entry; None for symmetric, encryption-only or unreadable entries."""
    import jwt  # deferred: see the TYPE_CHECKING import

    if not isinstance(entry, dict) or entry.get("kty") not in _FAMILIES or entry.get("use", "sig") != "sig":
        return None
    family: set[str] = _FAMILIES[str(entry["kty"])]
    declared = entry.get("alg")
    allowed = family & {declared} if declared is not None else family
    try:
        return SigningKey(jwt.PyJWK.from_dict(entry), frozenset(allowed)) if allowed else None
    except jwt.PyJWTError:
        return None


class JWTVerifier:
    """The SDK's TokenVerifier for `[server.auth]`: None (401) for any token not fully valid."""

    def __init__(self, settings: AuthSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._keys = KeySet(
            settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh=settings.jwks_min_refresh_seconds,
            clock=clock,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        import jwt  # deferred: see the TYPE_CHECKING import

        try:
            claims = await self._claims(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # PyJWT's, or a key of the wrong curve
            # Why, never the token: the log says what to fix at the issuer or the client.
            logger.info("bearer token refused: %s", exc)
            return None
        return self._access_token(token, claims)

    async def _claims(self, token: str) -> dict[str, Any]:
        import jwt  # deferred: see the TYPE_CHECKING import

        header = jwt.get_unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        key = await self._keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise jwt.InvalidKeyError(f"no signing key {kid!r} in the issuer's JWKS")
        if not isinstance(alg, str) or alg not in key.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not allowed for key {kid!r}")
        s = self._settings
        return jwt.decode(
            token,
            key.jwk.key,
            algorithms=[alg],
            audience=s.audience,
            issuer=s.issuer,
            leeway=s.leeway_seconds,
            options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False},
        )

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken | None:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            logger.info("bearer token refused: no subject")
            return None
        name = claims.get(self._settings.name_claim)
        principal = name.strip() if isinstance(name, str) and name.strip() else subject
        client = claims.get("client_id") or claims.get("azp") or subject
        # Who it is travels in `claims` (the configured name claim, else `sub`): tools read it there.
        return AccessToken(
            token=token,
            client_id=str(client),
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self._settings.audience,  # checked above: it is in `aud`
            subject=subject,
            claims={"iss": claims["iss"], "principal": principal},  # the SDK keys sessions on iss + sub
        )


def _scopes(claims: dict[str, Any]) -> list[str]:
    """`scope` (RFC 9068: space-separated) or `scp` (a list, as some issuers send it)."""
    found = claims.get("scope", claims.get("scp", ""))
    if isinstance(found, str):
        return found.split()
    return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []


def sdk_auth(settings: AuthSettings) -> SDKAuthSettings:
    """The SDK's resource-server settings: every request needs a valid token with at least parts:read."""
    return SDKAuthSettings(
        issuer_url=AnyHttpUrl(settings.issuer),
        resource_server_url=AnyHttpUrl(settings.audience),
        required_scopes=[READ],
        validate_token_resource=True,
    )


def missing_scope(tool: str) -> CallToolResult | None:
    """The tool error for a token that lacks `tool`'s scope; None when it may run (or there is no OAuth)."""
    token = get_access_token()
    if token is None:
        return None
    needed = TOOL_SCOPES.get(tool)
    if needed is not None and needed in token.scopes:
        return None
    what = f"needs scope {needed}" if needed else "is not granted to any scope"
    return error_result(
        "INSUFFICIENT_SCOPE",
        tool,
        f"{what}; this token has {' '.join(token.scopes) or 'no scopes'}. "
        "Ask your administrator to grant it, sign in again, and retry. Do not retry with the same token.",
    )


# --- exposure ------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def exposure_refusal(server: ServerSettings) -> str | None:
    """Why serving HTTP on `server.host` is refused, or None. Loopback is always allowed."""
    if is_loopback(server.host):
        return None
    if server.auth is None or not server.auth.allowed_hosts:
        return (
            f"refusing to serve HTTP on {server.host}: it is not a loopback address, so anyone who reaches it "
            "could order. Configure [server.auth] (issuer, audience, jwks_url) with allowed_hosts (the host "
            "names clients use), or bind to 127.0.0.1 behind a proxy that authenticates."
        )
    return None


def transport_security(server: ServerSettings, public_url: str | None = None) -> TransportSecuritySettings:
    """Exact Host and Origin allow-lists: loopback names with our port, what `[server.auth]` lists, and
    the approval links' own address (`[approvals] public_url`), where people open and post the page."""
    loopback = [f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}"]
    hosts = [*loopback, *(server.auth.allowed_hosts if server.auth else [])]
    origins = [*(f"http://{h}" for h in loopback), *(server.auth.allowed_origins if server.auth else [])]
    if public_url:
        public = urlsplit(public_url)
        hosts.append(public.netloc)
        origins.append(f"{public.scheme}://{public.netloc}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class HostGuard:
    """Host and Origin checked on every HTTP request, whatever the path (/mcp, /approvals, metadata):
    421 for a Host not ours, 403 for a foreign Origin, before authentication or routing."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self.app = app
        self._check = TransportSecurityMiddleware(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = await self._check.validate_request(Request(scope, receive), is_post=False)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def with_metadata(app: ASGIApp, settings: AuthSettings) -> ASGIApp:
    """RFC 9728 metadata listing every scope (the SDK's lists only the required one), before `app`."""
    [route] = create_protected_resource_routes(
        resource_url=AnyHttpUrl(settings.audience),
        authorization_servers=[AnyHttpUrl(settings.issuer)],
        scopes_supported=SCOPES,
        resource_name="parts-mcp",
    )
    return _First(route, app)


class _First:
    """`route`'s path to `route`, everything else (the lifespan included) to `app`: a Starlette Mount
    would not pass the lifespan on to the SDK's app."""

    def __init__(self, route: Route, app: ASGIApp) -> None:
        self.route, self.app = route, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.route.path:
            await self.route(scope, receive, send)
        else:
            await self.app(scope, receive, send)
