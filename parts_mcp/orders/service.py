"""The orders service: look-up fan-out, guarded placement, get and list. No MCP imports.

Placement is two calls around a human: `prepare` validates and prices the order (nothing written),
the caller gets the human's confirmation (elicitation or a confirmation token), then `place`
records the intent durably and only then calls the vendor. A PO number already in the ledger
short-circuits to `resume`, which answers from the ledger or re-drives the same intent with the
same idempotency key; it never creates a second order.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Literal, TypeVar

import anyio

from parts_mcp.domain import (
    LookupResult,
    Money,
    Order,
    OrderItem,
    OrderStatus,
    OrderSummary,
    Part,
    Preview,
    Suggestion,
)
from parts_mcp.orders import listing
from parts_mcp.orders.guard import (
    ConfirmationTokens,
    GuardError,
    TokenError,
    check_po_number,
    content_hash,
    idempotency_key,
)
from parts_mcp.orders.ledger import Budget, ClaimResult, Intent, IntentState, Ledger, lease_owner
from parts_mcp.vendors._search import MAX_SUGGESTED_QUERIES
from parts_mcp.vendors.base import (
    NotSupported,
    OrderQuery,
    OrderRequest,
    VendorClient,
    VendorError,
    VendorInvalidRequest,
    VendorNotFound,
    clean_text,
)
from parts_mcp.vendors.part_ids import PartResolver

logger = logging.getLogger(__name__)
T = TypeVar("T")

ConfirmationMode = Literal["auto", "elicit", "token"]
MAX_ITEMS = 100
MAX_QUERIES = 200
# A vendor that missed more queries than this is being bulk-checked, not searched: no second look there.
MAX_LOOKED_AGAIN = MAX_SUGGESTED_QUERIES
MAX_SUGGESTIONS = 3  # per not-found query, across vendors
NOTES_LIMIT = 1000
MAX_LISTED_PER_VENDOR = 1000
# How long one process may drive an intent before another may take over: longer than any send takes.
LEASE_SECONDS = 900.0


@dataclass(frozen=True)
class GuardPolicy:
    confirmation: ConfirmationMode = "auto"
    po_pattern: re.Pattern[str] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,39}$")
    max_order_total: Decimal | None = Decimal("25000.00")
    max_daily_total_per_vendor: Decimal | None = None
    order_vendors: frozenset[str] | None = None
    read_only: bool = False
    token_ttl: timedelta = timedelta(minutes=10)


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class VendorFailure:
    vendor: str
    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class LookupOutcome:
    parts: list[Part]
    not_found: list[str]
    vendor_errors: list[VendorFailure]
    # Near misses for the not_found queries, in not_found's order, best first within each query
    # (at most MAX_SUGGESTIONS a query, across vendors).
    suggestions: list[Suggestion] = field(default_factory=list)


@dataclass
class Prepared:
    """A validated order: either already known to the ledger, or priced and awaiting confirmation."""

    request: OrderRequest
    content_hash: str
    display_name: str
    existing: Intent | None = None
    preview: Preview | None = None
    previous_attempt: int = 0
    # What the human must know before confirming that is not about the vendor's pricing.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConfirmationRequired:
    preview: Preview
    confirmation_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Placed:
    order: Order
    idempotency_key: str
    replayed: bool | None  # None: a resend under the same key, so the vendor may or may not have replayed
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutcomeUnknown:
    vendor: str
    po_number: str
    idempotency_key: str
    reason: str
    next_steps: str


@dataclass(frozen=True)
class FoundOrder:
    order: Order
    note: str | None = None  # how the order was found, when not by its own id


@dataclass(frozen=True)
class OrderPage:
    orders: list[OrderSummary]
    next_cursor: str | None
    notes: list[str]
    vendor_errors: list[VendorFailure]


# ------------------------------------------------------------------------------------------- helpers


class PartCache:
    """Offers from this process's recent look-ups, so place_order can price the part_ids passed back.

    Only a shortcut: a part_id missing here was looked up elsewhere and is re-found at the vendor.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._parts: OrderedDict[tuple[str, str], Part] = OrderedDict()

    def put(self, part: Part) -> None:
        key = (part.vendor, part.part_id)
        self._parts[key] = part
        self._parts.move_to_end(key)
        while len(self._parts) > self._capacity:
            self._parts.popitem(last=False)

    def get(self, vendor: str, part_id: str) -> Part | None:
        return self._parts.get((vendor, part_id))


