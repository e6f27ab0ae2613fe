"""The human's confirmation, checked before anything is claimed or sent.

A preview gets a single-use token bound to the exact request, content and total (`required`); a
confirmed call's token is verified against the same (`token`); a form's approval is held to the
vendor's price when it is sent (`still_priced`). Every refusal of a given token or approved price is
audited (a missing token is only refused); nothing here writes an intent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from parts_mcp.orders import billing
from parts_mcp.orders.guard import ConfirmationTokens, GuardError, TokenError
from parts_mcp.orders.ledger import Ledger
from parts_mcp.orders.preparing import Preparer
from parts_mcp.orders.results import ConfirmationRequired, NewOrder
from parts_mcp.vendors.base import VendorClient


class Confirmations:
    def __init__(
        self, ledger: Ledger, tokens: ConfirmationTokens, preparer: Preparer, vendor: Callable[[str], VendorClient]
    ) -> None:
        self._ledger = ledger
        self._tokens = tokens
        self._preparer = preparer
        self._vendor = vendor

    async def required(self, order: NewOrder, actor: str) -> ConfirmationRequired:
        """A preview and a token to confirm it with; nothing is written but an audit entry."""
        confirmation = self._tokens.mint(order.request, order.content_hash, order.preview)
        await self._ledger.audit(
            "previewed",
            actor=actor,
            vendor=order.request.vendor,
            po_number=order.request.po_number,
            total=str(order.preview.total),
            content_hash=order.content_hash,
            token_id=confirmation.token_id,
        )
        return ConfirmationRequired(order.preview, confirmation.token, confirmation.expires_at)

    async def token(self, order: NewOrder, actor: str, token: str | None, confirmed_total: str | None) -> str:
        """The id of the token that confirms exactly this order and total (spent when the intent is claimed).

        Raises:
            TokenError: no token, or one forged, expired, spent, for other content, or for another total.
        """
        if token is None:
            raise TokenError("is required.", field="confirmation_token")
        try:
            return self._tokens.verify(token, order.request, order.content_hash, order.preview, confirmed_total)
        except TokenError as exc:
            await self._refused(order, actor, exc.code)
            raise

    async def still_priced(self, order: NewOrder, actor: str) -> NewOrder:
        """The order at the vendor's price now, if no higher than what the human approved.

        Raises:
            GuardError: PRICE_CHANGED, a price rose (or the lines changed) since the human saw them.
        """
        approved = order.preview
        now = await self._preparer.reprice(self._vendor(order.request.vendor), order)
        rise = billing.price_rise(approved, now)
        if rise is None:
            # Send at today's price, held to the bound the human approved.
            return replace(order, preview=now.model_copy(update={"approval_limit": approved.approval_limit}))
        await self._refused(order, actor, "PRICE_CHANGED", approved=str(approved.total), now=str(now.total))
        raise GuardError(
            f"{rise} since the user approved the order, so it was not sent; nothing was ordered. Call place_order "
            "again with the same arguments: the user will see the new price and can approve it or not.",
            field="items",
            code="PRICE_CHANGED",
        )

    async def _refused(self, order: NewOrder, actor: str, reason: str, **details: Any) -> None:
        await self._ledger.audit(
            "confirmation_refused",
            actor=actor,
            vendor=order.request.vendor,
            po_number=order.request.po_number,
            reason=reason,
            **details,
        )
