"""Guard rails before every write: PO policy, content binding, confirmation tokens, idempotency keys.

A confirmation token is `<payload>.<signature>`: the payload names the vendor, PO, a SHA-256 of the
exact order content *and* its previewed total, an expiry and a random id; the signature is an
HMAC with a server secret the model never sees. It is spent in the same transaction that records
the intent, so it works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from parts_mcp.domain import Money, Preview
from parts_mcp.vendors.base import OrderRequest


class GuardError(Exception):
    """An order refused by policy before anything was sent. `field` names the argument at fault."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "GUARD") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


def check_po_number(po_number: str, pattern: re.Pattern[str]) -> str:
    """The PO number, trimmed, if it satisfies the configured pattern.

    Raises:
        GuardError: the PO number is missing or malformed.
    """
    value = po_number.strip()
    if not value:
        raise GuardError(
            "po_number is required: every order must carry your purchase order number. Ask the user for it.",
            field="po_number",
            code="PO_REQUIRED",
        )
    if not pattern.fullmatch(value):
        raise GuardError(
            f"po_number {value!r} does not match this server's PO format ({pattern.pattern}). "
            "Ask the user for the correct purchase order number.",
            field="po_number",
            code="PO_MALFORMED",
        )
    return value


def content_hash(request: OrderRequest, identity: Mapping[str, str] | None = None) -> str:
    """SHA-256 of the order's content in canonical form: what one PO number may name.

    `identity` maps a part_id to what the part really is, for vendors whose part_ids are
    short-lived tokens (Skynet issues a new one on every look-up): the same order looked up again
    is still the same order.
    """
    identity = identity or {}
    canonical = {
        "vendor": request.vendor,
        "po_number": request.po_number.casefold(),
        "items": [[identity.get(item.part_id, item.part_id), item.quantity] for item in request.items],
        "notes": request.notes or "",
        "options": dict(sorted((request.options or {}).items())),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def priced_hash(digest: str, preview: Preview) -> str:
    """The content hash bound to the previewed prices: a price change since the preview changes it."""
    # Resolved options (defaults from config included) are part of what the human confirmed.
    options = json.dumps(preview.options, sort_keys=True, default=str)
    priced = [digest, str(preview.total), preview.price_basis.value, options, *preview.excludes]
    priced += [f"{line.part_number}|{line.quantity}|{line.unit_price}" for line in preview.lines]
    return hashlib.sha256("\n".join(priced).encode()).hexdigest()


def idempotency_key(account: str, po_number: str, digest: str, attempt: int) -> str:
    """Derived from the intent, so every retry of it, before or after a restart, sends the same key.

    `attempt` moves on only after the vendor definitively refused the previous one.
    """
    text = f"{account}\n{po_number.casefold()}\n{digest}\n{attempt}"
    raw = bytearray(hashlib.sha256(text.encode()).digest()[:16])
    # A UUID-shaped key suits every vendor: Skynet takes any string, PartsSource requires a UUID.
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: custom (RFC 9562)
    raw[8] = (raw[8] & 0x3F) | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


@dataclass(frozen=True)
class Confirmation:
    token: str
    token_id: str
    expires_at: datetime


class TokenError(GuardError):
    pass


class ConfirmationTokens:
    """Mints and checks confirmation tokens bound to one exact priced order."""

    def __init__(self, secret: bytes | None, ttl: timedelta, clock: Callable[[], datetime] | None = None) -> None:
        # A per-process secret means tokens do not survive a restart; configure one for several replicas.
        self._secret = secret or secrets.token_bytes(32)
        self._ttl = ttl
        self._clock = clock or (lambda: datetime.now(UTC))

    def mint(self, request: OrderRequest, digest: str, preview: Preview) -> Confirmation:
        expires = self._clock() + self._ttl
        token_id = secrets.token_urlsafe(12)
        payload = {
            "v": request.vendor,
            "po": request.po_number,
            "h": priced_hash(digest, preview),
            "t": str(preview.total),
            "exp": int(expires.timestamp()),
            "id": token_id,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return Confirmation(token=f"{body}.{self._sign(body)}", token_id=token_id, expires_at=expires)

    def verify(
        self, token: str, request: OrderRequest, digest: str, preview: Preview, confirmed_total: str | None
    ) -> str:
        """The token's id, if it confirms exactly this priced order and total.

        Raises:
            TokenError: forged, expired or for other content (`code` says which), or a wrong total.
        """
        body, _, signature = token.strip().partition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise TokenError(
                "confirmation_token is not one this server issued. Call place_order without it to get a preview "
                "and a fresh token.",
                field="confirmation_token",
                code="TOKEN_INVALID",
            )
        payload: dict[str, Any] = json.loads(_unb64(body))
        if self._clock().timestamp() > payload["exp"]:
            raise TokenError(
                "confirmation_token has expired. Call place_order without it for a new preview, show it to the "
                "user again, and confirm with the new token.",
                field="confirmation_token",
                code="TOKEN_EXPIRED",
            )
        if payload["v"] != request.vendor or payload["po"] != request.po_number:
            raise TokenError(
                f"was issued for vendor {payload['v']!r}, PO {payload['po']!r}, not this order. Nothing was ordered. "
                "Use the token from this order's own preview, or call place_order without confirmation_token for "
                "a new preview and confirm it with the user.",
                field="confirmation_token",
                code="TOKEN_MISMATCH",
            )
        if payload["h"] != priced_hash(digest, preview):
            previous = payload["t"]
            raise TokenError(
                "This order is not the one the user confirmed: the items, quantities, notes, options or prices "
                f"changed since the preview (previewed total {previous}, now {preview.total}). Call place_order "
                "without confirmation_token for a new preview and confirm again with the user.",
                field="confirmation_token",
                code="TOKEN_CONTENT_CHANGED",
            )
        _check_total(confirmed_total, preview)
        return str(payload["id"])

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())


def _check_total(confirmed_total: str | None, preview: Preview) -> None:
    """The total the user confirmed is given, well formed and exactly the previewed total."""
    if confirmed_total is None:
        raise TokenError(
            f"confirmed_total is required with confirmation_token: the total the user confirmed, e.g. "
            f'"{preview.total}".',
            field="confirmed_total",
            code="TOTAL_REQUIRED",
        )
    try:
        confirmed = Money.parse(confirmed_total)
    except ValueError as exc:
        raise TokenError(
            f'confirmed_total: {exc}. Pass the previewed total exactly, e.g. "{preview.total}".',
            field="confirmed_total",
            code="TOTAL_MALFORMED",
        ) from exc
    if confirmed != preview.total:
        raise TokenError(
            f"confirmed_total {confirmed_total!r} is not the previewed total {preview.total}. Nothing was "
            "ordered. Show the preview to the user and confirm exactly that total.",
            field="confirmed_total",
            code="TOTAL_MISMATCH",
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