class KeyedLocks:
    """One lock per (vendor, PO) while anyone holds or waits for it: same-PO calls in one process queue up."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (anyio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _nearest(
    suggestions: Sequence[Suggestion], not_found: Sequence[str], vendors: Mapping[str, int]
) -> list[Suggestion]:
    """The few best suggestions for each not-found query, across vendors, in the order of `not_found`."""
    chosen: dict[str, list[Suggestion]] = {q.casefold(): [] for q in not_found}
    for suggestion in sorted(suggestions, key=lambda s: (-s.similarity, vendors.get(s.vendor, 0), s.part_number)):
        picked = chosen.get(suggestion.query.casefold())
        duplicate = picked is not None and any(
            (s.vendor, s.part_number) == (suggestion.vendor, suggestion.part_number) for s in picked
        )
        if picked is not None and not duplicate and len(picked) < MAX_SUGGESTIONS:
            picked.append(suggestion)
    return [s for q in not_found for s in chosen[q.casefold()]]


def _clean_notes(notes: str | None) -> str | None:
    if notes is None:
        return None
    cleaned = clean_text(notes, NOTES_LIMIT + 1)
    if len(cleaned) > NOTES_LIMIT:
        raise GuardError(f"notes is longer than {NOTES_LIMIT} characters; shorten it.", field="notes")
    return cleaned or None


# ------------------------------------------------------------------------------------------- service


class OrdersService:
    def __init__(
        self,
        vendors: Mapping[str, VendorClient],
        ledger: Ledger,
        policy: GuardPolicy,
        tokens: ConfirmationTokens,
        parts: PartCache,
        *,
        accounts: Mapping[str, str] | None = None,
        lookup_deadline: float = 20.0,
        owner: str | None = None,
        locks: KeyedLocks | None = None,
    ) -> None:
        self.vendors = dict(vendors)
        self.ledger = ledger
        self.policy = policy
        self.tokens = tokens
        self.parts = parts
        # What an idempotency key is scoped to: the vendor account, not just our name for it.
        self._accounts = dict(accounts or {})
        self._lookup_deadline = lookup_deadline
        # Within a process, same-PO calls queue on a lock; across processes sharing the ledger, a lease decides.
        self._locks = locks or KeyedLocks()
        self._owner = owner or lease_owner()

    def vendor(self, key: str, *, field_name: str = "vendor") -> VendorClient:
        try:
            return self.vendors[key]
        except KeyError:
            known = ", ".join(sorted(self.vendors)) or "none"
            raise GuardError(
                f"{field_name}: unknown vendor {key!r}; configured vendors: {known}.",
                field=field_name,
                code="UNKNOWN_VENDOR",
            ) from None

    # ---------------------------------------------------------------------------------- look-up

    async def lookup(self, queries: Sequence[str], vendors: Sequence[str] | None = None) -> LookupOutcome:
        wanted = list(dict.fromkeys(q for q in (clean_text(q, 120) for q in queries) if q))
        if not wanted:
            raise GuardError("query: give at least one part number or name.", field="query")
        if len(wanted) > MAX_QUERIES:
            raise GuardError(f"query: at most {MAX_QUERIES} entries per call.", field="query")
        keys = (
            list(dict.fromkeys(vendors)) if vendors else [k for k, v in self.vendors.items() if v.capabilities.lookup]
        )
        clients = [self.vendor(k, field_name="vendors") for k in keys]

        answered: dict[str, set[str]] = {}
        parts: list[Part] = []
        errors: list[VendorFailure] = []
        suggestions: list[Suggestion] = []

        async def ask(client: VendorClient) -> None:
            if not client.capabilities.lookup:
                errors.append(
                    VendorFailure(client.key, "NOT_SUPPORTED", f"{client.display_name} cannot look up parts.")
                )
                return
            deadline = anyio.current_time() + self._lookup_deadline
            result = await self._each_vendor(client, client.lookup(wanted), errors)
            if result is None:
                return
            result = await self._look_again(client, wanted, result, deadline)
            for part in result.parts:
                self.parts.put(part)
                parts.append(part)
            answered[client.key] = {q.casefold() for q in result.not_found}
            suggestions.extend(result.suggestions)

        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(ask, client)

        order = {k: i for i, k in enumerate(keys)}
        parts.sort(key=lambda p: order[p.vendor])
        errors.sort(key=lambda e: order[e.vendor])
        not_found = [q for q in wanted if answered and all(q.casefold() in nf for nf in answered.values())]
        return LookupOutcome(
            parts=parts, not_found=not_found, vendor_errors=errors, suggestions=_nearest(suggestions, not_found, order)
        )

    async def _look_again(
        self, client: VendorClient, wanted: Sequence[str], first: LookupResult, deadline: float
    ) -> LookupResult:
        """One more round at this vendor for what `first` missed, within what is left of its deadline.

        Best effort: a failure or a timeout here costs only what the second round would have added.
        """
        missed = {q.casefold() for q in first.not_found}
        again = [q for q in wanted if q.casefold() in missed]
        if not again or len(again) > MAX_LOOKED_AGAIN:
            return first
        second: LookupResult | None = None
        with anyio.move_on_after(deadline - anyio.current_time()):
            try:
                second = await client.look_again(again)
            except VendorError as exc:
                logger.info("second look-up at %s failed: %s", client.key, exc.code)
            except Exception:
                logger.exception("second look-up at %s failed", client.key)
        if second is None:
            return first
        found_again = {q.casefold() for q in again} - {q.casefold() for q in second.not_found}
        known = {p.part_id for p in first.parts}
        return LookupResult(
            parts=[*first.parts, *(p for p in second.parts if p.part_id not in known)],
            not_found=[q for q in first.not_found if q.casefold() not in found_again],
            suggestions=[*first.suggestions, *second.suggestions],
        )

    async def _each_vendor(self, client: VendorClient, call: Awaitable[T], errors: list[VendorFailure]) -> T | None:
        """One vendor's part of a fan-out, under its own deadline: a failure becomes an entry in `errors`."""
        try:
            with anyio.fail_after(self._lookup_deadline):
                return await call
        except TimeoutError:
            message = f"{client.display_name} did not answer within {self._lookup_deadline:g}s."
            errors.append(VendorFailure(client.key, "TIMEOUT", message, retryable=True))
        except VendorError as exc:
            errors.append(VendorFailure(client.key, exc.code, exc.message, exc.retryable))
        except Exception:
            # One vendor's unreadable answer must not cost the others' results.
            logger.exception("call to %s failed", client.key)
            errors.append(VendorFailure(client.key, "INTERNAL", f"{client.display_name}'s answer could not be read."))
        return None

    # -------------------------------------------------------------------------------- placement

    async def prepare(
        self,
        vendor: str,
        po_number: str,
        items: Sequence[OrderItem],
        notes: str | None,
        options: Mapping[str, Any] | None,
    ) -> Prepared:
        """Validate and price an order; nothing is written.

        Raises:
            GuardError: a policy refuses the order (the field is named).
            VendorError: the vendor refused an item or could not price it.
        """
        client = self.vendor(vendor)
        po = check_po_number(po_number, self.policy.po_pattern)
        allowed = self.policy.order_vendors
        if allowed is not None and vendor not in allowed:
            raise GuardError(
                f"vendor: this server does not place orders with {vendor!r} (guard.order_vendors allows "
                f"{', '.join(sorted(allowed)) or 'none'}); it can still look parts up and read orders there.",
                field="vendor",
                code="VENDOR_NOT_ALLOWED",
            )
        if not client.capabilities.place:
            # The client knows what its users can do instead; its own refusal carries that advice.
            await client.preview(OrderRequest(vendor=vendor, po_number=po, items=tuple(items)), {})
            raise NotSupported(client.key, f"{client.display_name}'s API cannot create orders.", capability="place")
        if not items:
            raise GuardError("items: give at least one {part_id, quantity}.", field="items")
        if len(items) > MAX_ITEMS:
            raise GuardError(f"items: at most {MAX_ITEMS} lines per order.", field="items")
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.part_id in seen:
                raise GuardError(
                    f"items[{index}].part_id repeats items[{seen[item.part_id]}]; put the whole quantity on one line.",
                    field=f"items[{index}].part_id",
                )
            seen[item.part_id] = index
        request = OrderRequest(
            vendor=vendor, po_number=po, items=tuple(items), notes=_clean_notes(notes), options=dict(options or {})
        )
        as_given = content_hash(request)
        prepared = Prepared(request=request, content_hash=as_given, display_name=client.display_name)
        existing = await self.ledger.get(vendor, po)
        if existing is not None and existing.state is not IntentState.REJECTED:
            if existing.request.get("hash_as_given") != as_given:
                # Not the same arguments; maybe the same order under fresh part tokens.
                prepared.content_hash = self._identity_hash(client, request, await self._known_parts(client, request))
                if existing.content_hash != prepared.content_hash:
                    raise GuardError(
                        f"po_number {po!r} already names a different {client.display_name} order "
                        f"(intent {existing.state.value}"
                        + (f", order {existing.order_id}" if existing.order_id else "")
                        + "). One PO number names one order: use a new PO number, or repeat the original items "
                        "exactly.",
                        field="po_number",
                        code="PO_CONFLICT",
                    )
            prepared.content_hash = existing.content_hash
            prepared.existing = existing
            return prepared
        if existing is not None:
            prepared.previous_attempt = existing.attempt

        parts = await self._known_parts(client, request)
        prepared.content_hash = self._identity_hash(client, request, parts)
        prepared.preview = await client.preview(request, parts)
        await self._check_limits(prepared.preview)
        prepared.warnings = await self._po_elsewhere(vendor, po)
        return prepared

    async def _po_elsewhere(self, vendor: str, po_number: str) -> list[str]:
        """Allowed, but never silent: the same PO number already names an order at another vendor."""
        return [
            f"PO {po_number} is also {'order ' + other.order_id if other.order_id else 'an order'} at "
            f"{other.vendor} ({other.state.value}, {other.created_at:%Y-%m-%d}). Check that this is a separate order."
            for other in await self.ledger.by_po(po_number)
            if other.vendor != vendor and other.state is not IntentState.REJECTED
        ]

    @staticmethod
    def _identity_hash(client: VendorClient, request: OrderRequest, parts: Mapping[str, Part]) -> str:
        if not client.capabilities.ephemeral_part_ids:
            return content_hash(request)
        return content_hash(request, {part_id: f"#{part.part_number}" for part_id, part in parts.items()})

    async def _known_parts(self, client: VendorClient, request: OrderRequest) -> dict[str, Part]:
        known: dict[str, Part] = {}
        missing: list[str] = []
        for item in request.items:
            part = self.parts.get(client.key, item.part_id)
            if part is None:
                missing.append(item.part_id)
            else:
                known[item.part_id] = part
        if missing:
            known |= await self._refind(client, missing)
        for index, item in enumerate(request.items):
            if item.part_id not in known:
                raise GuardError(
                    f"items[{index}].part_id {clean_text(item.part_id, 60)!r} names no part {client.display_name} "
                    "offers now (not a part_id from lookup_parts, or the offer is gone). Call lookup_parts and use a "
                    "part_id from its results.",
                    field=f"items[{index}].part_id",
                    code="UNKNOWN_PART",
                )
        return known

    async def _refind(self, client: VendorClient, part_ids: Sequence[str]) -> dict[str, Part]:
        """Offers for part_ids this process has not looked up (another process did, or it restarted).

        A self-describing part_id is re-found at the vendor from the id alone; what is left is tried
        as a part number, forgiven when it names exactly one part. Either way the vendor prices it.
        """
        found = await client.resolve_parts(part_ids) if isinstance(client, PartResolver) else {}
        rest = [part_id for part_id in part_ids if part_id not in found]
        if rest:
            looked_up = await client.lookup(rest)
            for part in looked_up.parts:
                self.parts.put(part)
            for part_id in rest:
                matches = [p for p in looked_up.parts if p.part_number.casefold() == part_id.casefold()]
                if len(matches) == 1:
                    found[part_id] = matches[0]
        for part in found.values():
            self.parts.put(part)
        return found

    async def _check_limits(self, preview: Preview) -> None:
        total = preview.total
        limit = self.policy.max_order_total
        if limit is not None and total.amount > limit:
            raise GuardError(
                f"The order total {total} exceeds this server's limit of {limit} per order "
                "(guard.max_order_total). Split it only if the user's purchasing policy allows, or ask an "
                "administrator to raise the limit.",
                field="items",
                code="OVER_LIMIT",
            )
        daily = self.policy.max_daily_total_per_vendor
        if daily is None:
            return
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        spent = Money.total(
            (
                m
                for m in map(Money.parse, await self.ledger.confirmed_totals(preview.vendor, midnight))
                if m.currency == total.currency
            ),
            total.currency,
        )
        if (spent + total).amount > daily:
            raise GuardError(
                f"This order ({total}) would take today's orders with {preview.vendor} to {(spent + total).rounded()}, "
                f"over this server's daily limit of {daily} per vendor (guard.max_daily_total_per_vendor). "
                "Ask an administrator, or order tomorrow.",
                field="items",
                code="OVER_DAILY_LIMIT",
            )

    async def confirmation_required(self, prepared: Prepared, actor: str) -> ConfirmationRequired:
        """A preview and a token to confirm it with; nothing is written but an audit entry."""
        assert prepared.preview is not None
        confirmation = self.tokens.mint(prepared.request, prepared.content_hash, prepared.preview)
        await self.ledger.audit(
            "previewed",
            actor=actor,
            vendor=prepared.request.vendor,
            po_number=prepared.request.po_number,
            total=str(prepared.preview.total),
            content_hash=prepared.content_hash,
            token_id=confirmation.token_id,
        )
        return ConfirmationRequired(
            preview=prepared.preview,
            confirmation_token=confirmation.token,
            expires_at=confirmation.expires_at,
        )

    async def place(
        self,
        prepared: Prepared,
        *,
        actor: str,
        confirmed_by: Literal["token", "elicitation"],
        confirmation_token: str | None = None,
        confirmed_total: str | None = None,
    ) -> Placed | OutcomeUnknown:
        """Record the confirmed intent, then send it once.

        Raises:
            GuardError: the confirmation does not hold (token forged, expired, spent, for other content;
                total not the previewed one).
            VendorError: the vendor definitively refused; nothing was ordered.
        """
        if prepared.existing is not None:
            return await self.resume(prepared, actor)
        assert prepared.preview is not None
        request, preview = prepared.request, prepared.preview
        token_id: str | None = None
        if confirmed_by == "token":
            if confirmation_token is None:
                raise TokenError("confirmation_token is required.", field="confirmation_token")
            try:
                token_id = self.tokens.verify(
                    confirmation_token, request, prepared.content_hash, preview, confirmed_total
                )
            except TokenError as exc:
                await self.ledger.audit(
                    "confirmation_refused",
                    actor=actor,
                    vendor=request.vendor,
                    po_number=request.po_number,
                    reason=exc.code,
                )
                raise
        await self._check_limits(preview)

        attempt = prepared.previous_attempt + 1
        now = datetime.now(UTC)
        intent = Intent(
            id=str(uuid.uuid4()),
            vendor=request.vendor,
            po_number=request.po_number,
            content_hash=prepared.content_hash,
            attempt=attempt,
            idempotency_key=idempotency_key(
                self._accounts.get(request.vendor, request.vendor), request.po_number, prepared.content_hash, attempt
            ),
            state=IntentState.PENDING,
            request={
                "hash_as_given": content_hash(request),
                "items": [item.model_dump() for item in request.items],
                "notes": request.notes,
                "options": dict(request.options or {}),
            },
            preview=preview.model_dump(mode="json"),
            confirmed_total=str(preview.total),
            confirmed_by=f"{confirmed_by}:{actor}",
            created_at=now,
            updated_at=now,
        )
        async with self._locks.hold((request.vendor, request.po_number)):
            daily = self.policy.max_daily_total_per_vendor
            budget = (
                Budget(daily, _midnight(), preview.total.amount, preview.total.currency) if daily is not None else None
            )
            claim, stored = await self.ledger.claim(
                intent, token_id, actor, owner=self._owner, lease_seconds=LEASE_SECONDS, budget=budget
            )
            if claim is ClaimResult.OVER_BUDGET:
                raise GuardError(
                    f"This order ({preview.total}) would take today's orders with {request.vendor} over this "
                    f"server's daily limit of {daily} per vendor (guard.max_daily_total_per_vendor). Nothing was "
                    "ordered. Ask an administrator, or order tomorrow.",
                    field="items",
                    code="OVER_DAILY_LIMIT",
                )
            if claim is ClaimResult.TOKEN_USED:
                raise TokenError(
                    "confirmation_token was already used. Call place_order without it for a new preview.",
                    field="confirmation_token",
                    code="TOKEN_USED",
                )
            if claim is ClaimResult.EXISTS:
                assert stored is not None
                if stored.content_hash != prepared.content_hash:
                    raise GuardError(
                        f"po_number {request.po_number!r} was just used for a different order.",
                        field="po_number",
                        code="PO_CONFLICT",
                    )
                return await self._resume_locked(stored, prepared, actor)
            try:
                return await self._send(intent, request, preview, actor, first=True)
            finally:
                await self._release(intent.id)

    async def resume(self, prepared: Prepared, actor: str = "unknown") -> Placed | OutcomeUnknown:
        """Answer a repeated PO from the ledger, or finish its intent without creating a second order."""
        assert prepared.existing is not None
        async with self._locks.hold((prepared.request.vendor, prepared.request.po_number)):
            # Another call may have finished this intent while we waited.
            current = await self.ledger.get(prepared.request.vendor, prepared.request.po_number) or prepared.existing
            return await self._resume_locked(current, prepared, actor)

    async def _resume_locked(self, intent: Intent, prepared: Prepared, actor: str) -> Placed | OutcomeUnknown:
        """Finish an intent that exists already, without ever creating a second order.

        PLACED is answered from the ledger; PENDING was never sent, so it is sent. SENT and UNKNOWN may
        have been committed: the vendor is asked first (by the order id it gave us, or by PO), and only
        a vendor that deduplicates by key, or a search that *succeeded* and found nothing, allows a send.
        """
        client = self.vendor(intent.vendor)
        if intent.state in (IntentState.PLACED, IntentState.REJECTED):
            return await self._settled(client, intent, prepared, actor)
        current = await self.ledger.lease(intent.id, self._owner, LEASE_SECONDS)
        if current is None:
            return self._unknown(
                client,
                intent,
                "Another parts-mcp process is placing this order right now. Call place_order again in a minute "
                "with the same arguments; do not create a new PO.",
            )
        try:
            if current.state is not intent.state:
                # It moved on while we waited for the lease: answer from what it is now.
                return await self._settled(client, current, prepared, actor)
            return await self._drive(client, current, prepared, actor)
        finally:
            await self._release(intent.id)

    async def _settled(
        self, client: VendorClient, intent: Intent, prepared: Prepared, actor: str
    ) -> Placed | OutcomeUnknown:
        if intent.state is IntentState.PLACED:
            assert intent.order is not None
            await self.ledger.audit("replayed", actor=actor, intent=intent)
            return Placed(
                order=Order.model_validate(intent.order), idempotency_key=intent.idempotency_key, replayed=True
            )
        if intent.state is IntentState.REJECTED:
            # The vendor refused it: nothing was ordered, and a new order needs a new confirmation.
            raise GuardError(
                f"{client.display_name} refused the order under po_number {intent.po_number!r}; nothing was ordered. "
                "Call place_order again without confirmation_token for a new preview.",
                field="po_number",
                code="REFUSED_BY_VENDOR",
            )
        return await self._drive(client, intent, prepared, actor)

    async def _release(self, intent_id: str) -> None:
        # Even when the call is being cancelled: a lease left behind would block other processes for minutes.
        with anyio.CancelScope(shield=True):
            await self.ledger.release(intent_id, self._owner)

    async def _drive(
        self, client: VendorClient, intent: Intent, prepared: Prepared, actor: str
    ) -> Placed | OutcomeUnknown:
        preview = Preview.model_validate(intent.preview)
        if intent.state is IntentState.PENDING:
            return await self._send(intent, prepared.request, preview, actor, first=True)
        caps = client.capabilities
        if intent.order_id and caps.get:
            try:
                return await self._adopt(intent, await client.get_order(intent.order_id), actor, "by its id")
            except VendorError as exc:
                logger.warning("reconciliation by id at %s failed: %s", client.key, exc.code)
        if caps.find_by_po:
            found, searched = await self._search(client, intent)
            if found is not None:
                return await self._adopt(intent, found, actor, "by its PO number")
            if not searched:
                return self._unknown(client, intent, f"{client.display_name} could not be searched for this PO.")
            stored_failure = ((intent.error or {}).get("status") or 0) >= HTTPStatus.INTERNAL_SERVER_ERROR
            if caps.replays_failures and stored_failure:
                # The old key would only replay its stored failure, and the search shows no order: a new key is safe.
                return await self._next_attempt(intent, prepared.request, preview, actor)
            return await self._send(intent, prepared.request, preview, actor, first=False)
        if caps.idempotency_key:
            return await self._send(intent, prepared.request, preview, actor, first=False)
        return self._unknown(client, intent, "An earlier attempt at this order may or may not have reached the vendor.")

    async def _next_attempt(
        self, intent: Intent, request: OrderRequest, preview: Preview, actor: str
    ) -> Placed | OutcomeUnknown:
        await self.ledger.transition(
            intent.id,
            IntentState.REJECTED,
            actor=actor,
            error={"code": "NOT_FOUND_AFTER_FAILURE", "message": "not at the vendor after a stored failure"},
        )
        attempt = intent.attempt + 1
        now = datetime.now(UTC)
        successor = replace(
            intent,
            id=str(uuid.uuid4()),
            attempt=attempt,
            state=IntentState.PENDING,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key(
                self._accounts.get(request.vendor, request.vendor), intent.po_number, intent.content_hash, attempt
            ),
            order_id=None,
            error=None,
        )
        claim, _ = await self.ledger.claim(successor, None, actor, owner=self._owner, lease_seconds=LEASE_SECONDS)
        if claim is not ClaimResult.CREATED:  # pragma: no cover - we hold the (vendor, PO) lock and lease
            raise GuardError("another call is already placing this PO; try again shortly.", field="po_number")
        try:
            return await self._send(successor, request, preview, actor, first=True)
        finally:
            await self._release(successor.id)

    async def _search(self, client: VendorClient, intent: Intent) -> tuple[Order | None, bool]:
        """(the order carrying this PO, whether the search itself worked). A failed search proves nothing."""
        try:
            return await client.find_order_by_po(intent.po_number), True
        except VendorError as exc:
            logger.warning("reconciliation search at %s failed: %s", client.key, exc.code)
        except Exception:
            logger.exception("reconciliation search at %s failed", client.key)
        return None, False

    async def _adopt(self, intent: Intent, order: Order, actor: str, how: str) -> Placed:
        order = order.model_copy(update={"po_number": order.po_number or intent.po_number})
        await self.ledger.transition(
            intent.id, IntentState.PLACED, actor=actor, order_id=order.order_id, order=order.model_dump(mode="json")
        )
        return Placed(
            order=order,
            idempotency_key=intent.idempotency_key,
            replayed=True,
            warnings=[f"An earlier attempt had placed this order; it was found at the vendor {how}."],
        )

    async def _send(
        self, intent: Intent, request: OrderRequest, preview: Preview, actor: str, *, first: bool
    ) -> Placed | OutcomeUnknown:
        """Send the intent. `first` is False when an earlier send may have been committed already."""
        client = self.vendor(intent.vendor)
        await self.ledger.transition(intent.id, IntentState.SENT, actor=actor)
        try:
            order = await client.place_order(request, preview, intent.idempotency_key)
        except VendorError as exc:
            error = {"code": exc.code, "message": exc.message, "status": exc.status}
            # Only a clean refusal of a first send is a rejection (which frees the PO for new content). A
            # refusal of a resend says nothing about the earlier attempt.
            if not exc.maybe_committed and first:
                await self.ledger.transition(intent.id, IntentState.REJECTED, actor=actor, error=error)
                raise
            if client.capabilities.find_by_po:
                found, _ = await self._search(client, intent)
                if found is not None:
                    return await self._adopt(intent, found, actor, "by its PO number")
            await self.ledger.transition(
                intent.id, IntentState.UNKNOWN, actor=actor, error=error, order_id=exc.order_id
            )
            if not exc.maybe_committed:
                # The resend was refused, but the first attempt may still have gone through: the vendor's
                # own advice ("place it again with new part_ids") would risk a second order.
                return self._unknown(
                    client,
                    intent,
                    f"A resend was refused ({exc.code}); whether the first attempt went through is unknown.",
                    check_vendor=True,
                )
            return self._unknown(client, intent, exc.message)
        except Exception:
            # An answer we could not read is no proof either way: the order may exist.
            logger.exception("reading %s's answer to an order failed", client.key)
            error = {"code": "UNREADABLE_ANSWER", "message": "the vendor's answer could not be read", "status": None}
            await self.ledger.transition(intent.id, IntentState.UNKNOWN, actor=actor, error=error)
            return self._unknown(client, intent, f"{client.display_name}'s answer could not be read.")
        order = order.model_copy(update={"po_number": order.po_number or intent.po_number})
        await self.ledger.transition(
            intent.id, IntentState.PLACED, actor=actor, order_id=order.order_id, order=order.model_dump(mode="json")
        )
        warnings = _total_warnings(order, Money.parse(intent.confirmed_total), preview.excludes)
        if not first:
            warnings.append(
                "An earlier attempt's answer was lost. This is the vendor's answer to the resend"
                + (
                    " with the same idempotency key: if the first attempt had gone through, this is that same order."
                    if client.capabilities.idempotency_key
                    else ", sent after a search found no order with this PO."
                )
            )
        # A resend under the same key may have returned the first attempt's order: then nobody knows.
        replayed = False if first or not client.capabilities.idempotency_key else None
        return Placed(order=order, idempotency_key=intent.idempotency_key, replayed=replayed, warnings=warnings)

    def _unknown(
        self, client: VendorClient, intent: Intent, reason: str, *, check_vendor: bool = False
    ) -> OutcomeUnknown:
        again = f"Call place_order again with the same vendor, po_number {intent.po_number!r} and the same items"
        if check_vendor:
            steps = (
                f"Do not place this order again and do not create a new PO for it. Check {client.display_name}'s "
                f"own records (for Skynet: the draft orders in its web account) for PO {intent.po_number!r}."
            )
        elif client.capabilities.find_by_po:
            steps = (
                f"Do not create a new PO for this. {again}: this server first searches {client.display_name} for "
                "that PO and sends the order only if it is not there, so nothing is ordered twice."
            )
        elif client.capabilities.idempotency_key:
            steps = (
                f"Do not create a new PO for this. {again}: it resends with the same idempotency key, and "
                f"{client.display_name} returns the original order if it was created, so nothing is ordered twice."
            )
        else:
            steps = (
                f"Do not place this order again. Check in {client.display_name} for an order with reference "
                f"{intent.po_number!r}; this server will not resend it on its own."
            )
        return OutcomeUnknown(
            vendor=intent.vendor,
            po_number=intent.po_number,
            idempotency_key=intent.idempotency_key,
            reason=reason,
            next_steps=steps,
        )

    # ------------------------------------------------------------------------------- get and list

    async def get_order(self, vendor: str, order_id: str) -> FoundOrder:
        """The vendor's view of an order, or the ledger's where the vendor cannot be asked.

        A PO number given as the order id is recognised: the answer is that PO's order, with a note.

        Raises:
            NotSupported: the vendor cannot be asked and this server did not place the order.
            VendorError: the vendor's own failure (not found, auth ...).
        """
        client = self.vendor(vendor)
        try:
            return FoundOrder(await self._get_order(client, order_id))
        except (VendorNotFound, VendorInvalidRequest, NotSupported):
            found = await self._order_for_po(client, order_id)
            if found is None:
                raise
            note = f"{order_id!r} is a PO number, not an order id: this is the order for that PO ({found.order_id})."
            return FoundOrder(found, note)

    async def _get_order(self, client: VendorClient, order_id: str) -> Order:
        if client.capabilities.get:
            try:
                return await client.get_order(order_id)
            except VendorNotFound:
                # A vendor may stop retaining old orders (Keyloop does); ours is still the record of what we placed.
                kept = await self.ledger.get_by_order_id(client.key, order_id)
                if kept is None or kept.order is None:
                    raise
                order = _ledger_order(kept)
                return order.model_copy(
                    update={"details": {**order.details, "vendor_note": f"{client.display_name} no longer has it."}}
                )
        intent = await self.ledger.get_by_order_id(client.key, order_id)
        if intent is None or intent.order is None:
            raise NotSupported(
                client.key,
                f"{client.display_name}'s API cannot look up orders, and {clean_text(order_id, 60)!r} is neither an "
                f"order id nor a PO number of an order this server placed. Check it in {client.display_name}'s own "
                "web account, or list_purchase_orders to see the orders this server placed.",
                capability="get",
            )
        return _ledger_order(intent)

    async def _order_for_po(self, client: VendorClient, po_number: str) -> Order | None:
        """The order a PO number names at this vendor: ours first, then the vendor's own search."""
        intent = await self.ledger.get(client.key, po_number)
        if intent is not None and intent.order_id:
            try:
                return await self._get_order(client, intent.order_id)
            except VendorError:
                return _ledger_order(intent) if intent.order is not None else None
        if client.capabilities.find_by_po:
            try:
                return await client.find_order_by_po(po_number)
            except VendorError:
                return None
        return None

    async def list_orders(
        self,
        *,
        vendor: str | None,
        statuses: Collection[OrderStatus] | None,
        po_number: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        """Orders newest first across vendors, one page at a time.

        Vendors that can list are asked (all at once, each under the look-up deadline); for those
        that cannot, the ledger's own orders stand in. Every filter is applied here again, so each
        vendor is filtered the same way whatever its API supports. The cursor is the last order's
        (created, vendor, id): the next page starts strictly after it, with no repeats and no gaps.

        Raises:
            GuardError: an unknown vendor or a cursor issued for other filters.
        """
        query = OrderQuery(
            statuses=frozenset(statuses) if statuses else None,
            po_number=po_number.strip() if po_number else None,
            created_after=_aware(created_after) if created_after else None,
            created_before=_aware(created_before) if created_before else None,
        )
        # Sorted: a set's order varies between processes, and a cursor must work in any of them.
        filters = listing.fingerprint({"vendor": vendor, **vars(query), "statuses": sorted(query.statuses or ())})
        position = listing.decode_cursor(cursor, filters) if cursor else None
        clients = [self.vendor(vendor)] if vendor else list(self.vendors.values())
        notes: list[str] = []
        errors: list[VendorFailure] = []
        summaries: list[OrderSummary] = []

        async def from_vendor(client: VendorClient) -> None:
            found = await self._each_vendor(client, client.list_orders(query, MAX_LISTED_PER_VENDOR), errors)
            if found is None:
                return
            if len(found) >= MAX_LISTED_PER_VENDOR:
                notes.append(
                    f"{client.display_name}: only the newest {MAX_LISTED_PER_VENDOR} orders are listed; "
                    "narrow the dates to see older ones."
                )
            summaries.extend(found)

        ledger_vendors = {c.key for c in clients if not c.capabilities.list}
        for client in clients:
            if client.key in ledger_vendors:
                notes.append(
                    f"{client.display_name} has no order listing in its API: its orders here are the ones this "
                    "server placed, from the local ledger, with the status they had when placed."
                )
        async with anyio.create_task_group() as group:
            for client in clients:
                if client.key not in ledger_vendors:
                    group.start_soon(from_vendor, client)
        if ledger_vendors:
            for intent in await self.ledger.placed_orders(vendor):
                if intent.vendor in ledger_vendors:
                    summaries.append(OrderSummary.of(_ledger_order(intent)))

        orders, next_cursor = listing.page(summaries, query, limit, position, filters)
        return OrderPage(orders=orders, next_cursor=next_cursor, notes=notes, vendor_errors=errors)


def _total_warnings(order: Order, confirmed: Money, excludes: Sequence[str]) -> list[str]:
    """Loud words when the vendor's figure is above what the human confirmed."""
    # With charges the preview left out (tax, shipping), the like-for-like figure is the subtotal.
    by_subtotal = bool(excludes) and order.subtotal is not None
    billed, label = (order.subtotal, "subtotal") if by_subtotal else (order.total, "total")
    if billed is None:
        return ["The vendor did not report a total; check the order before relying on it."]
    if billed.currency != confirmed.currency:
        return [f"ATTENTION: the vendor billed in {billed.currency}, the user confirmed {confirmed}."]
    warnings: list[str] = []
    if billed > confirmed:
        warnings.append(
            f"ATTENTION: the vendor's {label} {billed} is HIGHER than the confirmed {confirmed}. "
            "Tell the user now; the order exists and may need to be cancelled with the vendor."
        )
    if excludes and order.total is not None and order.total != billed:
        warnings.append(f"The vendor added {', '.join(excludes)}: the order's total is {order.total}.")
    return warnings


def _ledger_order(intent: Intent) -> Order:
    assert intent.order is not None
    return Order.model_validate(intent.order).model_copy(update={"source": "ledger"})


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
