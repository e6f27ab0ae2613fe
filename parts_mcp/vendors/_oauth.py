"""OAuth2 client-credentials tokens for vendors that use them (Keyloop, PartsSource).

A token is fetched once, cached until shortly before it expires, and shared by every concurrent
call: one fetch in flight at a time. A 401 from the API invalidates it so the caller can retry
once with a new one. The token and the client secret never appear in errors or logs.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, Literal, cast

import anyio
import httpx2

from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors.base import (
    HttpPolicy,
    VendorAuthError,
    VendorConnectionError,
    VendorError,
    VendorRateLimited,
    VendorUnavailable,
    clean_text,
    retry_after_seconds,
)


class ClientCredentials:
    """A cached client-credentials access token.

    `auth_style` is how the client authenticates to the token endpoint: "basic" (HTTP Basic, as
    Cognito prefers) or "body" (client_id/client_secret form fields, as Apigee expects).
    """

    def __init__(
        self,
        vendor: str,
        http: httpx2.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        auth_style: Literal["basic", "body"] = "body",
        refresh_margin: float = 60.0,
        policy: HttpPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vendor = vendor
        self._http = http
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._auth_style = auth_style
        self._margin = refresh_margin
        self._policy = policy or HttpPolicy()
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = anyio.Lock()

    @property
    def secrets(self) -> list[str]:
        """Values to redact from anything shown: the client secret and the current token."""
        return [s for s in (self._secret, self._token) if s]

    async def token(self) -> str:
        """A valid access token, fetched only when none is cached or it is about to expire.

        Raises:
            VendorAuthError: the token endpoint refused the credentials.
            VendorError: the token endpoint failed or could not be reached.
        """
        if self._token is not None and self._clock() < self._expires:
            return self._token
        async with self._lock:
            # Whoever held the lock before us may have fetched one already.
            if self._token is not None and self._clock() < self._expires:
                return self._token
            self._token, lifetime = await self._fetch()
            self._expires = self._clock() + max(lifetime - self._margin, lifetime / 2)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` after the API refused it (401), unless a newer one replaced it already."""
        if self._token == token:
            self._token = None
            self._expires = 0.0

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        headers = {"Accept": "application/json"}
        if self._auth_style == "basic":
            basic = base64.b64encode(f"{self._client_id}:{self._secret}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        else:
            form |= {"client_id": self._client_id, "client_secret": self._secret}
        policy = self._policy
        timeout = policy.timeouts()
        try:
            with anyio.fail_after(policy.deadline):
                response = await self._http.post(self._url, data=form, headers=headers, timeout=timeout)
        except (TimeoutError, httpx2.TimeoutException) as exc:
            # No API request has been sent while we wait for a token: nothing can have been committed.
            raise VendorConnectionError(
                self._vendor, f"{self._vendor}'s token endpoint did not answer in time", sent=False
            ) from exc
        except httpx2.TransportError as exc:
            raise VendorConnectionError(
                self._vendor, f"could not reach {self._vendor}'s token endpoint", sent=False
            ) from exc
        if response.status_code in (400, 401, 403):
            raise VendorAuthError(
                self._vendor,
                f"{self._vendor}'s token endpoint refused the client credentials ({response.status_code}); "
                "check client_id and client_secret.",
                code="TOKEN_REFUSED",
                status=response.status_code,
            )
        if response.status_code == 429:
            raise VendorRateLimited(
                self._vendor,
                f"{self._vendor}'s token endpoint is rate limiting.",
                retry_after=retry_after_seconds(response),
                status=429,
            )
        if not response.is_success:
            raise VendorUnavailable(
                self._vendor,
                f"{self._vendor}'s token endpoint failed ({response.status_code}).",
                status=response.status_code,
                not_processed=True,
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        body: dict[str, Any] = cast(dict[str, Any], data) if isinstance(data, dict) else {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorError(
                self._vendor, f"{self._vendor}'s token endpoint sent no access_token", code="TOKEN_MALFORMED"
            )
        # Apigee sends expires_in as a string ("3599"); Cognito as a number.
        lifetime = parse.integer(body.get("expires_in"))
        return token, float(lifetime if lifetime and lifetime > 0 else 300)

    def __repr__(self) -> str:
        return f"ClientCredentials({self._vendor!r}, {clean_text(self._url, 80)!r})"
